"""PyTorch building blocks shared by the world-model agents (DreamerV2, MOTO, LOMPO, COMBO).

Facts taken from ``danijar/dreamerv2`` (``common/nets.py``, ``common/tfutils.py``, ``common/dists.py``):
Keras default initialisation (Glorot-uniform weights, zero biases); ELU MLPs; Adam with eps 1e-5,
gradients clipped to global norm 100 and weight decay applied as ``w <- (1 - wd) w`` each step;
the actor's truncated normal on [-1, 1] with mean tanh(mu) and std 2 sigmoid(s / 2) + min_std.
"""

from __future__ import annotations

import contextlib
import functools
import math

import torch
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def keras_init(module: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases, as Keras (and so DreamerV2) initialises layers."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def mlp(inp: int, layers: tuple[int, ...], out: int | None, act: str = "elu") -> nn.Sequential:
    """Dense + activation per entry of ``layers``, then a linear output (if ``out``)."""
    mods: list[nn.Module] = []
    for width in layers:
        mods += [nn.Linear(inp, width), activation(act)]
        inp = width
    if out:
        mods.append(nn.Linear(inp, out))
    return keras_init(nn.Sequential(*mods))


class ClippedAdam:
    """DreamerV2's optimiser: Adam(lr, eps), global-norm clipping, multiplicative weight decay."""

    def __init__(
        self,
        params,
        lr: float,
        eps: float = 1e-5,
        clip: float = 100.0,
        wd: float = 1e-6,
        capturable: bool = False,
    ):
        self.params = [p for p in params if p.requires_grad]
        self.clip, self.wd, self.capturable = clip, wd, capturable
        # foreach: one multi-tensor kernel per Adam / clipping stage instead of one per parameter (CUDA's
        # default; on the CPU the same numbers, bit for bit, in fewer operators). capturable (CUDA only):
        # the step counts live on the device, so a CUDA graph can capture the step (cuda_graph.py)
        self.opt = torch.optim.Adam(self.params, lr=lr, eps=eps, foreach=True, capturable=capturable)

    def step(self, loss: torch.Tensor) -> torch.Tensor:
        """Backward, clip, decay, step; returns the gradient norm (before clipping), detached."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        return self._clip_decay_step()

    def _clip_decay_step(self) -> torch.Tensor:
        """Clip the gradients' global norm, decay the weights, take Adam's step; the norm before clipping."""
        norm = (
            nn.utils.clip_grad_norm_(self.params, self.clip, foreach=True) if self.clip else torch.zeros(())
        )
        if self.wd:
            with torch.no_grad():
                torch._foreach_mul_(self.params, 1.0 - self.wd)
        self.opt.step()
        return norm.detach()

    def step_terms(self, losses: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """``step(sum(losses))`` with each term differentiated on its own (the terms' graphs share only
        the parameters, so this costs what one backward pass of the sum costs). Returns the gradient norm
        of the sum (before clipping), each term's gradient norm and the cosine between the first two
        terms' gradients, all detached: a diagnostic of which term steers the parameters."""
        self.opt.zero_grad(set_to_none=True)
        grads = []
        for loss in losses:
            g = torch.autograd.grad(loss, self.params, allow_unused=True)
            grads.append([torch.zeros_like(p) if x is None else x for p, x in zip(self.params, g)])
        for p, *parts in zip(self.params, *grads):
            p.grad = functools.reduce(torch.add, parts)
        flat = [torch.cat([x.reshape(-1) for x in g]) for g in grads]
        norms = [f.norm().detach() for f in flat]
        cos = (flat[0] @ flat[1] / (norms[0] * norms[1]).clamp_min(1e-12)).detach() if len(flat) > 1 else None
        return self._clip_decay_step(), norms, cos

    def state_dict(self):
        return self.opt.state_dict()

    def load_state_dict(self, d):
        self.opt.load_state_dict(d)
        for group in self.opt.param_groups:  # a checkpoint's groups carry their own settings (older: None)
            group["foreach"], group["capturable"] = True, self.capturable
        # step counts where this optimiser keeps them (a checkpoint may come from a run with the other
        # setting): on the parameters' device when capturable, else on the CPU
        for p, state in self.opt.state.items():
            if "step" in state:
                where = p.device if self.capturable else torch.device("cpu")
                state["step"] = state["step"].to(device=where, dtype=torch.float32)


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Parameters get no gradients inside (activations still do: dynamics backpropagation)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def lambda_return(
    reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor, lam: float
) -> torch.Tensor:
    """TD(lambda) targets along an imagined trajectory (time first).

    reward (H, N): r_{t+1}, the reward into state t+1;  value (H+1, N): v(s_0) .. v(s_H);
    discount (H, N): gamma * continue(s_{t+1}).  Returns R (H, N) with R_H = v_H and

        R_t = r_{t+1} + d_{t+1} ((1 - lambda) v_{t+1} + lambda R_{t+1}).        (DreamerV2, Eq. 4)
    """
    H = reward.shape[0]
    if value.shape[0] != H + 1 or discount.shape[0] != H:
        raise ValueError(
            f"lambda_return: reward {tuple(reward.shape)}, value {tuple(value.shape)}, "
            f"discount {tuple(discount.shape)}: value needs H+1 entries, discount H"
        )
    out = []
    last = value[-1]
    for t in reversed(range(H)):
        last = reward[t] + discount[t] * ((1.0 - lam) * value[t + 1] + lam * last)
        out.append(last)
    return torch.stack(out[::-1])


_SQRT2 = math.sqrt(2.0)


def _ndtr(x):
    return 0.5 * (1.0 + torch.erf(x / _SQRT2))


class TruncatedNormal:
    """Normal(mean, std) truncated to [low, high], reparameterised by the inverse CDF so samples carry
    gradients to mean and std; samples are clipped 1e-6 inside the bounds with a straight-through
    gradient (DreamerV2's ``TruncNormalDist``). Math in float32."""

    def __init__(self, mean, std, low=-1.0, high=1.0, clip=1e-6):
        self.mean, self.std = mean.float(), std.float()
        self.low, self.high, self.clip = low, high, clip
        self.a = (low - self.mean) / self.std
        self.b = (high - self.mean) / self.std
        self.cdf_a, self.cdf_b = _ndtr(self.a), _ndtr(self.b)
        self.Z = (self.cdf_b - self.cdf_a).clamp_min(1e-8)

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        u = torch.rand(self.mean.shape, generator=generator, device=self.mean.device)
        p = (self.cdf_a + u * self.Z).clamp(1e-6, 1 - 1e-6)
        x = self.mean + self.std * _SQRT2 * torch.erfinv(2.0 * p - 1.0)
        clipped = x.clamp(self.low + self.clip, self.high - self.clip)
        return x + (clipped - x).detach()

    def mode(self) -> torch.Tensor:
        return self.mean.clamp(self.low, self.high)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        return (-0.5 * z**2 - 0.5 * math.log(2 * math.pi) - torch.log(self.std) - torch.log(self.Z)).sum(-1)

    def entropy(self) -> torch.Tensor:
        """log(sqrt(2 pi e) std Z) + (a phi(a) - b phi(b)) / (2 Z), summed over action dimensions."""
        phi = lambda v: torch.exp(-0.5 * v**2) / math.sqrt(2 * math.pi)  # noqa: E731
        ent = (
            0.5 * math.log(2 * math.pi * math.e)
            + torch.log(self.std)
            + torch.log(self.Z)
            + (self.a * phi(self.a) - self.b * phi(self.b)) / (2 * self.Z)
        )
        return ent.sum(-1)


class Actor(nn.Module):
    """DreamerV2's continuous actor: MLP -> (mu, s);
    TruncatedNormal(tanh(mu), 2 sigmoid((s + init) / 2) + min_std)."""

    def __init__(
        self,
        feat_dim: int,
        action_dim: int,
        layers: tuple[int, ...],
        act: str = "elu",
        min_std: float = 0.1,
        init_std: float = 0.0,
    ):
        super().__init__()
        self.net = mlp(feat_dim, layers, 2 * action_dim, act)
        self.min_std, self.init_std = min_std, init_std

    def forward(self, feat: torch.Tensor) -> TruncatedNormal:
        mu, s = self.net(feat).float().chunk(2, -1)
        std = 2.0 * torch.sigmoid((s + self.init_std) / 2.0) + self.min_std
        return TruncatedNormal(torch.tanh(mu), std)


def to_cpu(tree):
    """Tensors of a nested state dict moved to the CPU (checkpoints load anywhere)."""
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_cpu(v) for v in tree)
    return tree


def save_parts(parts: dict) -> dict:
    """A checkpoint's ``{key: state}`` of named parts: modules and optimisers (their ``state_dict``) and
    torch generators (their ``get_state``), in ``parts``' order; tensors stay where they are."""
    return {
        key: part.get_state() if isinstance(part, torch.Generator) else part.state_dict()
        for key, part in parts.items()
    }


def load_parts(parts: dict, state: dict) -> None:
    """Loads what ``save_parts(parts)`` saved into the same named parts, in ``parts``' order."""
    for key, part in parts.items():
        if isinstance(part, torch.Generator):
            part.set_state(state[key])
        else:
            part.load_state_dict(state[key])


def resolve_device_options(device: torch.device, precision: str, compile: str) -> tuple[bool, bool]:
    """(bf16 autocast on?, torch.compile on?) from a config's ``precision`` and ``compile``.

    precision: ``auto`` = fp32 with torch's default TF32 flags; ``tf32`` = fp32 weights and
    activations with TF32 tensor-core matmuls and convolutions, ``fp32`` = strict fp32 (both set
    torch's global TF32 flags on CUDA); ``bf16`` = bf16 autocast. compile: ``auto`` = ``off``;
    ``on`` = torch.compile of the world model's stateless parts.
    Why these defaults: on an H100 at the paper's sizes (batch 16 x 50) a DreamerV2 update took
    0.18-0.22 s in fp32, 0.27 s with bf16 autocast, 0.29 s with TF32 and 0.30 s with bf16 +
    torch.compile (``python -m benchmark.perf worldmodel --device cuda``, one run each): the
    update is bound by kernel launches, not arithmetic, so casts only add kernels, and compiled
    parts recompile on changing strides."""
    for name, v in (("precision", precision), ("compile", compile)):
        ok = ("auto", "bf16", "tf32", "fp32") if name == "precision" else ("auto", "on", "off")
        if v not in ok:
            raise ValueError(f"{name} must be one of {ok}, got {v!r}")
    if device.type == "cuda" and precision in ("tf32", "fp32"):
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
    return precision == "bf16", compile == "on"


def batch_to_device(batch: dict, device: torch.device, keys=None) -> dict:
    """Numpy arrays to tensors on ``device`` (pinned, non-blocking copies on CUDA; uint8 stays uint8)."""
    out = {}
    for k, v in batch.items():
        if keys is not None and k not in keys:
            continue
        t = torch.from_numpy(v if v.flags.c_contiguous else v.copy())
        if device.type == "cuda":
            t = t.pin_memory().to(device, non_blocking=True)
        out[k] = t
    return out
