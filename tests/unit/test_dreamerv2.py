"""DreamerV2 on the protocol (smoke sizes): exact resume after a kill, diagnostics in the run directory,
acting resets and carries its latent, the actor trains through the frozen model, the CLI smoke run."""

import json

import numpy as np
import pytest
import torch

import algorithms
from benchmark.core.protocol import Runner, RunSpec
from benchmark.datasets.__main__ import main as datasets_cli
from benchmark.run import main as run_cli
from benchmark.tasks import Schedule, get_task
from tests.helpers.runs import checkpoint_params, kill_and_resume
from tests.helpers.runs import metric_rows as rows

SCHEDULE = Schedule(
    offline_steps=6, updates_per_episode=2, online_steps=8, eval_every_episodes=2, eval_episodes=1
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    assert (
        datasets_cli(
            ["generate", "metaworld/drawer-open", "--episodes", "2", "--quiet", "--data-dir", str(d)]
        )
        == 0
    )
    return d


def make_runner(out, data_dir, **kw):
    spec = get_task("metaworld/drawer-open")
    cfg = algorithms.make_config("dreamerv2", "smoke")
    kw = {"log_every": 2, "offline_checkpoint_every": 2, "checkpoint_every": 2, "progress": False, **kw}
    return Runner(
        RunSpec(spec, "dreamerv2", cfg, SCHEDULE, 0, data_dir / spec.name, out, {"episode_length": 5}), **kw
    )


def params(run_dir):
    return checkpoint_params(run_dir, ("wm", "actor", "critic", "target_critic"))


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("whole") / "run"
    make_runner(out, data_dir).run()
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kill_step", [3, 11], ids=["offline", "online"])
def test_kill_and_resume_is_bit_exact(tmp_path, data_dir, monkeypatch, whole_run, kill_step):
    kill_and_resume(
        monkeypatch, lambda: make_runner(tmp_path / "cut", data_dir), tmp_path / "cut", whole_run, kill_step
    )
    np.testing.assert_array_equal(params(tmp_path / "cut"), params(whole_run))
    r = rows(whole_run)
    assert all(float(x["image_loss"]) > 0 and x["actor_loss"] for x in r if x["phase"] != "eval")


def test_diagnostics_are_written_at_each_evaluation(whole_run):
    from benchmark.analysis.diagnostics import read_reward_prediction

    evals = [int(x["grad_step"]) for x in rows(whole_run) if x["phase"] == "eval"]
    assert evals == [6, 10, 14]
    gifs = sorted(p.name for p in (whole_run / "gifs").glob("openloop_*.gif"))
    assert gifs == [f"openloop_{s:07d}.gif" for s in evals]
    from PIL import Image

    with Image.open(whole_run / "gifs" / gifs[0]) as im:  # true | model | error, two episodes side by side
        assert im.size == (2 * 64, 3 * 64) and im.n_frames == 50
    df = read_reward_prediction(whole_run / "diagnostics" / "reward_prediction.csv")
    assert set(df["grad_step"]) == {6} and set(df["phase"]) == {"offline"}  # the end of offline training
    data = df[df["source"] == "data"]
    assert len(data) == 2 * (101 - 2) and data["t"].min() == 2 and data["true_reward"].notna().all()
    assert df[df["source"] == "policy"]["true_reward"].isna().all()
    import pandas as pd

    fit = pd.read_csv(whole_run / "diagnostics" / "action_fit.csv")  # the actor on the same episodes
    assert sorted(set(fit["grad_step"])) == evals and len(fit) == len(evals) * 2 * 100
    assert fit["t"].max() == 99 and (fit["action_error"] >= 0).all()


def test_action_fit_compares_the_mode_at_frame_t_with_the_action_taken_there():
    from algorithms.diagnostics import action_fit

    agent = smoke_agent()
    last = agent.actor.net[-1]  # a constant actor: zero weights, mean tanh(atanh(c)) = c, so mode = c
    c = torch.tensor([0.5, -0.25, 0.0, 0.75])
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.cat([torch.atanh(c), torch.zeros(4)]))
    rng = np.random.default_rng(0)
    ep = {
        "image": rng.integers(0, 256, (7, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (6, 4)).astype(np.float32),
        "reward": np.zeros(6, np.float32),
    }
    rows = action_fit(agent.wm, agent.actor, [ep, ep])
    assert [(r["episode"], r["t"]) for r in rows] == [(e, t) for e in range(2) for t in range(6)]
    expected = np.abs(ep["action"] - c.numpy()).mean(1)  # action t is the one taken at frame t
    np.testing.assert_allclose([r["action_error"] for r in rows[:6]], expected, rtol=1e-5)


def smoke_agent(**kw):
    from algorithms.contract import RunContext

    cfg = algorithms.make_config("dreamerv2", "smoke", **kw)
    return algorithms.make_agent(
        "dreamerv2", cfg, RunContext(obs_shape=(64, 64, 3), action_dim=4, seed=0, total_updates=10)
    )


def test_acting_starts_from_the_initial_state_and_carries_the_latent():
    agent = smoke_agent()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 1, 64, 64, 3), dtype=np.uint8)
    g0 = agent.gen.get_state()
    a1, s1 = agent.act(frames[0], None, explore=False)
    agent.gen.set_state(g0)
    a1_again, _ = agent.act(frames[0], None, explore=False)
    np.testing.assert_array_equal(a1, a1_again)  # state None = the initial state, every time
    latent, prev_action = s1
    np.testing.assert_allclose(prev_action[0].numpy(), a1)
    _, s2 = agent.act(frames[1], s1, explore=True)
    assert not torch.equal(s2[0]["deter"], latent["deter"])  # the recurrent state moves on
    assert a1.dtype == np.float32 and a1.shape == (4,) and np.all(np.abs(a1) <= 1)


def test_actor_learns_through_the_frozen_model():
    agent = smoke_agent(actor_ent=0.0)
    torch.manual_seed(0)
    B, L = 3, 4
    batch = {
        "image": torch.randint(0, 256, (B, L, 64, 64, 3), dtype=torch.uint8),
        "action": torch.randn(B, L, 4),
        "reward": torch.rand(B, L),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
        "is_terminal": torch.zeros(B, L, dtype=torch.bool),
    }
    _, _, post = agent.wm.loss(batch)
    start = {k: v.detach().flatten(0, 1) for k, v in post.items()}
    wm_before = [p.detach().clone() for p in agent.wm.parameters()]
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    critic_before = {k: v.clone() for k, v in agent.critic.state_dict().items()}
    metrics = agent.train_behavior(start, batch["is_terminal"].flatten())
    assert metrics["actor_grad_norm"] > 0  # without entropy, only the dynamics carry the gradient
    assert all(torch.equal(a, b) for a, b in zip(wm_before, agent.wm.parameters()))
    assert all(p.grad is None for p in agent.wm.parameters()) and all(
        p.requires_grad for p in agent.wm.parameters()
    )
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters()))
    # the slow critic is the critic copied at update 0, before the critic's own step
    target = agent.target_critic.state_dict()
    assert all(torch.equal(target[k], critic_before[k]) for k in target)
    assert not all(torch.equal(target[k], v) for k, v in agent.critic.state_dict().items())


def test_variant_and_profiles_resolve():
    base = algorithms.make_config("dreamerv2", "paper")
    dmc = algorithms.make_config("dreamerv2-dmc", "paper")
    assert (base.deter, base.hidden, base.stoch, base.classes, base.ensemble) == (1024, 1024, 32, 32, 1)
    assert (dmc.deter, dmc.hidden, dmc.free_nats, dmc.actor_ent) == (200, 200, 1.0, 1e-4)
    assert (base.batch, base.length, base.horizon, base.model_lr, base.actor_lr, base.critic_lr) == (
        16,
        50,
        15,
        1e-4,
        8e-5,
        8e-5,
    )
    assert algorithms.make_config("dreamerv2-dmc", "smoke").deter == 16
    # the replay: DreamerV2's default config oversamples episode ends, its dmc_vision preset does not
    assert smoke_agent().requests["model"].prioritize_ends
    assert not smoke_agent(prioritize_ends=False).requests["model"].prioritize_ends
    assert (base.prioritize_ends, dmc.prioritize_ends) == (True, False)


@pytest.mark.slow
def test_cli_smoke_run(tmp_path, data_dir):
    code = run_cli(
        [
            "--algos",
            "dreamerv2",
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
    assert code == 0
    status = [json.loads(p.read_text()) for p in tmp_path.rglob("status.json")]
    assert [s["status"] for s in status] == ["done"]
    from algorithms.diagnostics import load_agent, reconstruction
    from benchmark.datasets.format import iter_episodes

    run = next(tmp_path.rglob("checkpoint.pkl")).parent
    agent = load_agent(run)  # the analysis' entry point: the final checkpoint's agent and world model
    assert agent.updates == 4 + 2 * 2  # the smoke schedule: 4 offline + 2 episodes x 2 updates
    ep = next(iter(iter_episodes(data_dir / "metaworld/drawer-open")))
    rec = reconstruction(agent.wm, [ep])[0]
    assert rec["recon"].shape == ep["image"].shape and np.isfinite(rec["image_loss"])
