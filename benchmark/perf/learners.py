"""``python -m benchmark.perf learners``: updates/s of the model-free learners (BC, SAC, CQL, IQL).

For each learner at the given profile's sizes (default ``paper``: the paper's networks, batch 256,
64x64 frames, 3-frame stacks) it prints:

* compile: seconds of the first update (tracing + XLA compilation + one update);
* update alone: updates/s on one batch already in memory (the learner's own speed);
* end to end: updates/s drawing every batch from an ``EpisodeStore`` through the protocol's
  ``BatchSampler`` (background prefetch), i.e. what a run gets;
* e2e / alone: 1.0 when sampling is hidden behind the update.

Data: the task's dataset when it exists (``--data-dir``), otherwise synthetic episodes of the same
shapes. Each figure is the best of ``--repeats`` timings of ``--updates`` updates (the machine is shared).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from benchmark.core.cli import Parser


def _store(task: str, data_dir: str | None, episodes: int = 10, length: int = 100):
    from pathlib import Path

    from benchmark.core.replay import EpisodeStore
    from benchmark.datasets.format import iter_episodes
    from benchmark.tasks import default_data_dir, get_task

    spec = get_task(task)
    path = (Path(data_dir) if data_dir else default_data_dir()) / task
    store = EpisodeStore(goal_fn=spec.goal_flags)
    if (path / "manifest.json").exists():
        for ep in iter_episodes(path):
            store.add(ep)
        return store, f"{task} dataset ({store.num_transitions} transitions)"
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        store.add(
            {
                "image": rng.integers(0, 256, (length + 1, 64, 64, 3), dtype=np.uint8),
                "action": rng.uniform(-1, 1, (length, spec.action_dim)).astype(np.float32),
                "reward": rng.integers(0, 2, length).astype(np.float32),
                "success": np.zeros(length, bool),
                "terminal": np.zeros(length, bool),
            }
        )
    return store, f"synthetic ({store.num_transitions} transitions of 64x64 frames)"


def _block(metrics):
    import jax

    jax.block_until_ready(metrics)


def bench(name: str, store, profile: str, batch: int | None, updates: int, repeats: int) -> dict:
    import algorithms
    from algorithms import RunContext
    from benchmark.core.replay import BatchSampler

    overrides = {"batch_size": batch} if batch else {}
    cfg = algorithms.make_config(name, profile, **overrides)
    ctx = RunContext(
        obs_shape=tuple(store.frames.shape[1:]),
        action_dim=store._arr["action_in"].shape[1],
        seed=0,
        total_updates=10_000,
    )
    agent = algorithms.make_agent(name, cfg, ctx)
    sampler = BatchSampler(store, agent.requests, 0, depth=2)
    fixed = sampler.batch(0)
    t = time.perf_counter()
    _block(agent.update(fixed))
    compile_s = time.perf_counter() - t

    def alone() -> float:
        t = time.perf_counter()
        for _ in range(updates):
            m = agent.update(fixed)
        _block((m, agent.state))
        return updates / (time.perf_counter() - t)

    step = [1]

    def end_to_end() -> float:
        t = time.perf_counter()
        for b in sampler.block(step[0], updates):
            m = agent.update(b)
        _block((m, agent.state))
        step[0] += updates
        return updates / (time.perf_counter() - t)

    best_alone, best_e2e = 0.0, 0.0
    for _ in range(repeats):  # interleaved, so both see the same machine load
        best_alone = max(best_alone, alone())
        best_e2e = max(best_e2e, end_to_end())
    sampler.close()
    return {
        "learner": name,
        "batch": cfg.batch_size,
        "compile_s": compile_s,
        "update_alone/s": best_alone,
        "end_to_end/s": best_e2e,
        "e2e/alone": best_e2e / best_alone,
        "traces": getattr(agent, "traces", ""),
    }


def main(argv=None) -> int:
    p = Parser(
        prog="python -m benchmark.perf learners",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--algos", default="bc,sac,cql,iql")
    p.add_argument("--profile", default="paper", help="sizes: paper (default), cpu or smoke")
    p.add_argument("--batch", type=int, default=None, help="override the profile's batch size")
    p.add_argument("--updates", type=int, default=5, help="updates per timing")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--task", default="metaworld/drawer-open")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)

    import jax

    from benchmark.perf.common import print_table

    store, source = _store(args.task, args.data_dir)
    print(
        f"device: {jax.devices()[0].platform} ({jax.device_count()} device(s)); data: {source}; "
        f"profile {args.profile}; best of {args.repeats} x {args.updates} updates"
    )
    rows = []
    for name in args.algos.split(","):
        rows.append(bench(name.strip(), store, args.profile, args.batch, args.updates, args.repeats))
        print_table(rows[-1:], list(rows[-1]))  # each as soon as it is measured
    print()
    print_table(rows, list(rows[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
