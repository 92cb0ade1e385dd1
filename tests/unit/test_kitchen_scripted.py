"""The scripted Kitchen demonstrator and the ``generate kitchen`` datasets built from it."""

import json

import numpy as np
import pytest

import benchmark.tasks.envs  # noqa: F401  (headless GL before mujoco)
from benchmark.datasets import kitchen_demo as ke
from benchmark.datasets import load_episodes, verify_dataset
from benchmark.datasets.__main__ import main as cli
from benchmark.tasks.envs.kitchen import KITCHEN_TASKS


def _in_goal(qpos, obj):
    """Independent of benchmark.tasks.envs.kitchen.objects_done: D4RL's rule read off gymnasium-robotics'
    tables."""
    from gymnasium_robotics.envs.franka_kitchen.kitchen_env import (
        BONUS_THRESH,
        OBS_ELEMENT_GOALS,
        OBS_ELEMENT_INDICES,
    )

    return (
        np.linalg.norm(qpos[..., OBS_ELEMENT_INDICES[obj]] - OBS_ELEMENT_GOALS[obj], axis=-1) < BONUS_THRESH
    )


@pytest.fixture(scope="module")
def physics():
    env = ke.make_physics_env()
    yield env
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("obj", ke.OBJECTS)
def test_object_plan_reaches_its_goal(physics, obj):
    steps = 200 if obj == "hinge cabinet" else 110
    for seed in (0, 1):
        out = ke.rollout(physics, [obj], steps=steps, seed=seed, noise=0.1)
        done = _in_goal(out["qpos"], obj)
        assert not done[0], f"{obj} starts in its goal configuration"
        assert done[-1], f"{obj}: plan did not reach the goal with seed {seed}"
        others = [o for o in ke.OBJECTS if o != obj]
        assert not any(_in_goal(out["qpos"][-1], o) for o in others), (
            f"{obj}'s plan moved another object to its goal"
        )


def test_chained_plans_and_seeded_noise(physics):
    order = ["light switch", "kettle", "bottom burner", "slide cabinet"]
    a = ke.rollout(physics, order, steps=280, seed=3, noise=0.1)
    assert all(_in_goal(a["qpos"][-1], o) for o in order)
    assert a["action"].shape == (280, 9) and a["action"].dtype == np.float32
    assert np.all(np.abs(a["action"]) <= 1.0)
    b = ke.rollout(physics, order, steps=40, seed=3, noise=0.1)
    np.testing.assert_array_equal(a["action"][:40], b["action"])  # same seed, same actions
    c = ke.rollout(physics, order, steps=40, seed=4, noise=0.1)
    assert not np.array_equal(b["action"], c["action"])  # the noise is seeded per episode
    with pytest.raises(ValueError, match="unknown kitchen object"):
        ke.rollout(physics, ["oven"], steps=1, seed=0, noise=0.0)


def test_episode_orders():
    from benchmark.datasets.kitchen_demo import draw_order

    rng = np.random.default_rng(0)
    orders = [draw_order(rng) for _ in range(400)]
    mixed, partial = set(KITCHEN_TASKS["mixed"]), KITCHEN_TASKS["partial"]
    assert all(len(set(o)) == 4 for o in orders)
    assert any(set(o) == mixed for o in orders)  # the "mixed" set is completed in some episodes
    assert not any(set(o) == set(partial) for o in orders)  # the "partial" set never all four
    assert any(set(partial[:3]) <= set(o) for o in orders)  # ... but its first three, yes


def _generate(tmp_path, *extra):
    return cli(
        [
            "generate",
            "kitchen",
            "--data-dir",
            str(tmp_path),
            "--quiet",
            "--episodes",
            "2",
            "--episode-length",
            "60",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("scripted")
    assert _generate(root, "--seed", "2") == 0
    return root


@pytest.mark.slow
def test_generated_datasets_rewards(generated):
    from benchmark.datasets.kitchen_demo import episode_plan

    eps = {t: load_episodes(generated / f"kitchen/scripted-{t}") for t in ("mixed", "partial")}
    for task, objects in KITCHEN_TASKS.items():
        m = verify_dataset(generated / f"kitchen/scripted-{task}")
        assert m["task"] == f"kitchen/{task}" and m["generator"]["name"] == "kitchen-scripted"
        assert (m["episodes"], m["transitions"]) == (2, 120)
        assert m["orders"] == [episode_plan(2, i)["order"] for i in range(2)]
        for ep in eps[task]:
            assert ep["image"].shape == (61, 64, 64, 3) and ep["qpos"].shape == (61, 30)
            done = np.stack([_in_goal(ep["qpos"][1:].astype(np.float64), o) for o in objects], axis=1)
            np.testing.assert_array_equal(ep["objects_done"], done)
            np.testing.assert_array_equal(ep["reward"], done.sum(axis=1))
            np.testing.assert_array_equal(ep["success"], done.all(axis=1))
            assert not ep["terminal"].any()
    # Same episodes, task-specific rewards: images and actions are shared.
    for a, b in zip(eps["mixed"], eps["partial"]):
        np.testing.assert_array_equal(a["image"], b["image"])
        np.testing.assert_array_equal(a["action"], b["action"])
    # The images are rendered states: the scene changes as the arm moves.
    assert np.abs(eps["mixed"][0]["image"][-1].astype(int) - eps["mixed"][0]["image"][0]).mean() > 1.0


@pytest.mark.slow
def test_same_seed_same_bytes_with_two_workers(generated, tmp_path):
    assert _generate(tmp_path, "--seed", "2", "--workers", "2") == 0
    for task in ("mixed", "partial"):
        one = json.loads((generated / f"kitchen/scripted-{task}/manifest.json").read_text())
        two = json.loads((tmp_path / f"kitchen/scripted-{task}/manifest.json").read_text())
        assert one["checksum"] == two["checksum"] and one["files"] == two["files"]
        for f in one["files"]:
            assert (generated / f"kitchen/scripted-{task}/episodes/{f['name']}").read_bytes() == (
                tmp_path / f"kitchen/scripted-{task}/episodes/{f['name']}"
            ).read_bytes()


def test_stats_table(generated, capsys):
    assert cli(["stats", "--data-dir", str(generated)]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "objects_per_episode" in line]
    assert lines, out
    table = out[out.index(lines[0]) :]
    m = json.loads((generated / "kitchen/scripted-mixed/manifest.json").read_text())
    row = next(line for line in table.splitlines() if line.startswith("kitchen/scripted-mixed"))
    assert row.split()[1:3] == ["2", "120"] and f"{m['objects_per_episode']:.3f}" in row
    paper = next(line for line in table.splitlines() if line.startswith("paper"))
    assert "563" in paper and "128569" in paper and "261.120" in paper and "3.980" in paper


def test_generate_kitchen_errors(generated, tmp_path, capsys):
    assert _generate(generated) == 2  # exists already
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    for bad, msg in [
        (["--episodes", "0"], "--episodes must be at least 1"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--action-noise", "2"], "--action-noise must be between 0 and 1"),
    ]:
        assert cli(["generate", "kitchen", "--data-dir", str(tmp_path), "--quiet", *bad]) == 2
        err = capsys.readouterr().err
        assert msg in err and len(err.strip().splitlines()) == 1
    assert cli(["generate", "kitchen/mixed", "--data-dir", str(tmp_path), "--quiet"]) == 2
    assert "generate kitchen" in capsys.readouterr().err
    assert not list(tmp_path.glob("kitchen/*"))


@pytest.mark.slow
def test_success_table(capsys):
    assert ke.main(["--episodes", "1"]) == 0
    out = capsys.readouterr().out
    for obj in ke.OBJECTS:
        assert f"{obj:15s} alone:   1 / 1" in out, out
    assert "chained, all four: 1 / 1; by position in the chain: 1st 1, 2nd 1, 3rd 1, 4th 1" in out, out


def test_the_missing_data_error_sees_the_scripted_data_on_disk(generated, tmp_path):
    from benchmark.core.cli import UsageError
    from benchmark.launch.plan import missing_datasets_message, plan, plan_args

    args = plan_args(
        algos="bc", tasks="kitchen", profile="smoke", data_dir=str(generated), out=str(tmp_path / "o")
    )
    with pytest.raises(UsageError) as e:
        plan(args, resolve=False)
    msg = str(e.value)
    assert "kitchen/mixed at" in msg and "kitchen/partial at" in msg
    assert (
        "already on disk: kitchen/scripted-mixed (for kitchen/mixed), kitchen/scripted-partial (for "
        "kitchen/partial); run with `--dataset kitchen/scripted`" in msg
    )
    assert "--episodes N" in msg and "generate kitchen" in msg
    assert len(plan(plan_args(**{**vars(args), "dataset": "kitchen/scripted"}), resolve=False)) == 2
    # one task's data only: that task is named with its option; nothing on disk: no such clause
    missing = {
        "kitchen": {
            "kitchen/mixed": tmp_path / "kitchen/mixed",
            "kitchen/partial": tmp_path / "kitchen/partial",
        }
    }
    (tmp_path / "kitchen/mine").mkdir(parents=True)
    (tmp_path / "kitchen/mine/manifest.json").write_text(json.dumps({"task": "kitchen/partial"}))
    (tmp_path / "kitchen/mine-probe").mkdir(parents=True)  # a probe set is no run's data: not offered
    probe = {"task": "kitchen/partial", "probe": {"of_dataset": "kitchen/mine"}}
    (tmp_path / "kitchen/mine-probe/manifest.json").write_text(json.dumps(probe))
    msg = missing_datasets_message(missing, tmp_path)
    assert "mine-probe" not in msg
    assert (
        "already on disk: kitchen/mine (for kitchen/partial); run kitchen/partial with "
        "`--dataset kitchen/mine`" in msg
    )
    assert "already on disk" not in missing_datasets_message(missing, tmp_path / "empty")


@pytest.mark.slow
def test_generation_reports_frames_within_an_episode_and_each_warning_once(monkeypatch):
    import warnings

    class Writer:
        def __init__(self):
            self.episodes = []

        def add(self, ep):
            self.episodes.append(ep)

    class Bar:
        def __init__(self):
            self.updates = []

        def update(self, n):
            self.updates.append(n)

    run = ke.run_episode

    def noisy(plan, env=None, **kw):  # a warning in every episode, as a simulator may raise
        warnings.warn("a warning every episode raises")
        return run(plan, env, **kw)

    monkeypatch.setattr(ke, "run_episode", noisy)
    monkeypatch.setattr(ke, "import_quietly", lambda: ["the import notice"])
    writer, bar, warned = Writer(), Bar(), []
    ke.generate({"mixed": writer}, episodes=2, steps=6, progress=bar, warn=warned.append)
    assert len(writer.episodes) == 2
    assert bar.updates == [1] * 14  # every frame of both 6-step episodes (7 frames each), one at a time
    assert warned == ["the import notice", "a warning every episode raises"]
