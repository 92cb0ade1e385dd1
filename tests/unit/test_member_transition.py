"""Member-specific transitions (``member_transition``): each member its own input layer into the GRU, so
members disagree about how an action moves the state; one batched call for all members equals a loop."""

import dataclasses

import numpy as np
import pytest
import torch

import algorithms
from algorithms import moto
from algorithms.nets.world_model import RSSM, WorldModelConfig
from benchmark.perf.common import paper_agent, random_batch
from benchmark.perf.moto import with_bc_batch
from tests.unit.test_moto import one_thread  # noqa: F401 (its autouse fixture: one torch thread here too)


def _rssm(**kw):
    torch.manual_seed(0)
    cfg = dataclasses.replace(
        WorldModelConfig(), deter=8, hidden=6, stoch=3, classes=4, ensemble=3, member_transition=True, **kw
    )
    return RSSM(cfg, embed_dim=5, action_dim=2)


def _state(rssm, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {
        "deter": torch.randn(n, rssm.deter_dim, generator=g),
        "stoch": torch.rand(n, rssm.stoch_dim, generator=g),
        "stats": torch.zeros(n, rssm.stats_dim),
    }


@pytest.mark.parametrize("prior_action", [False, True])
def test_all_members_in_one_call_equal_a_loop_over_members(prior_action):
    rssm = _rssm(prior_action=prior_action)
    state, action = _state(rssm, 5), torch.rand(5, 2) * 2 - 1
    with torch.no_grad():
        deter_all, stats_all = rssm.next_ensemble(state, action)
        for m in range(rssm.members):
            deter = rssm.transition(state["stoch"], action, state["deter"], m)
            torch.testing.assert_close(deter_all[m], deter)
            torch.testing.assert_close(stats_all[m], rssm.prior(deter, m, action))
    assert not torch.allclose(deter_all[0], deter_all[1])  # the members' next states differ


def test_a_drawn_member_takes_its_own_transition_and_head():
    rssm = _rssm()
    state, action = _state(rssm, 4), torch.rand(4, 2) * 2 - 1
    with torch.no_grad():
        deter_all, stats_all = rssm.next_ensemble(state, action)
        out, ens = rssm.img_step(state, action, torch.Generator().manual_seed(3), return_ensemble=True)
        k = [m for m in range(rssm.members) if torch.equal(out["deter"], deter_all[m])]
        assert len(k) == 1 and torch.equal(out["stats"], stats_all[k[0]]) and torch.equal(ens, stats_all)
        one = rssm.img_step(state, action, member=2)  # the cheap path (one member computed)
        torch.testing.assert_close(one["deter"], deter_all[2])
        torch.testing.assert_close(one["stats"], stats_all[2])
        per = rssm.img_step(state, action, member=torch.tensor([0, 1, 2, 0]))  # a member per sample
        torch.testing.assert_close(per["deter"], deter_all[[0, 1, 2, 0], torch.arange(4)])


def test_observe_filters_with_the_member_of_each_step():
    rssm = _rssm()
    B, L = 2, 4
    g = torch.Generator().manual_seed(0)
    embed, action = torch.randn(B, L, 5, generator=g), torch.rand(B, L, 2, generator=g)
    is_first = torch.zeros(B, L, dtype=torch.bool)
    members = torch.tensor([2, 0, 1, 2])
    with torch.no_grad():
        post, prior = rssm.observe(embed, action, is_first, members=members, sample=False)
        state = rssm.initial(B)
        for t in range(L):
            keep = torch.ones(B, 1) if t else torch.zeros(B, 1)
            state = rssm._obs_step(
                state, action[:, t] * keep, embed[:, t], keep, None, False, members[t : t + 1]
            )
            torch.testing.assert_close(post["deter"][:, t], state["deter"])
            m = int(members[t])
            torch.testing.assert_close(prior[:, t], rssm.prior(state["deter"], m, action[:, t] * keep))


def test_moto_runs_with_member_transitions_and_prices_the_datas_own_steps():
    agent = paper_agent("moto", "cpu", profile="smoke", member_transition=True)
    r = agent.requests["model"]
    data = random_batch(r.batch, r.length, 4, np.random.default_rng(0))["model"]
    m = agent.update(with_bc_batch({"model": data}, agent))
    assert torch.isfinite(m["data_uncertainty"]) and float(m["data_uncertainty"]) > 0
    assert float(m["imag_uncertainty"]) > 0
    assert algorithms.make_config("moto").member_transition is False  # off by default: today's MOTO
    agent.act(np.zeros((1, 64, 64, 3), np.uint8), None, True)  # acting draws a member per step
    assert moto.MOTOConfig().member_transition is False
