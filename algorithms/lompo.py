"""LOMPO (Rafailov et al., 2021) offline-to-online from pixels, on the shared RSSM (SPEC section 4).
COMBO (``algorithms/combo.py``) is this agent with a CQL term instead of the reward penalty.

Facts from ``rmrafailov/LOMPO`` (TF2, ``lompo.py`` / ``buffer.py`` / ``models.py``; read, not copied):
RSSM with Gaussian latents (deter 256, stoch 64, hidden 256), 7 prior heads; plain KL (no free nats,
no balancing); conv encoder (32, 64, 128, 256) k4 s2 whose flattened output (32 x depth = 1024) is the
embedding; decoder Dense(1024) -> 1x1 -> transposed convs (128, 64, 32, 3) k (5, 5, 6, 6) s2; reward
head 2 x 256; critics 3 x 256, actor 4 x 256; model lr 6e-4, actor and critic lr 3e-4, grad clip 100;
model batch 64 x 50; agent batch 256; tau 5e-3; gamma 0.99; rollout horizon 5; lambda 5;
``penalty_type = 'log_prob'``. The model is fitted (``model_train_steps``) and then never trained
again; real data is encoded episode by episode into the 'real' buffer by that final model
(``_process_data_to_latent``: sampled posterior features of the episode; rows (s_t, a_t, r_t, s_{t+1}));
model data comes from rollouts started at the posteriors of one model batch (``_generate_latent_data``),
a random member per step for the whole batch.

Per update (one protocol gradient step), on a batch of 64 x 50 sequences:
1. World model: minimise the ELBO, Adam 6e-4, during the first ``model_warmup`` updates and in the whole
   online phase; offline after the warm-up the model is frozen (``freeze_offline``, LOMPO's code: fit the
   model, then train the agent on it; no model step). Online the model is fine-tuned (the MOTO authors'
   modification: LOMPO's public code collects no online data).
2. After the warm-up: episodes not yet encoded go into the real buffer as posterior features
   (``sample_posterior``: sampled, as the code; else means). The dataset is encoded at the first agent
   update, by the final (frozen) model. Online (``reencode = "episode"``) every real latent is encoded
   again by the current model at the first update after each online episode, so the real latents are
   at most one episode (G updates) older than the model; ``reencode = "never"`` encodes each episode once.
   ``latent_drift`` shows how far the stored latents are from what the current model says for the same
   frames (0 while the model is frozen).
3. Every ``rollout_every`` updates: MBPO-style rollouts of ``horizon`` steps from (up to
   ``rollout_starts``) sampled posterior states of this batch, a_t ~ pi(s_t), one random member m_t per step:
       s_{t+1} ~ p^{m_t}(s | s_t, a_t),   r~_t = rew(s_{t+1}) - lambda u(s_t, a_t)
   with u LOMPO's ``log_prob`` disagreement: the population std over members i of log p^i(z_{t+1}),
   z_{t+1} the sampled next latent (``latent_sac.disagreement``); rows go into the model buffer.
4. The actor-critic (a deterministic actor, or SAC) on a batch of ``agent_batch`` rows, ``real_fraction``
   real and the rest model-generated (``latent_sac.LatentSAC``); COMBO adds cql_alpha x the CQL regulariser.
   The actor's gradient is taken at the critics before their update (``actor_critic = "pre_update"``, as
   the code's two tapes).

The actor is the reference's by default: a deterministic tanh policy with additive N(0, 0.2)
exploration (acting and model rollouts) and actor loss -min Q, no entropy term; ``actor="sac"`` gives the
tanh-Gaussian SAC actor with a learned temperature (target entropy -|A|) that the paper names. Acting
filters with sampled posteriors (``sample_posterior``), evaluation too, as the code's ``policy``.
Deviations, stated: the reference draws agent_batch rows from each buffer (2 x 256); here agent_batch =
256 in total, half and half. The reference re-encodes one dataset episode per 200 agent updates into a
real ring the size of the dataset; here (online) all of them at once per online episode.
Activations: ELU everywhere (the reference's convs use ReLU).

Checkpoints: with ``reencode = "episode"`` the real buffer is one encoding pass, not saved but rebuilt
on load by the model that made it (its weights go into the checkpoint when the model has stepped since).
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
    # The model's schedule and the real latents (LOMPO's code offline; the online phase is a reading)
    freeze_offline: bool = True  # LOMPO's code: the model fitted for model_warmup updates, then frozen for
    # the rest of the offline phase (no model step); False: a model step at every update (before issue 30)
    reencode: str = "episode"  # online, where the model is fine-tuned: "episode" re-encodes every real
    # latent with the current model at the first update after each online episode; "never" encodes each
    # episode once, on arrival (stored latents go stale as the model changes: the paper's explanation)
    sample_posterior: bool = True  # LOMPO's code: act on, and store in the real buffer, sampled posterior
    # latents (False: posterior means)
    actor_critic: str = "pre_update"  # LOMPO's code: the actor's gradient against the critics before their
    # update in the same step; "post_update": against the updated critics
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

    CHOICES = {
        "penalty": ("log_prob", "max_var", "mean"),
        "actor": ("deterministic", "sac"),
        "reencode": ("episode", "never"),
        "actor_critic": ("pre_update", "post_update"),
    }

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
        self.phase = "offline"  # on_phase: the model is frozen after the warm-up offline only
        # every episode seen by on_episode, in order (None once no longer needed)
        self.episodes: list = []
        self.encoded = 0  # episodes encoded into the real buffer, in on_episode order
        self.encodes = 0  # encoding passes so far (pass k samples its posteriors from seed (seed, 3, k))
        self.pass_first = 0  # reencode = "episode": the first episode of the last pass (older: evicted)
        self.model_steps = 0  # world-model steps so far
        self.encoded_at = 0  # model_steps at the last pass; encoded_by: the world model's state then
        self.encoded_by: dict | None = None
        self.drift_ref: dict[int, np.ndarray] = {}  # the drift episodes' posterior-mean features (T+1, F)
        # at their last encoding

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

    def on_phase(self, phase):
        self.phase = phase

    # -- encoding real data -----------------------------------------------------------------------------
    def _encode_gen(self, k: int) -> torch.Generator:
        seed = int(np.random.SeedSequence([self.context.seed, 3, k]).generate_state(1)[0])
        return torch.Generator(device=self.device).manual_seed(seed)

    @torch.no_grad()
    def encode_episodes(
        self, episodes: list[dict], sample: bool = False, generator: torch.Generator | None = None
    ) -> list[torch.Tensor]:
        """Posterior features (T+1, F) of whole episodes under the current model (batched by length):
        posterior means, or (``sample``) the posterior filtered on its own samples, drawn from
        ``generator``."""
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
                    generator=generator,
                    sample=sample,
                    members=torch.zeros(T1, dtype=torch.long, device=self.device),
                )
                feat = rssm.feat(post)
                for k, i in enumerate(group):
                    out[i] = feat[k]
        return out

    def _add_real(self, i: int, feat: torch.Tensor) -> tuple[int, int]:
        ep, feat = self.episodes[i], feat.cpu().numpy()
        return self.real.add(
            obs=feat[:-1],
            action=ep["action"],
            reward=ep["reward"],
            next_obs=feat[1:],
            discount=1.0 - ep["terminal"].astype(np.float32),
        )

    def _fill_real(self, k: int) -> None:
        """reencode = "episode": the real buffer anew, episodes ``pass_first`` .. ``encoded`` encoded by the
        current model with pass k's draws; episodes left with no stored row are dropped."""
        self.real.clear()
        kept = list(range(self.pass_first, self.encoded))
        feats = self.encode_episodes(
            [self.episodes[i] for i in kept], self.config.sample_posterior, self._encode_gen(k)
        )
        for i, feat in zip(kept, feats):
            _, end = self._add_real(i, feat)
            if not self.real.live(end - 1):  # evicted by newer rows (FIFO): the oldest episodes
                self.episodes[i] = None
                self.drift_ref.pop(i, None)

    def _refresh_real(self) -> None:
        """Episodes not yet encoded go into the real buffer: with reencode = "episode" every kept episode
        is encoded again by the current model (a new pass), with "never" only the new ones."""
        c = self.config
        if self.encoded == len(self.episodes):
            return
        pending = range(self.encoded, len(self.episodes))  # the new episodes
        self.encoded, k = len(self.episodes), self.encodes
        self.encodes += 1
        if c.reencode == "episode":
            self.pass_first = next(i for i, ep in enumerate(self.episodes) if ep is not None)
            self._fill_real(k)
            self.encoded_at = self.model_steps
            self.encoded_by = {n: v.detach().clone() for n, v in self.wm.state_dict().items()}
            refs = range(min(c.drift_episodes, self.encoded))
        else:
            feats = self.encode_episodes(
                [self.episodes[i] for i in pending], c.sample_posterior, self._encode_gen(k)
            )
            for i, feat in zip(pending, feats):
                self._add_real(i, feat)
            refs = [i for i in pending if i < c.drift_episodes]
            for i in pending:
                if i >= c.drift_episodes:
                    self.episodes[i] = None  # its frames are in the protocol's store; we need no copy
        refs = [i for i in refs if self.episodes[i] is not None]
        for i, feat in zip(refs, self.encode_episodes([self.episodes[i] for i in refs])):
            self.drift_ref[i] = feat.cpu().numpy()

    @torch.no_grad()
    def latent_drift(self) -> torch.Tensor | None:
        """Mean ||s_then - s_now||_2 over the frames of the drift episodes (the first ``drift_episodes``):
        their posterior-mean features when last encoded into the real buffer against the current model's.
        0 while the model is unchanged (also with sampled posteriors in the buffer)."""
        live = [i for i in sorted(self.drift_ref) if self.episodes[i] is not None]
        if not live:
            return None
        now = self.encode_episodes([self.episodes[i] for i in live])
        dist = [
            (torch.as_tensor(self.drift_ref[i], device=self.device) - f).norm(dim=-1)
            for i, f in zip(live, now)
        ]
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
    def model_trains(self) -> bool:
        """Whether the next update takes a world-model step: during the warm-up, in the online phase, and
        offline only without ``freeze_offline`` (LOMPO's code trains the agent on a frozen model)."""
        c = self.config
        return self.updates < c.model_warmup or self.phase == "online" or not c.freeze_offline

    def update(self, batches) -> dict:
        if self.model_trains():
            self.model_steps += 1
            return super().update(batches)  # train_step (captured as a CUDA graph), then after_step
        self.updates += 1  # the model frozen: no model step; the batch's posterior only for rollouts
        return self._agent_update({}, lambda: self._posterior(batches))

    def step_inputs(self, batches) -> dict:
        keys = ("image", "action", "reward", "is_first", "is_terminal")
        return batch_to_device(batches["model"], self.device, keys=keys)

    def train_step(self, b: dict) -> dict:
        """The world model's step (the part a CUDA graph captures); the rest is ``after_step``."""
        wm_loss, metrics, post = self.wm.loss(b, self.gen)
        metrics["model_grad_norm"] = self.wm_opt.step(wm_loss)
        return {"metrics": metrics, "post": post}

    @torch.no_grad()
    def _posterior(self, batches) -> dict:
        """The sampled posterior states of a model batch (as ``wm.loss`` filters them), no model step."""
        b = self.step_inputs(batches)
        post, _ = self.wm.rssm.observe(
            self.wm.encode(b["image"]), b["action"].float(), b["is_first"], generator=self.gen
        )
        return post

    def after_step(self, outputs: dict) -> dict:
        return self._agent_update(outputs["metrics"], lambda: outputs["post"])

    def _agent_update(self, metrics: dict, posterior) -> dict:
        """The real buffer brought up to date, rollouts into the model buffer (from ``posterior()``), then
        the latent SAC (host-side buffers: never captured)."""
        c = self.config
        if self.updates <= c.model_warmup:
            return metrics
        agent_step = self.updates - c.model_warmup - 1  # 0 at the first agent update
        fresh = self.encoded < len(self.episodes)
        if c.drift_every and (fresh or agent_step % c.drift_every == 0):
            drift = self.latent_drift()  # before a new pass: how far the stored latents have drifted
            if drift is not None:
                metrics["latent_drift"] = drift
        self._refresh_real()
        if agent_step % c.rollout_every == 0 or len(self.model) == 0:
            metrics.update(self._generate(posterior()))
        batch = mixed_batch(self.real, self.model, c.agent_batch, c.real_fraction, self.cpu_gen)
        tb = {k: torch.as_tensor(v, device=self.device) for k, v in batch.items()}
        metrics.update(self.sac.update(tb, self.gen, c.cql_alpha, c.cql_samples))
        metrics["real_rows"] = torch.tensor(float(len(self.real)))
        metrics["model_rows"] = torch.tensor(float(len(self.model)))
        return metrics

    # -- acting -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs, state, explore: bool):
        # LOMPO's policy filters with sampled posteriors, evaluation included (only the noise is off)
        latent = self.wm.observe_step(obs, state, self.device, self.gen, sample=self.config.sample_posterior)
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
        changed = self.model_steps != self.encoded_at  # the real latents' model is not the current one
        return {
            "sac_opt": self.sac.opt_state(),
            "committed": dict(self.committed),
            "encoded": self.encoded,
            "encodes": self.encodes,
            "pass_first": self.pass_first,
            "model_steps": self.model_steps,
            "encoded_at": self.encoded_at,
            "encoded_by": self.encoded_by if changed and self.config.reencode == "episode" else None,
            "drift_ref": dict(self.drift_ref),
        }

    def _load_extra_state(self, d: dict) -> None:
        self.sac.load_opt_state(d["sac_opt"])
        self.committed = dict(d["committed"])
        self.encoded, self.encodes, self.pass_first = d["encoded"], d["encodes"], d["pass_first"]
        self.model_steps, self.encoded_at, self.encoded_by = (
            d["model_steps"],
            d["encoded_at"],
            d["encoded_by"],
        )
        self.drift_ref = dict(d["drift_ref"])
        for i in range(min(self.encoded, len(self.episodes))):
            if self.config.reencode == "episode":
                dropped = i < self.pass_first  # evicted before the last pass
            else:
                dropped = i >= self.config.drift_episodes  # encoded once: only the drift episodes are kept
            if dropped:
                self.episodes[i] = None

    def save(self, directory):
        directory = Path(directory)
        if self.config.reencode == "never":  # with "episode" the real buffer is one pass, rebuilt on load
            self.real.save(directory, self.committed["real"])
        self.model.save(directory, self.committed["model"])

    def load(self, directory):
        directory = Path(directory)
        if self.config.reencode == "never":
            self.real.load(directory, self.committed["real"])
        elif self.encodes:  # the last pass again, by the model that made it
            current = {n: v.detach().clone() for n, v in self.wm.state_dict().items()}
            if self.encoded_by is None:  # the model has not changed since the pass
                self.encoded_by = current
            self.wm.load_state_dict(self.encoded_by)
            self._fill_real(self.encodes - 1)
            self.wm.load_state_dict(current)
        self.model.load(directory, self.committed["model"])


register("lompo", LompoConfig, LompoAgent)
