"""The agent contract: what the protocol gives an agent and what it expects back.

The protocol (``benchmark/core/protocol.py``) builds an agent once per run with ``make(config, context)``
and then only calls the methods below. Numpy goes in; the framework (JAX, PyTorch) is the agent's
own business; metrics may come back as device scalars.

Data requests
    ``agent.requests`` names one or more batch requests, e.g.::

        {"model": Sequences(batch=16, length=50),
         "critic": Transitions(batch=256, framestack=3),
         "bc": Transitions(batch=256, framestack=3, filter="goal")}

    and ``agent.update(batches)`` receives ``{"model": {...}, "critic": {...}, "bc": {...}}``.
    Filters pick episodes: ``all`` (default), ``offline`` (the dataset), ``online`` (episodes the
    agent collected), ``goal`` (episodes that reach the task's goal: MetaWorld success; Kitchen
    partial, the first three objects at once). ``online_fraction`` (transitions only) draws that
    share of the batch from online episodes and the rest from the dataset (``None``: uniform over
    every transition the filter keeps, as jaxrl2's fine-tuning does).

Transition batch (B samples; frames stored once, stacks built by index)
    frames (B, k+1, H, W, C) uint8   frames t-k+1 .. t+1 of one episode (the first frame repeated
                                     before the episode start)
    obs, next_obs (B, k, H, W, C)    views of ``frames`` (oldest first); fold into channels on
                                     the device (``algorithms.nets.jax_learner.fold_frames``)
    action (B, A) float32            the action executed at t;  reward (B,) float32 its reward
    discount (B,) float32            0 where t+1 is a true terminal, else 1
    terminal, is_last, online, success, goal (B,) bool
                                     t+1 terminal / the episode's last frame / the episode is
                                     online / success at t+1 / the task's goal holds at t+1
    episode_goal (B,) bool           the sample's episode reaches the goal somewhere

Sequence batch (B windows of L consecutive frames inside one episode, Dreamer's layout; with
``cross_episodes=True`` a window may run on into the next episode, which starts where is_first is set)
    image (B, L, H, W, C) uint8;  action (B, L, A): the action *into* each frame (zeros at an
    episode's first frame);  reward (B, L): the reward into each frame (0 at the first);
    discount (B, L) float32;  is_first, is_last, is_terminal, success, goal, episode_goal,
    online (B, L) bool.

Acting
    ``act(obs, state, explore) -> (action, state)``; ``obs`` is (act_stack, H, W, C) uint8, the
    last ``agent.act_stack`` frames, oldest first, built exactly as the training stacks are.
    ``state`` is None at an episode's first step; recurrent agents carry their latent in it.

Hooks (optional)
    ``on_episode(episode, online)``: every offline episode once at the start, every new online
    episode after it is stored (LOMPO/COMBO encode real data into their latent buffer here).
    ``on_phase(phase)``: "offline" at the start, "online" before the first online episode (after a
    resume: the phase the run is in).
    ``on_eval(episodes, eval_episodes)``: after each evaluation (e.g. to write diagnostics or an
    open-loop video into ``context.run_dir``); ``episodes`` is the number of online episodes so
    far, ``eval_episodes`` the evaluation's episodes (dicts as in ``on_episode``: image, action,
    reward, success, terminal).

State
    ``state_dict()`` / ``load_state_dict(d)``: small state, pickled into every checkpoint. It must
    hold every RNG the agent uses (JAX keys; the protocol itself saves and restores numpy's,
    Python's and torch's global generators, CPU and CUDA). Large state goes through optional
    ``save(dir)`` / ``load(dir)``: called with ``<run dir>/agent/`` just before each checkpoint
    and after ``load_state_dict`` on resume; write incrementally (append new chunks), and on load
    trust only what ``state_dict`` says is committed, since a crash can fall between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np

FILTERS = ("all", "offline", "online", "goal", "offline_goal")  # offline_goal: goal-reaching dataset episodes


def _check_filter(kind: str, value: str) -> None:
    if value not in FILTERS:
        raise ValueError(f"{kind}: unknown filter {value!r}; choose one of {', '.join(FILTERS)}")


@dataclass(frozen=True)
class Transitions:
    """Frame-stacked (obs, action, reward, next_obs) samples, uniform over valid transitions."""

    batch: int
    framestack: int = 1
    filter: str = "all"
    online_fraction: float | None = None

    def __post_init__(self):
        _check_filter("Transitions", self.filter)
        if self.batch < 1 or self.framestack < 1:
            raise ValueError(
                f"Transitions needs batch >= 1 and framestack >= 1, got {self.batch}, {self.framestack}"
            )
        if self.online_fraction is not None:
            if not 0.0 <= self.online_fraction <= 1.0:
                raise ValueError(f"online_fraction must lie in [0, 1], got {self.online_fraction}")
            if self.filter in ("offline", "online"):
                raise ValueError(f"online_fraction cannot be combined with filter={self.filter!r}")


@dataclass(frozen=True)
class Sequences:
    """Windows of ``length`` consecutive frames inside one episode, uniform over valid starts.

    ``cross_episodes=True``: windows of the stream of every frame the filter keeps (episodes back to
    back, wrapping round at the end), uniform over all of its frames as starts, so every frame is in
    exactly ``length`` of the possible windows (when ``length`` <= the stream's frames)
    (inside-episode windows see an episode's first and last frames ``length`` times less often than
    its middle). ``is_first`` marks where a new episode begins inside a window; a recurrent model must
    reset there (``RSSM.observe`` does).

    ``prioritize_ends=True``: DreamerV2's replay (``replay.prioritize_ends`` of its default config): an
    episode drawn uniformly among those with ``length`` frames, then a start uniform over its n - L + 1
    windows plus L more draws that all take the last window, so an episode's end is oversampled
    (for a 101-frame episode and L = 50, half the windows are the last one)."""

    batch: int
    length: int
    filter: str = "all"
    cross_episodes: bool = False
    prioritize_ends: bool = False

    def __post_init__(self):
        _check_filter("Sequences", self.filter)
        if self.batch < 1 or self.length < 2:
            raise ValueError(f"Sequences needs batch >= 1 and length >= 2, got {self.batch}, {self.length}")
        if self.cross_episodes and self.prioritize_ends:
            raise ValueError(
                "Sequences: cross_episodes and prioritize_ends exclude each other (one draws windows "
                "along a stream of episodes, the other an episode first)"
            )


Request = Transitions | Sequences


@dataclass(frozen=True)
class RunContext:
    """What an agent is told about its run, once, when it is made."""

    obs_shape: tuple[int, int, int]  # one frame (H, W, C)
    action_dim: int
    seed: int
    total_updates: int  # offline + online gradient updates of the whole run
    schedule_updates: int = 0  # the horizon of learning-rate schedules: the task's paper-profile total of
    # updates, in every profile, so a shortened run keeps the paper's schedule shape (0: total_updates)
    device: str = "cpu"  # "cpu" or "cuda" (resolved from --device auto|cpu|cuda)
    task: str = ""  # e.g. "kitchen/partial"
    domain: str = ""
    goal: str = ""  # the goal rule in words (what the "goal" filter and flags mean)
    reaches_goal: Callable[[dict], bool] | None = None  # the task's goal rule on an episode dict (image,
    # action, reward, success, ...): does the episode reach the goal? None: any step's success flag
    action_repeat: int = 1  # environment steps per agent step (for counting environment steps)
    run_dir: Path | None = None  # for agent-owned files (diagnostics, large state)
    extras: Mapping[str, Any] = field(default_factory=dict)
    probe_episodes: tuple[dict, ...] = ()  # held-out episodes of the task for the model diagnostics only
    # (the dataset's probe set, ``benchmark/datasets/probe.py``; dicts as in ``on_episode``); never trained on


@runtime_checkable
class Agent(Protocol):
    requests: dict[str, Request]
    act_stack: int

    def update(self, batches: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]: ...

    def act(self, obs: np.ndarray, state: Any, explore: bool) -> tuple[np.ndarray, Any]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, d: dict) -> None: ...


def check_agent(agent: Any, name: str) -> None:
    """A clear error when an agent misses part of the contract (instead of a failure mid-run)."""
    missing = [
        m
        for m in ("requests", "act_stack", "update", "act", "state_dict", "load_state_dict")
        if not hasattr(agent, m)
    ]
    if missing:
        raise TypeError(f"algorithm {name!r}: its agent lacks {missing} (see algorithms/contract.py)")
    if not isinstance(agent.requests, dict) or not agent.requests:
        raise TypeError(
            f"algorithm {name!r}: agent.requests must be a non-empty dict of Transitions/Sequences"
        )
    for key, req in agent.requests.items():
        if not isinstance(req, (Transitions, Sequences)):
            raise TypeError(
                f"algorithm {name!r}: request {key!r} is {type(req).__name__}, not Transitions or Sequences"
            )
    if not isinstance(agent.act_stack, int) or agent.act_stack < 1:
        raise TypeError(f"algorithm {name!r}: act_stack must be a positive int, got {agent.act_stack!r}")


def check_action(action: Any, action_dim: int, name: str) -> np.ndarray:
    """An agent's ``act()`` output as a numpy array, or a one-line ``TypeError`` naming the algorithm, the
    expected and the received shape (the protocol checks an agent's first action)."""
    try:
        out = np.asarray(action)
    except Exception as exc:
        raise TypeError(
            f"algorithm {name!r}: act() returned a {type(action).__name__} numpy cannot read ({exc}); "
            f"expected a float array of shape ({action_dim},)"
        ) from None
    if out.shape != (action_dim,) or out.dtype.kind != "f" or not np.isfinite(out).all():
        raise TypeError(
            f"algorithm {name!r}: act() returned shape {out.shape}, dtype {out.dtype}"
            f"{'' if out.dtype.kind != 'f' or np.isfinite(out).all() else ', non-finite values'}; expected "
            f"shape ({action_dim},) (RunContext.action_dim), a float dtype, finite values "
            "(algorithms/contract.py)"
        )
    return out


# What an agent may write under ``<run>/diagnostics/``: each file and its columns, in order (a header
# line, then rows; ``algorithms/diagnostics.py`` writes them, ``benchmark/analysis/diagnostics.py`` reads
# them). The one definition of these files' format (plain lists: the analysis reads them without any
# training framework).
DIAGNOSTICS_COLUMNS = {
    "reward_prediction.csv": [
        "grad_step",
        "phase",
        "source",
        "episode",
        "t",
        "context",
        "true_reward",
        "predicted_reward",
        "episode_set",  # dataset | probe (added 2026-12; older files: dataset)
        "data_max_reward",  # the largest step reward in the training data (older files: absent)
    ],
    "reconstruction.csv": ["grad_step", "phase", "episode", "frames", "image_loss", "reward_loss"],
    "action_fit.csv": ["grad_step", "phase", "episode", "t", "action_error"],
    "uncertainty.csv": [
        "grad_step",
        "phase",
        "episodes",
        "env_steps",
        "expected_uncertainty",
        "performance_gap",
        "eval_success",
        "policy_return_source",
        "policy_episodes",
    ],
    "uncertainty_actions.csv": [
        "grad_step",
        "phase",
        "episodes",
        "env_steps",
        "measure",
        "selected",
        "data",
        "policy",
        "random",
        "perturbed_0.1",
        "perturbed_0.3",
        "policy_over_data",
        "random_over_data",
        "perturbed_0.1_over_data",
        "perturbed_0.3_over_data",
    ],
}
