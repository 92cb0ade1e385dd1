"""python -m benchmark.status results/

What a results folder holds: for every algorithm x task (x setting: profile[@dataset]), how many runs
are done / running / queued / interrupted / failed / missing, the progress (gradient updates done over
updates planned), and the error of each failed run.

  done         status.json says done
  running      a live process holds the run's lock (seen in /proc/locks on this host), or the run
               says it runs on another host under a SLURM job that squeue lists as running
  queued       not started, but a SLURM job that will run it is pending (``slurm_job.json``, squeue)
  interrupted  stopped by a signal, or its process died (its lock is free): rerunning resumes it
  failed       status.json says failed (rerun with --retry-failed)
  missing      in the expected grid (--sweep, or every seed seen in the folder) but never started

Reads run directories only; imports neither JAX nor PyTorch.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

STATES = ("done", "running", "queued", "interrupted", "failed", "missing")
SLURM_JOB_FILE = "slurm_job.json"  # written into a run directory by the SLURM launcher at submission


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def local_lock_held(run_dir: Path) -> bool:
    """Whether a process on this host holds the run's flock, read from /proc/locks (without taking
    the lock: a probe that took it would make a starting run skip itself)."""
    lock = Path(run_dir) / ".lock"
    try:
        st = lock.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(line.split()[1] == "FLOCK" and key in line.split() for line in table.splitlines()
               if len(line.split()) > 5)


def slurm_queue() -> dict[str, str] | None:
    """Job id -> state for every job squeue lists (array ranges expanded), or None without squeue."""
    if shutil.which("squeue") is None:
        return None
    try:
        p = subprocess.run(["squeue", "-h", "-o", "%i|%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if p.returncode != 0:
        return None
    from submitit.slurm.slurm import read_job_id  # understands 123_[4-7%2]

    queue = {}
    for line in p.stdout.splitlines():
        if "|" not in line:
            continue
        jid, state = line.split("|", 1)
        for parts in read_job_id(jid.strip()):
            if len(parts) == 1:
                queue[parts[0]] = state
            else:
                for i in range(int(parts[1]), int(parts[-1]) + 1):
                    queue[f"{parts[0]}_{i}"] = state
    return queue


def run_state(d: Path, queue: dict[str, str] | None = None) -> tuple[str, dict]:
    """(state, status.json) of one run directory; see the module docstring for the states."""
    d = Path(d)
    status = _read_json(d / "status.json")
    s = status.get("status")
    if s == "done":
        return "done", status
    if local_lock_held(d):
        return "running", status
    if s == "running" and status.get("host") not in (None, socket.gethostname()):
        job = status.get("slurm_job")
        if queue is None or (job and queue.get(str(job)) == "RUNNING"):
            return "running", status  # another host: trust it unless squeue says otherwise
    submitted = _read_json(d / SLURM_JOB_FILE)
    if queue is not None and submitted.get("job_id") and str(submitted["job_id"]) in queue:
        state = queue[str(submitted["job_id"])]
        if s in (None, "interrupted", "running") and state != "COMPLETING":
            return ("running" if state == "RUNNING" and s == "running" else "queued"), status
    if s == "failed":
        return "failed", status
    if s in ("interrupted", "running"):
        return "interrupted", status  # "running" with a free lock: its process died
    return "missing", status


def progress(d: Path) -> tuple[int, int]:
    """(gradient updates done, updates planned) from metrics.csv and config.json."""
    cfg = _read_json(Path(d) / "config.json")
    sch = cfg.get("schedule") or {}
    total = int(sch.get("offline_steps", 0)) + int(sch.get("online_steps", 0))
    done = 0
    try:
        with open(Path(d) / "metrics.csv", newline="") as f:
            for row in csv.DictReader(f):
                done = max(done, int(float(row.get("grad_step") or 0)))
    except (OSError, ValueError):
        pass
    if _read_json(Path(d) / "status.json").get("status") == "done":
        done = total or done
    return done, total


def find_runs(out: Path) -> list[Path]:
    """Run directories under a results folder: <out>/<domain>/<task>/<algo>/<setting>/seed_<n>."""
    return sorted(p for p in Path(out).glob("*/*/*/*/seed_*") if p.is_dir())


def _key(out: Path, d: Path) -> tuple[str, str, str, int]:
    rel = d.relative_to(out).parts
    return f"{rel[0]}/{rel[1]}", rel[2], rel[3], int(rel[4].split("_", 1)[1])


def summarize(out: Path, expected: list[Path] | None = None, queue: dict | None = None) -> dict:
    """{(algo, task, setting): {state: count, "updates": (done, total), "failures": [(dir, error)]}}."""
    out = Path(out)
    found = find_runs(out)
    if expected is None:  # the grid of every cell seen x every seed seen
        keys = [_key(out, d) for d in found]
        cells = {(t, a, s) for t, a, s, _ in keys}
        seeds = {k[3] for k in keys}
        expected = [out / t / a / s / f"seed_{n}" for t, a, s in cells for n in seeds]
    table: dict = defaultdict(lambda: {**{s: 0 for s in STATES}, "updates": [0, 0], "failures": []})
    for d in sorted(set(found) | set(map(Path, expected))):
        task, algo, setting, _ = _key(out, d)
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
    head = f"{'algo':12s} {'task':24s} {'setting':20s} " + " ".join(f"{s:>11s}" for s in STATES) + "   progress"
    lines = [head]
    for (algo, task, setting), cell in sorted(table.items()):
        done, total = cell["updates"]
        prog = f"{100 * done / total:5.1f}%" if total else "    -"
        lines.append(f"{algo:12s} {task:24s} {setting:20s} " + " ".join(f"{cell[s]:11d}" for s in STATES)
                     + f"   {prog} of {total} updates")
    totals = {s: sum(c[s] for c in table.values()) for s in STATES}
    lines.append("total: " + ", ".join(f"{totals[s]} {s}" for s in STATES))
    failed = [f for c in table.values() for f in c["failures"]]
    if failed:
        lines.append("failed runs (resubmit with --retry-failed):")
        lines += [f"  {d}: {err}" for d, err in failed]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmark.status", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="results folder (the --out of benchmark.run)")
    p.add_argument("--sweep", default=None, help="a sweep file (slurm/<name>.yaml): count its runs that were never "
                                                  "started as missing. Default: the grid of every algo/task/setting "
                                                  "and every seed found in the folder")
    p.add_argument("--data-dir", default=None, help="datasets folder, to resolve --sweep's datasets. Default: "
                                                     "$BENCHMARK_DATA_DIR, else the checkout's datasets/")
    p.add_argument("--no-squeue", action="store_true", help="do not ask squeue about queued and running jobs. "
                                                           "Default: ask it where it is installed")
    p.add_argument("--json", action="store_true", help="print the table as JSON. Default: a text table")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    if not out.is_dir():
        print(f"error: {out} is not a folder", file=sys.stderr)
        return 2
    expected = None
    if args.sweep:
        from benchmark import launch, run

        try:
            expected = [Path(r["dir"]) for r in launch.sweep_runs(args.sweep, out, args.data_dir)]
        except (run.UsageError, KeyError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    queue = None if args.no_squeue else slurm_queue()
    table = summarize(out, expected, queue)
    if args.json:
        print(json.dumps([{"algo": a, "task": t, "setting": s, **c} for (a, t, s), c in sorted(table.items())],
                         indent=1))
    else:
        print(format_table(table) if table else f"no runs under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
