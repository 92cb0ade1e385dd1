"""Speed figures: ``python -m benchmark.perf render [--steps N]`` and ``python -m benchmark.perf store``.

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


def bench_store(data_dir, task: str, batch: int = 256) -> dict:
    """Memory of the episode store against the raw frame bytes, and sampling speed."""
    from benchmark.datasets import iter_episodes
    from benchmark.replay import EpisodeStore

    store = EpisodeStore(seed=0)
    for ep in iter_episodes(data_dir / task):
        store.add(ep)
    n_frames = sum(len(ep["image"]) for ep in store.episodes)
    raw = n_frames * int(np.prod(store.episodes[0]["image"].shape[1:]))
    transitions = _rate(lambda: store.sample_transitions(batch, framestack=3), 20)
    sequences = _rate(lambda: store.sample_sequences(16, length=50), 20)
    return {"dataset": task, "frames": n_frames, "raw_frame_MB": raw / 2**20, "store_MB": store.nbytes() / 2**20,
            "store/raw": store.nbytes() / raw, f"batches/s (B={batch}, k=3)": transitions,
            "seq batches/s (16x50)": sequences}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["render", "store", "learners", "worldmodel"],
                   help="render: env speed; store: episode-store memory and sampling; learners: model-free "
                        "updates/s; worldmodel: world-model and agent steps/s")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--tasks", default="metaworld/door-open,kitchen/mixed")
    p.add_argument("--steps", type=int, default=200)
    args, rest = p.parse_known_args(argv)
    import os

    if args.what in ("learners", "worldmodel"):  # each in its own module (they import JAX / torch)
        import importlib

        return importlib.import_module(f"benchmark.perf_{args.what}").main(rest)
    if rest:
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.what == "store":
        from pathlib import Path

        from benchmark.tasks import default_data_dir

        root = Path(args.data_dir) if args.data_dir else default_data_dir()
        rows = [bench_store(root, t.strip()) for t in args.tasks.split(",")]
        print_table(rows, list(rows[0]))
        return 0
    print(f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}  steps per measurement={args.steps} (best of 3)")
    rows = [bench_task(t.strip(), args.steps) for t in args.tasks.split(",")]
    print_table(rows, list(rows[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
