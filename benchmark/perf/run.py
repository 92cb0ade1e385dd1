"""``python -m benchmark.perf run``: the real protocol, timed, and a full run's hours projected.

For each algorithm it runs the protocol (``benchmark.run``'s own ``execute``: real environment,
real dataset, real checkpoints) at a profile's network sizes (default ``paper``) on a truncated
schedule: ``--offline`` gradient steps, then ``--episodes`` online episodes with the task's own
G updates after each, one evaluation of ``--eval-episodes`` episodes before the online phase and
one at its end. From the run's ``metrics.csv`` it reads

* offline updates/s (the log windows after the first, which holds the compile/warm-up);
* seconds per online episode (collection + G updates + the episode's checkpoint; windows after
  the first, which holds the offline evaluation);
* seconds per evaluation episode;

and projects the task's full schedule for that profile (offline steps, online episodes,
evaluations every K episodes) in hours, plus the first window's warm-up once. The projection
assumes the per-update cost stays flat as the replay grows (it does for these learners: batches
are fixed-size) and the policy's episode cost stays flat (it does: fixed episode length).

Use it to size SLURM jobs (``--time-min``) and to compare machines: run it on the GPU node you
will use. Each algorithm runs in a fresh temporary folder (``--keep DIR`` keeps them).
"""

from __future__ import annotations

import argparse
import ast
import csv
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

from benchmark.core.cli import Parser


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def measure(
    algo: str,
    task: str,
    profile: str,
    device: str,
    data_dir: str | None,
    out: Path,
    offline: int,
    episodes: int,
    eval_episodes: int,
    log_every: int,
    overrides: dict | None = None,
    full_schedule: bool = False,
    breakdown: list | None = None,
) -> dict:
    from benchmark.core.protocol import Runner
    from benchmark.launch.plan import plan, plan_args

    (r,) = plan(
        plan_args(algos=algo, tasks=task, profile=profile, device=device, out=str(out), data_dir=data_dir)
    )
    if overrides:
        import algorithms
        from benchmark.tasks.profiles import sizes

        r = dataclasses.replace(r, cfg=algorithms.make_config(algo, sizes(profile), **overrides))
    full = r.schedule  # the task's whole schedule for this profile, from the plan
    G = full.updates_per_episode
    if full_schedule:
        offline, episodes, eval_episodes = full.offline_steps, full.online_episodes, full.eval_episodes
    else:
        r = dataclasses.replace(
            r,
            schedule=dataclasses.replace(
                full,
                offline_steps=offline,
                online_steps=episodes * G,
                eval_every_episodes=episodes,
                eval_episodes=eval_episodes,
            ),
        )
    r.dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if breakdown is None:
        Runner(r, progress=False, log_every=log_every).run()
    else:  # as a real run: TensorBoard and GIFs on, parts timed (benchmark/perf/breakdown.py)
        from benchmark.core.livelog import LiveLog
        from benchmark.perf.breakdown import Breakdown

        with Breakdown() as parts, LiveLog(r.dir) as live:
            Runner(r, progress=False, log_every=log_every, live=live).run()
        breakdown.append({"algo": algo, "parts": parts.rows()})
    total = time.time() - t0
    rows = _rows(r.dir / "metrics.csv")
    off = [float(x["steps_per_s"]) for x in rows if x["phase"] == "offline"]
    on_rows = [x for x in rows if x["phase"] == "online"]
    on_walls = [float(x["wall_time"]) for x in on_rows]
    evals = [i for i, x in enumerate(rows) if x["phase"] == "eval"]
    # the first offline window holds compilation; the first online window holds the offline evaluation
    offline_rate = statistics.median(off[1:]) if len(off) > 1 else off[0]
    per_episode = (
        statistics.median(b - a for a, b in zip(on_walls, on_walls[1:]))
        if len(on_walls) > 2
        else float("nan")
    )
    last_eval = evals[-1]
    eval_s = (float(rows[last_eval]["wall_time"]) - float(rows[last_eval - 1]["wall_time"])) / eval_episodes
    warmup = (log_every / off[0] - log_every / offline_rate) if off else 0.0
    n_evals = 1 + full.online_episodes // full.eval_every_episodes
    projected = (
        full.offline_steps / offline_rate
        + full.online_episodes * per_episode
        + n_evals * full.eval_episodes * eval_s
        + max(warmup, 0.0)
    )
    return {
        "algo": algo,
        "offline upd/s": round(offline_rate, 2),
        "s/online episode": round(per_episode, 2),
        "G": G,
        "s/eval episode": round(eval_s, 2),
        "warm-up s": round(max(warmup, 0.0), 1),
        "measured s": round(total, 1),
        "full run h": round(projected / 3600, 2),
    }


def main(argv=None) -> int:
    p = Parser(
        prog="python -m benchmark.perf run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--algos", default="moto,dreamerv2", help="comma-separated algorithms (default: %(default)s)"
    )
    p.add_argument("--task", default="metaworld/drawer-open", help="one task (default: %(default)s)")
    p.add_argument(
        "--profile",
        default="paper",
        help="network sizes and full schedule: paper, cpu or smoke (default: %(default)s)",
    )
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: %(default)s)")
    p.add_argument(
        "--data-dir", default=None, help="datasets folder (default: $BENCHMARK_DATA_DIR, else datasets/)"
    )
    p.add_argument(
        "--offline", type=int, default=300, help="offline gradient steps timed (default: %(default)s)"
    )
    p.add_argument(
        "--log-every", type=int, default=100, help="updates per offline timing window (default: %(default)s)"
    )
    p.add_argument("--episodes", type=int, default=4, help="online episodes timed (default: %(default)s)")
    p.add_argument(
        "--eval-episodes", type=int, default=2, help="episodes per timed evaluation (default: %(default)s)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field of every algorithm that has it, e.g. --set compile=off "
        "(repeatable; values are read as Python literals, else strings)",
    )
    p.add_argument(
        "--full-schedule",
        action="store_true",
        help="run the profile's whole schedule instead of --offline / --episodes / --eval-episodes "
        "(e.g. a whole cpu run)",
    )
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="also print where the wall time went: model update, actor-critic update, acting, env step + "
        "render, evaluation, diagnostics, GIFs, checkpoints, logs (TensorBoard and GIFs on, as in a real "
        "run; benchmark/perf/breakdown.py)",
    )
    p.add_argument(
        "--keep", default=None, help="keep the run folders under this folder (default: a temporary one)"
    )
    args = p.parse_args(argv)
    if args.offline < args.log_every:
        p.error(f"--offline ({args.offline}) must be at least --log-every ({args.log_every})")
    if args.episodes < 3:
        p.error(
            "--episodes must be at least 3 (the first online episode's window holds the offline evaluation)"
        )
    overrides = {}
    for item in args.set:
        if "=" not in item:
            p.error(f"--set {item!r}: expected FIELD=VALUE, e.g. --set compile=off")
        k, v = item.split("=", 1)
        try:
            overrides[k.strip()] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            overrides[k.strip()] = v
    import algorithms
    from benchmark.launch.plan import resolve_device
    from benchmark.perf.common import print_table

    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    try:
        fields = {a: {f.name for f in dataclasses.fields(algorithms.get(a).config_cls)} for a in algos}
    except KeyError as e:
        p.error(str(e.args[0]) if e.args else f"unknown algorithm in --algos {args.algos!r}")
    unknown = sorted(k for k in overrides if not any(k in f for f in fields.values()))
    if unknown:
        where = ", ".join(
            f"{c.__module__}.{c.__name__}" for c in dict.fromkeys(algorithms.get(a).config_cls for a in algos)
        )
        p.error(
            f"--set {', '.join(unknown)}: no config field of that name in {', '.join(algos)} "
            f"(the fields are those of {where})"
        )

    device = resolve_device(args.device)
    timed = (
        "the profile's whole schedule"
        if args.full_schedule
        else f"{args.offline} offline updates, {args.episodes} online episodes, evaluations of "
        f"{args.eval_episodes} episodes"
    )
    print(f"task {args.task}, profile {args.profile}, device {device}; timed: {timed}", flush=True)
    rows: list[dict] = []
    parts: list[dict] | None = [] if args.breakdown else None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        for algo in algos:
            mine = {k: v for k, v in overrides.items() if k in fields[algo]}
            rows.append(
                measure(
                    algo,
                    args.task,
                    args.profile,
                    device,
                    args.data_dir,
                    root,
                    args.offline,
                    args.episodes,
                    args.eval_episodes,
                    args.log_every,
                    mine,
                    args.full_schedule,
                    parts,
                )
            )
            print(rows[-1], flush=True)
    print_table(rows, list(rows[0]))
    for b in parts or []:
        print(f"\n{b['algo']}: where the wall time went (exclusive seconds per part)")
        print_table(b["parts"], list(b["parts"][0]))
    print("full run h: the task's whole schedule for this profile at these rates, one run on this machine")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
