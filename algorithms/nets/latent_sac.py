"""What LOMPO and COMBO share on top of the world model: the latent replay buffer (in memory, saved as
append-only chunk files), SAC on latent features with an optional CQL term, and the ensemble
disagreement penalties of LOMPO's code.

Facts from ``rmrafailov/LOMPO`` (TF2; read, not copied): ``buffer.py`` (``LatentReplayBuffer``: one
'real' and one 'latent' ring of (obs, action, next_obs, reward, terminal) features, FIFO overwrite,
batches that concatenate a real and a model part), ``lompo.py`` (``_agent_train_step``: twin critics,
target min, soft targets tau = 5e-3 every step; the CQL term of ``alpha``: log-sum-exp of Q over 16
uniform actions plus the policy's action at every batch state, minus Q of the real part;
``_generate_latent_data``: the ``penalty_type`` options ``log_prob`` (the default), ``max_var``, ``mean``).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from algorithms.nets.torch_parts import ClippedAdam, mlp
from algorithms.nets.world_model import gaussian_log_prob

# ---------------------------------------------------------------------------------------------------
# Latent replay buffer

FIELDS = ("obs", "action", "reward", "next_obs", "discount")


class LatentBuffer:
    """A FIFO ring of ``capacity`` latent transitions. Row ``r`` (counted over all rows ever added,
    ``total``) lives at position ``r % capacity`` and is evicted once ``total - r > capacity``.

    Persistence (``save`` / ``load``): every ``save`` appends one file with the rows added since the
    previous save (only those not already evicted), named ``<name>-<first row>-<end row>.npz``. ``load``
    trusts only rows below ``committed`` (what the checkpoint's state dict recorded); files at or past it
    are deleted, a file straddling it is truncated. Files wholly evicted at the last committed count are
    removed at the next save, so the run directory holds about one buffer's worth of rows."""

    def __init__(self, name: str, capacity: int, feat_dim: int, action_dim: int):
        if capacity < 1:
            raise ValueError(f"buffer {name}: capacity must be >= 1, got {capacity}")
        self.name, self.capacity = name, capacity
        shapes = {
            "obs": (feat_dim,),
            "action": (action_dim,),
            "reward": (),
            "next_obs": (feat_dim,),
            "discount": (),
        }
        self.data = {k: np.zeros((capacity, *s), np.float32) for k, s in shapes.items()}
        self.total = 0  # rows ever added
        self.saved = 0  # rows written to disk (rows below it are in some chunk file, or evicted)

    def __len__(self) -> int:
        return min(self.total, self.capacity)

    def add(self, **rows) -> tuple[int, int]:
        """Append rows (dict of arrays with a common first dimension); returns (first row, end row)."""
        if set(rows) != set(FIELDS):
            raise ValueError(f"buffer {self.name}: rows need fields {FIELDS}, got {sorted(rows)}")
        n = len(rows["obs"])
        start = self.total
        keep = min(n, self.capacity)  # more rows than the ring holds: only the last ones survive
        pos = (start + n - keep + np.arange(keep)) % self.capacity
        for k in FIELDS:
            self.data[k][pos] = np.asarray(rows[k], np.float32)[n - keep :]
        self.total += n
        return start, self.total

    def clear(self) -> None:
        """Empty (rows are counted from 0 again; the arrays keep their memory)."""
        self.total = self.saved = 0

    def live(self, row: int) -> bool:
        return self.total - self.capacity <= row < self.total

    def rows(self, start: int, end: int) -> dict:
        """Rows [start, end) by absolute index (they must not be evicted)."""
        if not (self.live(start) and self.live(end - 1)):
            raise IndexError(
                f"buffer {self.name}: rows [{start}, {end}) are not all stored (total {self.total})"
            )
        pos = np.arange(start, end) % self.capacity
        return {k: v[pos] for k, v in self.data.items()}

    def sample(self, n: int, generator: torch.Generator) -> dict:
        """n rows uniformly (with replacement) over the stored ones; indices from the agent's generator."""
        if len(self) == 0:
            raise RuntimeError(f"buffer {self.name} is empty")
        idx = torch.randint(0, len(self), (n,), generator=generator).numpy()
        return {k: v[idx] for k, v in self.data.items()}

    # -- persistence ----------------------------------------------------------------------------------
    def _files(self, directory: Path):
        out = []
        for f in directory.glob(f"{self.name}-*-*.npz"):
            try:
                start, end = (int(x) for x in f.stem.rsplit("-", 2)[1:])
            except ValueError:
                continue
            out.append((start, end, f))
        return sorted(out)

    def save(self, directory: Path, committed_before: int) -> None:
        """Append the rows added since the last save as one file; delete files evicted at
        ``committed_before``."""
        directory.mkdir(parents=True, exist_ok=True)
        start = max(self.saved, self.total - self.capacity)
        if start < self.total:
            rows = self.rows(start, self.total)
            path = directory / f"{self.name}-{start:012d}-{self.total:012d}.npz"
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **rows)
            tmp.replace(path)
        self.saved = self.total
        for s, e, f in self._files(directory):
            if e <= committed_before - self.capacity:
                f.unlink()

    def load(self, directory: Path, committed: int) -> None:
        """Rebuild the ring from the chunk files, rows [committed - capacity, committed) exactly."""
        for k in FIELDS:
            self.data[k][:] = 0.0
        self.total = 0
        have = max(0, committed - self.capacity)
        for s, e, f in self._files(directory):
            if s >= committed:
                f.unlink()  # written after the checkpoint we resume from: never committed
                continue
            if e <= have:
                continue
            with np.load(f) as z:
                rows = {k: z[k] for k in FIELDS}
            if e > committed:  # straddles the committed count: keep the committed part only
                rows = {k: v[: committed - s] for k, v in rows.items()}
                e = committed
                np.savez(f.with_suffix(".tmp.npz"), **rows)
                f.with_suffix(".tmp.npz").replace(f.with_name(f"{self.name}-{s:012d}-{e:012d}.npz"))
                f.unlink()
            lo = max(s, have)
            pos = np.arange(lo, e) % self.capacity
            for k in FIELDS:
                self.data[k][pos] = rows[k][lo - s :]
            if lo > have and self.total < lo:
                raise RuntimeError(
                    f"buffer {self.name}: rows [{self.total}, {lo}) are missing in {directory}"
                )
            self.total = e
        if self.total != committed:
            raise RuntimeError(
                f"buffer {self.name}: the checkpoint committed {committed} rows, "
                f"{directory} holds {self.total}"
            )
        self.saved = committed


def mixed_batch(
    real: LatentBuffer, model: LatentBuffer, batch: int, real_fraction: float, generator: torch.Generator
) -> dict:
    """A batch of ``batch`` rows: the first round(batch * real_fraction) from ``real``, the rest from
    ``model`` (LOMPO's ``sample``: real part first), plus ``is_real`` (bool)."""
    n_real = int(round(batch * real_fraction)) if len(model) else batch
    parts = [real.sample(n_real, generator)] if n_real else []
    if batch - n_real:
        parts.append(model.sample(batch - n_real, generator))
    out = {k: np.concatenate([p[k] for p in parts]) for k in FIELDS}
    out["is_real"] = np.arange(batch) < n_real
    return out


# ---------------------------------------------------------------------------------------------------
# LOMPO's disagreement penalties (``penalty_type``)


def disagreement(
    kind: str, means: torch.Tensor, stds: torch.Tensor, z: torch.Tensor | None = None
) -> torch.Tensor:
    """u over an ensemble of Gaussian next-latent predictions: means, stds (M, N, Z); z (N, Z) the
    sampled next latent. Returns (N,).

        log_prob (LOMPO's default):  u = std_i log p^i(z)               (population std over members)
        max_var:                      u = max_i ||std^i||_2
        mean:                         u = mean_i ||mean^i - mean_j mean^j||_2
    """
    if kind == "log_prob":
        return gaussian_log_prob(means, stds, z[None]).std(0, unbiased=False)
    if kind == "max_var":
        return stds.norm(dim=-1).max(0).values
    if kind == "mean":
        return (means - means.mean(0, keepdim=True)).norm(dim=-1).mean(0)
    raise ValueError(f"unknown penalty {kind!r}; choose log_prob, max_var or mean")


# ---------------------------------------------------------------------------------------------------
# SAC on latent features (with COMBO's CQL term)


def cql_regulariser(q_sampled: torch.Tensor, q_data: torch.Tensor) -> torch.Tensor:
    """The conservative term of LOMPO's code (COMBO, alpha > 0):

        R = mean_s logsumexp_j Q(s, a_j)  -  mean_{(s, a) real} Q(s, a)

    q_sampled (J, N): Q at every batch state (real and model: the push-down distribution is the
    mixture d_f) for J actions (16 uniform in [-1, 1]^A plus the policy's); q_data (N_real,): Q of the
    real part's states and dataset actions (pushed up)."""
    return torch.logsumexp(q_sampled, 0).mean() - q_data.mean()


class TanhGaussianActor(nn.Module):
    """pi(a | s) = tanh(N(mu(s), sigma(s))), log sigma clipped to [-5, 2]."""

    def __init__(self, feat_dim: int, action_dim: int, layers, act: str = "elu"):
        super().__init__()
        self.net = mlp(feat_dim, tuple(layers), 2 * action_dim, act)

    def forward(self, feat: torch.Tensor, generator: torch.Generator | None, deterministic: bool = False):
        mu, log_std = self.net(feat).chunk(2, -1)
        if deterministic:
            return torch.tanh(mu), None
        log_std = log_std.clamp(-5.0, 2.0)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device)
        u = mu + log_std.exp() * eps
        a = torch.tanh(u)
        # log pi(a) = log N(u) - sum log(1 - tanh(u)^2), the latter as 2 (log 2 - u - softplus(-2u))
        logp = (-0.5 * eps**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2.0 * (math.log(2.0) - u - nn.functional.softplus(-2.0 * u))).sum(-1)
        return a, logp


class DeterministicActor(nn.Module):
    """a = tanh(MLP(s)): LOMPO's ``ActorNetwork``; ``forward`` matches TanhGaussianActor's (action, log pi),
    with log pi = 0 (no entropy term) and exploration noise added by ``LatentSAC.policy``."""

    def __init__(self, feat_dim: int, action_dim: int, layers, act: str):
        super().__init__()
        self.net = mlp(feat_dim, tuple(layers), action_dim, act)

    def forward(
        self, feat: torch.Tensor, generator: torch.Generator | None = None, deterministic: bool = True
    ):
        a = torch.tanh(self.net(feat))
        return a, torch.zeros(a.shape[:-1], device=a.device)


class LatentSAC(nn.Module):
    """Twin critics Q1, Q2 with Polyak targets and an actor on latent features; ``cfg.actor``:

    deterministic (LOMPO's code, the default): a = pi(s), exploration a + N(0, expl_noise^2) clipped to
    [-1, 1] (acting and model rollouts), no entropy term:
        y = r + gamma d min_k Q'_k(s', pi(s'));   L_pi = -mean min_k Q_k(s, pi(s))
    sac: a tanh-Gaussian actor with a learned temperature:
        y = r + gamma d (min_k Q'_k(s', a') - alpha log pi(a' | s')),   a' ~ pi(s')
        L_pi = mean (alpha log pi(a~ | s) - min_k Q_k(s, a~));  L_alpha = -mean log alpha (log pi + H_target)
    Both: L_Q = sum_k mean (Q_k(s, a) - y)^2  [+ cql_alpha sum_k R_k, see cql_regulariser];
    Q'_k <- tau Q_k + (1 - tau) Q'_k after every update. ``cfg.actor_critic``: L_pi's gradient at the
    critics before this update's critic step (``pre_update``, LOMPO's code: both tapes are taken before
    either optimiser applies) or after it (``post_update``).
    """

    def __init__(self, feat_dim: int, action_dim: int, cfg):
        super().__init__()
        self.cfg, self.action_dim = cfg, action_dim
        if cfg.actor not in ("deterministic", "sac"):
            raise ValueError(f"actor must be 'deterministic' (LOMPO's code) or 'sac', got {cfg.actor!r}")
        self.deterministic = cfg.actor == "deterministic"
        if cfg.actor_critic not in ("pre_update", "post_update"):
            raise ValueError(f"actor_critic must be 'pre_update' or 'post_update', got {cfg.actor_critic!r}")
        self.actor_first = cfg.actor_critic == "pre_update"
        actor_cls = DeterministicActor if self.deterministic else TanhGaussianActor
        self.actor = actor_cls(feat_dim, action_dim, cfg.actor_mlp, cfg.act)
        self.q = nn.ModuleList(
            [mlp(feat_dim + action_dim, tuple(cfg.critic_mlp), 1, cfg.act) for _ in range(2)]
        )
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.init_temperature)))
        self.target_entropy = -float(action_dim) if cfg.target_entropy is None else cfg.target_entropy
        self.actor_opt = ClippedAdam(self.actor.parameters(), cfg.actor_lr, cfg.opt_eps, cfg.grad_clip, 0.0)
        self.critic_opt = ClippedAdam(self.q.parameters(), cfg.critic_lr, cfg.opt_eps, cfg.grad_clip, 0.0)
        self.alpha_opt = ClippedAdam([self.log_alpha], cfg.actor_lr, cfg.opt_eps, 0.0, 0.0)

    def policy(self, feat: torch.Tensor, generator: torch.Generator | None, explore: bool) -> torch.Tensor:
        """The action to take: exploring, LOMPO's additive Gaussian noise (deterministic actor) or a sample
        (sac); else the deterministic action / tanh of the mean."""
        if not self.deterministic:
            return self.actor(feat, generator, deterministic=not explore)[0]
        a, _ = self.actor(feat)
        if not explore:
            return a
        noise = torch.randn(a.shape, generator=generator, device=a.device) * self.cfg.expl_noise
        return (a + noise).clamp(-1.0, 1.0)

    def qs(self, nets, feat, action) -> torch.Tensor:
        x = torch.cat([feat, action], -1)
        return torch.stack([q(x).squeeze(-1) for q in nets])  # (2, ...)

    def update(
        self, b: dict, generator: torch.Generator, cql_alpha: float = 0.0, cql_samples: int = 16
    ) -> dict:
        cfg = self.cfg
        obs, act, rew, nxt, disc = b["obs"], b["action"], b["reward"], b["next_obs"], b["discount"]
        alpha = torch.zeros((), device=obs.device) if self.deterministic else self.log_alpha.exp().detach()
        with torch.no_grad():
            a2, logp2 = self.actor(nxt, generator)
            target = self.qs(self.q_target, nxt, a2).min(0).values - alpha * logp2
            y = rew + cfg.discount * disc * target
        q = self.qs(self.q, obs, act)  # (2, N)
        critic_loss = ((q - y[None]) ** 2).mean(1).sum()
        metrics = {}
        if cql_alpha:
            N = obs.shape[0]
            uniform = (
                torch.rand((cql_samples, N, self.action_dim), generator=generator, device=obs.device) * 2 - 1
            )
            with torch.no_grad():
                a_pi, _ = self.actor(obs, generator)
            actions = torch.cat([uniform, a_pi[None]])  # (J, N, A)
            q_sampled = self.qs(self.q, obs[None].expand(cql_samples + 1, *obs.shape), actions)  # (2, J, N)
            real = b["is_real"]
            reg = sum(cql_regulariser(q_sampled[k], q[k][real]) for k in range(2))
            critic_loss = critic_loss + cql_alpha * reg
            metrics["cql_reg"] = reg.detach() / 2
        if self.actor_first:  # LOMPO's code: both gradients at the critics before their update
            actor_loss, logp, actor_norm = self._actor_step(obs, generator, alpha)
            critic_norm = self.critic_opt.step(critic_loss)  # its graph holds no actor weight
        else:
            critic_norm = self.critic_opt.step(critic_loss)
            actor_loss, logp, actor_norm = self._actor_step(obs, generator, alpha)
        if not self.deterministic:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.step(alpha_loss)
        with torch.no_grad():
            for p, pt in zip(self.q.parameters(), self.q_target.parameters()):
                pt.lerp_(p, cfg.tau)
        metrics.update(
            {
                "critic_loss": critic_loss.detach(),
                "actor_loss": actor_loss.detach(),
                "q_value": q.mean().detach(),
                "q_target": y.mean().detach(),
                "critic_grad_norm": critic_norm,
                "actor_grad_norm": actor_norm,
            }
        )
        if not self.deterministic:
            metrics.update({"temperature": alpha, "actor_entropy": -logp.mean().detach()})
        return metrics

    def _actor_step(self, obs, generator, alpha):
        """L_pi at the critics as they are now (their weights take no gradient); Adam's step on the actor."""
        a, logp = self.actor(obs, generator)
        for p in self.q.parameters():
            p.requires_grad_(False)
        q_pi = self.qs(self.q, obs, a).min(0).values
        for p in self.q.parameters():
            p.requires_grad_(True)
        actor_loss = (alpha * logp - q_pi).mean()
        return actor_loss, logp, self.actor_opt.step(actor_loss)

    def opt_state(self) -> dict:
        return {
            "actor": self.actor_opt.state_dict(),
            "critic": self.critic_opt.state_dict(),
            "alpha": self.alpha_opt.state_dict(),
        }

    def load_opt_state(self, d: dict) -> None:
        self.actor_opt.load_state_dict(d["actor"])
        self.critic_opt.load_state_dict(d["critic"])
        self.alpha_opt.load_state_dict(d["alpha"])
