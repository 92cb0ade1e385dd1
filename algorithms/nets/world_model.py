"""The shared world model: DreamerV2's RSSM with an ensemble of prior heads, in PyTorch.

One implementation, configured (not copied) by every model-based agent of the suite:
DreamerV2 (M = 1 prior head), MOTO (M = 7; uncertainty from the heads' disagreement), LOMPO and
COMBO (Gaussian latents, deter 256, stoch 64, M = 7, smaller encoder). SPEC section 3; facts from
``danijar/dreamerv2`` (``common/nets.py``: EnsembleRSSM, GRUCell, Encoder, Decoder).

Model (s_t = [z_t, h_t]):
    h_t = f(h_{t-1}, z_{t-1}, a_{t-1})       GRU with LayerNorm, update-gate bias -1     RSSM.img_step
    z_t ~ q(z_t | h_t, e_t),  e_t = enc(x_t)   posterior from the image embedding          RSSM.obs_step
    z_t ~ p^i(z_t | h_t),  i = 1..M            prior ensemble: stacked weights, one bmm     RSSM.prior
    x_t ~ N(dec(s_t), I),  r_t ~ N(rew(s_t), 1)   image and reward decoders
ELBO per time step, i_t drawn uniformly once per time step (one member trained per step):
    L_t = 1/2 ||dec(s_t) - x_t||^2 + 1/2 (rew(s_t) - r_t)^2 + beta KL_bal[q_t || p^{i_t}_t]    WorldModel.loss
KL balancing (alpha = 0.8; the prior learns faster than the posterior is regularised):
    KL_bal(q, p) = alpha KL(sg(q) || p) + (1 - alpha) KL(q || sg(p)),   each term max(mean, free)  kl_balanced
Discrete latents: ``stoch`` categoricals of ``classes`` classes, probabilities mixed with ``unimix``
uniform, straight-through samples  z = onehot(z~) + p - sg(p).  Gaussian latents (``classes = 0``):
mean and std = 2 sigmoid(s / 2) + min_std, reparameterised samples.
Ensemble uncertainty (MOTO Eq. 2): u = disagreement of the members' priors, by a named measure   disagreement

State: a dict of tensors {"deter" (.., D), "stoch" (.., Z), "stats" (.., P)}, Z = stoch*classes (or
stoch), P = stoch*classes logits (or 2*stoch: mean, raw std). Features for heads: [stoch, deter].
Every random draw takes a ``torch.Generator`` (the agent owns it: exact resume).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from algorithms.nets.torch_parts import ACTIVATIONS, activation, keras_init, mlp


@dataclass(frozen=True)
class WorldModelConfig:
    """Defaults: DreamerV2's base config (``configs.yaml: defaults``) with the MOTO appendix's encoder,
    decoder and model learning rate. Agent configs inherit these fields (flat, so variants and
    profiles override them by name)."""

    # RSSM
    deter: int = 1024  # GRU state (base preset; dmc_vision: 200)
    hidden: int = 1024  # width of the RSSM's dense layers (base; dmc_vision: 200)
    stoch: int = 32  # latent variables
    classes: int = 32  # classes per latent; 0 = Gaussian latents (LOMPO/COMBO)
    ensemble: int = 1  # prior heads M (MOTO: 7)
    prior_action: bool = (
        False  # the prior heads also see the action into the state (p^i(z_t | h_t, a_{t-1})),
    )
    # so that members trained on the data's actions can disagree on others (the lineage's heads see h_t only)
    member_transition: bool = False  # each member its own input layer into the GRU, so the members' next
    # deterministic states differ: p^i(s_{t+1} | s_t, a_t) (Eq. 1 read literally); the GRU is shared
    unimix: float = 0.01  # uniform mix of the categorical probabilities
    min_std: float = 0.1  # Gaussian latents: std floor
    act: str = "elu"
    # Image encoder / decoder (MOTO appendix C.2)
    enc_channels: tuple[int, ...] = (48, 96, 192, 384)
    enc_kernels: tuple[int, ...] = (4, 4, 4, 4)
    enc_mlp: tuple[int, ...] = (400, 400, 400, 400)
    dec_mlp: tuple[int, ...] = (400, 400, 400, 400)
    dec_in: int = 1024  # dense layer reshaped to 1x1 before the transposed convs (DreamerV2: 32 * depth)
    dec_channels: tuple[int, ...] = (128, 64, 32, 3)
    dec_kernels: tuple[int, ...] = (5, 5, 6, 6)
    # Heads
    reward_mlp: tuple[int, ...] = (400, 400, 400, 400)
    pred_discount: bool = False  # a continuation head; off: these tasks have no terminal states
    discount_mlp: tuple[int, ...] = (400, 400, 400, 400)
    # Loss and optimiser
    kl_balance: float = 0.8
    free_nats: float = 0.0
    kl_scale: float = 1.0
    model_lr: float = 1e-4
    opt_eps: float = 1e-5
    grad_clip: float = 100.0
    weight_decay: float = 1e-6
    # Data
    batch: int = 16
    length: int = 50
    # GPU path (torch_parts.resolve_device_options): "auto" = fp32 and no torch.compile (measured fastest)
    precision: str = "auto"  # auto | tf32 | fp32 | bf16
    compile: str = "auto"  # auto (= off) | on | off
    # the update captured as one CUDA graph (algorithms/nets/cuda_graph.py): off | on | auto (= on where
    # the device is CUDA). Off by default until a GPU measurement shows it faster and equal (issue 23)
    cuda_graph: str = "off"

    # allowed values of the text fields (checked by algorithms.make_config and --set)
    CHOICES = {
        "act": tuple(ACTIVATIONS),
        "precision": ("auto", "tf32", "fp32", "bf16"),
        "compile": ("auto", "on", "off"),
        "cuda_graph": ("off", "on", "auto"),
    }

    @classmethod
    def of(cls, config) -> "WorldModelConfig":
        """The world-model fields of any config that carries them (agent configs inherit this class)."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})


# ---------------------------------------------------------------------------------------------------
# Layers


class EnsembleLinear(nn.Module):
    """M linear maps with stacked weights (M, in, out), applied in one ``torch.baddbmm``.

    forward(x) with x (M, N, in): member m maps x[m].  forward(x, members) with x (G, N, in) and
    ``members`` (G,) long: group g is mapped by member members[g] (one chosen member per time step)."""

    def __init__(self, members: int, fan_in: int, fan_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(members, fan_in, fan_out))
        self.bias = nn.Parameter(torch.zeros(members, 1, fan_out))
        bound = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot-uniform per member
        nn.init.uniform_(self.weight, -bound, bound)

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        if members is None:
            return torch.baddbmm(self.bias, x, self.weight)
        return torch.baddbmm(self.bias[members], x, self.weight[members])


class LayerNormGRU(nn.Module):
    """DreamerV2's GRU cell: [r, c, u] = LN(W [x, h]);  h' = u' c' + (1 - u') h,  r' = sigmoid(r),
    c' = tanh(r' c), u' = sigmoid(u - 1)."""

    def __init__(self, inp: int, size: int, update_bias: float = -1.0):
        super().__init__()
        self.linear = nn.Linear(inp + size, 3 * size)
        self.norm = nn.LayerNorm(3 * size)
        self.update_bias = update_bias

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        parts = self.norm(self.linear(torch.cat([x, h], -1)))
        reset, cand, update = parts.chunk(3, -1)
        cand = torch.tanh(torch.sigmoid(reset) * cand)
        update = torch.sigmoid(update + self.update_bias)
        return update * cand + (1.0 - update) * h


class Encoder(nn.Module):
    """uint8 images (..., H, W, C) -> embeddings: conv (k, stride 2, VALID) + activation, flatten, MLP.
    Pixels scaled to [-0.5, 0.5] as DreamerV2."""

    def __init__(self, obs_shape, channels, kernels, mlp_layers, act="elu"):
        super().__init__()
        H, W, C = obs_shape
        convs: list[nn.Module] = []
        c = C
        for ch, k in zip(channels, kernels):
            convs += [nn.Conv2d(c, ch, k, 2), activation(act)]
            c = ch
        self.convs = keras_init(nn.Sequential(*convs, nn.Flatten()))
        with torch.no_grad():
            n = self.convs(torch.zeros(1, C, H, W)).shape[1]
        if n == 0:
            raise ValueError(f"encoder: {H}x{W} images vanish under {len(channels)} stride-2 convs {kernels}")
        self.mlp = mlp(n, tuple(mlp_layers), None, act) if mlp_layers else nn.Identity()
        self.out_dim = mlp_layers[-1] if mlp_layers else n

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        lead = image.shape[:-3]
        x = image.reshape(-1, *image.shape[-3:]).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        return self.mlp(self.convs(x)).reshape(*lead, -1)


class SubpixelTransposedConv(torch.autograd.Function):
    """A stride-2 VALID transposed convolution y = convT(x, w, b), computed forward as one ordinary
    convolution and a pixel shuffle, backward as the transposed convolution's own gradients.

    Output pixel y[2m + p, 2n + q] sums x[m - a, n - b] w[., ., p + 2a, q + 2b] over the taps a, b < T =
    ceil(k / 2) (zero past k): for each of the four phases (p, q) a T x T correlation over the input
    padded by T - 1, i.e. one conv2d with 4 x out channels, then ``pixel_shuffle`` interleaves the
    phases (an odd k gives one row and column too many, cropped). Same values up to float rounding (the
    sums run in another order; ~1e-6 here). On a CPU, oneDNN's transposed-convolution forward scatters
    and was 1.1-1.5x slower, forward and backward together, than this on inputs of 13 x 13 and more
    (``benchmark/perf``, docs/performance.md); its backward is a plain convolution and stays. Gradients
    are exactly those of ``F.conv_transpose2d`` given the same output gradient."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        cin, cout, k, _ = weight.shape
        taps = (k + 1) // 2
        w = F.pad(weight, (0, 2 * taps - k, 0, 2 * taps - k)).reshape(cin, cout, taps, 2, taps, 2)
        w = w.flip(2, 4).permute(1, 3, 5, 0, 2, 4).reshape(4 * cout, cin, taps, taps)
        y = F.pixel_shuffle(F.conv2d(F.pad(x, (taps - 1,) * 4), w, bias.repeat_interleave(4)), 2)
        h, wd = (x.shape[-2] - 1) * 2 + k, (x.shape[-1] - 1) * 2 + k
        ctx.save_for_backward(x, weight)
        return y[..., :h, :wd].contiguous()

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad.contiguous(),
            x,
            weight,
            [weight.shape[1]],
            [2, 2],
            [0, 0],
            [1, 1],
            True,
            [0, 0],
            1,
            list(ctx.needs_input_grad),
        )
        return gx, gw, gb


def transposed_conv(layer: nn.ConvTranspose2d, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)``; on a CPU, for inputs of 13 x 13 and more, by ``SubpixelTransposedConv``."""
    if (
        x.device.type == "cpu"
        and min(x.shape[-2:]) >= 13
        and layer.stride == (2, 2)
        and layer.padding == (0, 0)
    ):
        return SubpixelTransposedConv.apply(x, layer.weight, layer.bias)
    return layer(x)


class Decoder(nn.Module):
    """Features -> image means (..., H, W, C) in [-0.5, 0.5] space: MLP, dense to ``dec_in`` reshaped
    to 1x1, transposed convs (stride 2, VALID), the last without activation."""

    def __init__(self, feat_dim, obs_shape, mlp_layers, dec_in, channels, kernels, act="elu"):
        super().__init__()
        self.obs_shape = tuple(obs_shape)
        self.mlp = mlp(feat_dim, tuple(mlp_layers), dec_in, act)
        layers: list[nn.Module] = []
        c = dec_in
        for i, (ch, k) in enumerate(zip(channels, kernels)):
            layers.append(nn.ConvTranspose2d(c, ch, k, 2))
            if i < len(channels) - 1:
                layers.append(activation(act))
            c = ch
        self.deconv = keras_init(nn.Sequential(*layers))
        with torch.no_grad():
            out = self.deconv(torch.zeros(1, dec_in, 1, 1)).shape[1:]
        H, W, C = self.obs_shape
        if tuple(out) != (C, H, W):
            raise ValueError(
                f"decoder: transposed convs {tuple(channels)} with kernels {tuple(kernels)} give "
                f"{tuple(out)} images, the data has (C, H, W) = {(C, H, W)}"
            )

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        lead = feat.shape[:-1]
        x = self.mlp(feat.reshape(-1, feat.shape[-1]))
        # The first transposed conv sees a 1x1 input, so it is exactly a matmul with its weight
        # (in, out, k, k) flattened to (in, out*k*k): same parameters and values, and on a CPU ~6x faster
        # than the transposed-convolution kernel (forward + backward 0.5 s vs 2.7 s at paper sizes,
        # 800 frames).
        first = self.deconv[0]
        k = first.weight.shape[2:]
        x = F.linear(x, first.weight.flatten(1).t(), first.bias.repeat_interleave(k[0] * k[1]))
        x = x.unflatten(1, first.weight.shape[1:])
        for layer in self.deconv[1:]:
            x = transposed_conv(layer, x) if isinstance(layer, nn.ConvTranspose2d) else layer(x)
        return x.permute(0, 2, 3, 1).reshape(*lead, *self.obs_shape)


# ---------------------------------------------------------------------------------------------------
# Latent distributions


def kl_balanced(
    post: torch.Tensor, prior: torch.Tensor, rssm: "RSSM", balance: float = 0.8, free: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """KL balancing (DreamerV2, Eq. 2 and ``kl_loss`` with free_avg):
        loss = balance max(mean KL(sg(q) || p), free) + (1 - balance) max(mean KL(q || sg(p)), free).
    Returns (loss, KL(q || p) per element, detached)."""
    value = rssm.kl(post, prior)
    if balance == 0.5:
        return torch.clamp(value.mean(), min=free), value.detach()
    train_prior = rssm.kl(post.detach(), prior).mean()
    train_post = rssm.kl(post, prior.detach()).mean()
    loss = balance * torch.clamp(train_prior, min=free) + (1 - balance) * torch.clamp(train_post, min=free)
    return loss, value.detach()


UNCERTAINTY_MEASURES = ("logits", "log_probs", "probs", "sample_log_prob", "meandis")


def gaussian_log_prob(mean: torch.Tensor, std: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(std^2)) summed over the last dimension."""
    return (-0.5 * ((z - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


class RSSM(nn.Module):
    def __init__(self, cfg: WorldModelConfig, embed_dim: int, action_dim: int):
        super().__init__()
        self.cfg = cfg
        self.discrete = cfg.classes > 0
        S, K = cfg.stoch, cfg.classes
        self.stoch_dim = S * K if self.discrete else S
        self.stats_dim = S * K if self.discrete else 2 * S
        self.deter_dim, self.action_dim, self.members = cfg.deter, action_dim, cfg.ensemble
        self.feat_dim = self.stoch_dim + cfg.deter
        if cfg.member_transition:  # (M, in, hidden): member m's input layer into the GRU
            self.img_in = EnsembleLinear(cfg.ensemble, self.stoch_dim + action_dim, cfg.hidden)
        else:
            self.img_in = mlp(self.stoch_dim + action_dim, (cfg.hidden,), None, cfg.act)
        self.gru = LayerNormGRU(cfg.hidden, cfg.deter)
        nn.init.xavier_uniform_(self.gru.linear.weight)
        nn.init.zeros_(self.gru.linear.bias)
        self.prior_hidden = EnsembleLinear(
            cfg.ensemble, cfg.deter + (action_dim if cfg.prior_action else 0), cfg.hidden
        )
        self.prior_out = EnsembleLinear(cfg.ensemble, cfg.hidden, self.stats_dim)
        self.post_net = mlp(cfg.deter + embed_dim, (cfg.hidden,), self.stats_dim, cfg.act)
        self.act_fn = activation(cfg.act)

    # -- distributions ----------------------------------------------------------------------------
    def log_probs(self, stats: torch.Tensor) -> torch.Tensor:
        """Discrete: log of the unimix-ed class probabilities, (..., S, K), float32."""
        logits = stats.float().unflatten(-1, (self.cfg.stoch, self.cfg.classes))
        if not self.cfg.unimix:
            return F.log_softmax(logits, -1)
        probs = (1.0 - self.cfg.unimix) * F.softmax(logits, -1) + self.cfg.unimix / self.cfg.classes
        return torch.log(probs)

    def mean_std(self, stats: torch.Tensor):
        mean, raw = stats.float().chunk(2, -1)
        return mean, 2.0 * torch.sigmoid(raw / 2.0) + self.cfg.min_std

    def sample(
        self, stats: torch.Tensor, generator: torch.Generator | None, sample: bool = True
    ) -> torch.Tensor:
        """A latent (..., Z) from ``stats``: straight-through one-hot samples (discrete) or
        reparameterised Gaussian samples; ``sample=False`` gives the mode (argmax / mean)."""
        if self.discrete:
            probs = self.log_probs(stats).exp()
            if sample:
                u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device)
                index = (probs.cumsum(-1) < u).sum(-1, keepdim=True).clamp_max(self.cfg.classes - 1)
            else:
                index = probs.argmax(-1, keepdim=True)
            onehot = torch.zeros_like(probs).scatter_(-1, index, 1.0)
            z = onehot + probs - probs.detach()  # straight-through gradients
            return z.flatten(-2).to(stats.dtype)
        mean, std = self.mean_std(stats)
        if not sample:
            return mean.to(stats.dtype)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device)
        return (mean + std * eps).to(stats.dtype)

    def kl(self, post: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        """KL(q || p) summed over the latent variables, (...,), float32."""
        if self.discrete:
            lq, lp = self.log_probs(post), self.log_probs(prior)
            return (lq.exp() * (lq - lp)).sum((-2, -1))
        mq, sq = self.mean_std(post)
        mp, sp = self.mean_std(prior)
        return (torch.log(sp / sq) + (sq**2 + (mq - mp) ** 2) / (2 * sp**2) - 0.5).sum(-1)

    def entropy(self, stats: torch.Tensor) -> torch.Tensor:
        if self.discrete:
            lp = self.log_probs(stats)
            return -(lp.exp() * lp).sum((-2, -1))
        _, std = self.mean_std(stats)
        return (0.5 * math.log(2 * math.pi * math.e) + torch.log(std)).sum(-1)

    # -- state -------------------------------------------------------------------------------------
    def initial(self, n: int, device=None, dtype=torch.float32) -> dict:
        z = lambda d: torch.zeros(n, d, device=device, dtype=dtype)  # noqa: E731
        return {"deter": z(self.deter_dim), "stoch": z(self.stoch_dim), "stats": z(self.stats_dim)}

    @staticmethod
    def feat(state: dict) -> torch.Tensor:
        return torch.cat([state["stoch"], state["deter"]], -1)

    def random_member(self, generator: torch.Generator | None, n: int = 1, device=None) -> torch.Tensor:
        return torch.randint(0, self.members, (n,), generator=generator, device=device)

    # -- the transition -------------------------------------------------------------------------------
    def transition(self, stoch, action, deter, member=None) -> torch.Tensor:
        """h_t = f(h_{t-1}, z_{t-1}, a_{t-1}): the GRU on the input layer of [z, a] (N, ...) -> (N, D).
        With ``member_transition`` each member has its own input layer: ``member`` a (1,) long tensor (one
        member for the whole batch) or an int picks it -> (N, D); "all" gives every member's (M, N, D),
        the M input layers in one batched matmul and the GRU on the M x N inputs at once."""
        x = torch.cat([stoch, action.to(stoch.dtype)], -1)
        if not self.cfg.member_transition:
            return self.gru(self.img_in(x), deter)
        if isinstance(member, str):
            h = self.act_fn(self.img_in(x.unsqueeze(0).expand(self.members, *x.shape)))  # (M, N, hidden)
            out = self.gru(h.flatten(0, 1), deter.repeat(self.members, 1))
            return out.unflatten(0, (self.members, x.shape[0]))
        if isinstance(member, int):
            member = torch.full((1,), member, dtype=torch.long, device=x.device)
        return self.gru(self.act_fn(self.img_in(x[None], member))[0], deter)

    def members_prior(self, deter_all: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        """Member m's prior head on member m's deterministic state: deter_all (M, N, D) -> (M, N, P)."""
        if self.cfg.prior_action:
            if action is None:
                raise ValueError("prior_action: the prior heads need the action into the state (action=)")
            a = action.to(deter_all.dtype)
            deter_all = torch.cat([deter_all, a.unsqueeze(0).expand(self.members, *a.shape)], -1)
        return self.prior_out(self.act_fn(self.prior_hidden(deter_all)))

    def next_ensemble(self, state: dict, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's next deterministic state and prior statistics from (s_{t-1}, a_{t-1}):
        (M, N, D) and (M, N, P); with a shared transition the M deterministic states are one."""
        if self.cfg.member_transition:
            deter_all = self.transition(state["stoch"], action, state["deter"], "all")
            return deter_all, self.members_prior(deter_all, action)
        deter = self.transition(state["stoch"], action, state["deter"])
        return deter.unsqueeze(0).expand(self.members, *deter.shape), self.prior(deter, "all", action)

    # -- the prior ensemble ---------------------------------------------------------------------------
    def prior(self, deter: torch.Tensor, member=None, action: torch.Tensor | None = None) -> torch.Tensor:
        """Prior statistics from deterministic states (and, with ``prior_action``, the action into them,
        shaped as ``deter``).

        member "all": deter (N, D) -> (M, N, P), every member in one batched matmul;
        member int m: (N, D) -> (N, P);  member (G,) long tensor with deter (G, N, D): group g uses
        member[g] -> (G, N, P) (one member per time step, still one batched matmul)."""
        if self.cfg.prior_action:
            if action is None:
                raise ValueError("prior_action: the prior heads need the action into the state (action=)")
            deter = torch.cat([deter, action.to(deter.dtype)], -1)
        if isinstance(member, str):
            if member != "all":
                raise ValueError(f"member must be an int, a tensor of indices or 'all', got {member!r}")
            x = deter.unsqueeze(0).expand(self.members, *deter.shape)
            return self.prior_out(self.act_fn(self.prior_hidden(x)))
        if isinstance(member, int):
            if self.members == 1:  # the only member: its weights as they are, no gather
                return self.prior_out(self.act_fn(self.prior_hidden(deter[None])))[0]
            idx = torch.full((1,), member, dtype=torch.long, device=deter.device)  # (no host data)
            return self.prior_out(self.act_fn(self.prior_hidden(deter[None], idx)), idx)[0]
        return self.prior_out(self.act_fn(self.prior_hidden(deter, member)), member)

    def disagreement(
        self, stats_all: torch.Tensor, measure: str = "logits", stoch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Ensemble disagreement about the next latent (MOTO Eq. 2 leaves the reduction open): stats_all
        (M, ..., P) every member's prior statistics -> (...). Population std over members throughout.

        logits           std_i of the raw prior logits, mean over the S x K logits (Gaussian: std_i of
                         the means, mean over dims, as victorkolev/cmil). Not invariant: a constant added
                         to one categorical's logits, or logits below unimix's floor, change no
                         probability yet move it.
        log_probs        std_i of log p^i (after unimix: centred logits), mean over S x K
        probs            std_i of p^i, mean over S x K (cmil's member-mean std read for categoricals:
                         a categorical's mean is its probability vector)
        sample_log_prob  std_i of log p^i(z') at the sampled next latent ``stoch`` (rmrafailov/LOMPO's
                         ``log_prob``), log p summed over the latent variables
        meandis          mean_i ||p^i - mean_j p^j||_F over the S x K probabilities (Gaussian: over the
                         means) (conglu1997/v-d4rl Offline DV2's ``meandis``)
        """
        if measure not in UNCERTAINTY_MEASURES:
            raise ValueError(
                f"unknown uncertainty measure {measure!r}; choose one of {', '.join(UNCERTAINTY_MEASURES)}"
            )
        if not self.discrete:
            mean, std = self.mean_std(stats_all)
            if measure == "logits":
                return mean.std(0, unbiased=False).mean(-1)
            if measure == "sample_log_prob":
                return gaussian_log_prob(mean, std, self._needs(stoch).float()[None]).std(0, unbiased=False)
            if measure == "meandis":
                return (mean - mean.mean(0, keepdim=True)).norm(dim=-1).mean(0)
            raise ValueError(
                f"uncertainty measure {measure!r} is for categorical latents; Gaussian latents "
                f"take logits (the means), sample_log_prob or meandis"
            )
        if measure == "logits":
            return stats_all.float().std(0, unbiased=False).mean(-1)
        logp = self.log_probs(stats_all)  # (M, ..., S, K)
        if measure == "log_probs":
            return logp.std(0, unbiased=False).mean((-2, -1))
        if measure == "sample_log_prob":
            z = self._needs(stoch).float().unflatten(-1, (self.cfg.stoch, self.cfg.classes))
            return (logp * z[None]).sum((-2, -1)).std(0, unbiased=False)
        probs = logp.exp()
        if measure == "probs":
            return probs.std(0, unbiased=False).mean((-2, -1))
        return (probs - probs.mean(0, keepdim=True)).flatten(-2).norm(dim=-1).mean(0)  # meandis

    @staticmethod
    def _needs(stoch):
        if stoch is None:
            raise ValueError("the sample_log_prob measure needs the sampled next latent (stoch=)")
        return stoch

    # -- steps --------------------------------------------------------------------------------------
    def img_step(
        self,
        state: dict,
        action: torch.Tensor,
        generator: torch.Generator | None = None,
        member=None,
        sample: bool = True,
        return_ensemble: bool = False,
    ):
        """One prior step s_{t-1}, a_{t-1} -> s_t. ``member``: None draws one uniformly for this step
        (DreamerV2), an int fixes it, a (N,) long tensor picks one per sample. With
        ``return_ensemble`` every member's statistics are computed (one bmm) and returned too:
        (state, stats_all (M, N, P)). With ``member_transition`` the member also picks the next
        deterministic state (``img_step_members``)."""
        if self.cfg.member_transition:
            return self.img_step_members(state, action, generator, member, sample, return_ensemble)
        deter = self.transition(state["stoch"], action, state["deter"])
        stats_all = None
        if return_ensemble or isinstance(member, torch.Tensor):
            stats_all = self.prior(deter, "all", action)
            if member is None and self.members > 1:  # one member for the step, drawn and picked on the device
                stats = stats_all.index_select(0, self.random_member(generator, device=deter.device))[0]
            elif member is None or isinstance(member, int):
                stats = stats_all[member or 0]
            else:
                stats = stats_all[member.to(deter.device), torch.arange(deter.shape[0], device=deter.device)]
        elif member is None and self.members > 1:  # as above, without a host read of the drawn index
            drawn = self.random_member(generator, device=deter.device)
            stats = self.prior(deter[None], drawn, None if action is None else action[None])[0]
        else:
            stats = self.prior(deter, int(member or 0), action)
        out = {"deter": deter, "stoch": self.sample(stats, generator, sample), "stats": stats}
        return (out, stats_all) if return_ensemble else out

    def img_step_members(
        self, state, action, generator=None, member=None, sample=True, return_ensemble=False
    ):
        """``img_step`` with member-specific transitions: member k's next deterministic state and its prior
        head on it. Every member's (``return_ensemble``, or a member per sample) in one batched call,
        else only the drawn member's."""
        n, device = state["deter"].shape[0], state["deter"].device
        if return_ensemble or isinstance(member, torch.Tensor):
            deter_all, stats_all = self.next_ensemble(state, action)
            if isinstance(member, torch.Tensor):  # a member per sample
                pick = (member.to(device), torch.arange(n, device=device))
                deter, stats = deter_all[pick], stats_all[pick]
            else:
                k = (
                    self.random_member(generator, device=device)
                    if member is None
                    else torch.full((1,), member, dtype=torch.long, device=device)
                )
                deter, stats = deter_all.index_select(0, k)[0], stats_all.index_select(0, k)[0]
        else:
            k = self.random_member(generator, device=device) if member is None else member
            deter = self.transition(state["stoch"], action, state["deter"], k)
            k = k if isinstance(k, torch.Tensor) else torch.full((1,), k, dtype=torch.long, device=device)
            stats = self.prior(deter[None], k, None if action is None else action[None])[0]
            stats_all = None
        out = {"deter": deter, "stoch": self.sample(stats, generator, sample), "stats": stats}
        return (out, stats_all) if return_ensemble else out

    def obs_step(
        self,
        prev_state: dict,
        prev_action: torch.Tensor,
        embed: torch.Tensor,
        is_first: torch.Tensor,
        generator: torch.Generator | None = None,
        sample: bool = True,
    ) -> dict:
        """One posterior step. Where ``is_first``, the previous state and action are zeroed (the initial
        state): the recurrent state resets at episode starts."""
        keep = (~is_first.bool()).to(prev_state["deter"].dtype)[:, None]
        action = prev_action * keep.to(prev_action.dtype)
        member = self.random_member(generator, device=keep.device) if self.cfg.member_transition else None
        return self._obs_step(prev_state, action, embed, keep, generator, sample, member)

    def _obs_step(self, prev_state, kept_action, embed, keep, generator, sample, member=None) -> dict:
        """``obs_step`` given the action already zeroed where a start is (``kept_action``) and ``keep`` (N, 1)
        = 1 - is_first (``observe`` computes both once per window); ``member`` (1,): whose transition
        (``member_transition``)."""
        deter = self.transition(prev_state["stoch"] * keep, kept_action, prev_state["deter"] * keep, member)
        stats = self.post_net(torch.cat([deter, embed.to(deter.dtype)], -1))
        return {"deter": deter, "stoch": self.sample(stats, generator, sample), "stats": stats}

    def observe(
        self,
        embed: torch.Tensor,
        action: torch.Tensor,
        is_first: torch.Tensor,
        state: dict | None = None,
        generator: torch.Generator | None = None,
        sample: bool = True,
        members: torch.Tensor | None = None,
    ):
        """Filter a batch of sequences. embed (B, L, E); action (B, L, A), the action *into* each frame;
        is_first (B, L); without ``state`` the first frame is a start (is_first taken as set there).
        Returns (post, prior_stats): post a state dict of (B, L, ...) tensors, and the prior statistics
        (B, L, P) of member ``members[t]`` at step t (drawn uniformly per time step when not given),
        computed after the scan for all steps at once (one batched matmul)."""
        B, L = embed.shape[:2]
        # a window with no carried state starts afresh at its first frame (DreamerV2's replay marks
        # is_first there): zero state *and* zero previous action, even where the window starts
        # mid-episode
        if state is None:
            state = self.initial(B, embed.device, embed.dtype if embed.is_floating_point() else torch.float32)
            is_first = is_first.clone()
            is_first[:, 0].fill_(True)
        # what obs_step would compute at every step, computed once for the whole window (same numbers)
        keep = (~is_first.bool()).to(state["deter"].dtype)[..., None]  # (B, L, 1)
        kept_action = action * keep.to(action.dtype)
        # with member-specific transitions step t's member makes h_t too: drawn before the scan
        if members is None and self.cfg.member_transition:
            members = torch.randint(0, self.members, (L,), generator=generator, device=embed.device)
        posts = []
        for t in range(L):
            m = members[t : t + 1].to(embed.device) if self.cfg.member_transition else None
            state = self._obs_step(state, kept_action[:, t], embed[:, t], keep[:, t], generator, sample, m)
            posts.append(state)
        post = {k: torch.stack([p[k] for p in posts], 1) for k in posts[0]}
        if members is None:
            members = torch.randint(0, self.members, (L,), generator=generator, device=embed.device)
        deter = post["deter"].flatten(0, 1)  # (B L, D)
        act = kept_action.flatten(0, 1)  # as obs_step saw it
        if self.members == 1:
            prior = self.prior(deter, 0, act)
        else:  # every member in one bmm (gathering a weight copy per step costs more), then member[t] at t
            prior = self.prior(deter, "all", act).unflatten(1, (B, L))  # (M, B, L, P)
            prior = prior[members.to(embed.device), :, torch.arange(L, device=embed.device)]  # (L, B, P)
        return post, prior.unflatten(0, (B, L)) if self.members == 1 else prior.transpose(0, 1)

    def imagine(
        self,
        policy,
        start: dict,
        horizon: int,
        generator: torch.Generator | None = None,
        member=None,
        return_ensemble: bool = False,
    ) -> dict:
        """Roll ``policy(feat) -> action`` for ``horizon`` steps from ``start`` (a state dict of (N, ...)).
        The policy sees detached features (DreamerV2); actions and states keep their gradients
        (dynamics backpropagation). Returns time-first tensors: feat, deter, stoch, stats (H+1, N, ..),
        action (H+1, N, A) with action[t] the action *into* state t (zeros at t = 0), and with
        ``return_ensemble`` "ensemble" (M, H, N, P): every member's statistics at steps 1..H."""
        state = start
        seq = {k: [v] for k, v in start.items()}
        seq["action"] = [
            torch.zeros(
                start["deter"].shape[0],
                self.action_dim,
                device=start["deter"].device,
                dtype=start["deter"].dtype,
            )
        ]
        ens = []
        for _ in range(horizon):
            action = policy(self.feat(state).detach())
            out = self.img_step(state, action, generator, member, True, return_ensemble)
            if return_ensemble:
                out, stats_all = out
                ens.append(stats_all)
            state = out
            for k, v in state.items():
                seq[k].append(v)
            seq["action"].append(action.to(state["deter"].dtype))
        res = {k: torch.stack(v) for k, v in seq.items()}
        res["feat"] = torch.cat([res["stoch"], res["deter"]], -1)
        if return_ensemble:
            res["ensemble"] = torch.stack(ens, 1)  # (M, H, N, P): members first, as prior(.., "all")
        return res


# ---------------------------------------------------------------------------------------------------
# The world model


class WorldModel(nn.Module):
    """Encoder, RSSM, image decoder, reward head (and optionally a continuation head)."""

    def __init__(self, cfg: WorldModelConfig, obs_shape, action_dim: int):
        super().__init__()
        self.cfg, self.obs_shape, self.action_dim = cfg, tuple(obs_shape), action_dim
        self.encoder = Encoder(obs_shape, cfg.enc_channels, cfg.enc_kernels, cfg.enc_mlp, cfg.act)
        self.rssm = RSSM(cfg, self.encoder.out_dim, action_dim)
        F_ = self.rssm.feat_dim
        self.decoder = Decoder(
            F_, obs_shape, cfg.dec_mlp, cfg.dec_in, cfg.dec_channels, cfg.dec_kernels, cfg.act
        )
        self.reward = mlp(F_, tuple(cfg.reward_mlp), 1, cfg.act)
        self.discount = mlp(F_, tuple(cfg.discount_mlp), 1, cfg.act) if cfg.pred_discount else None
        self._fast: dict = {}  # compiled callables (kept out of the module tree and the state dict)

    def compile(self) -> None:
        """torch.compile the stateless, shape-stable parts (encoder, decoder, heads, GRU cell); the
        sequential scan and every random draw stay in Python.

        Inductor's layout optimisation (channels-last convolutions) is turned off: with bf16 autocast
        on an H100 (torch 2.11) it made the decoder's transposed-convolution backward fail a stride
        check ("expected ... stride 25==1 at dim=1", aten.convolution_backward)."""
        import torch._inductor.config as inductor_config

        inductor_config.layout_optimization = False
        for name in ("encoder", "decoder", "reward"):
            self._fast[name] = torch.compile(getattr(self, name))
        self.rssm.gru.forward = torch.compile(self.rssm.gru.forward)  # type: ignore[method-assign]

    def encode(self, image):
        return self._fast.get("encoder", self.encoder)(image)

    def observe_step(
        self, obs, state, device, generator: torch.Generator | None = None, sample: bool = True
    ) -> dict:
        """The posterior after the newest frame of an agent's observation ``obs`` ((k, H, W, C) uint8), from
        ``state`` = (latent, previous action), or None at an episode's start (the initial state)."""
        image = torch.as_tensor(np.ascontiguousarray(obs[-1:])).to(device)
        first = state is None
        if first:
            latent, prev_action = self.rssm.initial(1, device), torch.zeros(1, self.action_dim, device=device)
        else:
            latent, prev_action = state
        return self.rssm.obs_step(
            latent, prev_action, self.encode(image), torch.tensor([first], device=device), generator, sample
        )

    def decode(self, feat):
        return self._fast.get("decoder", self.decoder)(feat)

    def predict_reward(self, feat):
        return self._fast.get("reward", self.reward)(feat).squeeze(-1).float()

    def continuation(self, feat):
        """Probability that the episode continues after the state (1 without a continuation head)."""
        if self.discount is None:
            return torch.ones(feat.shape[:-1], device=feat.device)
        return torch.sigmoid(self.discount(feat).squeeze(-1).float())

    def loss(
        self, batch: dict, generator: torch.Generator | None = None, members: torch.Tensor | None = None
    ):
        """The ELBO of a sequence batch (tensors: image (B, L, H, W, C) uint8, action, reward, is_first,
        is_terminal). Returns (loss, metrics (detached), post states (B, L, ...))."""
        cfg = self.cfg
        image = batch["image"]
        embed = self.encode(image)
        post, prior = self.rssm.observe(
            embed, batch["action"].float(), batch["is_first"], generator=generator, members=members
        )
        feat = self.rssm.feat(post)
        recon = self.decode(feat).float()
        target = image.float() / 255.0 - 0.5
        image_loss = 0.5 * ((recon - target) ** 2).sum((-3, -2, -1)).mean()
        reward_loss = 0.5 * ((self.predict_reward(feat) - batch["reward"].float()) ** 2).mean()
        kl_loss, kl_value = kl_balanced(post["stats"], prior, self.rssm, cfg.kl_balance, cfg.free_nats)
        loss = image_loss + reward_loss + cfg.kl_scale * kl_loss
        metrics = {
            "image_loss": image_loss.detach(),
            "reward_loss": reward_loss.detach(),
            "kl_loss": kl_loss.detach(),
            "model_kl": kl_value.mean(),
        }
        if self.discount is not None:
            cont = 1.0 - batch["is_terminal"].float()
            disc_loss = F.binary_cross_entropy_with_logits(self.discount(feat).squeeze(-1).float(), cont)
            loss = loss + disc_loss
            metrics["discount_loss"] = disc_loss.detach()
        metrics["model_loss"] = loss.detach()
        return loss, metrics, post
