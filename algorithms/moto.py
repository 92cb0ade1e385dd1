"""MOTO (Rafailov et al., arXiv 2401.03306): model-based offline pre-training and online fine-tuning from
pixels -- the paper's own method (Section 4, Appendix B and C.3; SPEC section 3).

World model: the shared RSSM (``algorithms/nets/world_model.py``) with M = 7 prior heads, trained on
sequences of 16 x 50 with the ELBO of Eq. 1 (one uniformly drawn head per time step, ``WorldModel.loss``).
Per update (Algorithm 1, lines 2-6):

Eq. 2  u(s_t, a_t) = disagreement of the M members' priors of z_{t+1} ("std of the logit outputs"; the
       paper gives no reduction, so the measure is ``MOTOConfig.uncertainty``, see ``RSSM.disagreement``);
       the members' statistics come from the same batched matmul that gives the sampled member's prior
       (``RSSM.img_step(return_ensemble=True)``), so the uncertainty is free.        ``uncertainty``
Eq. 3  r^(s_t, a_t, s_{t+1}) = r(s_{t+1}) - alpha u(s_t, a_t),  alpha = 10.          ``penalised_reward``
Eq. 4  from every start state s^0_j (posterior of a real sequence): a^t ~ pi(. | s^t),
       s^{t+1} ~ p(. | s^t, a^t), r^{t+1} = r^(s^t, a^t, s^{t+1}),  t = 0 .. H-1.    ``MOTOAgent.rollout``
Eq. 5  V_0(s^t) = min(Q1(s^t, a^t), Q2(s^t, a^t));
       V_K(s^t) = sum_{k=1..K} gamma^{k-1} r^{t+k} + gamma^K V_0(s^{t+K});           ``value_expansion``
       V(s^t) = (1 - lambda) sum_{k=1..H-t-1} lambda^{k-1} V_k(s^t) + lambda^{H-t-1} V_{H-t}(s^t)
                                                                                     ``lambda_mixture``
Eq. 6  Vhat(s) = lambda V(s) + (1 - lambda) V_0(s);  L_model = -1/(HT) sum_{t<H, j} Vhat(s^t_j),
       differentiated through the critics and the dynamics (both frozen).            ``MOTOAgent.train_agent``
Eq. 7  L^model_Qi = 1/(HT) sum_{t<H, j} (Vbar(s^t_j) - Q_i(s^t_j, a^t_j))^2,  Vbar = Eq. 5 with the target
       critics.                                                                      ``model_critic_loss``
Eq. 8  L^data_Qi = 1/(T-1) sum_j (r_{j+1} + gamma Vhat'(s^0_{j+1}) - Q_i(s^0_j, a_j))^2 on real states,
       real actions and real rewards; Vhat' = Eq. 6's mixture with the target critics.
                                                                                     ``data_critic_loss``
Eq. 9  L_Qi = L^model_Qi + L^data_Qi.
Eq. 10 L_pi = L_model + beta L_reg,  L_reg = -mean log pi(a_t | s_t) over transitions of goal-reaching
       trajectories (filtered BC: MetaWorld success; Kitchen partial the first three objects), beta = 10.
                                                                                     ``bc_loss``
Eq. 12 (diagnostic) eps_u ~= 1/(H (T-H)) sum_{j, t} u(s^t_j, a_{j+t}): H-step model rollouts of expert
       actions from the posterior states of the first T-H steps of expert episodes.  ``expected_uncertainty``

The sequence layout (``algorithms/contract.py``): action[t] is the action *into* frame t and reward[t]
the reward into frame t, so a real transition (s_t, a_t, r_{t+1}, s_{t+1}) pairs the posterior state
of frame t with action[t + 1] and reward[t + 1] (``real_transitions``).

"Agent batch 128" (C.3) is read as the actor-critic's batch of start states: from each of the B model
sequences a window of T = agent_batch // B consecutive posterior states (a random offset per sequence,
drawn from the agent's generator) starts the H-step rollouts -- B x T = 16 x 8 = 128 rollouts, and
T is the T of Eqs. 6-8 (Eq. 8 then uses the T - 1 real transitions inside each window, whose next state's
Vhat' is the first value of the next rollout). With agent_batch >= B x L every posterior state starts a
rollout (T = L, DreamerV2's choice). Filtered BC gets its own goal-filtered request (bc_batch x bc_length
= 4 x 32 = 128 frames, at most 124 transitions), whose posterior states come from the model (no gradient).
Its windows run across episode boundaries (every goal frame equally likely); the pair that crosses one
is masked.

Kept from DreamerV2 ("everything else: DreamerV2 defaults"): the actor's entropy bonus eta (added to
Eq. 6, ``actor_ent``), hard target copies every 100 updates, Adam with eps 1e-5, clipping 100.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from algorithms import RunContext, Sequences, register, register_variant
from algorithms.contract import DIAGNOSTICS_COLUMNS
from algorithms.dreamerv2 import DreamerV2Agent, DreamerV2Config
from algorithms.nets.torch_parts import batch_to_device, frozen, mlp
from algorithms.nets.world_model import UNCERTAINTY_MEASURES


@dataclass(frozen=True)
class MOTOConfig(DreamerV2Config):
    """DreamerV2's fields (the baseline shares MOTO's hyperparameters, C.3) plus MOTO's own. The world
    model's preset is DreamerV2's base config (deter/hidden 1024); ``dmc_vision``'s (200) is
    ``moto-dmc``."""

    ensemble: int = 7  # prior heads M (C.3)
    alpha: float = 10.0  # Eq. 3: uncertainty penalty ("disagreement penalty factor", C.3)
    beta: float = 10.0  # Eq. 10: filtered-BC weight ("filtered behavioral cloning factor", C.3)
    agent_batch: int = 128  # rollout start states per update (C.3; see the module docstring)
    bc_batch: int = 4  # goal-filtered sequences for L_reg ...
    bc_length: int = 32  # ... of this length: 4 x 32 = 128 frames
    bc_cross_episodes: bool = True  # BC windows run on across episode boundaries, so that every goal
    # frame is cloned equally often (inside-episode windows see a demo's first steps ~30x less)
    bc_burn_in: int = 5  # a BC window that starts mid-episode starts its posterior cold: its first frames
    # (until this many, or an episode start inside the window) are filtered without loss
    uncertainty: str = "meandis"  # Eq. 2's measure (RSSM.disagreement): logits | log_probs | probs |
    # sample_log_prob | meandis; chosen by measurement (docs/algorithms/moto.md, "The uncertainty measure")
    prior_action: bool = True  # the prior heads see a_{t-1} too, so members can disagree on unseen actions
    # (random/data ratio of u 1.15 -> 1.62 at the cpu profile; docs/algorithms/moto.md)
    diag_horizon: int = 0  # H of Eq. 12 (0: the imagination horizon)
    # The lineage's open choices (docs/algorithms/moto.md, "Open choices"; prioritize_ends is DreamerV2's)
    critic_target: str = "min"  # V_0 of the critics' targets (Eqs. 7-8) from the target critics: min of
    # the two | random: one of them drawn per update (victorkolev/cmil); the actor's V_0 is always the min
    bc_data: str = "offline_goal"  # filtered BC's episodes: offline_goal = the dataset's goal-reaching
    # episodes only (cmil: a fixed expert set; chosen by the screening, docs/moto-fidelity.md) | goal =
    # every goal-reaching episode, successful online ones included
    penalty_reference: str = "absolute"  # Eq. 3's penalty: absolute = alpha u | data = alpha (u - u_data) |
    # data_hinge = alpha max(0, u - u_data); u_data a running mean of u along the model batch's own actions
    # (the price of leaving the data rather than a tax on every step; zero on the data's actions on average)
    penalty_momentum: float = 0.99  # of the running mean u_data (0: the current batch's mean)

    CHOICES = {
        "uncertainty": UNCERTAINTY_MEASURES,
        "critic_target": ("min", "random"),
        "bc_data": ("offline_goal", "goal"),
        "penalty_reference": ("absolute", "data", "data_hinge"),
    }

    PROFILES = {
        # DreamerV2's cpu sizes (the comparison runs at equal sizes); agent batch stays the paper's 128.
        "cpu": dict(DreamerV2Config.PROFILES["cpu"], bc_batch=2, bc_length=32),
        "smoke": dict(DreamerV2Config.PROFILES["smoke"], agent_batch=6, bc_batch=2, bc_length=4),
    }


# ---------------------------------------------------------------------------------------------------
# The paper's equations, as functions of tensors (tested one by one in tests/test_moto.py)


def uncertainty(
    rssm, stats_all: torch.Tensor, measure: str = "logits", stoch: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 2: u(s_t, a_t) = disagreement of the M members' priors of z_{t+1}, by ``measure``
    (``RSSM.disagreement``); stats_all (M, ..., P), stoch the sampled z_{t+1} (..., Z) -> (...)."""
    return rssm.disagreement(stats_all, measure, stoch)


def penalised_reward(
    reward: torch.Tensor,
    u: torch.Tensor,
    alpha: float,
    reference: str = "absolute",
    u_data: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eq. 3: r^(s_t, a_t, s_{t+1}) = r(s_{t+1}) - alpha u(s_t, a_t) (``absolute``); relative to u's level
    along the data's own actions u_data: - alpha (u - u_data) (``data``) or - alpha max(0, u - u_data)
    (``data_hinge``)."""
    if reference == "absolute":
        return reward - alpha * u
    excess = u - u_data.detach()
    return reward - alpha * (excess if reference == "data" else excess.clamp_min(0.0))


def data_uncertainty(rssm, post: dict, batch: dict, measure: str) -> torch.Tensor:
    """u along the data's own actions: the disagreement of the members' priors of every posterior state
    s_t of a sequence batch given (h_t and) the action into it, the same measure as Eq. 2's u(s_{t-1},
    a_{t-1}) in imagination; the mean over the frames that do not start an episode (no gradient)."""
    with torch.no_grad():
        keep = ~batch["is_first"].bool()
        act = (batch["action"].float() * keep[..., None]).to(post["deter"].dtype)
        if rssm.cfg.member_transition:  # each member's own step from s_{t-1}, a_{t-1} (frames t >= 1)
            prev = {k: post[k][:, :-1].flatten(0, 1) for k in ("deter", "stoch")}
            _, stats = rssm.next_ensemble(prev, act[:, 1:].flatten(0, 1))
            keep = keep[:, 1:]
            u = rssm.disagreement(stats, measure, post["stoch"][:, 1:].flatten(0, 1)).reshape(keep.shape)
        else:  # a shared transition: the members' heads on the posterior's own h_t
            stats = rssm.prior(post["deter"].flatten(0, 1), "all", act.flatten(0, 1))
            u = rssm.disagreement(stats, measure, post["stoch"].flatten(0, 1)).reshape(keep.shape)
        m = keep.float()
        return (m * u).sum() / m.sum().clamp_min(1.0)


def value_expansion(reward: torch.Tensor, v0: torch.Tensor, gamma: float, t: int) -> torch.Tensor:
    """Eq. 5 (left): V_K(s^t) for K = 1 .. H-t, as a (H-t, N) tensor (row K-1).

    reward (H, N): reward[i] = r^{i+1}, the (penalised) reward into state i+1;  v0 (H+1, N): V_0(s^0..s^H).
        V_K(s^t) = sum_{k=1..K} gamma^{k-1} r^{t+k} + gamma^K V_0(s^{t+K})"""
    H = reward.shape[0]
    n = H - t
    powers = gamma ** torch.arange(n + 1, device=reward.device, dtype=reward.dtype)  # gamma^0 .. gamma^n
    partial = torch.cumsum(powers[:n, None] * reward[t:], 0)  # row K-1: sum_{k=1..K} gamma^{k-1} r^{t+k}
    return partial + powers[1:, None] * v0[t + 1 :]


def lambda_mixture(reward: torch.Tensor, v0: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Eq. 5: V(s^t) = (1 - lambda) sum_{k=1..H-t-1} lambda^{k-1} V_k(s^t) + lambda^{H-t-1} V_{H-t}(s^t),
    for t = 0 .. H-1 -> (H, N). (Equal to the recursive TD(lambda) return with bootstrap V_0.)"""
    H = reward.shape[0]
    out = []
    for t in range(H):
        vk = value_expansion(reward, v0, gamma, t)  # (H-t, N)
        w = _mixture_weights(H - t, lam, reward.device, reward.dtype)
        out.append((w[:, None] * vk).sum(0))
    return torch.stack(out)


@functools.lru_cache(maxsize=None)
def _mixture_weights(n: int, lam: float, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Eq. 5's weights of V_1 .. V_n: (1 - lambda) lambda^{k-1} for k < n, lambda^{n-1} for k = n. Made
    once per (n, lambda, device, dtype): built from host numbers inside every update, they would be a
    host-to-device copy per update, which a CUDA graph cannot replay."""
    weights = [(1.0 - lam) * lam ** (k - 1) for k in range(1, n)] + [lam ** (n - 1)]
    return torch.tensor(weights, device=device, dtype=dtype)


def mixed_value(v: torch.Tensor, v0: torch.Tensor, lam: float) -> torch.Tensor:
    """Eq. 6 (prelude): Vhat(s) = lambda V(s) + (1 - lambda) V_0(s)."""
    return lam * v + (1.0 - lam) * v0


def model_critic_loss(q: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Eq. 7: sum over critics i of 1/(HT) sum_{t, j} (Vbar(s^t_j) - Q_i(s^t_j, a^t_j))^2; q: [(H, N)]."""
    return sum(((target - qi) ** 2).mean() for qi in q)


def real_transitions(feat: torch.Tensor, batch: dict, offset: torch.Tensor, T: int) -> dict:
    """The real transitions inside each window of T frames starting at ``offset`` (B,) of a sequence
    batch: state s_j = posterior of frame o+j, action a_j = action[o+j+1] (the action *into* frame
    o+j+1 is the one taken at o+j), reward r_{j+1} = reward[o+j+1], discount of frame o+j+1;
    j = 0 .. T-2. ``mask`` is False where frame o+j+1 starts an episode. Returns (B, T-1, ..) tensors."""
    idx = offset[:, None] + torch.arange(T, device=offset.device)[None]  # (B, T) frames of the window

    def take(x, i):
        return torch.take_along_dim(x, i.reshape(*i.shape, *([1] * (x.dim() - 2))), 1)

    nxt = idx[:, 1:]
    return {
        "feat": take(feat, idx[:, :-1]),
        "action": take(batch["action"].float(), nxt),
        "reward": take(batch["reward"].float(), nxt),
        "discount": take(batch["discount"].float(), nxt),
        "mask": ~take(batch["is_first"].bool(), nxt),
    }


def data_critic_loss(
    q: list[torch.Tensor],
    reward: torch.Tensor,
    discount: torch.Tensor,
    vhat_next: torch.Tensor,
    gamma: float,
    mask: torch.Tensor,
) -> torch.Tensor:
    """Eq. 8: sum over critics of 1/(T-1) sum_j (r_{j+1} + gamma Vhat'(s^0_{j+1}) - Q_i(s^0_j, a_j))^2,
    on real rewards and Q at real actions (q: [(B, T-1)]); ``discount`` is 0 after a true terminal."""
    target = (reward + gamma * discount * vhat_next).detach()
    m = mask.float()
    return sum((m * (target - qi) ** 2).sum() / m.sum().clamp_min(1.0) for qi in q)


def bc_loss(actor, feat: torch.Tensor, batch: dict, burn_in: int = 0) -> torch.Tensor:
    """Eq. 10's L_reg: -mean log pi(a_t | s_t) over the transitions (frame t, action[t+1]) of goal-reaching
    episodes (rows whose ``episode_goal`` is False contribute nothing; the request is goal-filtered).
    A window's posterior starts cold at its first frame, so frames t < ``burn_in`` count only from an
    episode start inside the window on (there the posterior is the one the actor sees when acting)."""
    dist = actor(feat[:, :-1].detach())
    logp = dist.log_prob(batch["action"][:, 1:].float())  # (B, L-1)
    first = batch["is_first"].bool()
    t = torch.arange(first.shape[1] - 1, device=first.device)
    warm = (t >= burn_in)[None] | (torch.cummax(first[:, :-1].int(), 1).values > 0)
    m = (batch["episode_goal"][:, 1:].bool() & ~first[:, 1:] & warm).float()
    return -(m * logp).sum() / m.sum().clamp_min(1.0)


# ---------------------------------------------------------------------------------------------------
# The agent


class QCritic(torch.nn.Module):
    """Q(s, a): an MLP on [features, action]."""

    def __init__(self, feat_dim: int, action_dim: int, layers, act):
        super().__init__()
        self.net = mlp(feat_dim + action_dim, tuple(layers), 1, act)

    def forward(self, feat, action):
        return self.net(torch.cat([feat, action.to(feat.dtype)], -1)).squeeze(-1).float()


class MOTOAgent(DreamerV2Agent):
    """DreamerV2's agent (world model, actor, acting, diagnostics) with MOTO's twin Q critics and its
    update: Eqs. 2-10 (``train_agent``) and Eq. 12's diagnostics (``write_diagnostics``)."""

    def __init__(self, config: MOTOConfig, context: RunContext):
        super().__init__(config, context)
        c = config
        if c.beta > 0:  # filtered BC: sequences of goal-reaching episodes only (the store's goal filter)
            self.requests["bc"] = Sequences(
                c.bc_batch, c.bc_length, filter=c.bc_data, cross_episodes=c.bc_cross_episodes
            )
        # u_data: the running mean of u along the data's own actions (penalty_reference); 0-dim tensors
        # updated in place inside the step (no host read)
        self.u_data = torch.zeros((), device=self.device)
        self.u_data_seen = torch.zeros((), device=self.device)
        # diagnostics (Fig. 4, Fig. 6): expert episodes kept from the dataset, online returns since the
        # last one
        self.online_episodes, self.env_steps = 0, 0
        self.recent_returns: list[float] = []
        self.expert_episodes: list[dict] = []
        self.expert_returns: list[float] = []
        self.expert_lengths: list[int] = []
        self.reaches_goal = context.reaches_goal or reaches_success  # which dataset episodes are expert ones
        self.action_repeat = context.action_repeat

    def build_heads(self, feat_dim: int) -> None:
        """DreamerV2's actor; Q1, Q2 (Eq. 5) with their target copies."""
        c = self.config
        self.actor = self.make_actor(feat_dim)
        self.critics = torch.nn.ModuleList(
            [QCritic(feat_dim, self.context.action_dim, c.critic_mlp, c.act) for _ in range(2)]
        ).to(self.device)
        self.target_critics = copy.deepcopy(self.critics).requires_grad_(False)

    def build_optimisers(self) -> None:
        self.actor_opt = self.optimiser(self.actor, self.config.actor_lr)
        self.critic_opt = self.optimiser(self.critics, self.config.critic_lr)

    # -- training ---------------------------------------------------------------------------------
    def step_inputs(self, batches) -> dict:
        keys = ("image", "action", "reward", "discount", "is_first", "is_terminal", "goal")
        inputs = {"model": batch_to_device(batches["model"], self.device, keys=keys)}
        if "bc" in batches:
            keys = ("image", "action", "is_first", "episode_goal")
            inputs["bc"] = batch_to_device(batches["bc"], self.device, keys=keys)
        return inputs

    def before_step(self) -> None:
        if self.updates % self.config.slow_target_every == 0:  # DreamerV2: hard copies at 0, 100, 200, ...
            self.target_critics.load_state_dict(self.critics.state_dict())

    def train_step(self, inputs: dict) -> dict:
        """Algorithm 1, lines 2-6: the world model (Eq. 1), then the actor and critics (Eqs. 2-10)."""
        b = inputs["model"]
        with self._autocast():
            wm_loss, metrics, post = self.wm.loss(b, self.gen)  # Eq. 1
        metrics["model_grad_norm"] = self.wm_opt.step(wm_loss)
        post = {k: v.detach() for k, v in post.items()}
        metrics["data_uncertainty"] = self.update_data_uncertainty(post, b)
        metrics.update(self.train_agent(post, b, inputs.get("bc")))
        return metrics

    def update_data_uncertainty(self, post: dict, batch: dict) -> torch.Tensor:
        """This batch's u along its own actions (``data_uncertainty``), folded into the running mean
        ``self.u_data`` (momentum ``penalty_momentum``; the first batch sets it); returns the batch's."""
        u = data_uncertainty(self.wm.rssm, post, batch, self.config.uncertainty)
        m = self.config.penalty_momentum
        self.u_data.copy_(torch.where(self.u_data_seen > 0, m * self.u_data + (1.0 - m) * u, u))
        self.u_data_seen.fill_(1.0)
        return u

    def start_window(self, B: int, L: int) -> tuple[torch.Tensor, int]:
        """Offsets (B,) and length T of the windows of posterior states that start rollouts (agent batch)."""
        T = min(L, max(2, self.config.agent_batch // B))
        if T >= L:
            return torch.zeros(B, dtype=torch.long, device=self.device), L
        offset = torch.randint(0, L - T + 1, (B,), generator=self.gen, device=self.device)
        return offset, T

    def rollout(self, start: dict, horizon: int, alpha: float) -> dict:
        """Eq. 4 with Eq. 3's rewards: time-first feat (H+1, N, F), action (H+1, N, A) with action[t] = a^t
        taken *at* state t (a^H for V_0(s^H)), reward (H, N) r^{t+1} penalised, uncertainty (H, N)
        u(s^t, a^t), entropy (H, N) of pi(. | s^t). Gradients flow through actions and dynamics."""
        entropies: list = []
        rssm = self.wm.rssm
        seq = rssm.imagine(self._policy(entropies), start, horizon, self.gen, return_ensemble=True)
        feat = seq["feat"]
        last_action = self.actor(feat[-1].detach()).rsample(self.gen)  # a^H ~ pi(. | s^H)
        action = torch.cat([seq["action"][1:], last_action[None].to(seq["action"].dtype)])
        u = uncertainty(
            rssm, seq["ensemble"], self.config.uncertainty, seq["stoch"][1:]
        )  # (H, N): u(s^t, a^t)
        reward = self.wm.predict_reward(feat[1:])  # r(s^{t+1})
        penalty_u = u if alpha else u.detach()  # (no gradient through an unused std)
        c = self.config
        return {
            "feat": feat,
            "action": action,
            "reward": penalised_reward(reward, penalty_u, alpha, c.penalty_reference, self.u_data),
            "model_reward": reward,
            "uncertainty": u,
            "entropy": torch.stack(entropies),
        }

    def _v0(self, critics, feat, action):
        """Eq. 5: V_0 = min(Q1, Q2) and the per-critic values."""
        q = [critic(feat, action) for critic in critics]
        return torch.minimum(q[0], q[1]), q

    def _target_v0(self, feat, action):
        """V_0 of the critics' targets from the target critics: their min, or (``critic_target`` random, as
        cmil) one of the two drawn per update, the same for every state of the batch."""
        v0, q = self._v0(self.target_critics, feat, action)
        if self.config.critic_target == "min":
            return v0
        k = torch.randint(0, len(q), (1,), generator=self.gen, device=self.device)
        return torch.stack(q).index_select(0, k)[0]

    def train_agent(self, post: dict, batch: dict, bc_batch: dict | None) -> dict:
        c = self.config
        B, L = post["deter"].shape[:2]
        offset, T = self.start_window(B, L)
        idx = offset[:, None] + torch.arange(T, device=self.device)[None]
        start = {k: torch.take_along_dim(v, idx.reshape(B, T, 1), 1).flatten(0, 1) for k, v in post.items()}
        metrics = {}
        if "goal" in batch:  # the share of rollout start states at which the goal already holds
            metrics["start_after_goal"] = torch.take_along_dim(batch["goal"].float(), idx, 1).mean()
        # Actor: Eqs. 4-6 and 10, through the frozen critics and dynamics.
        with frozen(self.wm, self.critics), self._autocast():
            roll = self.rollout(start, c.horizon, c.alpha)
            v0, _ = self._v0(self.critics, roll["feat"], roll["action"])  # (H+1, N)
            v = lambda_mixture(roll["reward"], v0, c.discount, c.lam)  # Eq. 5
            vhat = mixed_value(v, v0[:-1], c.lam)  # Eq. 6
            model_loss = -vhat.mean()  # Eq. 6: -1/(HT) sum_{t<H, j} Vhat(s^t_j)
            value_term = model_loss - c.actor_ent * roll["entropy"].mean()
            terms = [value_term]
            if bc_batch is not None:
                with torch.no_grad():  # posterior states of goal-reaching sequences, from the model
                    bc_post, _ = self.wm.rssm.observe(
                        self.wm.encode(bc_batch["image"]),
                        bc_batch["action"].float(),
                        bc_batch["is_first"],
                        generator=self.gen,
                    )
                reg = bc_loss(self.actor, self.wm.rssm.feat(bc_post), bc_batch, c.bc_burn_in)
                terms.append(c.beta * reg)  # Eq. 10: L_pi = L_model + beta L_reg
                metrics["bc_loss"] = reg.detach()
        actor_loss = sum(terms)
        # the terms differentiated apart (one backward pass's cost): which of them steers the actor
        metrics["actor_grad_norm"], norms, cos = self.actor_opt.step_terms(terms)
        metrics["actor_value_grad_norm"] = norms[0]
        if cos is not None:
            metrics["actor_bc_grad_norm"], metrics["actor_grad_cos"] = norms[1], cos
        # Critics: Eqs. 7-9. Targets from the target critics (no gradients).
        feat, action = roll["feat"].detach(), roll["action"].detach()
        reward = roll["reward"].detach()
        with torch.no_grad(), self._autocast():
            tv0 = self._target_v0(feat, action)
            tv = lambda_mixture(reward, tv0, c.discount, c.lam)  # Vbar (Eq. 5, target critics)
            tvhat = mixed_value(tv, tv0[:-1], c.lam)  # Vhat' for Eq. 8
        with self._autocast():
            _, q = self._v0(self.critics, feat[:-1], action[:-1])
            loss_model = model_critic_loss(q, tv)  # Eq. 7
            real = real_transitions(self.wm.rssm.feat(post), batch, offset, T)
            q_real = [critic(real["feat"], real["action"]) for critic in self.critics]
            vhat_next = tvhat[0].reshape(B, T)[:, 1:]  # Vhat'(s^0_{j+1}): the first state of rollout j+1
            loss_data = data_critic_loss(
                q_real, real["reward"], real["discount"], vhat_next, c.discount, real["mask"]
            )  # Eq. 8
            critic_loss = loss_model + loss_data  # Eq. 9
        metrics["critic_grad_norm"] = self.critic_opt.step(critic_loss)
        metrics.update(
            {
                "actor_loss": actor_loss.detach(),
                "actor_model_loss": model_loss.detach(),
                "critic_loss": critic_loss.detach(),
                "critic_model_loss": loss_model.detach(),
                "critic_data_loss": loss_data.detach(),
                "actor_ent": roll["entropy"].mean().detach(),
                "imag_reward": roll["model_reward"].mean().detach(),
                "imag_uncertainty": roll["uncertainty"].mean().detach(),
                # the penalty paid per step, next to imag_reward (alpha u when absolute)
                "imag_penalty": c.alpha * roll["uncertainty"].mean().detach()
                if c.penalty_reference == "absolute"
                else (roll["model_reward"] - roll["reward"]).mean().detach(),
                "q_value": q[0].mean().detach(),
                "q_real": q_real[0].mean().detach(),
            }
        )
        return metrics

    # -- acting: DreamerV2Agent.act (the posterior filtered with the previous action, then the actor)

    # -- hooks: diagnostics -----------------------------------------------------------------------
    def on_episode(self, episode, online):
        if online:  # (on resume these replays are overwritten by load_state_dict)
            self.online_episodes += 1
            self.env_steps += len(episode["action"]) * self.action_repeat
            self.recent_returns.append(float(np.sum(episode["reward"][: self._expert_horizon()])))
            return
        super().on_episode(episode, online)  # the first dataset episodes (``diag_episodes``)
        if self.reaches_goal(episode):  # expert episodes: dataset episodes that reach the task's goal
            self.expert_returns.append(float(np.sum(episode["reward"])))
            self.expert_lengths.append(len(episode["action"]))
            if len(self.expert_episodes) < self.config.diag_episodes:
                self.expert_episodes.append(episode)

    def _expert_horizon(self) -> int | None:
        """Online returns are summed over the expert episodes' median length (MetaWorld demos are 100
        agent steps, online episodes 200), so J(expert) - J(policy) compares equal horizons."""
        return int(np.median(self.expert_lengths)) if self.expert_lengths else None

    def write_diagnostics(self, phase: str, run_dir=None, eval_episodes=()) -> dict:
        """Fig. 4 / A.1 reward predictions (data and policy) of expert episodes (and of the run's probe
        episodes, ``RunContext.probe_episodes``: held-out ones the data never holds) and Eq. 12's expected
        uncertainty into ``<run_dir>/diagnostics/`` (columns: ``algorithms/diagnostics.py``).
        The performance gap J(expert) - J(policy) takes J(policy) from ``eval_episodes`` (the
        evaluation that triggered this), else from the online episodes since the last write."""
        run_dir = run_dir or self.context.run_dir
        episodes = self.expert_episodes or self.diag_episodes
        if run_dir is None or not episodes:
            return {}
        from algorithms import diagnostics as diag

        c = self.config
        paths = diag.write_run_diagnostics(
            self.wm,
            episodes,
            run_dir,
            self.updates,
            phase,
            context=c.diag_context,
            seed=self.context.seed,
            actor=self.actor,
            probe_episodes=self.context.probe_episodes,
            data_max_reward=self.data_max_reward,
        )
        gen = torch.Generator(device=self.device).manual_seed(
            int(np.random.SeedSequence([self.context.seed, self.updates, 12]).generate_state(1)[0])
        )
        by_source = action_uncertainty(self.wm, episodes, c.diag_horizon or c.horizon, gen, self.actor)
        eps_u = by_source["data"].get(c.uncertainty) if self.expert_episodes and by_source else None
        gap, source, returns, success = None, "", [], None
        if eval_episodes:  # J(policy): the evaluation's returns over the expert horizon
            source, success = "eval_episodes", float(np.mean([np.any(e["success"]) for e in eval_episodes]))
            returns = [float(np.sum(e["reward"][: self._expert_horizon()])) for e in eval_episodes]
        elif self.recent_returns:
            source, returns = "online_episodes", list(self.recent_returns)
        if returns and self.expert_returns:
            gap = float(np.mean(self.expert_returns) - np.mean(returns))
        row = {
            "grad_step": self.updates,
            "phase": phase,
            "episodes": self.online_episodes,
            "env_steps": self.env_steps,
            "expected_uncertainty": eps_u,
            "performance_gap": gap,
            "eval_success": success,
            "policy_return_source": source if gap is not None else "",
            "policy_episodes": len(returns),
        }
        path = Path(run_dir) / "diagnostics" / "uncertainty.csv"
        diag.replace_rows(path, diag.UNCERTAINTY_COLUMNS, [row], self.updates, phase)
        by_action = Path(run_dir) / "diagnostics" / "uncertainty_actions.csv"
        diag.replace_rows(
            by_action,
            diag.ACTION_UNCERTAINTY_COLUMNS,
            action_uncertainty_rows(by_source, c.uncertainty, row),
            self.updates,
            phase,
        )
        self.recent_returns = []
        return {**paths, "uncertainty": path, "uncertainty_actions": by_action}

    # -- state ------------------------------------------------------------------------------------
    def _parts(self) -> dict:
        return {
            "wm": self.wm,
            "actor": self.actor,
            "critics": self.critics,
            "target_critics": self.target_critics,
            "wm_opt": self.wm_opt,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "gen": self.gen,
        }

    def _extra_state(self) -> dict:
        return {
            **super()._extra_state(),
            "online_episodes": self.online_episodes,
            "env_steps": self.env_steps,
            "recent_returns": list(self.recent_returns),
            "u_data": self.u_data.clone(),
            "u_data_seen": self.u_data_seen.clone(),
        }

    def _load_extra_state(self, d: dict) -> None:
        super()._load_extra_state(d)
        self.online_episodes, self.env_steps = d["online_episodes"], d["env_steps"]
        self.recent_returns = list(d["recent_returns"])
        if "u_data" in d:  # (older checkpoints: none)
            self.u_data.copy_(d["u_data"])
            self.u_data_seen.copy_(d["u_data_seen"])


def reaches_success(episode: dict) -> bool:
    """The goal rule when the run gives none (``RunContext.reaches_goal``): any step's success flag."""
    return bool(np.any(episode["success"]))


# ---------------------------------------------------------------------------------------------------
# Diagnostics on a model (or a checkpoint)


ACTION_SOURCES = ("data", "random", "policy", "perturbed")
PERTURB_STDS = (0.1, 0.3)  # the noise of the "perturbed" sources: perturbed_0.1, perturbed_0.3


@torch.no_grad()
def action_uncertainty(
    wm,
    episodes: list[dict],
    horizon: int,
    generator: torch.Generator | None = None,
    actor=None,
    sources=ACTION_SOURCES,
    measures=None,
    perturb=PERTURB_STDS,
) -> dict[str, dict[str, float]]:
    """Does u tell the data's actions from others? From the posterior states s_j of frames j = 0 .. T-H-1
    of each episode (T actions), H-step model rollouts under
        data             the episode's own actions a_j .. a_{j+H-1} (Eq. 12's rollouts)
        random           uniform actions in [-1, 1]^A
        policy           the actor's samples a ~ pi(. | s^t) (needs ``actor``)
        perturbed_<std>  source ``perturbed``, one per std in ``perturb``: the actor's sample plus noise
                         N(0, std^2), clipped to [-1, 1] as the env would (needs ``actor``)
    and the mean over every (j, t) of u(s^t_j, a^t_j) by every measure (default: all the latents allow).
    The actor's rollouts of an episode replay one stretch of ``generator`` (the policy is the std 0 case),
    so they differ by the noise alone: std 0 gives the policy's numbers.
    Returns {source: {measure: mean u}}; {} when no episode is longer than H."""
    from algorithms.diagnostics import episode_tensors

    unknown = set(sources) - set(ACTION_SOURCES)
    if unknown:
        raise ValueError(f"unknown action source(s) {sorted(unknown)}; known: {ACTION_SOURCES}")
    rssm = wm.rssm
    if measures is None:
        measures = [m for m in UNCERTAINTY_MEASURES if rssm.discrete or m not in ("log_probs", "probs")]
    noise_std = {}  # the actor's sources, rolled last: their noise std
    if actor is not None and "policy" in sources:
        noise_std["policy"] = 0.0
    if actor is not None and "perturbed" in sources:
        noise_std.update({f"perturbed_{std:g}": float(std) for std in perturb})
    sources = [s for s in sources if s in ("data", "random")] + list(noise_std)
    total = {s: {m: 0.0 for m in measures} for s in sources}
    count = 0
    for ep in episodes:
        T = len(ep["action"])
        n = T - horizon
        if n < 1:
            continue
        b = episode_tensors(wm, ep)  # action[:, t] is the action into frame t
        post, _ = rssm.observe(
            wm.encode(b["image"][:, :n]), b["action"][:, :n], b["is_first"][:, :n], generator=generator
        )
        taken = b["action"][0, 1:]  # taken[t]: the episode's action at frame t
        replay = None  # the generator's state where the actor's first rollout starts
        for source in sources:
            if source in noise_std and generator is not None:
                replay = generator.get_state() if replay is None else replay
                generator.set_state(replay)  # same draws, same count: each ends where the first did
            state = {k: v[0] for k, v in post.items()}  # (n, ..): s_0 .. s_{n-1}
            for t in range(horizon):
                if source == "data":
                    action = taken[t : t + n]
                elif source == "random":
                    action = torch.rand(taken[:n].shape, generator=generator, device=taken.device) * 2 - 1
                else:
                    action = actor(rssm.feat(state)).rsample(generator).to(taken.dtype)
                    noise = torch.randn(action.shape, generator=generator, device=action.device)
                    action = (action + noise_std[source] * noise.to(action.dtype)).clamp(-1, 1)
                state, stats_all = rssm.img_step(state, action, generator, return_ensemble=True)
                for m in measures:
                    total[source][m] += float(uncertainty(rssm, stats_all, m, state["stoch"]).sum())
        count += n * horizon
    return {s: {m: v / count for m, v in by.items()} for s, by in total.items()} if count else {}


def expected_uncertainty(
    wm, episodes: list[dict], horizon: int, generator: torch.Generator | None = None, measure: str = "logits"
) -> float | None:
    """Eq. 12: eps_u ~= E[1/(H (T-H)) sum_{j, t} u(s^t_j, a_{j+t})]. Posterior states s_j of frames
    j = 0 .. T-H-1 of each expert episode (T actions) start H-step rollouts of the expert's actions
    a_j .. a_{j+H-1}; u is Eq. 2 (``measure``) at each step. Mean over every (j, t) of every episode."""
    out = action_uncertainty(wm, episodes, horizon, generator, sources=("data",), measures=(measure,))
    return out["data"][measure] if out else None


def action_uncertainty_rows(by_source: dict, selected: str, base: dict) -> list[dict]:
    """``action_uncertainty``'s result as rows of ``uncertainty_actions.csv``: one per measure, with each
    source's ratio over the data's (``<source>_over_data``; 1.0: the measure cannot tell those actions from
    the data's). The sources are the file's (``DIAGNOSTICS_COLUMNS``); one not measured is left empty."""
    if not by_source:
        return []
    keep = ("grad_step", "phase", "episodes", "env_steps")
    columns = DIAGNOSTICS_COLUMNS["uncertainty_actions.csv"]
    others = [c for c in columns if f"{c}_over_data" in columns]  # policy, random, perturbed_<std>
    rows = []
    for m, data in by_source["data"].items():
        row = {**{k: base[k] for k in keep}, "measure": m, "selected": m == selected, "data": data}
        for s in others:
            v = by_source.get(s, {}).get(m)
            row[s] = v
            row[f"{s}_over_data"] = v / data if v is not None and data > 0 else None
        rows.append(row)
    return rows


def write_checkpoint_diagnostics(
    run_dir, episodes, device: str = "cpu", reaches_goal=None, probe_episodes=()
) -> dict:
    """The diagnostics of a run's final checkpoint (``load_agent``), written into its run directory.
    ``episodes``: the dataset episodes, as ``on_episode`` sees them (e.g. the run's dataset,
    ``benchmark.datasets.format.iter_episodes``); those that reach the goal (``reaches_goal``, the task's
    rule; None: any step's success flag) are the expert episodes; ``probe_episodes``: the run's probe set
    (``benchmark.datasets.probe.load_probe``), for the reward predictions along held-out episodes."""
    from algorithms.diagnostics import load_agent

    agent = load_agent(run_dir, device, reaches_goal=reaches_goal, probe_episodes=probe_episodes)
    for ep in episodes:
        agent.on_episode(ep, False)
    return agent.write_diagnostics("offline" if agent.online_episodes == 0 else "online", run_dir)


register("moto", MOTOConfig, MOTOAgent)
# Ablations (paper Fig. 3 right): each changes exactly one flag of MOTO.
register_variant("moto-no-unc", "moto", alpha=0.0)
register_variant("moto-no-bc", "moto", beta=0.0)
register_variant("moto-no-bc-no-unc", "moto", alpha=0.0, beta=0.0)
# DreamerV2's dmc_vision preset for the world model (SPEC section 3: "make both reachable").
register_variant(
    "moto-dmc", "moto", deter=200, hidden=200, free_nats=1.0, actor_ent=1e-4, prioritize_ends=False
)
