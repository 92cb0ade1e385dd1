"""DreamerV2 (Hafner et al., 2021) offline-to-online: the paper's first world-model baseline (SPEC section 4).

World model: ``algorithms/nets/world_model.py`` (one prior head). Per update, on a batch of 16 x 50 sequences:

1. World model: minimise the ELBO (reconstruction + reward + balanced KL), Adam 1e-4.
2. Imagination: from every posterior state s_0 of the batch (B x L starts), roll the actor H = 15 steps
   in the model: a_t ~ pi(. | sg(s_t)), s_{t+1} ~ p(. | s_t, a_t), r_{t+1} = rew(s_{t+1}).
3. Targets from the slow critic v' (copied from v every 100 updates), gamma = 0.99, lambda = 0.95:
       R_t = r_{t+1} + gamma c_{t+1} ((1 - lambda) v'(s_{t+1}) + lambda R_{t+1}),   R_H = v'(s_H)
4. Actor (continuous actions: dynamics backpropagation through the frozen model, entropy bonus eta):
       L_actor = -mean_t w_t (R_t + eta H[pi(. | s_t)]),   w_t = prod_{k<t} gamma c_k   (stop-gradient)
5. Critic: L_critic = mean_t w_t 1/2 (v(sg(s_t)) - sg(R_t))^2.

Deviation from DreamerV2's code, kept because MOTO's value expansion (SPEC section 3) uses it: the
target of state t uses the reward of the state it leads to, r_{t+1} (DreamerV2 adds rew(s_t)).
Acting filters the posterior with the previous action and samples the actor (``explore``) or takes
its mode; the latent and previous action travel in ``state``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from algorithms import RunContext, Sequences, register, register_variant
from algorithms.nets.torch_parts import Actor, batch_to_device, frozen, lambda_return, mlp
from algorithms.nets.world_model import WorldModelConfig
from algorithms.nets.world_model_agent import WorldModelAgent

_SMALL = dict(
    deter=16,
    hidden=16,
    stoch=4,
    classes=4,
    enc_channels=(4, 4, 4, 4),
    enc_mlp=(16,),
    dec_mlp=(16,),
    dec_in=16,
    dec_channels=(4, 4, 4, 3),
    reward_mlp=(16,),
    discount_mlp=(16,),
)


@dataclass(frozen=True)
class DreamerV2Config(WorldModelConfig):
    """World-model fields (inherited) plus the actor-critic's. Defaults: DreamerV2's base config with
    the MOTO appendix's values (actor and critic lr 8e-5; the baseline uses MOTO's hyperparameters)."""

    actor_mlp: tuple[int, ...] = (400, 400, 400, 400)
    critic_mlp: tuple[int, ...] = (400, 400, 400, 400)
    actor_lr: float = 8e-5
    critic_lr: float = 8e-5
    actor_min_std: float = 0.1
    actor_init_std: float = 0.0
    actor_ent: float = 2e-3  # entropy bonus eta (dmc_vision: 1e-4)
    horizon: int = 15
    discount: float = 0.99
    lam: float = 0.95
    slow_target_every: int = 100
    prioritize_ends: bool = True  # DreamerV2's replay oversamples episode ends (dmc_vision: False)
    # Diagnostics written into the run directory (0 turns them off)
    diag_every_evals: int = 1  # write them at every n-th evaluation (on_eval)
    diag_episodes: int = 4  # dataset episodes used for them
    diag_context: int = 5  # frames observed before the open-loop prediction

    PROFILES = {
        # ~1 s per update on a shared two-core CPU (1 thread): a MetaWorld cpu-profile run in ~20 minutes
        "cpu": dict(
            deter=96,
            hidden=96,
            stoch=16,
            classes=16,
            enc_channels=(8, 16, 32, 64),
            enc_mlp=(128, 128),
            dec_mlp=(128, 128),
            dec_in=128,
            dec_channels=(32, 16, 8, 3),
            reward_mlp=(128, 128),
            discount_mlp=(128, 128),
            actor_mlp=(128, 128),
            critic_mlp=(128, 128),
            batch=6,
            length=32,
            horizon=10,
            model_lr=3e-4,
        ),
        "smoke": dict(
            _SMALL,
            actor_mlp=(16,),
            critic_mlp=(16,),
            batch=2,
            length=5,
            horizon=3,
            diag_episodes=2,
            diag_context=2,
        ),
    }


class DreamerV2Agent(WorldModelAgent):
    """The world model (``WorldModelAgent``), an actor and a critic v(s) with its slow copy."""

    def __init__(self, config: DreamerV2Config, context: RunContext):
        super().__init__(config, context)
        self.requests = {
            "model": Sequences(config.batch, config.length, prioritize_ends=config.prioritize_ends)
        }
        self.evals = 0
        self.diag_episodes: list[dict] = []
        self.data_max_reward: float | None = None  # the largest step reward of the dataset (Fig. 4's bar)

    def build_heads(self, feat_dim: int) -> None:
        """The actor, the critic v and its slow copy v' (steps 3-5 above)."""
        c = self.config
        self.actor = self.make_actor(feat_dim)
        self.critic = mlp(feat_dim, c.critic_mlp, 1, c.act).to(self.device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)

    def make_actor(self, feat_dim: int) -> Actor:
        """DreamerV2's continuous actor: a truncated normal on [-1, 1]."""
        c = self.config
        return Actor(
            feat_dim, self.context.action_dim, c.actor_mlp, c.act, c.actor_min_std, c.actor_init_std
        ).to(self.device)

    def build_optimisers(self) -> None:
        self.actor_opt = self.optimiser(self.actor, self.config.actor_lr)
        self.critic_opt = self.optimiser(self.critic, self.config.critic_lr)

    # -- training ---------------------------------------------------------------------------------
    def step_inputs(self, batches) -> dict:
        keys = ("image", "action", "reward", "is_first", "is_terminal")
        return batch_to_device(batches["model"], self.device, keys=keys)

    def before_step(self) -> None:
        if self.updates % self.config.slow_target_every == 0:  # DreamerV2: copy at update 0, 100, 200, ...
            self.target_critic.load_state_dict(self.critic.state_dict())

    def train_step(self, b: dict) -> dict:
        """Steps 1-5 above on one batch of sequences."""
        with self._autocast():
            wm_loss, metrics, post = self.wm.loss(b, self.gen)
        metrics["model_grad_norm"] = self.wm_opt.step(wm_loss)
        start = {k: v.detach().flatten(0, 1) for k, v in post.items()}
        metrics.update(self.train_behavior(start, b["is_terminal"].flatten()))
        return metrics

    def _policy(self, entropies: list):
        """The actor as imagination's policy: a reparameterised sample a_t ~ pi(. | s_t), whose entropy
        is appended to ``entropies``."""

        def policy(feat):
            dist = self.actor(feat)
            entropies.append(dist.entropy())
            return dist.rsample(self.gen)

        return policy

    def train_behavior(self, start: dict, is_terminal: torch.Tensor) -> dict:
        c = self.config
        entropies: list = []
        with frozen(self.wm), self._autocast():
            seq = self.wm.rssm.imagine(self._policy(entropies), start, c.horizon, self.gen)
            feat = seq["feat"]  # (H+1, N, F)
            reward = self.wm.predict_reward(feat[1:])  # r_{t+1}
            cont = self.wm.continuation(feat)
            cont = torch.cat([(1.0 - is_terminal.float())[None], cont[1:]])
            disc = c.discount * cont
            value = self.target_critic(feat).squeeze(-1).float()
            returns = lambda_return(reward, value, disc[1:], c.lam)  # (H, N)
            weight = torch.cumprod(torch.cat([torch.ones_like(disc[:1]), disc[:-1]]), 0).detach()[:-1]
            ent = torch.stack(entropies)  # (H, N): the policy at states 0..H-1
            actor_loss = -(weight * (returns + c.actor_ent * ent)).mean()
        actor_norm = self.actor_opt.step(actor_loss)
        with self._autocast():
            v = self.critic(feat[:-1].detach()).squeeze(-1).float()
            critic_loss = (weight * 0.5 * (v - returns.detach()) ** 2).mean()
        critic_norm = self.critic_opt.step(critic_loss)
        return {
            "actor_loss": actor_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "actor_ent": ent.mean().detach(),
            "imag_reward": reward.mean().detach(),
            "critic_value": v.mean().detach(),
            "actor_grad_norm": actor_norm,
            "critic_grad_norm": critic_norm,
        }

    # -- acting -----------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs, state, explore: bool):
        with self._autocast():
            latent = self.wm.observe_step(obs, state, self.device, self.gen)
            dist = self.actor(self.wm.rssm.feat(latent))
        action = dist.rsample(self.gen) if explore else dist.mode()
        latent = {k: v.float() for k, v in latent.items()}
        return action[0].cpu().numpy().astype(np.float32), (latent, action.float())

    # -- hooks: diagnostics ---------------------------------------------------------------------------
    def on_episode(self, episode, online):
        if online:
            return
        if len(self.diag_episodes) < self.config.diag_episodes:
            self.diag_episodes.append(episode)  # the first dataset episodes (views into the store)
        if len(episode["reward"]):
            top = float(np.max(episode["reward"]))
            self.data_max_reward = top if self.data_max_reward is None else max(self.data_max_reward, top)

    def on_eval(self, episodes, eval_episodes=()):
        """After each evaluation (every ``diag_every_evals``-th): ``write_diagnostics``."""
        every = self.config.diag_every_evals
        if every:
            self.evals += 1
            if (self.evals - 1) % every == 0:
                self.write_diagnostics("offline" if episodes == 0 else "online", eval_episodes=eval_episodes)

    def write_diagnostics(self, phase: str, run_dir=None, eval_episodes=()) -> dict:
        """Reward predictions, reconstructions, the actor's fit and the open-loop GIF of the first dataset
        episodes, and reward predictions along the run's probe episodes (``RunContext.probe_episodes``)
        (``algorithms/diagnostics.py``; ``eval_episodes`` are not used here, MOTO's are)."""
        run_dir = run_dir or self.context.run_dir
        if run_dir is None or not self.diag_episodes:
            return {}
        from algorithms import diagnostics as diag

        return diag.write_run_diagnostics(
            self.wm,
            self.diag_episodes,
            run_dir,
            self.updates,
            phase,
            context=self.config.diag_context,
            seed=self.context.seed,
            actor=self.actor,
            probe_episodes=self.context.probe_episodes,
            data_max_reward=self.data_max_reward,
        )

    # -- state ------------------------------------------------------------------------------------
    def _parts(self) -> dict:
        return {
            "wm": self.wm,
            "actor": self.actor,
            "critic": self.critic,
            "target_critic": self.target_critic,
            "wm_opt": self.wm_opt,
            "actor_opt": self.actor_opt,
            "critic_opt": self.critic_opt,
            "gen": self.gen,
        }

    def _extra_state(self) -> dict:
        return {
            "evals": self.evals,
            "meta": {"obs_shape": tuple(self.context.obs_shape), "action_dim": self.context.action_dim},
        }

    def _load_extra_state(self, d: dict) -> None:
        self.evals = d.get("evals", 0)


register("dreamerv2", DreamerV2Config, DreamerV2Agent)
# DreamerV2's dmc_vision preset (continuous control from pixels): deter/hidden 200, free nats 1,
# entropy 1e-4. Model and critic lr stay the paper's (1e-4, 8e-5).
register_variant(
    "dreamerv2-dmc", "dreamerv2", deter=200, hidden=200, free_nats=1.0, actor_ent=1e-4, prioritize_ends=False
)
