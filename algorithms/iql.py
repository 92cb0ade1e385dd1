"""Implicit Q-learning from pixels, as the MOTO authors ran it (khatch31/jaxrl2,
``jaxrl2/agents/pixel_iql/`` and ``jaxrl2/agents/iql/*`` with ``offline_pixels_config.py:iql``).

Three networks, each with its own encoder (``share_encoder=False``): twin Q heads Q_1, Q_2 (with a
soft-updated target copy, tau 0.005), a state value V, and a policy. One update, in the fork's order:

    value, on the target critic's min over heads (expectile tau = 0.5, the paper's value):
        L_V = mean_b |tau - 1(u_b < 0)| u_b^2,  u_b = min_i Qbar_i(s_b, a_b) - V(s_b)              (IQL-1)

    actor, advantage-weighted regression with the *updated* V (inverse temperature beta = 3,
    weights clipped at 100), unit-std Gaussian policy without tanh:
        w_b = min(exp(beta (min_i Qbar_i(s_b, a_b) - V(s_b))), 100)
        L_pi = -mean_b w_b log N(a_b; mu(s_b), I)                                                   (IQL-2)

    critic, on the updated V at s':
        y_b = r_b + gamma m_b V(s'_b),   L_Q = mean_{i,b} (Q_i(s_b, a_b) - y_b)^2                 (IQL-3)

    target: Qbar <- tau Q + (1 - tau) Qbar.

Random shift of obs and next_obs with separate keys; Adam at 3e-4 for all three, the actor's with a
cosine decay over the run; gamma 0.99; batch 256. Acting: the mean when evaluating, mean + N(0, I)
when exploring (``sample_actions``). The target critic's values on (s, a) are computed once and
serve both (IQL-1) and (IQL-2); the updated V is evaluated on s and s' in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from algorithms import RunContext, register
from algorithms.nets.jax_learner import (
    JaxLearner,
    MeanHead,
    PixelActorCriticConfig,
    PixelNet,
    TwinQ,
    ValueHead,
    adam,
    bootstrap_mask,
    decay_steps,
    fold_frames,
    gaussian_log_prob,
    soft_update,
    split_frames,
)
from algorithms.sac import critic_loss, reduce_heads


@dataclass(frozen=True)
class IQLConfig(PixelActorCriticConfig):
    value_lr: float = 3e-4
    expectile: float = 0.5  # the paper's (and the fork config's) value; upstream examples use 0.7
    inverse_temperature: float = 3.0  # jaxrl2's A_scaling
    max_weight: float = 100.0


def expectile_loss(diff: jnp.ndarray, expectile: float) -> jnp.ndarray:
    """(IQL-1): weight tau where diff = Q - V > 0 (V below Q), 1 - tau where diff < 0."""
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return jnp.mean(weight * diff**2)


def awr_weights(q, v, inverse_temperature: float, max_weight: float):
    """(IQL-2): exp(beta (Q - V)), clipped at max_weight."""
    return jnp.minimum(jnp.exp(inverse_temperature * (q - v)), max_weight)


def awr_loss(weights, actions, mean):
    """(IQL-2): -mean w log N(a; mu, I)."""
    return -jnp.mean(weights * gaussian_log_prob(actions, mean, jnp.zeros_like(mean)))


class IQLAgent(JaxLearner):
    def __init__(self, config: IQLConfig, context: RunContext):
        self._setup(config, context)
        A = context.action_dim
        self.actor = PixelNet(MeanHead(config.hidden, A, tanh=False), config.channels, config.latent)
        self.critic = PixelNet(TwinQ(config.hidden, 2), config.channels, config.latent)
        self.value = PixelNet(ValueHead(config.hidden), config.channels, config.latent)
        actor = self.init_net(self.actor, 1)
        critic = self.init_net(self.critic, 2, jnp.zeros((1, A)))
        value = self.init_net(self.value, 3)
        self.tx = {
            "actor": adam(config.actor_lr, decay_steps(config, context)),
            "critic": adam(config.critic_lr),
            "value": adam(config.value_lr),
        }
        self.state = {
            "actor": actor,
            "critic": critic,
            "target": critic,
            "value": value,
            "actor_opt": self.tx["actor"].init(actor),
            "critic_opt": self.tx["critic"].init(critic),
            "value_opt": self.tx["value"].init(value),
            "key": self.key,
        }

    def _update_fn(self, state, b):
        c = self.config
        key, k_aug = jax.random.split(state["key"])
        obs, nxt = split_frames(k_aug, b["frames"], c.augment_pad)
        mask = bootstrap_mask(b["discount"], b["is_last"], b["online"], c.last_is_terminal)
        q_target = reduce_heads(self.critic.apply(state["target"], obs, b["action"]), c.critic_reduction)

        # (IQL-1)
        def value_loss_fn(vp):
            return expectile_loss(q_target - self.value.apply(vp, obs), c.expectile)

        loss_v, g = jax.value_and_grad(value_loss_fn)(state["value"])
        value, value_opt = self.apply_gradients(self.tx["value"], state["value"], state["value_opt"], g)
        v_both = self.value.apply(value, jnp.concatenate([obs, nxt]))  # the updated V at s and s'
        v, v_next = jnp.split(v_both, 2)

        # (IQL-2)
        weights = awr_weights(q_target, v, c.inverse_temperature, c.max_weight)
        loss_pi, g_actor = jax.value_and_grad(
            lambda ap: awr_loss(weights, b["action"], self.actor.apply(ap, obs))
        )(state["actor"])
        actor, actor_opt = self.apply_gradients(self.tx["actor"], state["actor"], state["actor_opt"], g_actor)
        actor_step = optax.global_norm(jax.tree_util.tree_map(jnp.subtract, actor, state["actor"]))

        # (IQL-3)
        y = b["reward"] + c.discount * mask * v_next
        loss_q, g = jax.value_and_grad(lambda cp: critic_loss(self.critic.apply(cp, obs, b["action"]), y))(
            state["critic"]
        )
        critic, critic_opt = self.apply_gradients(self.tx["critic"], state["critic"], state["critic_opt"], g)
        target = soft_update(state["target"], critic, c.tau)

        new = {
            "actor": actor,
            "critic": critic,
            "target": target,
            "value": value,
            "actor_opt": actor_opt,
            "critic_opt": critic_opt,
            "value_opt": value_opt,
            "key": key,
        }
        online = b["online"].astype(jnp.float32)
        metrics = {
            "critic_loss": loss_q,
            "value_loss": loss_v,
            "actor_loss": loss_pi,
            "v": v.mean(),
            "adv": (q_target - v).mean(),
            "weight": weights.mean(),
            # what changes at the phase boundary: the actor's parameter step (Adam's effective
            # rate), and the advantage weights on online vs offline samples of the batch
            "actor_step_norm": actor_step,
            "actor_grad_norm": optax.global_norm(g_actor),
            "weight_online": (weights * online).sum() / jnp.maximum(online.sum(), 1.0),
            "weight_offline": (weights * (1 - online)).sum() / jnp.maximum((1 - online).sum(), 1.0),
            "online_share": online.mean(),
        }
        return new, metrics

    def _act_fn(self, state, obs, key, explore):
        mean = self.actor.apply(state["actor"], fold_frames(obs))
        if explore:  # sample_actions: N(mu, I), unclipped here (the protocol clips to the action space)
            return mean + jax.random.normal(key, mean.shape)
        return mean


register("iql", IQLConfig, IQLAgent)
