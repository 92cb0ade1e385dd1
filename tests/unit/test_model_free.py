"""SAC, CQL, IQL and BC: losses on hand-computed inputs, CQL's encode-once equality, one compilation
per run, checkpoint round trips. Smoke-size nets on 32x32 frames (the smallest the D4PG encoder takes)."""

import math
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import algorithms
from algorithms import RunContext
from algorithms.cql import cql_penalty
from algorithms.iql import awr_loss, awr_weights, expectile_loss
from algorithms.nets.jax_learner import bootstrap_mask, soft_update, tanh_gaussian_sample
from algorithms.sac import actor_loss, critic_loss, td_target, temperature_loss
from benchmark.core.replay import BatchSampler, EpisodeStore


def _quick_compiles():
    """Run alone, this module creates JAX's CPU client itself: with XLA's backend optimisation level 0
    compiles take about half as long, and smoke-size nets need no optimised code. The flag is read
    only when the client is created, so it is set for that moment and then restored (no effect, and
    no harm, when another module created the client first)."""
    import os

    try:
        from jax._src.xla_bridge import backends_are_initialized

        if backends_are_initialized():
            return
    except ImportError:
        return
    old = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = f"{old or ''} --xla_backend_optimization_level=0".strip()
    try:
        jax.devices()
    finally:
        if old is None:
            del os.environ["XLA_FLAGS"]
        else:
            os.environ["XLA_FLAGS"] = old


_quick_compiles()
LEARNERS = ["bc", "sac", "cql", "iql"]
SIZE, A = 32, 4


@pytest.fixture(scope="module", autouse=True)
def compile_cache(tmp_path_factory):
    """Agents of one config compile the same program: a compilation cache for this module lets a
    second agent (a clone loading a checkpoint) reuse it instead of compiling for seconds again."""
    from jax.experimental.compilation_cache import compilation_cache as cc

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = {n: getattr(jax.config, n) for n in names}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    cc.reset_cache()
    yield
    for n, v in old.items():
        jax.config.update(n, v)
    cc.reset_cache()


def context(seed=0):
    return RunContext(obs_shape=(SIZE, SIZE, 3), action_dim=A, seed=seed, total_updates=1000)


def make(name, seed=0, **overrides):
    return algorithms.make_agent(name, algorithms.make_config(name, "smoke", **overrides), context(seed))


def episode(rng, T):
    return {
        "image": rng.integers(0, 256, (T + 1, SIZE, SIZE, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (T, A)).astype(np.float32),
        "reward": (rng.uniform(size=T) > 0.5).astype(np.float32),
        "success": np.zeros(T, bool),
        "terminal": np.zeros(T, bool),
    }


def batch_for(agent, seed=0):
    store = EpisodeStore()
    rng = np.random.default_rng(seed)
    for _ in range(2):
        store.add(episode(rng, 12))
    return BatchSampler(store, agent.requests, seed, depth=0).batch(0)


# -- the losses, by hand ------------------------------------------------------------------------


def test_td_target_and_critic_loss_by_hand():
    y = td_target(jnp.array([1.0, 0.0]), jnp.array([1.0, 0.0]), jnp.array([2.0, 3.0]), 0.99)
    np.testing.assert_allclose(y, [2.98, 0.0], rtol=1e-6)  # mask 0: no bootstrap
    y = td_target(jnp.array([1.0]), jnp.array([1.0]), jnp.array([2.0]), 0.5, jnp.array([4.0]), 0.25)
    np.testing.assert_allclose(y, [1.0 + 0.5 * (2.0 - 0.25 * 4.0)])  # the entropy backup, when asked
    qs = jnp.array([[3.0, 0.0], [2.0, 1.0]])  # (heads, B): mean over both heads and the batch
    assert float(critic_loss(qs, jnp.array([2.98, 0.0]))) == pytest.approx(
        (0.02**2 + 0 + 0.98**2 + 1) / 4, rel=1e-5
    )
    assert float(actor_loss(jnp.array([-1.0, -3.0]), jnp.array([2.0, 4.0]), 0.5)) == pytest.approx(
        ((0.5 * -1 - 2) + (0.5 * -3 - 4)) / 2
    )


def test_bootstrap_mask_modes():
    discount = jnp.array([1.0, 1.0, 1.0, 0.0])
    is_last = jnp.array([False, True, True, True])
    online = jnp.array([False, False, True, True])
    np.testing.assert_array_equal(bootstrap_mask(discount, is_last, online, "all"), [1, 0, 0, 0])
    np.testing.assert_array_equal(bootstrap_mask(discount, is_last, online, "offline"), [1, 0, 1, 0])
    np.testing.assert_array_equal(bootstrap_mask(discount, is_last, online, "none"), [1, 1, 1, 0])
    with pytest.raises(ValueError, match="last_is_terminal"):
        bootstrap_mask(discount, is_last, online, "some")


def test_expectile_loss_is_asymmetric():
    diff = jnp.array([2.0, -1.0])  # Q - V
    assert float(expectile_loss(diff, 0.8)) == pytest.approx((0.8 * 4 + 0.2 * 1) / 2)
    assert float(expectile_loss(-diff, 0.8)) == pytest.approx((0.2 * 4 + 0.8 * 1) / 2)
    assert float(expectile_loss(diff, 0.5)) == pytest.approx(
        (0.5 * 4 + 0.5 * 1) / 2
    )  # 0.5: plain squared error / 2
    # tau > 0.5 pushes V up towards the upper expectile: the gradient on V is larger where Q > V
    g = jax.grad(lambda v: expectile_loss(jnp.array([1.0, 1.0]) - v, 0.9))(jnp.array([0.0, 2.0]))
    assert float(g[0]) == pytest.approx(-0.9) and float(g[1]) == pytest.approx(0.1)


def test_awr_weights_and_loss_by_hand():
    w = awr_weights(jnp.array([1.0, 2.0, 20.0]), jnp.array([1.0, 1.0, 0.0]), 3.0, 100.0)
    np.testing.assert_allclose(w, [1.0, math.exp(3.0), 100.0], rtol=1e-6)  # exp(3 (Q - V)), clipped at 100
    actions, mean = jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 0.0]])
    log_n = -0.5 * 1.0 - math.log(2 * math.pi)  # log N([1, 0]; 0, I) in 2-D
    assert float(awr_loss(jnp.array([2.0]), actions, mean)) == pytest.approx(-2.0 * log_n, rel=1e-6)


def test_cql_term_sign_and_scale():
    # one head, one state, one policy and one uniform sample, A = 1
    q_data, q_pi, log_pi, q_rand = (
        jnp.array([[1.0]]),
        jnp.array([[[2.0]]]),
        jnp.array([[-1.0]]),
        jnp.array([[[0.0]]]),
    )
    expected = math.log(math.exp(2.0 + 1.0) + math.exp(0.0 - math.log(0.5))) - 1.0
    assert float(cql_penalty(q_data, q_pi, log_pi, q_rand, 1)) == pytest.approx(expected, rel=1e-6)
    g_data, g_pi, g_rand = jax.grad(lambda a, b, c: cql_penalty(a, b, log_pi, c, 1), argnums=(0, 1, 2))(
        q_data, q_pi, q_rand
    )
    # pushes Q down on sampled actions (weights of a softmax, summing to 1) and up on the data's
    assert float(g_data[0, 0]) == pytest.approx(-1.0)
    assert (
        float(g_pi.sum() + g_rand.sum()) == pytest.approx(1.0) and float(g_pi.sum()) > float(g_rand.sum()) > 0
    )


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    mean, log_std = jnp.array([[0.3, -0.2]]), jnp.array([[-0.5, 0.1]])
    a, logp = tanh_gaussian_sample(jax.random.PRNGKey(0), mean, log_std)
    u = np.arctanh(np.asarray(a, np.float64))
    std = np.exp(np.asarray(log_std, np.float64))
    ref = (
        -0.5 * ((u - np.asarray(mean)) / std) ** 2
        - np.log(std)
        - 0.5 * np.log(2 * np.pi)
        - np.log(1 - np.tanh(u) ** 2)
    ).sum()
    assert float(logp[0]) == pytest.approx(ref, rel=1e-4)


def test_temperature_gradient_direction():
    # entropy above target: the gradient on log alpha is alpha (H - H_target) > 0, so alpha falls
    assert float(jax.grad(temperature_loss)(0.0, 1.0, -2.0)) == pytest.approx(3.0)
    assert float(jax.grad(temperature_loss)(jnp.log(2.0), -3.0, -2.0)) == pytest.approx(-2.0)


def test_soft_target_update_by_hand():
    new = soft_update({"w": jnp.array([0.0, 10.0])}, {"w": jnp.array([1.0, 0.0])}, 0.005)
    np.testing.assert_allclose(new["w"], [0.005, 9.95], rtol=1e-6)


# -- the agents ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained():
    """Each learner after updates on offline data, then on a store with an online episode."""
    out = {}
    for name in LEARNERS:
        agent = make(name)
        store = EpisodeStore()
        rng = np.random.default_rng(0)
        for _ in range(2):
            store.add(episode(rng, 12))
        sampler = BatchSampler(store, agent.requests, 0, depth=1)
        history = [agent.update(b) for b in sampler.block(0, 3)]
        store.add(episode(rng, 12), online=True)  # the online phase: new data, flags flip, same shapes
        history += [agent.update(b) for b in sampler.block(3, 3)]
        sampler.close()
        out[name] = agent, history
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", LEARNERS)
def test_one_compilation_per_run_and_finite_device_metrics(trained, name):
    agent, history = trained[name]
    assert agent.traces == 1
    for metrics in history:
        assert all(isinstance(v, jax.Array) and v.shape == () for v in metrics.values())
        assert all(np.isfinite(float(v)) for v in metrics.values())
    obs = np.zeros((agent.act_stack, SIZE, SIZE, 3), np.uint8)
    for explore in (False, True):
        action, _ = agent.act(obs, None, explore)
        assert action.shape == (A,) and action.dtype == np.float32


@pytest.mark.slow
@pytest.mark.parametrize("name", LEARNERS)
def test_checkpoint_round_trip_reproduces_the_next_update(trained, name):
    agent, _ = trained[name]
    saved = pickle.loads(pickle.dumps(agent.state_dict()))
    batch = batch_for(agent, seed=3)
    m1 = agent.update(batch)
    clone = make(name, seed=7)  # other initial parameters and keys: everything must come from the checkpoint
    clone.load_state_dict(saved)
    m2 = clone.update(batch)
    assert {k: float(v) for k, v in m1.items()} == {k: float(v) for k, v in m2.items()}
    for x, y in zip(jax.tree_util.tree_leaves(agent.state), jax.tree_util.tree_leaves(clone.state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    obs = batch[agent.request_name]["obs"][0]
    np.testing.assert_array_equal(agent.act(obs, None, True)[0], clone.act(obs, None, True)[0])


def test_sac_update_temperature_target_and_actor_decay(trained):
    agent = make("sac", seed=1)
    before = agent.state_dict()
    metrics = agent.update(batch_for(agent))
    c = agent.config
    assert float(metrics["entropy"]) > agent.target_entropy == -A / 2
    # Adam's first step moves log alpha by -lr (the gradient is positive): alpha falls from 1.0
    assert float(agent.state["log_temp"]) == pytest.approx(-c.temp_lr, rel=1e-3)
    # the target critic moved by tau towards the updated critic
    for t0, t1, q1 in zip(
        *(
            jax.tree_util.tree_leaves(x)
            for x in (before["target"], agent.state["target"], agent.state["critic"])
        )
    ):
        np.testing.assert_allclose(t1, c.tau * q1 + (1 - c.tau) * t0, rtol=1e-5, atol=1e-7)
    # the actor's learning rate decays over the run; the critic's stays constant
    actor_count = jax.tree_util.tree_leaves(agent.state["actor_opt"])[0]
    assert int(actor_count) == 1


def test_cql_adds_alpha_times_its_term(trained):
    for m in trained["cql"][1]:
        assert float(m["critic_loss"]) == pytest.approx(
            float(m["bellman_loss"]) + 5.0 * float(m["cql_loss"]), rel=1e-5
        )
        assert float(m["cql_loss"]) > 0  # log-sum-exp over 8 importance-weighted samples exceeds the data's Q


@pytest.mark.slow
def test_cql_encode_once_equals_encode_repeated(trained):
    """The agent's own conservative term, with the latent repeated and with the images repeated before
    the CNN (the reference's way): equal values and equal gradients for every critic parameter."""
    import dataclasses

    agent = trained["cql"][0]
    config = agent.config
    obs = jnp.asarray(np.random.default_rng(1).integers(0, 256, (6, SIZE, SIZE, 9), dtype=np.uint8))
    actions = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (6, A)), jnp.float32)
    mean, log_std = agent.actor.apply(agent.state["actor"], obs)

    def penalty(cp, encode_once):
        agent.config = dataclasses.replace(config, encode_once=encode_once)  # read while tracing
        z = agent.critic.apply(cp, obs, method="encode")
        qs = agent.critic.apply(cp, z, actions, method="head_only")
        return agent.conservative(cp, obs, z, qs, mean, log_std, jax.random.PRNGKey(3))[0]

    try:
        both = jax.jit(
            lambda cp: (jax.value_and_grad(penalty)(cp, True), jax.value_and_grad(penalty)(cp, False))
        )
        (v1, g1), (v2, g2) = both(agent.state["critic"])
    finally:
        agent.config = config
    assert float(v1) == pytest.approx(float(v2), rel=1e-5) and float(v1) != 0.0
    leaves1, leaves2 = jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g2)
    assert len(leaves1) == len(leaves2) > 0
    for x, y in zip(leaves1, leaves2):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)
    assert any(np.abs(np.asarray(x)).max() > 0 for x in leaves1)  # the encoder gets a gradient too


def test_bc_clones_only_the_dataset_by_default():
    cfg = algorithms.make_config("bc")
    assert cfg.data == "offline" and cfg.tanh_mean
    agent = make("bc")
    assert agent.requests["bc"].filter == "offline"
    assert make("bc", data="goal").requests["bc"].filter == "goal"


def test_the_actor_lr_decays_over_the_tasks_paper_schedule_in_every_profile(drawer_open_data, tmp_path):
    # the cpu profile's 1,200 updates keep the paper run's schedule shape: its online phase starts near the
    # full rate (the paper's run is at 99% then), not at the end of a decay squeezed into 1,200 updates
    import dataclasses

    from algorithms.nets.jax_learner import decay_steps
    from benchmark.core.protocol import Runner, RunSpec
    from benchmark.tasks import get_task
    from benchmark.tasks.profiles import schedule_for

    cfg = algorithms.make_config("bc", "cpu")
    ctx = RunContext(obs_shape=(8, 8, 3), action_dim=4, seed=0, total_updates=1200, schedule_updates=21000)
    assert decay_steps(cfg, ctx) == 21000
    assert decay_steps(dataclasses.replace(cfg, cosine_decay_steps=-1), ctx) == 0  # constant
    assert decay_steps(dataclasses.replace(cfg, cosine_decay_steps=500), ctx) == 500
    assert decay_steps(cfg, dataclasses.replace(ctx, schedule_updates=0)) == 1200
    spec = get_task("metaworld/drawer-open")
    runner = Runner(
        RunSpec(
            spec,
            "bc",
            algorithms.make_config("bc", "smoke"),
            schedule_for(spec, "smoke"),
            0,
            drawer_open_data / spec.name,
            tmp_path / "run",
        ),
        progress=False,
    )
    _, agent = runner._build()
    assert agent.context.schedule_updates == 1_000 + 20_000 and agent.context.total_updates == 4 + 4
