"""The algorithm registry: name -> (config dataclass, constructor); variants are named configs.

An agent is any object with::

    sampling: Sampling                       what the protocol feeds update()
    update(batch: dict[str, np.ndarray]) -> dict[str, float]
    act(obs: np.ndarray, state, explore: bool) -> (action: np.ndarray, state)
    state_dict() -> dict;  load_state_dict(d) -> None

numpy in, numpy out: PyTorch or JAX is the agent's own business. This package never imports the
runner. Adding an algorithm = one module that calls ``register`` + one import line below.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Sampling:
    kind: str  # "transitions" (frame-stacked obs / next_obs) or "sequences" (length-L windows)
    batch_size: int
    framestack: int = 1
    length: int = 1


@dataclass
class Entry:
    name: str
    config_cls: type
    make: Callable[..., Any]  # make(config, obs_shape, action_dim, seed) -> agent
    base: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


REGISTRY: dict[str, Entry] = {}


def register(name: str, config_cls: type, make: Callable[..., Any]) -> None:
    if name in REGISTRY:
        raise ValueError(f"algorithm {name!r} is already registered")
    REGISTRY[name] = Entry(name, config_cls, make)


def register_variant(name: str, base: str, **overrides: Any) -> None:
    """A named config over a registered algorithm (how ablations are registered)."""
    entry = get(base)
    known = {f.name for f in dataclasses.fields(entry.config_cls)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"variant {name!r}: {entry.config_cls.__name__} has no fields {bad}")
    if name in REGISTRY:
        raise ValueError(f"algorithm {name!r} is already registered")
    REGISTRY[name] = Entry(name, entry.config_cls, entry.make, base=base, overrides={**entry.overrides, **overrides})


def get(name: str) -> Entry:
    if name not in REGISTRY:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def make_config(name: str, profile: str = "paper", **overrides: Any):
    """Defaults (the paper's values) <- the profile's sizes <- the variant's fields <- overrides."""
    entry = get(name)
    profiles = getattr(entry.config_cls, "PROFILES", {})
    if profile != "paper" and profile not in profiles:
        raise KeyError(f"algorithm {name!r} has no profile {profile!r}; it has: paper, {', '.join(profiles)}")
    values = {**profiles.get(profile, {}), **entry.overrides, **overrides}
    return dataclasses.replace(entry.config_cls(), **values)


def make_agent(name: str, config, obs_shape: tuple[int, ...], action_dim: int, seed: int):
    return get(name).make(config, obs_shape, action_dim, seed)


# Algorithms register themselves on import.
from algorithms import bc  # noqa: E402,F401
