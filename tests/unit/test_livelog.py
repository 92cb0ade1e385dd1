"""LiveLog: TensorBoard scalars, evaluation GIFs, W&B offline, and never failing a run."""

import argparse
import builtins
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from benchmark.core.livelog import LiveLog, add_cli_arguments


def scalars(run_dir):
    ea = EventAccumulator(str(run_dir))
    ea.Reload()
    return {tag: [(e.step, e.value) for e in ea.Scalars(tag)] for tag in ea.Tags()["scalars"]}


def test_rows_become_scalars_by_phase_with_the_documented_steps(tmp_path):
    with LiveLog(tmp_path) as live:
        live.log(
            {
                "phase": "offline",
                "grad_step": 100,
                "env_steps": 0,
                "episodes": 0,
                "bc_loss": 2.5,
                "eval_success": "",
                "wall_time": 1.0,
            }
        )
        live.log(
            {"phase": "offline", "grad_step": 200, "env_steps": 0, "episodes": 0, "bc_loss": np.float32(1.5)}
        )
        live.log(
            {
                "phase": "eval",
                "grad_step": 200,
                "env_steps": 0,
                "episodes": 0,
                "eval_success": 0.25,
                "eval_return": float("nan"),
                "note": "text",
            }
        )
        live.log(
            {
                "phase": "online",
                "grad_step": 220,
                "env_steps": 200,
                "episodes": 1,
                "episode_return": 3,
                "episode_success": True,
            }
        )
        live.log(
            {"phase": "eval", "grad_step": 300, "env_steps": 1000, "episodes": 5, "eval_success": "0.75"}
        )
    s = scalars(tmp_path)
    assert s["offline/bc_loss"] == [(100, 2.5), (200, 1.5)]  # offline: step = grad_step
    assert s["eval/eval_success"] == [(0, 0.25), (1000, 0.75)]  # eval/online: step = env_steps
    assert s["online/episode_return"] == [(200, 3.0)] and s["online/episode_success"] == [(200, 1.0)]
    assert "eval/eval_return" not in s and "eval/note" not in s and "offline/eval_success" not in s
    assert any(f.name.startswith("events.out.tfevents") for f in tmp_path.iterdir())


def test_gif_is_written_small_strided_and_validated(tmp_path):
    live = LiveLog(tmp_path, tensorboard=False, gif_max_frames=25)
    t = np.arange(100)[:, None, None]
    frames = np.zeros((100, 64, 64, 3), np.uint8)
    frames[..., 0] = (t + np.arange(64)[None, None, :]) % 256
    path = live.gif(frames, episodes=10)
    assert path == tmp_path / "gifs" / "eval_000010.gif"
    back = iio.imread(path, index=None)
    assert back.shape[0] == 25 and back.shape[1:3] == (64, 64)
    assert 0 < path.stat().st_size < 60_000
    assert not list(tmp_path.glob("*tfevents*"))  # tensorboard=False
    with pytest.raises(ValueError, match="uint8"):
        live.gif(frames.astype(np.float32), 11)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        live.gif(frames[..., 0], 11)
    with pytest.raises(ValueError, match="gif_max_frames"):
        LiveLog(tmp_path, tensorboard=False, gif_max_frames=0)
    live.close()
    live.close()  # safe twice


def test_missing_wandb_warns_and_the_run_goes_on(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_wandb(name, *a, **k):
        if name == "wandb" or name.startswith("wandb."):
            raise ImportError("No module named 'wandb'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    monkeypatch.delitem(sys.modules, "wandb", raising=False)
    with pytest.warns(RuntimeWarning, match="wandb is not installed"):
        live = LiveLog(tmp_path, wandb=True)
    live.log({"phase": "eval", "grad_step": 1, "env_steps": 10, "eval_success": 1.0})
    live.close()
    assert scalars(tmp_path)["eval/eval_success"] == [(10, 1.0)]


def test_a_failing_sink_is_switched_off_with_a_warning(tmp_path):
    live = LiveLog(tmp_path)

    class Broken:
        def add_event(self, e):
            raise OSError("disk full")

        def close(self):
            pass

    live._tb = Broken()
    with pytest.warns(RuntimeWarning, match="disk full"):
        live.log({"phase": "eval", "grad_step": 1, "env_steps": 10, "eval_success": 1.0})
    assert live._tb is None
    live.log({"phase": "eval", "grad_step": 2, "env_steps": 20, "eval_success": 1.0})  # no error
    live.close()


def test_wandb_offline_run_in_the_run_directory(tmp_path):
    # in a subprocess: wandb starts a service process and patches the interpreter
    code = (
        "from benchmark.core.livelog import LiveLog; import numpy as np\n"
        f"l = LiveLog({str(tmp_path)!r}, wandb=True, wandb_project='p', "
        "config={'task': 't', 'algo': 'a', 'seed': 0})\n"
        "l.log({'phase': 'eval', 'grad_step': 1, 'env_steps': 10, 'eval_success': 0.5})\n"
        "l.gif(np.zeros((3, 64, 64, 3), np.uint8), 0)\n"
        "assert l._wandb_run is not None, 'wandb run not started'\n"
        "l.close()\n"
    )
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "wandb_id.txt").read_text().strip()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert runs and list(runs[0].glob("*.wandb"))


def test_cli_flags_build_a_livelog(tmp_path):
    p = argparse.ArgumentParser()
    add_cli_arguments(p)
    help_text = p.format_help()
    for flag in [
        "--wandb",
        "--wandb-project",
        "--wandb-entity",
        "--no-tensorboard",
        "WANDB_MODE=offline",
        "$WANDB_PROJECT",
    ]:
        assert flag in help_text
    args = p.parse_args(["--no-tensorboard"])
    live = LiveLog.from_args(tmp_path, args)
    live.log({"phase": "eval", "grad_step": 1, "env_steps": 10, "eval_success": 1.0})
    live.close()
    assert not list(tmp_path.glob("*tfevents*"))
