"""Probe sets: held-out episodes kept next to a training dataset, for the model diagnostics only.

A probe set is a dataset (the same format, ``format.py``) named ``<dataset>-probe`` in the same folder,
e.g. ``kitchen/scripted-partial-probe`` next to ``kitchen/scripted-partial`` (a subset of it, such as
``kitchen/scripted-partial-25ep-seed0``, uses its parent's probe set); its manifest has a
``probe`` entry (the task, the training dataset it belongs to, how its episodes were chosen). A run never
trains on it: ``benchmark.run`` refuses a probe set as a run's dataset, and the protocol hands the probe
episodes of a run's dataset to the agent in ``RunContext.probe_episodes``, where the world-model agents
predict rewards along them for paper Fig. 4 (``algorithms/diagnostics.py``, rows ``episode_set=probe``).

Kitchen's probe sets (``python -m benchmark.datasets probe kitchen/scripted``) are episodes of the scripted
demonstrator that do all four objects of the task: on ``partial`` the datasets never hold one (the
paper's data neither), so the model has never seen a reward of 4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.datasets.format import DatasetError, iter_episodes, read_manifest

SUFFIX = "-probe"


def probe_path(dataset: str | Path) -> Path:
    """Where the probe set of ``dataset`` lives: ``<dataset>-probe`` beside it."""
    dataset = Path(dataset)
    return dataset.with_name(dataset.name + SUFFIX)


def is_probe(manifest: dict[str, Any]) -> bool:
    return "probe" in manifest


def subset_parent(dataset: str | Path) -> Path | None:
    """The dataset that ``dataset`` is a subset of (``python -m benchmark.datasets subset``), where it lies
    beside it unchanged (same checksum as when the subset was drawn); None otherwise."""
    dataset = Path(dataset)
    if not (dataset / "manifest.json").exists():
        return None
    generator = read_manifest(dataset).get("generator") or {}
    if generator.get("name") != "subset" or not generator.get("parent"):
        return None
    parent = dataset.with_name(Path(generator["parent"]).name)
    if not (parent / "manifest.json").exists():
        return None
    return parent if read_manifest(parent).get("checksum") == generator.get("parent_checksum") else None


def find_probe(dataset: str | Path, task: str) -> Path | None:
    """The probe set of ``dataset`` for ``task``, or None when there is none; a DatasetError when the
    folder named as its probe set is not one, or is one of another task. A subset without a probe set
    of its own uses its parent's (held out from the parent, so from every subset of it)."""
    path = probe_path(dataset)
    if not (path / "manifest.json").exists():
        parent = subset_parent(dataset)
        return None if parent is None else find_probe(parent, task)
    manifest = read_manifest(path)
    if not is_probe(manifest):
        raise DatasetError(
            f"{path} is named as the probe set of {Path(dataset).name} but its manifest has no 'probe' "
            f"entry; rename it or write it with `python -m benchmark.datasets probe`"
        )
    if manifest["task"] != task:
        raise DatasetError(f"{path} is a probe set of {manifest['task']}, not of {task}")
    return path


def probe_record(dataset: str | Path, task: str) -> dict[str, Any] | None:
    """What a run's config records of the probe set of its dataset: ``{path, checksum, episodes}``, or
    None without one."""
    path = find_probe(dataset, task)
    if path is None:
        return None
    manifest = read_manifest(path)
    return {"path": str(path), "checksum": manifest["checksum"], "episodes": manifest["episodes"]}


def load_probe(dataset: str | Path, task: str) -> list[dict]:
    """The probe episodes of ``dataset`` for ``task`` (none without a probe set)."""
    path = find_probe(dataset, task)
    return [] if path is None else list(iter_episodes(path))
