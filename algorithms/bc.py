"""Behaviour cloning from pixels, as the paper's JAXRL2 baseline (Appendix C.4).

Policy: a Gaussian with unit standard deviation whose mean is the network output,
pi(a|s) = N(a; mu(s), I). Loss (negative log-likelihood, up to a constant):

    L(theta) = 1/B sum_i 1/2 ||a_i - mu_theta(aug(s_i))||^2

with aug = random shift (4-pixel edge padding, per sample), Adam at 3e-4 with cosine decay over
the run's updates. Acting returns clip(mu(s), -1, 1); exploring adds unit-std noise (the policy's
own sample).
"""
from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from algorithms import RunContext, Transitions, register
from algorithms.jax_nets import PixelMLP, fold_frames, random_shift


@dataclass(frozen=True)
class BCConfig:
    lr: float = 3e-4
    batch_size: int = 256
    framestack: int = 3
    channels: tuple[int, ...] = (32, 64, 128, 256)
    latent: int = 50
    hidden: tuple[int, ...] = (256, 256)
    augment_pad: int = 4
    cosine_decay_steps: int = 0  # 0: the run's total updates (jaxrl2's per-run decay_steps); <0: constant lr
    data: str = "all"  # which episodes to clone: all / offline / goal (filtered BC)

    PROFILES = {
        "cpu": dict(batch_size=64, channels=(16, 32, 32, 32)),
        "smoke": dict(batch_size=8, channels=(4, 4, 4, 4), latent=8, hidden=(16, 16)),
    }


def bc_loss(mean: jnp.ndarray, actions: jnp.ndarray) -> jnp.ndarray:
    """-log N(a; mean, I) averaged over the batch, without the constant d/2 log(2 pi)."""
    return 0.5 * jnp.mean(jnp.sum((actions - mean) ** 2, axis=-1))


class BCAgent:
    def __init__(self, config: BCConfig, context: RunContext):
        self.config = config
        k = config.framestack
        self.requests = {"bc": Transitions(config.batch_size, framestack=k, filter=config.data)}
        self.act_stack = k
        self.net = PixelMLP(config.channels, config.latent, config.hidden, context.action_dim)
        key, init_key = jax.random.split(jax.random.PRNGKey(context.seed))
        H, W, C = context.obs_shape
        params = self.net.init(init_key, jnp.zeros((1, H, W, C * k), jnp.uint8))
        decay = config.cosine_decay_steps or context.total_updates
        lr = optax.cosine_decay_schedule(config.lr, decay) if decay > 0 else config.lr
        self.tx = optax.adam(lr)
        self.state = {"params": params, "opt": self.tx.init(params), "key": key}
        self._update = jax.jit(self._update_fn)
        self._mean = jax.jit(lambda p, o: self.net.apply(p, fold_frames(o)))

    def _update_fn(self, state, frames, actions):
        key, aug_key = jax.random.split(state["key"])
        obs = fold_frames(frames[:, :-1])  # frames t-k+1..t (the last one is next_obs's)
        if self.config.augment_pad:
            obs = random_shift(aug_key, obs, self.config.augment_pad)

        def loss_fn(p):
            return bc_loss(self.net.apply(p, obs), actions)

        loss, grads = jax.value_and_grad(loss_fn)(state["params"])
        updates, opt = self.tx.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt, "key": key}, loss

    def update(self, batches):
        b = batches["bc"]
        self.state, loss = self._update(self.state, b["frames"], b["action"])
        return {"bc_loss": loss}  # a device scalar: read only at log points

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


register("bc", BCConfig, BCAgent)
