"""LOMPO and COMBO: penalty, CQL term, batch mix, rollouts, latent buffer, drift metric, exact resume."""

import copy
import csv
import math

import numpy as np
import pytest
import torch

import algorithms
from algorithms.contract import RunContext
from algorithms.nets.latent_sac import LatentBuffer, cql_regulariser, disagreement, mixed_batch


def make_agent(name="lompo", **overrides):
    cfg = algorithms.make_config(name, "smoke", **overrides)
    return algorithms.make_agent(
        name, cfg, RunContext(obs_shape=(64, 64, 3), action_dim=4, seed=0, total_updates=10)
    )


def episode(seed, T=6):
    rng = np.random.default_rng(seed)
    return {
        "image": rng.integers(0, 256, (T + 1, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (T, 4)).astype(np.float32),
        "reward": rng.uniform(size=T).astype(np.float32),
        "terminal": np.zeros(T, bool),
    }


def rows(n, value, F=3, A=2):
    return dict(
        obs=np.full((n, F), value, np.float32),
        action=np.zeros((n, A), np.float32),
        reward=np.arange(n, dtype=np.float32) + value,
        next_obs=np.full((n, F), value, np.float32),
        discount=np.ones(n, np.float32),
    )


# -- penalty and regulariser on hand-computed inputs ----------------------------------------------


def test_lompo_penalties_by_hand():
    # two members, one latent dimension: N(0, 1) and N(1, 1); sampled z = 0
    means = torch.tensor([[[0.0]], [[1.0]]])
    stds = torch.tensor([[[1.0]], [[2.0]]])
    z = torch.tensor([[0.0]])
    lp0 = -0.5 * math.log(2 * math.pi)
    lp1 = -0.5 * 0.25 - math.log(2.0) - 0.5 * math.log(2 * math.pi)
    assert disagreement("log_prob", means, stds, z).item() == pytest.approx(abs(lp0 - lp1) / 2, rel=1e-6)
    assert disagreement("max_var", means, stds).item() == pytest.approx(2.0)
    assert disagreement("mean", means, stds).item() == pytest.approx(0.5)
    with pytest.raises(ValueError):
        disagreement("nope", means, stds, z)


def test_rollout_rewards_are_penalised_by_lambda_times_disagreement():
    agent = make_agent("lompo")
    assert agent.config.penalty == "log_prob" and agent.config.lmbd == 5.0
    start = agent.wm.rssm.initial(4)
    r = agent.rollout(start, 3)
    predicted = agent.wm.predict_reward(r["next_obs"])
    assert torch.all(r["penalty"] > 0)
    torch.testing.assert_close(r["reward"], predicted - 5.0 * r["penalty"])


def test_cql_regulariser_by_hand():
    q_sampled = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # (J=2 actions, N=2 states)
    q_data = torch.tensor([0.5])
    want = (math.log(math.e + math.e**3) + math.log(math.e**2 + math.e**4)) / 2 - 0.5
    assert cql_regulariser(q_sampled, q_data).item() == pytest.approx(want, rel=1e-6)


def test_combo_is_lompo_with_the_cql_term():
    lompo, combo = algorithms.make_config("lompo"), algorithms.make_config("combo")
    assert (lompo.lmbd, lompo.cql_alpha) == (5.0, 0.0) and (combo.lmbd, combo.cql_alpha) == (0.0, 2.5)
    assert algorithms.get("combo").make is algorithms.get("lompo").make
    # the CQL term changes the critic's loss: same agent, same batch, alpha 0 vs 2.5
    losses = []
    for alpha in (0.0, 2.5):
        agent = make_agent("combo", cql_alpha=alpha)
        b = {
            k: torch.as_tensor(v)
            for k, v in mixed_batch(*_filled(agent), 8, 0.5, torch.Generator().manual_seed(0)).items()
        }
        losses.append(agent.sac.update(b, torch.Generator().manual_seed(1), alpha, 3))
    assert "cql_reg" in losses[1] and "cql_reg" not in losses[0]
    want = losses[0]["critic_loss"] + 2.5 * 2 * losses[1]["cql_reg"]
    assert losses[1]["critic_loss"].item() == pytest.approx(want.item(), rel=1e-5)


def _filled(agent):
    F = agent.wm.rssm.feat_dim
    real, model = LatentBuffer("real", 20, F, 4), LatentBuffer("model", 20, F, 4)
    rng = np.random.default_rng(0)
    for buf in (real, model):
        buf.add(
            obs=rng.normal(size=(10, F)),
            action=rng.uniform(-1, 1, (10, 4)),
            reward=rng.normal(size=10),
            next_obs=rng.normal(size=(10, F)),
            discount=np.ones(10),
        )
    return real, model


# -- batches, rollouts, buffer ----------------------------------------------------------------------


def test_batches_are_half_real_half_model():
    real, model = LatentBuffer("real", 10, 3, 2), LatentBuffer("model", 10, 3, 2)
    real.add(**rows(4, 1.0))
    model.add(**rows(6, -1.0))
    b = mixed_batch(real, model, 8, 0.5, torch.Generator().manual_seed(0))
    assert b["obs"].shape == (8, 3)
    np.testing.assert_array_equal(b["is_real"], [True] * 4 + [False] * 4)
    assert np.all(b["obs"][:4] == 1.0) and np.all(b["obs"][4:] == -1.0)
    empty = LatentBuffer("model", 10, 3, 2)
    assert mixed_batch(real, empty, 8, 0.5, torch.Generator())["is_real"].all()  # no model rows yet


def test_rollout_horizon_and_one_drawn_member_per_step(monkeypatch):
    agent = make_agent("lompo")
    rssm = agent.wm.rssm
    draws = [3, 0, 6, 3, 1]
    it = iter(list(draws))
    monkeypatch.setattr(rssm, "random_member", lambda g, n=1, device=None: torch.tensor([next(it)]))
    start = rssm.initial(5)
    r = agent.rollout(start, 5)
    assert r["obs"].shape == (5, 5, rssm.feat_dim) and r["action"].shape == (5, 5, 4)
    assert r["member"].tolist() == draws
    torch.testing.assert_close(r["obs"][1:], r["next_obs"][:-1])  # a chain of length 5 per start
    # the agent adds horizon x starts rows per rollout batch
    agent.on_episode(episode(0), False)
    batch = _seq_batch(agent)
    agent.update(batch)  # warm-up (model only)
    monkeypatch.undo()
    agent.update(batch)
    assert len(agent.model) == agent.config.horizon * agent.config.rollout_starts


def _seq_batch(agent, seed=0):
    B, L = agent.config.batch, agent.config.length
    rng = np.random.default_rng(seed)
    b = {
        "image": rng.integers(0, 256, (B, L, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (B, L, 4)).astype(np.float32),
        "reward": rng.uniform(size=(B, L)).astype(np.float32),
        "is_first": np.zeros((B, L), bool),
        "is_terminal": np.zeros((B, L), bool),
    }
    b["is_first"][:, 0] = True
    return {"model": b}


def test_buffer_capacity_eviction_and_append_only_files(tmp_path):
    buf = LatentBuffer("real", 5, 3, 2)
    buf.add(**rows(3, 0.0))
    buf.save(tmp_path, 0)
    first = sorted(tmp_path.iterdir())
    assert [f.name for f in first] == ["real-000000000000-000000000003.npz"]
    before = first[0].read_bytes()
    buf.add(**rows(4, 10.0))
    assert len(buf) == 5 and buf.total == 7
    assert not buf.live(1) and buf.live(2)
    np.testing.assert_array_equal(buf.rows(2, 7)["reward"], [2, 10, 11, 12, 13])
    with pytest.raises(IndexError):
        buf.rows(0, 3)
    buf.save(tmp_path, 3)
    assert first[0].read_bytes() == before  # the earlier chunk is not rewritten
    assert len(list(tmp_path.iterdir())) == 2
    # load trusts only what was committed: 5 rows -> the chunk [3, 7) straddles it and is cut to [3, 5)
    again = LatentBuffer("real", 5, 3, 2)
    again.load(tmp_path, 5)
    assert again.total == 5
    np.testing.assert_array_equal(again.rows(0, 5)["reward"], [0, 1, 2, 10, 11])
    assert sorted(f.name for f in tmp_path.iterdir()) == [
        "real-000000000000-000000000003.npz",
        "real-000000000003-000000000005.npz",
    ]
    buf.add(**rows(12, 100.0))  # more than the capacity at once: the last 5 survive
    np.testing.assert_array_equal(buf.rows(14, 19)["reward"], [107, 108, 109, 110, 111])
    buf.save(tmp_path, 19)  # chunks evicted at the committed count 19 (rows < 14) are deleted
    assert sorted(f.name for f in tmp_path.iterdir()) == ["real-000000000014-000000000019.npz"]


def test_latent_drift_is_zero_after_encoding_and_grows_when_the_encoder_changes():
    agent = make_agent("lompo", model_warmup=0)
    agent.on_episode(episode(0), False)
    agent.on_episode(episode(1), False)
    agent._refresh_real()
    assert len(agent.real) == 12 and agent.encoded == 2
    assert agent.latent_drift().item() == pytest.approx(0.0, abs=1e-6)  # sampled rows stored, drift 0
    with torch.no_grad():
        for p in agent.wm.encoder.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    small = agent.latent_drift().item()
    with torch.no_grad():
        for p in agent.wm.encoder.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    assert 0 < small < agent.latent_drift().item()


# -- the model's schedule: LOMPO's frozen offline model, the online re-encoding ---------------------


def _params(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("freeze", [True, False])
def test_the_model_is_frozen_after_the_warmup_offline_and_trains_online(freeze):
    agent = make_agent("lompo", model_warmup=2, freeze_offline=freeze)
    agent.on_episode(episode(0), False)
    batch = _seq_batch(agent)
    for _ in range(2):
        assert "model_loss" in agent.update(batch)  # the warm-up: model steps only
    wm, opt, sac = _params(agent.wm), copy.deepcopy(agent.wm_opt.state_dict()), _params(agent.sac)
    offline = [agent.update(_seq_batch(agent, seed)) for seed in (1, 2, 3)]  # the agent phase, offline
    assert not _same(sac, _params(agent.sac))  # the agent trained
    if freeze:  # LOMPO's code: no model step while the agent trains offline
        assert _same(wm, _params(agent.wm)) and agent.model_steps == 2
        assert agent.wm_opt.state_dict()["state"][0]["step"] == opt["state"][0]["step"]
        assert all("model_loss" not in m for m in offline)
        assert all(m["latent_drift"].item() == 0.0 for m in offline[1:])  # (measured before the encoding)
    else:
        assert not _same(wm, _params(agent.wm)) and agent.model_steps == 5
        assert offline[-1]["latent_drift"].item() > 0
    assert len(agent.model) > 0  # rollouts ran from the (frozen) model's posteriors
    agent.on_phase("online")
    wm = _params(agent.wm)
    assert "model_loss" in agent.update(batch)  # online the model is fine-tuned
    assert not _same(wm, _params(agent.wm))


def _stored_obs(agent):
    return torch.as_tensor(agent.real.rows(0, agent.real.total)["obs"])


def _encoding(agent, episodes, sample, k):
    gen = agent._encode_gen(k) if sample else None
    return torch.cat([f[:-1].cpu() for f in agent.encode_episodes(episodes, sample, gen)])


@pytest.mark.parametrize("sample", [True, False])
def test_after_a_reencode_the_real_latents_are_the_current_models_encoding(sample):
    agent = make_agent("lompo", model_warmup=1, sample_posterior=sample)
    eps = [episode(0), episode(1)]
    for ep in eps:
        agent.on_episode(ep, False)
    agent.update(_seq_batch(agent))  # warm-up
    agent.update(_seq_batch(agent, 1))  # the dataset encoded by the final (frozen) model
    torch.testing.assert_close(_stored_obs(agent), _encoding(agent, eps, sample, 0), rtol=0, atol=0)
    agent.on_phase("online")
    agent.update(_seq_batch(agent, 2))  # a model step: the stored latents are now stale
    assert not torch.allclose(_stored_obs(agent), _encoding(agent, eps, sample, 0))
    eps.append(episode(2, T=8))
    agent.on_episode(eps[-1], True)
    m = agent.update(_seq_batch(agent, 3))  # the first update after an online episode: a new pass
    assert m["latent_drift"].item() > 0  # measured before the pass: the drift over one episode
    assert agent.encodes == 2 and len(agent.real) == 6 + 6 + 8
    torch.testing.assert_close(_stored_obs(agent), _encoding(agent, eps, sample, 1), rtol=0, atol=0)
    mean = _encoding(agent, eps, False, 0)
    assert torch.equal(_stored_obs(agent), mean) != sample  # sampled posteriors differ from the means
    assert agent.latent_drift().item() == 0.0
    # reencode = "never": the old rows keep the frozen model's latents, the new episode the current model's
    never = make_agent("lompo", model_warmup=1, sample_posterior=sample, reencode="never")
    for ep in eps[:2]:
        never.on_episode(ep, False)
    never.update(_seq_batch(never))
    never.update(_seq_batch(never, 1))
    frozen = _stored_obs(never)
    never.on_phase("online")
    never.update(_seq_batch(never, 2))
    never.on_episode(eps[-1], True)
    never.update(_seq_batch(never, 3))
    torch.testing.assert_close(_stored_obs(never)[:12], frozen, rtol=0, atol=0)
    assert not torch.allclose(_stored_obs(never)[:12], _encoding(never, eps[:2], sample, 1))


def test_a_reencoded_real_buffer_is_rebuilt_exactly_on_load(tmp_path):
    def fresh():
        agent = make_agent("lompo", model_warmup=1)
        for i in range(2):
            agent.on_episode(episode(i), False)
        return agent

    a = fresh()
    a.update(_seq_batch(a))
    a.update(_seq_batch(a, 1))
    a.on_phase("online")
    online = episode(2, T=8)
    a.on_episode(online, True)
    a.update(_seq_batch(a, 2))  # a pass by this update's model
    a.update(_seq_batch(a, 3))  # a model step since: the checkpoint carries the pass's model
    a.save(tmp_path)
    state = copy.deepcopy(a.state_dict())  # as a checkpoint file would (CPU tensors are not copied)
    assert state["encoded_by"] is not None and not list(tmp_path.glob("real-*"))
    b = fresh()
    b.on_episode(online, True)
    b.load_state_dict(state)
    b.load(tmp_path)
    torch.testing.assert_close(_stored_obs(b), _stored_obs(a), rtol=0, atol=0)
    assert _same(_params(a.wm), _params(b.wm))  # the current model is back after the rebuild
    b.on_phase("online")
    ma, mb = a.update(_seq_batch(a, 4)), b.update(_seq_batch(b, 4))
    assert {k: v.item() for k, v in ma.items()} == {k: v.item() for k, v in mb.items()}


def test_acting_filters_with_sampled_posteriors():
    obs = episode(0)["image"][:1]
    for sample in (True, False):
        agent = make_agent("lompo", sample_posterior=sample)
        _, (latent, _) = agent.act(obs, None, explore=False)
        mean, _ = agent.wm.rssm.mean_std(latent["stats"])
        assert torch.equal(latent["stoch"], mean) != sample


# -- the protocol: runs end to end and resumes exactly ------------------------------------------


def _rows(run):
    with open(run / "metrics.csv", newline="") as f:
        return [
            {k: v for k, v in r.items() if k not in ("steps_per_s", "wall_time")} for r in csv.DictReader(f)
        ]


@pytest.mark.slow
def test_kill_and_resume_with_a_non_empty_latent_buffer(tmp_path, drawer_open_data, monkeypatch):
    from benchmark.core.protocol import Runner, RunSpec
    from benchmark.core.replay import BatchSampler
    from benchmark.core.rundir import load_checkpoint
    from benchmark.tasks import Schedule, get_task

    spec = get_task("metaworld/drawer-open")
    schedule = Schedule(
        offline_steps=4, updates_per_episode=2, online_steps=4, eval_every_episodes=2, eval_episodes=1
    )

    def runner(out):
        cfg = algorithms.make_config("combo", "smoke", real_capacity=150)
        return Runner(
            RunSpec(
                spec, "combo", cfg, schedule, 0, drawer_open_data / spec.name, out, {"episode_length": 5}
            ),
            log_every=2,
            offline_checkpoint_every=2,
            checkpoint_every=1,
            progress=False,
        )

    runner(tmp_path / "whole").run()
    real = BatchSampler.batch

    def dying(self, s, *args):
        if s == 7:
            raise KeyboardInterrupt
        return real(self, s, *args)

    monkeypatch.setattr(BatchSampler, "batch", dying)
    with pytest.raises(KeyboardInterrupt):
        runner(tmp_path / "cut").run()
    monkeypatch.undo()
    cut = load_checkpoint(tmp_path / "cut")["agent"]
    assert cut["committed"]["model"] > 0 and cut["committed"]["real"] > 0  # a non-empty buffer to restore
    assert list((tmp_path / "cut" / "agent").glob("model-*.npz"))
    torch.manual_seed(123)
    np.random.seed(9)
    resumed = runner(tmp_path / "cut")
    resumed.run()
    assert _rows(tmp_path / "cut") == _rows(tmp_path / "whole")
    a, b = load_checkpoint(tmp_path / "whole")["agent"], load_checkpoint(tmp_path / "cut")["agent"]
    for part in ("wm", "sac"):
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], rtol=0, atol=0)
    assert a["committed"] == b["committed"]
    np.testing.assert_array_equal(
        resumed.agent.model.data["obs"], _final_buffer(tmp_path / "whole", "model", a)
    )


def _final_buffer(run, name, state):
    cfg = algorithms.make_config("combo", "smoke")
    buf = LatentBuffer(name, cfg.model_capacity, cfg.deter + cfg.stoch, 4)
    buf.load(run / "agent", state["committed"][name])
    return buf.data["obs"]


def test_lompos_actor_is_deterministic_on_minus_min_q_with_gaussian_exploration():
    agent = make_agent("lompo")
    assert agent.config.actor == "deterministic" and agent.config.expl_noise == 0.2
    sac = agent.sac
    b = {
        k: torch.as_tensor(v)
        for k, v in mixed_batch(*_filled(agent), 8, 0.5, torch.Generator().manual_seed(0)).items()
    }
    obs, nxt = b["obs"].float(), b["next_obs"].float()
    with torch.no_grad():  # the losses by hand, before the update changes the nets
        y = (
            b["reward"]
            + sac.cfg.discount * b["discount"] * sac.qs(sac.q_target, nxt, sac.actor(nxt)[0]).min(0).values
        )
        q = sac.qs(sac.q, obs, b["action"].float())
        critic_loss = ((q - y[None]) ** 2).mean(1).sum()
        # the actor loss: -mean min_k Q_k(s, pi(s)) at the critics before their update (LOMPO's code)
        actor_loss = -sac.qs(sac.q, obs, sac.actor(obs)[0]).min(0).values.mean()
    assert sac.cfg.actor_critic == "pre_update"
    post = make_agent("lompo", actor_critic="post_update").sac  # the same initial nets
    m = sac.update(b, torch.Generator().manual_seed(1))
    assert m["critic_loss"].item() == pytest.approx(critic_loss.item(), rel=1e-5)
    assert "temperature" not in m and "actor_entropy" not in m  # no entropy term
    assert m["actor_loss"].item() == pytest.approx(actor_loss.item(), rel=1e-6)
    actor_before = copy.deepcopy(post.actor)
    m_post = post.update(b, torch.Generator().manual_seed(1))
    with torch.no_grad():  # post_update: at the critics already updated
        updated = -post.qs(post.q, obs, actor_before(obs)[0]).min(0).values.mean()
    assert m_post["actor_loss"].item() == pytest.approx(updated.item(), rel=1e-6)
    assert abs(updated.item() - actor_loss.item()) > 1e-5  # the two orders differ on this batch
    feat = obs[:3]
    g = torch.Generator().manual_seed(5)
    mode = sac.policy(feat, g, explore=False)
    torch.testing.assert_close(mode, torch.tanh(sac.actor.net(feat)))
    draws = torch.stack([sac.policy(feat, g, explore=True) for _ in range(400)])
    assert draws.abs().max() <= 1.0
    inside = mode.abs() < 0.6  # away from the clip: the noise is N(0, 0.2^2)
    assert (draws - mode).std(0)[inside].mean().item() == pytest.approx(0.2, abs=0.03)
    # the SAC actor stays reachable: a sampled tanh-Gaussian with a learned temperature
    sac_agent = make_agent("lompo", actor="sac")
    m = sac_agent.sac.update(b, torch.Generator().manual_seed(1))
    assert "temperature" in m
    with pytest.raises(ValueError, match="actor must be"):
        make_agent("lompo", actor="td3")
