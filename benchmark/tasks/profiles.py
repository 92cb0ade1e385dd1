"""Named profiles: ``paper`` (the paper's schedule and sizes; a GPU run), ``cpu`` (small nets, few
steps: a MetaWorld run in minutes on a laptop), ``cpu-long`` (the cpu sizes with an online phase long
enough to fine-tune: 30 online episodes, an evaluation every 3) and ``smoke`` (seconds, for tests). Every
profile runs exactly the same code; only numbers change. Algorithm sizes per profile live in each
config's ``PROFILES`` (``cpu-long`` takes the ``cpu`` sizes: ``sizes``); the schedule and episode length per
profile live here, and ``schedule.FIELD`` overrides (``--set schedule.offline_steps=3000``) change one run's
schedule on top of its profile (``override_schedule``)."""

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


# ``--set schedule.FIELD=N``: {field: smallest allowed value}. ``online_episodes`` sets online_steps to
# that many episodes of updates_per_episode updates.
SCHEDULE_FIELDS = {
    "offline_steps": 0,
    "updates_per_episode": 1,
    "online_steps": 0,
    "online_episodes": 0,
    "eval_every_episodes": 1,
    "eval_episodes": 1,
}


def schedule_settings(settings: dict) -> dict[str, int]:
    """The ``schedule.FIELD`` keys of ``--set`` / a sweep's ``set:`` as {FIELD: int}, checked; raises
    ValueError naming the key for an unknown field, a value that is not a whole number or is too small,
    and for online_steps together with online_episodes."""
    from algorithms import suggest

    out = {}
    for key, value in settings.items():
        name = key.split(".", 1)[1]
        if name not in SCHEDULE_FIELDS:
            raise ValueError(
                f"--set {key}: a schedule has no field {name!r}{suggest(name, SCHEDULE_FIELDS)}; its "
                f"fields: {', '.join(SCHEDULE_FIELDS)}"
            )
        text = str(value).strip().replace("_", "")
        if isinstance(value, bool) or not text.isdigit():
            raise ValueError(f"--set {key}: {value!r} is not a whole number")
        if int(text) < SCHEDULE_FIELDS[name]:
            raise ValueError(f"--set {key}: must be at least {SCHEDULE_FIELDS[name]}, got {int(text)}")
        out[name] = int(text)
    if "online_steps" in out and "online_episodes" in out:
        raise ValueError("--set schedule.online_steps and schedule.online_episodes: give one of the two")
    return out


def override_schedule(schedule: Schedule, settings: dict[str, int]) -> Schedule:
    """``schedule`` with ``schedule_settings``' fields replaced (online_episodes after
    updates_per_episode)."""
    fields = {k: v for k, v in settings.items() if k != "online_episodes"}
    out = dataclasses.replace(schedule, **fields)
    if "online_episodes" in settings:
        out = dataclasses.replace(out, online_steps=settings["online_episodes"] * out.updates_per_episode)
    return out
