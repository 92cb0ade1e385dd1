"""Fast headless MuJoCo rendering: one offscreen renderer per environment, made once.

MuJoCo picks its OpenGL backend from ``MUJOCO_GL`` when ``mujoco`` is first imported;
importing ``benchmark.tasks.envs`` sets it (``benchmark.configure_gl``) before anything imports mujoco.
CPU rendering (Mesa llvmpipe through EGL, or OSMesa) is slow with MuJoCo's default visual
settings, so every renderer here uses a 64x64 offscreen buffer, no multisampling, no
shadows and no reflections.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import mujoco
import numpy as np

from benchmark import GL_HELP


class RenderBackendError(RuntimeError):
    """No usable OpenGL backend for offscreen rendering."""


@dataclass(frozen=True)
class Camera:
    """A named camera of the model, or a free camera given by its orbit parameters."""

    name: str | None = None
    distance: float = 1.0
    azimuth: float = 0.0
    elevation: float = -45.0
    lookat: tuple[float, float, float] = (0.0, 0.0, 0.0)
    flip: bool = False  # rotate the image by 180 degrees (for cameras mounted upside down)


class PixelRenderer:
    """Renders one model's scene to ``(size, size, 3)`` uint8 images with its own GL context."""

    def __init__(self, model: "mujoco.MjModel", camera: Camera, size: int = 64):
        # The offscreen buffer is allocated from these model fields: keep it as small as the image.
        model.vis.global_.offwidth = size
        model.vis.global_.offheight = size
        model.vis.quality.offsamples = 0
        model.vis.quality.shadowsize = 0
        try:
            self._renderer = mujoco.Renderer(model, height=size, width=size)
        except Exception as exc:  # the GL libraries raise many different types
            raise RenderBackendError(
                f"could not create an offscreen OpenGL context with MUJOCO_GL="
                f"{os.environ.get('MUJOCO_GL')!r}: {exc}. Use a headless backend: {GL_HELP}. "
                "MUJOCO_GL must be set before mujoco is first imported (importing `benchmark` "
                "first sets it to egl)."
            ) from exc
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self.size = size
        self.camera = camera
        if camera.name is not None:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera.name) < 0:
                known = [model.camera(i).name for i in range(model.ncam)]
                raise ValueError(f"camera {camera.name!r} is not in the model; it has {known}")
            self._cam: "mujoco.MjvCamera | str" = camera.name
        else:
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            cam.distance = camera.distance
            cam.azimuth = camera.azimuth
            cam.elevation = camera.elevation
            cam.lookat[:] = camera.lookat
            self._cam = cam
        self._buffer = np.empty((size, size, 3), dtype=np.uint8)

    def render(self, data: "mujoco.MjData") -> np.ndarray:
        """A fresh image of ``data``'s current state (the caller owns the returned array)."""
        self._renderer.update_scene(data, camera=self._cam)
        self._renderer.render(out=self._buffer)
        image = self._buffer[::-1, ::-1] if self.camera.flip else self._buffer
        return image.copy()

    def close(self) -> None:
        renderer, self._renderer = getattr(self, "_renderer", None), None
        if renderer is not None:
            try:
                renderer.close()
            except Exception:  # the GL context may already be gone at interpreter exit
                pass

    def __del__(self):
        self.close()
