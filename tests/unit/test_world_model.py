"""The shared world model (algorithms/nets/world_model.py): KL balancing, straight-through latents, the
batched prior ensemble, episode resets, imagination, lambda-returns, dynamics backpropagation."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from algorithms.nets.torch_parts import TruncatedNormal, lambda_return
from algorithms.nets.world_model import RSSM, WorldModel, WorldModelConfig, kl_balanced

TINY = WorldModelConfig(
    deter=8,
    hidden=8,
    stoch=3,
    classes=4,
    enc_channels=(4, 4, 4, 4),
    enc_mlp=(8,),
    dec_mlp=(8,),
    dec_in=8,
    dec_channels=(4, 4, 4, 3),
    reward_mlp=(8,),
    batch=2,
    length=6,
)


def tiny_rssm(**kw):
    torch.manual_seed(0)
    return RSSM(dataclasses.replace(TINY, **kw), embed_dim=5, action_dim=2)


def test_kl_balance_matches_hand_computed_values_and_gradients():
    rssm = tiny_rssm(stoch=1, classes=2, unimix=0.0)
    q = torch.log(torch.tensor([[0.75, 0.25]])).requires_grad_()  # posterior logits
    p = torch.log(torch.tensor([[0.5, 0.5]])).requires_grad_()  # prior logits
    loss, value = kl_balanced(q, p, rssm, balance=0.8, free=0.0)
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)  # 0.130812
    assert value.item() == pytest.approx(kl, abs=1e-6)
    assert loss.item() == pytest.approx(kl, abs=1e-6)  # both terms have the same value
    loss.backward()
    # d KL / d prior logits = p - q = (-0.25, 0.25), weighted 0.8 (the prior learns)
    np.testing.assert_allclose(p.grad.numpy(), [[-0.2, 0.2]], atol=1e-6)
    # d KL / d posterior logits = q_j (d_j - sum_k q_k d_k), d_k = log(q_k / p_k) + 1, weighted 0.2
    d = np.array([math.log(1.5) + 1, math.log(0.5) + 1])
    qv = np.array([0.75, 0.25])
    np.testing.assert_allclose(q.grad.numpy(), [0.2 * qv * (d - qv @ d)], atol=1e-6)
    # free nats: below the threshold the loss is constant, nothing is trained
    q.grad = p.grad = None
    loss, _ = kl_balanced(q, p, rssm, balance=0.8, free=1.0)
    loss.backward()
    assert loss.item() == pytest.approx(1.0) and q.grad.abs().sum() == 0 and p.grad.abs().sum() == 0


def test_gaussian_kl_matches_closed_form():
    rssm = tiny_rssm(classes=0, stoch=1, min_std=0.0)
    raw = lambda s: 2 * math.log(s / (2 - s))  # noqa: E731  inverse of std = 2 sigmoid(raw / 2)
    q = torch.tensor([[1.0, raw(0.5)]])
    p = torch.tensor([[0.0, raw(1.0)]])
    expected = math.log(1.0 / 0.5) + (0.25 + 1.0) / 2.0 - 0.5
    assert rssm.kl(q, p).item() == pytest.approx(expected, abs=1e-5)


def test_straight_through_samples_are_one_hot_with_the_probabilities_gradient():
    rssm = tiny_rssm()
    logits = torch.randn(5, 3 * 4, requires_grad=True)
    w = torch.randn(5, 3 * 4)
    z = rssm.sample(logits, torch.Generator().manual_seed(0))
    onehot = z.detach().view(5, 3, 4)
    torch.testing.assert_close(onehot, onehot.round())  # one-hot up to rounding of p - sg(p)
    torch.testing.assert_close(onehot.sum(-1), torch.ones(5, 3))
    (z * w).sum().backward()
    g_sample = logits.grad.clone()
    logits.grad = None
    (rssm.log_probs(logits).exp().flatten(-2) * w).sum().backward()
    assert g_sample.abs().sum() > 0
    torch.testing.assert_close(g_sample, logits.grad)
    # the 1% uniform mix keeps every class possible
    assert rssm.log_probs(torch.tensor([[-1e4] * 12])).exp().min() >= 0.01 / 4 - 1e-7


def _loop_prior(rssm, deter, m):
    h = rssm.act_fn(deter @ rssm.prior_hidden.weight[m] + rssm.prior_hidden.bias[m, 0])
    return h @ rssm.prior_out.weight[m] + rssm.prior_out.bias[m, 0]


def test_batched_ensemble_equals_a_loop_over_members_in_values_and_gradients():
    rssm = tiny_rssm(ensemble=5)
    for p in (rssm.prior_hidden.bias, rssm.prior_out.bias):  # non-zero biases, so they are tested too
        torch.nn.init.normal_(p)
    deter = torch.randn(7, 8, requires_grad=True)
    r = torch.randn(5, 7, 12)
    batched = rssm.prior(deter, "all")
    loop = torch.stack([_loop_prior(rssm, deter, m) for m in range(5)])
    torch.testing.assert_close(batched, loop)
    params = [
        rssm.prior_hidden.weight,
        rssm.prior_hidden.bias,
        rssm.prior_out.weight,
        rssm.prior_out.bias,
        deter,
    ]
    g_batched = torch.autograd.grad((batched * r).sum(), params)
    g_loop = torch.autograd.grad((loop * r).sum(), params)
    for a, b in zip(g_batched, g_loop):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(rssm.prior(deter, 3), loop[3])  # one fixed member
    # one member per group (time step), as the ELBO draws them
    members = torch.tensor([4, 0, 4])
    grouped = rssm.prior(deter[None].expand(3, 7, 8), members)
    torch.testing.assert_close(grouped, loop[members])


def test_observe_uses_the_drawn_member_per_time_step():
    rssm = tiny_rssm(ensemble=3)
    B, L = 2, 4
    embed, action = torch.randn(B, L, 5), torch.randn(B, L, 2)
    first = torch.zeros(B, L, dtype=torch.bool)
    members = torch.tensor([2, 0, 1, 2])
    post, prior = rssm.observe(embed, action, first, sample=False, members=members)
    for t in range(L):
        torch.testing.assert_close(prior[:, t], _loop_prior(rssm, post["deter"][:, t], int(members[t])))


def test_the_recurrent_state_resets_at_episode_starts():
    rssm = tiny_rssm()
    B, L, k = 2, 6, 3
    torch.manual_seed(1)
    embed, action = torch.randn(B, L, 5), torch.randn(B, L, 2)
    first = torch.zeros(B, L, dtype=torch.bool)
    first[:, 0] = True
    whole, _ = rssm.observe(embed, action, first, sample=False)
    first[:, k] = True  # a new episode starts inside the window
    reset, _ = rssm.observe(embed, action, first, sample=False)
    alone, _ = rssm.observe(embed[:, k:], action[:, k:], first[:, k:], sample=False)
    for key in ("deter", "stoch", "stats"):
        torch.testing.assert_close(reset[key][:, k:], alone[key])  # nothing carried over from before k
        torch.testing.assert_close(reset[key][:, :k], whole[key][:, :k])
    assert not torch.allclose(whole["deter"][:, k:], reset["deter"][:, k:])  # the flag matters


def test_imagination_returns_member_statistics_and_disagreement():
    rssm = tiny_rssm(ensemble=4)
    start = rssm.initial(3)
    start["deter"] = torch.randn(3, 8)
    gen = torch.Generator().manual_seed(0)
    seq = rssm.imagine(lambda feat: torch.tanh(feat[:, :2]), start, 5, gen, return_ensemble=True)
    assert seq["feat"].shape == (6, 3, 12 + 8) and seq["action"].shape == (6, 3, 2)
    assert seq["ensemble"].shape == (4, 5, 3, 12)
    assert torch.all(seq["action"][0] == 0)
    u = rssm.disagreement(seq["ensemble"])
    assert u.shape == (5, 3) and torch.all(u > 0)
    with torch.no_grad():  # identical members: no disagreement
        for layer in (rssm.prior_hidden, rssm.prior_out):
            layer.weight[:] = layer.weight[0]
            layer.bias[:] = layer.bias[0]
    seq = rssm.imagine(lambda feat: torch.tanh(feat[:, :2]), start, 2, gen, return_ensemble=True)
    assert rssm.disagreement(seq["ensemble"]).abs().max() < 1e-6
    # the chosen member is one of the ensemble's
    seq = rssm.imagine(lambda feat: torch.tanh(feat[:, :2]), start, 1, gen, member=2, return_ensemble=True)
    torch.testing.assert_close(seq["stats"][1], seq["ensemble"][2, 0])


def test_decoder_first_layer_as_a_matmul_equals_the_transposed_convolution():
    from algorithms.nets.world_model import Decoder

    torch.manual_seed(0)
    dec = Decoder(40, (64, 64, 3), (16,), 24, (8, 6, 4, 3), (5, 5, 6, 6))
    feat = torch.randn(2, 3, 40, requires_grad=True)
    ref = (
        dec.deconv(dec.mlp(feat.reshape(-1, 40))[:, :, None, None])
        .permute(0, 2, 3, 1)
        .reshape(2, 3, 64, 64, 3)
    )
    out = dec(feat)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    params = [feat] + list(dec.parameters())
    for g, g_ref in zip(
        torch.autograd.grad(out.square().sum(), params), torch.autograd.grad(ref.square().sum(), params)
    ):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-5)


def test_lambda_returns_match_a_hand_computed_example():
    reward = torch.tensor([[1.0], [2.0]])  # r_1, r_2
    value = torch.tensor([[0.0], [3.0], [4.0]])  # v_0, v_1, v_2
    disc = torch.tensor([[0.5], [0.5]])
    # R_1 = 2 + 0.5 (0.5 * 4 + 0.5 * 4) = 4;  R_0 = 1 + 0.5 (0.5 * 3 + 0.5 * 4) = 2.75
    torch.testing.assert_close(lambda_return(reward, value, disc, 0.5), torch.tensor([[2.75], [4.0]]))
    # lambda = 0: one-step targets; lambda = 1: discounted Monte Carlo with bootstrap
    torch.testing.assert_close(lambda_return(reward, value, disc, 0.0), torch.tensor([[2.5], [4.0]]))
    torch.testing.assert_close(
        lambda_return(reward, value, disc, 1.0), torch.tensor([[1 + 0.5 * 4.0], [4.0]])
    )


def test_truncated_normal_samples_stay_in_bounds_and_carry_gradients():
    mean = torch.tensor([[0.9, -0.2]], requires_grad=True)
    std = torch.tensor([[0.5, 0.1]], requires_grad=True)
    d = TruncatedNormal(mean.expand(2000, 2), std.expand(2000, 2))
    x = d.rsample(torch.Generator().manual_seed(0))
    assert x.min() > -1 and x.max() < 1
    x.sum().backward()
    assert mean.grad.abs().min() > 0 and std.grad.abs().min() > 0
    # the mean of a normal truncated to [-1, 1] around 0.9 is pulled inwards
    assert 0.3 < x[:, 0].mean().item() < 0.9 and abs(x[:, 1].mean().item() + 0.2) < 0.02


@pytest.mark.parametrize("classes", [4, 0], ids=["discrete", "gaussian"])
def test_world_model_loss_trains_every_part(classes):
    torch.manual_seed(0)
    wm = WorldModel(dataclasses.replace(TINY, classes=classes, ensemble=2), (64, 64, 3), 2)
    rng = np.random.default_rng(0)
    B, L = 2, 4
    batch = {
        "image": torch.as_tensor(rng.integers(0, 256, (B, L, 64, 64, 3), dtype=np.uint8)),
        "action": torch.randn(B, L, 2),
        "reward": torch.rand(B, L),
        "is_first": torch.tensor([[True, False, False, False]] * B),
        "is_terminal": torch.zeros(B, L, dtype=bool),
    }
    loss, metrics, post = wm.loss(batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and post["deter"].shape == (B, L, 8)
    loss.backward()
    for name in ("encoder", "decoder", "reward", "rssm"):
        grads = [p.grad for p in getattr(wm, name).parameters()]
        assert (
            all(g is not None for g in grads[:1]) and sum(g.abs().sum() for g in grads if g is not None) > 0
        ), name


def test_a_window_without_carried_state_starts_fresh_at_its_first_frame():
    # DreamerV2's replay marks is_first at every sampled window's first frame: a window that starts
    # mid-episode must not feed the real previous action into the zero initial state.
    rssm = tiny_rssm()
    torch.manual_seed(2)
    embed, action = torch.randn(2, 4, 5), torch.randn(2, 4, 2)
    mid = torch.zeros(2, 4, dtype=torch.bool)  # no episode start in the window
    post, _ = rssm.observe(embed, action, mid, sample=False)
    zeroed = action.clone()
    zeroed[:, 0] = 0.0
    start = mid.clone()
    start[:, 0] = True
    fresh, _ = rssm.observe(embed, zeroed, start, sample=False)
    for key in ("deter", "stoch", "stats"):
        torch.testing.assert_close(post[key], fresh[key])
    # with a carried state the first frame continues it (no reset)
    carried, _ = rssm.observe(
        embed[:, 1:], action[:, 1:], mid[:, 1:], state={k: v[:, 0] for k, v in post.items()}, sample=False
    )
    torch.testing.assert_close(carried["deter"], post["deter"][:, 1:])


MEASURES = ("logits", "log_probs", "probs", "sample_log_prob", "meandis")


def _members_equal(rssm):
    with torch.no_grad():
        for layer in (rssm.prior_hidden, rssm.prior_out):
            layer.weight.copy_(layer.weight[:1].expand_as(layer.weight))
            layer.bias.copy_(torch.randn_like(layer.bias[:1]).expand_as(layer.bias))


@pytest.mark.parametrize("classes", [4, 0])
def test_every_uncertainty_measure_is_zero_when_members_share_weights(classes):
    rssm = tiny_rssm(ensemble=5, classes=classes)
    state = rssm.initial(6)
    state["deter"] = torch.randn(6, 8)
    measures = MEASURES if classes else ("logits", "sample_log_prob", "meandis")
    out, stats_all = rssm.img_step(
        state, torch.randn(6, 2), torch.Generator().manual_seed(0), return_ensemble=True
    )
    for m in measures:
        u = rssm.disagreement(stats_all, m, out["stoch"])
        assert u.shape == (6,) and bool((u > 1e-3).all()), m
    _members_equal(rssm)
    out, stats_all = rssm.img_step(
        state, torch.randn(6, 2), torch.Generator().manual_seed(0), return_ensemble=True
    )
    for m in measures:
        assert rssm.disagreement(stats_all, m, out["stoch"]).abs().max() < 1e-5, m
    if not classes:
        with pytest.raises(ValueError, match="categorical"):
            rssm.disagreement(stats_all, "probs")
    with pytest.raises(ValueError, match="unknown uncertainty measure"):
        rssm.disagreement(stats_all, "variance")
    with pytest.raises(ValueError, match="stoch="):
        rssm.disagreement(stats_all, "sample_log_prob")


def test_a_constant_on_one_categoricals_logits_moves_only_the_raw_logit_measure():
    # A per-categorical shift of the logits changes no probability: every measure but raw logits ignores it.
    rssm = tiny_rssm(ensemble=4, stoch=3, classes=4)
    state = rssm.initial(5)
    state["deter"] = torch.randn(5, 8)
    out, stats_all = rssm.img_step(
        state, torch.randn(5, 2), torch.Generator().manual_seed(1), return_ensemble=True
    )
    shifted = stats_all.clone().unflatten(-1, (3, 4))
    shifted[2, :, 1] += 3.0  # member 2, categorical 1, every class
    shifted = shifted.flatten(-2)
    for m in MEASURES:
        before = rssm.disagreement(stats_all, m, out["stoch"])
        after = rssm.disagreement(shifted, m, out["stoch"])
        if m == "logits":
            assert (after - before).abs().min() > 0.1
        else:
            torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_the_measures_against_hand_computed_values():
    # two members, one categorical of two classes, no unimix: p1 = (0.5, 0.5), p2 = (0.8, 0.2)
    rssm = tiny_rssm(ensemble=2, stoch=1, classes=2, unimix=0.0)
    logits = torch.tensor([[[0.0, 0.0]], [[math.log(4.0), 0.0]]])  # (M=2, N=1, P=2)
    z = torch.tensor([[1.0, 0.0]])  # the sampled class 0
    lp = torch.log(torch.tensor([[0.5, 0.5], [0.8, 0.2]]))
    expect = {
        "logits": (math.log(4.0) / 2 + 0.0) / 2,
        "log_probs": ((lp[0] - lp[1]).abs() / 2).mean().item(),
        "probs": (0.3 / 2 + 0.3 / 2) / 2,
        "sample_log_prob": abs(math.log(0.5) - math.log(0.8)) / 2,
        "meandis": math.sqrt(0.15**2 * 2),
    }
    for m, v in expect.items():
        assert rssm.disagreement(logits, m, z).item() == pytest.approx(v, rel=1e-5), m


def test_prior_heads_can_see_the_action_into_the_state():
    rssm = tiny_rssm(ensemble=3, prior_action=True)
    deter = torch.randn(4, 8)
    a, b = torch.randn(4, 2), torch.randn(4, 2)
    assert rssm.prior(deter, "all", a).shape == (3, 4, 12)
    assert not torch.allclose(
        rssm.prior(deter, "all", a), rssm.prior(deter, "all", b)
    )  # same h, other action
    with pytest.raises(ValueError, match="action="):
        rssm.prior(deter, "all")
    # observe's priors use the action into each frame, zeroed where a window or an episode starts
    # (as obs_step)
    embed, action = torch.randn(2, 3, 5), torch.randn(2, 3, 2)
    first = torch.zeros(2, 3, dtype=torch.bool)
    members = torch.tensor([0, 2, 1])
    post, prior = rssm.observe(embed, action, first, sample=False, members=members)
    for t in range(3):
        act = action[:, t] * (t > 0)
        torch.testing.assert_close(prior[:, t], rssm.prior(post["deter"][:, t], int(members[t]), act))
