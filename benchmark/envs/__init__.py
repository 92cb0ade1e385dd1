"""Pixel environments. Importing this package picks the headless GL backend before mujoco loads."""
from benchmark.envs.render import Camera, PixelRenderer, RenderBackendError  # noqa: F401
