"""``python -m benchmark.perf versus --base COMMIT``: whole runs of this tree against another commit's,
side by side on one machine, and the ratio of their wall times.

For each algorithm, ``--pairs`` pairs of the same run (``python -m benchmark.run`` at ``--profile``, seed 0,
a fresh results folder each): one with the code of ``--base`` (a ``git worktree`` of that commit, made in a
temporary folder unless ``--base-dir`` names a checkout), one with this tree's. The two runs of a pair run
at the same time, each pinned to its own core (``taskset``; on one core, one after the other), and swap
cores from one pair to the next, so both sides see the same machine. Each run has one torch thread
(``OMP_NUM_THREADS=1``). Prints every pair's wall seconds (the process's, and the run's own from
metrics.csv), its ratios base / new (above 1: this tree is faster), the median ratio per algorithm, and
each side's evaluation successes (the same where the two trees compute the same numbers; where floats are
summed in another order a whole run's learning diverges, so these differ by seed-to-seed noise).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def _command(tree: Path, algo: str, task: str, profile: str, out: Path, data_dir: Path, core: int | None):
    cmd = [sys.executable, "-m", "benchmark.run", "--algos", algo, "--tasks", task, "--profile", profile]
    cmd += [
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        "--no-progress",
        "--device",
        "cpu",
    ]
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core), *cmd]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(tree),
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
    }
    return cmd, env


def _evals(out: Path) -> list[float]:
    rows = []
    for path in out.rglob("metrics.csv"):
        with open(path, newline="") as f:
            rows += [float(r["eval_success"]) for r in csv.DictReader(f) if r["phase"] == "eval"]
    return rows


def _wall(out: Path) -> float:
    """The run's own wall time (metrics.csv's last ``wall_time``: the loop, without the process start)."""
    last = 0.0
    for path in out.rglob("metrics.csv"):
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                last = max(last, float(r["wall_time"] or 0.0))
    return last


def run_pair(trees: dict, algo: str, task: str, profile: str, root: Path, data_dir: Path, i: int) -> dict:
    """The two runs of pair ``i`` at once (cores swapped on odd pairs); wall seconds and evaluations."""
    cores = _cores()
    order = ["base", "new"] if i % 2 == 0 else ["new", "base"]
    procs = {}
    for side, core in zip(order, cores[:2] if len(cores) >= 2 else [None, None]):
        out = root / f"{algo}-{side}-{i}"
        cmd, env = _command(trees[side], algo, task, profile, out, data_dir, core)
        log = open(root / f"{algo}-{side}-{i}.log", "w")
        procs[side] = (
            subprocess.Popen(cmd, cwd=trees[side], env=env, stdout=log, stderr=subprocess.STDOUT),
            time.time(),
            out,
            log,
        )
        if len(cores) < 2:  # one core: one run after the other
            procs[side][0].wait()
    ended: dict[str, float] = {}
    while len(ended) < len(procs):  # each side's own end time (they rarely end together)
        for side, (proc, t0, _, _) in procs.items():
            if side not in ended and proc.poll() is not None:
                ended[side] = time.time() - t0
        time.sleep(0.5)
    row = {"algo": algo, "pair": i}
    for side, (proc, t0, out, log) in procs.items():
        log.close()
        if proc.returncode != 0:
            raise RuntimeError(
                f"{side} run of {algo} exited {proc.returncode}; see {root / f'{algo}-{side}-{i}.log'}"
            )
        row[f"{side} s"] = round(ended[side], 1)
        row[f"{side} run s"] = round(_wall(out), 1)
        row[f"{side} evals"] = " ".join(f"{v:.1f}" for v in _evals(out))
    row["base / new"] = round(row["base s"] / row["new s"], 3)
    row["base / new (run)"] = round(row["base run s"] / row["new run s"], 3)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmark.perf versus",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--base", default="86fd8c1", help="the commit to compare against (default: %(default)s)")
    p.add_argument("--base-dir", default=None, help="a checkout of it to use instead of a new worktree")
    p.add_argument(
        "--algos", default="moto,dreamerv2", help="comma-separated algorithms (default: %(default)s)"
    )
    p.add_argument("--task", default="metaworld/drawer-open", help="one task (default: %(default)s)")
    p.add_argument("--profile", default="cpu", help="the runs' profile (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=3, help="pairs per algorithm (default: %(default)s)")
    p.add_argument(
        "--data-dir", default=None, help="datasets folder (default: $BENCHMARK_DATA_DIR, else datasets/)"
    )
    p.add_argument(
        "--keep", default=None, help="keep the runs and logs under this folder (default: a temporary one)"
    )
    args = p.parse_args(argv)
    if args.pairs < 1:
        p.error(f"--pairs must be at least 1, got {args.pairs}")
    from benchmark.core.console import print_table
    from benchmark.tasks import default_data_dir

    data_dir = Path(args.data_dir).resolve() if args.data_dir else default_data_dir().resolve()
    if not (data_dir / args.task / "manifest.json").exists():
        p.error(
            f"no dataset for {args.task} under {data_dir}: python -m benchmark.datasets generate {args.task}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep).resolve() if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        base = Path(args.base_dir).resolve() if args.base_dir else root / "base-tree"
        if not args.base_dir and not base.exists():
            made = subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "--detach", str(base), args.base],
                capture_output=True,
                text=True,
            )
            if made.returncode != 0:
                p.error(f"git worktree add {args.base}: {made.stderr.strip()}")
        trees = {"base": base, "new": REPO}
        print(
            f"{args.profile} runs of {args.task}: {args.base} ({base}) against this tree ({REPO}), "
            f"cores {_cores()}"
        )
        rows = []
        try:
            for algo in [a.strip() for a in args.algos.split(",") if a.strip()]:
                for i in range(args.pairs):
                    rows.append(run_pair(trees, algo, args.task, args.profile, root, data_dir, i))
                    print(rows[-1], flush=True)
        finally:
            if not args.base_dir:
                subprocess.run(
                    ["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)], capture_output=True
                )
    print_table(rows, list(rows[0]))
    for algo in dict.fromkeys(r["algo"] for r in rows):
        ratios = [r["base / new"] for r in rows if r["algo"] == algo]
        print(f"{algo}: median base / new wall time {statistics.median(ratios):.3f} over {len(ratios)} pairs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
