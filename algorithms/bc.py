"""Behaviour cloning from pixels, as the paper's JAXRL2 baseline (Appendix C.4).

Policy: a Gaussian with unit standard deviation whose mean is the network output,
pi(a|s) = N(a; mu(s), I). Loss (negative log-likelihood, up to a constant):

    L(theta) = 1/B sum_i 1/2 ||a_i - mu_theta(aug(s_i))||^2

with aug = random shift (4-pixel edge padding, per sample), Adam at 3e-4 with cosine decay.
Acting returns clip(mu(s), -1, 1); exploring adds unit-std noise (the policy's own sample).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algorithms import Sampling, register
from algorithms.jax_nets import PixelMLP, random_shift


@dataclass(frozen=True)
class BCConfig:
    lr: float = 3e-4
    batch_size: int = 256
    framestack: int = 3
    channels: tuple[int, ...] = (32, 64, 128, 256)
    latent: int = 50
    hidden: tuple[int, ...] = (256, 256)
    augment_pad: int = 4
    cosine_decay_steps: int = 0  # 0 = the run's total updates (set by benchmark.run); <0: constant lr

    PROFILES = {
        "cpu": dict(batch_size=64, channels=(16, 32, 32, 32)),
        "smoke": dict(batch_size=8, channels=(4, 4, 4, 4), latent=8, hidden=(16, 16)),
    }


def bc_loss(mean: jnp.ndarray, actions: jnp.ndarray) -> jnp.ndarray:
    """-log N(a; mean, I) averaged over the batch, without the constant d/2 log(2 pi)."""
    return 0.5 * jnp.mean(jnp.sum((actions - mean) ** 2, axis=-1))


class BCAgent:
    def __init__(self, config: BCConfig, obs_shape, action_dim: int, seed: int):
        self.config = config
        self.sampling = Sampling("transitions", config.batch_size, framestack=config.framestack)
        self.net = PixelMLP(config.channels, config.latent, config.hidden, action_dim)
        key, init_key = jax.random.split(jax.random.PRNGKey(seed))
        H, W, C = obs_shape
        params = self.net.init(init_key, jnp.zeros((1, H, W, C * config.framestack), jnp.uint8))
        lr = (optax.cosine_decay_schedule(config.lr, config.cosine_decay_steps)
              if config.cosine_decay_steps > 0 else config.lr)
        self.tx = optax.adam(lr)
        self.state = {"params": params, "opt": self.tx.init(params), "key": key, "step": 0}
        self._update = jax.jit(self._update_fn)
        self._mean = jax.jit(lambda p, o: self.net.apply(p, o))

    def _update_fn(self, params, opt_state, key, obs, actions):
        key, aug_key = jax.random.split(key)
        obs = random_shift(aug_key, obs, self.config.augment_pad) if self.config.augment_pad else obs

        def loss_fn(p):
            return bc_loss(self.net.apply(p, obs), actions)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, key, loss

    def update(self, batch):
        s = self.state
        params, opt, key, loss = self._update(s["params"], s["opt"], s["key"], batch["obs"], batch["action"])
        self.state = {"params": params, "opt": opt, "key": key, "step": s["step"] + 1}
        return {"bc_loss": float(loss)}

    def act(self, obs, state=None, explore: bool = False):
        mean = np.asarray(self._mean(self.state["params"], obs[None]))[0]
        if explore:
            key, noise_key = jax.random.split(self.state["key"])
            self.state["key"] = key
            mean = mean + np.asarray(jax.random.normal(noise_key, mean.shape))
        return np.clip(mean, -1.0, 1.0).astype(np.float32), state

    def state_dict(self):
        return jax.tree_util.tree_map(np.asarray, self.state)

    def load_state_dict(self, d):
        self.state = jax.tree_util.tree_map(jnp.asarray, d)
        self.state["step"] = int(d["step"])


register("bc", BCConfig, BCAgent)
