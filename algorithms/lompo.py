"""LOMPO (Rafailov et al., 2021) offline-to-online from pixels, on the shared RSSM (SPEC section 4).
COMBO (``algorithms/combo.py``) is this agent with a CQL term instead of the reward penalty.

Facts from ``rmrafailov/LOMPO`` (TF2, ``lompo.py`` / ``buffer.py`` / ``models.py``; read, not copied):
RSSM with Gaussian latents (deter 256, stoch 64, hidden 256), 7 prior heads; plain KL (no free nats,
no balancing); conv encoder (32, 64, 128, 256) k4 s2 whose flattened output (32 x depth = 1024) is the
embedding; decoder Dense(1024) -> 1x1 -> transposed convs (128, 64, 32, 3) k (5, 5, 6, 6) s2; reward
head 2 x 256; critics 3 x 256, actor 4 x 256; model lr 6e-4, actor and critic lr 3e-4, grad clip 100;
model batch 64 x 50; agent batch 256; tau 5e-3; gamma 0.99; rollout horizon 5; lambda 5;
``penalty_type = 'log_prob'``. Real data is encoded episode by episode into the 'real' buffer
(``_process_data_to_latent``: posterior features of the episode; rows (s_t, a_t, r_t, s_{t+1})), once,
after the model is fitted, and each new online episode when it arrives; model data comes from
rollouts started at the posteriors of one model batch (``_generate_latent_data``), a random member per
step for the whole batch.

Per update (one protocol gradient step), on a batch of 64 x 50 sequences:
1. World model: minimise the ELBO, Adam 6e-4 (always, offline and online: the model keeps training).
2. After ``model_warmup`` updates (the reference fits the model first): encode the episodes not yet
   encoded (all of the dataset at once; later each new online episode) with the current model's
   posterior means into the real buffer. Those latents are never re-encoded: ``latent_drift`` shows how
   far they drift from what the current model would say for the same frames.
3. Every ``rollout_every`` updates: MBPO-style rollouts of ``horizon`` steps from (up to
   ``rollout_starts``) posterior states of this batch, a_t ~ pi(s_t), one random member m_t per step:
       s_{t+1} ~ p^{m_t}(s | s_t, a_t),   r~_t = rew(s_{t+1}) - lambda u(s_t, a_t)
   with u LOMPO's ``log_prob`` disagreement: the population std over members i of log p^i(z_{t+1}),
   z_{t+1} the sampled next latent (``latent_sac.disagreement``); rows go into the model buffer.
4. The actor-critic (a deterministic actor, or SAC) on a batch of ``agent_batch`` rows, ``real_fraction``
   real and the rest model-generated (``latent_sac.LatentSAC``); COMBO adds cql_alpha x the CQL regulariser.

The actor is the reference's by default: a deterministic tanh policy with additive N(0, 0.2)
exploration (acting and model rollouts) and actor loss -min Q, no entropy term; ``actor="sac"`` gives the
tanh-Gaussian SAC actor with a learned temperature (target entropy -|A|) that the paper names.
Deviations, stated: the reference draws agent_batch rows from each buffer
(2 x 256); here agent_batch = 256 in total, half and half. Real latents are posterior means (the
reference samples them) so that re-encoding the same frames with an unchanged model gives drift 0.
Activations: ELU everywhere (the reference's convs use ReLU).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from algorithms import RunContext, Sequences, register
from algorithms.nets.latent_sac import LatentBuffer, LatentSAC, disagreement, mixed_batch
from algorithms.nets.torch_parts import batch_to_device
from algorithms.nets.world_model import WorldModelConfig
from algorithms.nets.world_model_agent import WorldModelAgent

_SMALL = dict(
    deter=16,
    hidden=16,
    stoch=4,
    enc_channels=(4, 4, 4, 4),
    enc_mlp=(),
    dec_mlp=(),
    dec_in=16,
    dec_channels=(4, 4, 4, 3),
    reward_mlp=(16,),
)


@dataclass(frozen=True)
class LompoConfig(WorldModelConfig):
    """World-model fields set to LOMPO's code; then the latent-replay actor-critic's."""

    # World model (LOMPO: RSSME(stoch 64, deter 256, hidden 256), 7 models, Gaussian latents)
    deter: int = 256
    hidden: int = 256
    stoch: int = 64
    classes: int = 0  # Gaussian latents
    ensemble: int = 7
    enc_channels: tuple[int, ...] = (32, 64, 128, 256)
    enc_mlp: tuple[int, ...] = ()  # the flattened conv output (2 x 2 x 256 = 1024 at 64x64) is the embedding
    dec_mlp: tuple[int, ...] = ()  # one Dense(1024) (``dec_in``) reshaped to 1x1, then the transposed convs
    dec_in: int = 1024
    reward_mlp: tuple[int, ...] = (256, 256)
    kl_balance: float = 0.5  # 0.5 = plain KL(q || p) (LOMPO: no balancing)
    free_nats: float = 0.0
    model_lr: float = 6e-4
    opt_eps: float = 1e-7  # TF2 Adam's default
    weight_decay: float = 0.0
    batch: int = 64
    length: int = 50
    # Latent replay
    model_warmup: int = 500  # model-only updates before real data is encoded (reference: fit the model first)
    horizon: int = 5
    rollout_every: int = 20  # one model batch of rollouts per 20 updates (MetaWorld: once per online episode)
    rollout_starts: int = 3200  # posterior states used as starts (all of a 64 x 50 batch)
    real_capacity: int = 200_000
    model_capacity: int = 100_000
    encode_batch: int = 16  # episodes encoded together (same length)
    drift_every: int = 100  # updates between latent-drift measurements (0: off)
    drift_episodes: int = 2  # the first encoded episodes, re-encoded to measure drift
    # Penalty (LOMPO) and conservative term (COMBO)
    penalty: str = "log_prob"  # LOMPO's penalty_type: log_prob (default) | max_var | mean
    lmbd: float = 5.0
    cql_alpha: float = 0.0
    cql_samples: int = 16
    # Actor-critic on latent features (latent_sac.LatentSAC)
    actor: str = "deterministic"  # LOMPO's code: a tanh actor on -min Q with additive N(0, expl_noise^2)
    # exploration; "sac": a tanh-Gaussian actor with a learned temperature (the paper calls it SAC)
    expl_noise: float = 0.2  # LOMPO's expl_amount (acting and model rollouts; evaluation: none)
    actor_mlp: tuple[int, ...] = (256, 256, 256, 256)
    critic_mlp: tuple[int, ...] = (256, 256, 256)
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    agent_batch: int = 256
    real_fraction: float = 0.5
    discount: float = 0.99
    tau: float = 5e-3
    init_temperature: float = 1.0  # actor = "sac" only
    target_entropy: float | None = None  # actor = "sac" only; None: -|A|

    CHOICES = {"penalty": ("log_prob", "max_var", "mean"), "actor": ("deterministic", "sac")}

    PROFILES = {
        "cpu": dict(
            deter=64,
            hidden=64,
            stoch=16,
            enc_channels=(8, 16, 32, 64),
            dec_in=128,
            dec_channels=(32, 16, 8, 3),
            reward_mlp=(64, 64),
            actor_mlp=(64, 64),
            critic_mlp=(64, 64),
            batch=8,
            length=25,
            rollout_starts=200,
            agent_batch=128,
            model_warmup=200,
            rollout_every=5,
            real_capacity=50_000,
            model_capacity=20_000,
            drift_every=50,
        ),
        "smoke": dict(
            _SMALL,
            actor_mlp=(16,),
            critic_mlp=(16,),
            batch=2,
            length=5,
            horizon=2,
            agent_batch=8,
            model_warmup=1,
            rollout_every=1,
            rollout_starts=6,
            real_capacity=2000,
            model_capacity=40,
            drift_every=1,
            encode_batch=4,
            cql_samples=3,
        ),
    }


class LompoAgent(WorldModelAgent):
    """The world model (``WorldModelAgent``, Gaussian latents), latent replay buffers and SAC on latents."""

    def __init__(self, config: LompoConfig, context: RunContext):
        if config.classes != 0:
            raise ValueError("LOMPO/COMBO use Gaussian latents: classes must be 0")
        super().__init__(config, context)
        self.amp = False  # float32 everywhere: the latents go into buffers and are compared across time
        c = config
        self.requests = {"model": Sequences(c.batch, c.length)}
        self.cpu_gen = torch.Generator().manual_seed(context.seed + 2)  # buffer indices
        F_, A = self.wm.rssm.feat_dim, context.action_dim
        self.real = LatentBuffer("real", c.real_capacity, F_, A)
        self.model = LatentBuffer("model", c.model_capacity, F_, A)
        self.committed = {"real": 0, "model": 0}
        # every episode seen by on_episode (None once encoded, unless kept for drift)
        self.episodes: list = []
        self.encoded = 0  # episodes encoded into the real buffer, in on_episode order
        self.drift_rows: list[tuple[int, int, int]] = []  # (episode ordinal, first row, end row)

    def build_heads(self, feat_dim: int) -> None:
        """The actor-critic on latent features (its optimisers are its own)."""
        self.sac = LatentSAC(feat_dim, self.context.action_dim, self.config).to(self.device)

    # -- hooks ----------------------------------------------------------------------------------------
    def on_episode(self, episode, online):
        self.episodes.append(
            {
                "image": episode["image"],
                "action": episode["action"],
                "reward": episode["reward"],
                "terminal": episode["terminal"],
            }
        )

    # -- encoding real data -----------------------------------------------------------------------------
    @torch.no_grad()
    def encode_episodes(self, episodes: list[dict]) -> list[torch.Tensor]:
        """Posterior-mean features (T+1, F) of whole episodes under the current model (batched by length)."""
        rssm = self.wm.rssm
        out: list = [None] * len(episodes)
        by_len: dict[int, list[int]] = {}
        for i, ep in enumerate(episodes):
            by_len.setdefault(len(ep["image"]), []).append(i)
        for T1, idx in by_len.items():
            for j in range(0, len(idx), self.config.encode_batch):
                group = idx[j : j + self.config.encode_batch]
                image = torch.as_tensor(np.stack([episodes[i]["image"] for i in group])).to(self.device)
                act = np.stack([episodes[i]["action"] for i in group]).astype(np.float32)
                act = np.concatenate([np.zeros_like(act[:, :1]), act], 1)  # the action *into* each frame
                first = torch.zeros(len(group), T1, dtype=torch.bool, device=self.device)
                first[:, 0] = True
                post, _ = rssm.observe(
                    self.wm.encode(image),
                    torch.as_tensor(act, device=self.device),
                    first,
                    generator=self.gen,
                    sample=False,
                    members=torch.zeros(T1, dtype=torch.long, device=self.device),
                )
                feat = rssm.feat(post)
                for k, i in enumerate(group):
                    out[i] = feat[k]
        return out

    def _encode_pending(self) -> None:
        pending = list(range(self.encoded, len(self.episodes)))
        if not pending:
            return
        feats = self.encode_episodes([self.episodes[i] for i in pending])
        for i, feat in zip(pending, feats):
            ep = self.episodes[i]
            feat = feat.cpu().numpy()
            start, end = self.real.add(
                obs=feat[:-1],
                action=ep["action"],
                reward=ep["reward"],
                next_obs=feat[1:],
                discount=1.0 - ep["terminal"].astype(np.float32),
            )
            if len(self.drift_rows) < self.config.drift_episodes:
                self.drift_rows.append((i, start, end))
            else:
                self.episodes[i] = None  # its frames are in the protocol's store; we need no copy
        self.encoded = len(self.episodes)

    @torch.no_grad()
    def latent_drift(self) -> torch.Tensor | None:
        """Mean ||s_stored - s_now||_2 over the real-buffer rows of the drift episodes (still stored):
        stored posterior features against the current model's re-encoding of the same frames."""
        live = [(i, s, e) for i, s, e in self.drift_rows if self.real.live(s)]
        if not live:
            return None
        now = self.encode_episodes([self.episodes[i] for i, _, _ in live])
        dist = []
        for (i, s, e), feat in zip(live, now):
            stored = torch.as_tensor(self.real.rows(s, e)["obs"], device=self.device)
            dist.append((stored - feat[:-1]).norm(dim=-1))
        return torch.cat(dist).mean()

    # -- rollouts -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def rollout(self, start: dict, horizon: int) -> dict:
        """MBPO-style rollouts from ``start`` (state dict of (N, ..)), one random member per step for the
        whole batch. Returns time-first tensors obs, next_obs (H, N, F), action (H, N, A), reward,
        penalty (H, N) and member (H,)."""
        rssm, c = self.wm.rssm, self.config
        state = start
        rows = {k: [] for k in ("obs", "action", "reward", "next_obs", "penalty", "member")}
        for _ in range(horizon):
            feat = rssm.feat(state)
            action = self.sac.policy(feat, self.gen, explore=True)  # LOMPO's rollouts explore too
            nxt, stats_all = rssm.img_step(
                state, action, self.gen, member=None, sample=True, return_ensemble=True
            )
            means, stds = rssm.mean_std(stats_all)
            member = (stats_all == nxt["stats"][None]).flatten(1).all(1).float().argmax()  # stays a tensor
            u = disagreement(c.penalty, means, stds, nxt["stoch"].float())
            nfeat = rssm.feat(nxt)
            rows["obs"].append(feat)
            rows["action"].append(action)
            rows["next_obs"].append(nfeat)
            rows["reward"].append(self.wm.predict_reward(nfeat) - c.lmbd * u)
            rows["penalty"].append(u)
            rows["member"].append(member)
            state = nxt
        return {k: torch.stack(v) for k, v in rows.items()}

    def _generate(self, post: dict) -> dict:
        c = self.config
        start = {k: v.detach().flatten(0, 1) for k, v in post.items()}
        n = start["deter"].shape[0]
        if c.rollout_starts < n:
            idx = torch.randperm(n, generator=self.gen, device=self.device)[: c.rollout_starts]
            start = {k: v[idx] for k, v in start.items()}
        r = self.rollout(start, c.horizon)
        flat = lambda x: x.flatten(0, 1).float().cpu().numpy()  # noqa: E731
        self.model.add(
            obs=flat(r["obs"]),
            action=flat(r["action"]),
            reward=flat(r["reward"]),
            next_obs=flat(r["next_obs"]),
            discount=np.ones(r["reward"].numel(), np.float32),
        )
        return {"rollout_penalty": r["penalty"].mean(), "rollout_reward": r["reward"].mean()}

    # -- training -----------------------------------------------------------------------------------------
    def step_inputs(self, batches) -> dict:
        keys = ("image", "action", "reward", "is_first", "is_terminal")
        return batch_to_device(batches["model"], self.device, keys=keys)

    def train_step(self, b: dict) -> dict:
        """The world model's step (the part a CUDA graph captures); the rest is ``after_step``."""
        wm_loss, metrics, post = self.wm.loss(b, self.gen)
        metrics["model_grad_norm"] = self.wm_opt.step(wm_loss)
        return {"metrics": metrics, "post": post}

    def after_step(self, outputs: dict) -> dict:
        """Rollouts into the model buffer, then the latent SAC (host-side buffers: never captured)."""
        c = self.config
        metrics, post = outputs["metrics"], outputs["post"]
        if self.updates <= c.model_warmup:
            return metrics
        fresh = self.encoded < len(self.episodes)
        self._encode_pending()
        agent_step = self.updates - c.model_warmup - 1  # 0 at the first agent update
        if agent_step % c.rollout_every == 0 or len(self.model) == 0:
            metrics.update(self._generate(post))
        if c.drift_every and (fresh or agent_step % c.drift_every == 0):
            drift = self.latent_drift()
            if drift is not None:
                metrics["latent_drift"] = drift
        batch = mixed_batch(self.real, self.model, c.agent_batch, c.real_fraction, self.cpu_gen)
        tb = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        metrics.update(self.sac.update(tb, self.gen, c.cql_alpha, c.cql_samples))
        metrics["real_rows"] = torch.tensor(float(len(self.real)))
        metrics["model_rows"] = torch.tensor(float(len(self.model)))
        return metrics

    # -- acting -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs, state, explore: bool):
        latent = self.wm.observe_step(obs, state, self.device, self.gen, sample=False)
        action = self.sac.policy(self.wm.rssm.feat(latent), self.gen, explore)
        return action[0].cpu().numpy().astype(np.float32), (latent, action)

    # -- state --------------------------------------------------------------------------------------------
    def _parts(self) -> dict:
        """The modules, optimiser and generators a checkpoint holds, under their keys (the SAC's
        optimisers go under ``sac_opt``)."""
        return {
            "wm": self.wm,
            "sac": self.sac,
            "wm_opt": self.wm_opt,
            "gen": self.gen,
            "cpu_gen": self.cpu_gen,
        }

    def state_dict(self):
        # save(dir) ran just before: the buffers' rows up to ``total`` are on disk now
        self.committed = {"real": self.real.total, "model": self.model.total}
        return super().state_dict()

    def _extra_state(self) -> dict:
        return {
            "sac_opt": self.sac.opt_state(),
            "committed": dict(self.committed),
            "encoded": self.encoded,
            "drift_rows": list(self.drift_rows),
        }

    def _load_extra_state(self, d: dict) -> None:
        self.sac.load_opt_state(d["sac_opt"])
        self.encoded = d["encoded"]
        self.committed = dict(d["committed"])
        self.drift_rows = [tuple(x) for x in d["drift_rows"]]
        keep = {i for i, _, _ in self.drift_rows}
        for i in range(min(self.encoded, len(self.episodes))):
            if i not in keep:
                self.episodes[i] = None

    def save(self, directory):
        directory = Path(directory)
        self.real.save(directory, self.committed["real"])
        self.model.save(directory, self.committed["model"])

    def load(self, directory):
        directory = Path(directory)
        self.real.load(directory, self.committed["real"])
        self.model.load(directory, self.committed["model"])


register("lompo", LompoConfig, LompoAgent)
