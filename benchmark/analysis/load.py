"""Run directories -> pandas: one tidy metrics frame and one row per run.

A run directory is found by ``benchmark.core.rundir.find_runs`` and read when it holds ``config.json``.
Identity comes from ``config.json``, never from the path:

    algorithm   config["base_algo"] (the base algorithm of a variant), else config["algo"]
    variant     config["algo"], the registered name (``moto-no-bc``; equal to ``algorithm`` for a base), with
                its config overrides (``--set``) in brackets: ``moto[alpha=1.0]``
    task        config["task"];  domain = the part before "/"
    dataset     config["dataset"]["name"], else the last two parts of config["dataset"]["path"]
    profile, seed
    status      status.json's ``status`` (running / done / failed / interrupted), ``unknown`` without one

Each run's dataset also gets a role (``dataset_role``): ``source`` (the dataset a subset was drawn from by
``python -m benchmark.datasets subset``, named ``<source>-<N>ep-seed<S>``; else the dataset itself),
``subset`` (whether it is one) and ``family`` (the ``--dataset`` the run was launched with: ``""`` for the
task's own data, ``kitchen/scripted`` for ``kitchen/scripted-mixed`` on ``kitchen/mixed``, else the source).

``metrics.csv`` is read by its header (columns may be added during a run); a truncated last line of a
run that is still writing is ignored.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.core.rundir import METRICS_COLUMNS, dataset_name, find_runs, override_label

# what curves need; Kitchen runs also log the task's objects in goal (eval_objects, episode_objects: 0-4)
METRIC_COLUMNS = [c for c in METRICS_COLUMNS if c not in ("steps_per_s", "wall_time")] + [
    "eval_objects",
    "episode_objects",
]
ID_COLUMNS = ["run", "algorithm", "variant", "task", "domain", "dataset", "profile", "seed", "status"]
STATUSES = ("done", "running", "failed", "interrupted", "unknown")
ROLE_COLUMNS = ["source", "subset", "family"]
SUBSET_NAME = re.compile(r"^(?P<source>.+)-(?P<episodes>\d+)ep-seed\d+$")  # benchmark.datasets subset's


def dataset_role(task: str, dataset: str) -> dict:
    """``source``, ``subset`` and ``family`` of a run's dataset (see the module doc)."""
    m = SUBSET_NAME.match(dataset)
    source = m["source"] if m else dataset
    short = "-" + task.split("/", 1)[-1]
    if source == task:
        family = ""
    elif source.endswith(short) and len(source) > len(short):
        family = source[: -len(short)]  # kitchen/scripted-mixed on kitchen/mixed: --dataset kitchen/scripted
    else:
        family = source
    return {"source": source, "subset": bool(m), "family": family}


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
    """The run directories under ``root`` that have started (hold ``config.json``), sorted
    (``benchmark.core.rundir.find_runs``: the walk stops at a run directory)."""
    return [d for d in find_runs(root) if (d / "config.json").is_file()]


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
        "run": rel,
        "path": str(run),
        "algorithm": str(cfg.get("base_algo") or cfg["algo"]),
        "variant": str(cfg["algo"])
        + (f"[{override_label(cfg.get('overrides'))}]" if cfg.get("overrides") else ""),
        "task": task,
        "domain": task.split("/")[0],
        "dataset": dataset_name(cfg) or task,
        "profile": str(cfg.get("profile") or "unknown"),
        "seed": int(cfg["seed"]),
        "status": str(status.get("status") or "unknown"),
        "error": str(status.get("error") or ""),
        "last_gif": str(gifs[-1]) if gifs else "",
        "reward_prediction": str(diag / "reward_prediction.csv")
        if (diag / "reward_prediction.csv").is_file()
        else "",
        "uncertainty": str(diag / "uncertainty.csv") if (diag / "uncertainty.csv").is_file() else "",
        "uncertainty_actions": str(diag / "uncertainty_actions.csv")
        if (diag / "uncertainty_actions.csv").is_file()
        else "",
        "action_fit": str(diag / "action_fit.csv") if (diag / "action_fit.csv").is_file() else "",
    }


def read_metrics(run: Path) -> pd.DataFrame:
    """``metrics.csv`` of one run, the columns of METRIC_COLUMNS (missing ones as NaN), by header."""
    return _read_many([run])[METRIC_COLUMNS]


def _read_many(runs: list[Path]) -> pd.DataFrame:
    """Every run's metrics.csv in one frame with a ``_i`` column (the index into ``runs``).

    Files with the same header are joined (each line prefixed with its run's index) and parsed by one
    pandas call: parsing 1,000 small files one by one costs ~20x more in pandas overhead than parsing.
    A last line without its newline (a run writing right now) is left out."""
    groups: dict[str, list[str]] = {}
    for i, run in enumerate(runs):
        try:
            text = (run / "metrics.csv").read_text()
        except (FileNotFoundError, UnicodeDecodeError):
            continue
        header, _, body = text.partition("\n")
        body = body[: body.rfind("\n") + 1]
        if not header.strip() or not body:
            continue
        groups.setdefault(header.strip(), []).append(f"{i}," + body[:-1].replace("\n", f"\n{i},") + "\n")
    frames = []
    for header, bodies in groups.items():
        cols = ["_i"] + [c.strip() for c in header.split(",")]
        if len(set(cols)) != len(cols):
            raise ValueError(f"metrics.csv header repeats a column: {header}")
        df = pd.read_csv(
            io.StringIO("".join(bodies)),
            header=None,
            names=cols,
            on_bad_lines="skip",
            usecols=lambda c: c in METRIC_COLUMNS or c == "_i",
            dtype={"phase": str},
            engine="c",
        )
        frames.append(df)
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["_i"] + METRIC_COLUMNS)
    for c in METRIC_COLUMNS:
        if c not in df.columns:
            df[c] = np.nan
        elif c != "phase":
            df[c] = pd.to_numeric(df[c], errors="coerce")
    # A row cut short by a crash or a concurrent write has no counters: drop it.
    df = df[df["phase"].isin(["offline", "online", "eval"]) & df["grad_step"].notna()]
    return df[["_i"] + METRIC_COLUMNS].sort_values("_i", kind="stable").reset_index(drop=True)


def load_runs(root: str | Path, progress: bool = True) -> Results:
    """Reads every run directory under ``root``. Unreadable ones are listed in ``problems``, not dropped
    silently."""
    from tqdm.auto import tqdm

    root = Path(root)
    dirs = find_run_dirs(root)
    idents, ok_dirs, problems = [], [], []
    for d in tqdm(dirs, desc="reading runs", unit="run", disable=not progress or len(dirs) < 20):
        try:
            idents.append(read_identity(d, root))
            ok_dirs.append(d)
        except (ValueError, OSError) as e:
            problems.append((str(d), str(e)))
    summary_cols = [
        "rows",
        "evals",
        "last_env_steps",
        "last_grad_step",
        "last_episodes",
        "last_eval_success",
        "last_eval_env_steps",
    ]
    diag_cols = ["reward_prediction", "uncertainty", "uncertainty_actions", "action_fit"]
    runs = pd.DataFrame(idents, columns=ID_COLUMNS + ["path", "error", "last_gif"] + diag_cols)
    m = _read_many(ok_dirs)
    g = m.groupby("_i")
    ev = m[(m["phase"] == "eval") & m["eval_success"].notna()]
    ge = ev.groupby("_i")
    summ = pd.DataFrame(
        {
            "rows": g.size(),
            "last_env_steps": g["env_steps"].max(),
            "last_grad_step": g["grad_step"].max(),
            "last_episodes": g["episodes"].max(),
        }
    )
    summ = summ.join(
        pd.DataFrame(
            {
                "evals": ge.size(),
                "last_eval_success": ge["eval_success"].last(),
                "last_eval_env_steps": ge["env_steps"].last(),
            }
        ),
        how="left",
    )
    summ = summ.reindex(range(len(runs)))
    summ[["rows", "evals"]] = summ[["rows", "evals"]].fillna(0).astype(int)
    runs = pd.concat([runs, summ[summary_cols].reset_index(drop=True)], axis=1)
    roles = pd.DataFrame(
        [dataset_role(t, d) for t, d in zip(runs["task"], runs["dataset"])], columns=ROLE_COLUMNS
    )
    runs = pd.concat([runs, roles.astype({"subset": bool})], axis=1)
    runs = runs[ID_COLUMNS + ROLE_COLUMNS + ["path", "error", "last_gif"] + diag_cols + summary_cols]
    metrics = m.join(runs[ID_COLUMNS], on="_i").drop(columns="_i")
    metrics = metrics[ID_COLUMNS + METRIC_COLUMNS].reset_index(drop=True)
    for c in ("run", "algorithm", "variant", "task", "domain", "dataset", "profile", "status", "phase"):
        metrics[c] = metrics[c].astype("category")
    return Results(root=root, metrics=metrics, runs=runs, problems=problems)
