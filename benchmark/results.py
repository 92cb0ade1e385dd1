"""One run directory: ``<out>/<task>/<algo>/seed_<n>/``.

    config.json      resolved config, package versions, git commit, dataset checksum (written once)
    metrics.csv      one row per log point, appended and flushed (never rewritten but to drop rows
                     past the last checkpoint when a run resumes)
    checkpoint.pkl   agent, loop counters, RNG state (written to a temporary file, then renamed)
    episodes/        online episodes, one NPZ each, in the dataset format
    status.json      running / done / failed (+ error and step)
"""
from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import pickle
import subprocess
import time
from pathlib import Path
from typing import Any

COLUMNS = ["phase", "grad_step", "env_steps", "episodes", "eval_success", "eval_return",
           "episode_return", "episode_success", "steps_per_s", "wall_time"]
PACKAGES = ("numpy", "jax", "flax", "optax", "torch", "mujoco", "gymnasium", "gymnasium-robotics", "metaworld")


def run_dir(out: str | Path, task: str, algo: str, seed: int) -> Path:
    return Path(out) / task / algo / f"seed_{seed}"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
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
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent).stdout.strip() or None
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
    """Append-only CSV with a fixed header: the base columns then the agent's metric names."""

    def __init__(self, path: Path, agent_columns: list[str], keep_rows: int | None = None):
        self.path = path
        self.columns = COLUMNS + [c for c in agent_columns if c not in COLUMNS]
        rows = self.read() if path.exists() else []
        if keep_rows is not None and len(rows) > keep_rows:
            # Resume: rows logged after the last checkpoint will be produced again; drop them once.
            tmp = path.with_name(f".{path.name}.tmp")
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, self.columns)
                w.writeheader()
                w.writerows(rows[:keep_rows])
            os.replace(tmp, path)
            rows = rows[:keep_rows]
        self.rows = len(rows)
        new = not path.exists()
        self._file = open(path, "a", newline="")
        self._writer = csv.DictWriter(self._file, self.columns, extrasaction="ignore")
        if new:
            self._writer.writeheader()
            self._file.flush()

    def read(self) -> list[dict]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def log(self, row: dict) -> None:
        self._writer.writerow(row)
        self._file.flush()
        os.fsync(self._file.fileno())
        self.rows += 1

    def close(self) -> None:
        self._file.close()
