"""Seeing a run while it trains: TensorBoard scalars, optional Weights & Biases, evaluation GIFs.

``metrics.csv`` stays the source of truth; this module only mirrors it for live viewing.

    live = LiveLog(run_dir, wandb=False, wandb_project=None, wandb_entity=None, config=None)
    live.log(row)                      # a metrics.csv row (dict); call it next to MetricsLog.log
    live.gif(frames, episodes)         # (T, H, W, 3) uint8 frames of one evaluation episode
    live.close()

TensorBoard: every numeric value of a row becomes a scalar ``<phase>/<column>`` (``offline/bc_loss``,
``online/episode_return``, ``eval/eval_success``). The step is ``grad_step`` for ``offline`` rows
(env_steps is 0 throughout the offline phase) and ``env_steps`` for ``online`` and ``eval`` rows, so
``tensorboard --logdir results/`` shows learning curves against environment steps. Event files are
written into the run directory itself (``events.out.tfevents.*``); a resumed run adds a new file and
may repeat the rows it re-logs after its last checkpoint (TensorBoard shows both).

Weights & Biases (``wandb=True``): the run is created in ``<run_dir>/wandb/`` with the given project
and entity, else ``WANDB_PROJECT`` / ``WANDB_ENTITY`` from the environment (nothing is hard-coded);
``WANDB_MODE=offline`` works without a network (``wandb sync`` uploads later). Each phase has its own
step metric (``offline/grad_step``, ``online/env_steps``, ``eval/env_steps``). The W&B run id is kept in
``<run_dir>/wandb_id.txt`` so a resumed run continues the same W&B run.

GIFs: ``gif`` writes ``<run_dir>/gifs/eval_<episodes:06d>.gif`` (atomically, through a temporary file),
keeping at most ``gif_max_frames`` frames by striding, so a 64x64 episode is a few KB; the analysis
report shows the last one of each run.

Nothing here may fail a run: a missing ``wandb`` or ``tensorboard`` package, or an error inside either,
gives one warning and switches that sink off. ``tensorboard`` and ``wandb`` are imported lazily.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from algorithms.gifs import write_gif

STEP_COLUMN = {"offline": "grad_step", "online": "env_steps", "eval": "env_steps"}


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --wandb, --wandb-project, --wandb-entity and --no-tensorboard to a CLI."""
    g = parser.add_argument_group("live view")
    g.add_argument(
        "--wandb",
        action="store_true",
        help="also log metrics and evaluation GIFs to Weights & Biases (set WANDB_MODE=offline "
        "to log without a network and `wandb sync` later). Default: off",
    )
    g.add_argument(
        "--wandb-project", default=None, help="W&B project (default: $WANDB_PROJECT, else W&B's own default)"
    )
    g.add_argument(
        "--wandb-entity",
        default=None,
        help="W&B entity, a user or team (default: $WANDB_ENTITY, else your W&B default)",
    )
    g.add_argument(
        "--no-tensorboard",
        action="store_true",
        help="do not write TensorBoard event files into run directories. Default: they are "
        "written, so `tensorboard --logdir results/` shows every run",
    )


def _numeric(v) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, numbers.Number) or (isinstance(v, np.generic) and np.issubdtype(type(v), np.number)):
        f = float(v)
        return f if math.isfinite(f) else None
    if isinstance(v, str) and v.strip():
        try:
            f = float(v)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


class LiveLog:
    """Mirrors metrics rows to TensorBoard (and W&B) and writes evaluation GIFs. See the module doc."""

    def __init__(
        self,
        run_dir: str | Path,
        wandb: bool = False,
        wandb_project: str | None = None,
        wandb_entity: str | None = None,
        config: dict | None = None,
        tensorboard: bool = True,
        gif_max_frames: int = 50,
        gif_fps: float = 10.0,
    ):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if gif_max_frames < 1:
            raise ValueError(f"gif_max_frames must be >= 1, got {gif_max_frames}")
        if gif_fps <= 0:
            raise ValueError(f"gif_fps must be > 0, got {gif_fps}")
        self.gif_max_frames, self.gif_fps = int(gif_max_frames), float(gif_fps)
        self._tb = None
        self._wandb = None
        self._wandb_run = None
        if tensorboard:
            self._open_tensorboard()
        if wandb:
            self._open_wandb(wandb_project, wandb_entity, config)

    # ------------------------------------------------------------------ sinks
    def _warn(self, what: str, err: BaseException | None = None) -> None:
        msg = f"LiveLog ({self.dir}): {what}" + (f": {type(err).__name__}: {err}" if err else "")
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def _open_tensorboard(self) -> None:
        try:
            from tensorboard.compat.proto.event_pb2 import Event
            from tensorboard.compat.proto.summary_pb2 import Summary
            from tensorboard.summary.writer.event_file_writer import EventFileWriter
        except ImportError as e:
            self._warn(
                "tensorboard is not installed, no event files are written (pip install tensorboard==2.21.0)",
                e,
            )
            return
        try:
            self._tb = EventFileWriter(str(self.dir), flush_secs=10)
        except Exception as e:  # noqa: BLE001 - a viewer must never fail a run
            self._warn("cannot open a TensorBoard event file, TensorBoard logging is off", e)
            return
        self._Event, self._Summary = Event, Summary

    def _open_wandb(self, project, entity, config) -> None:
        try:
            import wandb
        except ImportError as e:
            self._warn(
                "--wandb was asked for but wandb is not installed; W&B logging is off "
                "(pip install wandb==0.31.0)",
                e,
            )
            return
        id_file = self.dir / "wandb_id.txt"
        try:
            run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
            id_file.write_text(run_id + "\n")
            name = None
            if config:
                name = "/".join(str(config[k]) for k in ("task", "algo") if k in config) or None
                if name and "seed" in config:
                    name += f"/seed_{config['seed']}"
            run = wandb.init(
                project=project or os.environ.get("WANDB_PROJECT"),
                entity=entity or os.environ.get("WANDB_ENTITY"),
                dir=str(self.dir),
                id=run_id,
                resume="allow",
                name=name,
                config=config or {},
                reinit="create_new",
            )
            for phase, col in STEP_COLUMN.items():
                run.define_metric(f"{phase}/{col}")
                run.define_metric(f"{phase}/*", step_metric=f"{phase}/{col}")
        except Exception as e:  # noqa: BLE001
            self._warn("wandb.init failed, W&B logging is off (no network? set WANDB_MODE=offline)", e)
            return
        self._wandb, self._wandb_run = wandb, run

    # ------------------------------------------------------------------ API
    def log(self, row: dict) -> None:
        """One metrics row: numeric values go to ``<phase>/<column>``; text and empty values are skipped."""
        phase = str(row.get("phase", "") or "metrics")
        values = {k: f for k, v in row.items() if k != "phase" and (f := _numeric(v)) is not None}
        if not values:
            return
        step = int(values.get(STEP_COLUMN.get(phase, "env_steps"), values.get("grad_step", 0)))
        if self._tb is not None:
            try:
                summ = self._Summary(
                    value=[self._Summary.Value(tag=f"{phase}/{k}", simple_value=v) for k, v in values.items()]
                )
                self._tb.add_event(self._Event(wall_time=time.time(), step=step, summary=summ))
            except Exception as e:  # noqa: BLE001
                self._warn("TensorBoard write failed, TensorBoard logging is off", e)
                self._close_tb()
        if self._wandb_run is not None:
            try:
                self._wandb_run.log({f"{phase}/{k}": v for k, v in values.items()})
            except Exception as e:  # noqa: BLE001
                self._warn("wandb.log failed, W&B logging is off", e)
                self._close_wandb()

    def gif(self, frames: np.ndarray, episodes: int) -> Path:
        """Writes ``<run_dir>/gifs/eval_<episodes:06d>.gif`` from (T, H, W, 3) uint8 frames; returns its
        path."""
        if int(episodes) < 0:
            raise ValueError(f"episodes must be >= 0, got {episodes}")
        out = write_gif(
            self.dir / "gifs" / f"eval_{int(episodes):06d}.gif", frames, self.gif_fps, self.gif_max_frames
        )
        if self._wandb_run is not None:
            try:
                self._wandb_run.log({"eval/episode_gif": self._wandb.Video(str(out), format="gif")})
            except Exception as e:  # noqa: BLE001
                self._warn("wandb video upload failed, W&B logging is off", e)
                self._close_wandb()
        return out

    def _close_tb(self) -> None:
        tb, self._tb = self._tb, None
        if tb is not None:
            try:
                tb.close()
            except Exception:  # noqa: BLE001
                pass

    def _close_wandb(self) -> None:
        run, self._wandb_run = self._wandb_run, None
        if run is not None:
            try:
                run.finish()
            except Exception:  # noqa: BLE001
                pass

    def close(self) -> None:
        """Flushes and closes the event file and finishes the W&B run. Safe to call twice."""
        self._close_tb()
        self._close_wandb()

    def __enter__(self) -> "LiveLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @classmethod
    def from_args(cls, run_dir, args: argparse.Namespace, config: dict | None = None) -> "LiveLog":
        """Builds a LiveLog from the flags that ``add_cli_arguments`` added."""
        return cls(
            run_dir,
            wandb=getattr(args, "wandb", False),
            wandb_project=getattr(args, "wandb_project", None),
            wandb_entity=getattr(args, "wandb_entity", None),
            config=config,
            tensorboard=not getattr(args, "no_tensorboard", False),
        )
