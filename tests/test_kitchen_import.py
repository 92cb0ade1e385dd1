import numpy as np
import pytest
from kitchen_sources import kitchen_rollouts, write_d4rl_hdf5, write_dreamer_npz, write_minari

from benchmark.datasets import load_episodes, verify_dataset
from benchmark.datasets.__main__ import main as cli
from benchmark.envs.kitchen import KitchenPixelEnv


@pytest.fixture(scope="module")
def rollouts():
    return kitchen_rollouts(n_episodes=2, length=6, open_at=3)


def _import(tmp_path, fmt, source, *extra):
    return cli(["import", "kitchen", "--format", fmt, "--source", str(source), "--data-dir", str(tmp_path),
                "--quiet", *extra])


def _check_against_rollouts(data_dir, rollouts):
    env = KitchenPixelEnv()
    for task, per_step in [("mixed", 2.0), ("partial", 1.0)]:
        m = verify_dataset(data_dir / "kitchen" / task)
        assert m["task"] == f"kitchen/{task}" and m["episodes"] == 2 and m["transitions"] == 12
        for ep, src in zip(load_episodes(data_dir / "kitchen" / task), rollouts):
            assert ep["image"].shape == (7, 64, 64, 3) and ep["action"].shape == (6, 9)
            np.testing.assert_allclose(ep["action"], src["action"], atol=1e-6)
            # Rewards recomputed for the task's objects: microwave + slide cabinet count in "mixed",
            # only the microwave in "partial"; zero before they were opened at step 3.
            assert ep["reward"][:3].tolist() == [0, 0, 0]
            assert np.all(ep["reward"][3:] == per_step)
            assert ep["objects_done"].shape == (6, 4) and not ep["success"].any()
            np.testing.assert_array_equal(ep["image"][4], env.render_qpos(src["qpos"][4]))
    env.close()


def test_import_d4rl_hdf5(tmp_path, rollouts):
    src = write_d4rl_hdf5(tmp_path / "kitchen_test-v0.hdf5", rollouts)
    assert _import(tmp_path, "d4rl", src) == 0
    _check_against_rollouts(tmp_path, rollouts)


def test_import_dreamer_npz(tmp_path, rollouts):
    src = write_dreamer_npz(tmp_path / "npz", rollouts)
    assert _import(tmp_path, "npz", src) == 0
    _check_against_rollouts(tmp_path, rollouts)


def test_import_minari(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    write_minari("kitchen/noisy-v0", n_episodes=2, length=5)
    assert _import(tmp_path, "minari", "kitchen/noisy-v0", "--tasks", "mixed") == 0
    m = verify_dataset(tmp_path / "kitchen" / "mixed")
    assert (m["episodes"], m["transitions"]) == (2, 10)
    assert not (tmp_path / "kitchen" / "partial").exists()
    ep = load_episodes(tmp_path / "kitchen" / "mixed")[0]
    # qpos recovered from Minari's 59-column observation: the robot starts at the env's init pose.
    env = KitchenPixelEnv()
    env.reset(seed=0)
    np.testing.assert_allclose(ep["qpos"][0], env.data.qpos, atol=1e-5)
    np.testing.assert_array_equal(ep["image"][0], env.render())
    env.close()


def test_import_errors(tmp_path, capsys):
    assert _import(tmp_path, "d4rl", tmp_path / "missing.hdf5") == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "bad.hdf5").write_bytes(b"not hdf5")
    assert _import(tmp_path, "d4rl", tmp_path / "bad.hdf5") == 2
    assert "not a readable HDF5 file" in capsys.readouterr().err
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "ep.npz", image=np.zeros((3, 64, 64, 3), np.uint8), action=np.zeros((3, 9)))
    assert _import(tmp_path, "npz", tmp_path / "npz") == 2
    assert "needs joint positions" in capsys.readouterr().err
    assert _import(tmp_path, "minari", "D4RL/kitchen/nothing-v9") == 2
    assert "MINARI_DATASETS_PATH" in capsys.readouterr().err
    assert not list(tmp_path.glob("kitchen/*"))  # nothing half-written, no temporary folders left
