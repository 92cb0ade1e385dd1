"""The algorithm registry: name -> (config dataclass, ``make(config, context) -> agent``).

The package: ``contract.py`` (the agent contract: requests, ``RunContext``, ``Agent``), one file per
method holding only the method (``bc``, ``sac``, ``cql``, ``iql``, ``dreamerv2``, ``moto``, ``lompo``,
``combo``), ``nets/`` (the parts methods share) and ``diagnostics.py`` (the diagnostics files agents
write). It never imports ``benchmark/`` (what an agent needs to know of its run comes in its
``RunContext``), and importing it imports neither JAX nor PyTorch: built-in algorithms are registered
lazily (their module is imported the first time one of their names is looked up), so ``--list``,
``--dry-run`` and the launcher stay light.

Three ways to add an algorithm, none of which needs an edit of this repository:

* ``python -m benchmark.run --import my_algo.py`` (or a dotted module name), repeatable;
* an installed package declaring the entry point group ``moto_benchmark.algorithms``
  (``my-algo = "my_package.my_algo"``; the name is what ``--list`` shows, loading the module
  must register it);
* for this repository's own algorithms, a line in ``BUILTIN`` below.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import importlib.metadata
import importlib.util
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from algorithms.contract import FILTERS, Agent, Request, RunContext, Sequences, Transitions, check_agent  # noqa: F401

ENTRY_POINT_GROUP = "moto_benchmark.algorithms"

# name -> module that registers it (imported on first use).
BUILTIN: dict[str, str] = {
    "bc": "algorithms.bc",
    "sac": "algorithms.sac",
    "cql": "algorithms.cql",
    "iql": "algorithms.iql",
    "dreamerv2": "algorithms.dreamerv2",
    "dreamerv2-dmc": "algorithms.dreamerv2",
    "moto": "algorithms.moto",
    "moto-no-unc": "algorithms.moto",
    "moto-no-bc": "algorithms.moto",
    "moto-no-bc-no-unc": "algorithms.moto",
    "moto-dmc": "algorithms.moto",
    "lompo": "algorithms.lompo",
    "combo": "algorithms.combo",
}


@dataclass
class Entry:
    name: str
    config_cls: type
    make: Callable[..., Any]  # make(config, context: RunContext) -> agent
    base: str | None = None  # for a variant: the algorithm it configures
    overrides: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the module that registered it

    @property
    def base_algo(self) -> str:
        return self.base or self.name


REGISTRY: dict[str, Entry] = {}


def _caller_module() -> str:
    frame = sys._getframe(2)
    return frame.f_globals.get("__name__", "")


def register(name: str, config_cls: type, make: Callable[..., Any]) -> None:
    if name in REGISTRY:
        raise ValueError(
            f"algorithm {name!r} is already registered (by {REGISTRY[name].source or 'unknown'})"
        )
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"algorithm {name!r}: the config class must be a dataclass, got {config_cls!r}")
    REGISTRY[name] = Entry(name, config_cls, make, source=_caller_module())


def register_variant(name: str, base: str, **overrides: Any) -> None:
    """A named config over a registered algorithm (how ablations are registered)."""
    entry = get(base)
    known = {f.name for f in dataclasses.fields(entry.config_cls)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"variant {name!r}: {entry.config_cls.__name__} has no fields {bad}")
    overrides = {k: coerce(entry.config_cls, k, v, where=f"variant {name!r}") for k, v in overrides.items()}
    if name in REGISTRY:
        raise ValueError(f"algorithm {name!r} is already registered")
    REGISTRY[name] = Entry(
        name,
        entry.config_cls,
        entry.make,
        base=entry.base_algo,
        overrides={**entry.overrides, **overrides},
        source=_caller_module(),
    )


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def names() -> list[str]:
    """Every algorithm name known: registered, built in, or declared by an installed package."""
    return sorted(set(REGISTRY) | set(BUILTIN) | set(_entry_points()))


def _load(name: str) -> None:
    if name in BUILTIN:
        importlib.import_module(BUILTIN[name])
        return
    eps = _entry_points()
    if name in eps:
        obj = eps[name].load()
        if callable(obj) and name not in REGISTRY:
            obj()  # an entry point may name a function that registers


def get(name: str) -> Entry:
    if name not in REGISTRY:
        _load(name)
    if name not in REGISTRY:
        raise KeyError(
            f"unknown algorithm {name!r}; known: {', '.join(names())} (add your own with --import FILE.py)"
        )
    return REGISTRY[name]


def exists(name: str) -> bool:
    """Whether ``name`` is known, without importing anything heavy."""
    return name in names()


def import_plugin(spec: str) -> str:
    """Import a user module (``path/to/file.py`` or ``package.module``) that registers algorithms."""
    path = Path(spec)
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"--import {spec}: no such file")
        mod_name = f"moto_plugin_{path.stem}_{abs(hash(str(path.resolve()))) % 10**8}"
        if mod_name in sys.modules:
            return mod_name
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[mod_name]
            raise
        return mod_name
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            f"--import {spec}: no module named {exc.name!r} (give a .py file path or an "
            f"importable module name)"
        ) from exc
    return spec


def make_config(name: str, profile: str = "paper", **overrides: Any):
    """Defaults (the paper's values) <- the variant's fields <- the profile's sizes <- overrides.

    Profile sizes go on top of a variant's fields, so a variant that sets sizes still shrinks under
    ``smoke``; a profile never touches the fields that make the variant what it is unless it sets
    them itself. Overrides are checked and converted to their fields' types (``coerce``); the result is
    checked against the config's ``CHOICES`` (``check_choices``)."""
    entry = get(name)
    profiles = getattr(entry.config_cls, "PROFILES", {})
    if profile != "paper" and profile not in profiles:
        raise KeyError(f"algorithm {name!r} has no profile {profile!r}; it has: paper, {', '.join(profiles)}")
    overrides = {k: coerce(entry.config_cls, k, v, where=f"algorithm {name!r}") for k, v in overrides.items()}
    values = {**entry.overrides, **profiles.get(profile, {}), **overrides}
    config = dataclasses.replace(entry.config_cls(), **values)
    check_choices(config, where=f"algorithm {name!r}")
    return config


# -- config values: types and allowed values ---------------------------------------------------------
def field_types(config_cls: type) -> dict[str, Any]:
    """{field: its type} of a config dataclass (annotations resolved)."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def choices(config_cls: type) -> dict[str, tuple]:
    """{field: allowed values} from the ``CHOICES`` class attributes of a config and its bases."""
    out: dict[str, tuple] = {}
    for klass in reversed(config_cls.__mro__):
        out.update(vars(klass).get("CHOICES", {}))
    return out


def suggest(name: str, known) -> str:
    """' (did you mean X?)' for the closest of ``known``, or ''."""
    close = difflib.get_close_matches(name, list(known), n=2, cutoff=0.6)
    return f" (did you mean {' or '.join(close)}?)" if close else ""


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")


def _convert(t: Any, value: Any) -> Any:
    """``value`` as type ``t`` (float, int, bool, str, tuple[X, ...], X | None); raises ValueError."""
    args = typing.get_args(t)
    origin = typing.get_origin(t)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is not type(None):
                return _convert(a, value)
    if isinstance(value, str) and t is not str:
        text = value.strip()
        literal = {"true": True, "false": False, "none": None, "null": None}.get(text.lower(), text)
        if literal is text:
            try:
                literal = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise ValueError(f"{value!r} is not a {_type_name(t)}") from None
        value = literal
    if t is bool:
        if isinstance(value, bool):
            return value
    elif t is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif t is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif t is str:
        if isinstance(value, str):
            return value
    elif origin is tuple:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = (value,)
        if isinstance(value, (list, tuple)):
            item = args[0] if args else Any
            return tuple(value) if item is Any else tuple(_convert(item, v) for v in value)
    else:
        return value
    raise ValueError(f"{value!r} is not a {_type_name(t)}")


def coerce(config_cls: type, name: str, value: Any, where: str = "") -> Any:
    """An override ``name=value`` for ``config_cls``, converted to the field's type (text from a command
    line is read as a Python literal: ``1e-4``, ``true``, ``(8, 16)``). Raises KeyError for an unknown
    field and ValueError for a value of the wrong type or not among the field's ``CHOICES``."""
    where = f"{where}: " if where else ""
    fields = field_types(config_cls)
    if name not in fields:
        raise KeyError(
            f"{where}{config_cls.__name__} has no field {name!r}{suggest(name, fields)}; "
            f"its fields: {', '.join(sorted(fields))}"
        )
    try:
        value = _convert(fields[name], value)
    except ValueError as exc:
        raise ValueError(f"{where}{config_cls.__name__}.{name}: {exc}") from None
    allowed = choices(config_cls).get(name)
    if allowed is not None and value not in allowed:
        raise ValueError(
            f"{where}{config_cls.__name__}.{name} must be one of {', '.join(map(str, allowed))}, got "
            f"{value!r}{suggest(str(value), map(str, allowed))}"
        )
    return value


def check_choices(config, where: str = "") -> None:
    """Every field with ``CHOICES`` holds one of them (defaults, variants and profiles included)."""
    for name, allowed in choices(type(config)).items():
        value = getattr(config, name)
        if value not in allowed:
            raise ValueError(
                f"{where + ': ' if where else ''}{type(config).__name__}.{name} must be one of "
                f"{', '.join(map(str, allowed))}, got {value!r}"
            )


def make_agent(name: str, config, context: RunContext):
    agent = get(name).make(config, context)
    check_agent(agent, name)
    return agent
