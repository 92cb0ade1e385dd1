"""One run directory: ``<out>/<task>/<algo>/<profile>[@<dataset>]/seed_<n>/``.

    .lock            advisory lock (fcntl.flock) held by the one process running it; the kernel
                     drops it when that process dies, so a dead run's lock is simply taken over

    config.json      resolved config, package versions, git commit, dataset checksum (written once)
    metrics.csv      one row per log point, appended and flushed (never rewritten but to drop rows
                     past the last checkpoint when a run resumes)
    checkpoint.pkl   agent, loop counters, RNG state (written to a temporary file, then renamed)
    episodes/        online episodes, one NPZ each, in the dataset format
    status.json      running (pid, host, SLURM job) / done / failed (+ error) / interrupted (+ signal)
    slurm_job.json   the SLURM job that will run it (written by the SLURM launcher at submission)
    diagnostics/     agent-written CSVs (their columns: ``algorithms/diagnostics.py``)
    gifs/, tb/       the live view (``livelog.py``)

This module owns that format: the naming rule (``run_dir``), how runs are found under a results folder
(``find_runs``) and named (``run_key``), the lock and a run's state (``run_state``), ``metrics.csv``'s
columns (``METRICS_COLUMNS``) and checkpoints. Everything that reads or writes run directories goes
through it.
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import importlib.metadata
import json
import os
import pickle
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

METRICS_COLUMNS = [
    "phase",
    "grad_step",
    "env_steps",
    "episodes",
    "eval_success",
    "eval_return",
    "episode_return",
    "episode_success",
    "steps_per_s",
    "wall_time",
]  # then the agent's metrics
RUN_FILES = (
    "config.json",
    "status.json",
    "slurm_job.json",
)  # a folder holding one of them is a run directory
SLURM_JOB_FILE = "slurm_job.json"
STATES = ("done", "running", "queued", "interrupted", "failed", "missing")
STATES_HELP = """\
  done         status.json says done
  running      a live process holds the run's lock (seen in /proc/locks on this host), or the run
               says it runs on another host under a SLURM job that squeue lists as running
  queued       not started, but a SLURM job that will run it is pending (slurm_job.json, squeue)
  interrupted  stopped by a signal, or its process died (its lock is free): rerunning resumes it
  failed       status.json says failed (rerun with --retry-failed)
  missing      expected (a sweep's run, or a seed seen in the folder) but never started
"""
PACKAGES = (
    "numpy",
    "jax",
    "flax",
    "optax",
    "torch",
    "mujoco",
    "gymnasium",
    "gymnasium-robotics",
    "metaworld",
)


def run_dir(
    out: str | Path,
    task: str,
    algo: str,
    seed: int,
    profile: str = "paper",
    dataset: str | None = None,
    overrides: dict | None = None,
) -> Path:
    """Everything that changes results and is not a code default decides the folder: the profile, the
    dataset when it is not the task's own (the data-size study) and the config overrides (``--set``); the
    rest is checked against ``config.json`` by ``identity_diff`` when a run resumes."""
    return Path(out) / task / algo / setting_name(profile, dataset, task, overrides) / f"seed_{seed}"


def setting_name(profile: str, dataset: str | None, task: str, overrides: dict | None = None) -> str:
    """``profile``, or ``profile@<dataset>`` when the dataset is not the task's own, then
    ``,field=value`` for each override in field order (``cpu,alpha=1.0,critic_target=random``)."""
    name = profile if dataset in (None, task) else f"{profile}@{dataset.replace('/', '-')}"
    return name + "".join(f",{k}={override_text(v)}" for k, v in sorted((overrides or {}).items()))


def override_text(value) -> str:
    """An override's value as it appears in a folder name and a label: ``1.0``, ``true``, ``8-16-32``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "-".join(override_text(v) for v in value)
    return str(value).replace("/", "-")


def override_label(overrides: dict | None) -> str:
    """``alpha=1.0,critic_target=random`` ('' without overrides)."""
    return ",".join(f"{k}={override_text(v)}" for k, v in sorted((overrides or {}).items()))


def dataset_name(config: dict) -> str | None:
    """The dataset a config ran on: its ``name``, else the last two parts of its path (``kitchen/mixed``)."""
    ds = config.get("dataset")
    if isinstance(ds, str):
        return ds
    if not isinstance(ds, dict):
        return None
    if ds.get("name"):
        return str(ds["name"])
    if ds.get("path"):
        parts = Path(str(ds["path"])).parts
        return "/".join(parts[-2:]) if len(parts) >= 2 else parts[-1]
    return None


def find_runs(root: str | Path) -> list[Path]:
    """Every run directory under ``root`` (``root`` included): a folder holding one of ``RUN_FILES``; the walk
    does not descend below one (the ``episodes/`` of 1,000 runs are never listed) nor into hidden folders."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"results directory {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory (give the folder that holds run directories)")
    found: list[Path] = []
    stack = [str(root)]
    while stack:
        d = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        if any(e.name in RUN_FILES and e.is_file() for e in entries):
            found.append(Path(d))
            continue
        stack.extend(
            e.path for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")
        )
    return sorted(found)


def run_key(d: Path, root: Path | None = None) -> tuple[str, str, str, int]:
    """(task, algo, setting, seed) of a run directory: from its ``config.json``, else (a run submitted but not
    started) from its path, ``<root>/<domain>/<task>/<algo>/<setting>/seed_<n>``."""
    cfg = read_json(Path(d) / "config.json")
    if all(k in cfg for k in ("task", "algo", "seed", "profile")):
        task = str(cfg["task"])
        return (
            task,
            str(cfg["algo"]),
            setting_name(str(cfg["profile"]), dataset_name(cfg), task, cfg.get("overrides")),
            int(cfg["seed"]),
        )
    rel = Path(d).relative_to(root).parts if root is not None else Path(d).parts[-5:]
    if len(rel) != 5 or not rel[4].startswith("seed_"):
        raise ValueError(
            f"{d}: no config.json, and its path is not <domain>/<task>/<algo>/<setting>/seed_<n>"
        )
    return f"{rel[0]}/{rel[1]}", rel[2], rel[3], int(rel[4].split("_", 1)[1])


def read_json(path: Path) -> dict:
    """A JSON file's object; {} when it is missing or unreadable (a run that is being written)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


# The parts of a resolved config that change results (not versions, git commit, device or paths).
IDENTITY_KEYS = (
    "task",
    "algo",
    "seed",
    "profile",
    "agent_config",
    "schedule",
    "env_overrides",
    "episode_length",
    "action_repeat",
    "dataset.checksum",
)
# ... less what only changes how fast the same numbers come: a run made eager may resume with CUDA graphs
# (equal within float tolerance, ``perf gpu-check``) and older run directories have no such field
NOT_IDENTITY = ("agent_config.cuda_graph",)


def _flat(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def identity(config: dict) -> dict[str, Any]:
    flat = _flat(json.loads(json.dumps(config, default=str)))  # JSON round trip: tuples become lists
    return {
        k: v
        for k, v in flat.items()
        if any(k == key or k.startswith(key + ".") for key in IDENTITY_KEYS) and k not in NOT_IDENTITY
    }


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(identity(config), sort_keys=True).encode()).hexdigest()[:16]


def identity_diff(saved: dict, new: dict) -> list[str]:
    """Fields that differ between a run directory's config and the one asked for: 'key: old -> new'."""
    a, b = identity(saved), identity(new)
    return [
        f"{k}: {a.get(k, '(absent)')} -> {b.get(k, '(absent)')}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


class RunHeld(RuntimeError):
    """Another live process holds the run."""


class RunLock:
    """One process per run: an exclusive ``flock`` on ``<run>/.lock``, holding the holder's pid, host and
    SLURM job id. Released by ``release`` or by the process's death (the kernel drops it)."""

    def __init__(self, path: Path):
        self.path = Path(path) / ".lock"
        self._fd: int | None = None

    @staticmethod
    def holder_info() -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "slurm_job": os.environ.get("SLURM_JOB_ID")}

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                held = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            except (ValueError, OSError):
                held = {}
            os.close(fd)
            job = f", SLURM job {held['slurm_job']}" if held.get("slurm_job") else ""
            raise RunHeld(
                f"running in pid {held.get('pid', '?')} on host {held.get('host', '?')}{job}"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.holder_info()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # unique per writer
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, json.dumps(obj, indent=1, default=str).encode())


def read_status(path: Path) -> dict:
    f = path / "status.json"
    return json.loads(f.read_text()) if f.exists() else {}


def local_lock_held(run: Path) -> bool:
    """Whether a process on this host holds the run's flock, read from /proc/locks (without taking
    the lock: a probe that took it would make a starting run skip itself)."""
    lock = Path(run) / ".lock"
    try:
        st = lock.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    return any(
        line.split()[1] == "FLOCK" and key in line.split()
        for line in table.splitlines()
        if len(line.split()) > 5
    )


def run_state(d: Path, queue: dict[str, str] | None = None) -> tuple[str, dict]:
    """(state, status.json) of one run directory (``STATES_HELP``); ``queue``: SLURM job id -> state
    (squeue), None without one."""
    d = Path(d)
    status = read_json(d / "status.json")
    s = status.get("status")
    if s == "done":
        return "done", status
    if local_lock_held(d):
        return "running", status
    if s == "running" and status.get("host") not in (None, socket.gethostname()):
        job = status.get("slurm_job")
        if queue is None or (job and queue.get(str(job)) == "RUNNING"):
            return "running", status  # another host: trust it unless squeue says otherwise
    submitted = read_json(d / SLURM_JOB_FILE)
    if queue is not None and submitted.get("job_id") and str(submitted["job_id"]) in queue:
        state = queue[str(submitted["job_id"])]
        if s in (None, "interrupted", "running") and state != "COMPLETING":
            return ("running" if state == "RUNNING" and s == "running" else "queued"), status
    if s == "failed":
        return "failed", status
    if s in ("interrupted", "running"):
        return "interrupted", status  # "running" with a free lock: its process died
    return "missing", status


def set_status(path: Path, status: str, **extra: Any) -> None:
    write_json(path / "status.json", {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **extra})


def versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = None
    return out


def git_commit() -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def save_checkpoint(path: Path, payload: dict) -> None:
    _atomic_write(path / "checkpoint.pkl", pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))


def load_checkpoint(path: Path) -> dict | None:
    f = path / "checkpoint.pkl"
    if not f.exists():
        return None
    with open(f, "rb") as fh:
        return pickle.load(fh)


class MetricsLog:
    """Append-only CSV: the base columns, then metric names in the order they first appear.

    A metric that first appears mid-run (an online-only loss) gets its column: the file is
    rewritten once with the wider header (atomically) and earlier rows leave that cell empty."""

    def __init__(self, path: Path, keep_rows: int | None = None):
        self.path = path
        self.columns = list(METRICS_COLUMNS)
        rows = []
        if path.exists():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                self.columns += [c for c in (reader.fieldnames or []) if c not in self.columns]
        if keep_rows is not None and len(rows) > keep_rows:
            # Resume: rows logged after the last checkpoint will be produced again; drop them once.
            rows = rows[:keep_rows]
            self._rewrite(rows)
        self.rows = len(rows)
        self._open()

    def _open(self) -> None:
        new = not self.path.exists()
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, self.columns, extrasaction="ignore")
        if new:
            self._writer.writeheader()
            self._file.flush()

    def _rewrite(self, rows: list[dict]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, self.columns, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def read(self) -> list[dict]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def log(self, row: dict) -> None:
        new = [k for k in row if k not in self.columns and row[k] is not None]
        if new:
            self._file.close()
            rows = self.read() if self.path.exists() else []
            self.columns += new
            self._rewrite(rows)
            self._open()
        self._writer.writerow(row)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows += 1

    def close(self) -> None:
        self._file.close()
