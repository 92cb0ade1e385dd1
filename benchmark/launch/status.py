"""python -m benchmark.status results/

What a results folder holds: for every algorithm x task (x setting: profile[@dataset]), how many runs
are done / running / queued / interrupted / failed / missing, the progress (gradient updates done over
updates planned), and the error of each failed run.

The states (below) are ``benchmark.core.rundir.run_state``'s. Reads run directories only; imports
neither JAX nor PyTorch.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

from benchmark.core.cli import Parser, entry
from benchmark.core.rundir import STATES, STATES_HELP, find_runs, read_json, run_key, run_state


def progress(d: Path) -> tuple[int, int]:
    """(gradient updates done, updates planned) from metrics.csv and config.json."""
    cfg = read_json(Path(d) / "config.json")
    sch = cfg.get("schedule") or {}
    total = int(sch.get("offline_steps", 0)) + int(sch.get("online_steps", 0))
    done = 0
    try:
        with open(Path(d) / "metrics.csv", newline="") as f:
            for row in csv.DictReader(f):
                done = max(done, int(float(row.get("grad_step") or 0)))
    except (OSError, ValueError):
        pass
    if read_json(Path(d) / "status.json").get("status") == "done":
        done = total or done
    return done, total


def summarize(out: Path, expected: list[Path] | None = None, queue: dict | None = None) -> dict:
    """{(algo, task, setting): {state: count, "updates": (done, total), "failures": [(dir, error)]}}."""
    out = Path(out)
    found = find_runs(out) if out.exists() else []  # a sweep's runs before any started: all missing
    if expected is None:  # the grid of every cell seen x every seed seen
        keys = [run_key(d, out) for d in found]
        cells = {(t, a, s) for t, a, s, _ in keys}
        seeds = {k[3] for k in keys}
        expected = [out / t / a / s / f"seed_{n}" for t, a, s in cells for n in seeds]
    table: dict = defaultdict(lambda: {**{s: 0 for s in STATES}, "updates": [0, 0], "failures": []})
    for d in sorted(set(found) | set(map(Path, expected))):
        task, algo, setting, _ = run_key(d, out)
        cell = table[(algo, task, setting)]
        state, status = run_state(d, queue) if d.exists() else ("missing", {})
        cell[state] += 1
        done, total = progress(d) if d.exists() else (0, 0)
        cell["updates"][0] += done
        cell["updates"][1] += total
        if state == "failed":
            cell["failures"].append((str(d), status.get("error", "(no error recorded)")))
    return dict(table)


def format_table(table: dict) -> str:
    head = (
        f"{'algo':12s} {'task':24s} {'setting':20s} " + " ".join(f"{s:>11s}" for s in STATES) + "   progress"
    )
    lines = [head]
    for (algo, task, setting), cell in sorted(table.items()):
        done, total = cell["updates"]
        prog = f"{100 * done / total:5.1f}%" if total else "    -"
        lines.append(
            f"{algo:12s} {task:24s} {setting:20s} "
            + " ".join(f"{cell[s]:11d}" for s in STATES)
            + f"   {prog} of {total} updates"
        )
    totals = {s: sum(c[s] for c in table.values()) for s in STATES}
    lines.append("total: " + ", ".join(f"{totals[s]} {s}" for s in STATES))
    failed = [f for c in table.values() for f in c["failures"]]
    if failed:
        lines.append("failed runs (resubmit with --retry-failed):")
        lines += [f"  {d}: {err}" for d, err in failed]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m benchmark.status",
        description=__doc__ + "\nstates:\n" + STATES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", help="results folder (the --out of benchmark.run)")
    p.add_argument(
        "--sweep",
        default=None,
        help="a sweep file (slurm/<name>.yaml): count its runs that were never "
        "started as missing. Default: the grid of every algo/task/setting "
        "and every seed found in the folder",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="datasets folder, to resolve --sweep's datasets. Default: "
        "$BENCHMARK_DATA_DIR, else the checkout's datasets/",
    )
    p.add_argument(
        "--no-squeue",
        action="store_true",
        help="do not ask squeue about queued and running jobs. Default: ask it where it is installed",
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON. Default: a text table")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if not out.is_dir() and (out.exists() or not args.sweep):  # a sweep's folder may not exist yet
        print(f"error: {out} is not a folder", file=sys.stderr)
        return 2
    expected = None
    if args.sweep:
        from benchmark.launch.execute import usage_error
        from benchmark.launch.plan import UsageError
        from benchmark.launch.sweeps import sweep_runs

        try:
            expected = [Path(r.dir) for r in sweep_runs(args.sweep, out, args.data_dir)]
        except (UsageError, KeyError) as exc:
            return usage_error(exc)
    from benchmark.launch.slurm import slurm_queue

    queue = None if args.no_squeue else slurm_queue()
    table = summarize(out, expected, queue)
    if not table:  # nothing found: non-zero, as for the analysis
        print(f"error: no run directory under {out} (nothing found)", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps(
                [{"algo": a, "task": t, "setting": s, **c} for (a, t, s), c in sorted(table.items())],
                indent=1,
            )
        )
    else:
        print(format_table(table))
    return 0


if __name__ == "__main__":
    entry(main)
