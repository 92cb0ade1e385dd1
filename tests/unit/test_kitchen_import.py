import numpy as np
import pytest

from benchmark.datasets import load_episodes, verify_dataset
from benchmark.datasets.__main__ import main as cli
from benchmark.tasks.envs.kitchen import KitchenPixelEnv
from tests.helpers.kitchen_sources import kitchen_rollouts, write_d4rl_hdf5, write_dreamer_npz, write_minari


@pytest.fixture(scope="module")
def rollouts():
    return kitchen_rollouts(n_episodes=2, length=6, open_at=3)


def _import(tmp_path, fmt, source, *extra):
    return cli(
        [
            "import",
            "kitchen",
            "--format",
            fmt,
            "--source",
            str(source),
            "--data-dir",
            str(tmp_path),
            "--quiet",
            *extra,
        ]
    )


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


@pytest.mark.slow
def test_import_d4rl_hdf5(tmp_path, rollouts):
    src = write_d4rl_hdf5(tmp_path / "kitchen_test-v0.hdf5", rollouts)
    assert _import(tmp_path, "d4rl", src) == 0
    _check_against_rollouts(tmp_path, rollouts)


@pytest.mark.slow
def test_import_dreamer_npz(tmp_path, rollouts):
    src = write_dreamer_npz(tmp_path / "npz", rollouts)
    assert _import(tmp_path, "npz", src) == 0
    _check_against_rollouts(tmp_path, rollouts)


@pytest.mark.slow
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


def test_import_d5rl_image_npz(tmp_path):
    from benchmark.tasks.envs.kitchen import KITCHEN_TASKS
    from tests.helpers.kitchen_sources import write_d5rl_image_npz

    src, episodes = write_d5rl_image_npz(tmp_path / "d5rl", n_episodes=2, length=5)
    assert _import(tmp_path, "npz", src, "--image-key", "extra_image_camera_12_rgb") == 0
    for task in ("mixed", "partial"):
        m = verify_dataset(tmp_path / "kitchen" / task)
        assert (m["episodes"], m["transitions"]) == (2, 10)
        assert m["generator"]["image_key"] == "extra_image_camera_12_rgb"
        for ep, src_ep in zip(load_episodes(tmp_path / "kitchen" / task), episodes):
            assert "qpos" not in ep  # image-only sources hold no object joint positions
            np.testing.assert_array_equal(ep["image"], src_ep["extra_image_camera_12_rgb"])
            np.testing.assert_array_equal(ep["action"], src_ep["action"][1:])  # row 0: reset placeholder
            columns = np.stack([src_ep[f"reward {o}"][1:] for o in KITCHEN_TASKS[task]], axis=1)
            np.testing.assert_array_equal(ep["reward"], columns.sum(axis=1))
            np.testing.assert_array_equal(ep["objects_done"], columns > 0)
            np.testing.assert_array_equal(ep["success"], (columns > 0).all(axis=1))
    # The two tasks' rewards differ (slide cabinet vs bottom burner), from the same images.
    mixed, partial = (load_episodes(tmp_path / "kitchen" / t)[0]["reward"] for t in ("mixed", "partial"))
    assert not np.array_equal(mixed, partial)


def test_import_d5rl_image_npz_errors(tmp_path, capsys):
    from tests.helpers.kitchen_sources import write_d5rl_image_npz

    src, _ = write_d5rl_image_npz(tmp_path / "d5rl", n_episodes=1, length=3)
    assert _import(tmp_path, "npz", src, "--image-key", "image") == 2
    err = capsys.readouterr().err
    assert (
        "no 'image' array" in err
        and "extra_image_camera_12_rgb" in err
        and len(err.strip().splitlines()) == 1
    )
    data = dict(np.load(src / "episode_000.npz"))
    del data["reward kettle"]
    np.savez(src / "episode_000.npz", **data)
    assert _import(tmp_path, "npz", src, "--image-key", "extra_image_camera_12_rgb") == 2
    assert "'reward kettle'" in capsys.readouterr().err
    assert _import(tmp_path, "d4rl", src, "--image-key", "extra_image_camera_12_rgb") == 2
    assert "needs --format npz" in capsys.readouterr().err
    assert not list(tmp_path.glob("kitchen/*"))


def test_import_minari_download(tmp_path, monkeypatch, capsys):
    # --download of a dataset that is already local: Minari loads it without going out
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    write_minari("kitchen/noisy-v0", n_episodes=1, length=4)
    assert _import(tmp_path, "minari", "kitchen/noisy-v0", "--tasks", "mixed", "--download") == 0
    assert verify_dataset(tmp_path / "kitchen" / "mixed")["transitions"] == 4
    assert _import(tmp_path, "npz", tmp_path, "--download", "--overwrite") == 2
    assert "--download fetches Minari datasets only" in capsys.readouterr().err


@pytest.mark.slow
def test_import_minari_download_without_network_is_a_clear_error(tmp_path, monkeypatch, capsys):
    # this machine reaches no dataset hub: Minari's own download fails (after its retries, ~30 s)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    assert _import(tmp_path, "minari", "D4RL/kitchen/mixed-v2", "--download") == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # (before it: the hub client's own retry lines)
    assert "cannot download Minari dataset 'D4RL/kitchen/mixed-v2'" in last and "minari download" in last
    assert not list(tmp_path.glob("kitchen/*"))
