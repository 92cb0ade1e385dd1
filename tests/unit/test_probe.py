"""Probe sets (held-out episodes beside a dataset, for Fig. 4): their plans, their naming rule and what the
analysis makes of the rows the agents write along them."""

import numpy as np
import pandas as pd
import pytest

from benchmark.analysis.diagnostics import read_reward_prediction, reward_generalisation_summary
from benchmark.datasets import kitchen_demo as kd
from benchmark.datasets.format import DatasetError, DatasetWriter
from benchmark.datasets.probe import find_probe, load_probe, probe_path, probe_record
from tests.helpers.runs import make_episode


@pytest.mark.parametrize("task", ["mixed", "partial"])
def test_probe_plans_do_the_tasks_four_objects_and_never_repeat_a_dataset_episode(task):
    plans = [kd.probe_plan(task, 0, i) for i in range(200)]
    assert all(set(p["order"]) == set(kd.KITCHEN_TASKS[task]) and len(p["order"]) == 4 for p in plans)
    assert all(p["order"] == sorted(p["order"], key=kd.CHAIN_OBJECTS.index) for p in plans)  # D4RL's order
    assert [kd.probe_plan(task, 0, i) for i in range(3)] == plans[:3]  # seeded: the same every time
    data_resets = {kd.episode_plan(seed, i)["reset_seed"] for seed in range(3) for i in range(200)}
    assert not data_resets & {p["reset_seed"] for p in plans}
    other = "mixed" if task == "partial" else "partial"
    assert {p["reset_seed"] for p in plans}.isdisjoint(
        kd.probe_plan(other, 0, i)["reset_seed"] for i in range(200)
    )


def test_the_datasets_draws_never_do_all_four_partial_objects():
    orders = [kd.episode_plan(0, i)["order"] for i in range(2000)]
    assert not any(
        set(o) == set(kd.PARTIAL) for o in orders
    )  # so a partial probe episode is new to the model


def test_probe_plan_rejects_an_unknown_task():
    with pytest.raises(ValueError, match="unknown kitchen task 'kettle'; known: mixed, partial"):
        kd.probe_plan("kettle", 0, 0)


def _write(path, task, **extra):
    """A one-episode dataset whose manifest has ``extra`` entries (a probe set's ``probe``)."""
    w = DatasetWriter(path, task=task, generator={"name": "test"}, seed=0, overwrite=True)
    w.add(make_episode(T=3))
    w.commit(**extra)


def test_a_probe_set_is_found_beside_its_dataset_by_name_and_checked(tmp_path):
    data = tmp_path / "kitchen" / "scripted-partial"
    _write(data, "kitchen/partial")
    assert probe_path(data) == tmp_path / "kitchen" / "scripted-partial-probe"
    assert find_probe(data, "kitchen/partial") is None and load_probe(data, "kitchen/partial") == []
    assert probe_record(data, "kitchen/partial") is None
    _write(probe_path(data), "kitchen/partial")  # named as one, but no probe entry
    with pytest.raises(DatasetError, match="named as the probe set of scripted-partial but its manifest"):
        find_probe(data, "kitchen/partial")
    _write(probe_path(data), "kitchen/partial", probe={"task": "kitchen/partial"})
    assert find_probe(data, "kitchen/partial") == probe_path(data)
    assert len(load_probe(data, "kitchen/partial")) == 1
    assert probe_record(data, "kitchen/partial")["episodes"] == 1
    with pytest.raises(DatasetError, match="is a probe set of kitchen/partial, not of kitchen/mixed"):
        find_probe(data, "kitchen/mixed")


def _rows(episode_set, episodes, final_true, final_pred, policy_final, data_max="3.0"):
    rows = []
    for e in range(episodes):
        for t in range(2, 6):
            last = t == 5
            rows.append(
                dict(
                    grad_step=10,
                    phase="offline",
                    source="data",
                    episode=e,
                    t=t,
                    context=2,
                    true_reward=final_true if last else 0.0,
                    predicted_reward=final_pred + e if last else 0.5,
                    episode_set=episode_set,
                    data_max_reward=data_max,
                )
            )
            rows.append(
                {
                    **rows[-1],
                    "source": "policy",
                    "true_reward": "",
                    "predicted_reward": policy_final if last else 0,
                }
            )
    return rows


def test_the_summary_takes_the_probe_episodes_and_old_files_read_as_dataset_episodes(tmp_path):
    path = tmp_path / "reward_prediction.csv"
    earlier = [{**r, "grad_step": 5} for r in _rows("probe", 1, 4.0, 0.0, 0.0)]
    pd.DataFrame(earlier + _rows("dataset", 1, 3.0, 2.5, 9.0) + _rows("probe", 2, 4.0, 3.5, 3.0)).to_csv(
        path, index=False
    )
    df = read_reward_prediction(path).assign(run="r")
    s = reward_generalisation_summary(df).iloc[0]
    assert (s["grad_step"], s["episode_set"], s["episodes"]) == (10, "probe", 2)
    assert (s["final_true_reward"], s["final_predicted_reward"], s["final_policy_reward"]) == (4.0, 4.0, 3.0)
    assert (s["max_predicted_reward"], s["data_max_reward"], s["dataset_final_predicted_reward"]) == (
        4.0,
        3.0,
        2.5,
    )
    # a file written before the two columns: dataset episodes, no data maximum
    old = pd.DataFrame(_rows("dataset", 1, 3.0, 2.5, 1.0)).drop(columns=["episode_set", "data_max_reward"])
    old.to_csv(path, index=False)
    df = read_reward_prediction(path)
    assert set(df["episode_set"]) == {"dataset"} and df["data_max_reward"].isna().all()
    s = reward_generalisation_summary(df.assign(run="r")).iloc[0]
    assert (
        s["episode_set"] == "dataset"
        and s["final_predicted_reward"] == 2.5
        and np.isnan(s["data_max_reward"])
    )


@pytest.mark.slow
def test_probe_rows_come_beside_the_dataset_rows_and_leave_them_and_the_other_files_unchanged(tmp_path):
    """``write_run_diagnostics`` on a smoke DreamerV2 model: the probe episodes add ``episode_set=probe``
    rows (data and policy) and change no dataset row, reconstruction or action-fit number."""
    import algorithms
    from algorithms.contract import RunContext
    from algorithms.diagnostics import write_run_diagnostics

    cfg = algorithms.make_config("dreamerv2", "smoke")
    agent = algorithms.make_agent(
        "dreamerv2", cfg, RunContext(obs_shape=(64, 64, 3), action_dim=4, seed=0, total_updates=10)
    )
    data = [make_episode(T=6, size=64, seed=s) for s in (1, 2)]
    probe = [make_episode(T=8, size=64, seed=s) for s in (3, 4, 5)]
    kw = dict(grad_step=7, phase="offline", context=2, seed=0, actor=agent.actor, gif_length=4)
    write_run_diagnostics(agent.wm, data, tmp_path / "without", data_max_reward=1.0, **kw)
    write_run_diagnostics(agent.wm, data, tmp_path / "with", probe_episodes=probe, data_max_reward=1.0, **kw)

    def read(run, name):
        return pd.read_csv(tmp_path / run / "diagnostics" / name)

    without, with_probe = read("without", "reward_prediction.csv"), read("with", "reward_prediction.csv")
    assert set(without["episode_set"]) == {"dataset"}
    pd.testing.assert_frame_equal(with_probe[with_probe["episode_set"] == "dataset"], without)
    rows = with_probe[with_probe["episode_set"] == "probe"]
    assert len(rows) == 2 * 3 * (8 + 1 - 2)  # data and policy, 3 episodes, frames 2 .. 8
    assert sorted(set(rows["episode"])) == [0, 1, 2] and set(rows["data_max_reward"]) == {1.0}
    truth = rows[(rows["source"] == "data") & (rows["episode"] == 2)].sort_values("t")["true_reward"]
    np.testing.assert_array_equal(truth, probe[2]["reward"][1:])  # the reward into frame t, t = 2 .. 8
    for name in ("reconstruction.csv", "action_fit.csv"):
        pd.testing.assert_frame_equal(read("with", name), read("without", name))


def _kitchen_set(root, name, size=64, **extra):
    w = DatasetWriter(root / name, task="kitchen/partial", generator={"name": "test"}, seed=0, overwrite=True)
    w.add(make_episode(T=3, size=size, action_dim=9))
    w.commit(**extra)


def test_a_run_refuses_a_probe_set_that_does_not_match_its_dataset(tmp_path, capsys):
    from benchmark.run import main as run_cli

    _kitchen_set(tmp_path, "kitchen/demo")
    probe = {"task": "kitchen/partial", "of_dataset": "kitchen/demo"}
    _kitchen_set(tmp_path, "kitchen/demo-probe", size=8, probe=probe)  # 8x8 images beside 64x64
    argv = ["--algos", "bc", "--tasks", "kitchen/partial", "--profile", "smoke", "--dry-run"]
    argv += ["--data-dir", str(tmp_path), "--out", str(tmp_path / "runs"), "--dataset", "kitchen/demo"]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "probe set" in err and "[8, 8, 3]" in err and "[64, 64, 3]" in err and "\n" not in err
    _kitchen_set(tmp_path, "kitchen/demo-probe", probe=probe)
    assert run_cli(argv) == 0


@pytest.mark.parametrize(
    "argv, says",
    [
        (["probe", "kitchen/demo-probe"], "kitchen/demo-probe is a probe set itself"),
        (["probe", "metaworld/demo"], "probe sets are made for Kitchen datasets"),
        (["probe", "kitchen/demo"], "kitchen/demo-probe already exists; pass --overwrite"),
        (["probe", "kitchen/nothing"], "no dataset at"),
        (["probe", "kitchen/demo", "--episodes", "0"], "--episodes must be at least 1"),
        (["subset", "kitchen/demo-probe", "--episodes", "1"], "kitchen/demo-probe is a probe set"),
    ],
)
def test_the_probe_command_and_subset_refuse_what_is_no_probe_target(tmp_path, capsys, argv, says):
    from benchmark.datasets.__main__ import main as datasets_cli

    _kitchen_set(tmp_path, "kitchen/demo")
    probe = {"task": "kitchen/partial", "of_dataset": "kitchen/demo"}
    _kitchen_set(tmp_path, "kitchen/demo-probe", probe=probe)
    w = DatasetWriter(tmp_path / "metaworld/demo", task="metaworld/door-open", generator={}, seed=0)
    w.add(make_episode(T=3))
    w.commit()
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert datasets_cli([*argv, "--quiet", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_subset_uses_its_parents_probe_set_while_the_parent_is_unchanged(tmp_path):
    """Fig. 5's subsets of scripted-partial get Fig. 4's probe rows too: the parent's held-out episodes are
    held out from every subset of it. A parent rewritten since (another checksum) is no longer its parent."""
    from benchmark.datasets.__main__ import main as datasets_cli

    data = tmp_path / "kitchen" / "demo"
    w = DatasetWriter(data, task="kitchen/partial", generator={"name": "test"}, seed=0)
    for i in range(3):
        w.add(make_episode(T=3, seed=i))
    w.commit()
    probe = {"task": "kitchen/partial", "of_dataset": "kitchen/demo"}
    _write(probe_path(data), "kitchen/partial", probe=probe)
    args = ["subset", "kitchen/demo", "--episodes", "2", "--quiet", "--data-dir", str(tmp_path)]
    assert datasets_cli(args) == 0
    subset = tmp_path / "kitchen" / "demo-2ep-seed0"
    assert find_probe(subset, "kitchen/partial") == probe_path(data)
    assert probe_record(subset, "kitchen/partial") == probe_record(data, "kitchen/partial")
    assert len(load_probe(subset, "kitchen/partial")) == 1
    with pytest.raises(DatasetError, match="is a probe set of kitchen/partial, not of kitchen/mixed"):
        find_probe(subset, "kitchen/mixed")
    _write(data, "kitchen/partial")  # the parent rewritten: one episode, another checksum
    assert find_probe(subset, "kitchen/partial") is None
