"""Franka Kitchen datasets: import the relay-policy-learning demonstrations a user holds, render
every state to 64x64 with the LEXA-view camera, recompute each task's reward, and store them.

Sources (none can be downloaded by this code; point it at your copy):

* ``d4rl``   - D4RL's kitchen HDF5 files (``kitchen_*-v0.hdf5``): ``observations`` (N, 60) whose first
  30 columns are the joint positions, ``actions`` (N, 9), and ``terminals``/``timeouts`` ending episodes.
* ``minari`` - a Minari dataset id (``D4RL/kitchen/mixed-v2`` ...) found under ``$MINARI_DATASETS_PATH``:
  ``observation`` (T+1, 59) = robot qpos 9, robot qvel 9, object qpos 21, object qvel 20.
* ``npz``    - a folder of per-episode NPZ files (Dreamer / D5RL style) with a joint-position array
  (``qpos``, or a 59- or 60-column ``observation``/``state``) and ``action``; when ``action`` has as
  many rows as the states, row 0 is Dreamer's placeholder and is dropped.
  With ``image_key`` (e.g. D5RL's ``extra_image_camera_12_rgb``, the LEXA view) the images are read
  from that array instead of rendered, and each task's reward is the sum of the per-object columns
  ``reward <object>`` over the task's objects (an object is done where its column is > 0). Such
  files hold no object joint positions, so these episodes have no ``qpos`` array (it is optional in
  the format); everything else is as for rendered episodes.

The same demonstrations serve both tasks; only the reward (objects of the task in their goal
configuration) differs, so each source episode is rendered once and written to both datasets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from benchmark.datasets.format import DatasetError
from benchmark.tasks.envs.kitchen import KITCHEN_TASKS, N_QPOS, objects_done

GENERATOR = "kitchen-import"
GENERATOR_VERSION = 1
FORMATS = ("d4rl", "minari", "npz")


def _qpos_from_observation(obs: np.ndarray, where: str) -> np.ndarray:
    """Joint positions from a D4RL (60-column) or gymnasium-robotics/Minari (59-column) state vector."""
    if obs.shape[-1] == 60:  # D4RL: robot qpos 9, object qpos 21, goal 30
        return obs[:, :N_QPOS]
    if obs.shape[-1] == 59:  # FrankaKitchen-v1: robot qpos 9, robot qvel 9, object qpos 21, object qvel 20
        return np.concatenate([obs[:, :9], obs[:, 18:39]], axis=1)
    if obs.shape[-1] == N_QPOS:
        return obs
    raise DatasetError(
        f"{where}: cannot find joint positions in a {obs.shape[-1]}-column state "
        f"(expected 30 qpos, 59 FrankaKitchen-v1 or 60 D4RL columns)"
    )


def read_d4rl(path: str | Path) -> Iterator[dict[str, np.ndarray]]:
    import h5py

    path = Path(path)
    if not path.exists():
        raise DatasetError(
            f"{path} does not exist: download D4RL's kitchen HDF5 (e.g. kitchen_mixed-v0.hdf5) "
            f"and pass its path with --source"
        )
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path} is not a readable HDF5 file ({exc})") from exc
    with f:
        for key in ("observations", "actions"):
            if key not in f:
                raise DatasetError(f"{path}: no {key!r} array; a D4RL file has {sorted(f.keys())}")
        obs = np.asarray(f["observations"], np.float64)
        actions = np.asarray(f["actions"], np.float32)
        n = len(obs)
        ends = np.zeros(n, bool)
        for key in ("terminals", "timeouts"):
            if key in f:
                ends |= np.asarray(f[key], bool)
    qpos = _qpos_from_observation(obs, str(path))
    # An episode runs from one boundary to the next; its last row is the final state (no next state
    # is stored in D4RL's kitchen files, so that row's action is dropped).
    starts = np.concatenate([[0], np.flatnonzero(ends)[:-1] + 1]) if ends.any() else np.array([0])
    stops = np.flatnonzero(ends) + 1 if ends.any() else np.array([n])
    if stops[-1] < n:  # rows after the last boundary form a final episode
        starts, stops = np.append(starts, stops[-1]), np.append(stops, n)
    for s, e in zip(starts, stops):
        if e - s >= 2:
            yield {"qpos": qpos[s:e], "action": actions[s : e - 1]}


def read_minari(dataset_id: str, download: bool = False) -> Iterator[dict[str, np.ndarray]]:
    """A Minari dataset's episodes; ``download``: let Minari fetch it first where it is not local (needs
    network access; Minari keeps it under ``$MINARI_DATASETS_PATH``)."""
    import minari

    try:
        dataset = minari.load_dataset(dataset_id, download=download)
    except Exception as exc:
        said = " ".join(str(exc).split())
        if download:
            raise DatasetError(
                f"cannot download Minari dataset {dataset_id!r} ({type(exc).__name__}: {said}); "
                f"without network access, download it elsewhere (`minari download {dataset_id}`), "
                f"copy it under MINARI_DATASETS_PATH and import without --download"
            ) from exc
        raise DatasetError(
            f"cannot load Minari dataset {dataset_id!r} ({said}); pass --download to let Minari "
            f"fetch it, or download it where it can be reached (`minari download {dataset_id}`) "
            f"and set MINARI_DATASETS_PATH"
        ) from exc
    for ep in dataset.iterate_episodes():
        obs = ep.observations["observation"] if isinstance(ep.observations, dict) else ep.observations
        yield {
            "qpos": _qpos_from_observation(np.asarray(obs), f"{dataset_id} episode {ep.id}"),
            "action": np.asarray(ep.actions, np.float32),
        }


def _image_episode(data: dict[str, np.ndarray], file: Path, image_key: str, objects) -> dict[str, np.ndarray]:
    """An image-only (D5RL-style) episode: images from ``image_key``, rewards from ``reward <object>``."""
    needed = [image_key, "action"] + [f"reward {o}" for o in objects]
    missing = [k for k in needed if k not in data]
    if missing:
        raise DatasetError(
            f"{file}: no {', '.join(repr(k) for k in missing)} array(s); it has {sorted(data)}"
        )
    images = np.asarray(data[image_key])
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] < 2:
        raise DatasetError(f"{file}: {image_key!r} must be (T+1, H, W, 3) images, got shape {images.shape}")
    if images.dtype != np.uint8:
        raise DatasetError(f"{file}: {image_key!r} must be uint8 images, got dtype {images.dtype}")
    n = len(images)

    def per_step(key):  # Dreamer layout: row t belongs to image t, row 0 (the reset) is a placeholder
        arr = np.asarray(data[key])
        if len(arr) == n:
            arr = arr[1:]
        if len(arr) != n - 1:
            raise DatasetError(
                f"{file}: {key!r} has {len(arr)} rows for {n} images (expected {n} or {n - 1})"
            )
        return arr

    return {
        "image": images,
        "action": per_step("action").astype(np.float32),
        "object_reward": {o: per_step(f"reward {o}").astype(np.float32).reshape(n - 1) for o in objects},
    }


def read_npz(
    folder: str | Path,
    image_key: str | None = None,
    objects=tuple(dict.fromkeys(KITCHEN_TASKS["mixed"] + KITCHEN_TASKS["partial"])),
) -> Iterator[dict[str, np.ndarray]]:
    """Per-episode NPZ files: joint positions to render, or (``image_key``) stored images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder} is not a folder of .npz episode files")
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise DatasetError(f"no .npz files in {folder}")
    for file in files:
        with np.load(file, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
        if image_key is not None:
            yield _image_episode(data, file, image_key, objects)
            continue
        state_key = next(
            (k for k in ("qpos", "state", "observation", "observations") if k in data and data[k].ndim == 2),
            None,
        )
        action_key = next((k for k in ("action", "actions") if k in data), None)
        if state_key is None or action_key is None:
            raise DatasetError(
                f"{file}: needs joint positions ('qpos', or a 2-D 'state'/'observation') and "
                f"'action' to render and recompute rewards; it has {sorted(data)}"
            )
        qpos = _qpos_from_observation(np.asarray(data[state_key], np.float64), str(file))
        action = np.asarray(data[action_key], np.float32)
        if len(action) == len(qpos):  # Dreamer layout: action[t] led to state t; action[0] is a placeholder
            action = action[1:]
        if len(action) != len(qpos) - 1:
            raise DatasetError(f"{file}: {len(action)} actions for {len(qpos)} states")
        yield {"qpos": qpos, "action": action}


READERS = {"d4rl": read_d4rl, "minari": read_minari, "npz": read_npz}


def task_episode(raw: dict[str, np.ndarray], images: np.ndarray, objects) -> dict[str, np.ndarray]:
    """One task's view of a source episode: reward = the task's objects in goal configuration after each step
    (from the joint positions, or for image-only sources the sum of the per-object reward columns)."""
    T = len(raw["action"])
    if "qpos" in raw:
        done = objects_done(raw["qpos"][1:], objects)
        reward = done.sum(axis=1).astype(np.float32)
    else:
        columns = np.stack([raw["object_reward"][o] for o in objects], axis=1)
        done, reward = columns > 0, columns.sum(axis=1).astype(np.float32)
    episode = {
        "image": images,
        "action": raw["action"].astype(np.float32),
        "reward": reward,
        "success": done.all(axis=1),
        "terminal": np.zeros(T, bool),
        "objects_done": done,
    }
    if "qpos" in raw:
        episode["qpos"] = raw["qpos"].astype(np.float32)
    return episode


def import_episodes(raw_episodes, writers: dict[str, Any], *, image_size: int = 64, progress=None) -> int:
    """Render each raw episode once and add it to every task's writer; returns the episode count."""
    from benchmark.tasks.envs.kitchen import KitchenPixelEnv

    env = None
    count = 0
    try:
        for raw in raw_episodes:
            if "image" in raw:  # stored images (image-only sources): nothing to render
                images = raw["image"]
            else:
                env = env or KitchenPixelEnv(image_size=image_size)
                images = np.stack([env.render_qpos(q) for q in raw["qpos"]])
            for task, writer in writers.items():
                writer.add(task_episode(raw, images, KITCHEN_TASKS[task]))
            count += 1
            if progress is not None:
                progress.update(len(images))
    finally:
        if env is not None:
            env.close()
    return count
