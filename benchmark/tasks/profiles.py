"""Named profiles: ``paper`` (the paper's schedule and sizes; a GPU run), ``cpu`` (small nets, few
steps: a MetaWorld run in minutes on a laptop) and ``smoke`` (seconds, for tests). Every profile
runs exactly the same code; only numbers change. Algorithm sizes per profile live in each config's
``PROFILES``; the schedule and episode length per profile live here."""

from __future__ import annotations

import dataclasses

from benchmark.tasks import Schedule, TaskSpec

PROFILES = ("paper", "cpu", "smoke")


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
    if profile == "smoke":
        return Schedule(
            offline_steps=4, updates_per_episode=2, online_steps=4, eval_every_episodes=1, eval_episodes=1
        )
    return s


def env_overrides_for(spec: TaskSpec, profile: str) -> dict:
    return {"episode_length": 6} if profile == "smoke" else {}
