"""Run directories -> pandas: one tidy metrics frame and one row per run.

A run directory is any folder holding ``config.json``; the walk does not descend below one (so the
``episodes/`` of 1,000 runs are never listed). Identity comes from ``config.json``, never from the path:

    algorithm   config["base_algo"] (the base algorithm of a variant), else config["algo"]
    variant     config["algo"], the registered name (``moto-no-bc``; equal to ``algorithm`` for a base)
    task        config["task"];  domain = the part before "/"
    dataset     config["dataset"]["name"], else the last two parts of config["dataset"]["path"]
    profile, seed
    status      status.json's ``status`` (running / done / failed / interrupted), ``unknown`` without one

``metrics.csv`` is read by its header (columns may be added during a run); a truncated last line of a
run that is still writing is ignored.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

METRIC_COLUMNS = ["phase", "grad_step", "env_steps", "episodes", "eval_success", "eval_return",
                  "episode_return", "episode_success"]
ID_COLUMNS = ["run", "algorithm", "variant", "task", "domain", "dataset", "profile", "seed", "status"]
STATUSES = ("done", "running", "failed", "interrupted", "unknown")


@dataclass
class Results:
    """What ``load_runs`` found: ``metrics`` (one row per metrics.csv row, identity columns included),
    ``runs`` (one row per run directory) and ``problems`` (folders that could not be read, with why)."""
    root: Path
    metrics: pd.DataFrame
    runs: pd.DataFrame
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def evals(self) -> pd.DataFrame:
        """The evaluation rows (``phase == "eval"`` with an ``eval_success``)."""
        m = self.metrics
        return m[(m["phase"] == "eval") & m["eval_success"].notna()]


def find_run_dirs(root: str | Path) -> list[Path]:
    """Every folder under ``root`` (``root`` included) that holds ``config.json``, sorted."""
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
        if any(e.name == "config.json" and e.is_file() for e in entries):
            found.append(Path(d))
            continue
        stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
    return sorted(found)


def _dataset_name(cfg: dict) -> str | None:
    ds = cfg.get("dataset")
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


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def read_identity(run: Path, root: Path) -> dict:
    """The identity and status of one run directory (raises ValueError when config.json is unusable)."""
    try:
        cfg = _read_json(run / "config.json")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"config.json is not valid JSON ({e})") from e
    missing = [k for k in ("algo", "task", "seed") if k not in cfg]
    if missing:
        raise ValueError(f"config.json lacks {', '.join(missing)}")
    try:
        status = _read_json(run / "status.json")
    except (json.JSONDecodeError, UnicodeDecodeError):
        status = {"status": "unknown", "error": "status.json is not valid JSON"}
    task = str(cfg["task"])
    rel = run.relative_to(root).as_posix() if run != root else run.name
    gifs = sorted((run / "gifs").glob("eval_*.gif")) if (run / "gifs").is_dir() else []
    diag = run / "diagnostics"
    return {
        "run": rel, "path": str(run),
        "algorithm": str(cfg.get("base_algo") or cfg["algo"]), "variant": str(cfg["algo"]),
        "task": task, "domain": task.split("/")[0], "dataset": _dataset_name(cfg) or task,
        "profile": str(cfg.get("profile") or "unknown"), "seed": int(cfg["seed"]),
        "status": str(status.get("status") or "unknown"),
        "error": str(status.get("error") or ""),
        "last_gif": str(gifs[-1]) if gifs else "",
        "reward_prediction": str(diag / "reward_prediction.csv") if (diag / "reward_prediction.csv").is_file() else "",
        "uncertainty": str(diag / "uncertainty.csv") if (diag / "uncertainty.csv").is_file() else "",
    }


def read_metrics(run: Path) -> pd.DataFrame:
    """``metrics.csv`` of one run, the columns of METRIC_COLUMNS (missing ones as NaN), by header."""
    f = run / "metrics.csv"
    if not f.is_file() or f.stat().st_size == 0:
        return pd.DataFrame({c: pd.Series(dtype=object if c == "phase" else float) for c in METRIC_COLUMNS})
    df = pd.read_csv(f, usecols=lambda c: c in METRIC_COLUMNS, on_bad_lines="skip", engine="c",
                     dtype={"phase": str})
    for c in METRIC_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
        elif c != "phase":
            df[c] = pd.to_numeric(df[c], errors="coerce")
    # A row cut short by a crash or a concurrent write has no counters: drop it.
    df = df[df["phase"].isin(["offline", "online", "eval"]) & df["grad_step"].notna()]
    return df[METRIC_COLUMNS]


def load_runs(root: str | Path, progress: bool = True) -> Results:
    """Reads every run directory under ``root``. Unreadable ones are listed in ``problems``, not dropped silently."""
    from tqdm.auto import tqdm

    root = Path(root)
    dirs = find_run_dirs(root)
    idents, frames, problems = [], [], []
    for d in tqdm(dirs, desc="reading runs", unit="run", disable=not progress or len(dirs) < 20):
        try:
            ident = read_identity(d, root)
            m = read_metrics(d)
        except (ValueError, OSError, pd.errors.ParserError) as e:
            problems.append((str(d), str(e)))
            continue
        ev = m[(m["phase"] == "eval") & m["eval_success"].notna()]
        ident.update(rows=len(m), evals=len(ev),
                     last_env_steps=float(m["env_steps"].max()) if len(m) else np.nan,
                     last_grad_step=float(m["grad_step"].max()) if len(m) else np.nan,
                     last_episodes=float(m["episodes"].max()) if len(m) else np.nan,
                     last_eval_success=float(ev["eval_success"].iloc[-1]) if len(ev) else np.nan,
                     last_eval_env_steps=float(ev["env_steps"].iloc[-1]) if len(ev) else np.nan)
        idents.append(ident)
        m.insert(0, "run", ident["run"])
        frames.append(m)
    runs = pd.DataFrame(idents, columns=list(idents[0]) if idents else
                        ID_COLUMNS + ["path", "error", "last_gif", "reward_prediction", "uncertainty", "rows",
                                      "evals", "last_env_steps", "last_grad_step", "last_episodes",
                                      "last_eval_success", "last_eval_env_steps"])
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run"] + METRIC_COLUMNS)
    if len(runs):
        ids = runs.set_index("run")[ID_COLUMNS[1:]]
        metrics = metrics.join(ids, on="run")
    else:
        for c in ID_COLUMNS[1:]:
            metrics[c] = pd.Series(dtype=object)
    metrics = metrics[ID_COLUMNS + METRIC_COLUMNS]
    for c in ("run", "algorithm", "variant", "task", "domain", "dataset", "profile", "status", "phase"):
        metrics[c] = metrics[c].astype("category")
    return Results(root=root, metrics=metrics, runs=runs, problems=problems)
