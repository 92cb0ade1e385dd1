"""Offline-to-online RL from pixels: the MOTO paper's benchmark (arXiv 2401.03306)."""

from __future__ import annotations

import os
import sys

__version__ = "0.1.0"

GL_BACKENDS = ("egl", "osmesa", "glfw")
GL_HELP = (
    "egl needs libEGL and Mesa (`apt-get install -y libegl1 libgl1-mesa-dri`); "
    "osmesa needs `apt-get install -y libosmesa6` and `export MUJOCO_GL=osmesa`"
)


def configure_gl(default: str = "egl") -> str:
    """Pick MuJoCo's headless OpenGL backend. MuJoCo reads ``MUJOCO_GL`` once, when first imported,
    so this runs when ``benchmark.tasks.envs`` is imported (every env factory imports it first); importing
    ``benchmark`` alone configures nothing."""
    backend = os.environ.get("MUJOCO_GL", "").lower()
    if not backend and "mujoco" in sys.modules:
        return ""  # too late: mujoco already chose (the renderer will say so if that fails)
    backend = backend or default
    if backend not in GL_BACKENDS:
        raise RuntimeError(f"MUJOCO_GL={backend!r} is not supported; use one of {GL_BACKENDS} ({GL_HELP}).")
    os.environ["MUJOCO_GL"] = backend
    if backend in ("egl", "osmesa"):
        os.environ.setdefault("PYOPENGL_PLATFORM", backend)
    return backend
