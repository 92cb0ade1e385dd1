import csv
import json

import numpy as np
import pytest

import algorithms
from benchmark.datasets.__main__ import main as datasets_cli
from benchmark.protocol import NonFiniteLoss, Runner
from benchmark.run import main as run_cli
from benchmark.tasks import Schedule, get_task

TIME_COLUMNS = {"steps_per_s", "wall_time"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    assert datasets_cli(["generate", "metaworld/drawer-open", "--episodes", "2", "--quiet", "--data-dir", str(d)]) == 0
    return d


def rows(path):
    with open(path / "metrics.csv", newline="") as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


SCHEDULE = Schedule(offline_steps=3, updates_per_episode=2, online_steps=8, eval_every_episodes=2, eval_episodes=1)


def make_runner(out, data_dir, **kw):
    spec = get_task("metaworld/drawer-open")
    cfg = algorithms.make_config("bc", "smoke")
    return Runner(spec, "bc", cfg, SCHEDULE, 0, out, data_dir / spec.name, {"episode_length": 5},
                  log_every=1, progress=False, **kw)


def test_schedule_counts_with_the_real_env(tmp_path, data_dir):
    counters = make_runner(tmp_path / "run", data_dir, checkpoint_every=2).run()
    assert counters["grad_step"] == 3 + 4 * 2 and counters["episodes"] == 4
    assert counters["env_steps"] == 4 * 5 * 2  # 4 episodes x 5 agent steps x action repeat 2
    r = rows(tmp_path / "run")
    phases = [x["phase"] for x in r]
    assert phases == ["offline"] * 3 + ["eval"] + ["online", "online", "eval"] * 2
    assert [int(x["grad_step"]) for x in r if x["phase"] == "online"] == [5, 7, 9, 11]
    assert [int(x["episodes"]) for x in r if x["phase"] == "eval"] == [0, 2, 4]
    assert all(x["bc_loss"] for x in r if x["phase"] != "eval")
    assert len(list((tmp_path / "run" / "episodes").glob("*.npz"))) == 4


def test_kill_and_resume_gives_the_same_metrics(tmp_path, data_dir, monkeypatch):
    make_runner(tmp_path / "whole", data_dir, checkpoint_every=2).run()

    import benchmark.protocol as protocol

    real_save, calls = protocol.save_npz, []

    def dying_save(path, arrays):
        calls.append(path)
        if len(calls) == 4:  # killed while storing the 4th online episode (last checkpoint: episode 2)
            raise KeyboardInterrupt
        real_save(path, arrays)

    monkeypatch.setattr(protocol, "save_npz", dying_save)
    with pytest.raises(KeyboardInterrupt):
        make_runner(tmp_path / "cut", data_dir, checkpoint_every=2).run()
    monkeypatch.setattr(protocol, "save_npz", real_save)
    assert len(rows(tmp_path / "cut")) == 3 + 1 + 3 + 1  # rows up to episode 3 were written
    make_runner(tmp_path / "cut", data_dir, checkpoint_every=2).run()
    assert rows(tmp_path / "cut") == rows(tmp_path / "whole")  # nothing lost, nothing twice


class NanAgent(algorithms.bc.BCAgent):
    def update(self, batch):
        m = super().update(batch)
        return {"bc_loss": float("nan")} if self.state["step"] == 2 else m


def test_non_finite_loss_fails_the_run_with_its_step(tmp_path, data_dir):
    algorithms.register("nan-test", algorithms.bc.BCConfig, NanAgent)
    try:
        code = run_cli(["--algos", "nan-test", "--tasks", "metaworld/drawer-open", "--profile", "smoke",
                        "--out", str(tmp_path), "--data-dir", str(data_dir), "--no-progress"])
    finally:
        del algorithms.REGISTRY["nan-test"]
    assert code == 1
    status = json.loads((tmp_path / "metaworld/drawer-open/nan-test/seed_0/status.json").read_text())
    assert status["status"] == "failed" and "non-finite loss at gradient step 2" in status["error"]


def test_run_cli_writes_a_complete_run_and_skips_it_when_done(tmp_path, data_dir, capsys):
    args = ["--algos", "bc", "--tasks", "metaworld/drawer-open", "--seeds", "0", "--profile", "smoke",
            "--out", str(tmp_path), "--data-dir", str(data_dir), "--no-progress"]
    assert run_cli(args) == 0
    d = tmp_path / "metaworld/drawer-open/bc/seed_0"
    assert {p.name for p in d.iterdir()} >= {"config.json", "metrics.csv", "checkpoint.pkl", "status.json", "episodes"}
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["agent_config"]["batch_size"] == 8 and cfg["agent_config"]["cosine_decay_steps"] == 4 + 2 * 2 and cfg["dataset"]["checksum"] and cfg["versions"]["jax"]
    assert json.loads((d / "status.json").read_text())["status"] == "done"
    before = (d / "metrics.csv").read_text()
    assert run_cli(args) == 0
    assert "skipped (done)" in capsys.readouterr().out and (d / "metrics.csv").read_text() == before


@pytest.mark.parametrize("change, message", [
    (["--algos", "dreamer9"], "unknown algorithm 'dreamer9'"),
    (["--tasks", "metaworld/nope"], "unknown task 'metaworld/nope'"),
    (["--profile", "huge"], "unknown profile 'huge'"),
    (["--seeds", "0,x"], "--seeds must be"),
    (["--seeds", "1,1"], "--seeds must be"),
    (["--tasks", "metaworld/hammer"], "generate metaworld/hammer"),
    (["--tasks", "kitchen/mixed"], "import kitchen"),
])
def test_run_cli_errors_write_nothing(tmp_path, data_dir, capsys, change, message):
    args = {"--algos": "bc", "--tasks": "metaworld/drawer-open", "--seeds": "0", "--profile": "smoke"}
    args.update(dict(zip(change[::2], change[1::2])))
    argv = [x for kv in args.items() for x in kv] + ["--out", str(tmp_path / "out"), "--data-dir", str(data_dir)]
    assert run_cli(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_list_and_dry_run(tmp_path, data_dir, capsys):
    assert run_cli(["--list"]) == 0
    out = capsys.readouterr().out
    assert "algorithms: bc" in out and "suite kitchen: kitchen/mixed, kitchen/partial" in out and "smoke" in out
    assert run_cli(["--algos", "bc", "--tasks", "metaworld/drawer-open", "--seeds", "0,1", "--profile", "paper",
                    "--dry-run", "--out", str(tmp_path / "o"), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("1000 offline + 1000x20 online updates, 200000 env steps") == 2
    assert not (tmp_path / "o").exists()
