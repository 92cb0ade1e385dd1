"""Config overrides (``--set`` and a sweep's ``set:``): checked against the config's fields, types and
allowed values before anything is written, recorded in config.json, part of the run's folder and label."""

import json

import pytest

import algorithms
from benchmark.analysis.load import read_identity
from benchmark.core import rundir
from benchmark.launch.plan import UsageError, plan, plan_args
from benchmark.launch.sweeps import expand
from benchmark.run import main as run_cli


def _plan(tmp_path, data, **kw):
    return plan(plan_args(out=str(tmp_path / "out"), data_dir=str(data), profile="smoke", **kw))


def test_values_take_their_fields_types_and_allowed_values():
    cls = algorithms.get("moto").config_cls
    assert algorithms.coerce(cls, "alpha", "1") == 1.0 and isinstance(
        algorithms.coerce(cls, "alpha", 1), float
    )
    assert algorithms.coerce(cls, "horizon", "5") == 5
    assert algorithms.coerce(cls, "prioritize_ends", "false") is False
    assert algorithms.coerce(cls, "enc_channels", "(8, 16)") == (8, 16)
    assert algorithms.coerce(cls, "enc_channels", [8, 16]) == (8, 16)  # from YAML
    assert algorithms.coerce(cls, "uncertainty", "probs") == "probs"
    with pytest.raises(ValueError, match="'abc' is not a float"):
        algorithms.coerce(cls, "alpha", "abc")
    with pytest.raises(ValueError, match="is not a int"):
        algorithms.coerce(cls, "horizon", "2.5")
    with pytest.raises(ValueError, match="is not a bool"):
        algorithms.coerce(cls, "prioritize_ends", "1")
    with pytest.raises(
        ValueError, match="must be one of logits, log_probs.*got 'meandiss' \\(did you mean meandis"
    ):
        algorithms.coerce(cls, "uncertainty", "meandiss")
    with pytest.raises(KeyError, match="no field 'alpah' \\(did you mean alpha"):
        algorithms.coerce(cls, "alpah", 1)


def test_a_bad_default_or_variant_value_is_caught_when_the_config_is_made():
    with pytest.raises(ValueError, match="critic_target must be one of min, random"):
        algorithms.register_variant("moto-bad-test", "moto", critic_target="max")
    assert "moto-bad-test" not in algorithms.REGISTRY


def test_set_applies_per_algorithm_and_names_the_runs_folder(tmp_path, drawer_open_data):
    runs = _plan(
        tmp_path,
        drawer_open_data,
        algos="moto,bc",
        set=["moto.alpha=1", "lr=1e-3", "moto.critic_target=random"],
    )
    by = {r.algo: r for r in runs}
    assert by["moto"].overrides == {"alpha": 1.0, "critic_target": "random"}
    assert by["moto"].cfg.alpha == 1.0 and by["moto"].cfg.critic_target == "random"
    assert by["bc"].overrides == {"lr": 1e-3} and by["bc"].cfg.lr == 1e-3  # MOTOConfig has no lr
    assert by["moto"].dir.parent.name == "smoke,alpha=1.0,critic_target=random"
    assert by["bc"].dir.parent.name == "smoke,lr=0.001"
    plain = _plan(tmp_path, drawer_open_data, algos="moto")
    assert plain[0].dir.parent.name == "smoke" and plain[0].overrides == {}


@pytest.mark.parametrize(
    "items, message",
    [
        (["alpah=1"], "no algorithm of the plan \\(moto\\) has a config field 'alpah' \\(did you mean alpha"),
        (["mot.alpha=1"], "'mot' is not an algorithm of the plan \\(moto\\) \\(did you mean moto"),
        (["moto.uncertainty=nope"], "uncertainty must be one of"),
        (["moto.horizon=x"], "horizon: 'x' is not a int"),
        (["alpha"], "expected FIELD=VALUE"),
    ],
)
def test_bad_overrides_are_usage_errors(tmp_path, drawer_open_data, items, message):
    with pytest.raises(UsageError, match=message):
        _plan(tmp_path, drawer_open_data, algos="moto", set=items)


def test_the_run_cli_refuses_a_bad_override_with_one_line_and_writes_nothing(
    tmp_path, drawer_open_data, capsys
):
    out = tmp_path / "out"
    argv = ["--algos", "moto", "--profile", "smoke", "--data-dir", str(drawer_open_data), "--out", str(out)]
    assert run_cli([*argv, "--set", "moto.uncertainty=meandiss"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean meandis" in err[0]
    assert not out.exists()


def test_a_sweep_groups_set_goes_under_the_command_lines(tmp_path, drawer_open_data):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "algos: moto\ntasks: metaworld/drawer-open\nseeds: 0\nprofile: smoke\nset: {alpha: 2}\n"
        "groups:\n  - {name: base}\n  - {name: random, set: {critic_target: random}}\n"
        "  - {name: bc, algos: bc}\n"
    )
    args = plan_args(
        out=str(tmp_path / "out"), data_dir=str(drawer_open_data), sweep=str(sweep), set=["moto.beta=0"]
    )
    groups = expand(args, [])
    ov = [r.overrides for _, runs in groups for r in runs]
    assert ov == [{"alpha": 2.0, "beta": 0.0}, {"alpha": 2.0, "beta": 0.0, "critic_target": "random"}, {}]
    args.set = ["betta=0"]  # no group's algorithm has it
    with pytest.raises(UsageError, match="--set betta: no run of the sweep .* has that config field"):
        expand(args, [])
    args.set = ["moto.betta=0"]
    with pytest.raises(UsageError, match="has no field 'betta' \\(did you mean beta"):
        expand(args, [])
    sweep.write_text("algos: moto\ntasks: metaworld/drawer-open\nseeds: 0\nprofile: smoke\nset: [alpha]\n")
    with pytest.raises(UsageError, match="set must be a mapping"):
        expand(plan_args(out=str(tmp_path / "out"), data_dir=str(drawer_open_data), sweep=str(sweep)), [])


def test_overrides_are_recorded_resumed_and_labelled(tmp_path, drawer_open_data):
    out = tmp_path / "out"
    argv = ["--algos", "bc", "--profile", "smoke", "--data-dir", str(drawer_open_data), "--out", str(out)]
    assert run_cli([*argv, "--set", "lr=0.002", "--no-progress"]) == 0
    (d,) = rundir.find_runs(out)
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["overrides"] == {"lr": 0.002} and cfg["agent_config"]["lr"] == 0.002
    assert rundir.run_key(d)[2] == "smoke,lr=0.002" == d.parent.name
    assert read_identity(d, out)["variant"] == "bc[lr=0.002]"
    assert run_cli([*argv, "--set", "lr=0.002", "--no-progress"]) == 0  # done: skipped, same folder
    assert rundir.find_runs(out) == [d]


def test_the_screening_and_bc_sweep_files_plan_with_their_overrides(tmp_path, drawer_open_data):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    args = plan_args(
        out=str(tmp_path), data_dir=str(drawer_open_data), sweep=str(repo / "slurm/moto_screen.yaml")
    )
    runs = [r for _, rs in expand(args, []) for r in rs]
    assert len(runs) == 18 and len({r.dir for r in runs}) == 18
    assert {r.schedule.online_episodes for r in runs} == {30}
    assert {tuple(r.overrides) for r in runs} >= {
        (),
        ("critic_target",),
        ("penalty_reference",),
        ("bc_data",),
    }
    args = plan_args(out=str(tmp_path), sweep=str(repo / "slurm/bc_ten_tasks.yaml"), dry_run=True)
    assert len([r for _, rs in expand(args, []) for r in rs]) == 10


def test_the_fork_sizes_sweep_sets_the_model_free_learners_sizes(tmp_path):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    args = plan_args(out=str(tmp_path), sweep=str(repo / "slurm/model_free_fork_sizes.yaml"), dry_run=True)
    runs = [r for _, rs in expand(args, []) for r in rs]
    assert len(runs) == 15
    assert all(r.overrides == {"batch_size": 256, "channels": (32, 64, 128, 256)} for r in runs)
    assert {r.dir.parent.name for r in runs} == {
        "cpu,batch_size=256,channels=32-64-128-256",
        "cpu-long,batch_size=256,channels=32-64-128-256",
    }


def test_schedule_fields_are_set_per_run_and_name_its_folder(tmp_path, drawer_open_data):
    (r,) = _plan(
        tmp_path,
        drawer_open_data,
        algos="bc",
        set=["schedule.offline_steps=7", "schedule.updates_per_episode=3", "schedule.online_episodes=5"],
    )
    assert (r.schedule.offline_steps, r.schedule.updates_per_episode, r.schedule.online_steps) == (7, 3, 15)
    assert (r.schedule.eval_every_episodes, r.schedule.eval_episodes) == (1, 1)  # the smoke profile's
    assert r.overrides == {
        "schedule.offline_steps": 7,
        "schedule.online_episodes": 5,
        "schedule.updates_per_episode": 3,
    }
    name = "smoke,schedule.offline_steps=7,schedule.online_episodes=5,schedule.updates_per_episode=3"
    assert r.dir.parent.name == name
    # with an algorithm's own field too; the config takes only its own
    (r,) = _plan(tmp_path, drawer_open_data, algos="bc", set=["lr=0.002", "schedule.eval_episodes=4"])
    assert r.cfg.lr == 0.002 and r.schedule.eval_episodes == 4
    assert r.dir.parent.name == "smoke,lr=0.002,schedule.eval_episodes=4"


@pytest.mark.parametrize(
    "items, message",
    [
        (["schedule.offline_step=3"], "a schedule has no field 'offline_step' \\(did you mean offline_steps"),
        (["schedule.offline_steps=1.5"], "schedule.offline_steps: '1.5' is not a whole number"),
        (["schedule.eval_episodes=0"], "schedule.eval_episodes: must be at least 1, got 0"),
        (["schedule.online_steps=4", "schedule.online_episodes=2"], "give one of the two"),
    ],
)
def test_bad_schedule_overrides_are_usage_errors(tmp_path, drawer_open_data, items, message):
    with pytest.raises(UsageError, match=message):
        _plan(tmp_path, drawer_open_data, algos="bc", set=items)


def test_a_run_with_schedule_overrides_runs_them_records_them_and_resumes(tmp_path, drawer_open_data):
    out = tmp_path / "out"
    argv = ["--algos", "bc", "--profile", "smoke", "--data-dir", str(drawer_open_data), "--out", str(out)]
    sets = ["--set", "schedule.offline_steps=3", "--set", "schedule.online_episodes=1", "--no-progress"]
    assert run_cli([*argv, *sets]) == 0
    (d,) = rundir.find_runs(out)
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["schedule"]["offline_steps"] == 3 and cfg["schedule"]["online_steps"] == 2
    assert cfg["overrides"] == {"schedule.offline_steps": 3, "schedule.online_episodes": 1}
    assert (
        rundir.run_key(d)[2] == d.parent.name == "smoke,schedule.offline_steps=3,schedule.online_episodes=1"
    )
    assert read_identity(d, out)["variant"] == "bc[schedule.offline_steps=3,schedule.online_episodes=1]"
    rows = [line.split(",") for line in (d / "metrics.csv").read_text().splitlines()[1:]]
    assert max(int(r[1]) for r in rows) == 5  # grad_step: 3 offline + 1 episode of 2 updates
    assert run_cli([*argv, *sets]) == 0  # done: skipped, same folder
    assert rundir.find_runs(out) == [d]


def test_a_sweeps_set_takes_schedule_fields_and_a_child_plans_the_same_run(tmp_path, drawer_open_data):
    from benchmark.launch.execute import child_payload

    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "algos: bc\ntasks: metaworld/drawer-open\nseeds: 0\nprofile: smoke\n"
        "groups:\n  - {name: short}\n  - {name: longer, set: {schedule.offline_steps: 9}}\n"
    )
    args = plan_args(out=str(tmp_path / "out"), data_dir=str(drawer_open_data), sweep=str(sweep))
    groups = expand(args, [])
    runs = [r for _, rs in groups for r in rs]
    assert [r.schedule.offline_steps for r in runs] == [4, 9]
    payload = child_payload(groups[1][0], runs[1])  # as the launcher hands a run of a group to its child
    assert payload["set"] == {"schedule.offline_steps": 9}
    (again,) = plan(plan_args(**{k: v for k, v in payload.items() if k != "dir"}))
    assert again.dir == runs[1].dir.resolve() and again.schedule == runs[1].schedule
