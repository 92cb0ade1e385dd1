"""python -m benchmark.run --algos bc --tasks metaworld/drawer-open --seeds 0,1 --profile cpu

Runs every algorithm x task x seed through the offline-to-online protocol, one run directory each
(<out>/<task>/<algo>/<profile>[@<dataset>]/seed_<n>/). A finished run is skipped; an interrupted one
resumes from its checkpoint; a run another process holds is skipped. Everything is checked before
anything is written. SIGTERM, SIGINT (Ctrl-C) and SIGUSR2 finish the current update or episode,
checkpoint and exit; a second Ctrl-C stops at once (the run resumes from its last checkpoint).

exit codes: 0 all runs done (or already done), 1 a run failed, 2 bad input (nothing written),
            3 interrupted by a signal (rerun to resume), 4 a run is held by another live process
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import traceback
from pathlib import Path

import algorithms
from benchmark import results
from benchmark.datasets.format import DatasetError, verify_dataset
from benchmark.livelog import LiveLog
from benchmark.livelog import add_cli_arguments as add_live_arguments
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


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is present (without importing torch)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def resolve_device(device: str, here: bool = True) -> str:
    """``auto`` -> ``cuda`` where an NVIDIA driver is present, else ``cpu``. ``here``: the runs execute on
    this machine, so ``cuda`` without a GPU is an error (a launcher that submits elsewhere passes False and
    keeps ``auto`` for the machine that runs it to resolve)."""
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, got {device!r}")
    if not here:
        return device
    if device == "cuda" and not has_nvidia_gpu():
        raise UsageError("--device cuda: this machine has no NVIDIA GPU (no driver found); use --device cpu or auto")
    if device != "auto":
        return device
    return "cuda" if has_nvidia_gpu() else "cpu"


def load_imports(imports: list[str]) -> None:
    for spec in imports:
        try:
            algorithms.import_plugin(spec)
        except (ImportError, FileNotFoundError) as exc:
            raise UsageError(str(exc)) from exc
        except SyntaxError as exc:  # the user's file does not parse: where, and what
            raise UsageError(f"--import {spec}: {exc.filename}, line {exc.lineno}: {exc.msg}") from exc


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--out {out}: {parent} is not writable")


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
    device = resolve_device(args.device, here=resolve)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    check_out(Path(args.out))
    runs, verified = [], set()
    for task in tasks:
        spec = get_task(task)
        name = args.dataset or task
        per_task = f"{name}-{task.split('/', 1)[1]}"  # e.g. kitchen/scripted -> kitchen/scripted-mixed
        if args.dataset and not (data_dir / name / "manifest.json").exists() and \
                (data_dir / per_task / "manifest.json").exists():
            name = per_task
        dataset = data_dir / name
        absent = not (dataset / "manifest.json").exists()
        if not absent and dataset not in verified:
            try:
                manifest = verify_dataset(dataset)  # every episode's checksum, shapes and dtypes
            except DatasetError as exc:
                raise UsageError(f"invalid dataset for {task} at {dataset}: {exc}") from exc
            if manifest["action_dim"] != spec.action_dim:
                raise UsageError(f"dataset {dataset} has {manifest['action_dim']}-dim actions; {task} has "
                                 f"{spec.action_dim}")
            verified.add(dataset)
        schedule = schedule_for(spec, args.profile)
        for algo in algos:
            cfg = algorithms.make_config(algo, args.profile) if resolve else None
            for seed in seeds:
                runs.append({"spec": spec, "algo": algo, "cfg": cfg, "schedule": schedule, "seed": seed,
                             "dataset": dataset, "env_overrides": env_overrides_for(spec, args.profile),
                             "device": device, "imports": list(args.imports), "missing_dataset": absent,
                             "dir": results.run_dir(args.out, task, algo, seed, args.profile,
                                                    name if args.dataset else None)})
    missing = missing_datasets(runs)
    if missing and not getattr(args, "dry_run", False):  # a dry run shows the plan with the gaps marked
        raise UsageError(missing_datasets_message(missing))
    return runs


def missing_datasets_message(missing: dict[str, dict[str, Path]]) -> str:
    """One line naming every missing dataset ({domain: {task: path}}) and how to get each domain's."""
    where = ", ".join(f"{task} at {path}" for tasks in missing.values() for task, path in tasks.items())
    how = []
    if "metaworld" in missing:
        how.append(f"MetaWorld: `python -m benchmark.datasets generate {','.join(missing['metaworld'])}` (scripted "
                   f"demonstrations, seconds per task)")
    if "kitchen" in missing:
        how.append("Kitchen: import data you hold with `python -m benchmark.datasets import kitchen --format "
                   "{d4rl,minari,npz} --source ...` (D4RL HDF5, Minari, D5RL NPZ; see --help), or generate our "
                   "scripted demonstrations with `python -m benchmark.datasets generate kitchen` and run with "
                   "`--dataset kitchen/scripted`")
    return f"missing dataset(s) (no manifest.json): {where}. " + "; ".join(how)


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_HELD = 0, 1, 2, 3, 4
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


class Interrupted(Exception):
    """The run stopped on a signal after checkpointing; rerunning resumes it."""


class ConfigMismatch(Exception):
    pass


def execute(r: dict, profile: str, progress: bool = True, live_factory=None, stop_signals=STOP_SIGNALS) -> str:
    """Run (or resume) one run under its lock; returns a one-line outcome. Raises ``Interrupted``
    after a signal, ``RunHeld`` if another process holds it, ``ConfigMismatch`` if its directory holds
    a different config, and re-raises a run's error after recording it in ``status.json``.
    ``stop_signals``: the signals that stop the run at a safe point (a SLURM job uses SIGUSR2 only;
    see ``benchmark.launch``)."""
    d: Path = r["dir"]
    if results.read_status(d).get("status") == "done":
        return "skipped (done)"
    d.mkdir(parents=True, exist_ok=True)
    lock = results.RunLock(d)
    lock.acquire()  # raises RunHeld
    try:
        if results.read_status(d).get("status") == "done":  # finished by another process meanwhile
            return "skipped (done)"
        config = resolved_config(r["spec"], r["algo"], r["cfg"], r["schedule"], r["seed"], profile,
                                 r["env_overrides"], r["dataset"], device=r["device"], imports=r["imports"])
        config["config_hash"] = results.config_hash(config)
        if (d / "config.json").exists():
            diff = results.identity_diff(json.loads((d / "config.json").read_text()), config)
            if diff:
                raise ConfigMismatch(f"{d} holds a run with another config ({'; '.join(diff)}); use another --out, "
                                     f"or delete the directory to start over")
        else:
            results.write_json(d / "config.json", config)
        results.set_status(d, "running", **results.RunLock.holder_info())
        live = live_factory(d, config) if live_factory else None
        runner = Runner(r["spec"], r["algo"], r["cfg"], r["schedule"], r["seed"], d, r["dataset"],
                        r["env_overrides"], device=r["device"], progress=progress,
                        checkpoint_every=1 if profile == "smoke" else 10,
                        log_every=1 if profile == "smoke" else 100, live=live)
        stops = []

        def on_signal(signum, frame):
            name = signal.Signals(signum).name
            if stops and signum == signal.SIGINT:  # a second Ctrl-C: stop now, from the last checkpoint
                raise KeyboardInterrupt
            stops.append(name)
            runner.request_stop(name)
            print(f"{d}: {name} received, stopping after the current update or episode", file=sys.stderr)

        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, on_signal) for s in stop_signals}
        try:
            counters = runner.run()
        except KeyboardInterrupt:
            results.set_status(d, "interrupted", signal="SIGINT", note="stopped at once; resumes from the last checkpoint")
            raise Interrupted(f"interrupted (SIGINT twice): resumes from the last checkpoint") from None
        except BaseException as exc:
            results.set_status(d, "failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if runner.stop_reason is not None:
            results.set_status(d, "interrupted", signal=runner.stop_reason, **counters)
            raise Interrupted(f"interrupted ({runner.stop_reason}) at gradient step {counters['grad_step']}, "
                              f"episode {counters['episodes']}: checkpointed; rerun the same command to resume")
        results.set_status(d, "done", **counters)
        return "done"
    finally:
        lock.release()


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, except where there is none to show (flags, unset options)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


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
    p.add_argument("--data-dir", default=None, help="datasets folder; unset: $BENCHMARK_DATA_DIR, else the checkout's datasets/")
    p.add_argument("--dataset", default=None, help="dataset name under --data-dir instead of the task's own; "
                                                    "NAME-<task> is used where NAME holds none (kitchen/scripted -> "
                                                    "kitchen/scripted-mixed for kitchen/mixed) "
                                                    "(e.g. kitchen/mixed-100ep-seed0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (auto: cuda where an NVIDIA driver is found)")
    p.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE_OR_FILE",
                   help="import a module or .py file that registers algorithms (repeatable); recorded in config.json")
    p.add_argument("--list", action="store_true", help="list algorithms, tasks and profiles, then exit")
    p.add_argument("--dry-run", action="store_true", help="print the plan (runs, updates, env steps) and exit")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress output (without a terminal, progress is a line every 30 s)")
    add_live_arguments(p)
    from benchmark import launch

    launch.add_cli_arguments(p)
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
    if args.sweep or args.launcher != "inline":
        from benchmark import launch

        return launch.main(args, argv)
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
              f"[{args.profile}, {r['device']}] -> {r['dir']}" + ("  [dataset missing]" if r["missing_dataset"] else ""))
    paper_on_cpu_note(args, runs)
    if args.dry_run:
        missing = missing_datasets(runs)
        if missing:
            print(f"to get the missing data: {missing_datasets_message(missing)}")
        from benchmark import launch

        launch.print_estimate([(args, runs)], None, Path(args.out))
        return EXIT_OK
    return run_inline(args, runs)


def paper_on_cpu_note(args, runs: list[dict]) -> None:
    """One line where the paper profile (the GPU profile) would run on this machine's CPU: the projected
    time where measured rates exist, and the laptop-sized profile. It asks nothing and goes on."""
    here = resolve_device("auto")  # what auto resolves to on this machine
    on_cpu = [r for r in runs if (here if r["device"] == "auto" else r["device"]) == "cpu"]
    if args.profile != "paper" or not on_cpu:
        return
    from benchmark.launch import estimate_hours

    hours = [estimate_hours(Path(args.out), r, args.profile)[0] for r in on_cpu]
    known = [h for h in hours if h is not None]
    projected = (f"projected {sum(known):,.0f} h for {len(known)} of {len(on_cpu)} run(s) from measured rates"
                 if known else "no measured rate yet; a paper-size world-model update takes ~10-25 s on a CPU, "
                               "days per run")
    print(f"note: --profile paper is the GPU profile (the paper's sizes and schedule) and this machine has no GPU: "
          f"{projected}; --profile cpu runs the same code at laptop size (a MetaWorld run in ~15 min)",
          file=sys.stderr)


def missing_datasets(runs: list[dict]) -> dict[str, dict[str, Path]]:
    """{domain: {task: dataset path}} of the planned runs whose dataset is missing (dry runs only)."""
    out: dict[str, dict[str, Path]] = {}
    for r in runs:
        if r["missing_dataset"]:
            out.setdefault(r["spec"].domain, {})[r["spec"].name] = r["dataset"]
    return out


def run_inline(args, runs: list[dict]) -> int:
    """Executes the planned runs one after another in this process; returns the exit code."""
    codes = []
    for r in runs:
        try:
            outcome = execute(r, args.profile, progress=not args.no_progress,
                              live_factory=lambda d, config: LiveLog.from_args(d, args, config))
            codes.append(EXIT_OK)
        except Interrupted as exc:
            print(f"{r['dir']}: {exc}", file=sys.stderr)
            return EXIT_INTERRUPTED  # a signal stops the whole sweep
        except results.RunHeld as exc:
            outcome = f"skipped: {exc}"
            codes.append(EXIT_HELD)
        except ConfigMismatch as exc:
            print(f"error: {exc}", file=sys.stderr)
            codes.append(EXIT_USAGE)
            continue
        except Exception as exc:
            codes.append(EXIT_FAILED)
            print(f"{r['dir']}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        print(f"{r['dir']}: {outcome}")
    for code in (EXIT_FAILED, EXIT_USAGE, EXIT_HELD):
        if code in codes:
            return code
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
