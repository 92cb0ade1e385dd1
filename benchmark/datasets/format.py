"""The on-disk format of every offline dataset in the suite.

A dataset is a folder::

    <data_dir>/<domain>/<task>/
        manifest.json          generator, version, seed, counts, mean return, success rate, checksums
        episodes/000000.npz    one compressed NPZ per episode

An episode of T transitions holds (``image`` has one more row than the per-step arrays: the
observation before every action plus the last one)::

    image         (T+1, 64, 64, 3) uint8    observation o_0 .. o_T
    action        (T, A)          float32   a_t taken at o_t (online episodes: the policy's action as drawn)
    reward        (T,)            float32   r_t received for (o_t, a_t)
    success       (T,)            bool      the task was solved at o_{t+1}
    terminal      (T,)            bool      o_{t+1} ends the MDP (no bootstrapping); time limits are not
                                            terminal
  optional:
    objects_done  (T, K)          bool      Kitchen: each task object in its goal configuration at o_{t+1}
    qpos          (T+1, nq)       float32   simulator joint positions behind each image
    executed_action (T, A)        float32   online episodes: the action the env executed (``action``
                                            clipped to the action space)

Datasets are written into a temporary folder and renamed into place, so a crash never leaves
half a dataset behind, and an existing dataset is only replaced when asked to.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

FORMAT = "moto-benchmark-episodes"
FORMAT_VERSION = 1
REQUIRED = {
    "image": np.uint8,
    "action": np.float32,
    "reward": np.float32,
    "success": np.bool_,
    "terminal": np.bool_,
}
OPTIONAL = {"objects_done": np.bool_, "qpos": np.float32, "executed_action": np.float32}


class DatasetError(Exception):
    """A dataset is missing, corrupt or malformed; the message says how to fix it."""


def fix_hint(path: Path) -> str:
    return (
        f"Recreate it with `python -m benchmark.datasets generate ...` or `... import ...` "
        f"(add --overwrite), or delete {path}."
    )


def validate_episode(ep: dict[str, np.ndarray], where: str = "episode") -> int:
    """Check keys, dtypes and shapes; returns the number of transitions T."""
    missing = [k for k in REQUIRED if k not in ep]
    if missing:
        raise DatasetError(f"{where}: missing arrays {missing}; an episode needs {sorted(REQUIRED)}")
    unknown = [k for k in ep if k not in REQUIRED and k not in OPTIONAL]
    if unknown:
        raise DatasetError(
            f"{where}: unknown arrays {unknown}; allowed: {sorted(REQUIRED) + sorted(OPTIONAL)}"
        )
    for key, arr in ep.items():
        dtype = {**REQUIRED, **OPTIONAL}[key]
        if np.asarray(arr).dtype != dtype:
            raise DatasetError(
                f"{where}: {key!r} has dtype {np.asarray(arr).dtype}, expected {np.dtype(dtype)}"
            )
    image = ep["image"]
    if image.ndim != 4 or image.shape[-1] != 3:
        raise DatasetError(f"{where}: 'image' must be (T+1, H, W, 3), got {image.shape}")
    T = image.shape[0] - 1
    if T < 1:
        raise DatasetError(f"{where}: an episode needs at least one transition, got {T}")
    lead = {
        "action": T,
        "reward": T,
        "success": T,
        "terminal": T,
        "objects_done": T,
        "qpos": T + 1,
        "executed_action": T,
    }
    for key, n in lead.items():
        if key in ep and ep[key].shape[0] != n:
            raise DatasetError(
                f"{where}: {key!r} has {ep[key].shape[0]} rows but the episode has "
                f"{T} transitions ({T + 1} images); expected {n}"
            )
    for key in ("reward", "success", "terminal"):
        if ep[key].ndim != 1:
            raise DatasetError(f"{where}: {key!r} must be 1-D, got shape {ep[key].shape}")
    if ep["action"].ndim != 2:
        raise DatasetError(f"{where}: 'action' must be (T, A), got {ep['action'].shape}")
    if not np.all(np.isfinite(ep["action"])) or not np.all(np.isfinite(ep["reward"])):
        raise DatasetError(f"{where}: non-finite values in 'action' or 'reward'")
    return T


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` with fixed zip timestamps, so equal arrays give byte-identical files
    (and a dataset generated twice from the same seed has the same checksum)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _combined_checksum(files: list[dict[str, Any]]) -> str:
    return hashlib.sha256(
        "".join(f"{f['name']}:{f['length']}:{f['sha256']}\n" for f in files).encode()
    ).hexdigest()


class DatasetWriter:
    """Streams episodes into a new dataset folder; ``commit()`` moves it into place atomically.

    Use as a context manager: leaving the block normally commits, an exception discards the
    temporary folder and leaves any existing dataset untouched.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        task: str,
        generator: dict[str, Any],
        seed: int | None,
        overwrite: bool = False,
    ):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise DatasetError(f"{self.path} already exists; pass --overwrite to replace it")
        # Folders made here, removed again by abort() if nothing else went into them.
        self._made = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        shutil.rmtree(self._tmp, ignore_errors=True)
        (self._tmp / "episodes").mkdir(parents=True)
        self.header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "task": task,
            "generator": generator,
            "seed": seed,
        }
        self.files: list[dict[str, Any]] = []
        self._shape: tuple | None = None
        self._action_dim: int | None = None

    def add(self, episode: dict[str, np.ndarray]) -> None:
        ep = {k: np.asarray(v) for k, v in episode.items()}
        T = validate_episode(ep, f"episode {len(self.files)}")
        shape, adim = ep["image"].shape[1:], ep["action"].shape[1]
        if self._shape is None:
            self._shape, self._action_dim = shape, adim
        elif (shape, adim) != (self._shape, self._action_dim):
            raise DatasetError(
                f"episode {len(self.files)} has images {shape} and actions ({adim},), "
                f"unlike the first episode's {self._shape} and ({self._action_dim},)"
            )
        name = f"{len(self.files):06d}.npz"
        save_npz(self._tmp / "episodes" / name, ep)
        self.files.append(
            {
                "name": name,
                "length": T,
                "return": float(ep["reward"].sum()),
                "success": bool(ep["success"].any()),
                "sha256": _sha256(self._tmp / "episodes" / name),
            }
        )

    def add_file(self, file: Path, entry: dict[str, Any], image_shape, action_dim: int) -> None:
        """Copy an episode file of another dataset as it is (its manifest entry and checksum carry over)."""
        if self._shape is None:
            self._shape, self._action_dim = tuple(image_shape), action_dim
        elif (tuple(image_shape), action_dim) != (self._shape, self._action_dim):
            raise DatasetError(
                f"{file}: images {tuple(image_shape)} / actions ({action_dim},) differ from this dataset's"
            )
        new = dict(entry, name=f"{len(self.files):06d}.npz")
        shutil.copyfile(file, self._tmp / "episodes" / new["name"])
        self.files.append(new)

    def commit(self, **extra: Any) -> dict[str, Any]:
        if not self.files:
            raise DatasetError(f"no episodes were added to {self.path}")
        returns = [f["return"] for f in self.files]
        manifest = {
            **self.header,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "episodes": len(self.files),
            "transitions": int(sum(f["length"] for f in self.files)),
            "mean_return": float(np.mean(returns)),
            "success_rate": float(np.mean([f["success"] for f in self.files])),
            "image_shape": list(self._shape),
            "action_dim": int(self._action_dim),
            **extra,
            "checksum": _combined_checksum(self.files),
            "files": self.files,
        }
        tmp_manifest = self._tmp / "manifest.json.tmp"
        tmp_manifest.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp_manifest, self._tmp / "manifest.json")
        old = None
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
            os.replace(self.path, old)
        os.replace(self._tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return manifest

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
        for folder in self._made:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): keep it
                break

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.abort()
        return False


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    mfile = path / "manifest.json"
    if not mfile.exists():
        raise DatasetError(
            f"no dataset at {path} (no {mfile.name}). Create MetaWorld datasets with "
            f"`python -m benchmark.datasets generate metaworld`, Kitchen ones with "
            f"`python -m benchmark.datasets import kitchen --format ... --source ...`."
        )
    try:
        manifest = json.loads(mfile.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{mfile} is not valid JSON ({exc}). {fix_hint(path)}") from exc
    if manifest.get("format") != FORMAT:
        raise DatasetError(f"{mfile} is not a {FORMAT} manifest (format={manifest.get('format')!r})")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise DatasetError(
            f"{mfile} has format version {manifest['format_version']}, newer than this code "
            f"reads ({FORMAT_VERSION}); update the benchmark package"
        )
    return manifest


def load_episode(path: str | Path, entry: dict[str, Any]) -> dict[str, np.ndarray]:
    file = Path(path) / "episodes" / entry["name"]
    try:
        with np.load(file, allow_pickle=False) as npz:
            ep = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise DatasetError(f"{file} is missing. {fix_hint(Path(path))}") from exc
    except Exception as exc:  # zipfile / pickle / value errors from a damaged file
        raise DatasetError(
            f"{file} cannot be read ({type(exc).__name__}: {exc}). {fix_hint(Path(path))}"
        ) from exc
    T = validate_episode(ep, str(file))
    if T != entry["length"]:
        raise DatasetError(
            f"{file} has {T} transitions, the manifest says {entry['length']}. {fix_hint(Path(path))}"
        )
    return ep


def iter_episodes(path: str | Path) -> Iterator[dict[str, np.ndarray]]:
    manifest = read_manifest(path)
    for entry in manifest["files"]:
        yield load_episode(path, entry)


def load_episodes(path: str | Path) -> list[dict[str, np.ndarray]]:
    return list(iter_episodes(path))


def verify_dataset(path: str | Path) -> dict[str, Any]:
    """Checksums, shapes and dtypes of every episode against the manifest; raises DatasetError."""
    path = Path(path)
    manifest = read_manifest(path)
    files = manifest.get("files", [])
    if _combined_checksum(files) != manifest.get("checksum"):
        raise DatasetError(
            f"{path}/manifest.json: the file list does not match its checksum (edited?). {fix_hint(path)}"
        )
    if len(files) != manifest.get("episodes"):
        raise DatasetError(
            f"{path}/manifest.json lists {len(files)} files but says {manifest.get('episodes')} episodes"
        )
    for entry in files:
        file = path / "episodes" / entry["name"]
        if not file.exists():
            raise DatasetError(f"{file} is missing. {fix_hint(path)}")
        if _sha256(file) != entry["sha256"]:
            raise DatasetError(f"{file} does not match its checksum: the file is corrupt. {fix_hint(path)}")
        ep = load_episode(path, entry)
        if (
            list(ep["image"].shape[1:]) != manifest["image_shape"]
            or ep["action"].shape[1] != manifest["action_dim"]
        ):
            raise DatasetError(
                f"{file}: images {ep['image'].shape[1:]} / actions {ep['action'].shape[1:]} differ "
                f"from the manifest's {manifest['image_shape']} / ({manifest['action_dim']},)"
            )
    return manifest
