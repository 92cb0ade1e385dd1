"""Small Kitchen source files made here, in the formats users download (the real files can't be).

A few short FrankaKitchen-v1 episodes under a noisy random policy; from step ``open_at`` on, the
microwave door and the slide cabinet are set to their goal positions, so recomputed rewards differ
between the "mixed" task (both count) and "partial" (only the microwave counts).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def kitchen_rollouts(n_episodes=2, length=6, open_at=3, seed=0):
    import gymnasium as gym
    import gymnasium_robotics

    gym.register_envs(gymnasium_robotics)
    env = gym.make(
        "FrankaKitchen-v1", robot_noise_ratio=0.0, object_noise_ratio=0.0, terminate_on_tasks_completed=False
    ).unwrapped
    rng = np.random.default_rng(seed)
    episodes = []
    for i in range(n_episodes):
        obs, _ = env.reset(seed=seed + i)
        qpos, obs59, actions = [env.data.qpos.copy()], [obs["observation"]], []
        for t in range(length):
            if t == open_at:
                env.data.qpos[22], env.data.qpos[19] = -0.75, 0.37
            a = np.clip(rng.normal(0, 0.5, 9), -1, 1).astype(np.float32)
            obs, *_ = env.step(a)
            actions.append(a)
            qpos.append(env.data.qpos.copy())
            obs59.append(obs["observation"])
        episodes.append({"qpos": np.array(qpos), "obs59": np.array(obs59), "action": np.array(actions)})
    env.close()
    return episodes


def write_d4rl_hdf5(path: Path, episodes) -> Path:
    """D4RL kitchen layout: observations (N, 60) = qpos 30 + goal 30; an episode ends at a terminal."""
    import h5py

    obs = np.concatenate([np.concatenate([e["qpos"], np.zeros_like(e["qpos"])], axis=1) for e in episodes])
    # D4RL stores one action per observation row; the last row's action has no successor state.
    actions = np.concatenate([np.vstack([e["action"], np.zeros((1, 9), np.float32)]) for e in episodes])
    terminals = np.concatenate([np.eye(1, len(e["qpos"]), len(e["qpos"]) - 1)[0] for e in episodes]).astype(
        bool
    )
    with h5py.File(path, "w") as f:
        f["observations"] = obs.astype(np.float32)
        f["actions"] = actions
        f["rewards"] = np.zeros(len(obs), np.float32)
        f["terminals"] = terminals
        f["timeouts"] = np.zeros(len(obs), bool)
    return path


def write_dreamer_npz(folder: Path, episodes) -> Path:
    """Dreamer-style per-episode NPZ: every key has T+1 rows, action[0] is a zero placeholder."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, e in enumerate(episodes):
        action = np.vstack([np.zeros((1, 9), np.float32), e["action"]])
        np.savez(
            folder / f"episode_{i:03d}.npz",
            qpos=e["qpos"],
            action=action,
            reward=np.zeros(len(action), np.float32),
        )
    return folder


def write_minari(dataset_id: str, n_episodes=2, length=5, seed=0) -> str:
    """A real Minari dataset recorded with minari.DataCollector (needs MINARI_DATASETS_PATH set)."""
    import gymnasium as gym
    import gymnasium_robotics
    import minari

    gym.register_envs(gymnasium_robotics)
    env = minari.DataCollector(
        gym.make("FrankaKitchen-v1", robot_noise_ratio=0.0, object_noise_ratio=0.0, max_episode_steps=length)
    )
    rng = np.random.default_rng(seed)
    for i in range(n_episodes):
        env.reset(seed=seed + i)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(
                np.clip(rng.normal(0, 0.5, 9), -1, 1).astype(np.float32)
            )
            done = terminated or truncated
    env.create_dataset(dataset_id=dataset_id, algorithm_name="noisy-random", author="tests")
    env.close()
    return dataset_id


D5RL_OBJECTS = (
    "microwave",
    "kettle",
    "bottom burner",
    "top burner",
    "light switch",
    "slide cabinet",
    "hinge cabinet",
)


def write_d5rl_image_npz(folder: Path, n_episodes=2, length=5, seed=0) -> tuple[Path, list[dict]]:
    """Image-only episodes in D5RL's standard-kitchen layout: every key has T+1 rows (row 0 is the reset;
    its action and rewards are placeholders), LEXA-view images under ``extra_image_camera_12_rgb``,
    per-object rewards ``reward <object>`` (1 where the object is done) and their sum ``reward``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for i in range(n_episodes):
        n = length + 1
        per_object = {f"reward {o}": (rng.random(n) < 0.5).astype(np.float32) for o in D5RL_OBJECTS}
        arrays = {
            "extra_image_camera_12_rgb": rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
            "extra_image_camera_gripper_rgb": rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8),
            "action": np.vstack([np.zeros((1, 9)), rng.uniform(-1, 1, (length, 9))]).astype(np.float32),
            "proprio": rng.normal(0, 1, (n, 9)).astype(np.float32),
            "reward": np.sum(list(per_object.values()), axis=0).astype(np.float32),
            "is_first": np.eye(1, n, 0)[0].astype(bool),
            **per_object,
        }
        np.savez(folder / f"episode_{i:03d}.npz", **arrays)
        written.append(arrays)
    return folder, written
