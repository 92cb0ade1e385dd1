"""MOTO (algorithms/moto.py): the paper's equations one by one, the ablation variants, filtered BC's data,
and the agent on the protocol at smoke size (exact resume after a kill, diagnostics the analysis reads)."""

import csv
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

import algorithms
from algorithms import moto
from algorithms.contract import DIAGNOSTICS_COLUMNS, RunContext
from algorithms.nets.torch_parts import lambda_return
from algorithms.nets.world_model import RSSM, WorldModelConfig
from benchmark.core.protocol import Runner, RunSpec, resolved_config
from benchmark.core.replay import EpisodeStore
from benchmark.tasks import Schedule, get_task
from tests.helpers.runs import checkpoint_params, kill_and_resume, make_episode
from tests.helpers.runs import metric_rows as rows

SMALL = dict(deter=8, hidden=8, stoch=3, classes=4)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Smoke-size tensors: on a shared CPU, waking a second thread costs more than the work itself."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def smoke_agent(obs=(16, 16, 3), **kw):
    cfg = algorithms.make_config(
        "moto",
        "smoke",
        enc_kernels=(4, 3),
        enc_channels=(4, 4),
        dec_channels=(4, 3),
        dec_kernels=(7, 4),
        **kw,
    )
    return algorithms.make_agent(
        "moto",
        cfg,
        RunContext(obs_shape=obs, action_dim=4, seed=0, total_updates=10, task="metaworld/drawer-open"),
    )


def seq_batch(B, L, seed=0, size=16, goal=True):
    rng = np.random.default_rng(seed)
    b = {
        "image": rng.integers(0, 256, (B, L, size, size, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (B, L, 4)).astype(np.float32),
        "reward": rng.uniform(size=(B, L)).astype(np.float32),
        "discount": np.ones((B, L), np.float32),
        "is_first": np.zeros((B, L), bool),
        "is_terminal": np.zeros((B, L), bool),
        "episode_goal": np.full((B, L), goal),
    }
    b["is_first"][:, 0] = True
    b["action"][:, 0] = 0.0
    b["reward"][:, 0] = 0.0
    return b


# -- Eq. 2 and Eq. 3 ------------------------------------------------------------------------------------


def test_disagreement_is_zero_when_members_share_weights_and_positive_otherwise():
    torch.manual_seed(0)
    rssm = RSSM(WorldModelConfig(**SMALL, ensemble=5), embed_dim=6, action_dim=2)
    deter = torch.randn(9, 8)
    u = moto.uncertainty(rssm, rssm.prior(deter, "all"))
    assert u.shape == (9,) and bool((u > 0).all())
    with torch.no_grad():
        for layer in (rssm.prior_hidden, rssm.prior_out):
            layer.weight.copy_(layer.weight[:1].expand_as(layer.weight))
            layer.bias.copy_(torch.randn_like(layer.bias[:1]).expand_as(layer.bias))
    state = {"deter": torch.randn(9, 8), "stoch": torch.rand(9, 12), "stats": torch.zeros(9, 12)}
    _, stats_all = rssm.img_step(state, torch.randn(9, 2), return_ensemble=True)
    # Zero up to float rounding: the batched matmul may round identical members' products differently in
    # the last bit (seen: 6e-9 in one row), against disagreements of order 0.1 above.
    assert moto.uncertainty(rssm, stats_all).abs().max() < 1e-6
    assert moto.uncertainty(rssm, rssm.prior(deter, "all")).abs().max() < 1e-6
    assert u.min() > 1e-2


def test_penalty_lowers_imagined_rewards_by_exactly_alpha_times_u():
    agent = smoke_agent()
    g = torch.Generator().manual_seed(3)
    start = {
        "deter": torch.randn(5, 16, generator=g),
        "stoch": torch.rand(5, 16, generator=g),
        "stats": torch.zeros(5, 16),
    }
    state = agent.gen.get_state()
    plain = agent.rollout(start, 3, alpha=0.0)
    agent.gen.set_state(state)
    penalised = agent.rollout(start, 3, alpha=10.0)
    assert torch.equal(plain["feat"], penalised["feat"])  # the penalty changes rewards, not the dynamics
    assert torch.equal(plain["model_reward"], plain["reward"])
    u = penalised["uncertainty"]
    assert u.shape == (3, 5) and bool((u > 0).all())
    assert torch.equal(penalised["reward"], plain["reward"] - 10.0 * u)
    assert torch.equal(
        moto.penalised_reward(torch.tensor([1.0]), torch.tensor([0.25]), 10.0), torch.tensor([-1.5])
    )


# -- Eqs. 5-8 ------------------------------------------------------------------------------------------------


def test_value_expansion_and_lambda_mixture_against_a_hand_computed_example():
    reward = torch.tensor([[1.0], [2.0], [3.0]])  # r^1, r^2, r^3
    v0 = torch.tensor([[10.0], [20.0], [30.0], [40.0]])  # V_0(s^0) .. V_0(s^3)
    g, lam = 0.5, 0.5
    # V_K(s^0): 1 + .5*20 = 11;  1 + .5*2 + .25*30 = 9.5;  1 + .5*2 + .25*3 + .125*40 = 7.75
    assert moto.value_expansion(reward, v0, g, 0)[:, 0].tolist() == [11.0, 9.5, 7.75]
    assert moto.value_expansion(reward, v0, g, 1)[:, 0].tolist() == [17.0, 13.5]
    assert moto.value_expansion(reward, v0, g, 2)[:, 0].tolist() == [23.0]
    # V(s^0) = .5 (11 + .5 * 9.5) + .25 * 7.75;  V(s^1) = .5 * 17 + .5 * 13.5;  V(s^2) = V_1(s^2)
    v = moto.lambda_mixture(reward, v0, g, lam)
    assert v[:, 0].tolist() == [9.8125, 15.25, 23.0]
    assert moto.mixed_value(v, v0[:-1], lam)[:, 0].tolist() == [9.90625, 17.625, 26.5]
    # the mixture equals the recursive TD(lambda) return bootstrapped with V_0
    r, v0 = torch.randn(15, 7, dtype=torch.float64), torch.randn(16, 7, dtype=torch.float64)
    torch.testing.assert_close(
        moto.lambda_mixture(r, v0, 0.99, 0.95), lambda_return(r, v0, torch.full_like(r, 0.99), 0.95)
    )


def test_real_transitions_pair_state_t_with_the_next_frames_action_and_reward():
    B, L, T = 2, 6, 3
    b = {
        "action": torch.arange(B * L, dtype=torch.float32).reshape(B, L, 1).repeat(1, 1, 4),  # frame id
        "reward": 1000 + torch.arange(B * L, dtype=torch.float32).reshape(B, L),
        "discount": torch.ones(B, L),
        "is_first": torch.zeros(B, L, dtype=torch.bool),
    }
    b["is_first"][0, 2] = True  # a (hypothetical) episode start inside row 0's window
    feat = torch.arange(B * L, dtype=torch.float32).reshape(B, L, 1)
    real = moto.real_transitions(feat, b, torch.tensor([1, 3]), T)
    assert real["feat"][..., 0].tolist() == [[1, 2], [9, 10]]  # frames o+j
    assert real["action"][..., 0].tolist() == [[2, 3], [10, 11]]  # action[o+j+1]: taken at o+j
    assert real["reward"].tolist() == [[1002, 1003], [1010, 1011]]  # reward[o+j+1]
    assert real["mask"].tolist() == [[False, True], [True, True]]
    # Eq. 8 by hand: targets r + gamma d Vhat'(next); masked entries do not count
    q = [torch.zeros(2, 2), torch.ones(2, 2)]
    loss = moto.data_critic_loss(
        q,
        torch.tensor([[9.0, 1.0], [1.0, 1.0]]),
        torch.tensor([[1.0, 1.0], [1.0, 0.0]]),
        torch.full((2, 2), 2.0),
        0.5,
        torch.tensor([[False, True], [True, True]]),
    )
    targets = torch.tensor([2.0, 2.0, 1.0])
    assert loss.item() == pytest.approx(((targets**2).mean() + ((targets - 1) ** 2).mean()).item())


def test_the_data_critic_loss_uses_real_rewards_and_real_actions():
    """Two identical agents on batches that differ only in real rewards (or only in real actions): the
    model-based critic loss (Eq. 7) is unchanged, the data loss (Eq. 8) moves."""
    post_batch = seq_batch(2, 5)

    def losses(change):
        agent = smoke_agent()
        b = {k: torch.as_tensor(v) for k, v in seq_batch(2, 5).items()}
        change(b)
        g = torch.Generator().manual_seed(0)
        post = {
            "deter": torch.randn(2, 5, 16, generator=g),
            "stoch": torch.rand(2, 5, 16, generator=g),
            "stats": torch.zeros(2, 5, 16),
        }
        m = agent.train_agent(post, b, None)
        return m["critic_model_loss"].item(), m["critic_data_loss"].item()

    base = losses(lambda b: None)
    rewards = losses(lambda b: b["reward"].add_(5.0))
    actions = losses(lambda b: b["action"].mul_(-1.0))
    first_action = losses(lambda b: b["action"][:, 0].add_(7.0))  # the action into frame 0: never taken
    assert rewards[0] == base[0] and rewards[1] != base[1]
    assert actions[0] == base[0] and actions[1] != base[1]
    assert first_action == base
    assert post_batch["reward"].shape == (2, 5)


# -- Eq. 10: filtered BC -----------------------------------------------------------------------------------


def test_filtered_bc_touches_only_goal_reaching_trajectories():
    agent = smoke_agent()
    assert agent.requests["bc"].filter == "offline_goal"  # the dataset's goal episodes (the screening's pick)
    assert agent.requests["bc"].cross_episodes  # every goal frame cloned equally often (first steps too)
    assert not smoke_agent(bc_cross_episodes=False).requests["bc"].cross_episodes
    # the store's goal filter: sequences come from the goal-reaching episode only
    store = EpisodeStore()
    goal_ep = make_episode(T=12, size=16, seed=1)
    other = make_episode(T=12, size=16, seed=2, success=np.zeros(12, bool))
    store.add(other)
    store.add(goal_ep)
    store.add(make_episode(T=12, size=16, seed=3, success=np.zeros(12, bool)))
    rng = np.random.default_rng(0)
    for _ in range(5):
        b = store.sample(agent.requests["bc"], rng)
        assert b["episode_goal"].all()
        for row in b["image"]:
            assert any(np.array_equal(row[0], f) for f in goal_ep["image"])
    # the loss itself: rows of episodes that miss the goal contribute nothing
    feat = torch.randn(2, 4, agent.wm.rssm.feat_dim)
    batch = {k: torch.as_tensor(v) for k, v in seq_batch(2, 4).items()}
    batch["episode_goal"][1] = False
    base = moto.bc_loss(agent.actor, feat, batch)
    moved = dict(batch, action=batch["action"].clone())
    moved["action"][1] = torch.rand(4, 4) * 2 - 1
    assert moto.bc_loss(agent.actor, feat, moved).item() == base.item()
    moved["action"][0, 2] = -moved["action"][0, 2]
    assert moto.bc_loss(agent.actor, feat, moved).item() != base.item()
    # a window that runs into the next episode: the pair (last frame of one episode, the zero action
    # into the next one's first frame) is no transition and is left out
    crossing = dict(batch, is_first=batch["is_first"].clone())
    crossing["is_first"][0, 2] = True
    base = moto.bc_loss(agent.actor, feat, crossing)
    moved = dict(crossing, action=crossing["action"].clone())
    moved["action"][0, 2] = torch.rand(4) * 2 - 1
    assert moto.bc_loss(agent.actor, feat, moved).item() == base.item()
    moved["action"][0, 3] = -moved["action"][0, 3]
    assert moto.bc_loss(agent.actor, feat, moved).item() != base.item()
    assert not smoke_agent(beta=0.0).requests.keys() - {"model"}  # no BC, no BC batch


# -- variants -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["paper", "cpu", "smoke"])
def test_each_ablation_differs_from_moto_only_in_its_flag(profile):
    full = dataclasses.asdict(algorithms.make_config("moto", profile))
    assert (full["alpha"], full["beta"], full["ensemble"]) == (10.0, 10.0, 7)
    expected = {
        "moto-no-unc": {"alpha": 0.0},
        "moto-no-bc": {"beta": 0.0},
        "moto-no-bc-no-unc": {"alpha": 0.0, "beta": 0.0},
    }
    for name, flags in expected.items():
        cfg = dataclasses.asdict(algorithms.make_config(name, profile))
        assert {k: v for k, v in cfg.items() if full[k] != v} == flags
        assert algorithms.get(name).base_algo == "moto"
    paper = algorithms.make_config("moto", "paper")
    assert (
        paper.model_lr,
        paper.actor_lr,
        paper.critic_lr,
        paper.batch,
        paper.length,
        paper.agent_batch,
        paper.horizon,
        paper.discount,
        paper.lam,
    ) == (1e-4, 8e-5, 8e-5, 16, 50, 128, 15, 0.99, 0.95)


# -- on the protocol ---------------------------------------------------------------------------------------

SCHEDULE = Schedule(
    offline_steps=4, updates_per_episode=2, online_steps=4, eval_every_episodes=1, eval_episodes=1
)


def make_runner(out, data_dir, **kw):
    spec = get_task("metaworld/drawer-open")
    cfg = algorithms.make_config("moto", "smoke", diag_episodes=1)
    kw = {"log_every": 2, "offline_checkpoint_every": 2, "checkpoint_every": 1, "progress": False, **kw}
    run = RunSpec(spec, "moto", cfg, SCHEDULE, 0, data_dir / spec.name, out, {"episode_length": 4})
    runner = Runner(run, **kw)
    out.mkdir(parents=True, exist_ok=True)  # config.json as the run CLI writes it (load_agent reads it)
    (out / "config.json").write_text(json.dumps(resolved_config(run, "smoke"), default=str))
    return runner


def params(run_dir):
    return checkpoint_params(run_dir, ("wm", "actor", "critics", "target_critics"))


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory, drawer_open_data):
    out = tmp_path_factory.mktemp("moto-whole") / "run"
    make_runner(out, drawer_open_data).run()
    return out


@pytest.mark.slow
def test_kill_and_resume_is_bit_exact(tmp_path, drawer_open_data, monkeypatch, whole_run):
    kill_and_resume(
        monkeypatch, lambda: make_runner(tmp_path / "cut", drawer_open_data), tmp_path / "cut", whole_run, 5
    )  # online, half-way through the first episode's updates
    np.testing.assert_array_equal(params(tmp_path / "cut"), params(whole_run))
    for name in ("uncertainty.csv", "reward_prediction.csv"):
        assert (tmp_path / "cut" / "diagnostics" / name).read_text() == (
            whole_run / "diagnostics" / name
        ).read_text()
    r = [x for x in rows(whole_run) if x["phase"] != "eval"]
    assert all(x["bc_loss"] and x["critic_data_loss"] and float(x["imag_uncertainty"]) > 0 for x in r)


@pytest.mark.slow
def test_diagnostics_are_written_in_the_analysis_formats_and_from_the_checkpoint(whole_run, tmp_path):
    from benchmark.analysis.diagnostics import read_reward_prediction, read_uncertainty

    evals = [int(x["grad_step"]) for x in rows(whole_run) if x["phase"] == "eval"]
    assert evals == [4, 6, 8]
    path = whole_run / "diagnostics" / "uncertainty.csv"
    with open(path, newline="") as f:
        raw = list(csv.DictReader(f))
    assert [int(r["grad_step"]) for r in raw] == evals and [int(r["episodes"]) for r in raw] == [0, 1, 2]
    assert [int(r["env_steps"]) for r in raw] == [0, 8, 16]  # 4 agent steps x action repeat 2
    # J(policy) comes from the evaluation that triggered each row, the offline one included
    assert [r["policy_return_source"] for r in raw] == ["eval_episodes"] * 3
    assert [float(r["eval_success"]) for r in raw] == [
        float(x["eval_success"]) for x in rows(whole_run) if x["phase"] == "eval"
    ]
    assert all(int(r["policy_episodes"]) == 1 for r in raw)  # the smoke profile's eval_episodes
    df = read_uncertainty(path)  # rows with both Eq. 12's estimate and a performance gap
    assert len(df) == 3 and (df["expected_uncertainty"] > 0).all()
    # u by action source: one row per measure at every evaluation, and the analysis reads and reports it
    acts = pd.read_csv(whole_run / "diagnostics" / "uncertainty_actions.csv")
    assert sorted(set(acts["grad_step"])) == evals and len(acts) == 5 * len(evals)
    assert set(acts.loc[acts["selected"], "measure"]) == {algorithms.make_config("moto", "smoke").uncertainty}
    assert (acts[["data", "policy", "random", "random_over_data"]] > 0).all().all()
    perturbed = ["perturbed_0.1", "perturbed_0.3", "perturbed_0.1_over_data", "perturbed_0.3_over_data"]
    assert (acts[perturbed] > 0).all().all()
    np.testing.assert_allclose(
        acts["perturbed_0.3_over_data"], acts["perturbed_0.3"] / acts["data"], rtol=1e-6
    )
    from benchmark.analysis.pipeline import Options, analyze

    A = analyze(whole_run.parent, tmp_path / "analysis", Options(reps=20, progress=False))
    t = A.tables["uncertainty_actions"]
    assert set(t["at"]) == {"offline_end", "last"} and len(t) == 10
    assert t[perturbed].notna().all().all()
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "Mean u along model rollouts from dataset states" in report and "random_over_data" in report
    assert "perturbed_0.1_over_data" in report and "perturbed_0.3_over_data" in report
    assert (tmp_path / "analysis" / "tables" / "uncertainty_actions.csv").exists()
    rp = read_reward_prediction(whole_run / "diagnostics" / "reward_prediction.csv")
    assert set(rp["grad_step"]) == {4} and set(rp["source"]) == {"data", "policy"}
    fit = pd.read_csv(whole_run / "diagnostics" / "action_fit.csv")  # the actor on the expert episodes
    assert sorted(set(fit["grad_step"])) == evals and fit["action_error"].notna().all()
    # functions on a checkpoint: rewriting at the final step replaces that step's rows
    from benchmark.datasets.format import iter_episodes

    dataset = json.loads((whole_run / "config.json").read_text())["dataset"]["path"]
    moto.write_checkpoint_diagnostics(whole_run, iter_episodes(dataset))
    with open(path, newline="") as f:
        again = list(csv.DictReader(f))
    assert [int(r["grad_step"]) for r in again] == evals
    assert float(again[-1]["expected_uncertainty"]) > 0


def spy_img_steps(agent) -> list:
    """Records (batch size, action) of every prior step the agent's RSSM takes from now on."""
    calls = []
    real_step = agent.wm.rssm.img_step

    def spy(state, action, *a, **kw):
        calls.append((state["deter"].shape[0], action.clone()))
        return real_step(state, action, *a, **kw)

    agent.wm.rssm.img_step = spy
    return calls


def test_expected_uncertainty_rolls_expert_actions_from_the_first_T_minus_H_states():
    agent = smoke_agent()
    ep = make_episode(T=6, size=16)
    calls = spy_img_steps(agent)
    eps = moto.expected_uncertainty(agent.wm, [ep], horizon=2, generator=torch.Generator().manual_seed(0))
    assert eps > 0 and len(calls) == 2
    assert all(n == 4 for n, _ in calls)  # j = 0 .. T-H-1
    torch.testing.assert_close(calls[0][1], torch.as_tensor(ep["action"][0:4]))  # a_{j+0}
    torch.testing.assert_close(calls[1][1], torch.as_tensor(ep["action"][1:5]))  # a_{j+1}
    assert moto.expected_uncertainty(agent.wm, [ep], horizon=6) is None  # too short for H


def test_bc_burns_in_the_first_frames_of_a_window_that_starts_mid_episode():
    agent = smoke_agent()
    feat = torch.randn(1, 8, agent.wm.rssm.feat_dim)
    batch = {k: torch.as_tensor(v) for k, v in seq_batch(1, 8).items()}
    batch["is_first"][:] = False  # the window starts mid-episode
    base = moto.bc_loss(agent.actor, feat, batch, burn_in=3)
    moved = dict(batch, action=batch["action"].clone())
    moved["action"][0, 1:4] = torch.rand(3, 4) * 2 - 1  # pairs t = 0, 1, 2: burnt in
    assert moto.bc_loss(agent.actor, feat, moved, burn_in=3).item() == base.item()
    moved["action"][0, 4] = -moved["action"][0, 4]  # pair t = 3 counts
    assert moto.bc_loss(agent.actor, feat, moved, burn_in=3).item() != base.item()
    # an episode start inside the window: from there on the posterior is exact, so pairs count at once
    started = dict(batch, is_first=batch["is_first"].clone())
    started["is_first"][0, 1] = True
    base = moto.bc_loss(agent.actor, feat, started, burn_in=3)
    moved = dict(started, action=started["action"].clone())
    moved["action"][0, 2] = -moved["action"][0, 2]  # pair t = 1 (frame 1 starts the episode)
    assert moto.bc_loss(agent.actor, feat, moved, burn_in=3).item() != base.item()
    assert algorithms.make_config("moto", "paper").bc_burn_in == 5


def test_action_uncertainty_rolls_data_policy_and_random_actions_from_the_same_states():
    agent = smoke_agent()
    ep = make_episode(T=7, size=16)
    steps = spy_img_steps(agent)
    out = moto.action_uncertainty(agent.wm, [ep], 2, torch.Generator().manual_seed(0), agent.actor)
    calls = [action for _, action in steps]  # H = 2 steps per source, in the order of ``out``
    assert list(out) == ["data", "random", "policy", "perturbed_0.1", "perturbed_0.3"] and len(calls) == 10
    assert set(out["data"]) == {"logits", "log_probs", "probs", "sample_log_prob", "meandis"}
    torch.testing.assert_close(calls[0], torch.as_tensor(ep["action"][0:5]))  # the data's own actions
    assert calls[2].min() >= -1 and calls[2].max() <= 1 and not torch.equal(calls[2], calls[0])
    # perturbed: the policy's first actions (same states, same draws) plus one noise draw times the std,
    # clipped to [-1, 1] as the env would
    policy, p1, p3 = calls[4], calls[6], calls[8]
    assert all(a.min() >= -1 and a.max() <= 1 for a in (p1, p3))
    assert 0 < (p1 - policy).abs().max() < 0.1 * 6 and not torch.equal(p3, policy)
    inside = (policy + 3 * (p1 - policy)).abs() < 1  # where the 0.3 noise is not clipped
    assert inside.sum() > 0
    torch.testing.assert_close((p3 - policy)[inside], 3 * (p1 - policy)[inside])
    assert all(v > 0 for by in out.values() for v in by.values())
    # Eq. 12 is the data source of the chosen measure
    eps = moto.expected_uncertainty(agent.wm, [ep], 2, torch.Generator().manual_seed(0), measure="probs")
    assert eps == pytest.approx(out["data"]["probs"], rel=1e-5)
    rows_ = moto.action_uncertainty_rows(
        out, "probs", {"grad_step": 3, "phase": "offline", "episodes": 0, "env_steps": 0}
    )
    assert [r["selected"] for r in rows_].count(True) == 1
    assert all(set(r) == set(DIAGNOSTICS_COLUMNS["uncertainty_actions.csv"]) for r in rows_)
    for r in rows_:  # every source, by every measure: its u and its u over the data's
        for source in ("policy", "random", "perturbed_0.1", "perturbed_0.3"):
            assert r[source] == out[source][r["measure"]]
            assert r[f"{source}_over_data"] == pytest.approx(r[source] / out["data"][r["measure"]])


def test_perturbed_actions_with_noise_std_0_are_the_policy_s_and_draw_only_on_the_generator():
    agent = smoke_agent()
    ep = make_episode(T=7, size=16)
    before = torch.get_rng_state()

    def run(seed, **kw):
        return moto.action_uncertainty(
            agent.wm, [ep], 2, torch.Generator().manual_seed(seed), agent.actor, **kw
        )

    zero = run(0, perturb=(0.0,))
    assert list(zero) == ["data", "random", "policy", "perturbed_0"]
    assert zero["perturbed_0"] == zero["policy"]  # the same draws, no noise: the same numbers
    noisy = run(0, perturb=(0.3,))
    assert noisy["policy"] == zero["policy"] and noisy["perturbed_0.3"] != noisy["policy"]
    assert list(run(0, sources=("perturbed",))) == ["perturbed_0.1", "perturbed_0.3"]  # the default stds
    assert run(1, perturb=(0.0,))["policy"] != zero["policy"]  # the generator's draws, not fixed ones
    assert torch.equal(torch.get_rng_state(), before)  # the global RNG is never drawn from
    assert moto.action_uncertainty(agent.wm, [ep], 2, None, None, sources=("policy", "perturbed")) == {}
    with pytest.raises(ValueError, match="unknown action source"):
        run(0, sources=("data", "perturbed_0.1"))
    # rows: the file's columns only (perturbed_0 is not one); a source not measured is left empty
    base = {"grad_step": 3, "phase": "offline", "episodes": 0, "env_steps": 0}
    r = moto.action_uncertainty_rows(zero, "probs", base)[0]
    assert set(r) == set(DIAGNOSTICS_COLUMNS["uncertainty_actions.csv"])
    assert r["perturbed_0.1"] is None and r["perturbed_0.1_over_data"] is None and r["policy"] is not None


def test_the_uncertainty_measure_is_a_config_choice():
    # same seed, same weights, same draws: the measure changes u (and the penalised reward), not the rollout
    a, b = smoke_agent(uncertainty="meandis"), smoke_agent(uncertainty="logits")
    g = torch.Generator().manual_seed(3)
    start = {
        "deter": torch.randn(5, 16, generator=g),
        "stoch": torch.rand(5, 16, generator=g),
        "stats": torch.zeros(5, 16),
    }
    with torch.no_grad():
        ra, rb = a.rollout(start, 3, 10.0), b.rollout(start, 3, 10.0)
    torch.testing.assert_close(ra["feat"], rb["feat"])
    assert ra["uncertainty"].shape == (3, 5) and not torch.allclose(ra["uncertainty"], rb["uncertainty"])
    torch.testing.assert_close(ra["reward"], ra["model_reward"] - 10.0 * ra["uncertainty"])
    with pytest.raises(ValueError, match="MOTOConfig.uncertainty must be one of logits"):  # at make_config
        smoke_agent(uncertainty="nope")
