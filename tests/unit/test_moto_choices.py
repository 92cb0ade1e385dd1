"""MOTO's open choices (issue 33: critic target, BC data, the penalty's reference), the actor's split
gradients, and the CPU decoder's transposed convolutions: each against a hand-computed or a reference
value."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import algorithms
from algorithms import moto
from algorithms.nets import world_model as wm_module
from algorithms.nets.torch_parts import ClippedAdam
from benchmark.core.replay import EpisodeStore
from benchmark.perf.common import paper_agent, random_batch
from benchmark.perf.moto import with_bc_batch
from tests.helpers.runs import make_episode
from tests.unit.test_moto import one_thread  # noqa: F401 (its autouse fixture: one torch thread here too)


def _agent(**kw):
    return paper_agent("moto", "cpu", profile="smoke", **kw)


def _batches(agent, seed=0):
    r = agent.requests["model"]
    data = random_batch(r.batch, r.length, 4, np.random.default_rng(seed))["model"]
    data["goal"] = np.zeros(data["is_first"].shape, bool)
    data["goal"][:, -2:] = True
    return with_bc_batch({"model": data}, agent)


def test_the_penalty_relative_to_the_data_hand_computed():
    reward, u, u_data = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.1]), torch.tensor(0.3)
    torch.testing.assert_close(moto.penalised_reward(reward, u, 10.0), torch.tensor([-4.0, -1.0]))
    torch.testing.assert_close(
        moto.penalised_reward(reward, u, 10.0, "data", u_data), torch.tensor([-1.0, 2.0])
    )
    torch.testing.assert_close(
        moto.penalised_reward(reward, u, 10.0, "data_hinge", u_data), torch.tensor([-1.0, 0.0])
    )


def test_the_relative_penalty_is_zero_on_the_datas_own_actions_on_average():
    agent = _agent(penalty_reference="data", penalty_momentum=0.0)
    b = agent.step_inputs(_batches(agent))["model"]
    with torch.no_grad():
        _, _, post = agent.wm.loss(b, agent.gen)
    u_batch = agent.update_data_uncertainty(post, b)
    # u of every frame along its own action, as data_uncertainty averages it
    keep = ~b["is_first"].bool()
    act = b["action"].float() * keep[..., None]
    rssm = agent.wm.rssm
    with torch.no_grad():
        stats = rssm.prior(post["deter"].flatten(0, 1), "all", act.flatten(0, 1))
    u = rssm.disagreement(stats, agent.config.uncertainty).reshape(keep.shape)[keep]
    assert u.std() > 0  # the frames' u differ: a zero mean penalty is not a zero u
    penalty = 10.0 * (u - agent.u_data)
    assert abs(float(penalty.mean())) < 1e-5
    torch.testing.assert_close(agent.u_data, u_batch)
    # the running mean: momentum m folds the next batch in as m old + (1 - m) new
    agent2 = _agent(penalty_reference="data", penalty_momentum=0.5)
    agent2.update_data_uncertainty(post, b)
    agent2.update_data_uncertainty(
        {k: v.flip(0) for k, v in post.items()}, {k: v.flip(0) for k, v in b.items()}
    )
    torch.testing.assert_close(agent2.u_data, u_batch, rtol=1e-5, atol=1e-7)  # the same frames: the same mean


def test_a_random_critic_target_is_one_of_the_two_target_critics_drawn_per_update():
    agent = _agent(critic_target="random")
    for p in agent.target_critics[1].parameters():  # make the two target critics differ
        p.data.add_(0.5)
    feat = torch.randn(3, 5, agent.wm.rssm.feat_dim)
    action = torch.rand(3, 5, 4) * 2 - 1
    with torch.no_grad():
        q = [c(feat, action) for c in agent.target_critics]
        picks = set()
        for _ in range(20):
            v = agent._target_v0(feat, action)
            match = [k for k in range(2) if torch.equal(v, q[k])]
            assert len(match) == 1  # all states of the batch from the same critic
            picks.add(match[0])
    assert picks == {0, 1}
    with torch.no_grad():
        assert torch.equal(
            _agent()._target_v0(feat, action),
            torch.minimum(*[c(feat, action) for c in _agent().target_critics]),
        )


def test_bc_on_offline_goal_episodes_leaves_out_successful_online_episodes():
    store = EpisodeStore()
    store.add(make_episode(T=4, seed=0))  # offline, reaches the goal (success at the last step)
    store.add(make_episode(T=4, seed=1, success=np.zeros(4, bool)))  # offline, no goal
    store.add(make_episode(T=4, seed=2), online=True)  # online, reaches the goal
    assert len(store.stream("goal")) == 10 and len(store.stream("offline_goal")) == 5
    assert _agent().requests["bc"].filter == "offline_goal"  # the default since the screening
    assert _agent(bc_data="goal").requests["bc"].filter == "goal"


def test_step_terms_is_the_step_of_the_sum_and_measures_each_term():
    torch.manual_seed(0)
    nets = [torch.nn.Linear(3, 2) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    x1, x2 = torch.randn(4, 3), torch.randn(4, 3)
    opts = [ClippedAdam(n.parameters(), 1e-2, clip=1.0) for n in nets]
    norm_sum = opts[0].step(nets[0](x1).square().mean() + nets[0](x2).sum())
    norm, norms, cos = opts[1].step_terms([nets[1](x1).square().mean(), nets[1](x2).sum()])
    torch.testing.assert_close(norm, norm_sum)
    for a, b in zip(nets[0].parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b)
    # hand-checked norms and cosine: a term and its double point the same way; a term and its negative
    net = torch.nn.Linear(3, 1)
    opt = ClippedAdam(net.parameters(), 0.0)
    _, (n1, n2), c = opt.step_terms([net(x1).sum(), 2 * net(x1).sum()])
    torch.testing.assert_close(n2, 2 * n1)
    torch.testing.assert_close(c, torch.tensor(1.0))
    _, _, c = opt.step_terms([net(x1).sum(), -net(x1).sum()])
    torch.testing.assert_close(c, torch.tensor(-1.0))


def test_an_update_logs_the_mechanism_diagnostics():
    agent = _agent()
    m = agent.update(_batches(agent))
    for k in (
        "actor_value_grad_norm",
        "actor_bc_grad_norm",
        "actor_grad_cos",
        "start_after_goal",
        "data_uncertainty",
    ):
        assert k in m and torch.isfinite(m[k]), k
    assert -1.0 <= float(m["actor_grad_cos"]) <= 1.0
    assert 0.0 <= float(m["start_after_goal"]) <= 1.0
    no_bc = paper_agent("moto-no-bc", "cpu", profile="smoke")
    m = no_bc.update(_batches(no_bc))
    assert "actor_value_grad_norm" in m and "actor_grad_cos" not in m


@pytest.mark.parametrize("cin, cout, k, size", [(4, 3, 6, 13), (5, 2, 5, 14), (3, 3, 4, 15)])
def test_the_subpixel_transposed_convolution_equals_the_transposed_convolution(cin, cout, k, size):
    torch.manual_seed(0)
    layer = torch.nn.ConvTranspose2d(cin, cout, k, 2)
    x = torch.randn(2, cin, size, size, requires_grad=True)
    ref = F.conv_transpose2d(x, layer.weight, layer.bias, stride=2)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (x, layer.weight, layer.bias), grad)
    got = wm_module.transposed_conv(layer, x)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(torch.autograd.grad(got, (x, layer.weight, layer.bias), grad), ref_grads):
        assert torch.equal(a, b)  # the backward is the transposed convolution's own


@pytest.mark.parametrize("algo", ["moto", "dreamerv2"])
def test_seeded_updates_equal_the_native_transposed_convolutions_within_float_tolerance(algo, monkeypatch):
    """Three cpu-size updates, the decoder's transposed convolutions as before (native) and as now: the
    same losses to 1e-4 relative (float rounding of the forward sums only)."""

    def run():
        agent = paper_agent(algo, "cpu", profile="cpu")
        b = _batches(agent)
        return [agent.update(b) for _ in range(3)]

    new = run()
    monkeypatch.setattr(wm_module, "transposed_conv", lambda layer, x: layer(x))
    old = run()
    for a, b in zip(new, old):
        for k in ("model_loss", "image_loss", "critic_loss" if algo == "dreamerv2" else "critic_model_loss"):
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_unknown_choices_fail_when_the_config_is_made():
    for field in ("critic_target", "bc_data", "penalty_reference", "uncertainty"):
        with pytest.raises(ValueError, match=f"MOTOConfig.{field} must be one of"):
            algorithms.make_config("moto", "smoke", **{field: "nope"})
