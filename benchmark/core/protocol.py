"""The offline-to-online protocol (paper, Algorithm 1 and Appendix C.1); the only loop that steps
environments during training.

    offline:  N_offline updates on the dataset                       -> evaluate
    online:   repeat { one episode with the current policy -> store -> G updates }
              evaluate every K episodes, checkpoint every C episodes

The agent contract is in ``algorithms/contract.py``. Batches for gradient step s come from an RNG
keyed by (seed, s, request), prefetched in a background thread; every episode (training or
evaluation) starts from a reset seeded by (run seed, episode index); evaluation episode i starts from
the same reset at every evaluation of a run, and of every run with the same seed (common random
numbers: two points of a curve, or two methods, differ by their policies, not by the draw of object
positions). The checkpoint holds the agent
(with its RNGs) and the global numpy / Python / torch generators. So a resumed run replays exactly
what an uninterrupted one does.
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import algorithms
from algorithms.contract import RunContext, check_action
from benchmark.core import rundir
from benchmark.core.console import Progress
from benchmark.core.replay import BatchSampler, EpisodeStore
from benchmark.datasets.format import iter_episodes, load_episode, read_manifest, save_npz
from benchmark.datasets.probe import load_probe, probe_record
from benchmark.tasks import Schedule, TaskSpec


class NonFiniteLoss(RuntimeError):
    pass


def episode_seed(run_seed: int, kind: int, index: int) -> int:
    return int(np.random.SeedSequence([run_seed, kind, index]).generate_state(1)[0])


TRAIN, EVAL = 0, 1


def most_objects(episode: dict) -> int:
    """Kitchen: the most task objects in their goal configuration at once along an episode (0-4; the
    episode succeeds where it is all of them)."""
    return int(np.asarray(episode["objects_done"]).sum(-1).max())


def to_float(value) -> float:
    """A metric as a Python float: numbers, numpy, JAX and torch scalars (on any device)."""
    if hasattr(value, "item"):
        return float(value.item())
    return float(value)


def capture_rngs() -> dict:
    """Global generators an agent may use without owning them: numpy's, Python's, torch's."""
    state = {"numpy": np.random.get_state(), "python": random.getstate()}
    torch = sys.modules.get("torch")
    if torch is not None:
        state["torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["torch_cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rngs(state: dict) -> None:
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    torch = sys.modules.get("torch")
    if torch is not None and "torch" in state:
        torch.set_rng_state(state["torch"])
        if "torch_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["torch_cuda"])


def seed_globals(seed: int) -> None:
    np.random.seed(seed % 2**32)
    random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


@dataclass
class RunSpec:
    """One run: everything that decides what it does. ``benchmark.launch.plan`` makes and checks them;
    ``Runner`` executes one."""

    task: TaskSpec
    algo: str  # a registered name (variants included)
    cfg: Any  # the algorithm's config (None in a dry run's plan, which imports no framework)
    schedule: Schedule
    seed: int
    dataset: Path  # the dataset's folder
    dir: Path  # the run directory
    env_overrides: dict = field(default_factory=dict)  # e.g. {"episode_length": 6} (the smoke profile)
    device: str = "cpu"
    imports: list[str] = field(default_factory=list)  # --import modules, recorded in config.json
    missing_dataset: bool = False  # a dry run plans runs whose dataset is not there yet
    overrides: dict = field(default_factory=dict)  # --set / a sweep's set: {field: value} of this algorithm
    # and {"schedule.FIELD": value} of the schedule (already applied to ``schedule``)


class Runner:
    """One run. The loop's state lives on the object (``self.c``: counters), so a caller can ask for
    a checkpoint or a stop at a safe point (``request_stop``)."""

    def __init__(
        self,
        run: RunSpec,
        *,
        checkpoint_every: int = 10,
        offline_checkpoint_every: int = 1000,
        log_every: int = 100,
        progress: bool = True,
        prefetch: int = 2,
        checkpoint_minutes: float = 10.0,
        live=None,
    ):
        self.spec, self.algo, self.cfg, self.schedule, self.seed = (
            run.task,
            run.algo,
            run.cfg,
            run.schedule,
            run.seed,
        )
        self.dir, self.dataset_path = Path(run.dir), Path(run.dataset)
        self.env_overrides = run.env_overrides or {}
        self.device = run.device
        self.checkpoint_every, self.offline_checkpoint_every = checkpoint_every, offline_checkpoint_every
        self.log_every, self.progress, self.prefetch = log_every, progress, prefetch
        self.checkpoint_minutes = checkpoint_minutes  # also checkpoint when this much wall time has passed
        self.live = (
            live  # optional live view (TensorBoard / W&B / GIFs): .log(row), .gif(frames, episodes), .close()
        )
        self.last_eval_episodes: list[dict] = []
        self.c = {
            "grad_step": 0,
            "env_steps": 0,
            "episodes": 0,
            "offline_evaluated": False,
            "rows": 0,
            "wall_time": 0.0,
        }
        self.stop_reason: str | None = None
        self._action_checked = False  # the agent's first action is checked against the contract

    @property
    def total_updates(self) -> int:
        s = self.schedule
        return s.offline_steps + s.online_episodes * s.updates_per_episode

    @property
    def episode_length(self) -> int:
        return self.env_overrides.get("episode_length", self.spec.episode_length)

    def request_stop(self, reason: str) -> None:
        self.stop_reason = reason

    # -- acting ---------------------------------------------------------------------------------
    def rollout(self, env, agent, explore: bool, reset_seed: int) -> dict:
        k = agent.act_stack
        low, high = env.action_space.low, env.action_space.high
        image, info = env.reset(seed=reset_seed)
        frames = deque([image] * k, maxlen=k)  # the first frame repeats before the start, as in training
        images, actions, executed, rewards, success, objects = [image], [], [], [], [], []
        state, done, terminated = None, False, False
        while not done:
            action, state = agent.act(np.stack(frames), state, explore)
            if not self._action_checked:
                check_action(action, low.shape[0], self.algo)
                self._action_checked = True
            # The env executes the clip; the policy's draw is what the episode stores as its action, as the
            # authors' fork did (clipping a regression target would bias it toward 0).
            action = np.asarray(action, np.float32)
            clipped = np.clip(action, low, high)
            image, reward, terminated, truncated, info = env.step(clipped)
            frames.append(image)
            images.append(image)
            actions.append(action)
            executed.append(clipped)
            rewards.append(reward)
            success.append(info["success"])
            if "objects_done" in info:
                objects.append(info["objects_done"])
            done = terminated or truncated
        ep = {
            "image": np.stack(images),
            "action": np.stack(actions),
            "executed_action": np.stack(executed),
            "reward": np.asarray(rewards, np.float32),
            "success": np.asarray(success, bool),
            "terminal": np.zeros(len(actions), bool),
        }
        ep["terminal"][-1] = terminated
        if objects:
            ep["objects_done"] = np.stack(objects)
        return ep

    def evaluate(self, env, agent) -> dict:
        n, eps = self.schedule.eval_episodes, []
        for i in range(n):
            if getattr(self, "progress_bar", None) is not None:
                self.progress_bar.note(phase=f"eval {i + 1}/{n}")
            eps.append(
                self.rollout(env, agent, False, episode_seed(self.seed, EVAL, i))
            )  # the same i-th reset each time
        self.last_eval_episodes = eps
        row = {
            "eval_success": float(np.mean([e["success"].any() for e in eps])),
            "eval_return": float(np.mean([e["reward"].sum() for e in eps])),
        }
        if all("objects_done" in e for e in eps):  # Kitchen: the task's objects in their goal at once
            row["eval_objects"] = float(np.mean([most_objects(e) for e in eps]))
        return row

    # -- setup and state ------------------------------------------------------------------------
    def _build(self):
        manifest = read_manifest(self.dataset_path)
        sch = self.schedule
        store = EpisodeStore(goal_fn=self.spec.goal_flags)
        n_online_frames = sch.online_episodes * (self.episode_length + 1)
        store.reserve(
            manifest["transitions"] + manifest["episodes"] + n_online_frames,
            tuple(manifest["image_shape"]),
            manifest["action_dim"],
        )
        for ep in iter_episodes(self.dataset_path):
            store.add(ep)
        self.n_offline = store.num_episodes
        probe = load_probe(self.dataset_path, self.spec.name)  # held out: not in the store
        seed_globals(self.seed)
        context = RunContext(
            obs_shape=tuple(manifest["image_shape"]),
            action_dim=manifest["action_dim"],
            seed=self.seed,
            total_updates=self.total_updates,
            device=self.device,
            schedule_updates=self.spec.schedule.offline_steps + self.spec.schedule.online_steps,
            task=self.spec.name,
            domain=self.spec.domain,
            goal=self.spec.goal_rule,
            reaches_goal=self.spec.reaches_goal,
            action_repeat=self.spec.action_repeat,
            run_dir=self.dir,
            probe_episodes=tuple(probe),
        )
        agent = algorithms.make_agent(self.algo, self.cfg, context)
        self._check_goal_requests(agent, store)
        return store, agent

    def _check_goal_requests(self, agent, store: EpisodeStore) -> None:
        """A request for goal-reaching episodes only (MOTO's filtered BC) on a dataset with none would fail
        at the first offline update; say so before any training, with what to change."""
        goal = {
            k: r.filter for k, r in agent.requests.items() if getattr(r, "filter", "all").endswith("goal")
        }
        if goal and self.schedule.offline_steps > 0 and any(len(store.stream(f)) == 0 for f in goal.values()):
            raise ValueError(
                f"{self.algo} samples its {', '.join(map(repr, goal))} batches from goal-reaching episodes "
                f"only, but none of the {self.n_offline} dataset episodes at {self.dataset_path} reaches "
                f"the goal of {self.spec.name} ({self.spec.goal_rule}): use a dataset with goal-reaching "
                "episodes, or a variant without that request (MOTO: moto-no-bc)"
            )

    def _restore(self, ckpt: dict) -> None:
        store, agent = self.store, self.agent
        self.c = dict(ckpt["counters"])
        for i, T in enumerate(ckpt["episode_lengths"]):
            ep = load_episode(self.dir, {"name": f"{i:06d}.npz", "length": T})
            store.add(ep, online=True)
            if hasattr(agent, "on_episode"):
                agent.on_episode(ep, True)
        agent.load_state_dict(ckpt["agent"])
        if hasattr(agent, "load"):
            agent.load(self.dir / "agent")
        restore_rngs(ckpt["rngs"])

    def _wall(self) -> float:
        return round(self._wall_base + time.time() - self._t_session, 3)

    # -- metrics --------------------------------------------------------------------------------
    def _row(self, phase: str, **values) -> None:
        if self.log is None:
            self.log = rundir.MetricsLog(self.dir / "metrics.csv", keep_rows=self.c["rows"])
        self.log.log(
            {
                "phase": phase,
                "grad_step": self.c["grad_step"],
                "env_steps": self.c["env_steps"],
                "episodes": self.c["episodes"],
                "wall_time": self._wall(),
                **values,
            }
        )
        self.c["rows"] = self.log.rows
        if self.live is not None:
            self.live.log(
                {
                    "phase": phase,
                    "grad_step": self.c["grad_step"],
                    "env_steps": self.c["env_steps"],
                    "episodes": self.c["episodes"],
                    **values,
                }
            )

    def _pending_floats(self) -> list[dict[str, float]]:
        """The metrics of updates not yet logged, as floats (checked for non-finite values)."""
        first = self.c["grad_step"] - len(self._pending)
        out = []
        for i, metrics in enumerate(self._pending):
            row = {}
            for k, v in metrics.items():
                x = to_float(v)
                if not math.isfinite(x):
                    raise NonFiniteLoss(f"non-finite loss at gradient step {first + i + 1}: {k}={x}")
                row[k] = x
            out.append(row)
        return out

    def _flush(self, phase: str, **extra) -> None:
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for metrics in self._pending_floats():
            for k, x in metrics.items():
                sums[k] = sums.get(k, 0.0) + x
                counts[k] = counts.get(k, 0) + 1
        self._pending.clear()
        now = time.time()
        rate = (self.c["grad_step"] - self._win_step) / max(now - self._win_time, 1e-9)
        self._win_time, self._win_step = now, self.c["grad_step"]
        self._row(
            phase, steps_per_s=round(rate, 3), **{k: sums[k] / counts[k] for k in sorted(sums)}, **extra
        )
        self.progress_bar.note(phase=phase, ep=self.c["episodes"], upd_s=f"{rate:.1f}")

    # -- checkpoints ----------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        """Safe between any two updates: unlogged metrics and the updates still owed to the
        current episode are part of the checkpoint."""
        agent = self.agent
        if hasattr(agent, "save"):
            (self.dir / "agent").mkdir(exist_ok=True)
            agent.save(self.dir / "agent")
        self._pending = self._pending_floats()
        self.c["wall_time"] = self._wall()
        rundir.save_checkpoint(
            self.dir,
            {
                "agent": agent.state_dict(),
                "counters": dict(self.c),
                "rngs": capture_rngs(),
                "pending_metrics": list(self._pending),
                "episode_lengths": list(self.store.ep_len[self.n_offline :]),
            },
        )
        self._last_checkpoint = time.time()

    def _maybe_checkpoint(self) -> None:
        if time.time() - self._last_checkpoint >= 60 * self.checkpoint_minutes:
            self._checkpoint()

    # -- the loop -------------------------------------------------------------------------------
    def _train(self, n: int) -> None:
        """Up to n gradient updates (fewer if a stop is requested); metrics stay on the device until
        the next log point."""
        for batches in self.sampler.block(self.c["grad_step"], n):
            self._pending.append(self.agent.update(batches))
            self.c["grad_step"] += 1
            if self.c["owed"] > 0:
                self.c["owed"] -= 1
            self.progress_bar.update(1)
            if self.stop_reason is not None:
                break
            self._maybe_checkpoint()

    def _evaluate_row(self) -> None:
        self._row("eval", **self.evaluate(self.eval_env, self.agent))
        if self.live is not None and self.last_eval_episodes:
            self.live.gif(self.last_eval_episodes[0]["image"], self.c["episodes"])
        if hasattr(self.agent, "on_eval"):
            self.agent.on_eval(self.c["episodes"], self.last_eval_episodes)

    def run(self) -> dict:
        """Run (or resume) to the end, or until ``request_stop``; returns the counters. After a stop
        the run is checkpointed and ``self.stop_reason`` says why."""
        d, sch = self.dir, self.schedule
        (d / "episodes").mkdir(parents=True, exist_ok=True)
        self.store, self.agent = self._build()
        store, agent = self.store, self.agent
        if hasattr(agent, "on_episode"):
            for e in range(self.n_offline):
                agent.on_episode(store.episode(e), False)
        self.log, self._pending = None, []
        self.c["owed"] = 0  # updates still owed to the last online episode
        ckpt = rundir.load_checkpoint(d)
        if ckpt is not None:
            self._restore(ckpt)
            self._pending = list(ckpt.get("pending_metrics", []))
        c = self.c
        self._wall_base, self._t_session = c.get("wall_time", 0.0), time.time()
        self._last_checkpoint = time.time()
        self.sampler = BatchSampler(store, agent.requests, self.seed, depth=self.prefetch)
        self.env = env = self.spec.make_env(seed=self.seed, **self.env_overrides)
        self.eval_env = self.spec.make_env(seed=self.seed, **self.env_overrides)
        self.progress_bar = Progress(
            self.total_updates,
            c["grad_step"],
            f"{self.spec.name} {self.algo} s{self.seed}",
            enabled=self.progress,
        )
        self._win_time, self._win_step = time.time(), c["grad_step"]
        G = sch.updates_per_episode
        try:
            if hasattr(agent, "on_phase"):
                agent.on_phase("online" if c["offline_evaluated"] else "offline")
            # Offline: N_offline updates, a row every log_every.
            while c["grad_step"] < sch.offline_steps and self.stop_reason is None:
                nxt = min(sch.offline_steps, (c["grad_step"] // self.log_every + 1) * self.log_every)
                self._train(nxt - c["grad_step"])
                if c["grad_step"] % self.log_every == 0 or c["grad_step"] == sch.offline_steps:
                    self._flush("offline")
                if c["grad_step"] % self.offline_checkpoint_every == 0 and c["grad_step"] < sch.offline_steps:
                    self._checkpoint()
            if self.stop_reason is None and not c["offline_evaluated"]:
                self._evaluate_row()
                c["offline_evaluated"] = True
                self._checkpoint()
                if hasattr(agent, "on_phase"):
                    agent.on_phase("online")
            # Online: {one episode -> store -> G updates}, a row per episode, evaluation every K.
            while self.stop_reason is None:
                if c["owed"] == 0:
                    if c["episodes"] >= sch.online_episodes:
                        break
                    self.progress_bar.note(phase="collect", ep=c["episodes"] + 1)
                    ep = self.rollout(env, agent, True, episode_seed(self.seed, TRAIN, c["episodes"]))
                    save_npz(d / "episodes" / f"{c['episodes']:06d}.npz", ep)
                    store.add(ep, online=True)
                    if hasattr(agent, "on_episode"):
                        agent.on_episode(ep, True)
                    c["episodes"] += 1
                    c["env_steps"] += len(ep["action"]) * self.spec.action_repeat
                    c["owed"] = G
                    c["episode_return"], c["episode_success"] = (
                        float(ep["reward"].sum()),
                        float(ep["success"].any()),
                    )
                    c["episode_objects"] = most_objects(ep) if "objects_done" in ep else None
                self._train(c["owed"])
                if c["owed"] > 0:  # stopped part-way: the checkpoint records what is still owed
                    break
                self._flush(
                    "online",
                    episode_return=c["episode_return"],
                    episode_success=c["episode_success"],
                    episode_objects=c.get("episode_objects"),
                )
                if c["episodes"] % sch.eval_every_episodes == 0 or c["episodes"] == sch.online_episodes:
                    self._evaluate_row()
                if c["episodes"] % self.checkpoint_every == 0 or c["episodes"] == sch.online_episodes:
                    self._checkpoint()
            if self.stop_reason is not None:
                self._checkpoint()
        finally:
            self.sampler.close()
            self.progress_bar.close()
            env.close()
            self.eval_env.close()
            if self.log is not None:
                self.log.close()
            if self.live is not None:
                self.live.close()
        return dict(c)


def resolved_config(run: RunSpec, profile: str) -> dict:
    """What ``config.json`` records of a run: its identity (``rundir.IDENTITY_KEYS``), versions and commit."""
    manifest = read_manifest(run.dataset)
    return {
        "task": run.task.name,
        "algo": run.algo,
        "base_algo": algorithms.get(run.algo).base_algo,
        "seed": run.seed,
        "profile": profile,
        "agent_config": asdict(run.cfg),
        "overrides": dict(run.overrides),
        "schedule": asdict(run.schedule),
        "env_overrides": run.env_overrides,
        "episode_length": run.env_overrides.get("episode_length", run.task.episode_length),
        "action_repeat": run.task.action_repeat,
        "device": run.device,
        "imports": list(run.imports),
        "algorithm_source": algorithms.sources(run.algo),  # not part of the identity: provenance only
        "dataset": {
            "path": str(run.dataset),
            "checksum": manifest["checksum"],
            "episodes": manifest["episodes"],
            "transitions": manifest["transitions"],
        },
        "probe": probe_record(run.dataset, run.task.name),  # not part of the identity: diagnostics only
        "versions": rundir.versions(),
        "git_commit": rundir.git_commit(),
    }
