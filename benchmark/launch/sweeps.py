"""Sweep files (``slurm/<name>.yaml``): algorithms x tasks x seeds per group, and the launch of a sweep
(``python -m benchmark.run --sweep FILE`` or ``--launcher local|slurm``): plan every group, sort its runs by
their directories' state, estimate, and hand the rest to the local or SLURM launcher.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from benchmark.core.protocol import RunSpec
from benchmark.core.rundir import SLURM_JOB_FILE, read_json, run_state
from benchmark.launch import execute
from benchmark.launch.estimate import print_estimate
from benchmark.launch.plan import (
    UsageError,
    describe,
    load_yaml,
    missing_datasets_note,
    parse_set,
    plan,
    plan_args,
    unused_settings,
)
from benchmark.launch.slurm import CLUSTER_KEYS, CLUSTER_ONLY_KEYS, resources

SWEEP_KEYS = (
    "name",
    "figure",
    "description",
    "algos",
    "tasks",
    "seeds",
    "profile",
    "dataset",
    "runs_per_job",
    "set",
    "groups",
)
GROUP_KEYS = ("algos", "tasks", "seeds", "profile", "dataset", "runs_per_job", "set", "name")


# -- CLI ---------------------------------------------------------------------------------------
def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sweeps and launchers")
    g.add_argument(
        "--launcher",
        default="inline",
        choices=("inline", "local", "slurm"),
        help="inline: run the plan in this process, one run after another (as without a launcher); "
        "local: one child process per run, --workers at a time; slurm: submit a job array "
        "through submitit and return",
    )
    g.add_argument(
        "--sweep",
        default=None,
        metavar="FILE",
        help="a sweep file (slurm/<name>.yaml): its algorithms, tasks and seeds replace --algos/--tasks/"
        "--seeds; its profile and datasets apply unless --profile or --dataset is given (e.g. "
        "--profile smoke: a quick pass of the whole sweep to check a cluster's set-up)",
    )
    g.add_argument("--workers", type=int, default=1, help="local launcher: runs at once")
    g.add_argument(
        "--retry-failed",
        action="store_true",
        help="local and slurm launchers: run failed runs again (they resume from their last "
        "checkpoint). Default: failed runs are listed and skipped",
    )
    s = p.add_argument_group(
        "SLURM resources (--launcher slurm; a flag overrides --cluster's file, which "
        "overrides the default shown)"
    )
    s.add_argument(
        "--cluster",
        default=None,
        metavar="FILE",
        help="cluster file (slurm/<name>.yaml) with any of: "
        + ", ".join([*CLUSTER_KEYS, *CLUSTER_ONLY_KEYS]),
    )
    for key, (flag, text, default) in CLUSTER_KEYS.items():
        typ = str if key in ("partition", "account", "qos", "constraint", "folder") else int
        shown = (
            f" (default: {default})"
            if default is not None
            else ""
            if key == "folder"
            else " (default: unset)"
        )
        metavar = "DIR" if key == "folder" else "NAME" if typ is str else "N"
        s.add_argument(flag, dest=f"slurm_{key}", type=typ, default=None, metavar=metavar, help=text + shown)


def _check_ints(args) -> None:
    if args.workers < 1:
        raise UsageError(f"--workers must be at least 1, got {args.workers}")
    for key, (flag, _, _) in CLUSTER_KEYS.items():
        v = getattr(args, f"slurm_{key}", None)
        if isinstance(v, int) and (v < 0 or (v == 0 and key not in ("gpus_per_node", "max_requeues"))):
            raise UsageError(
                f"{flag} must be {'non-negative' if key == 'gpus_per_node' else 'positive'}, got {v}"
            )


# -- sweep files -------------------------------------------------------------------------------
def _as_list(value, key: str, where: str) -> list[str]:
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) for v in value):
        raise UsageError(f"{where}: {key} must be a name or a non-empty list, got {value!r}")
    return [str(v) for v in value]


def load_sweep(path: str | Path) -> dict:
    """A sweep file: top-level defaults (algos, tasks, seeds, profile, dataset, runs_per_job, set) and
    optional ``groups``, each overriding them (a group's ``set:`` mapping of config overrides goes on top
    of the file's); returns {name, figure, groups: [{algos, tasks, seeds, profile, dataset, runs_per_job,
    set}]} with every list joined to the CLI's comma-separated form."""
    data = load_yaml(path, "--sweep")
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise UsageError(
            f"--sweep {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(SWEEP_KEYS)}"
        )
    raw_groups = data.get("groups") or [{}]
    if not isinstance(raw_groups, list) or not all(isinstance(g, dict) for g in raw_groups):
        raise UsageError(f"--sweep {path}: groups must be a list of mappings")
    groups = []
    for i, g in enumerate(raw_groups):
        bad = sorted(set(g) - set(GROUP_KEYS))
        if bad:
            raise UsageError(
                f"--sweep {path}: group {i}: unknown key(s) {', '.join(bad)}; known: {', '.join(GROUP_KEYS)}"
            )
        merged = {k: data.get(k) for k in ("algos", "tasks", "seeds", "profile", "dataset", "runs_per_job")}
        merged.update(g)
        where = f"--sweep {path} group {i}"
        for level in (data, g):
            if not isinstance(level.get("set") or {}, dict):
                raise UsageError(
                    f"{where}: set must be a mapping of config fields to values, e.g. set: {{alpha: 1}}"
                )
        merged["set"] = {**(data.get("set") or {}), **(g.get("set") or {})}
        for key in ("algos", "tasks", "seeds"):
            if merged.get(key) is None:
                raise UsageError(f"{where}: no {key}")
            merged[key] = ",".join(_as_list(merged[key], key, where))
        if not merged.get("profile"):
            raise UsageError(f"{where}: no profile")
        rpj = merged.get("runs_per_job")
        if rpj is not None and (not isinstance(rpj, int) or isinstance(rpj, bool) or rpj < 1):
            raise UsageError(f"{where}: runs_per_job must be a positive integer, got {rpj!r}")
        datasets = merged.get("dataset")
        for ds in datasets if isinstance(datasets, list) else [datasets]:
            groups.append({**merged, "dataset": ds, "name": g.get("name", f"group {i}")})
    return {"name": data.get("name") or Path(path).stem, "figure": data.get("figure", ""), "groups": groups}


_SWEPT = ("--algos", "--tasks", "--seeds")


def group_args(args, group: dict) -> argparse.Namespace:
    """The options of one group's runs: the group's, the command line's ``--set`` on top of its ``set:``."""
    ns = copy.copy(args)
    for key in ("algos", "tasks", "seeds", "profile", "dataset"):
        setattr(ns, key, group.get(key))
    ns.runs_per_job = group.get("runs_per_job")
    ns.set = {**(group.get("set") or {}), **parse_set(getattr(args, "set", None))}
    return ns


def expand(args, argv: list[str] | None) -> list[tuple[argparse.Namespace, list[RunSpec]]]:
    """[(namespace of a group, its checked runs)]; one group without --sweep."""
    if not args.sweep:
        out = []
        for ds in split_datasets(args.dataset) or [args.dataset]:
            ns = copy.copy(args)
            ns.runs_per_job, ns.dataset = None, ds
            out.append((ns, plan(ns, resolve=False)))
        return out
    flags = [a.split("=", 1)[0] for a in (argv if argv is not None else sys.argv[1:])]
    given = [a for a in flags if a in _SWEPT]
    if given:
        raise UsageError(f"--sweep sets algorithms, tasks and seeds; drop {', '.join(given)}")
    # --profile and --dataset on the command line replace the sweep's (a smoke pass of a paper sweep to
    # check a cluster's set-up, or a sweep on other data, e.g. kitchen/scripted or the cpu data-size
    # study on scripted subsets)
    override = {"profile": args.profile} if "--profile" in flags else {}
    datasets = (split_datasets(args.dataset) or [args.dataset]) if "--dataset" in flags else None
    sweep = load_sweep(args.sweep)
    groups = sweep["groups"]
    if datasets:  # one group per (group, dataset); the file's own dataset lists go
        groups = list({repr({k: v for k, v in g.items() if k != "dataset"}): g for g in groups}.values())
        groups = [{**g, "dataset": ds} for g in groups for ds in datasets]
    out, seen = [], set()
    for g in groups:
        ns = group_args(args, {**g, **override})
        runs = [r for r in plan(ns, resolve=False) if r.dir not in seen]
        seen.update(r.dir for r in runs)
        out.append((ns, runs))
    unused = unused_settings(parse_set(getattr(args, "set", None)), [r for _, runs in out for r in runs])
    if unused:
        raise UsageError(f"--set {', '.join(unused)}: no run of the sweep {args.sweep} has that config field")
    return out


def split_datasets(value: str | None) -> list[str]:
    """``--dataset a,b`` -> ["a", "b"]; one name or none -> [] (no expansion)."""
    names = [d.strip() for d in (value or "").split(",")]
    if len(names) < 2:
        return []
    if not all(names):
        raise UsageError(f"--dataset {value!r}: an empty name in the list; give names separated by commas")
    return list(dict.fromkeys(names))


def sweep_runs(sweep: str, out: Path, data_dir: str | None) -> list[dict]:
    """The runs of a sweep file under a results folder (for ``benchmark.status --sweep``)."""
    args = plan_args(out=str(out), sweep=str(sweep), data_dir=data_dir, dry_run=True)
    return [r for _, runs in expand(args, []) for r in runs]


# -- what to launch ----------------------------------------------------------------------------
def sort_runs(
    runs: list[RunSpec], retry_failed: bool, queue: dict | None
) -> dict[str, list[tuple[dict, str]]]:
    """{"launch", "done", "held", "failed"} -> [(run, note)] by each run directory's state; the note says who
    holds a held run and why a failed one failed."""
    out = {"launch": [], "done": [], "held": [], "failed": []}
    for r in runs:
        state, status = run_state(r.dir, queue)
        if state == "done":
            out["done"].append((r, ""))
        elif state in ("running", "queued"):
            held_by = (
                read_json(Path(r.dir) / SLURM_JOB_FILE).get("job_id")
                if state == "queued"
                else f"pid {status.get('pid', '?')} on {status.get('host', '?')}"
            )
            out["held"].append((r, str(held_by)))
        elif state == "failed" and not retry_failed:
            out["failed"].append((r, status.get("error", "")))
        else:
            out["launch"].append((r, ""))
    return out


# -- entry from benchmark.run ------------------------------------------------------------------
def main(args, argv=None) -> int:
    """``benchmark.run`` with --sweep or --launcher local/slurm."""
    try:
        _check_ints(args)
        groups = expand(args, argv)
        res = resources(args) if args.launcher == "slurm" or args.cluster else None
        sweep_name = load_sweep(args.sweep)["name"] if args.sweep else "sweep"
    except (UsageError, KeyError) as exc:
        return execute.usage_error(exc)
    all_runs = [r for _, runs in groups for r in runs]
    for ns, runs in groups:
        for r in runs:
            print(describe(r, ns.profile))
    if args.launcher == "inline":
        if args.dry_run:
            print_estimate(groups, res, Path(args.out))
            return execute.EXIT_OK
        codes = []
        for ns, _ in groups:
            codes.append(execute.run_inline(ns, plan(ns)))
            if codes[-1] == execute.EXIT_INTERRUPTED:
                break
        return execute.combine(codes)
    from benchmark.launch.slurm import slurm_queue

    sorted_runs = sort_runs(all_runs, args.retry_failed, slurm_queue() if args.launcher == "slurm" else None)
    n = {k: len(v) for k, v in sorted_runs.items()}
    print(
        f"{len(all_runs)} runs: {n['launch']} to launch, {n['done']} done (skipped), {n['held']} held "
        f"by a live process or queued job (skipped), {n['failed']} failed ("
        + ("skipped; --retry-failed runs them again)" if n["failed"] else "none)")
    )
    for r, held_by in sorted_runs["held"]:
        print(f"  held: {r.dir} ({held_by})")
    for r, error in sorted_runs["failed"]:
        print(f"  failed: {r.dir}: {error}")
    launched = {r.dir for r, _ in sorted_runs["launch"]}
    if args.dry_run:
        print_estimate(groups, res, Path(args.out), launched=launched)
        note = missing_datasets_note(all_runs)
        if note:
            print(note)
        return execute.EXIT_OK
    try:
        if args.launcher == "slurm":
            from benchmark.launch.slurm import launch_slurm

            return launch_slurm(groups, args, res, launched, sweep_name)
        from benchmark.launch.local import launch_local

        return launch_local(groups, args, launched, failed=bool(sorted_runs["failed"]))
    except UsageError as exc:
        return execute.usage_error(exc)
