"""Named profiles: ``paper`` (the paper's schedule and sizes; a GPU run), ``cpu`` (small nets, few
steps: a MetaWorld run in minutes on a laptop), ``cpu-long`` (the cpu sizes with an online phase long
enough to fine-tune: 30 online episodes, an evaluation every 3) and ``smoke`` (seconds, for tests). Every
profile runs exactly the same code; only numbers change. Algorithm sizes per profile live in each
config's ``PROFILES`` (``cpu-long`` takes the ``cpu`` sizes: ``sizes``); the schedule and episode length per
profile live here."""

from __future__ import annotations

import dataclasses

from benchmark.tasks import Schedule, TaskSpec

PROFILES = ("paper", "cpu", "cpu-long", "smoke")
SIZES = {"cpu-long": "cpu"}  # profiles that run another profile's network sizes


def sizes(profile: str) -> str:
    """The profile whose network sizes (algorithms' ``PROFILES``) ``profile`` runs."""
    return SIZES.get(profile, profile)


def schedule_for(spec: TaskSpec, profile: str) -> Schedule:
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    s = spec.schedule
    if profile == "cpu":
        return dataclasses.replace(
            s,
            offline_steps=min(s.offline_steps, 1_000),
            online_steps=10 * s.updates_per_episode,
            eval_every_episodes=5,
            eval_episodes=10,
        )
    if profile == "cpu-long":  # fine-tuning on a CPU: 30 online episodes, evaluations every 3 (10 episodes)
        return dataclasses.replace(
            s,
            offline_steps=min(s.offline_steps, 1_000),
            online_steps=30 * s.updates_per_episode,
            eval_every_episodes=3,
            eval_episodes=10,
        )
    if profile == "smoke":
        return Schedule(
            offline_steps=4, updates_per_episode=2, online_steps=4, eval_every_episodes=1, eval_episodes=1
        )
    return s


def env_overrides_for(spec: TaskSpec, profile: str) -> dict:
    return {"episode_length": 6} if profile == "smoke" else {}
