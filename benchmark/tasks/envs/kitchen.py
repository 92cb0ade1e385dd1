"""Franka Kitchen from pixels (gymnasium-robotics ``FrankaKitchen-v1``), as in the MOTO paper.

Observation: one 64x64x3 uint8 image from the "LEXA view" free camera (no wrist camera, no
proprioception). Reward: the number of the task's objects in their goal configuration, at every
step (an object counts when its joints are within 0.3 of the goal, as in D4RL). 280 steps, no
action repeat, no early termination.

The paper's task names are swapped relative to D4RL's: here ``mixed`` = microwave, kettle, light
switch, slide cabinet (D4RL's kitchen-partial objects) and ``partial`` = microwave, kettle, bottom
burner, light switch (D4RL's kitchen-mixed objects).
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from benchmark.tasks.envs.render import Camera, PixelRenderer

KITCHEN_TASKS: dict[str, tuple[str, ...]] = {
    "mixed": ("microwave", "kettle", "light switch", "slide cabinet"),
    "partial": ("microwave", "kettle", "bottom burner", "light switch"),
}
LEXA_CAMERA = Camera(distance=1.86, azimuth=90.0, elevation=-60.0, lookat=(-0.3, 0.5, 2.0))
N_QPOS = 30  # 9 robot joints + 21 object joints, the layout of D4RL's and gymnasium-robotics' kitchens


def _goal_tables():
    from gymnasium_robotics.envs.franka_kitchen.kitchen_env import (
        BONUS_THRESH,
        OBS_ELEMENT_GOALS,
        OBS_ELEMENT_INDICES,
    )

    return OBS_ELEMENT_INDICES, OBS_ELEMENT_GOALS, BONUS_THRESH


def objects_done(qpos: np.ndarray, objects: Sequence[str]) -> np.ndarray:
    """Which objects are in their goal configuration: ``qpos`` (..., 30) -> bool (..., len(objects))."""
    indices, goals, thresh = _goal_tables()
    qpos = np.asarray(qpos)
    if qpos.shape[-1] != N_QPOS:
        raise ValueError(f"kitchen qpos must have {N_QPOS} entries in its last axis, got shape {qpos.shape}")
    unknown = [o for o in objects if o not in goals]
    if unknown:
        raise ValueError(f"unknown kitchen objects {unknown}; known: {sorted(goals)}")
    return np.stack(
        [np.linalg.norm(qpos[..., indices[o]] - goals[o], axis=-1) < thresh for o in objects], axis=-1
    )


class KitchenPixelEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        objects: Sequence[str] = KITCHEN_TASKS["mixed"],
        *,
        episode_length: int = 280,
        image_size: int = 64,
        seed: int | None = None,
    ):
        from gymnasium_robotics.envs.franka_kitchen.kitchen_env import KitchenEnv

        objects_done(np.zeros(N_QPOS), objects)  # validates the names
        self.objects = tuple(objects)
        self.episode_length = episode_length
        self._env = KitchenEnv(tasks_to_complete=list(objects), terminate_on_tasks_completed=False)
        self.model, self.data = self._env.model, self._env.data
        self._renderer = PixelRenderer(self.model, LEXA_CAMERA, image_size)
        self._seed = seed
        self._steps = 0
        self._started = False
        self.observation_space = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (9,), np.float32)

    def _info(self) -> dict[str, Any]:
        qpos = self.data.qpos.copy()
        done = objects_done(qpos, self.objects)
        return {"qpos": qpos, "objects_done": done, "n_objects": int(done.sum()), "success": bool(done.all())}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None and not self._started:
            seed = self._seed
        self._env.reset(seed=seed)
        self._steps = 0
        self._started = True
        return self._renderer.render(self.data), self._info()

    def step(self, action):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        self._env.step(action)
        self._steps += 1
        info = self._info()
        truncated = self._steps >= self.episode_length
        return self._renderer.render(self.data), float(info["n_objects"]), False, truncated, info

    def render_qpos(self, qpos: np.ndarray) -> np.ndarray:
        """Render the scene at joint positions ``qpos`` (velocities zero); leaves the episode's state
        intact."""
        import mujoco

        saved = (self.data.qpos.copy(), self.data.qvel.copy())
        self.data.qpos[:] = qpos
        self.data.qvel[:] = 0.0
        mujoco.mj_forward(self.model, self.data)
        image = self._renderer.render(self.data)
        self.data.qpos[:], self.data.qvel[:] = saved
        mujoco.mj_forward(self.model, self.data)
        return image

    def render(self):
        return self._renderer.render(self.data)

    def close(self):
        self._renderer.close()
        self._env.close()
