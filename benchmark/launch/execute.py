"""One run in this process, and the one map from a run's outcome to an exit code.

    exit codes: 0 done (or already done), 1 failed, 2 bad input (nothing written) or a changed config,
                3 interrupted by a signal (rerun to resume), 4 held by another live process

``execute`` runs (or resumes) a planned run under its lock; ``run_one`` turns its outcome into an exit
code and a line; ``combine`` turns several runs' codes into one. ``python -m benchmark.launch child
'<json>'`` (``child_main``) is how the local and SLURM launchers start a run.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import traceback
from pathlib import Path

from benchmark.core import rundir
from benchmark.core.livelog import LiveLog
from benchmark.core.protocol import Runner, RunSpec, resolved_config
from benchmark.launch.plan import UsageError, load_imports, plan, plan_args

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_HELD = 0, 1, 2, 3, 4
EXIT_MEANING = {
    EXIT_OK: "done",
    EXIT_FAILED: "failed",
    EXIT_USAGE: "bad input or changed config",
    EXIT_INTERRUPTED: "interrupted (resumes when rerun)",
    EXIT_HELD: "held by another process",
}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


class Interrupted(Exception):
    """The run stopped on a signal after checkpointing; rerunning resumes it."""


class ConfigMismatch(Exception):
    pass


def execute(
    r: RunSpec, profile: str, progress: bool = True, live_factory=None, stop_signals=STOP_SIGNALS
) -> str:
    """Run (or resume) one run under its lock; returns a one-line outcome. Raises ``Interrupted``
    after a signal, ``RunHeld`` if another process holds it, ``ConfigMismatch`` if its directory holds
    a different config, and re-raises a run's error after recording it in ``status.json``.
    ``stop_signals``: the signals that stop the run at a safe point (a SLURM job uses SIGUSR2 only;
    see ``benchmark.launch``)."""
    d: Path = r.dir
    if rundir.read_status(d).get("status") == "done":
        return "skipped (done)"
    d.mkdir(parents=True, exist_ok=True)
    lock = rundir.RunLock(d)
    lock.acquire()  # raises RunHeld
    try:
        if rundir.read_status(d).get("status") == "done":  # finished by another process meanwhile
            return "skipped (done)"
        config = resolved_config(r, profile)
        config["config_hash"] = rundir.config_hash(config)
        if (d / "config.json").exists():
            diff = rundir.identity_diff(json.loads((d / "config.json").read_text()), config)
            if diff:
                raise ConfigMismatch(
                    f"{d} holds a run with another config ({'; '.join(diff)}); use another --out, "
                    f"or delete the directory to start over"
                )
        else:
            rundir.write_json(d / "config.json", config)
        rundir.set_status(d, "running", **rundir.RunLock.holder_info())
        live = live_factory(d, config) if live_factory else None
        runner = Runner(
            r,
            progress=progress,
            checkpoint_every=1 if profile == "smoke" else 10,
            log_every=1 if profile == "smoke" else 100,
            live=live,
        )
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
            rundir.set_status(
                d, "interrupted", signal="SIGINT", note="stopped at once; resumes from the last checkpoint"
            )
            raise Interrupted("interrupted (SIGINT twice): resumes from the last checkpoint") from None
        except BaseException as exc:
            rundir.set_status(
                d, "failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
            )
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if runner.stop_reason is not None:
            rundir.set_status(d, "interrupted", signal=runner.stop_reason, **counters)
            raise Interrupted(
                f"interrupted ({runner.stop_reason}) at gradient step {counters['grad_step']}, "
                f"episode {counters['episodes']}: checkpointed; rerun the same command to resume"
            )
        rundir.set_status(d, "done", **counters)
        return "done"
    finally:
        lock.release()


def run_one(
    r: RunSpec, profile: str, progress: bool = True, live_factory=None, stop_signals=STOP_SIGNALS
) -> int:
    """``execute`` with its outcome as an exit code and one line (stdout, or stderr for errors)."""
    try:
        outcome = execute(r, profile, progress=progress, live_factory=live_factory, stop_signals=stop_signals)
    except Interrupted as exc:
        print(f"{r.dir}: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except rundir.RunHeld as exc:
        print(f"{r.dir}: skipped: {exc}")
        return EXIT_HELD
    except ConfigMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        print(f"{r.dir}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{r.dir}: {outcome}")
    return EXIT_OK


def combine(codes: list[int]) -> int:
    """One exit code for several runs: interrupted, then failed (any code outside the map counts as a failed
    run: a worker that died), then bad input, then held, else 0."""
    if EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED
    if any(c not in EXIT_MEANING for c in codes):
        return EXIT_FAILED
    for code in (EXIT_FAILED, EXIT_USAGE, EXIT_HELD):
        if code in codes:
            return code
    return EXIT_OK


def usage_error(exc: Exception) -> int:
    """Prints a ``UsageError`` (or a registry ``KeyError``) as one ``error:`` line; returns EXIT_USAGE."""
    print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
    return EXIT_USAGE


def run_inline(args, runs: list[RunSpec]) -> int:
    """Executes the planned runs one after another in this process; a signal stops them all."""
    codes = []
    for r in runs:
        codes.append(
            run_one(
                r,
                args.profile,
                progress=not args.no_progress,
                live_factory=lambda d, config: LiveLog.from_args(d, args, config),
            )
        )
        if codes[-1] == EXIT_INTERRUPTED:
            break
    return combine(codes)


# -- child processes ---------------------------------------------------------------------------
PAYLOAD_OPTIONS = ("no_progress", "wandb", "wandb_project", "wandb_entity", "no_tensorboard")


def child_payload(ns: argparse.Namespace, r: RunSpec) -> dict:
    """Everything a child needs to plan this one run again, as JSON-able values with absolute paths."""
    from benchmark.tasks import default_data_dir

    imports = [str(Path(i).resolve()) if (i.endswith(".py") or Path(i).exists()) else i for i in ns.imports]
    return {
        "algos": r.algo,
        "tasks": r.task.name,
        "seeds": str(r.seed),
        "profile": ns.profile,
        "out": str(Path(ns.out).resolve()),
        "data_dir": str(Path(ns.data_dir).resolve() if ns.data_dir else default_data_dir().resolve()),
        "dataset": ns.dataset,
        "device": ns.device,
        "imports": imports,
        "set": {(k if k.startswith("schedule.") else f"{r.algo}.{k}"): v for k, v in r.overrides.items()},
        **{k: getattr(ns, k, None) for k in PAYLOAD_OPTIONS},
        "dir": str(Path(r.dir).resolve()),
    }


def child_main(payload: dict, slurm: bool) -> int:
    """One run in this process: the ``child`` subcommand."""
    early = []
    if slurm:  # before execute takes over: remember SIGUSR2 rather than die of it; SIGTERM is for submitit
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGUSR2, lambda s, f: early.append(s))
    ns = plan_args(**{k: v for k, v in payload.items() if k != "dir"})
    try:
        load_imports(ns.imports)
        (r,) = plan(ns)
    except (UsageError, KeyError) as exc:
        return usage_error(exc)
    if early:
        print(f"{r.dir}: SIGUSR2 before the run started; nothing to checkpoint", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run_one(
        r,
        ns.profile,
        progress=not ns.no_progress,
        stop_signals=(signal.SIGUSR2,) if slurm else STOP_SIGNALS,
        live_factory=lambda d, config: LiveLog.from_args(d, ns, config),
    )


def cli(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmark.launch",
        description="Internal: `child '<json>' [--slurm]` runs one run of a sweep "
        "(started by the local and SLURM launchers). Use "
        "`python -m benchmark.run --launcher ...` instead.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("child", help="run one run from a JSON payload")
    c.add_argument("payload", help="JSON: the run's algos, tasks, seeds, profile, out, data_dir, ...")
    c.add_argument(
        "--slurm", action="store_true", help="inside a SLURM job: stop on SIGUSR2 only, ignore SIGTERM"
    )
    args = p.parse_args(argv)
    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        print(f"error: payload is not JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return child_main(payload, args.slurm)
