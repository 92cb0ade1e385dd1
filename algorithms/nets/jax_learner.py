"""What the JAXRL2-style model-free learners (BC, SAC, CQL, IQL) share: networks, augmentation and the
``JaxLearner`` base.

The paper (Appendix C.4): D4PG encoder, conv channels (32, 64, 128, 256), kernels 3, strides 2,
VALID, ReLU, on pixels / 255 with the frame stack folded into channels; then Dense(50) + LayerNorm
+ tanh; then an MLP (256, 256) with ReLU; orthogonal init with scale sqrt(2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

init = nn.initializers.orthogonal(jnp.sqrt(2.0))


class D4PGEncoder(nn.Module):
    channels: Sequence[int] = (32, 64, 128, 256)
    kernel: int = 3
    stride: int = 2
    latent: int = 50

    @nn.compact
    def __call__(self, pixels):  # (B, H, W, C) uint8
        x = pixels.astype(jnp.float32) / 255.0
        for c in self.channels:
            x = nn.relu(
                nn.Conv(c, (self.kernel, self.kernel), (self.stride, self.stride), "VALID", kernel_init=init)(
                    x
                )
            )
        x = x.reshape(x.shape[0], -1)
        return jnp.tanh(nn.LayerNorm()(nn.Dense(self.latent, kernel_init=init)(x)))


class MLP(nn.Module):
    hidden: Sequence[int] = (256, 256)
    out: int = 1
    out_scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        for h in self.hidden:
            x = nn.relu(nn.Dense(h, kernel_init=init)(x))
        return nn.Dense(self.out, kernel_init=nn.initializers.orthogonal(self.out_scale))(x)


class PixelMLP(nn.Module):
    """Encoder + MLP head: one network with its own encoder (jaxrl2's share_encoder=False)."""

    channels: Sequence[int] = (32, 64, 128, 256)
    latent: int = 50
    hidden: Sequence[int] = (256, 256)
    out: int = 1

    @nn.compact
    def __call__(self, pixels):
        return MLP(self.hidden, self.out)(D4PGEncoder(self.channels, latent=self.latent)(pixels))


def fold_frames(frames):
    """(B, k, H, W, C) -> (B, H, W, k*C), oldest frame first: the frame stack folded into channels
    (done on the device, inside the jitted update, instead of a strided copy on the host)."""
    B, k, H, W, C = frames.shape
    return jnp.transpose(frames, (0, 2, 3, 1, 4)).reshape(B, H, W, k * C)


def random_shift(key, images, pad: int = 4):
    """Random crop after edge padding by ``pad`` pixels, a different shift per sample (DrQ / jaxrl2)."""
    return shift_images(images, jax.random.randint(key, (images.shape[0], 2), 0, 2 * pad + 1), pad)


def shift_images(images, shifts, pad: int):
    """Crop (H, W) windows at offsets ``shifts`` (B, 2) in [0, 2 pad] from the edge-padded images."""
    B, H, W, C = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")

    def crop(img, s):
        return jax.lax.dynamic_slice(img, (s[0], s[1], 0), (H, W, C))

    return jax.vmap(crop)(padded, shifts)


# -- heads and helpers for the actor-critic learners (SAC, CQL, IQL) --------------------------------
# Facts from jaxrl2 (the authors' fork khatch31/jaxrl2, jaxrl2/networks/): every hidden layer is a
# Dense with orthogonal(sqrt 2) init and ReLU, the output layers too use orthogonal(sqrt 2); the
# critic is an ensemble of two Q heads on concat(latent, action) (nn.vmap over the parameters); the
# SAC/CQL policy is a tanh-squashed diagonal Gaussian with log-std clipped to [-20, 2]; the IQL/BC
# policy is a Gaussian with unit std (IQL: mean without tanh).

SQRT2 = float(jnp.sqrt(2.0))
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class TwinQ(nn.Module):
    """``num_qs`` Q heads Q_i(z, a), each MLP(hidden, 1) on concat(z, a); returns (num_qs, B)."""

    hidden: Sequence[int] = (256, 256)
    num_qs: int = 2

    @nn.compact
    def __call__(self, latent, actions):
        heads = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_qs,
        )
        return heads(self.hidden, 1, SQRT2)(jnp.concatenate([latent, actions], -1))[..., 0]


class TanhGaussianHead(nn.Module):
    """(mean, log_std) of the pre-tanh Gaussian; log_std clipped to [-20, 2] (jaxrl2 NormalTanhPolicy)."""

    hidden: Sequence[int] = (256, 256)
    action_dim: int = 1

    @nn.compact
    def __call__(self, latent):
        out = MLP(self.hidden, 2 * self.action_dim, SQRT2)(latent)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class ValueHead(nn.Module):
    """V(z): MLP(hidden, 1), returns (B,)."""

    hidden: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, latent):
        return MLP(self.hidden, 1, SQRT2)(latent)[..., 0]


class MeanHead(nn.Module):
    """The mean of a unit-std Gaussian policy, optionally tanh-squashed (jaxrl2 UnitStdNormalPolicy)."""

    hidden: Sequence[int] = (256, 256)
    action_dim: int = 1
    tanh: bool = False

    @nn.compact
    def __call__(self, latent):
        mean = MLP(self.hidden, self.action_dim, SQRT2)(latent)
        return jnp.tanh(mean) if self.tanh else mean


class PixelNet(nn.Module):
    """A network with its own encoder (jaxrl2's share_encoder=False): head(encoder(pixels), ...).

    ``encode`` and ``head_only`` split the two, so a learner can encode an observation once and
    evaluate the head on many actions (CQL) or reuse the latent across losses."""

    head: nn.Module
    channels: Sequence[int] = (32, 64, 128, 256)
    latent: int = 50

    def setup(self):
        self.encoder = D4PGEncoder(self.channels, latent=self.latent)

    def __call__(self, pixels, *args):
        return self.head(self.encoder(pixels), *args)

    def encode(self, pixels):
        return self.encoder(pixels)

    def head_only(self, latent, *args):
        return self.head(latent, *args)


def gaussian_log_prob(x, mean, log_std):
    """log N(x; mean, diag(exp(log_std)^2)) summed over the last axis."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def tanh_gaussian(mean, log_std, noise):
    """a = tanh(u), u = mean + std * noise, noise ~ N(0, I); log pi(a) = log N(u) - sum log(1 - tanh(u)^2),
    with log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)) (numerically stable; distrax's Tanh)."""
    u = mean + jnp.exp(log_std) * noise
    log_det = jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)
    return jnp.tanh(u), gaussian_log_prob(u, mean, log_std) - log_det


def tanh_gaussian_sample(key, mean, log_std):
    return tanh_gaussian(mean, log_std, jax.random.normal(key, mean.shape))


def soft_update(target, online, tau: float):
    """theta_bar <- tau * theta + (1 - tau) * theta_bar (every leaf, encoder included)."""
    return jax.tree_util.tree_map(lambda t, o: tau * o + (1.0 - tau) * t, target, online)


def decay_steps(config, context) -> int:
    """The cosine decay's horizon: ``config.cosine_decay_steps`` if set (< 0: a constant rate), else the
    task's paper-profile total of updates (``context.schedule_updates``; jaxrl2's decay_steps is its run's
    total), else the run's own total. A shortened profile thus keeps the paper's schedule shape: its
    online phase starts near the full rate, as the paper's does (99% after 1,000 of 21,000 updates)."""
    steps = config.cosine_decay_steps or context.schedule_updates or context.total_updates
    return max(steps, 0)


def adam(lr: float, decay_steps: int = 0):
    """Adam; with decay_steps > 0 the learning rate follows a cosine decay to 0 over that many updates."""
    return optax.adam(optax.cosine_decay_schedule(lr, decay_steps) if decay_steps > 0 else lr)


def split_frames(key, frames, pad: int):
    """(B, k+1, H, W, C) uint8 -> augmented (obs, next_obs), each (B, H, W, k*C): obs = frames 0..k-1,
    next_obs = frames 1..k, random-shifted independently (jaxrl2 crops them with separate keys; here
    one draw of (2, B, 2) offsets: every random call costs compile time on a CPU)."""
    obs, nxt = fold_frames(frames[:, :-1]), fold_frames(frames[:, 1:])
    if pad:
        shifts = jax.random.randint(key, (2, frames.shape[0], 2), 0, 2 * pad + 1)
        obs, nxt = shift_images(obs, shifts[0], pad), shift_images(nxt, shifts[1], pad)
    return obs, nxt


def bootstrap_mask(discount, is_last, online, last_is_terminal: str):
    """Which transitions bootstrap: discount (0 at a true terminal) times, for ``last_is_terminal``:
    "all"     the last transition of every episode gets mask 0 (the fork as it ran: its offline loader
              marks the last step done, and online its TimeLimit wrapper ends the episode with done=True
              but never sets info["TimeLimit.truncated"], so the trainer stores mask 0 there too);
    "offline" only the dataset's episodes (the fork's intent: online episodes end by a time limit);
    "none"    time limits never cut the bootstrap (the textbook treatment)."""
    if last_is_terminal == "all":
        cut = is_last
    elif last_is_terminal == "offline":
        cut = jnp.logical_and(is_last, jnp.logical_not(online))
    elif last_is_terminal == "none":
        return discount
    else:
        raise ValueError(f"last_is_terminal must be all/offline/none, got {last_is_terminal!r}")
    return discount * (1.0 - cut.astype(jnp.float32))


@dataclass(frozen=True)
class PixelActorCriticConfig:
    """The fields (and defaults: the paper's values) that the pixel actor-critic learners share; SAC,
    CQL and IQL extend it with their own. Every learner's own fields come after these."""

    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    batch_size: int = 256
    framestack: int = 3
    discount: float = 0.99
    tau: float = 0.005
    critic_reduction: str = "min"  # over the target heads
    channels: tuple[int, ...] = (32, 64, 128, 256)
    latent: int = 50
    hidden: tuple[int, ...] = (256, 256)
    augment_pad: int = 4
    cosine_decay_steps: int = (
        0  # 0: the task's paper-profile total updates (RunContext.schedule_updates); <0: constant
    )
    last_is_terminal: str = "all"  # all / offline / none: see bootstrap_mask

    CHOICES = {"critic_reduction": ("min", "mean"), "last_is_terminal": ("all", "offline", "none")}

    PROFILES = {
        "cpu": dict(batch_size=64, channels=(16, 32, 32, 32)),
        "smoke": dict(batch_size=8, channels=(4, 4, 4, 4), latent=8, hidden=(16, 16)),
    }


class JaxLearner:
    """What the JAX learners share: one transition request, one jitted update over a state pytree
    (parameters, optimiser states, the RNG key), numpy state dicts, a trace counter.

    A subclass calls ``_setup`` first, draws its networks' parameters with ``init_net`` (network
    ``index`` i from numpy's generator seeded (seed, i)), sets ``self.state`` (its RNG key:
    ``PRNGKey(seed)``, ``self.key``) and defines ``_update_fn(state, batch) -> (state, metrics)`` (pure,
    traced once per run: ``traces`` counts how often JAX traced it; ``apply_gradients`` is one optimiser
    step) and ``_act_fn(state, obs, key, explore) -> action``. ``batch_keys`` are the batch fields the
    update receives; every one has a fixed shape and dtype, so the update compiles once and runs
    without a host round trip."""

    request_name = "rl"
    batch_keys = ("frames", "action", "reward", "discount", "is_last", "online")

    def _setup(self, config, context, data_filter: str = "all"):
        from algorithms.contract import Transitions

        self.config, self.context = config, context
        self.requests = {
            self.request_name: Transitions(
                config.batch_size, framestack=config.framestack, filter=data_filter
            )
        }
        self.act_stack = config.framestack
        H, W, C = context.obs_shape
        self.example_obs = jnp.zeros((1, H, W, C * config.framestack), jnp.uint8)  # one folded stack
        self.key = jax.random.PRNGKey(context.seed)  # the state's initial key
        self.traces = 0
        self._update = jax.jit(self._traced_update)
        self._act = jax.jit(self._act_fn, static_argnums=3)

    def init_net(self, net: nn.Module, index: int, *extra_inputs):
        """The parameters of ``net`` (``init_params``) drawn from (run seed, ``index``); its inputs: an
        observation stack, then ``extra_inputs`` (e.g. an action for a critic)."""
        return init_params(net, (self.context.seed, index), self.example_obs, *extra_inputs)

    @staticmethod
    def apply_gradients(tx: optax.GradientTransformation, params, opt_state, grads):
        """One optimiser step: (the new parameters, the new optimiser state)."""
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def _traced_update(self, state, batch):
        self.traces += 1  # runs only while JAX traces, i.e. once per compilation
        return self._update_fn(state, batch)

    def update(self, batches):
        b = batches[self.request_name]
        self.state, metrics = self._update(self.state, {k: b[k] for k in self.batch_keys})
        return metrics  # device scalars: the protocol reads them at log points only

    def act(self, obs, state=None, explore: bool = False):
        key = None
        if explore:
            self.state["key"], key = jax.random.split(self.state["key"])
        action = self._act(self.state, obs[None], key, bool(explore))
        return np.asarray(action[0], np.float32), state

    def state_dict(self):
        return jax.tree_util.tree_map(np.asarray, self.state)

    def load_state_dict(self, d):
        self.state = jax.tree_util.tree_map(jnp.asarray, d)


def _orthogonal(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    """flax's orthogonal initializer in numpy: QR of a Gaussian matrix, signs fixed by diag(R)."""
    n_cols = shape[-1]
    n_rows = int(np.prod(shape)) // n_cols
    a = rng.standard_normal((n_cols, n_rows) if n_rows < n_cols else (n_rows, n_cols))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if n_rows < n_cols:
        q = q.T
    return (scale * q).reshape(shape).astype(np.float32)


def init_params(net: nn.Module, seed, *example_inputs):
    """The parameters of ``net`` drawn on the host with numpy: every kernel orthogonal(sqrt 2) (an
    ensemble's (heads, in, out) kernels one matrix per head), biases 0, LayerNorm scales 1 -- the
    initialisation jaxrl2 uses everywhere. ``jax.eval_shape`` gives the tree without compiling
    anything; drawing it with flax's own initializers inside XLA costs ~0.5 s of compilation per
    parameter on a CPU (one threefry program each), i.e. tens of seconds per learner."""
    shapes = jax.eval_shape(net.init, jax.random.PRNGKey(0), *example_inputs)
    rng = np.random.default_rng(seed)  # an int or a sequence of ints

    def draw(path, leaf):
        name = getattr(path[-1], "key", str(path[-1]))
        if name == "kernel":
            if len(leaf.shape) == 3:  # vmapped Dense (TwinQ): one orthogonal matrix per head
                return jnp.asarray(
                    np.stack([_orthogonal(rng, leaf.shape[1:], SQRT2) for _ in range(leaf.shape[0])])
                )
            return jnp.asarray(_orthogonal(rng, leaf.shape, SQRT2))
        if name == "scale":
            return jnp.ones(leaf.shape, leaf.dtype)
        if name == "bias":
            return jnp.zeros(leaf.shape, leaf.dtype)
        raise ValueError(f"init_params: no rule for parameter {jax.tree_util.keystr(path)}")

    return jax.tree_util.tree_map_with_path(draw, shapes)
