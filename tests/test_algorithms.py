import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

import algorithms
from algorithms.bc import BCConfig, bc_loss
from algorithms.jax_nets import random_shift


def test_registry_variant_and_unknown_names():
    assert "bc" in algorithms.REGISTRY
    algorithms.register_variant("bc-noaug-test", "bc", augment_pad=0)
    try:
        cfg = algorithms.make_config("bc-noaug-test", "smoke")
        assert cfg.augment_pad == 0 and cfg.batch_size == BCConfig.PROFILES["smoke"]["batch_size"]
        assert algorithms.make_config("bc").batch_size == 256  # the paper's default
        assert algorithms.make_config("bc", "cpu", lr=1e-3).lr == 1e-3
    finally:
        del algorithms.REGISTRY["bc-noaug-test"]
    with pytest.raises(KeyError, match="unknown algorithm 'bcc'; known: bc"):
        algorithms.get("bcc")
    with pytest.raises(ValueError, match="has no fields \\['alpha'\\]"):
        algorithms.register_variant("bc-bad", "bc", alpha=1.0)
    with pytest.raises(ValueError, match="already registered"):
        algorithms.register("bc", BCConfig, None)
    with pytest.raises(KeyError, match="no profile 'huge'"):
        algorithms.make_config("bc", "huge")


def test_bc_loss_on_hand_computed_input():
    mean = jnp.array([[0.0, 0.0], [1.0, -1.0]])
    actions = jnp.array([[1.0, 2.0], [1.0, 1.0]])
    # 1/2 * mean over batch of squared distance: (1 + 4) / 2 and (0 + 4) / 2 -> (2.5 + 2) / 2
    assert float(bc_loss(mean, actions)) == pytest.approx(2.25)


def test_random_shift_moves_by_at_most_the_padding():
    import jax

    img = np.arange(2 * 8 * 8 * 1, dtype=np.float32).reshape(2, 8, 8, 1)
    out = np.asarray(random_shift(jax.random.PRNGKey(0), jnp.asarray(img), pad=2))
    assert out.shape == img.shape
    # The centre 4x4 of each output is a shifted window of the input: find the offset.
    for i in range(2):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(out[i, 2:6, 2:6], img[i, 2 + dy:6 + dy, 2 + dx:6 + dx])]
        assert found


def test_bc_learns_to_imitate_a_fixed_mapping():
    cfg = dataclasses.replace(algorithms.make_config("bc", "smoke"), batch_size=16, augment_pad=0, lr=3e-3)
    agent = algorithms.make_agent("bc", cfg, (32, 32, 3), 2, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (16, 32, 32, 9), dtype=np.uint8)
    target = np.where(obs[:, :16].mean(axis=(1, 2, 3))[:, None] > obs[:, 16:].mean(axis=(1, 2, 3))[:, None],
                      [[0.5, -0.5]], [[-0.5, 0.5]]).astype(np.float32)
    first = agent.update({"obs": obs, "action": target})["bc_loss"]
    for _ in range(200):
        last = agent.update({"obs": obs, "action": target})["bc_loss"]
    assert last < 0.2 * first
    state = agent.state_dict()
    clone = algorithms.make_agent("bc", cfg, (32, 32, 3), 2, seed=1)
    clone.load_state_dict(state)
    np.testing.assert_array_equal(clone.act(obs[0])[0], agent.act(obs[0])[0])
