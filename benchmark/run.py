"""python -m benchmark.run --algos bc --tasks metaworld/drawer-open --seeds 0,1 --profile cpu

Runs every algorithm x task x seed through the offline-to-online protocol, one run directory each
(<out>/<task>/<algo>/<profile>[@<dataset>]/seed_<n>/). A finished run is skipped; an interrupted one
resumes from its checkpoint; a run another process holds is skipped. Everything is checked before
anything is written. SIGTERM, SIGINT (Ctrl-C) and SIGUSR2 finish the current update or episode,
checkpoint and exit; a second Ctrl-C stops at once (the run resumes from its last checkpoint).

exit codes (benchmark/launch/execute.py): 0 all runs done (or already done), 1 a run failed,
            2 bad input (nothing written), 3 interrupted by a signal (rerun to resume),
            4 a run is held by another live process
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import algorithms
from benchmark.core.cli import Parser, entry
from benchmark.core.livelog import add_cli_arguments as add_live_arguments
from benchmark.launch import execute, sweeps
from benchmark.launch.plan import (
    PLAN_DEFAULTS,
    UsageError,
    describe,
    load_imports,
    missing_datasets_note,
    plan,
    resolve_device,
)
from benchmark.tasks import suites
from benchmark.tasks.profiles import PROFILES


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, except where there is none to show (flags, unset options)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m benchmark.run", description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument(
        "--algos", default=PLAN_DEFAULTS["algos"], help="comma-separated algorithm names (see --list)"
    )
    p.add_argument(
        "--tasks",
        default=PLAN_DEFAULTS["tasks"],
        help="comma-separated task names or suites: all, metaworld, kitchen",
    )
    p.add_argument(
        "--seeds", default=PLAN_DEFAULTS["seeds"], help="comma-separated distinct non-negative integers"
    )
    p.add_argument(
        "--profile",
        default=PLAN_DEFAULTS["profile"],
        help=f"one of {', '.join(PROFILES)}: paper = the paper's sizes and schedule (a GPU run; "
        f"hours per run), cpu = small nets and few steps (minutes), smoke = seconds (tests)",
    )
    p.add_argument(
        "--out", default=PLAN_DEFAULTS["out"], help="results folder; one run directory per task/algo/seed"
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="datasets folder; unset: $BENCHMARK_DATA_DIR, else the checkout's datasets/",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="dataset name under --data-dir instead of the task's own; "
        "NAME-<task> is used where NAME holds none (kitchen/scripted -> "
        "kitchen/scripted-mixed for kitchen/mixed) "
        "(e.g. kitchen/mixed-100ep-seed0); several, comma-separated, plan one set of runs per dataset "
        "(the data-size study: kitchen/scripted-mixed,kitchen/scripted-mixed-25ep-seed0); with --sweep "
        "it replaces the sweep's datasets",
    )
    p.add_argument(
        "--device",
        default=PLAN_DEFAULTS["device"],
        help="auto, cpu or cuda (auto: cuda where an NVIDIA driver is found)",
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE_OR_FILE",
        help="import a module or .py file that registers algorithms (repeatable); recorded in config.json",
    )
    p.add_argument(
        "--set",
        dest="set",
        action="append",
        default=[],
        metavar="[ALGO.]FIELD=VALUE",
        help="override a config field (repeatable): ALGO.FIELD for one algorithm of the plan (--set "
        "moto.alpha=1), FIELD for every algorithm that has it; values are read as Python literals "
        "(1e-4, true, (8, 16)) and checked against the field's type and allowed values. Recorded in "
        "config.json; a run with overrides gets its own folder (<profile>,alpha=1.0) and its own label in "
        "the analysis (moto[alpha=1.0]). Fields: docs/algorithms/. schedule.FIELD=N sets the schedule on "
        "top of the profile's (offline_steps, updates_per_episode, online_steps or online_episodes, "
        "eval_every_episodes, eval_episodes; docs/protocol.md) (default: none)",
    )
    p.add_argument("--list", action="store_true", help="list algorithms, tasks and profiles, then exit")
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan (runs, updates, env steps) and exit"
    )
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress output (without a terminal, progress is a line every 30 s)",
    )
    add_live_arguments(p)
    sweeps.add_cli_arguments(p)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        load_imports(args.imports)
    except UsageError as exc:
        return execute.usage_error(exc)
    if args.list:
        print("algorithms:", ", ".join(algorithms.names()))
        for name, tasks in suites().items():
            print(f"suite {name}: {', '.join(tasks)}")
        print("profiles:", ", ".join(PROFILES))
        return 0
    if args.sweep or args.launcher != "inline" or "," in (args.dataset or ""):
        return sweeps.main(args, argv)  # sweeps expand one group per dataset
    try:
        runs = plan(args, resolve=not args.dry_run)
    except (UsageError, KeyError) as exc:
        return execute.usage_error(exc)
    for r in runs:
        print(describe(r, args.profile))
    paper_on_cpu_note(args, runs)
    if args.dry_run:
        note = missing_datasets_note(runs)
        if note:
            print(note)
        from benchmark.launch.estimate import print_estimate

        print_estimate([(args, runs)], None, Path(args.out))
        return execute.EXIT_OK
    return execute.run_inline(args, runs)


def paper_on_cpu_note(args, runs: list[dict]) -> None:
    """One line where the paper profile (the GPU profile) would run on this machine's CPU: the projected
    time where measured rates exist, and the laptop-sized profile. It asks nothing and goes on."""
    here = resolve_device("auto")  # what auto resolves to on this machine
    on_cpu = [r for r in runs if (here if r.device == "auto" else r.device) == "cpu"]
    if args.profile != "paper" or not on_cpu:
        return
    from benchmark.launch.estimate import estimate_hours

    hours = [estimate_hours(Path(args.out), r, args.profile)[0] for r in on_cpu]
    known = [h for h in hours if h is not None]
    projected = (
        f"projected {sum(known):,.0f} h for {len(known)} of {len(on_cpu)} run(s) from measured rates"
        if known
        else "no measured rate yet; a paper-size world-model update takes ~10-25 s on a CPU, days per run"
    )
    print(
        f"note: --profile paper is the GPU profile (the paper's sizes and schedule) and this machine has no "
        f"GPU: {projected}; --profile cpu runs the same code at laptop size (a MetaWorld run in ~15 min)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    entry(main)
