"""COMBO (Yu et al., 2021) from pixels as the paper ran it: LOMPO's code with its CQL weight ``alpha``
set (SPEC section 4: alpha = 2.5). Same world model, latent rollouts, latent replay buffer and SAC as
``algorithms/lompo.py``; the only change is the objective:

    rewards: no disagreement penalty (lambda = 0);
    critic:  L_Q + alpha R,  R = mean_s logsumexp_j Q(s, a_j) - mean_{(s, a) real} Q(s, a)
             (``latent_sac.cql_regulariser``: Q pushed down at the batch's states, real and model,
             for 16 uniform actions and the policy's, and pushed up on the real transitions).
"""

from __future__ import annotations

from dataclasses import dataclass

from algorithms import register
from algorithms.lompo import LompoAgent, LompoConfig


@dataclass(frozen=True)
class ComboConfig(LompoConfig):
    lmbd: float = 0.0  # no reward penalty: COMBO's conservatism is the CQL term
    cql_alpha: float = 2.5
    cql_samples: int = 16  # uniform actions per state (LOMPO code: cql_samples), plus one policy action


register("combo", ComboConfig, LompoAgent)
