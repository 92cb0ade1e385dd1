"""Local launcher: one child process per run (``python -m benchmark.launch child``), ``--workers`` at a time;
a signal is forwarded once and no further run starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmark.launch.execute import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_MEANING, child_payload, combine


def _exited(pid: int) -> bool:
    """Whether a child has exited, without reaping it (safe inside a signal handler)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class Pool:
    """Runs children (one per run), ``workers`` at a time; ``stop`` forwards a signal and launches
    no more."""

    def __init__(self, payloads: list[dict], workers: int, slurm: bool, log_dir: Path | None = None):
        self.pending, self.workers, self.slurm, self.log_dir = list(payloads), workers, slurm, log_dir
        self.running: dict[int, tuple[subprocess.Popen, dict]] = {}
        self.codes: dict[str, int] = {}
        self.stopped: str | None = None

    def _start(self, payload: dict) -> None:
        cmd = [sys.executable, "-m", "benchmark.launch", "child", json.dumps(payload)] + (
            ["--slurm"] if self.slurm else []
        )
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            d = Path(payload["dir"])
            out = open(self.log_dir / f"{'_'.join(d.parts[-5:])}.log", "ab")
        # Own session locally: a Ctrl-C reaches the launcher, which forwards exactly one signal.
        p = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=not self.slurm
        )
        if out is not None:
            out.close()
        self.running[p.pid] = (p, payload)
        print(f"{payload['dir']}: started (pid {p.pid})", flush=True)

    def stop(self, sig: int) -> None:
        self.stopped = signal.Signals(sig).name
        for pid in list(self.running):
            if not _exited(pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def wait_exited(self, timeout: float) -> bool:
        """Waits until every started child has exited (without reaping; for signal handlers)."""
        t = time.time()
        while not all(_exited(pid) for pid in list(self.running)):
            if time.time() - t > timeout:
                return False
            time.sleep(0.2)
        return True

    def run(self) -> dict[str, int]:
        while self.pending or self.running:
            while self.pending and len(self.running) < self.workers and self.stopped is None:
                self._start(self.pending.pop(0))
            if self.stopped is not None and not self.running:
                break
            for pid, (p, payload) in list(self.running.items()):
                code = p.poll()
                if code is None:
                    continue
                del self.running[pid]
                self.codes[payload["dir"]] = code
                what = EXIT_MEANING.get(code, f"worker died ({_signame(code)})")
                print(f"{payload['dir']}: {what}", flush=True)
            time.sleep(0.2)
        return self.codes


def _signame(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}; rerun to resume"
        except ValueError:
            pass
    return f"exit code {code}"


# -- local -------------------------------------------------------------------------------------
def launch_local(groups, args, launch: set, failed: bool = False) -> int:
    """Runs the planned runs whose directory is in ``launch`` as children; ``failed``: failed runs were
    skipped (the exit code says so)."""
    payloads = [child_payload(ns, r) for ns, runs in groups for r in runs if r.dir in launch]
    log_dir = Path(args.out) / ".logs" if args.workers > 1 else None
    pool = Pool(payloads, workers=args.workers, slurm=False, log_dir=log_dir)
    if log_dir is not None:
        print(f"{len(payloads)} runs, {args.workers} at a time; each run's output in {log_dir}/", flush=True)
    signals = []

    def on_signal(signum, frame):
        signals.append(signum)
        print(
            f"{signal.Signals(signum).name}: stopping the running runs at a safe point; none started after",
            file=sys.stderr,
            flush=True,
        )
        pool.stop(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)}
    try:
        codes = list(pool.run().values())
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if signals:
        return EXIT_INTERRUPTED
    return combine(codes + ([EXIT_FAILED] if failed else []))
