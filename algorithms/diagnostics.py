"""The diagnostics files world-model agents write into a run directory (their columns: the contract's
``DIAGNOSTICS_COLUMNS``), with the world-model diagnostics that fill most of them, callable on a live model
or on a run's checkpoint (``load_agent``).

    file                                 columns (in order)          written by
    diagnostics/reward_prediction.csv    REWARD_COLUMNS              ``write_run_diagnostics``
    diagnostics/reconstruction.csv       RECON_COLUMNS               ``write_run_diagnostics``
    diagnostics/action_fit.csv           ACTION_FIT_COLUMNS          ``write_run_diagnostics``, given an actor
    gifs/openloop_<grad_step>.gif        --                          ``write_run_diagnostics``
    diagnostics/uncertainty.csv          UNCERTAINTY_COLUMNS         MOTO (``moto.py``: Eq. 12, the gap)
    diagnostics/uncertainty_actions.csv  ACTION_UNCERTAINTY_COLUMNS  MOTO (``moto.py``: u by action source)

Each file has a header line; ``replace_rows`` appends rows, replacing those of the same (grad_step,
phase). The analysis (``benchmark/analysis/diagnostics.py``, which documents what each column means)
reads reward_prediction, uncertainty and uncertainty_actions by the same column lists.

* ``reconstruction``: posterior reconstructions of given (e.g. held-out) episodes, with the training
  losses' per-frame image term 1/2 ||x^ - x||^2 (pixels in [-0.5, 0.5]) and reward term 1/2 (r^ - r)^2.
* ``open_loop_rewards``: the model filters an episode's first ``context`` frames, then predicts
  rewards open-loop under the episode's own actions (source ``data``) or under the actor's mode
  actions (source ``policy``) -- paper Fig. 4 left and App. A.1. On dataset episodes (column
  ``episode_set`` = ``dataset``) and, where the run has a probe set (``RunContext.probe_episodes``:
  held-out episodes, e.g. Kitchen episodes that do all four objects), on those (``probe``).
* ``video_prediction``: the same open-loop prediction for frames: true | predicted | difference
  stacked vertically, episodes side by side (DreamerV2's ``openl`` video), written as a GIF.

* ``action_fit``: the actor on the posterior states of given (e.g. expert) episodes, fed the episode's
  own frames and actions: per step t, the mean absolute difference between the actor's mode action
  and the episode's action at t (how well the policy clones the demos, step by step: an episode's
  first steps are where a latent-space BC term is easiest to under-train).

``write_run_diagnostics`` writes them into a run directory: ``diagnostics/reward_prediction.csv``,
``diagnostics/reconstruction.csv``, ``gifs/openloop_<grad_step>.gif`` and, given an actor,
``diagnostics/action_fit.csv``. Its random draws come from
a generator seeded by (run seed, grad step), never from the agent's: diagnostics do not change
training, and rewriting them at the same step (after a resume) replaces their rows.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import torch

from algorithms.contract import DIAGNOSTICS_COLUMNS
from algorithms.gifs import write_gif

REWARD_COLUMNS = DIAGNOSTICS_COLUMNS["reward_prediction.csv"]
PROBE_KEY = 4  # the probe episodes' draws: SeedSequence([seed, grad_step, PROBE_KEY]), apart from the rest
RECON_COLUMNS = DIAGNOSTICS_COLUMNS["reconstruction.csv"]
ACTION_FIT_COLUMNS = DIAGNOSTICS_COLUMNS["action_fit.csv"]
UNCERTAINTY_COLUMNS = DIAGNOSTICS_COLUMNS["uncertainty.csv"]
ACTION_UNCERTAINTY_COLUMNS = DIAGNOSTICS_COLUMNS["uncertainty_actions.csv"]


def episode_tensors(wm, episode: dict, length: int | None = None) -> dict:
    """A dataset-layout episode (image (T+1, ..), action (T, A), reward (T,)) as one sequence in the
    training layout (action and reward *into* each frame, is_first at frame 0), batch of 1."""
    T = len(episode["action"])
    n = T + 1 if length is None else min(length, T + 1)
    A = episode["action"].shape[1]
    dev = next(wm.parameters()).device
    action = np.concatenate([np.zeros((1, A), np.float32), np.asarray(episode["action"], np.float32)])[:n]
    reward = np.concatenate([[0.0], np.asarray(episode["reward"], np.float32)])[:n]
    is_first = np.zeros(n, bool)
    is_first[0] = True
    return {
        "image": torch.as_tensor(np.asarray(episode["image"][:n]))[None].to(dev),
        "action": torch.as_tensor(action)[None].to(dev),
        "reward": torch.as_tensor(reward, dtype=torch.float32)[None].to(dev),
        "is_first": torch.as_tensor(is_first)[None].to(dev),
    }


def filtered(wm, episode: dict, generator: torch.Generator | None = None) -> tuple[dict, torch.Tensor]:
    """The episode in the training layout (``episode_tensors``) and the features (1, T+1, F) of its
    posterior states, filtered on its own frames and actions."""
    b = episode_tensors(wm, episode)
    post, _ = wm.rssm.observe(wm.encode(b["image"]), b["action"], b["is_first"], generator=generator)
    return b, wm.rssm.feat(post)


@torch.no_grad()
def reconstruction(wm, episodes: list[dict], generator: torch.Generator | None = None) -> list[dict]:
    """Per episode: recon (T+1, H, W, C) uint8, image_loss and reward_loss (means over frames)."""
    out = []
    for ep in episodes:
        b, feat = filtered(wm, ep, generator)
        recon = wm.decode(feat).float()[0]
        target = b["image"][0].float() / 255.0 - 0.5
        image_loss = 0.5 * ((recon - target) ** 2).sum((-3, -2, -1)).mean()
        reward_loss = 0.5 * ((wm.predict_reward(feat)[0] - b["reward"][0]) ** 2).mean()
        out.append(
            {
                "recon": _to_uint8(recon),
                "image_loss": float(image_loss),
                "reward_loss": float(reward_loss),
                "frames": int(recon.shape[0]),
            }
        )
    return out


@torch.no_grad()
def action_fit(wm, actor, episodes: list[dict], generator: torch.Generator | None = None) -> list[dict]:
    """Rows (episode, t, action_error) for t = 0 .. T-1: mean over action dimensions of
    |mode pi(. | s_t) - a_t|, with s_t the posterior of frame t filtered on the episode's own frames and
    actions (a_t: the episode's action at frame t, the action *into* frame t+1)."""
    rows = []
    for e, ep in enumerate(episodes):
        b, feat = filtered(wm, ep, generator)
        mode = actor(feat[0, :-1]).mode().float()  # (T, A): the action at frames 0 .. T-1
        err = (mode - b["action"][0, 1:].float()).abs().mean(-1).cpu().numpy()
        rows += [{"episode": e, "t": t, "action_error": float(x)} for t, x in enumerate(err)]
    return rows


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


@torch.no_grad()
def _open_loop(wm, b: dict, context: int, generator, actor=None):
    """Filter frames 0..context-1, then imagine frames context..n-1. Returns (features of the filtered
    frames (ctx, F), imagined features (n - ctx, F)) for a batch-of-one episode ``b``."""
    rssm = wm.rssm
    n = b["image"].shape[1]
    post, _ = rssm.observe(
        wm.encode(b["image"][:, :context]),
        b["action"][:, :context],
        b["is_first"][:, :context],
        generator=generator,
    )
    start = {k: v[:, -1] for k, v in post.items()}
    actions = iter(b["action"][0, context:])
    if actor is None:
        policy = lambda feat: next(actions)[None]  # noqa: E731  (the episode's own actions)
    else:
        policy = lambda feat: actor(feat).mode()  # noqa: E731
    seq = rssm.imagine(policy, start, n - context, generator)
    return rssm.feat(post)[0], seq["feat"][1:, 0]


@torch.no_grad()
def open_loop_rewards(
    wm, episode: dict, context: int, generator: torch.Generator | None = None, actor=None
) -> list[dict]:
    """Rows (t, true_reward, predicted_reward) for t = context .. T: rewards predicted open-loop after
    observing frames 0..context-1 (t indexes frames; the reward into frame t is episode reward[t-1]).
    With ``actor`` the actor's mode actions replace the episode's (true_reward is then None)."""
    b = episode_tensors(wm, episode)
    _, feat = _open_loop(wm, b, context, generator, actor)
    pred = wm.predict_reward(feat).cpu().numpy()
    true = b["reward"][0, context:].cpu().numpy()
    return [
        {
            "t": context + i,
            "true_reward": None if actor is not None else float(true[i]),
            "predicted_reward": float(pred[i]),
        }
        for i in range(len(pred))
    ]


@torch.no_grad()
def video_prediction(
    wm, episodes: list[dict], context: int = 5, length: int = 50, generator: torch.Generator | None = None
) -> np.ndarray:
    """(T, 3H, N W, C) uint8: rows true | model (reconstruction for the first ``context`` frames,
    open-loop prediction after) | (model - true + 1) / 2; one column per episode."""
    cols = []
    for ep in episodes:
        b = episode_tensors(wm, ep, length)
        ctx_feat, open_feat = _open_loop(wm, b, min(context, b["image"].shape[1] - 1), generator)
        model = wm.decode(torch.cat([ctx_feat, open_feat])).float()
        truth = b["image"][0].float() / 255.0 - 0.5
        error = (model - truth) / 2.0  # (model - true + 1) / 2 in [0, 1] pixels, shifted to [-0.5, 0.5]
        cols.append(torch.cat([truth, model, error], 1))  # (T, 3H, W, C)
    T = min(c.shape[0] for c in cols)
    return _to_uint8(torch.cat([c[:T] for c in cols], 2))


def replace_rows(path: Path, columns: list[str], rows: list[dict], grad_step: int, phase: str) -> None:
    """Append ``rows``, first dropping rows of the same (grad_step, phase) (a rewrite after a resume)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    if path.exists():
        with open(path, newline="") as f:
            kept = [
                r
                for r in csv.DictReader(f)
                if not (r.get("grad_step") == str(grad_step) and r.get("phase") == phase)
            ]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(kept)
        w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    tmp.replace(path)


def write_run_diagnostics(
    wm,
    episodes: list[dict],
    run_dir,
    grad_step: int,
    phase: str,
    context: int = 5,
    seed: int = 0,
    actor=None,
    gif_length: int = 50,
    probe_episodes=(),
    data_max_reward: float | None = None,
) -> dict:
    """Reward predictions (data and policy), reconstruction losses, the open-loop GIF and, given the
    actor, its action fit on ``episodes`` at ``grad_step``; reward predictions also on ``probe_episodes``
    (held-out episodes, rows ``episode_set=probe``; from a generator of their own, so the other numbers
    do not depend on them). ``data_max_reward`` (the training data's largest step reward) goes into every
    reward row. Returns the paths written."""
    run_dir = Path(run_dir)
    dev = next(wm.parameters()).device

    def generator(*key):
        state = np.random.SeedSequence([seed, grad_step, *key]).generate_state(1)[0]
        return torch.Generator(device=dev).manual_seed(int(state))

    gen = generator()
    was_training = wm.training
    wm.eval()
    try:
        rows = []
        sets = (("dataset", episodes, gen), ("probe", probe_episodes, generator(PROBE_KEY)))
        for episode_set, eps, g in sets:
            for e, ep in enumerate(eps):
                base = {
                    "grad_step": grad_step,
                    "phase": phase,
                    "episode": e,
                    "context": context,
                    "episode_set": episode_set,
                    "data_max_reward": data_max_reward,
                }
                rows += [{**base, "source": "data", **r} for r in open_loop_rewards(wm, ep, context, g)]
                if actor is not None:
                    rows += [
                        {**base, "source": "policy", **r}
                        for r in open_loop_rewards(wm, ep, context, g, actor)
                    ]
        reward_path = run_dir / "diagnostics" / "reward_prediction.csv"
        replace_rows(reward_path, REWARD_COLUMNS, rows, grad_step, phase)
        recon = reconstruction(wm, episodes, gen)
        recon_path = run_dir / "diagnostics" / "reconstruction.csv"
        replace_rows(
            recon_path,
            RECON_COLUMNS,
            [
                {
                    "grad_step": grad_step,
                    "phase": phase,
                    "episode": e,
                    "frames": r["frames"],
                    "image_loss": r["image_loss"],
                    "reward_loss": r["reward_loss"],
                }
                for e, r in enumerate(recon)
            ],
            grad_step,
            phase,
        )
        video = video_prediction(wm, episodes, context, gif_length, gen)
        gif = write_gif(run_dir / "gifs" / f"openloop_{grad_step:07d}.gif", video)
        paths = {"reward_prediction": reward_path, "reconstruction": recon_path, "gif": gif}
        if actor is not None:
            paths["action_fit"] = run_dir / "diagnostics" / "action_fit.csv"
            replace_rows(
                paths["action_fit"],
                ACTION_FIT_COLUMNS,
                [{"grad_step": grad_step, "phase": phase, **r} for r in action_fit(wm, actor, episodes, gen)],
                grad_step,
                phase,
            )
    finally:
        wm.train(was_training)
    return paths


def load_agent(run_dir, device: str = "cpu", reaches_goal=None, probe_episodes=()):
    """Rebuild a run's agent from ``config.json`` and ``checkpoint.pkl`` (the analysis' entry point:
    ``load_agent(run).wm`` is the world model). Works for any agent whose ``state_dict`` records
    ``meta = {obs_shape, action_dim}`` (the world-model agents do). The run's context gets the config's
    task and action repeat; ``reaches_goal`` is the task's goal rule (``RunContext.reaches_goal``; the
    files do not hold it; None: any step's success flag); ``probe_episodes``: the run's probe set
    (``benchmark.datasets.probe.load_probe``)."""
    import dataclasses

    import algorithms
    from algorithms.contract import RunContext

    run_dir = Path(run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    with open(run_dir / "checkpoint.pkl", "rb") as f:
        state = pickle.load(f)["agent"]
    entry = algorithms.get(cfg["algo"])
    fields = {f.name: f for f in dataclasses.fields(entry.config_cls)}
    values = {
        k: tuple(v) if isinstance(v, list) else v for k, v in cfg["agent_config"].items() if k in fields
    }
    config = entry.config_cls(**values)
    meta = state["meta"]
    context = RunContext(
        obs_shape=tuple(meta["obs_shape"]),
        action_dim=meta["action_dim"],
        seed=cfg["seed"],
        total_updates=0,
        device=device,
        task=cfg["task"],
        run_dir=None,
        reaches_goal=reaches_goal,
        action_repeat=cfg.get("action_repeat", 1),
        probe_episodes=tuple(probe_episodes),
    )
    agent = entry.make(config, context)
    agent.load_state_dict(state)
    return agent
