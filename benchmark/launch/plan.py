"""The plan: every run of a command (algorithms x tasks x seeds), checked before anything is written.

``plan(args)`` takes the run CLI's options (an ``argparse.Namespace``: algos, tasks, seeds, profile, out,
data_dir, dataset, device, imports) and returns one ``RunSpec`` per run (``benchmark/core/protocol.py``).
Bad input raises ``UsageError`` with what was wrong and how to fix it.
"""

from __future__ import annotations

import argparse
import shutil
import traceback
from pathlib import Path

import algorithms
from benchmark.core import rundir
from benchmark.core.cli import UsageError, check_out
from benchmark.core.protocol import RunSpec
from benchmark.datasets.format import DatasetError, verify_dataset
from benchmark.datasets.probe import find_probe, is_probe
from benchmark.tasks import default_data_dir, get_task, resolve_tasks
from benchmark.tasks.profiles import (
    PROFILES,
    env_overrides_for,
    override_schedule,
    schedule_for,
    schedule_settings,
    sizes,
)


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated non-negative integers (e.g. 0,1,2), got {text!r}")
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds must be distinct non-negative integers (e.g. 0,1,2), got {text!r}")
    return seeds


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is present (without importing torch)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def resolve_device(device: str, here: bool = True) -> str:
    """``auto`` -> ``cuda`` where an NVIDIA driver is present, else ``cpu``. ``here``: the runs execute on
    this machine, so ``cuda`` without a GPU is an error (a launcher that submits elsewhere passes False and
    keeps ``auto`` for the machine that runs it to resolve)."""
    if device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, got {device!r}")
    if not here:
        return device
    if device == "cuda" and not has_nvidia_gpu():
        raise UsageError(
            "--device cuda: this machine has no NVIDIA GPU (no driver found); use --device cpu or auto"
        )
    if device != "auto":
        return device
    return "cuda" if has_nvidia_gpu() else "cpu"


def load_imports(imports: list[str]) -> None:
    """Imports every ``--import``; any failure is a UsageError naming the file (and the line in it)."""
    for spec in imports:
        try:
            algorithms.import_plugin(spec)
        except SyntaxError as exc:  # the user's file does not parse: where, and what
            raise UsageError(f"--import {spec}: {exc.filename}, line {exc.lineno}: {exc.msg}") from exc
        except Exception as exc:
            text = str(exc)
            if text.startswith("--import "):  # already names it (no such file or module)
                raise UsageError(text) from exc
            if not isinstance(exc, (ImportError, algorithms.NameClash)):
                text = f"{type(exc).__name__}: {text}"
            lines = [
                f.lineno for f in traceback.extract_tb(exc.__traceback__) if _same_file(f.filename, spec)
            ]
            where = f", line {lines[-1]}" if lines else ""
            raise UsageError(f"--import {spec}{where}: {text}") from exc


def _same_file(a: str, b: str) -> bool:
    return Path(a).resolve() == Path(b).resolve() if b.endswith(".py") else False


def parse_set(items) -> dict:
    """``--set`` items (``FIELD=VALUE`` or ``ALGO.FIELD=VALUE``, repeatable) as {key: text}; a mapping (a
    sweep file's ``set:``) passes through with its keys as text."""
    if isinstance(items, dict):
        return {str(k): v for k, v in items.items()}
    out = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise UsageError(
                f"--set {item!r}: expected FIELD=VALUE or ALGO.FIELD=VALUE, e.g. --set moto.alpha=1"
            )
        out[key.strip()] = value.strip()
    return out


def resolve_overrides(settings: dict, algos: list[str], strict: bool = True) -> dict[str, dict]:
    """{algo: {field: value}} from ``--set`` / ``set:`` keys: ``ALGO.FIELD`` sets the field of that algorithm
    of the plan, a plain ``FIELD`` that field of every algorithm of the plan that has it. Values are
    converted to the fields' types and checked against their allowed values; any mistake is a
    UsageError naming the key. ``strict=False`` (one group of a sweep) lets a key pass that concerns no
    algorithm of this plan (the sweep checks that each key is used by some group: ``unused_settings``)."""
    out: dict[str, dict] = {a: {} for a in algos}
    scoped = {k: v for k, v in settings.items() if "." in k}
    for key, value in settings.items():  # plain keys first, so that ALGO.FIELD wins over FIELD
        if key in scoped:
            continue
        having = [a for a in algos if key in algorithms.field_types(algorithms.get(a).config_cls)]
        if not having and strict:
            every = sorted({f for a in algos for f in algorithms.field_types(algorithms.get(a).config_cls)})
            raise UsageError(
                f"--set {key}: no algorithm of the plan ({', '.join(algos)}) has a config field {key!r}"
                f"{algorithms.suggest(key, every)}"
            )
        for a in having:
            out[a][key] = value
    for key, value in scoped.items():
        algo, _, name = key.rpartition(".")
        if algo not in out and not strict and algorithms.exists(algo):
            continue
        if algo not in out:
            raise UsageError(
                f"--set {key}: {algo!r} is not an algorithm of the plan ({', '.join(algos)})"
                f"{algorithms.suggest(algo, algos)}"
            )
        out[algo][name] = value
    for algo, values in out.items():
        if not values:  # (no import of the algorithm's framework for a plan without overrides)
            continue
        cls = algorithms.get(algo).config_cls
        try:
            out[algo] = {
                k: algorithms.coerce(cls, k, v, where=f"--set for {algo}") for k, v in values.items()
            }
        except (KeyError, ValueError) as exc:
            raise UsageError(str(exc.args[0]) if exc.args else str(exc)) from None
    return out


def unused_settings(settings: dict, runs: list[RunSpec]) -> list[str]:
    """The ``--set`` keys that no planned run took (a sweep's groups are planned leniently)."""
    used = {k for r in runs for k in r.overrides} | {f"{r.algo}.{k}" for r in runs for k in r.overrides}
    return [k for k in settings if k not in used]


def _check_probe(dataset: Path, manifest: dict, task: str) -> None:
    """A probe set is no run's training data; the probe set beside a dataset must be whole and match it."""
    if is_probe(manifest):
        of = manifest["probe"].get("of_dataset", "the dataset it was made for")
        raise UsageError(
            f"{dataset} is a probe set (held-out episodes for the model diagnostics of {of}), not "
            f"training data: run on {of}"
        )
    try:
        probe = find_probe(dataset, task)
        if probe is None:
            return
        pm = verify_dataset(probe)
    except DatasetError as exc:
        raise UsageError(f"invalid probe set for {task} beside {dataset}: {exc}") from exc
    if (pm["image_shape"], pm["action_dim"]) != (manifest["image_shape"], manifest["action_dim"]):
        raise UsageError(
            f"probe set {probe} has images {pm['image_shape']} and {pm['action_dim']}-dim actions; its "
            f"dataset {dataset} {manifest['image_shape']} and {manifest['action_dim']}-dim"
        )


def plan(args, resolve: bool = True) -> list[RunSpec]:
    """Every run of the sweep, checked. ``resolve=False`` (dry runs) skips building configs, which
    would import the algorithms' frameworks."""
    if args.profile not in PROFILES:
        raise UsageError(
            f"unknown profile {args.profile!r}{algorithms.suggest(args.profile, PROFILES)}; "
            f"known: {', '.join(PROFILES)}"
        )
    algos = list(dict.fromkeys(a.strip() for a in args.algos.split(",") if a.strip()))
    if not algos:
        raise UsageError("--algos is empty; see --list")
    for a in algos:
        if not algorithms.exists(a):
            raise UsageError(
                f"unknown algorithm {a!r}{algorithms.suggest(a, algorithms.names())}; known: "
                f"{', '.join(algorithms.names())} (add your own with --import FILE.py)"
            )
        if algorithms.clash(a):
            raise UsageError(algorithms.clash(a))
    settings = parse_set(getattr(args, "set", None))
    try:  # schedule.FIELD keys change the schedule; the others are algorithms' config fields
        timing = schedule_settings({k: v for k, v in settings.items() if k.startswith("schedule.")})
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    overrides = resolve_overrides(
        {k: v for k, v in settings.items() if not k.startswith("schedule.")},
        algos,
        strict=not getattr(args, "sweep", None),
    )
    tasks = resolve_tasks(args.tasks)
    seeds = parse_seeds(args.seeds)
    device = resolve_device(args.device, here=resolve)
    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    check_out(Path(args.out))
    runs, verified = [], set()
    for task in tasks:
        spec = get_task(task)
        name = args.dataset or task
        per_task = f"{name}-{task.split('/', 1)[1]}"  # e.g. kitchen/scripted -> kitchen/scripted-mixed
        if (
            args.dataset
            and not (data_dir / name / "manifest.json").exists()
            and (data_dir / per_task / "manifest.json").exists()
        ):
            name = per_task
        dataset = data_dir / name
        absent = not (dataset / "manifest.json").exists()
        if not absent and dataset not in verified:
            try:
                manifest = verify_dataset(dataset)  # every episode's checksum, shapes and dtypes
            except DatasetError as exc:
                raise UsageError(f"invalid dataset for {task} at {dataset}: {exc}") from exc
            if manifest["action_dim"] != spec.action_dim:
                raise UsageError(
                    f"dataset {dataset} has {manifest['action_dim']}-dim actions; {task} has "
                    f"{spec.action_dim}"
                )
            _check_probe(dataset, manifest, task)
            verified.add(dataset)
        schedule = override_schedule(schedule_for(spec, args.profile), timing)
        for algo in algos:
            cfg = algorithms.make_config(algo, sizes(args.profile), **overrides[algo]) if resolve else None
            identity = {**overrides[algo], **{f"schedule.{k}": v for k, v in timing.items()}}
            for seed in seeds:
                runs.append(
                    RunSpec(
                        task=spec,
                        algo=algo,
                        cfg=cfg,
                        schedule=schedule,
                        seed=seed,
                        dataset=dataset,
                        dir=rundir.run_dir(
                            args.out,
                            task,
                            algo,
                            seed,
                            args.profile,
                            name if args.dataset else None,
                            identity,
                        ),
                        env_overrides=env_overrides_for(spec, args.profile),
                        device=device,
                        imports=list(args.imports),
                        missing_dataset=absent,
                        overrides=dict(identity),
                    )
                )
    missing = missing_datasets(runs)
    if missing and not getattr(args, "dry_run", False):  # a dry run shows the plan with the gaps marked
        raise UsageError(missing_datasets_message(missing, data_dir))
    return runs


def datasets_on_disk(data_dir: Path) -> dict[str, list[str]]:
    """{task: [dataset names]} of the datasets under ``data_dir`` (each manifest.json's ``task``); probe
    sets (held-out episodes, never a run's data) are left out."""
    import json

    out: dict[str, list[str]] = {}
    if not data_dir.is_dir():
        return out
    for m in sorted(data_dir.glob("**/manifest.json")):
        name = m.parent.relative_to(data_dir).as_posix()
        if any(part.startswith(".") for part in Path(name).parts):
            continue
        try:
            manifest = json.loads(m.read_text())
        except (OSError, ValueError):
            continue
        task = manifest.get("task") if isinstance(manifest, dict) else None
        if task and not is_probe(manifest):
            out.setdefault(str(task), []).append(name)
    return out


def _dataset_option(task: str, name: str) -> str:
    """The ``--dataset`` value that selects ``name`` for ``task`` ("" for the task's own)."""
    if name == task:
        return ""
    short = "-" + task.split("/", 1)[-1]
    return name[: -len(short)] if name.endswith(short) and len(name) > len(short) else name


def _on_disk_hint(tasks: dict[str, Path], on_disk: dict[str, list[str]]) -> str:
    """What the data directory already holds for the missing tasks, and the --dataset that uses it."""
    found = {t: on_disk[t] for t in tasks if on_disk.get(t)}
    if not found:
        return ""
    listed = ", ".join(f"{n} (for {t})" for t, names in found.items() for n in names)
    options = {
        t: sorted({_dataset_option(t, n) for n in names}, key=lambda o: (o != "", o))
        for t, names in found.items()
    }
    shared = set.intersection(*(set(o) for o in options.values())) if len(found) == len(tasks) else set()
    if shared:
        pick = sorted(shared, key=lambda o: (o != "", o))[0]
        use = "run without --dataset" if pick == "" else f"run with `--dataset {pick}`"
    else:
        use = "run " + ", ".join(
            f"{t} " + ("without --dataset" if o[0] == "" else f"with `--dataset {o[0]}`")
            for t, o in options.items()
        )
    return f"already on disk: {listed}; {use}, or "


def missing_datasets_message(missing: dict[str, dict[str, Path]], data_dir: Path | None = None) -> str:
    """One line naming every missing dataset ({domain: {task: path}}), what the data directory already holds
    for those tasks (and the ``--dataset`` that uses it), and how to get each domain's."""
    where = ", ".join(f"{task} at {path}" for tasks in missing.values() for task, path in tasks.items())
    if data_dir is None:  # the paths are <data dir>/<domain>/<name>
        data_dir = next(iter(next(iter(missing.values())).values())).parents[1]
    on_disk = datasets_on_disk(Path(data_dir))
    how = []
    if "metaworld" in missing:
        how.append(
            "MetaWorld: "
            + _on_disk_hint(missing["metaworld"], on_disk)
            + f"`python -m benchmark.datasets generate {','.join(missing['metaworld'])}` (scripted "
            "demonstrations, seconds per task; `--episodes N`, default 10)"
        )
    if "kitchen" in missing:
        how.append(
            "Kitchen: "
            + _on_disk_hint(missing["kitchen"], on_disk)
            + "import data you hold with `python -m benchmark.datasets import kitchen --format "
            "{d4rl,minari,npz} --source ...` (D4RL HDF5, Minari, D5RL NPZ; see --help), or generate our "
            "scripted demonstrations with `python -m benchmark.datasets generate kitchen` (the paper's 563 "
            "episodes, about 40 minutes on one core; `--episodes N` for fewer, `--workers N` for more "
            "processes) and run with `--dataset kitchen/scripted`"
        )
    return f"missing dataset(s) (no manifest.json): {where}. " + "; ".join(how)


def missing_datasets(runs: list[RunSpec]) -> dict[str, dict[str, Path]]:
    """{domain: {task: dataset path}} of the planned runs whose dataset is missing (dry runs only)."""
    out: dict[str, dict[str, Path]] = {}
    for r in runs:
        if r.missing_dataset:
            out.setdefault(r.task.domain, {})[r.task.name] = r.dataset
    return out


def describe(r: RunSpec, profile: str) -> str:
    """One line of a plan: the run's updates and env steps, where it runs and its directory."""
    s = r.schedule
    ep_len = r.env_overrides.get("episode_length", r.task.episode_length)
    env_steps = s.online_episodes * ep_len * r.task.action_repeat
    return (
        f"{r.task.name:24s} {r.algo:10s} seed {r.seed}: {s.offline_steps} offline + "
        f"{s.online_episodes}x{s.updates_per_episode} online updates, {env_steps} env steps "
        f"[{profile}, {r.device}] -> {r.dir}" + ("  [dataset missing]" if r.missing_dataset else "")
    )


def missing_datasets_note(runs: list[RunSpec]) -> str | None:
    """For a dry run: how to get the datasets the plan lacks (None when none is missing)."""
    missing = missing_datasets(runs)
    return f"to get the missing data: {missing_datasets_message(missing)}" if missing else None


# The options ``plan`` reads and their defaults, which the run CLI (``benchmark/run.py``) shows.
PLAN_DEFAULTS = {
    "algos": "bc",
    "tasks": "metaworld/drawer-open",
    "seeds": "0",
    "profile": "paper",
    "out": "results",
    "data_dir": None,
    "dataset": None,
    "device": "auto",
    "imports": [],
    "set": {},
    "dry_run": False,
}


def plan_args(**values) -> argparse.Namespace:
    """The options ``plan`` reads, at their defaults, with ``values`` on top (for a run planned again in a
    child process, and for a sweep file's runs)."""
    return argparse.Namespace(**{**PLAN_DEFAULTS, "imports": [], "set": {}, **values})


def load_yaml(path: str | Path, what: str) -> dict:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{what} {path}: no such file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"{what} {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{what} {path}: expected a mapping of keys to values at the top level")
    return data
