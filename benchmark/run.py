"""python -m benchmark.run --algos bc --tasks metaworld/drawer-open --seeds 0,1 --profile cpu

Runs every algorithm x task x seed through the offline-to-online protocol, one run directory each
(``<out>/<task>/<algo>/seed_<n>/``). A finished run is skipped; an interrupted one resumes from its
checkpoint. Everything is checked before anything is written.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import traceback
from pathlib import Path

import algorithms
from benchmark import results
from benchmark.datasets.format import DatasetError, read_manifest
from benchmark.profiles import PROFILES, env_overrides_for, schedule_for
from benchmark.protocol import Runner, resolved_config
from benchmark.tasks import default_data_dir, get_task, resolve_tasks, suites


class UsageError(Exception):
    pass


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated non-negative integers (e.g. 0,1,2), got {text!r}")
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds must be distinct non-negative integers (e.g. 0,1,2), got {text!r}")
    return seeds


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` where an NVIDIA driver is present, else ``cpu`` (without importing torch)."""
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device != "auto":
        return device
    return "cuda" if Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") else "cpu"


def load_imports(imports: list[str]) -> None:
    for spec in imports:
        try:
            algorithms.import_plugin(spec)
        except (ImportError, FileNotFoundError) as exc:
            raise UsageError(str(exc)) from exc


def plan(args, resolve: bool = True) -> list[dict]:
    """Every run of the sweep, checked. ``resolve=False`` (dry runs) skips building configs, which
    would import the algorithms' frameworks."""
    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; known: {', '.join(PROFILES)}")
    algos = list(dict.fromkeys(a.strip() for a in args.algos.split(",") if a.strip()))
    if not algos:
        raise UsageError("--algos is empty; see --list")
    for a in algos:
        if not algorithms.exists(a):
            raise UsageError(f"unknown algorithm {a!r}; known: {', '.join(algorithms.names())} "
                             f"(add your own with --import FILE.py)")
    tasks = resolve_tasks(args.tasks)
    seeds = parse_seeds(args.seeds)
    device = resolve_device(args.device)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    runs = []
    for task in tasks:
        spec = get_task(task)
        dataset = data_dir / (args.dataset or task)
        try:
            read_manifest(dataset)
        except DatasetError as exc:
            how = (f"python -m benchmark.datasets generate {task}" if spec.domain == "metaworld"
                   else "python -m benchmark.datasets import kitchen --format {d4rl,minari,npz} --source ...")
            raise UsageError(f"missing dataset for {task} at {dataset} ({exc.args[0].split('.')[0]}); "
                             f"create it with `{how}`") from exc
        schedule = schedule_for(spec, args.profile)
        for algo in algos:
            cfg = algorithms.make_config(algo, args.profile) if resolve else None
            for seed in seeds:
                runs.append({"spec": spec, "algo": algo, "cfg": cfg, "schedule": schedule, "seed": seed,
                             "dataset": dataset, "env_overrides": env_overrides_for(spec, args.profile),
                             "device": device, "imports": list(args.imports),
                             "dir": results.run_dir(args.out, task, algo, seed)})
    return runs


def execute(r: dict, profile: str, progress: bool = True) -> str:
    d: Path = r["dir"]
    status = results.read_status(d).get("status")
    if status == "done":
        return "skipped (done)"
    d.mkdir(parents=True, exist_ok=True)
    config = resolved_config(r["spec"], r["algo"], r["cfg"], r["schedule"], r["seed"], profile,
                             r["env_overrides"], r["dataset"], device=r["device"], imports=r["imports"])
    if not (d / "config.json").exists():
        results.write_json(d / "config.json", config)
    results.set_status(d, "running")
    runner = Runner(r["spec"], r["algo"], r["cfg"], r["schedule"], r["seed"], d, r["dataset"],
                    r["env_overrides"], device=r["device"], progress=progress,
                    checkpoint_every=1 if profile == "smoke" else 10,
                    log_every=1 if profile == "smoke" else 100)
    try:
        counters = runner.run()
    except BaseException as exc:
        step = getattr(exc, "step", None)
        results.set_status(d, "failed", error=f"{type(exc).__name__}: {exc}", step=step,
                           traceback=traceback.format_exc())
        raise
    results.set_status(d, "done", **counters)
    return "done"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmark.run", description=__doc__, formatter_class=_HelpFormatter)
    p.add_argument("--algos", default="bc", help="comma-separated algorithm names (see --list)")
    p.add_argument("--tasks", default="metaworld/drawer-open",
                   help="comma-separated task names or suites: all, metaworld, kitchen")
    p.add_argument("--seeds", default="0", help="comma-separated distinct non-negative integers")
    p.add_argument("--profile", default="paper",
                   help=f"one of {', '.join(PROFILES)}: paper = the paper's sizes and schedule (a GPU run; "
                        f"hours per run), cpu = small nets and few steps (minutes), smoke = seconds (tests)")
    p.add_argument("--out", default="results", help="results folder; one run directory per task/algo/seed")
    p.add_argument("--data-dir", default=None, help="datasets folder (default: $BENCHMARK_DATA_DIR, else ./datasets)")
    p.add_argument("--dataset", default=None, help="dataset name under --data-dir instead of the task's own "
                                                    "(e.g. kitchen/mixed-100ep-seed0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (auto: cuda where an NVIDIA driver is found)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="import a module or .py file that registers algorithms (repeatable); recorded in config.json")
    p.add_argument("--list", action="store_true", help="list algorithms, tasks and profiles, then exit")
    p.add_argument("--dry-run", action="store_true", help="print the plan (runs, updates, env steps) and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        load_imports(args.imports)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print("algorithms:", ", ".join(algorithms.names()))
        for name, tasks in suites().items():
            print(f"suite {name}: {', '.join(tasks)}")
        print("profiles:", ", ".join(PROFILES))
        return 0
    try:
        runs = plan(args, resolve=not args.dry_run)
    except (UsageError, KeyError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    for r in runs:
        s = r["schedule"]
        ep_len = r["env_overrides"].get("episode_length", r["spec"].episode_length)
        env_steps = s.online_episodes * ep_len * r["spec"].action_repeat
        print(f"{r['spec'].name:24s} {r['algo']:10s} seed {r['seed']}: {s.offline_steps} offline + "
              f"{s.online_episodes}x{s.updates_per_episode} online updates, {env_steps} env steps "
              f"[{args.profile}, {r['device']}] -> {r['dir']}")
    if args.dry_run:
        return 0
    failed = 0
    for r in runs:
        try:
            print(f"{r['dir']}: {execute(r, args.profile, progress=not args.no_progress)}")
        except Exception as exc:
            failed += 1
            print(f"{r['dir']}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
