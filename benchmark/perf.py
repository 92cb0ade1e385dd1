"""Speed figures: ``python -m benchmark.perf render [--steps N]`` and ``python -m benchmark.perf store``
(``learners`` and ``worldmodel`` live in ``perf_learners.py`` / ``perf_worldmodel.py``).

Compares raw MuJoCo (the simulator's own step plus one 64x64 render with the same renderer
settings) against our wrapped environment's ``step``, for one MetaWorld task and for Kitchen,
and prints steps/s and the ratio wrapped / raw (target >= 0.9: the wrapper adds little).
Also prints the render speed with MuJoCo's default visual settings, to show what the fast
settings buy on a CPU.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import benchmark.envs  # noqa: F401  (sets MUJOCO_GL)
from benchmark.datasets.__main__ import print_table
from benchmark.tasks import get_task


def _rate(fn, steps: int, repeats: int = 3) -> float:
    fn()  # warm up
    best = 0.0
    for _ in range(repeats):  # the best of a few runs: the machine is shared and noisy
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        best = max(best, steps / (time.perf_counter() - t))
    return best


def _default_settings_render_rate(model, data, steps: int) -> float:
    """Render rate with MuJoCo's default offscreen buffer, multisampling and shadows (same camera)."""
    import mujoco

    fields = ("offwidth", "offheight", "offsamples", "shadowsize")
    holders = (model.vis.global_, model.vis.global_, model.vis.quality, model.vis.quality)
    saved = [getattr(h, f) for h, f in zip(holders, fields)]
    for h, f, v in zip(holders, fields, (640, 480, 4, 4096)):
        setattr(h, f, v)
    r = mujoco.Renderer(model, 64, 64)
    try:
        return _rate(lambda: (r.update_scene(data), r.render()), steps)
    finally:
        r.close()
        for h, f, v in zip(holders, fields, saved):
            setattr(h, f, v)


def bench_task(name: str, steps: int) -> dict:
    spec = get_task(name)
    env = spec.make_env(seed=0, episode_length=10**9)
    env.reset()
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, (steps + 1, spec.action_dim)).astype(np.float32)
    i = iter(range(10**12))

    if spec.domain == "metaworld":
        inner, data = env._env, env._env.data

        def raw():
            a = actions[next(i) % len(actions)]
            for _ in range(spec.action_repeat):
                inner.step(a)
            env._renderer.render(data)
    else:
        inner, data = env._env, env.data

        def raw():
            inner.step(actions[next(i) % len(actions)])
            env._renderer.render(data)

    def wrapped():
        env.step(actions[next(i) % len(actions)])

    raw_rate = _rate(raw, steps)
    wrapped_rate = _rate(wrapped, steps)
    default_render = _default_settings_render_rate(env._env.model, data, max(steps // 4, 5))
    fast_render = _rate(lambda: env._renderer.render(data), steps)
    env.close()
    return {"task": name, "raw_steps/s": raw_rate, "wrapped_steps/s": wrapped_rate,
            "ratio": wrapped_rate / raw_rate, "render/s_fast": fast_render,
            "render/s_default": default_render, "render_speedup": fast_render / default_render}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _synthetic_episode(rng, T: int, action_dim: int) -> dict:
    return {"image": rng.integers(0, 256, (T + 1, 64, 64, 3), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (T, action_dim)).astype(np.float32),
            "reward": rng.integers(0, 5, T).astype(np.float32), "success": np.zeros(T, bool),
            "terminal": np.zeros(T, bool)}


# The store before v2 (per-episode gathers), measured on drawer-open's 1,010 frames: the targets' baseline.
STORE_V1 = {"transitions/s": "15-30", "sequences/s": "~440"}


def bench_store(name: str, episodes, n_online: int = 0, online_T: int = 280, batch: int = 256) -> dict:
    """Memory of the episode store against the raw frame bytes, and sampling speed (one thread;
    then with the prefetch thread, as the protocol runs it)."""
    from algorithms.contract import Sequences, Transitions
    from benchmark.replay import BatchSampler, EpisodeStore, sampling_rng

    rss0 = _rss_mb()
    store = EpisodeStore()
    for ep in episodes:
        store.add(ep)
    rng = np.random.default_rng(1)
    for _ in range(n_online):
        store.add(_synthetic_episode(rng, online_T, store._arr["action_in"].shape[1]), online=True)
    raw = store.frame_bytes
    rss = _rss_mb() - rss0
    step = iter(range(10**9))
    tr, sq = Transitions(batch, framestack=3), Sequences(16, 50)
    transitions = _rate(lambda: store.sample(tr, sampling_rng(0, next(step), 0)), 30)
    sequences = _rate(lambda: store.sample(sq, sampling_rng(0, next(step), 1)), 30)
    sampler = BatchSampler(store, {"q": tr}, seed=0, depth=2)
    t = time.perf_counter()
    for _ in sampler.block(0, 60):
        pass
    prefetched = 60 / (time.perf_counter() - t)
    sampler.close()
    return {"store": name, "episodes": store.num_episodes, "frames": store.n_frames,
            "raw_frame_MB": raw / 2**20, "store_MB": store.nbytes() / 2**20, "store/raw": store.nbytes() / raw,
            "RSS_growth/raw": rss * 2**20 / raw,
            f"trans/s B={batch},k=3": transitions, "trans/s prefetched": prefetched,
            "seq/s 16x50": sequences}


def store_main(data_dir, task: str) -> int:
    from benchmark.datasets import iter_episodes

    rows = []
    if (data_dir / task / "manifest.json").exists():
        rows.append(bench_store(task, iter_episodes(data_dir / task)))
    else:
        print(f"(no dataset at {data_dir / task}: `python -m benchmark.datasets generate {task}` adds its row)")
    rng = np.random.default_rng(0)
    # Kitchen size: the paper's 563 demonstrations (128,569 transitions) plus 50 online episodes of 280 steps.
    lengths = np.full(563, 128_569 // 563)
    lengths[: 128_569 - lengths.sum()] += 1
    rows.append(bench_store("kitchen-size (synthetic)", (_synthetic_episode(rng, int(T), 9) for T in lengths),
                            n_online=50))
    print_table(rows, list(rows[0]))
    per_frame = rows[-1]["store_MB"] * 2**20 / rows[-1]["frames"]
    full = 128_569 + 563 + (66_300 // 50) * 281  # a full Kitchen run: the dataset and every online episode
    print(f"targets: >= 300 transition batches/s (B=256, k=3), >= 1,000 sequence batches/s (16x50), store <= 1.05x "
          f"the raw frames; the v1 store did {STORE_V1['transitions/s']} and {STORE_V1['sequences/s']} on drawer-open.")
    print(f"a full Kitchen run holds {full:,} frames: {full * per_frame / 2**30:.2f} GiB in the store "
          f"(reserved up front; pages are committed as frames arrive)")
    return 0


DELEGATED = ("learners", "worldmodel", "latent", "run")  # each in its own module (they import JAX / torch)


def main(argv=None) -> int:
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:  # everything after the name is the sub-benchmark's own options
        import importlib

        return importlib.import_module(f"benchmark.perf_{argv[0]}").main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["render", "store", "learners", "worldmodel", "latent", "run"],
                   help="render: env speed; store: episode-store memory and sampling; learners: model-free "
                        "updates/s; worldmodel: world-model and agent steps/s; latent: LOMPO/COMBO updates/s; "
                        "run: the whole protocol timed and a full run's hours projected "
                        "(the last four take their own options: python -m benchmark.perf learners --help)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--tasks", default="metaworld/door-open,kitchen/mixed")
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args(argv)
    import os

    if args.what == "store":
        from pathlib import Path

        from benchmark.tasks import default_data_dir

        root = Path(args.data_dir) if args.data_dir else default_data_dir()
        return store_main(root, args.tasks.split(",")[0].strip() if args.tasks != p.get_default("tasks")
                          else "metaworld/drawer-open")
    print(f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}  steps per measurement={args.steps} (best of 3)")
    rows = [bench_task(t.strip(), args.steps) for t in args.tasks.split(",")]
    print_table(rows, list(rows[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
