"""Helpers for tests of runs: small episodes, a run's metrics rows, kill-and-resume, checkpoint parameters."""

import csv
from pathlib import Path

import numpy as np
import pytest

TIME_COLUMNS = {"steps_per_s", "wall_time"}


def make_episode(T=5, size=8, action_dim=4, seed=0, **extra):
    rng = np.random.default_rng(seed)
    ep = {
        "image": rng.integers(0, 256, (T + 1, size, size, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (T, action_dim)).astype(np.float32),
        "reward": (rng.uniform(size=T) > 0.5).astype(np.float32),
        "success": np.zeros(T, bool),
        "terminal": np.zeros(T, bool),
    }
    ep["success"][-1] = True
    ep.update(extra)
    return ep


def metric_rows(run_dir):
    """A run's metrics.csv rows without the wall-clock columns (what an exact resume reproduces)."""
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


def kill_and_resume(monkeypatch, runner, cut_dir, whole_run, kill_step):
    """Runs ``runner()`` (a Runner writing to ``cut_dir``) until the batch of gradient step ``kill_step`` is
    needed, where it is killed (KeyboardInterrupt, as Ctrl-C would), then once more from its checkpoint in
    a process whose global RNGs are elsewhere; the resumed run's metrics must equal the uninterrupted
    ``whole_run``'s: nothing lost, nothing twice, same numbers."""
    import torch

    from benchmark.core.replay import BatchSampler

    real = BatchSampler.batch

    def dying(self, s, *args):
        if s == kill_step:
            raise KeyboardInterrupt(f"killed at step {s}")
        return real(self, s, *args)

    monkeypatch.setattr(BatchSampler, "batch", dying)
    with pytest.raises(KeyboardInterrupt):
        runner().run()
    monkeypatch.undo()
    assert len(metric_rows(cut_dir)) < len(metric_rows(whole_run))
    torch.manual_seed(12345)  # the resumed process starts with other global RNG states
    np.random.seed(999)
    runner().run()
    assert metric_rows(cut_dir) == metric_rows(whole_run)


def checkpoint_params(run_dir, parts):
    """The parameters of the named parts of the agent in a run's checkpoint, as one flat array."""
    from benchmark.core.rundir import load_checkpoint

    agent = load_checkpoint(run_dir)["agent"]
    return np.concatenate([v.numpy().ravel() for part in parts for v in agent[part].values()])
