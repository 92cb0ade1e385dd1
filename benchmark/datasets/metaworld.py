"""MetaWorld demonstrations from MetaWorld's scripted experts, rendered to 64x64 pixels.

The paper's datasets (Table 1) hold 9-10 successful scripted demonstrations per task. We run
the expert in the same pixel environment the agents use (action repeat 2, objects randomised;
100 agent steps per demonstration, ``TaskSpec.demo_episode_length``; the reward is the last
simulator sub-step's success), keep only episodes in which the task is solved, and stop at ``episodes``
kept. Everything is drawn from ``seed``: the same seed gives the same dataset.
"""

from __future__ import annotations

import numpy as np

from benchmark.tasks import TaskSpec
from benchmark.tasks.envs.metaworld import scripted_expert

GENERATOR = "metaworld-scripted"
GENERATOR_VERSION = 2  # 2: reward from the last sub-step of the action repeat


def rollout(env, policy, action_noise: float, rng: np.random.Generator, reset_seed: int | None):
    image, info = env.reset(seed=reset_seed)
    images, actions, rewards, successes = [image], [], [], []
    truncated = False
    while not truncated:
        action = np.asarray(policy.get_action(info["state"]), np.float32)
        if action_noise > 0:
            action = action + action_noise * rng.standard_normal(action.shape).astype(np.float32)
        action = np.clip(action, -1.0, 1.0)
        image, reward, terminated, truncated, info = env.step(action)
        images.append(image)
        actions.append(action)
        rewards.append(reward)
        successes.append(info["success"])
        truncated = truncated or terminated
    T = len(actions)
    return {
        "image": np.stack(images).astype(np.uint8),
        "action": np.stack(actions).astype(np.float32),
        "reward": np.asarray(rewards, np.float32),
        "success": np.asarray(successes, bool),
        "terminal": np.zeros(T, bool),
    }


def generate(
    spec: TaskSpec,
    writer,
    *,
    episodes: int = 10,
    seed: int = 0,
    action_noise: float = 0.0,
    max_attempts: int | None = None,
    progress=None,
) -> dict:
    """Write ``episodes`` successful expert episodes of ``spec`` into ``writer``; returns counters."""
    task = spec.name.split("/", 1)[1]
    policy = scripted_expert(task)
    env = spec.make_env(seed=seed, episode_length=spec.demo_length)
    rng = np.random.default_rng(seed + 1)
    max_attempts = max_attempts or 5 * episodes
    kept = attempts = 0
    try:
        while kept < episodes:
            if attempts >= max_attempts:
                raise RuntimeError(
                    f"{spec.name}: the scripted expert solved only {kept} of {attempts} episodes; "
                    f"raise --max-attempts or lower --action-noise"
                )
            ep = rollout(env, policy, action_noise, rng, reset_seed=seed if attempts == 0 else None)
            attempts += 1
            if ep["success"].any():
                writer.add(ep)
                kept += 1
            if progress is not None:
                progress.update(1)
                progress.set_postfix(kept=kept)
    finally:
        env.close()
    return {"attempts": attempts, "kept": kept, "action_noise": action_noise}
