"""Pixel environments. Importing this package picks the headless GL backend before mujoco loads."""

from benchmark import configure_gl

configure_gl()

from benchmark.tasks.envs.render import Camera, PixelRenderer, RenderBackendError  # noqa: E402,F401
