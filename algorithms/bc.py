"""Behaviour cloning from pixels, as the paper's JAXRL2 baseline (Appendix C.4; the authors' fork
khatch31/jaxrl2: ``jaxrl2/agents/pixel_bc/``, ``offline_pixels_config.py:bc``).

Policy: a Gaussian with unit standard deviation whose mean is the network output squashed by tanh
(jaxrl2's UnitStdNormalPolicy, apply_tanh=True), pi(a|s) = N(a; tanh(f(s)), I). Loss (negative
log-likelihood, up to the constant d/2 log 2 pi):

    L(theta) = 1/B sum_i 1/2 ||a_i - mu_theta(aug(s_i))||^2                                    (BC-1)

with aug = random shift (4-pixel edge padding, per sample), Adam at 3e-4 with cosine decay over
the run's updates. Acting: the mean when evaluating (``eval_actions``), a sample mu + N(0, I) when
exploring (``sample_actions``).

Online phase. The fork has no BC fine-tuning: only CQL and IQL have ``*_trainer_episode_tune.py``
scripts (SAC is the CQL one with alpha 0); BC was trained by ``baselines/BC_trainer.py``, offline
only, on the dataset. So by default (``data="offline"``) BC keeps cloning the dataset while the
protocol collects its online episodes: the episodes count as environment steps but are never cloned
(cloning them, ``data="all"``, teaches the policy its own exploration noise and collapses it).
``data="goal"`` is filtered BC: the dataset plus the online episodes that reach the goal.

Diagnostic: at every evaluation, ``diagnostics/action_fit.csv`` (the columns of MOTO's, so the two actors'
fit to the demonstrations can be read side by side): per step t of the first ``diag_episodes``
goal-reaching dataset episodes, the mean over action dimensions of |mu(s_t) - a_t|, s_t the frame stack
ending at frame t (the first frame repeated before the start, as when acting).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from algorithms import FILTERS, RunContext, register
from algorithms.contract import DIAGNOSTICS_COLUMNS
from algorithms.nets.jax_learner import (
    JaxLearner,
    MeanHead,
    PixelNet,
    adam,
    decay_steps,
    fold_frames,
    random_shift,
)


@dataclass(frozen=True)
class BCConfig:
    lr: float = 3e-4
    batch_size: int = 256
    framestack: int = 3
    channels: tuple[int, ...] = (32, 64, 128, 256)
    latent: int = 50
    hidden: tuple[int, ...] = (256, 256)
    augment_pad: int = 4
    cosine_decay_steps: int = 0  # 0: the task's paper-profile total updates (jaxrl2's decay_steps = its run's
    # total; a shortened profile keeps that horizon, RunContext.schedule_updates); <0: constant lr
    tanh_mean: bool = True  # jaxrl2's UnitStdNormalPolicy default
    data: str = (
        "offline"  # which episodes to clone: offline (the fork: no BC fine-tuning) / all / goal (filtered BC)
    )

    diag_episodes: int = 4  # goal-reaching dataset episodes for action_fit.csv (0: none written)

    CHOICES = {"data": FILTERS}

    PROFILES = {
        "cpu": dict(batch_size=64, channels=(16, 32, 32, 32)),
        "smoke": dict(batch_size=8, channels=(4, 4, 4, 4), latent=8, hidden=(16, 16)),
    }


def bc_loss(mean: jnp.ndarray, actions: jnp.ndarray) -> jnp.ndarray:
    """(BC-1): -log N(a; mean, I) averaged over the batch, without the constant d/2 log(2 pi)."""
    return 0.5 * jnp.mean(jnp.sum((actions - mean) ** 2, axis=-1))


class BCAgent(JaxLearner):
    request_name = "bc"
    batch_keys = ("frames", "action")

    def __init__(self, config: BCConfig, context: RunContext):
        self._setup(config, context, data_filter=config.data)
        self.net = PixelNet(
            MeanHead(config.hidden, context.action_dim, config.tanh_mean), config.channels, config.latent
        )
        params = self.init_net(self.net, 1)
        self.tx = adam(config.lr, decay_steps(config, context))
        self.state = {"params": params, "opt": self.tx.init(params), "key": self.key}
        self.diag_episodes: list[dict] = []
        self.updates = 0  # counted here for the diagnostics' grad_step (the jitted state has no counter)

    def update(self, batches):
        self.updates += 1
        return super().update(batches)

    def state_dict(self):
        return {**super().state_dict(), "updates": np.int64(self.updates)}

    def load_state_dict(self, d):
        d = dict(d)
        self.updates = int(d.pop("updates", 0))
        super().load_state_dict(d)

    def _update_fn(self, state, b):
        key, aug_key = jax.random.split(state["key"])
        obs = fold_frames(b["frames"][:, :-1])  # frames t-k+1..t (the last one is next_obs's)
        if self.config.augment_pad:
            obs = random_shift(aug_key, obs, self.config.augment_pad)
        loss, grads = jax.value_and_grad(lambda p: bc_loss(self.net.apply(p, obs), b["action"]))(
            state["params"]
        )
        params, opt = self.apply_gradients(self.tx, state["params"], state["opt"], grads)
        return {"params": params, "opt": opt, "key": key}, {"bc_loss": loss}

    def _act_fn(self, state, obs, key, explore):
        mean = self.net.apply(state["params"], fold_frames(obs))
        return mean + jax.random.normal(key, mean.shape) if explore else mean

    # -- diagnostics --------------------------------------------------------------------------------
    def on_episode(self, episode, online):
        goal = self.context.reaches_goal or (lambda ep: bool(np.any(ep["success"])))
        if not online and len(self.diag_episodes) < self.config.diag_episodes and goal(episode):
            self.diag_episodes.append(episode)

    def action_fit(self) -> list[dict]:
        """Rows (episode, t, action_error) over the kept demonstrations (see the module docstring)."""
        k, rows = self.config.framestack, []
        for e, ep in enumerate(self.diag_episodes):
            frames = np.asarray(ep["image"])
            T = len(ep["action"])
            idx = np.maximum(np.arange(T)[:, None] + np.arange(-k + 1, 1)[None], 0)  # (T, k) stacks
            mean = np.asarray(self._act(self.state, frames[idx], None, False))
            err = np.abs(mean - np.asarray(ep["action"], np.float32)).mean(-1)
            rows += [{"episode": e, "t": t, "action_error": float(x)} for t, x in enumerate(err)]
        return rows

    def on_eval(self, episodes, eval_episodes=()):
        run_dir = self.context.run_dir
        if run_dir is None or not self.diag_episodes:
            return
        path = run_dir / "diagnostics" / "action_fit.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        columns = DIAGNOSTICS_COLUMNS["action_fit.csv"]
        new = not path.exists()
        with open(path, "a", newline="") as f:  # appended, a header once
            w = csv.DictWriter(f, fieldnames=columns)
            if new:
                w.writeheader()
            phase = "offline" if episodes == 0 else "online"
            w.writerows({"grad_step": self.updates, "phase": phase, **r} for r in self.action_fit())


register("bc", BCConfig, BCAgent)
