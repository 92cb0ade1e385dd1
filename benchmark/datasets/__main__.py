"""python -m benchmark.datasets {generate,probe,import,subset,verify,stats} -- see --help of each."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from benchmark.core.cli import Parser, entry
from benchmark.core.console import print_table
from benchmark.datasets.format import DatasetError, DatasetWriter, read_manifest, verify_dataset
from benchmark.datasets.probe import is_probe, probe_path
from benchmark.tasks import default_data_dir, get_task, resolve_tasks


def _data_dir(args) -> Path:
    return Path(args.data_dir) if args.data_dir else default_data_dir()


def _known_datasets(root: Path) -> list[str]:
    return sorted(
        str(p.parent.relative_to(root))
        for p in root.glob("**/manifest.json")
        if not p.parent.name.startswith(".")
    )


def _names(spec: list[str], root: Path) -> list[str]:
    if not spec or spec == ["all"]:
        names = _known_datasets(root)
        if not names:
            raise DatasetError(
                f"no datasets under {root}; create them with "
                "`python -m benchmark.datasets generate metaworld`"
            )
        return names
    return spec


# The stats table: our counts next to Table 1's (``generate`` adds the attempts after the episode count).
STATS_COLUMNS = [
    "dataset",
    "episodes",
    "transitions",
    "mean_return",
    "success",
    "paper_episodes",
    "paper_transitions",
    "paper_return",
    "paper_success",
]


def _stats_row(name: str, m: dict) -> dict:
    return {
        "dataset": name,
        "episodes": m["episodes"],
        "transitions": m["transitions"],
        "mean_return": m["mean_return"],
        "success": m["success_rate"],
    }


def cmd_generate(args) -> None:
    from tqdm import tqdm

    from benchmark.datasets import metaworld as gen

    if args.tasks.strip() in ("kitchen", "kitchen/scripted"):
        return cmd_generate_kitchen(args)
    if args.workers != 1 or args.episode_length is not None:
        raise DatasetError(
            "--workers and --episode-length are for `generate kitchen`; MetaWorld datasets are "
            "generated in one process with the task's episode length"
        )
    args.episodes = 10 if args.episodes is None else args.episodes
    args.action_noise = 0.0 if args.action_noise is None else args.action_noise
    if args.episodes < 1:
        raise DatasetError(f"--episodes must be at least 1, got {args.episodes}")
    if args.max_attempts is not None and args.max_attempts < args.episodes:
        raise DatasetError(
            f"--max-attempts must be at least --episodes ({args.episodes}), got {args.max_attempts}"
        )
    if not 0.0 <= args.action_noise <= 1.0:
        raise DatasetError(f"--action-noise must be between 0 and 1, got {args.action_noise}")
    root = _data_dir(args)
    tasks = resolve_tasks(args.tasks)
    not_mw = [t for t in tasks if get_task(t).domain != "metaworld"]
    if not_mw:
        raise DatasetError(
            f"{not_mw} cannot be generated one task at a time: `generate kitchen` writes the "
            f"scripted Kitchen data (kitchen/scripted-mixed, kitchen/scripted-partial); the "
            f"paper's demonstrations are imported with `import kitchen --format ... --source ...`"
        )
    rows = []
    for name in tasks:
        spec = get_task(name)
        path = root / name
        if path.exists() and not args.overwrite:
            m = read_manifest(path)
            print(f"{path} exists, kept (pass --overwrite to regenerate)")
            rows.append({**_stats_row(name, m), "attempts": m.get("attempts", "?"), **_paper(spec)})
            continue
        t0 = time.time()
        with tqdm(desc=name, unit="ep", leave=False, disable=args.quiet) as bar:
            writer = DatasetWriter(
                path,
                task=name,
                seed=args.seed,
                overwrite=args.overwrite,
                generator={
                    "name": gen.GENERATOR,
                    "version": gen.GENERATOR_VERSION,
                    "episode_length": spec.demo_length,
                    "action_repeat": spec.action_repeat,
                },
            )
            try:
                counts = gen.generate(
                    spec,
                    writer,
                    episodes=args.episodes,
                    seed=args.seed,
                    action_noise=args.action_noise,
                    max_attempts=args.max_attempts,
                    progress=bar,
                )
            except BaseException:
                writer.abort()
                raise
            m = writer.commit(attempts=counts["attempts"], action_noise=counts["action_noise"])
        print(
            f"{name}: {m['episodes']} episodes ({counts['attempts']} attempts) in {time.time() - t0:.0f} s "
            f"-> {path}"
        )
        rows.append({**_stats_row(name, m), "attempts": counts["attempts"], **_paper(spec)})
    print()
    print_table(rows, STATS_COLUMNS[:2] + ["attempts"] + STATS_COLUMNS[2:])


def cmd_generate_kitchen(args) -> None:
    from tqdm import tqdm

    from benchmark.datasets import kitchen_demo as gen

    episodes = gen.PAPER_EPISODES if args.episodes is None else args.episodes
    noise = gen.DEFAULT_NOISE if args.action_noise is None else args.action_noise
    if episodes < 1:
        raise DatasetError(f"--episodes must be at least 1, got {episodes}")
    if args.workers < 1:
        raise DatasetError(f"--workers must be at least 1, got {args.workers}")
    if not 0.0 <= noise <= 1.0:
        raise DatasetError(f"--action-noise must be between 0 and 1, got {noise}")
    steps = gen.EPISODE_LENGTH if args.episode_length is None else args.episode_length
    if steps < 1:
        raise DatasetError(f"--episode-length must be at least 1, got {steps}")
    root = _data_dir(args)
    paths = {t: root / name for t, name in gen.NAMES.items()}
    for p in paths.values():
        if p.exists() and not args.overwrite:
            raise DatasetError(f"{p} already exists; pass --overwrite to replace it")
    generator = {
        "name": gen.GENERATOR,
        "version": gen.GENERATOR_VERSION,
        "episode_length": steps,
        "action_repeat": 1,
        "note": "scripted demonstrator, not the paper's relay-policy-learning data",
    }
    writers = {
        t: DatasetWriter(
            p, task=f"kitchen/{t}", generator=generator, seed=args.seed, overwrite=args.overwrite
        )
        for t, p in paths.items()
    }
    t0 = time.time()
    try:
        with tqdm(
            desc="kitchen/scripted", unit="frame", total=episodes * (steps + 1), disable=args.quiet
        ) as bar:
            extra = gen.generate(
                writers,
                episodes=episodes,
                seed=args.seed,
                noise=noise,
                workers=args.workers,
                steps=steps,
                progress=bar,
                warn=lambda text: tqdm.write(f"warning: {text}", file=sys.stderr),
            )
        manifests = {t: w.commit(**extra) for t, w in writers.items()}
    except BaseException:
        for w in reversed(list(writers.values())):  # the last made first: shared parent folders empty out
            w.abort()
        raise
    wall = time.time() - t0
    frames = episodes * (steps + 1)
    print(
        f"kitchen/scripted: {episodes} episodes, {frames} frames in {wall:.0f} s "
        f"({frames / wall:.1f} frames/s, {args.workers} worker(s)) "
        f"-> {', '.join(str(p) for p in paths.values())}"
    )
    print_table(
        [_kitchen_row(str(paths[t].relative_to(root)), m) for t, m in manifests.items()]
        + [_kitchen_paper_row()],
        KITCHEN_COLUMNS,
    )


KITCHEN_COLUMNS = ["dataset", "episodes", "transitions", "mean_return", "success", "objects_per_episode"]


def _kitchen_row(name: str, m: dict) -> dict:
    return {**_stats_row(name, m), "objects_per_episode": m.get("objects_per_episode", float("nan"))}


def _kitchen_paper_row() -> dict:
    p = get_task("kitchen/mixed").paper_dataset
    return {
        "dataset": "paper (relay-policy-learning)",
        "episodes": p["episodes"],
        "transitions": p["transitions"],
        "mean_return": p["mean_return"],
        "success": p["success_rate"],
        "objects_per_episode": p.get("objects_per_episode", float("nan")),
    }


def _paper(spec) -> dict:
    p = spec.paper_dataset
    return {
        "paper_episodes": p.get("episodes", ""),
        "paper_transitions": p.get("transitions", ""),
        "paper_return": p.get("mean_return", ""),
        "paper_success": p.get("success_rate", ""),
    }


def _probe_targets(name: str, root: Path) -> list[str]:
    """The Kitchen datasets a ``probe`` argument names: a dataset, or a family (``kitchen/scripted``: its
    datasets ``kitchen/scripted-<task>`` that exist), as ``--dataset`` reads it."""
    from benchmark.tasks.envs.kitchen import KITCHEN_TASKS

    if (root / name / "manifest.json").exists():
        return [name]
    found = [f"{name}-{t}" for t in KITCHEN_TASKS if (root / f"{name}-{t}" / "manifest.json").exists()]
    if not found:
        read_manifest(root / name)  # the missing-dataset error
    return found


def cmd_probe(args) -> None:
    from tqdm import tqdm

    from benchmark.datasets import kitchen_demo as gen

    noise = gen.DEFAULT_NOISE if args.action_noise is None else args.action_noise
    steps = gen.EPISODE_LENGTH if args.episode_length is None else args.episode_length
    if args.episodes < 1:
        raise DatasetError(f"--episodes must be at least 1, got {args.episodes}")
    if args.workers < 1:
        raise DatasetError(f"--workers must be at least 1, got {args.workers}")
    if not 0.0 <= noise <= 1.0:
        raise DatasetError(f"--action-noise must be between 0 and 1, got {noise}")
    if steps < 1:
        raise DatasetError(f"--episode-length must be at least 1, got {steps}")
    if args.max_attempts is not None and args.max_attempts < args.episodes:
        raise DatasetError(
            f"--max-attempts must be at least --episodes ({args.episodes}), got {args.max_attempts}"
        )
    root = _data_dir(args)
    targets = {}
    for name in dict.fromkeys(n for spec in args.datasets for n in _probe_targets(spec, root)):
        m = read_manifest(root / name)
        if is_probe(m):
            raise DatasetError(f"{name} is a probe set itself; name the training dataset it belongs to")
        task = str(m.get("task", ""))
        if not task.startswith("kitchen/") or task.removeprefix("kitchen/") not in gen.PROBE_STREAM:
            raise DatasetError(
                f"{name} is a dataset of {task or 'no task'}; probe sets are made for Kitchen datasets "
                f"(kitchen/mixed, kitchen/partial) only"
            )
        path = probe_path(root / name)
        if path.exists() and not args.overwrite:
            raise DatasetError(f"{path} already exists; pass --overwrite to replace it")
        targets[name] = (task, m, path)
    generator = {
        "name": "kitchen-scripted-probe",
        "version": gen.GENERATOR_VERSION,
        "episode_length": steps,
        "action_repeat": 1,
        "note": "held-out episodes of the scripted demonstrator that do the task's four objects; "
        "for the model diagnostics (Fig. 4), never trained on",
    }
    rows = []
    for name, (task, m, path) in targets.items():
        t0 = time.time()
        writer = DatasetWriter(path, task=task, generator=generator, seed=args.seed, overwrite=args.overwrite)
        try:
            with tqdm(desc=str(path.relative_to(root)), unit="frame", disable=args.quiet) as bar:
                probe = gen.generate_probe(
                    writer,
                    task.removeprefix("kitchen/"),
                    episodes=args.episodes,
                    seed=args.seed,
                    noise=noise,
                    workers=args.workers,
                    steps=steps,
                    max_attempts=args.max_attempts,
                    progress=bar,
                    warn=lambda text: tqdm.write(f"warning: {text}", file=sys.stderr),
                )
            if not probe["all_objects_done"]:
                raise DatasetError(
                    f"none of {probe['attempts']} scripted episodes did all four objects of {task} in "
                    f"{steps} steps: no probe set written (longer --episode-length, more --max-attempts)"
                )
            probe.update(of_dataset=name, of_checksum=m["checksum"])
            written = writer.commit(probe=probe)
        except BaseException:
            writer.abort()
            raise
        print(
            f"{path.relative_to(root)}: {probe['all_objects_done']} of {probe['attempts']} attempts end with "
            f"all of {', '.join(probe['objects'])} done (asked for {args.episodes}) in "
            f"{time.time() - t0:.0f} s -> {path}"
        )
        rows.append(_stats_row(str(path.relative_to(root)), written))
    print_table(rows, ["dataset", "episodes", "transitions", "mean_return", "success"])


def cmd_import(args) -> None:
    from tqdm import tqdm

    from benchmark.datasets import kitchen as imp
    from benchmark.tasks.envs.kitchen import KITCHEN_TASKS

    if args.domain != "kitchen":
        raise DatasetError(
            f"only kitchen data is imported (got {args.domain!r}); MetaWorld data is generated"
        )
    root = _data_dir(args)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for t in tasks:
        get_task(f"kitchen/{t}")
    if args.image_key and args.format != "npz":
        raise DatasetError(
            f"--image-key reads images stored in NPZ files; it needs --format npz (got {args.format})"
        )
    paths = {t: root / args.prefix / t if args.prefix else root / "kitchen" / t for t in tasks}
    for t, p in paths.items():
        if p.exists() and not args.overwrite:
            raise DatasetError(f"{p} already exists; pass --overwrite to replace it")
    if args.limit < 0:
        raise DatasetError(f"--limit must be 0 (all) or a positive number of episodes, got {args.limit}")
    generator = {
        "name": imp.GENERATOR,
        "version": imp.GENERATOR_VERSION,
        "source_format": args.format,
        "source": str(args.source),
        **({"image_key": args.image_key} if args.image_key else {}),
    }
    if args.image_key:
        objects = tuple(dict.fromkeys(o for t in tasks for o in KITCHEN_TASKS[t]))
        raw = imp.read_npz(args.source, image_key=args.image_key, objects=objects)
    elif args.format == "minari":
        raw = imp.read_minari(args.source, download=args.download)
    else:
        if args.download:
            raise DatasetError("--download fetches Minari datasets only (--format minari)")
        raw = imp.READERS[args.format](args.source)
    if args.limit:
        raw = (ep for i, ep in zip(range(args.limit), raw))
    t0 = time.time()
    writers = {}
    try:
        for t, p in paths.items():
            writers[t] = DatasetWriter(
                p, task=f"kitchen/{t}", generator=generator, seed=None, overwrite=args.overwrite
            )
        with tqdm(
            desc=f"{'read' if args.image_key else 'render'} {args.format}", unit="frame", disable=args.quiet
        ) as bar:
            n = imp.import_episodes(raw, writers, progress=bar)
        manifests = {t: w.commit() for t, w in writers.items()}
    except BaseException:
        for w in reversed(list(writers.values())):  # the last made first: shared parent folders empty out
            w.abort()
        raise
    print(f"imported {n} episodes in {time.time() - t0:.0f} s")
    print_table(
        [_stats_row(str(paths[t].relative_to(root)), m) for t, m in manifests.items()],
        ["dataset", "episodes", "transitions", "mean_return", "success"],
    )


def cmd_subset(args) -> None:
    root = _data_dir(args)
    src = root / args.dataset
    manifest = verify_dataset(src)
    if is_probe(manifest):
        raise DatasetError(
            f"{args.dataset} is a probe set (held-out episodes, never training data); subset the dataset "
            f"it belongs to, {manifest['probe'].get('of_dataset', 'its training dataset')}"
        )
    n = manifest["episodes"]
    if not 0 < args.episodes <= n:
        raise DatasetError(
            f"--episodes must be between 1 and {n} (the episodes in {args.dataset}), got {args.episodes}"
        )
    # Uniformly at random, not by return (paper, Appendix A.2); sorted to keep episode order.
    chosen = np.sort(np.random.default_rng(args.seed).choice(n, size=args.episodes, replace=False))
    name = args.name or f"{args.dataset}-{args.episodes}ep-seed{args.seed}"
    generator = {
        "name": "subset",
        "version": 1,
        "parent": args.dataset,
        "parent_checksum": manifest["checksum"],
        "indices": chosen.tolist(),
        "parent_generator": manifest["generator"],
    }
    writer = DatasetWriter(
        root / name, task=manifest["task"], generator=generator, seed=args.seed, overwrite=args.overwrite
    )
    try:
        for i in chosen:
            entry = manifest["files"][i]
            writer.add_file(
                src / "episodes" / entry["name"], entry, manifest["image_shape"], manifest["action_dim"]
            )
        m = writer.commit()
    except BaseException:
        writer.abort()
        raise
    print(f"wrote {root / name}")
    print_table([_stats_row(name, m)], ["dataset", "episodes", "transitions", "mean_return", "success"])


def cmd_verify(args) -> None:
    root = _data_dir(args)
    for name in _names(args.datasets, root):
        m = verify_dataset(root / name)
        print(
            f"ok  {name}: {m['episodes']} episodes, {m['transitions']} transitions, "
            f"checksum {m['checksum'][:12]}"
        )


def cmd_stats(args) -> None:
    root = _data_dir(args)
    rows = []
    for name in _names(args.datasets, root):
        m = read_manifest(root / name)
        row = _stats_row(name, m)
        try:
            row.update(_paper(get_task(m["task"])))
        except KeyError:
            pass
        rows.append(row)
    print_table(rows, STATS_COLUMNS)
    kitchen = [(r["dataset"], read_manifest(root / r["dataset"])) for r in rows]
    kitchen = [(name, m) for name, m in kitchen if str(m.get("task", "")).startswith("kitchen/")]
    if kitchen:  # Kitchen data next to the paper's (same demonstrations serve both tasks)
        print()
        print_table([_kitchen_row(name, m) for name, m in kitchen] + [_kitchen_paper_row()], KITCHEN_COLUMNS)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m benchmark.datasets", description=__doc__)
    common = Parser(add_help=False)
    common.add_argument("--data-dir", help="dataset folder (default: $BENCHMARK_DATA_DIR or ./datasets)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser(
        "generate",
        parents=[common],
        help="generate datasets with scripted experts "
        "(MetaWorld tasks, or 'kitchen': kitchen/scripted-mixed and kitchen/scripted-partial)",
    )
    g.add_argument(
        "tasks", help="'metaworld', task names (metaworld/door-open), a comma-separated list, or 'kitchen'"
    )
    g.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="MetaWorld: successful episodes per task (default 10, paper: 9-10); "
        "kitchen: episodes (default 563, the paper's count)",
    )
    g.add_argument("--seed", type=int, default=0)
    g.add_argument(
        "--action-noise",
        type=float,
        default=None,
        help="std of Gaussian noise on expert actions (default: MetaWorld 0, kitchen 0.1)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=1,
        help="kitchen: rendering processes (the dataset's bytes do not depend on this)",
    )
    g.add_argument(
        "--episode-length",
        type=int,
        default=None,
        help="kitchen: steps per episode (default 280, the task's; shorter only for quick looks)",
    )
    g.add_argument(
        "--max-attempts", type=int, default=None, help="give up after this many episodes (default 5x)"
    )
    g.add_argument("--overwrite", action="store_true")
    g.set_defaults(func=cmd_generate)

    pr = sub.add_parser(
        "probe",
        parents=[common],
        help="held-out episodes that do a Kitchen task's four objects, beside a dataset as <dataset>-probe "
        "(the model diagnostics' probe set; never trained on)",
    )
    pr.add_argument(
        "datasets",
        nargs="+",
        help="Kitchen datasets (kitchen/scripted-partial, kitchen/partial) or a family (kitchen/scripted)",
    )
    pr.add_argument(
        "--episodes", type=int, default=8, help="episodes per probe set, each doing all four objects (8)"
    )
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--action-noise", type=float, default=None, help="std of the arm's action noise (0.1)")
    pr.add_argument("--workers", type=int, default=1, help="rendering processes (bytes do not depend on it)")
    pr.add_argument(
        "--episode-length", type=int, default=None, help="steps per episode (default 280, the task's)"
    )
    pr.add_argument(
        "--max-attempts", type=int, default=None, help="scripted episodes tried at most (default 3x)"
    )
    pr.add_argument("--overwrite", action="store_true")
    pr.set_defaults(func=cmd_probe)

    i = sub.add_parser("import", parents=[common], help="import Kitchen demonstrations and render them")
    i.add_argument("domain", choices=["kitchen"])
    i.add_argument("--format", required=True, choices=["d4rl", "minari", "npz"])
    i.add_argument(
        "--source", required=True, help="HDF5 file (d4rl), dataset id (minari) or NPZ folder (npz)"
    )
    i.add_argument(
        "--download",
        action="store_true",
        help="minari: let Minari download the dataset id first if it is not local (needs network access)",
    )
    i.add_argument("--tasks", default="mixed,partial", help="kitchen tasks to write (default: mixed,partial)")
    i.add_argument(
        "--prefix", default="", help="write to <data-dir>/<prefix>/<task> instead of kitchen/<task>"
    )
    i.add_argument("--limit", type=int, default=0, help="import only the first N episodes")
    i.add_argument(
        "--image-key",
        default=None,
        help="npz only: take images from this array (e.g. D5RL's extra_image_camera_12_rgb) instead "
        "of rendering joint positions; rewards from the 'reward <object>' arrays; no qpos stored",
    )
    i.add_argument("--overwrite", action="store_true")
    i.set_defaults(func=cmd_import)

    s = sub.add_parser("subset", parents=[common], help="a seeded random subset of N episodes")
    s.add_argument("dataset", help="e.g. kitchen/mixed")
    s.add_argument("--episodes", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--name", default=None, help="default: <dataset>-<N>ep-seed<seed>")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_subset)

    v = sub.add_parser("verify", parents=[common], help="check checksums, shapes and dtypes")
    v.add_argument("datasets", nargs="*", help="dataset names (default: all)")
    v.set_defaults(func=cmd_verify)

    st = sub.add_parser("stats", parents=[common], help="counts, returns and success rates")
    st.add_argument("datasets", nargs="*", help="dataset names (default: all)")
    st.set_defaults(func=cmd_stats)
    return p


def _interrupted(name: str) -> int:
    print(f"interrupted ({name}): nothing half-written was kept", file=sys.stderr)
    return 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    received: list[str] = []  # the SIGTERMs this call received

    def interrupt(signum, frame):  # like Ctrl-C: half-written datasets are removed
        received.append(signal.Signals(signum).name)
        raise KeyboardInterrupt(received[-1])

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        args.func(args)
    except KeyboardInterrupt as exc:
        return _interrupted(exc.args[0] if exc.args else "SIGINT")
    except Exception as exc:
        if received:  # the signal's exception surfaced wrapped: ctypes turns it into an ArgumentError in EGL
            return _interrupted(received[-1])
        if isinstance(exc, (DatasetError, KeyError, ValueError, RuntimeError)):
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            print(f"error: {msg}", file=sys.stderr)
            return 2
        if isinstance(exc, OSError):  # e.g. an unwritable --data-dir
            where = f" {exc.filename}" if exc.filename else ""
            reason = exc.strerror or exc
            print(f"error: cannot write{where}: {reason}; choose another --data-dir", file=sys.stderr)
            return 2
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    entry(main)
