"""Run-hours and GPU-hours of a plan, from the ``steps_per_s`` rows of runs already in a results folder."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from benchmark.core.protocol import RunSpec
from benchmark.core.rundir import find_runs, run_key
from benchmark.launch.slurm import runs_per_job


# -- estimates ---------------------------------------------------------------------------------
def measured_rates(out: Path, algo: str, profile: str, task: str, domain: str) -> tuple[dict, str] | None:
    """Gradient updates per second in the offline and online phases, from the ``steps_per_s`` rows of
    run directories of the same algorithm and profile under ``out`` (same task first, else same domain,
    else any task); the online rate covers episode collection and evaluation. None without any."""
    candidates = {"task": [], "domain": [], "any": []}
    for d in find_runs(out) if Path(out).is_dir() else []:
        t, a, setting, _ = run_key(d, out)
        if a != algo or setting.split("@")[0] != profile or not (d / "metrics.csv").exists():
            continue
        candidates["task" if t == task else "domain" if t.split("/")[0] == domain else "any"].append(d)
    for basis, dirs in candidates.items():
        steps = {"offline": 0.0, "online": 0.0}
        secs = {"offline": 0.0, "online": 0.0}
        for d in dirs:
            prev = 0
            with open(d / "metrics.csv", newline="") as f:
                for row in csv.DictReader(f):
                    step = int(float(row["grad_step"] or 0))
                    rate = float(row["steps_per_s"]) if row.get("steps_per_s") else 0.0
                    if row["phase"] in steps and rate > 0 and step > prev:
                        steps[row["phase"]] += step - prev
                        secs[row["phase"]] += (step - prev) / rate
                    prev = step
        if steps["offline"] or steps["online"]:
            rates = {ph: steps[ph] / secs[ph] for ph in steps if secs[ph] > 0}
            rates.setdefault("online", rates.get("offline"))
            rates.setdefault("offline", rates.get("online"))
            where = {"task": task, "domain": f"other {domain} tasks", "any": "other tasks"}[basis]
            return rates, f"{len(dirs)} {algo}/{profile} run(s) on {where}"
    return None


def estimate_hours(out: Path, r: RunSpec, profile: str) -> tuple[float | None, str]:
    s = r.schedule
    m = measured_rates(Path(out), r.algo, profile, r.task.name, r.task.domain)
    if m is None:
        return None, "no measurement"
    rates, basis = m
    secs = s.offline_steps / rates["offline"] + s.online_episodes * s.updates_per_episode / rates["online"]
    return secs / 3600, basis


def print_estimate(
    groups: list[tuple[argparse.Namespace, list[RunSpec]]],
    res: dict | None,
    out: Path,
    launched: set | None = None,
) -> None:
    """Totals of the plan: runs, jobs, gradient and env steps, and run-hours / GPU-hours from
    measured steps/s where run directories have them."""
    n_runs = n_jobs = grad = env = 0
    hours, gpu_hours, unmeasured, bases = 0.0, 0.0, set(), set()
    for ns, runs in groups:
        todo = [r for r in runs if launched is None or r.dir in launched]
        rpj = runs_per_job(ns, res) if res else 1
        n_runs += len(todo)
        n_jobs += -(-len(todo) // rpj)
        for r in todo:
            s = r.schedule
            ep_len = r.env_overrides.get("episode_length", r.task.episode_length)
            grad += s.offline_steps + s.online_episodes * s.updates_per_episode
            env += s.online_episodes * ep_len * r.task.action_repeat
            h, basis = estimate_hours(out, r, ns.profile)
            if h is None:
                unmeasured.add(f"{r.algo}/{ns.profile}")
                continue
            bases.add(basis)
            hours += h
            gpu_hours += h * (res.get("gpus_per_node", 1) if res else 1) / rpj
    print(f"plan: {n_runs} runs in {n_jobs} jobs, {grad:,} gradient updates, {env:,} env steps")
    if bases:
        print(
            f"estimate: {_hours(hours)} run-hours"
            + (f", {_hours(gpu_hours)} GPU-hours" if res else "")
            + f" for the measured runs (from steps/s of {'; '.join(sorted(bases))})"
        )
    if unmeasured:
        print(
            f"estimate: no measurement for {', '.join(sorted(unmeasured))} (no run directory of that "
            f"algorithm and profile under {out} has steps_per_s rows yet)"
        )


def _hours(h: float) -> str:
    return f"{h:,.1f}" if h >= 1 else f"{h:.2g}"
