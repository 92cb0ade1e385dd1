"""Soft actor-critic from pixels, as the MOTO authors ran it in their jaxrl2 fork (khatch31/jaxrl2).

What ran: the MetaWorld launch scripts (``baselines_finetuning/metaworld/*``) run SAC as the CQL
learner with ``cql_alpha=0`` ("cql0"), config ``offline_pixels_config.py:cql``; so SAC here is that
learner without the conservative term (``algorithms/cql.py`` adds it). Facts read there
(``jaxrl2/agents/pixel_cql/``, ``jaxrl2/agents/cql/*``):

* two Q heads on a critic with its own encoder (``share_encoder=False``); the actor has its own;
  soft target update of the whole critic (encoder included), tau = 0.005;
* target, no entropy backup (``backup_entropy=False``), min over the target heads:

      y = r + gamma * m * min_i Qbar_i(s', a'),   a' ~ pi(.|s')                         (SAC-1)

  with m the bootstrap mask (see ``last_is_terminal``);
* critic loss, mean over heads and batch (no 1/2):

      L_Q = mean_{i,b} (Q_i(s_b, a_b) - y_b)^2                                         (SAC-2)

* actor loss with the *updated* critic, the *mean* of the two heads, and the current temperature:

      L_pi = mean_b [ alpha * log pi(a_b|s_b) - mean_i Q_i(s_b, a_b) ],  a_b ~ pi(.|s_b)  (SAC-3)

* temperature alpha = exp(log_alpha), learned from alpha = 1 with Adam, target entropy -|A|/2,
  on the entropy estimate of the actor step:

      L_alpha = alpha * (H - H_target),  H = -mean_b log pi(a_b|s_b)                      (SAC-4)

  (so alpha falls while the policy's entropy is above the target);
* tanh-squashed Gaussian policy, log-std clipped to [-20, 2]; acting: tanh(mean) when evaluating,
  a sample when exploring (``sample_actions``, also online);
* random shift (4-pixel edge padding) of obs and next_obs with separate keys, inside the update;
* Adam at 3e-4 for actor, critic and temperature; the actor's learning rate decays with a cosine
  over the paper run's updates (``decay_steps = offline + online gradient steps`` of the task's paper
  profile, ``jax_learner.decay_steps``), the others are constant;
* gamma 0.99, batch 256.

Cost: the actor's forward on obs is computed once (``jax.vjp``) and serves both the CQL samples and
the actor's gradient; the critic encodes obs once for every Q evaluation of its loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from algorithms import RunContext, register
from algorithms.nets.jax_learner import (
    JaxLearner,
    PixelActorCriticConfig,
    PixelNet,
    TanhGaussianHead,
    TwinQ,
    adam,
    bootstrap_mask,
    decay_steps,
    fold_frames,
    soft_update,
    split_frames,
    tanh_gaussian,
    tanh_gaussian_sample,
)


@dataclass(frozen=True)
class SACConfig(PixelActorCriticConfig):
    temp_lr: float = 3e-4
    init_temperature: float = 1.0
    target_entropy: float | None = None  # None: -|A| / 2 (jaxrl2's CQL learner)
    backup_entropy: bool = False
    actor_reduction: str = "mean"  # over the heads in the actor loss (SAC-3), as the fork's cql/actor_updater

    CHOICES = {"actor_reduction": ("min", "mean")}


def reduce_heads(qs: jnp.ndarray, how: str) -> jnp.ndarray:
    if how == "min":
        return qs.min(axis=0)
    if how == "mean":
        return qs.mean(axis=0)
    raise ValueError(f"reduction must be min or mean, got {how!r}")


def td_target(reward, mask, next_q, discount, next_log_prob=None, temperature=0.0):
    """(SAC-1); with ``next_log_prob`` the entropy backup r + gamma m (Q - alpha log pi)."""
    if next_log_prob is not None:
        next_q = next_q - temperature * next_log_prob
    return reward + discount * mask * next_q


def critic_loss(qs: jnp.ndarray, target: jnp.ndarray) -> jnp.ndarray:
    """(SAC-2): qs (heads, B), target (B,)."""
    return jnp.mean((qs - target[None]) ** 2)


def actor_loss(log_prob: jnp.ndarray, q: jnp.ndarray, temperature) -> jnp.ndarray:
    """(SAC-3)."""
    return jnp.mean(temperature * log_prob - q)


def temperature_loss(log_temp, entropy, target_entropy) -> jnp.ndarray:
    """(SAC-4): d/d log_alpha = alpha (H - H_target) > 0 when the entropy is above target: alpha falls."""
    return jnp.exp(log_temp) * (entropy - target_entropy)


class SACAgent(JaxLearner):
    def __init__(self, config: SACConfig, context: RunContext):
        self._setup(config, context)
        A = context.action_dim
        self.target_entropy = -A / 2 if config.target_entropy is None else config.target_entropy
        self.actor = PixelNet(TanhGaussianHead(config.hidden, A), config.channels, config.latent)
        self.critic = PixelNet(TwinQ(config.hidden, 2), config.channels, config.latent)
        actor = self.init_net(self.actor, 1)
        critic = self.init_net(self.critic, 2, jnp.zeros((1, A)))
        log_temp = jnp.log(jnp.asarray(config.init_temperature, jnp.float32))
        self.tx = {
            "actor": adam(config.actor_lr, decay_steps(config, context)),
            "critic": adam(config.critic_lr),
            "temp": adam(config.temp_lr),
        }
        self.state = {
            "actor": actor,
            "critic": critic,
            "target": critic,
            "log_temp": log_temp,
            "actor_opt": self.tx["actor"].init(actor),
            "critic_opt": self.tx["critic"].init(critic),
            "temp_opt": self.tx["temp"].init(log_temp),
            "key": self.key,
        }

    # -- the conservative term: none for SAC (CQL overrides this) --------------------------------
    def conservative(self, critic_params, obs, latent, qs, mean, log_std, key):
        return 0.0, {}

    # -- one update: critic, then actor on the new critic, then temperature ---------------------
    def _update_fn(self, state, b):
        c = self.config
        key, k_aug, k_noise, k_cons = jax.random.split(state["key"], 4)
        obs, nxt = split_frames(k_aug, b["frames"], c.augment_pad)
        mask = bootstrap_mask(b["discount"], b["is_last"], b["online"], c.last_is_terminal)
        temp = jnp.exp(state["log_temp"])

        noise_next, noise_pi = jax.random.normal(
            k_noise, (2, *b["action"].shape)
        )  # one draw for both samples

        # (SAC-1) the target, from the target critic and a fresh action at s'
        next_mean, next_log_std = self.actor.apply(state["actor"], nxt)
        next_action, next_logp = tanh_gaussian(next_mean, next_log_std, noise_next)
        next_q = reduce_heads(self.critic.apply(state["target"], nxt, next_action), c.critic_reduction)
        y = jax.lax.stop_gradient(
            td_target(b["reward"], mask, next_q, c.discount, next_logp if c.backup_entropy else None, temp)
        )

        # The actor's forward pass on obs, once: its outputs feed CQL's samples and the actor loss.
        (mean, log_std), actor_vjp = jax.vjp(lambda p: self.actor.apply(p, obs), state["actor"])

        # (SAC-2) [+ the conservative term]
        def critic_loss_fn(cp):
            z = self.critic.apply(cp, obs, method="encode")
            qs = self.critic.apply(cp, z, b["action"], method="head_only")
            bellman = critic_loss(qs, y)
            extra, info = self.conservative(cp, obs, z, qs, mean, log_std, k_cons)
            return bellman + extra, {"bellman_loss": bellman, "q_data": qs.mean(), **info}

        (loss_q, info_q), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(state["critic"])
        critic, critic_opt = self.apply_gradients(
            self.tx["critic"], state["critic"], state["critic_opt"], grads
        )
        target = soft_update(state["target"], critic, c.tau)

        # (SAC-3) with the updated critic (its latent needs no gradient: only the action does)
        z_new = jax.lax.stop_gradient(self.critic.apply(critic, obs, method="encode"))

        def actor_loss_fn(outputs):
            m, s = outputs
            a, logp = tanh_gaussian(m, s, noise_pi)
            q = reduce_heads(self.critic.apply(critic, z_new, a, method="head_only"), c.actor_reduction)
            return actor_loss(logp, q, temp), -logp.mean()

        (loss_pi, entropy), g_out = jax.value_and_grad(actor_loss_fn, has_aux=True)((mean, log_std))
        (g_actor,) = actor_vjp(g_out)
        actor, actor_opt = self.apply_gradients(self.tx["actor"], state["actor"], state["actor_opt"], g_actor)

        # (SAC-4)
        g_temp = jax.grad(temperature_loss)(state["log_temp"], entropy, self.target_entropy)
        log_temp, temp_opt = self.apply_gradients(
            self.tx["temp"], state["log_temp"], state["temp_opt"], g_temp
        )

        new = {
            "actor": actor,
            "critic": critic,
            "target": target,
            "log_temp": log_temp,
            "actor_opt": actor_opt,
            "critic_opt": critic_opt,
            "temp_opt": temp_opt,
            "key": key,
        }
        metrics = {
            "critic_loss": loss_q,
            "actor_loss": loss_pi,
            "entropy": entropy,
            "temperature": temp,
            **info_q,
        }
        return new, metrics

    def _act_fn(self, state, obs, key, explore):
        mean, log_std = self.actor.apply(state["actor"], fold_frames(obs))
        if explore:  # jaxrl2's sample_actions: a sample of the policy
            return tanh_gaussian_sample(key, mean, log_std)[0]
        return jnp.tanh(mean)  # eval_actions: the mode of the squashed Gaussian


register("sac", SACConfig, SACAgent)
