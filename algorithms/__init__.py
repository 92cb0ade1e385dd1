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
import hashlib
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
    origin: dict[str, Any] = field(default_factory=dict)  # where it came from (``origin``), for config.json

    @property
    def base_algo(self) -> str:
        return self.base or self.name


REGISTRY: dict[str, Entry] = {}
_PLUGINS: dict[str, str] = {}  # module name -> the --import text that imported it
_LOADING: list[str] = []  # the module a built-in or entry-point name is being loaded from


class NameClash(ValueError):
    """Two sources (built-in, --import, entry point) provide the same algorithm name."""


def _caller_module() -> str:
    frame = sys._getframe(2)
    return frame.f_globals.get("__name__", "")


def _group() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def origin(module: str) -> dict[str, Any]:
    """Where the algorithms a module registers come from: the built-in table, an ``--import`` (with the
    file's sha256), an installed entry point (its distribution and version), or another module."""
    if module in BUILTIN.values():
        return {"kind": "built-in", "module": module}
    file = getattr(sys.modules.get(module), "__file__", None)
    if module in _PLUGINS:
        return {"kind": "import", "import": _PLUGINS[module], "file": file, "sha256": file and _sha256(file)}
    for ep in _group():
        if ep.module == module:
            dist = ep.dist
            return {
                "kind": "entry-point",
                "entry_point": f"{ep.name} = {ep.value}",
                "distribution": dist.name if dist else None,
                "version": dist.version if dist else None,
            }
    return {"kind": "module", "module": module, "file": file}


def describe(o: dict[str, Any]) -> str:
    """An ``origin`` in words: 'the built-in algorithms.bc', '--import clash.py', ..."""
    if o["kind"] == "built-in":
        return f"the built-in {o['module']}"
    if o["kind"] == "import":
        return f"--import {o['import']}"
    if o["kind"] == "entry-point":
        return f"the entry point {o['entry_point']!r} of {o['distribution']} {o['version']}"
    return f"module {o['module']}"


def _providers(name: str) -> dict[str, dict[str, Any]]:
    """{module: origin} of what declares ``name`` without importing it: the built-in table and installed
    entry points."""
    out = {BUILTIN[name]: origin(BUILTIN[name])} if name in BUILTIN else {}
    for ep in _group():
        if ep.name == name:
            out[ep.module] = origin(ep.module)
    return out


def clash(name: str) -> str | None:
    """One line where more than one source declares ``name`` (a built-in and an entry point, or two entry
    points), else None."""
    providers = list(_providers(name).values())
    if len(providers) < 2:
        return None
    return (
        f"algorithm {name!r} is provided by both {describe(providers[0])} and "
        f"{' and '.join(map(describe, providers[1:]))}; uninstall or rename one of them"
    )


def _claim(name: str, module: str) -> dict[str, Any]:
    """The origin of ``module`` registering ``name``; raises ``NameClash`` (one line naming both sources)
    where another source already registered or declares the name, whoever came first."""
    mine = {module, *_LOADING[-1:]}
    here = origin(module)
    if here["kind"] == "module" and _LOADING:
        here = origin(_LOADING[-1])
    others = [o for m, o in _providers(name).items() if m not in mine]
    if name in REGISTRY:
        others.insert(0, REGISTRY[name].origin)
    if others:
        raise NameClash(
            f"algorithm {name!r} from {describe(here)} is already provided by {describe(others[0])}: "
            f"a name has one source (rename yours)"
        )
    return here


def register(name: str, config_cls: type, make: Callable[..., Any]) -> None:
    module = _caller_module()
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"algorithm {name!r}: the config class must be a dataclass, got {config_cls!r}")
    here = _claim(name, module)
    REGISTRY[name] = Entry(name, config_cls, make, source=module, origin=here)


def register_variant(name: str, base: str, **overrides: Any) -> None:
    """A named config over a registered algorithm (how ablations are registered)."""
    module = _caller_module()
    entry = get(base)
    known = {f.name for f in dataclasses.fields(entry.config_cls)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ValueError(f"variant {name!r}: {entry.config_cls.__name__} has no fields {bad}")
    overrides = {k: coerce(entry.config_cls, k, v, where=f"variant {name!r}") for k, v in overrides.items()}
    here = _claim(name, module)
    REGISTRY[name] = Entry(
        name,
        entry.config_cls,
        entry.make,
        base=entry.base_algo,
        overrides={**entry.overrides, **overrides},
        source=module,
        origin=here,
    )


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in _group()}


def names() -> list[str]:
    """Every algorithm name known: registered, built in, or declared by an installed package."""
    return sorted(set(REGISTRY) | set(BUILTIN) | set(_entry_points()))


def _load(name: str) -> None:
    problem = clash(name)
    if problem:
        raise NameClash(problem)
    if name in BUILTIN:
        _LOADING.append(BUILTIN[name])
        try:
            importlib.import_module(BUILTIN[name])
        finally:
            _LOADING.pop()
        return
    eps = _entry_points()
    if name in eps:
        _LOADING.append(eps[name].module)
        try:
            obj = eps[name].load()
            if callable(obj) and name not in REGISTRY:
                obj()  # an entry point may name a function that registers
        finally:
            _LOADING.pop()


def get(name: str) -> Entry:
    if name not in REGISTRY:
        _load(name)
    if name not in REGISTRY:
        raise KeyError(
            f"unknown algorithm {name!r}{suggest(name, names())}; known: {', '.join(names())} "
            f"(add your own with --import FILE.py)"
        )
    return REGISTRY[name]


def sources(name: str) -> dict[str, dict[str, Any]]:
    """{algorithm: origin} for ``name`` and, for a variant, the algorithm it configures (config.json's
    ``algorithm_source``)."""
    entry = get(name)
    return {name: entry.origin, **({entry.base: get(entry.base).origin} if entry.base else {})}


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
        _PLUGINS[mod_name] = spec
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[mod_name], _PLUGINS[mod_name]
            raise
        return mod_name
    _PLUGINS[spec] = spec
    try:
        importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        del _PLUGINS[spec]
        raise ModuleNotFoundError(
            f"--import {spec}: no module named {exc.name!r} (give a .py file path or an "
            f"importable module name)"
        ) from exc
    except BaseException:
        del _PLUGINS[spec]
        raise
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
