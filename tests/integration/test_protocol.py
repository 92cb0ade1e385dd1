import json

import numpy as np
import pytest

import algorithms
from benchmark.core.protocol import Runner, RunSpec
from benchmark.run import main as run_cli
from benchmark.tasks import Schedule, get_task
from tests.helpers.runs import kill_and_resume
from tests.helpers.runs import metric_rows as rows


@pytest.fixture
def data_dir(drawer_open_data):
    return drawer_open_data


@pytest.fixture(scope="module")
def torch_algo():
    from tests.helpers.agents import TinyTorchAgent, TinyTorchConfig

    algorithms.register("tiny-torch", TinyTorchConfig, TinyTorchAgent)
    yield "tiny-torch"
    del algorithms.REGISTRY["tiny-torch"]


SCHEDULE = Schedule(
    offline_steps=6, updates_per_episode=2, online_steps=8, eval_every_episodes=2, eval_episodes=1
)


def make_runner(out, data_dir, algo="bc", **kw):
    spec = get_task("metaworld/drawer-open")
    cfg = algorithms.make_config(algo, "smoke")
    kw = {"log_every": 2, "offline_checkpoint_every": 2, "checkpoint_every": 2, "progress": False, **kw}
    return Runner(
        RunSpec(spec, algo, cfg, SCHEDULE, 0, data_dir / spec.name, out, {"episode_length": 5}), **kw
    )


def test_schedule_counts_with_the_real_env(tmp_path, data_dir):
    counters = make_runner(tmp_path / "run", data_dir, log_every=1).run()
    assert counters["grad_step"] == 6 + 4 * 2 and counters["episodes"] == 4
    assert counters["env_steps"] == 4 * 5 * 2  # 4 episodes x 5 agent steps x action repeat 2
    r = rows(tmp_path / "run")
    phases = [x["phase"] for x in r]
    assert phases == ["offline"] * 6 + ["eval"] + ["online", "online", "eval"] * 2
    assert [int(x["grad_step"]) for x in r if x["phase"] == "online"] == [8, 10, 12, 14]
    assert [int(x["episodes"]) for x in r if x["phase"] == "eval"] == [0, 2, 4]
    assert all(x["bc_loss"] for x in r if x["phase"] != "eval")
    assert len(list((tmp_path / "run" / "episodes").glob("*.npz"))) == 4


@pytest.mark.parametrize("algo", ["bc", "tiny-torch"])
@pytest.mark.parametrize("kill_step", [3, 11], ids=["offline", "online"])
def test_kill_and_resume_gives_the_same_metrics(tmp_path, data_dir, monkeypatch, torch_algo, algo, kill_step):
    make_runner(tmp_path / "whole", data_dir, algo=algo).run()
    whole_params = np.concatenate([np.asarray(x).ravel() for x in _params(tmp_path / "whole")])
    kill_and_resume(
        monkeypatch,
        lambda: make_runner(tmp_path / "cut", data_dir, algo=algo),
        tmp_path / "cut",
        tmp_path / "whole",
        kill_step,
    )
    cut_params = np.concatenate([np.asarray(x).ravel() for x in _params(tmp_path / "cut")])
    np.testing.assert_array_equal(cut_params, whole_params)  # bit-exact


def _params(run_dir):
    import jax

    from benchmark.core.rundir import load_checkpoint

    agent = load_checkpoint(run_dir)["agent"]
    tree = agent.get("params", agent.get("net"))
    if isinstance(tree, dict) and all(hasattr(v, "numpy") for v in tree.values()):
        return [v.numpy() for v in tree.values()]
    return jax.tree_util.tree_leaves(tree)


class Recorder:
    """Wraps an agent: records the stacks act() sees and the hooks' calls."""

    def __init__(self, inner):
        self.inner, self.seen, self.calls, self.raw = inner, [], [], []
        self.requests, self.act_stack = inner.requests, inner.act_stack

    def act(self, obs, state, explore):
        if explore:
            self.seen.append(obs.copy())
            action, state = self.inner.act(obs, state, explore)
            self.raw.append(10.0 * action + 3.0)  # far outside the action space
            return self.raw[-1], state
        return self.inner.act(obs, state, explore)

    def update(self, batches):
        return self.inner.update(batches)

    def on_episode(self, episode, online):
        self.calls.append(("episode", online, len(episode["action"])))

    def on_phase(self, phase):
        self.calls.append(("phase", phase))

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, d):
        self.inner.load_state_dict(d)


def test_act_stacks_equal_training_stacks_and_hooks_are_called(tmp_path, data_dir, monkeypatch):
    made = []

    def make(config, context):
        made.append(Recorder(algorithms.bc.BCAgent(config, context)))
        return made[-1]

    import algorithms.bc  # noqa: F401

    algorithms.register("bc-recorder", algorithms.bc.BCConfig, make)
    try:
        runner = make_runner(tmp_path / "run", data_dir, algo="bc-recorder")
        runner.run()
    finally:
        del algorithms.REGISTRY["bc-recorder"]
    agent, store = made[0], runner.store
    n_off = runner.n_offline
    assert agent.calls[: n_off + 1] == [("episode", False, 100)] * n_off + [("phase", "offline")]
    assert agent.calls[n_off + 1 :] == [("phase", "online")] + [("episode", True, 5)] * 4
    k = agent.act_stack
    for e in range(n_off, store.num_episodes):  # every online step: act's stack == the training stack
        for t in range(store.ep_len[e]):
            batch = store.transitions(np.array([store.global_index(e, t)]), k)
            np.testing.assert_array_equal(agent.seen.pop(0), batch["obs"][0])
    assert not agent.seen
    # What is stored is the policy's action as drawn (the fork's way); the env executed its clip, which the
    # episode file keeps too
    stored = np.concatenate([store.episode(e)["action"] for e in range(n_off, store.num_episodes)])
    np.testing.assert_array_equal(stored, np.stack(agent.raw))
    assert np.abs(np.stack(agent.raw)).max() > 1.0
    files = sorted((tmp_path / "run" / "episodes").glob("*.npz"))
    executed = np.concatenate([np.load(f)["executed_action"] for f in files])
    np.testing.assert_array_equal(executed, np.clip(np.stack(agent.raw), -1.0, 1.0))
    np.testing.assert_array_equal(np.concatenate([np.load(f)["action"] for f in files]), stored)


class NanAgent:
    """BC whose loss turns non-finite at the 3rd update."""

    def __init__(self, config, context):
        self.inner = algorithms.get("bc").make(config, context)
        self.requests, self.act_stack, self.n = self.inner.requests, self.inner.act_stack, 0

    def update(self, batches):
        self.n += 1
        m = self.inner.update(batches)
        return {"bc_loss": float("nan")} if self.n == 3 else m

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_non_finite_loss_fails_the_run_with_its_step(tmp_path, data_dir):
    algorithms.register("nan-test", algorithms.get("bc").config_cls, NanAgent)
    try:
        code = run_cli(
            [
                "--algos",
                "nan-test",
                "--tasks",
                "metaworld/drawer-open",
                "--profile",
                "smoke",
                "--out",
                str(tmp_path),
                "--data-dir",
                str(data_dir),
                "--no-progress",
            ]
        )
    finally:
        del algorithms.REGISTRY["nan-test"]
    assert code == 1
    status = json.loads((tmp_path / "metaworld/drawer-open/nan-test/smoke/seed_0/status.json").read_text())
    assert status["status"] == "failed" and "non-finite loss at gradient step 3" in status["error"]


class LateMetricAgent(NanAgent):
    """Adds an online-only metric."""

    def __init__(self, config, context):
        super().__init__(config, context)
        self.online = False

    def on_phase(self, phase):
        self.online = phase == "online"

    def update(self, batches):
        m = self.inner.update(batches)
        return {**m, "online_only": 1.5} if self.online else m


def test_a_metric_that_appears_later_gets_its_column(tmp_path, data_dir):
    algorithms.register("late-test", algorithms.get("bc").config_cls, LateMetricAgent)
    try:
        make_runner(tmp_path / "run", data_dir, algo="late-test").run()
    finally:
        del algorithms.REGISTRY["late-test"]
    r = rows(tmp_path / "run")
    assert "online_only" in r[0]
    assert [x["online_only"] for x in r if x["phase"] == "offline"] == ["", "", ""]
    assert [x["online_only"] for x in r if x["phase"] == "online"] == ["1.5"] * 4


def test_run_cli_writes_a_complete_run_and_skips_it_when_done(tmp_path, data_dir, capsys):
    args = [
        "--algos",
        "bc",
        "--tasks",
        "metaworld/drawer-open",
        "--seeds",
        "0",
        "--profile",
        "smoke",
        "--out",
        str(tmp_path),
        "--data-dir",
        str(data_dir),
        "--no-progress",
    ]
    assert run_cli(args) == 0
    d = tmp_path / "metaworld/drawer-open/bc/smoke/seed_0"
    assert {p.name for p in d.iterdir()} >= {
        "config.json",
        "metrics.csv",
        "checkpoint.pkl",
        "status.json",
        "episodes",
    }
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["agent_config"]["batch_size"] == 8 and cfg["dataset"]["checksum"] and cfg["versions"]["jax"]
    assert cfg["base_algo"] == "bc" and cfg["device"] == "cpu"
    assert json.loads((d / "status.json").read_text())["status"] == "done"
    before = (d / "metrics.csv").read_text()
    assert run_cli(args) == 0
    assert "skipped (done)" in capsys.readouterr().out and (d / "metrics.csv").read_text() == before


@pytest.mark.parametrize(
    "change, message",
    [
        (["--algos", "dreamer9"], "unknown algorithm 'dreamer9'"),
        (["--tasks", "metaworld/nope"], "unknown task 'metaworld/nope'"),
        (["--profile", "huge"], "unknown profile 'huge'"),
        (["--seeds", "0,x"], "--seeds must be"),
        (["--seeds", "1,1"], "--seeds must be"),
        (["--device", "tpu"], "--device must be"),
        (["--tasks", "metaworld/hammer"], "generate metaworld/hammer"),
        (["--tasks", "kitchen/mixed"], "import kitchen"),
    ],
)
def test_run_cli_errors_write_nothing(tmp_path, data_dir, capsys, change, message):
    args = {"--algos": "bc", "--tasks": "metaworld/drawer-open", "--seeds": "0", "--profile": "smoke"}
    args.update(dict(zip(change[::2], change[1::2])))
    argv = [x for kv in args.items() for x in kv] + [
        "--out",
        str(tmp_path / "out"),
        "--data-dir",
        str(data_dir),
    ]
    assert run_cli(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_list_and_dry_run(tmp_path, data_dir, capsys):
    assert run_cli(["--list"]) == 0
    out = capsys.readouterr().out
    assert (
        "algorithms: bc" in out and "suite kitchen: kitchen/mixed, kitchen/partial" in out and "smoke" in out
    )
    assert (
        run_cli(
            [
                "--algos",
                "bc,bc",
                "--tasks",
                "metaworld/drawer-open",
                "--seeds",
                "0,1",
                "--profile",
                "paper",
                "--dry-run",
                "--out",
                str(tmp_path / "o"),
                "--data-dir",
                str(data_dir),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.count("1000 offline + 1000x20 online updates") == 2  # bc,bc counted once
    assert not (tmp_path / "o").exists()


def test_progress_without_a_terminal_is_a_line_every_interval(capsys):
    from benchmark.core.protocol import Progress

    bar = Progress(
        total=10, initial=4, desc="task algo s0", every=0.0
    )  # resumed at 4; pytest's stderr is no tty
    for _ in range(3):
        bar.update(1)
    bar.note(phase="eval")
    bar.close()
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert "\r" not in err and len(lines) == 3
    assert lines[-1].startswith("task algo s0: 7/10 updates") and "ETA" in lines[-1]
    quiet = Progress(total=10, initial=0, desc="q", every=3600.0)
    quiet.update(5)
    assert capsys.readouterr().err == ""  # nothing before the interval has passed


def test_every_evaluation_starts_its_episodes_from_the_same_resets(tmp_path, data_dir):
    # common random numbers: an unchanged policy evaluated twice sees the same episodes, so curves (and
    # methods with the same seed) differ by policy, not by the draw of object positions
    import dataclasses

    runner = make_runner(tmp_path / "run", data_dir)
    runner.schedule = dataclasses.replace(SCHEDULE, eval_episodes=2)
    _, agent = runner._build()
    env = runner.spec.make_env(seed=0, episode_length=5)
    first = runner.evaluate(env, agent)
    eps1 = runner.last_eval_episodes
    second = runner.evaluate(env, agent)
    assert first == second
    for a, b in zip(eps1, runner.last_eval_episodes):
        np.testing.assert_array_equal(a["image"], b["image"])
    assert not np.array_equal(eps1[0]["image"][0], eps1[1]["image"][0])  # episode i and j: other resets


def test_the_missions_command_on_a_machine_with_metaworld_data_only(tmp_path, data_dir, capsys):
    # a dry run shows the whole plan with the missing datasets marked, and how to get them
    argv = [
        "--algos",
        "moto,dreamerv2",
        "--tasks",
        "all",
        "--out",
        str(tmp_path / "out"),
        "--data-dir",
        str(data_dir),
    ]
    assert run_cli([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    plan = [line for line in out.splitlines() if " -> " in line]
    assert len(plan) == 24 and sum("[dataset missing]" in line for line in plan) == 22  # drawer-open is there
    assert "generate kitchen" in out and "--dataset kitchen/scripted" in out and "import kitchen" in out
    # the real command stops before writing anything, naming every missing dataset in one line
    assert run_cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "kitchen/mixed at" in err and "kitchen/partial at" in err
    assert "metaworld/hammer at" in err and "metaworld/drawer-open at" not in err
    assert "generate kitchen" in err and "D4RL HDF5, Minari, D5RL NPZ" in err
    assert not (tmp_path / "out").exists()


def test_the_paper_profile_on_a_cpu_says_so_in_one_line(tmp_path, data_dir, capsys):
    from benchmark.launch.plan import has_nvidia_gpu

    if has_nvidia_gpu():
        pytest.skip("this machine has an NVIDIA GPU")
    assert (
        run_cli(["--algos", "bc", "--out", str(tmp_path / "o"), "--data-dir", str(data_dir), "--dry-run"])
        == 0
    )
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "GPU profile" in notes[0] and "--profile cpu" in notes[0]
    assert (
        run_cli(
            [
                "--algos",
                "bc",
                "--profile",
                "cpu",
                "--out",
                str(tmp_path / "o"),
                "--data-dir",
                str(data_dir),
                "--dry-run",
            ]
        )
        == 0
    )
    assert "note:" not in capsys.readouterr().err


def test_an_iql_online_episode_stores_its_samples_and_the_env_gets_the_clip(tmp_path, data_dir):
    # IQL explores with mean + N(0, I), unclipped (as the authors' fork): samples leave [-1, 1]
    make_runner(tmp_path / "run", data_dir, algo="iql").run()
    files = sorted((tmp_path / "run" / "episodes").glob("*.npz"))
    drawn = np.concatenate([np.load(f)["action"] for f in files])
    executed = np.concatenate([np.load(f)["executed_action"] for f in files])
    assert np.abs(drawn).max() > 1.0
    np.testing.assert_array_equal(executed, np.clip(drawn, -1.0, 1.0))


def test_a_goal_request_on_a_dataset_without_goal_episodes_stops_before_training(tmp_path):
    """MOTO's filtered BC samples goal-reaching episodes only: with none, the run stops at set-up, naming
    the request, the task's goal and what to change (not with a sampler error at the first update)."""
    from benchmark.datasets.format import DatasetWriter
    from tests.helpers.runs import make_episode

    spec = get_task("metaworld/drawer-open")
    with DatasetWriter(tmp_path / "data" / spec.name, task=spec.name, generator={}, seed=0) as w:
        for i in range(2):
            w.add(make_episode(T=6, size=64, seed=i, success=np.zeros(6, bool)))
    cfg = algorithms.make_config("moto", "smoke")
    runner = Runner(
        RunSpec(spec, "moto", cfg, SCHEDULE, 0, tmp_path / "data" / spec.name, tmp_path / "run", {}),
        progress=False,
    )
    with pytest.raises(ValueError, match="'bc' batches from goal-reaching episodes only.*moto-no-bc"):
        runner.run()
    assert not (tmp_path / "run" / "metrics.csv").exists() or rows(tmp_path / "run") == []
