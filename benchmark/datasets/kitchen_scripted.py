"""Kitchen demonstrations generated from code: the scripted demonstrator (``benchmark.envs.kitchen_expert``)
chains four objects per 280-step episode in ``FrankaKitchen-v1``; every state is rendered with the LEXA-view
camera and both Kitchen tasks' rewards are recomputed from the joint positions exactly as for imported data.

This is *not* the paper's data (the relay-policy-learning teleoperated demonstrations); it is a stand-in
that anyone can rebuild, written as two datasets that share episodes and differ only in their rewards:
``kitchen/scripted-mixed`` and ``kitchen/scripted-partial`` (``kitchen/scripted`` for short).

Episode ``i`` of seed ``s`` depends only on ``(s, i)``: its object order, reset seed and action noise are
drawn from ``SeedSequence([s, i])``, so the bytes do not depend on how many worker processes ran.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from benchmark.envs.kitchen import KITCHEN_TASKS, objects_done

GENERATOR = "kitchen-scripted"
GENERATOR_VERSION = 2  # 2: faster plans, no hub posture between objects (chains complete)
EPISODE_LENGTH = 280
PAPER_EPISODES = 563  # the paper's Kitchen data: 563 episodes, 128,569 transitions
DEFAULT_NOISE = 0.1  # std of Gaussian noise on the normalised joint velocities (arm joints)
NAMES = {task: f"kitchen/scripted-{task}" for task in KITCHEN_TASKS}

MIXED = KITCHEN_TASKS["mixed"]  # microwave, kettle, light switch, slide cabinet
PARTIAL = KITCHEN_TASKS["partial"]  # microwave, kettle, bottom burner, light switch
# Objects an episode may visit. The hinge cabinet's plan reaches its goal alone but needs ~130 steps
# (it pulls the door open through several regrasps), too long to chain four objects in 280 steps.
CHAIN_OBJECTS = ("microwave", "kettle", "bottom burner", "top burner", "light switch", "slide cabinet")


def draw_order(rng: np.random.Generator) -> list[str]:
    """Four objects, visited in D4RL's task order (microwave, kettle, bottom burner, top burner, light switch,
    slide cabinet), as the relay-policy-learning demonstrations mostly do.

    As in the paper's data: a quarter of the episodes do the "mixed" task's four objects, a quarter the
    "partial" task's first three (microwave, kettle, bottom burner) and one object outside it, the rest four
    random objects - but never all four "partial" objects in one episode.
    """
    u = rng.random()
    if u < 0.25:
        chosen = list(MIXED)
    elif u < 0.5:
        rest = [o for o in CHAIN_OBJECTS if o not in PARTIAL]
        chosen = list(PARTIAL[:3]) + [rest[rng.integers(len(rest))]]
    else:
        while True:
            chosen = [CHAIN_OBJECTS[i] for i in rng.permutation(len(CHAIN_OBJECTS))[:4]]
            if set(chosen) != set(PARTIAL):
                break
    return sorted(chosen, key=CHAIN_OBJECTS.index)


def episode_plan(seed: int, index: int, noise: float = DEFAULT_NOISE, steps: int = EPISODE_LENGTH) -> dict[str, Any]:
    """Everything episode ``index`` of a dataset with ``seed`` depends on."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    order = draw_order(rng)
    return {"index": index, "order": order, "reset_seed": int(rng.integers(2**31 - 1)), "noise": noise,
            "steps": steps}


def run_episode(plan: dict[str, Any], env=None, *, render: bool = True) -> dict[str, np.ndarray]:
    """Run one planned episode: ``qpos`` (T+1, 30), ``action`` (T, 9) and, rendering, ``image`` (T+1, 64, 64, 3).

    ``env`` is a ``KitchenPixelEnv`` (made here if not given); without rendering only its physics is stepped.
    """
    from benchmark.envs.kitchen import KitchenPixelEnv
    from benchmark.envs.kitchen_expert import rollout

    own = env is None
    env = env or KitchenPixelEnv()
    images: list[np.ndarray] = []
    try:
        out = rollout(env._env, plan["order"], steps=plan["steps"], seed=plan["reset_seed"], noise=plan["noise"],
                      on_step=(lambda: images.append(env.render())) if render else None)
    finally:
        if own:
            env.close()
    if render:
        out["image"] = np.stack(images)
    return out


def objects_completed(qpos_last: np.ndarray) -> int:
    """How many of the seven objects are in their goal configuration in a state."""
    from benchmark.envs.kitchen_expert import OBJECTS

    return int(objects_done(qpos_last, OBJECTS).sum())


_WORKER_ENV = None


def _worker_episode(plan: dict[str, Any]) -> dict[str, np.ndarray]:
    global _WORKER_ENV
    if _WORKER_ENV is None:
        import benchmark.envs  # noqa: F401  (headless GL before mujoco)
        from benchmark.envs.kitchen import KitchenPixelEnv

        _WORKER_ENV = KitchenPixelEnv()
    return run_episode(plan, _WORKER_ENV)


def generate_episodes(plans: list[dict[str, Any]], workers: int = 1) -> Iterator[dict[str, np.ndarray]]:
    """Rendered episodes in plan order, from ``workers`` processes (the order never depends on them)."""
    if workers <= 1:
        from benchmark.envs.kitchen import KitchenPixelEnv

        env = KitchenPixelEnv()
        try:
            for plan in plans:
                yield run_episode(plan, env)
        finally:
            env.close()
        return
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(_worker_episode, plans)


def generate(writers: dict[str, Any], *, episodes: int = PAPER_EPISODES, seed: int = 0,
             noise: float = DEFAULT_NOISE, workers: int = 1, steps: int = EPISODE_LENGTH,
             progress=None) -> dict[str, Any]:
    """Write ``episodes`` scripted episodes to every task's writer; returns manifest extras.
    (``steps`` shortens episodes, for tests only: the datasets' episodes are 280 steps.)"""
    from benchmark.datasets.kitchen import task_episode

    plans = [episode_plan(seed, i, noise, steps) for i in range(episodes)]
    completed, planned_done = [], []
    for plan, raw in zip(plans, generate_episodes(plans, workers)):
        for task, writer in writers.items():
            writer.add(task_episode(raw, raw["image"], KITCHEN_TASKS[task]))
        completed.append(objects_completed(raw["qpos"][-1]))
        planned_done.append(bool(objects_done(raw["qpos"][-1], plan["order"]).all()))
        if progress is not None:
            progress.update(len(raw["image"]))
    return {"action_noise": noise, "objects_per_episode": float(np.mean(completed)),
            "all_planned_objects_rate": float(np.mean(planned_done)),
            "orders": [p["order"] for p in plans], "objects_completed": completed}
