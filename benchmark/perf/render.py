"""``python -m benchmark.perf render [--steps N] [--tasks ...]``: environment speed.

Compares raw MuJoCo (the simulator's own step plus one 64x64 render with the same renderer
settings) against our wrapped environment's ``step``, for one MetaWorld task and for Kitchen,
and prints steps/s and the ratio wrapped / raw (target >= 0.9: the wrapper adds little).
Also prints the render speed with MuJoCo's default visual settings, to show what the fast
settings buy on a CPU.
"""

from __future__ import annotations

import argparse
import os

import numpy as np

import benchmark.tasks.envs  # noqa: F401  (sets MUJOCO_GL)
from benchmark.core.cli import Parser
from benchmark.perf.common import best_rate, print_table
from benchmark.tasks import get_task


def _default_settings_renderbest_rate(model, data, steps: int) -> float:
    """Render rate with MuJoCo's default offscreen buffer, multisampling and shadows (same camera)."""
    import mujoco

    fields = ("offwidth", "offheight", "offsamples", "shadowsize")
    holders = (model.vis.global_, model.vis.global_, model.vis.quality, model.vis.quality)
    saved = [getattr(h, f) for h, f in zip(holders, fields)]
    for h, f, v in zip(holders, fields, (640, 480, 4, 4096)):
        setattr(h, f, v)
    r = mujoco.Renderer(model, 64, 64)
    try:
        return best_rate(lambda: (r.update_scene(data), r.render()), steps)
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

    raw_rate = best_rate(raw, steps)
    wrapped_rate = best_rate(wrapped, steps)
    default_render = _default_settings_renderbest_rate(env._env.model, data, max(steps // 4, 5))
    fast_render = best_rate(lambda: env._renderer.render(data), steps)
    env.close()
    return {
        "task": name,
        "raw_steps/s": raw_rate,
        "wrapped_steps/s": wrapped_rate,
        "ratio": wrapped_rate / raw_rate,
        "render/s_fast": fast_render,
        "render/s_default": default_render,
        "render_speedup": fast_render / default_render,
    }


def main(argv=None) -> int:
    p = Parser(
        prog="python -m benchmark.perf render",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--tasks",
        default="metaworld/door-open,kitchen/mixed",
        help="comma-separated tasks (default: %(default)s)",
    )
    p.add_argument(
        "--steps", type=int, default=200, help="steps per measurement, best of 3 (default: %(default)s)"
    )
    args = p.parse_args(argv)
    print(f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}  steps per measurement={args.steps} (best of 3)")
    rows = [bench_task(t.strip(), args.steps) for t in args.tasks.split(",")]
    print_table(rows, list(rows[0]))
    return 0
