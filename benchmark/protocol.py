"""The offline-to-online protocol (paper, Algorithm 1 and Appendix C.1); the only loop that steps
environments during training.

    offline:  N_offline updates on the dataset                       -> evaluate
    online:   repeat { one episode with the current policy -> store -> G updates }
              evaluate every K episodes, checkpoint every C episodes

Each episode (training or evaluation) starts from a reset with its own seed derived from the run
seed, so a resumed run replays exactly what an uninterrupted one does.
"""
from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

import algorithms
from benchmark import results
from benchmark.datasets.format import iter_episodes, load_episode, read_manifest, save_npz
from benchmark.replay import EpisodeStore
from benchmark.tasks import Schedule, TaskSpec


class NonFiniteLoss(RuntimeError):
    pass


def episode_seed(run_seed: int, kind: int, index: int) -> int:
    return int(np.random.SeedSequence([run_seed, kind, index]).generate_state(1)[0])


TRAIN, EVAL = 0, 1


class Runner:
    def __init__(self, spec: TaskSpec, algo: str, agent_config, schedule: Schedule, seed: int, out_dir: Path,
                 dataset_path: Path, env_overrides: dict | None = None, checkpoint_every: int = 10,
                 offline_checkpoint_every: int = 1000, log_every: int = 100, progress: bool = True):
        self.spec, self.algo, self.cfg, self.schedule, self.seed = spec, algo, agent_config, schedule, seed
        self.dir, self.dataset_path = Path(out_dir), Path(dataset_path)
        self.env_overrides = env_overrides or {}
        self.checkpoint_every, self.offline_checkpoint_every = checkpoint_every, offline_checkpoint_every
        self.log_every, self.progress = log_every, progress

    # -- pieces ---------------------------------------------------------------------------------
    def _policy_obs(self, frames: deque) -> np.ndarray:
        return np.concatenate(list(frames), axis=-1)

    def rollout(self, env, agent, explore: bool, reset_seed: int) -> dict:
        k = agent.sampling.framestack if agent.sampling.kind == "transitions" else 1
        image, info = env.reset(seed=reset_seed)
        frames = deque([image] * k, maxlen=k)
        images, actions, rewards, success, objects = [image], [], [], [], []
        state, done = None, False
        while not done:
            action, state = agent.act(self._policy_obs(frames), state, explore)
            image, reward, terminated, truncated, info = env.step(action)
            frames.append(image)
            images.append(image)
            actions.append(np.asarray(action, np.float32))
            rewards.append(reward)
            success.append(info["success"])
            if "objects_done" in info:
                objects.append(info["objects_done"])
            done = terminated or truncated
        ep = {"image": np.stack(images), "action": np.stack(actions), "reward": np.asarray(rewards, np.float32),
              "success": np.asarray(success, bool), "terminal": np.zeros(len(actions), bool)}
        ep["terminal"][-1] = terminated
        if objects:
            ep["objects_done"] = np.stack(objects)
        return ep

    def evaluate(self, env, agent, index: int) -> dict:
        eps = [self.rollout(env, agent, False, episode_seed(self.seed, EVAL, index * 1000 + i))
               for i in range(self.schedule.eval_episodes)]
        return {"eval_success": float(np.mean([e["success"].any() for e in eps])),
                "eval_return": float(np.mean([e["reward"].sum() for e in eps]))}

    def sample(self, store: EpisodeStore, agent) -> dict:
        s = agent.sampling
        if s.kind == "transitions":
            return store.sample_transitions(s.batch_size, s.framestack)
        return store.sample_sequences(s.batch_size, s.length)

    def update(self, store, agent, step: int) -> dict:
        metrics = agent.update(self.sample(store, agent))
        bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
        if bad:
            raise NonFiniteLoss(f"non-finite loss at gradient step {step + 1}: {bad}")
        return metrics

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> dict:
        d, sch = self.dir, self.schedule
        (d / "episodes").mkdir(parents=True, exist_ok=True)
        manifest = read_manifest(self.dataset_path)
        store = EpisodeStore(seed=self.seed)
        for ep in iter_episodes(self.dataset_path):
            store.add(ep)
        n_offline = len(store.episodes)
        agent = algorithms.make_agent(self.algo, self.cfg, tuple(manifest["image_shape"]), manifest["action_dim"],
                                      self.seed)
        c = {"grad_step": 0, "env_steps": 0, "episodes": 0, "offline_evaluated": False, "rows": 0}
        ckpt = results.load_checkpoint(d)
        if ckpt is not None:
            agent.load_state_dict(ckpt["agent"])
            c = ckpt["counters"]
            for i in range(c["episodes"]):
                entry = {"name": f"{i:06d}.npz", "length": ckpt["episode_lengths"][i]}
                store.add(load_episode(d, entry), online=True)
            store.set_rng_state(ckpt["store_rng"])
        lengths = [len(ep["action"]) for ep in store.episodes[n_offline:]]
        agent_cols: list[str] = ckpt["agent_columns"] if ckpt else []  # metric names, from the first update
        log = None

        def checkpoint():
            results.save_checkpoint(d, {"agent": agent.state_dict(), "counters": dict(c), "store_rng": store.rng_state(),
                                        "episode_lengths": lengths, "agent_columns": agent_cols})

        def row(phase, **values):
            nonlocal log
            if log is None:
                log = results.MetricsLog(d / "metrics.csv", agent_cols, keep_rows=c["rows"])
            log.log({"phase": phase, "grad_step": c["grad_step"], "env_steps": c["env_steps"],
                     "episodes": c["episodes"], "wall_time": round(time.time() - t_start, 3), **values})
            c["rows"] = log.rows

        env = self.spec.make_env(seed=self.seed, **self.env_overrides)
        eval_env = self.spec.make_env(seed=self.seed, **self.env_overrides)
        total = sch.offline_steps + sch.online_episodes * sch.updates_per_episode
        bar = tqdm(total=total, initial=c["grad_step"], desc=f"{self.spec.name} {self.algo} s{self.seed}",
                   unit="upd", disable=not self.progress, dynamic_ncols=True)
        t_start, sums, n_sum, t_win, s_win = time.time(), {}, 0, time.time(), c["grad_step"]

        def train_step():
            nonlocal n_sum
            m = self.update(store, agent, c["grad_step"])
            if not agent_cols:
                agent_cols.extend(sorted(m))
            c["grad_step"] += 1
            bar.update(1)
            for k, v in m.items():
                sums[k] = sums.get(k, 0.0) + v
            n_sum += 1

        def flush_train(phase, **extra):
            nonlocal n_sum, t_win, s_win
            now = time.time()
            rate = (c["grad_step"] - s_win) / max(now - t_win, 1e-9)
            row(phase, steps_per_s=round(rate, 3), **{k: v / max(n_sum, 1) for k, v in sums.items()}, **extra)
            sums.clear()
            n_sum, t_win, s_win = 0, now, c["grad_step"]
            bar.set_postfix(phase=phase, ep=c["episodes"], upd_s=f"{rate:.1f}")

        try:
            while c["grad_step"] < sch.offline_steps:
                train_step()
                if c["grad_step"] % self.log_every == 0 or c["grad_step"] == sch.offline_steps:
                    flush_train("offline")
                if c["grad_step"] % self.offline_checkpoint_every == 0 and c["grad_step"] < sch.offline_steps:
                    checkpoint()
            if not c["offline_evaluated"]:
                row("eval", **self.evaluate(eval_env, agent, 0))
                c["offline_evaluated"] = True
                checkpoint()
            while c["episodes"] < sch.online_episodes:
                ep = self.rollout(env, agent, True, episode_seed(self.seed, TRAIN, c["episodes"]))
                save_npz(d / "episodes" / f"{c['episodes']:06d}.npz", ep)
                store.add(ep, online=True)
                lengths.append(len(ep["action"]))
                c["episodes"] += 1
                c["env_steps"] += len(ep["action"]) * self.spec.action_repeat
                for _ in range(sch.updates_per_episode):
                    train_step()
                flush_train("online", episode_return=float(ep["reward"].sum()),
                            episode_success=float(ep["success"].any()))
                if c["episodes"] % sch.eval_every_episodes == 0 or c["episodes"] == sch.online_episodes:
                    row("eval", **self.evaluate(eval_env, agent, c["episodes"]))
                if c["episodes"] % self.checkpoint_every == 0 or c["episodes"] == sch.online_episodes:
                    checkpoint()
        finally:
            bar.close()
            env.close()
            eval_env.close()
            if log is not None:
                log.close()
        return dict(c)


def resolved_config(spec, algo, cfg, schedule, seed, profile, env_overrides, dataset_path) -> dict:
    manifest = read_manifest(dataset_path)
    return {"task": spec.name, "algo": algo, "seed": seed, "profile": profile,
            "agent_config": asdict(cfg), "schedule": asdict(schedule), "env_overrides": env_overrides,
            "episode_length": env_overrides.get("episode_length", spec.episode_length),
            "action_repeat": spec.action_repeat,
            "dataset": {"path": str(dataset_path), "checksum": manifest["checksum"],
                        "episodes": manifest["episodes"], "transitions": manifest["transitions"]},
            "versions": results.versions(), "git_commit": results.git_commit()}
