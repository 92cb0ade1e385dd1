"""Networks shared by the JAXRL2-style model-free agents (BC, and later SAC, CQL, IQL).

The paper (Appendix C.4): D4PG encoder, conv channels (32, 64, 128, 256), kernels 3, strides 2,
VALID, ReLU, on pixels / 255 with the frame stack folded into channels; then Dense(50) + LayerNorm
+ tanh; then an MLP (256, 256) with ReLU; orthogonal init with scale sqrt(2).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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
            x = nn.relu(nn.Conv(c, (self.kernel, self.kernel), (self.stride, self.stride), "VALID", kernel_init=init)(x))
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
    B, H, W, C = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    shifts = jax.random.randint(key, (B, 2), 0, 2 * pad + 1)

    def crop(img, s):
        return jax.lax.dynamic_slice(img, (s[0], s[1], 0), (H, W, C))

    return jax.vmap(crop)(padded, shifts)
