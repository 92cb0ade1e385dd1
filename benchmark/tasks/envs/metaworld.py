"""MetaWorld tasks from pixels, as in the MOTO paper and the authors' baseline code.

Observation: one 64x64x3 uint8 image (no proprioception). Reward: sparse, 1.0 when the task is
solved at the last simulator step of the action repeat (2), as the authors' wrapper computes it.
Episodes: 200 agent steps online and in evaluation (the authors' ``--ep_length 200``). Object
positions are drawn anew every episode. At reset the hand starts at (0.1, 0.5, 0.3) plus N(0, 0.02^2)
noise per axis, then 10 zero-action simulator steps let the scene settle. ``info["state"]`` carries
MetaWorld's state vector for scripted experts; agents never see it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from benchmark.tasks.envs.render import Camera, PixelRenderer

CAMERAS = {
    # The authors' free camera (khatch31/jaxrl2). mujoco.Renderer draws it upright already.
    "free": Camera(distance=0.75, azimuth=15.0, elevation=-22.5, lookat=(-0.15, 0.65, 0.25)),
    # MetaWorld's own corner camera renders upside down: rotate it back.
    "corner": Camera(name="corner", flip=True),
}
HAND_INIT = np.array([0.1, 0.5, 0.3])


class MetaWorldPixelEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"]}

    def __init__(
        self,
        task: str,
        *,
        episode_length: int = 200,
        action_repeat: int = 2,
        image_size: int = 64,
        camera: str = "free",
        hand_init_noise: float = 0.02,
        settle_steps: int = 10,
        seed: int | None = None,
    ):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        name = f"{task}-v3"
        if name not in ALL_V3_ENVIRONMENTS:
            raise ValueError(
                f"unknown MetaWorld task {task!r}; known: {sorted(n[:-3] for n in ALL_V3_ENVIRONMENTS)}"
            )
        if camera not in CAMERAS:
            raise ValueError(f"unknown camera {camera!r}; choose from {sorted(CAMERAS)}")
        self.task = task
        self.episode_length = episode_length
        self.action_repeat = action_repeat
        self.hand_init_noise = hand_init_noise
        self.settle_steps = settle_steps

        env = ALL_V3_ENVIRONMENTS[name]()
        env._freeze_rand_vec = False  # new object positions every episode ...
        env.seeded_rand_vec = True  # ... drawn from the env's own seeded generator
        env._set_task_called = True
        env._partially_observable = False  # the state vector holds the goal (scripted experts use it)
        env.__dict__.pop("sawyer_observation_space", None)  # cached bounds clip the goal to 0 otherwise
        env.max_path_length = settle_steps + episode_length * action_repeat + 1
        self._env = env
        self._renderer = PixelRenderer(env.model, CAMERAS[camera], image_size)
        self._rng = np.random.default_rng(seed)
        if seed is not None:
            env.seed(seed)
        self._steps = 0
        self._state: np.ndarray | None = None

        self.observation_space = gym.spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
            self._env.seed(seed)
        env = self._env
        env.hand_init_pos = HAND_INIT + self.hand_init_noise * self._rng.standard_normal(3)
        state, _ = env.reset()
        zero = np.zeros(4, np.float32)
        for _ in range(self.settle_steps):
            state, *_ = env.step(zero)
        self._steps = 0
        self._state = state
        return self._renderer.render(env.data), {"state": state, "success": False}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        for _ in range(self.action_repeat):
            state, _, _, _, info = self._env.step(action)
        success = bool(info["success"])  # the last sub-step's, as the authors' action-repeat wrapper
        self._steps += 1
        self._state = state
        truncated = self._steps >= self.episode_length
        info = {"state": state, "success": success}
        return self._renderer.render(self._env.data), float(success), False, truncated, info

    def render(self):
        return self._renderer.render(self._env.data)

    def close(self):
        self._renderer.close()
        self._env.close()


def scripted_expert(task: str):
    """MetaWorld's scripted policy for ``task``: call ``.get_action(info["state"])``."""
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[f"{task}-v3"]()
