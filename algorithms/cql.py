"""Conservative Q-learning from pixels, as the MOTO authors ran it (khatch31/jaxrl2,
``jaxrl2/agents/cql/critic_updater.py`` with ``offline_pixels_config.py:cql``).

SAC (``algorithms/sac.py``: targets, actor, temperature, networks, augmentation) plus a conservative
term in the critic loss, alpha = 5 fixed (no Lagrange), no max-Q backup, no entropy backup:

    L_Q = mean_{i,b} (Q_i(s_b, a_b) - y_b)^2 + alpha_cql * L_CQL                              (CQL-1)

    L_CQL = mean_{i,b} [ log sum_{j=1..2n} exp(x_ij(b)) - Q_i(s_b, a_b) ]                     (CQL-2)

with, per Q head i, n = 4 policy actions a_j ~ pi(.|s_b) and n = 4 uniform actions u_j ~ U[-1, 1]^A,
importance-weighted by their proposal densities:

    x_ij = Q_i(s_b, a_j) - log pi(a_j|s_b)          (j = 1..n)
    x_ij = Q_i(s_b, u_j) - log (1/2)^A              (j = n+1..2n)                            (CQL-3)

The policy samples come from the current actor at the (augmented) obs, without a gradient to it.

Encode once: the reference tiles every *image* n times before the critic's CNN (so the CQL term
costs 2n + 1 encoder passes per sample). The encoder's output does not depend on the action, so
here each observation is encoded once and its *latent* repeated for the 2n action evaluations:
equal values and gradients (``encode_once=False`` runs the reference's way; a test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from algorithms import register
from algorithms.nets.jax_learner import tanh_gaussian_sample
from algorithms.sac import SACAgent, SACConfig


@dataclass(frozen=True)
class CQLConfig(SACConfig):
    cql_alpha: float = 5.0
    cql_samples: int = 4  # n policy + n uniform actions per state
    encode_once: bool = True  # False: repeat the images before the CNN, as the reference does


def cql_penalty(q_data, q_pi, log_pi, q_rand, action_dim: int):
    """(CQL-2, CQL-3). q_data (heads, B); q_pi, q_rand (heads, B, n); log_pi (B, n)."""
    log_uniform = action_dim * jnp.log(0.5)
    x = jnp.concatenate([q_pi - log_pi[None], q_rand - log_uniform], axis=-1)
    return jnp.mean(jax.scipy.special.logsumexp(x, axis=-1) - q_data)


class CQLAgent(SACAgent):
    def conservative(self, critic_params, obs, latent, qs, mean, log_std, key):
        c, n = self.config, self.config.cql_samples
        heads, B = qs.shape
        A = mean.shape[-1]
        k_pi, k_rand = jax.random.split(key)
        # n samples per state, laid out b*n + j (the reference's tiling)
        mean, log_std = jax.lax.stop_gradient((jnp.repeat(mean, n, 0), jnp.repeat(log_std, n, 0)))
        a_pi, log_pi = tanh_gaussian_sample(k_pi, mean, log_std)
        a_rand = jax.random.uniform(k_rand, (B * n, A), minval=-1.0, maxval=1.0)
        actions = jnp.concatenate([a_pi, a_rand])  # (2Bn, A): one pass through the heads
        if c.encode_once:
            q = self.critic.apply(
                critic_params, jnp.tile(jnp.repeat(latent, n, 0), (2, 1)), actions, method="head_only"
            )
        else:
            q = self.critic.apply(critic_params, jnp.tile(jnp.repeat(obs, n, 0), (2, 1, 1, 1)), actions)
        q_pi, q_rand = jnp.split(q.reshape(heads, 2, B, n), 2, axis=1)
        penalty = cql_penalty(qs, q_pi[:, 0], log_pi.reshape(B, n), q_rand[:, 0], A)
        return c.cql_alpha * penalty, {"cql_loss": penalty, "q_pi": q_pi.mean(), "q_rand": q_rand.mean()}


register("cql", CQLConfig, CQLAgent)
