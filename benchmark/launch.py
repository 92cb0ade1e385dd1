"""Sweeps: many runs from one command, on this machine or on a SLURM cluster through submitit.

    python -m benchmark.run --sweep slurm/fig2_metaworld.yaml --launcher slurm --cluster slurm/example.yaml
    python -m benchmark.run --algos bc --tasks metaworld --seeds 0,1,2 --launcher local --workers 2

The plan (algorithms x tasks x seeds, per group of a sweep file) is checked as ``benchmark.run``
checks it, then each run is sorted by its directory: done -> skipped; failed -> listed, and run again
only with ``--retry-failed``; held by a live process (its flock, seen in /proc/locks) or by a SLURM job
still in the queue (``slurm_job.json`` + squeue) -> skipped; anything else (new, interrupted, or its
process died) -> launched, and it resumes from its checkpoint.

Every run executes in a child process, ``python -m benchmark.launch child '<json>'``, which plans that
one run again (checking its dataset on the machine that runs it, resolving ``--device auto`` there)
and calls ``benchmark.run.execute``. The local launcher keeps ``--workers`` children going; a SLURM job
(one job-array element) starts its ``--runs-per-job`` children at once (several small runs sharing a
GPU) and waits for them.

Preemption and time limits (the signal path). submitit submits with ``--signal=USR2@<grace>`` and its
job wrapper installs a SIGUSR2 handler (``checkpoint_and_try_requeue``) and ignores SIGTERM. In a
SLURM job:
  1. SIGUSR2 (SLURM's warning before the time limit; a preemption on clusters that set
     ``preempt_send_user_signal``; ``SlurmJob._interrupt()``) reaches every process of the job step.
  2. Each child runs ``execute`` with SIGUSR2 as its stop signal: the run finishes its current update
     or episode, checkpoints, writes status ``interrupted`` and the child exits 3. Children ignore
     SIGTERM, as submitit's wrapper does (a preemption sends SIGTERM first; SIGUSR2 is the one that
     means "checkpoint now").
  3. In the job's main process submitit's handler calls ``SweepJob.checkpoint()``: it forwards SIGUSR2
     to children that might have missed it, waits (without reaping) until every child has exited,
     then returns a ``DelayedSubmission`` of a fresh ``SweepJob`` with the same runs. submitit pickles
     it, runs ``scontrol requeue`` and exits.
  4. The requeued job starts the same children: done runs are skipped, interrupted ones resume from
     their checkpoint, and rows logged after that checkpoint were never written past it (the
     checkpoint is taken at the stop), so no metrics row is lost or duplicated.
A job killed without SIGUSR2 (scancel, a node failure) leaves its runs to resume from their last
periodic checkpoint (every 10 online episodes, 1,000 offline updates or 10 minutes).

Only this module's SLURM path imports submitit; nothing here imports JAX or PyTorch.
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmark import results
from benchmark import status as status_mod

CLUSTER_KEYS = {  # key in a cluster file -> (flag, help, default)
    "partition": ("--partition", "SLURM partition", None),
    "account": ("--account", "SLURM account to charge", None),
    "qos": ("--qos", "SLURM quality of service", None),
    "constraint": ("--constraint", "SLURM node constraint (features), e.g. 'a100|h100'", None),
    "gpus_per_node": ("--gpus", "GPUs per job (0 for none)", 1),
    "cpus_per_task": ("--cpus", "CPUs per job", 8),
    "mem_gb": ("--mem-gb", "memory per job, GB", 32),
    "timeout_min": ("--time-min", "time limit per job, minutes (a run that outlasts it checkpoints on SLURM's "
                                  "warning signal and requeues)", 24 * 60),
    "array_parallelism": ("--array-parallelism", "at most this many jobs of the array run at once", 256),
    "runs_per_job": ("--runs-per-job", "runs packed into one job, run at once on its GPU (for small model-free "
                                       "runs); a sweep file's group may set its own", 1),
    "signal_delay_s": ("--signal-delay-s", "seconds between SLURM's warning signal (USR2) and the time limit",
                       180),
    "max_requeues": ("--max-requeues", "times a job may be requeued after reaching its time limit "
                                       "(preemptions do not count)", 20),
    "folder": ("--slurm-folder", "submitit's folder (sbatch scripts, job logs, pickles); default <out>/.submitit",
               None),
}
CLUSTER_ONLY_KEYS = {"setup": "shell lines run before the job (e.g. module load, conda activate)",
                     "exclude": "nodes to avoid", "additional": "extra sbatch options, {name: value}",
                     "job_name": "job name (default moto-<sweep name>)"}
SWEEP_KEYS = ("name", "figure", "description", "algos", "tasks", "seeds", "profile", "dataset", "runs_per_job",
              "groups")
GROUP_KEYS = ("algos", "tasks", "seeds", "profile", "dataset", "runs_per_job", "name")


def _usage():
    from benchmark.run import UsageError as U

    return U


# -- CLI ---------------------------------------------------------------------------------------
def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sweeps and launchers")
    g.add_argument("--launcher", default="inline", choices=("inline", "local", "slurm"),
                   help="inline: run the plan in this process, one run after another (as without a launcher); "
                        "local: one child process per run, --workers at a time; slurm: submit a job array "
                        "through submitit and return")
    g.add_argument("--sweep", default=None, metavar="FILE",
                   help="a sweep file (slurm/<name>.yaml): its algorithms, tasks and seeds replace --algos/--tasks/"
                        "--seeds; its profile and datasets apply unless --profile or --dataset is given (e.g. "
                        "--profile smoke: a quick pass of the whole sweep to check a cluster's set-up)")
    g.add_argument("--workers", type=int, default=1, help="local launcher: runs at once")
    g.add_argument("--retry-failed", action="store_true",
                   help="local and slurm launchers: run failed runs again (they resume from their last "
                        "checkpoint). Default: failed runs are listed and skipped")
    s = p.add_argument_group("SLURM resources (--launcher slurm; a flag overrides --cluster's file, which "
                             "overrides the default shown)")
    s.add_argument("--cluster", default=None, metavar="FILE",
                   help="cluster file (slurm/<name>.yaml) with any of: " + ", ".join([*CLUSTER_KEYS, *CLUSTER_ONLY_KEYS]))
    for key, (flag, text, default) in CLUSTER_KEYS.items():
        typ = str if key in ("partition", "account", "qos", "constraint", "folder") else int
        shown = f" (default: {default})" if default is not None else "" if key == "folder" else " (default: unset)"
        metavar = "DIR" if key == "folder" else "NAME" if typ is str else "N"
        s.add_argument(flag, dest=f"slurm_{key}", type=typ, default=None, metavar=metavar, help=text + shown)


def _check_ints(args) -> None:
    U = _usage()
    if args.workers < 1:
        raise U(f"--workers must be at least 1, got {args.workers}")
    for key, (flag, _, _) in CLUSTER_KEYS.items():
        v = getattr(args, f"slurm_{key}", None)
        if isinstance(v, int) and (v < 0 or (v == 0 and key not in ("gpus_per_node", "max_requeues"))):
            raise U(f"{flag} must be {'non-negative' if key == 'gpus_per_node' else 'positive'}, got {v}")


# -- YAML files --------------------------------------------------------------------------------
def _load_yaml(path: str | Path, what: str) -> dict:
    import yaml

    U = _usage()
    p = Path(path)
    if not p.is_file():
        raise U(f"{what} {path}: no such file")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise U(f"{what} {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise U(f"{what} {path}: expected a mapping of keys to values at the top level")
    return data


def load_cluster(path: str | Path) -> dict:
    U = _usage()
    data = _load_yaml(path, "--cluster")
    unknown = sorted(set(data) - set(CLUSTER_KEYS) - set(CLUSTER_ONLY_KEYS))
    if unknown:
        raise U(f"--cluster {path}: unknown key(s) {', '.join(unknown)}; known: "
                f"{', '.join([*CLUSTER_KEYS, *CLUSTER_ONLY_KEYS])}")
    for key in ("gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "array_parallelism", "runs_per_job",
                "signal_delay_s", "max_requeues"):
        if key in data and (not isinstance(data[key], int) or isinstance(data[key], bool) or data[key] < 0):
            raise U(f"--cluster {path}: {key} must be a non-negative integer, got {data[key]!r}")
    if "setup" in data and not (isinstance(data["setup"], list) and all(isinstance(x, str) for x in data["setup"])):
        raise U(f"--cluster {path}: setup must be a list of shell lines")
    if "additional" in data and not isinstance(data["additional"], dict):
        raise U(f"--cluster {path}: additional must be a mapping of sbatch option names to values")
    return data


def resources(args) -> dict:
    """Cluster defaults, then the cluster file, then flags."""
    res = {k: d for k, (_, _, d) in CLUSTER_KEYS.items() if d is not None}
    if args.cluster:
        res.update(load_cluster(args.cluster))
    for key in CLUSTER_KEYS:
        v = getattr(args, f"slurm_{key}", None)
        if v is not None:
            res[key] = v
    return res


def _as_list(value, key: str, where: str) -> list[str]:
    U = _usage()
    if isinstance(value, (str, int)):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) for v in value):
        raise U(f"{where}: {key} must be a name or a non-empty list, got {value!r}")
    return [str(v) for v in value]


def load_sweep(path: str | Path) -> dict:
    """A sweep file: top-level defaults (algos, tasks, seeds, profile, dataset, runs_per_job) and
    optional ``groups``, each overriding them; returns {name, figure, groups: [{algos, tasks, seeds,
    profile, dataset, runs_per_job}]} with every list joined to the CLI's comma-separated form."""
    U = _usage()
    data = _load_yaml(path, "--sweep")
    unknown = sorted(set(data) - set(SWEEP_KEYS))
    if unknown:
        raise U(f"--sweep {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(SWEEP_KEYS)}")
    raw_groups = data.get("groups") or [{}]
    if not isinstance(raw_groups, list) or not all(isinstance(g, dict) for g in raw_groups):
        raise U(f"--sweep {path}: groups must be a list of mappings")
    groups = []
    for i, g in enumerate(raw_groups):
        bad = sorted(set(g) - set(GROUP_KEYS))
        if bad:
            raise U(f"--sweep {path}: group {i}: unknown key(s) {', '.join(bad)}; known: {', '.join(GROUP_KEYS)}")
        merged = {k: data.get(k) for k in ("algos", "tasks", "seeds", "profile", "dataset", "runs_per_job")}
        merged.update(g)
        where = f"--sweep {path} group {i}"
        for key in ("algos", "tasks", "seeds"):
            if merged.get(key) is None:
                raise U(f"{where}: no {key}")
            merged[key] = ",".join(_as_list(merged[key], key, where))
        if not merged.get("profile"):
            raise U(f"{where}: no profile")
        rpj = merged.get("runs_per_job")
        if rpj is not None and (not isinstance(rpj, int) or isinstance(rpj, bool) or rpj < 1):
            raise U(f"{where}: runs_per_job must be a positive integer, got {rpj!r}")
        datasets = merged.get("dataset")
        for ds in (datasets if isinstance(datasets, list) else [datasets]):
            groups.append({**merged, "dataset": ds, "name": g.get("name", f"group {i}")})
    return {"name": data.get("name") or Path(path).stem, "figure": data.get("figure", ""), "groups": groups}


_SWEPT = ("--algos", "--tasks", "--seeds")


def group_args(args, group: dict) -> argparse.Namespace:
    ns = copy.copy(args)
    for key in ("algos", "tasks", "seeds", "profile", "dataset"):
        setattr(ns, key, group.get(key))
    ns.runs_per_job = group.get("runs_per_job")
    return ns


def expand(args, argv: list[str] | None) -> list[tuple[argparse.Namespace, list[dict]]]:
    """[(namespace of a group, its checked runs)]; one group without --sweep."""
    from benchmark.run import plan

    if not args.sweep:
        ns = copy.copy(args)
        ns.runs_per_job = None
        return [(ns, plan(ns, resolve=False))]
    flags = [a.split("=", 1)[0] for a in (argv if argv is not None else sys.argv[1:])]
    given = [a for a in flags if a in _SWEPT]
    if given:
        raise _usage()(f"--sweep sets algorithms, tasks and seeds; drop {', '.join(given)}")
    # --profile and --dataset on the command line replace the sweep's (a smoke pass of a paper sweep to
    # check a cluster's set-up, or a sweep on other data, e.g. kitchen/scripted)
    override = {k: getattr(args, k) for k in ("profile", "dataset") if f"--{k}" in flags}
    sweep = load_sweep(args.sweep)
    out, seen = [], set()
    for g in sweep["groups"]:
        ns = group_args(args, {**g, **override})
        runs = [r for r in plan(ns, resolve=False) if r["dir"] not in seen]
        seen.update(r["dir"] for r in runs)
        out.append((ns, runs))
    return out


def sweep_runs(sweep: str, out: Path, data_dir: str | None) -> list[dict]:
    """The runs of a sweep file under a results folder (for ``benchmark.status --sweep``)."""
    from benchmark.run import build_parser

    args = build_parser().parse_args(["--out", str(out), "--sweep", str(sweep)]
                                     + (["--data-dir", data_dir] if data_dir else []))
    return [r for _, runs in expand(args, []) for r in runs]


# -- what to launch ----------------------------------------------------------------------------
def sort_runs(runs: list[dict], retry_failed: bool, queue: dict | None) -> dict[str, list[dict]]:
    """{"launch": [...], "done": [...], "held": [...], "failed": [...]} by each run directory's state."""
    out = {"launch": [], "done": [], "held": [], "failed": []}
    for r in runs:
        state, status = status_mod.run_state(r["dir"], queue)
        if state == "done":
            out["done"].append(r)
        elif state in ("running", "queued"):
            r["held_by"] = status_mod._read_json(Path(r["dir"]) / status_mod.SLURM_JOB_FILE).get("job_id") \
                if state == "queued" else f"pid {status.get('pid', '?')} on {status.get('host', '?')}"
            out["held"].append(r)
        elif state == "failed" and not retry_failed:
            r["error"] = status.get("error", "")
            out["failed"].append(r)
        else:
            out["launch"].append(r)
    return out


def child_payload(ns: argparse.Namespace, r: dict) -> dict:
    """Everything a child needs to plan this one run again, as JSON-able values with absolute paths."""
    from benchmark.tasks import default_data_dir

    imports = [str(Path(i).resolve()) if (i.endswith(".py") or Path(i).exists()) else i for i in ns.imports]
    return {"algos": r["algo"], "tasks": r["spec"].name, "seeds": str(r["seed"]), "profile": ns.profile,
            "out": str(Path(ns.out).resolve()),
            "data_dir": str(Path(ns.data_dir).resolve() if ns.data_dir else default_data_dir().resolve()),
            "dataset": ns.dataset, "device": ns.device, "imports": imports, "no_progress": ns.no_progress,
            "wandb": getattr(ns, "wandb", False), "wandb_project": getattr(ns, "wandb_project", None),
            "wandb_entity": getattr(ns, "wandb_entity", None), "no_tensorboard": getattr(ns, "no_tensorboard", False),
            "dir": str(Path(r["dir"]).resolve())}


# -- estimates ---------------------------------------------------------------------------------
def measured_rates(out: Path, algo: str, profile: str, task: str, domain: str) -> tuple[dict, str] | None:
    """Gradient updates per second in the offline and online phases, from the ``steps_per_s`` rows of
    run directories of the same algorithm and profile under ``out`` (same task first, else same domain,
    else any task); the online rate covers episode collection and evaluation. None without any."""
    candidates = {"task": [], "domain": [], "any": []}
    for d in status_mod.find_runs(out):
        t, a, setting, _ = status_mod._key(out, d)
        if a != algo or setting.split("@")[0] != profile or not (d / "metrics.csv").exists():
            continue
        candidates["task" if t == task else "domain" if t.split("/")[0] == domain else "any"].append(d)
    for basis, dirs in candidates.items():
        steps = {"offline": 0.0, "online": 0.0}
        secs = {"offline": 0.0, "online": 0.0}
        for d in dirs:
            prev = 0
            with open(d / "metrics.csv", newline="") as f:
                for row in csv.DictReader(f):
                    step = int(float(row["grad_step"] or 0))
                    rate = float(row["steps_per_s"]) if row.get("steps_per_s") else 0.0
                    if row["phase"] in steps and rate > 0 and step > prev:
                        steps[row["phase"]] += step - prev
                        secs[row["phase"]] += (step - prev) / rate
                    prev = step
        if steps["offline"] or steps["online"]:
            rates = {ph: steps[ph] / secs[ph] for ph in steps if secs[ph] > 0}
            rates.setdefault("online", rates.get("offline"))
            rates.setdefault("offline", rates.get("online"))
            where = {"task": task, "domain": f"other {domain} tasks", "any": "other tasks"}[basis]
            return rates, f"{len(dirs)} {algo}/{profile} run(s) on {where}"
    return None


def estimate_hours(out: Path, r: dict, profile: str) -> tuple[float | None, str]:
    s = r["schedule"]
    m = measured_rates(Path(out), r["algo"], profile, r["spec"].name, r["spec"].domain)
    if m is None:
        return None, "no measurement"
    rates, basis = m
    secs = s.offline_steps / rates["offline"] + s.online_episodes * s.updates_per_episode / rates["online"]
    return secs / 3600, basis


def print_estimate(groups: list[tuple[argparse.Namespace, list[dict]]], res: dict | None, out: Path,
                   launched: set | None = None) -> None:
    """Totals of the plan: runs, jobs, gradient and env steps, and run-hours / GPU-hours from
    measured steps/s where run directories have them."""
    n_runs = n_jobs = grad = env = 0
    hours, gpu_hours, unmeasured, bases = 0.0, 0.0, set(), set()
    for ns, runs in groups:
        todo = [r for r in runs if launched is None or r["dir"] in launched]
        rpj = _runs_per_job(ns, res) if res else 1
        n_runs += len(todo)
        n_jobs += -(-len(todo) // rpj)
        for r in todo:
            s = r["schedule"]
            ep_len = r["env_overrides"].get("episode_length", r["spec"].episode_length)
            grad += s.offline_steps + s.online_episodes * s.updates_per_episode
            env += s.online_episodes * ep_len * r["spec"].action_repeat
            h, basis = estimate_hours(out, r, ns.profile)
            if h is None:
                unmeasured.add(f"{r['algo']}/{ns.profile}")
                continue
            bases.add(basis)
            hours += h
            gpu_hours += h * (res.get("gpus_per_node", 1) if res else 1) / rpj
    print(f"plan: {n_runs} runs in {n_jobs} jobs, {grad:,} gradient updates, {env:,} env steps")
    if bases:
        print(f"estimate: {_hours(hours)} run-hours" + (f", {_hours(gpu_hours)} GPU-hours" if res else "")
              + f" for the measured runs (from steps/s of {'; '.join(sorted(bases))})")
    if unmeasured:
        print(f"estimate: no measurement for {', '.join(sorted(unmeasured))} (no run directory of that "
              f"algorithm and profile under {out} has steps_per_s rows yet)")


def _hours(h: float) -> str:
    return f"{h:,.1f}" if h >= 1 else f"{h:.2g}"


def _runs_per_job(ns, res: dict) -> int:
    if ns.slurm_runs_per_job is not None:  # the flag wins over a sweep group's value
        return ns.slurm_runs_per_job
    return ns.runs_per_job or res.get("runs_per_job", 1)


# -- child processes ---------------------------------------------------------------------------
def _exited(pid: int) -> bool:
    """Whether a child has exited, without reaping it (safe inside a signal handler)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


class Pool:
    """Runs children (one per run), ``workers`` at a time; ``stop`` forwards a signal and launches
    no more."""

    def __init__(self, payloads: list[dict], workers: int, slurm: bool, log_dir: Path | None = None):
        self.pending, self.workers, self.slurm, self.log_dir = list(payloads), workers, slurm, log_dir
        self.running: dict[int, tuple[subprocess.Popen, dict]] = {}
        self.codes: dict[str, int] = {}
        self.stopped: str | None = None

    def _start(self, payload: dict) -> None:
        cmd = [sys.executable, "-m", "benchmark.launch", "child", json.dumps(payload)] + (["--slurm"] if self.slurm else [])
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            d = Path(payload["dir"])
            out = open(self.log_dir / f"{'_'.join(d.parts[-5:])}.log", "ab")
        # Own session locally: a Ctrl-C reaches the launcher, which forwards exactly one signal.
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT if out else None,
                             start_new_session=not self.slurm)
        if out is not None:
            out.close()
        self.running[p.pid] = (p, payload)
        print(f"{payload['dir']}: started (pid {p.pid})", flush=True)

    def stop(self, sig: int) -> None:
        self.stopped = signal.Signals(sig).name
        for pid in list(self.running):
            if not _exited(pid):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass

    def wait_exited(self, timeout: float) -> bool:
        """Waits until every started child has exited (without reaping; for signal handlers)."""
        t = time.time()
        while not all(_exited(pid) for pid in list(self.running)):
            if time.time() - t > timeout:
                return False
            time.sleep(0.2)
        return True

    def run(self) -> dict[str, int]:
        while self.pending or self.running:
            while self.pending and len(self.running) < self.workers and self.stopped is None:
                self._start(self.pending.pop(0))
            if self.stopped is not None and not self.running:
                break
            for pid, (p, payload) in list(self.running.items()):
                code = p.poll()
                if code is None:
                    continue
                del self.running[pid]
                self.codes[payload["dir"]] = code
                what = {0: "done", 1: "failed", 2: "bad input or changed config", 3: "interrupted (resumes when rerun)",
                        4: "held by another process"}.get(code, f"worker died ({_signame(code)})")
                print(f"{payload['dir']}: {what}", flush=True)
            time.sleep(0.2)
        return self.codes


def _signame(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}; rerun to resume"
        except ValueError:
            pass
    return f"exit code {code}"


def child_main(payload: dict, slurm: bool) -> int:
    """One run in this process: the ``child`` subcommand."""
    early = []
    if slurm:  # before execute takes over: remember SIGUSR2 rather than die of it; SIGTERM is for submitit
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGUSR2, lambda s, f: early.append(s))
    from benchmark import run as run_mod
    from benchmark.livelog import LiveLog

    ns = run_mod.build_parser().parse_args([])
    for k, v in payload.items():
        if k != "dir":
            setattr(ns, k, v)
    try:
        run_mod.load_imports(ns.imports)
        (r,) = run_mod.plan(ns)
    except (run_mod.UsageError, KeyError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return run_mod.EXIT_USAGE
    if early:
        print(f"{r['dir']}: SIGUSR2 before the run started; nothing to checkpoint", file=sys.stderr)
        return run_mod.EXIT_INTERRUPTED
    stop_signals = (signal.SIGUSR2,) if slurm else run_mod.STOP_SIGNALS
    try:
        outcome = run_mod.execute(r, ns.profile, progress=not ns.no_progress, stop_signals=stop_signals,
                                  live_factory=lambda d, config: LiveLog.from_args(d, ns, config))
    except run_mod.Interrupted as exc:
        print(f"{r['dir']}: {exc}", file=sys.stderr)
        return run_mod.EXIT_INTERRUPTED
    except results.RunHeld as exc:
        print(f"{r['dir']}: skipped: {exc}")
        return run_mod.EXIT_HELD
    except run_mod.ConfigMismatch as exc:
        print(f"error: {exc}", file=sys.stderr)
        return run_mod.EXIT_USAGE
    except Exception as exc:
        print(f"{r['dir']}: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return run_mod.EXIT_FAILED
    print(f"{r['dir']}: {outcome}")
    return run_mod.EXIT_OK


# -- SLURM -------------------------------------------------------------------------------------
class SweepJob:
    """The callable submitit runs in one job (array element): its runs, as children, all at once.
    Checkpointable: submitit's SIGUSR2 handler calls ``checkpoint``, which waits for the children to
    checkpoint and returns the same runs for the requeued job."""

    def __init__(self, payloads: list[dict], grace_s: float = 150.0):
        self.payloads, self.grace_s = payloads, grace_s
        self.pool: Pool | None = None

    def __call__(self) -> dict[str, int]:
        self.pool = Pool(self.payloads, workers=len(self.payloads), slurm=True)
        codes = self.pool.run()
        bad = {d: c for d, c in codes.items() if c not in (0, 4)}
        if bad:
            raise RuntimeError("runs did not finish: " + "; ".join(f"{d}: exit {c}" for d, c in bad.items()))
        return codes

    def checkpoint(self, *args, **kwargs):
        from submitit.helpers import DelayedSubmission

        pool = self.pool
        if pool is not None:
            pool.stop(signal.SIGUSR2)  # children have it from SLURM too; a second one is harmless
            if not pool.wait_exited(self.grace_s):
                print("some runs did not checkpoint in time; they resume from their last checkpoint",
                      file=sys.stderr, flush=True)
        return DelayedSubmission(SweepJob(self.payloads, self.grace_s))

    def __getstate__(self):
        return {"payloads": self.payloads, "grace_s": self.grace_s, "pool": None}


def submit(jobs: list[list[dict]], res: dict, out: Path, name: str):
    """Submits one job-array element per list of payloads; returns submitit's jobs."""
    import submitit

    folder = Path(res.get("folder") or Path(out) / ".submitit").resolve()
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=res["max_requeues"])
    params = {"timeout_min": res["timeout_min"], "mem_gb": res["mem_gb"], "cpus_per_task": res["cpus_per_task"],
              "slurm_array_parallelism": res["array_parallelism"], "slurm_signal_delay_s": res["signal_delay_s"],
              "name": res.get("job_name") or f"moto-{name}", "nodes": 1, "tasks_per_node": 1}
    if res.get("gpus_per_node"):
        params["gpus_per_node"] = res["gpus_per_node"]
    for key in ("partition", "account", "qos", "constraint", "exclude", "setup"):
        if res.get(key):
            params[f"slurm_{key}"] = res[key]
    if res.get("additional"):
        params["slurm_additional_parameters"] = res["additional"]
    ex.update_parameters(**params)
    grace = max(10.0, 0.8 * res["signal_delay_s"])
    with ex.batch():
        handles = [ex.submit(SweepJob(payloads, grace)) for payloads in jobs]
    return handles, folder


def launch_slurm(groups, args, res: dict, sorted_runs: dict, sweep_name: str) -> int:
    U = _usage()
    import shutil

    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise U("--launcher slurm needs sbatch and srun on PATH (run it on a SLURM login node)")
    jobs: list[list[dict]] = []
    launch = {r["dir"] for r in sorted_runs["launch"]}
    for ns, runs in groups:
        todo = [child_payload(ns, r) for r in runs if r["dir"] in launch]
        k = _runs_per_job(ns, res)
        jobs += [todo[i:i + k] for i in range(0, len(todo), k)]
    if not jobs:
        print("nothing to submit")
        return 0
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    try:
        handles, folder = submit(jobs, res, Path(args.out), sweep_name)
    except (FailedJobError, FailedSubmissionError) as exc:  # sbatch said no: nothing was submitted or recorded
        said = " ".join(str(exc).split()) or "no message"
        raise U(f"sbatch refused the submission: {said}. Check the resources against your cluster (sinfo -o "
                f"'%P %G %c %m %f'): without GPUs pass --gpus 0; partition, account, QoS and constraint come from "
                f"--cluster FILE (see slurm/example.yaml)") from None
    for handle, payloads in zip(handles, jobs):
        for pl in payloads:
            d = Path(pl["dir"])
            d.mkdir(parents=True, exist_ok=True)
            results.write_json(d / status_mod.SLURM_JOB_FILE, {
                "job_id": handle.job_id, "folder": str(folder), "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "runs_in_job": [p["dir"] for p in payloads]})
    ids = sorted({h.job_id.split("_")[0] for h in handles})
    print(f"submitted {len(jobs)} job(s) ({sum(map(len, jobs))} runs) as SLURM job {', '.join(ids)}; "
          f"logs and sbatch scripts in {folder}")
    print(f"follow with: python -m benchmark.status {args.out}")
    return 0


# -- local -------------------------------------------------------------------------------------
def launch_local(groups, args, sorted_runs: dict) -> int:
    from benchmark.run import EXIT_FAILED, EXIT_HELD, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE

    launch = {r["dir"] for r in sorted_runs["launch"]}
    payloads = [child_payload(ns, r) for ns, runs in groups for r in runs if r["dir"] in launch]
    log_dir = Path(args.out) / ".logs" if args.workers > 1 else None
    pool = Pool(payloads, workers=args.workers, slurm=False, log_dir=log_dir)
    if log_dir is not None:
        print(f"{len(payloads)} runs, {args.workers} at a time; each run's output in {log_dir}/", flush=True)
    signals = []

    def on_signal(signum, frame):
        signals.append(signum)
        print(f"{signal.Signals(signum).name}: stopping the running runs at a safe point; none started after",
              file=sys.stderr, flush=True)
        pool.stop(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)}
    try:
        codes = list(pool.run().values())
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if signals or EXIT_INTERRUPTED in codes:
        return EXIT_INTERRUPTED
    if any(c not in (EXIT_OK, EXIT_USAGE, EXIT_HELD) for c in codes) or sorted_runs["failed"]:
        return EXIT_FAILED
    for code in (EXIT_USAGE, EXIT_HELD):
        if code in codes:
            return code
    return EXIT_OK


# -- entry from benchmark.run ------------------------------------------------------------------
def main(args, argv=None) -> int:
    """``benchmark.run`` with --sweep or --launcher local/slurm."""
    from benchmark import run as run_mod

    try:
        _check_ints(args)
        groups = expand(args, argv)
        res = resources(args) if args.launcher == "slurm" or args.cluster else None
        sweep_name = load_sweep(args.sweep)["name"] if args.sweep else "sweep"
    except (run_mod.UsageError, KeyError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return run_mod.EXIT_USAGE
    all_runs = [r for _, runs in groups for r in runs]
    for ns, runs in groups:
        for r in runs:
            s = r["schedule"]
            ep_len = r["env_overrides"].get("episode_length", r["spec"].episode_length)
            print(f"{r['spec'].name:24s} {r['algo']:10s} seed {r['seed']}: {s.offline_steps} offline + "
                  f"{s.online_episodes}x{s.updates_per_episode} online updates, "
                  f"{s.online_episodes * ep_len * r['spec'].action_repeat} env steps [{ns.profile}] -> {r['dir']}")
    if args.launcher == "inline":
        if args.dry_run:
            print_estimate(groups, res, Path(args.out))
            return run_mod.EXIT_OK
        codes = []
        for ns, _ in groups:
            code = run_mod.run_inline(ns, run_mod.plan(ns))
            if code == run_mod.EXIT_INTERRUPTED:
                return code
            codes.append(code)
        for code in (run_mod.EXIT_FAILED, run_mod.EXIT_USAGE, run_mod.EXIT_HELD):
            if code in codes:
                return code
        return run_mod.EXIT_OK
    queue = status_mod.slurm_queue() if args.launcher == "slurm" else None
    sorted_runs = sort_runs(all_runs, args.retry_failed, queue)
    n = {k: len(v) for k, v in sorted_runs.items()}
    print(f"{len(all_runs)} runs: {n['launch']} to launch, {n['done']} done (skipped), {n['held']} held by a live "
          f"process or queued job (skipped), {n['failed']} failed (" +
          ("skipped; --retry-failed runs them again)" if n["failed"] else "none)"))
    for r in sorted_runs["held"]:
        print(f"  held: {r['dir']} ({r['held_by']})")
    for r in sorted_runs["failed"]:
        print(f"  failed: {r['dir']}: {r['error']}")
    if args.dry_run:
        print_estimate(groups, res, Path(args.out), launched={r["dir"] for r in sorted_runs["launch"]})
        missing = run_mod.missing_datasets(all_runs)
        if missing:
            print(f"to get the missing data: {run_mod.missing_datasets_message(missing)}")
        return run_mod.EXIT_OK
    try:
        if args.launcher == "slurm":
            return launch_slurm(groups, args, res, sorted_runs, sweep_name)
        return launch_local(groups, args, sorted_runs)
    except run_mod.UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return run_mod.EXIT_USAGE


def _cli(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.launch",
                                description="Internal: `child '<json>' [--slurm]` runs one run of a sweep "
                                            "(started by the local and SLURM launchers). Use "
                                            "`python -m benchmark.run --launcher ...` instead.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("child", help="run one run from a JSON payload")
    c.add_argument("payload", help="JSON: the run's algos, tasks, seeds, profile, out, data_dir, ...")
    c.add_argument("--slurm", action="store_true", help="inside a SLURM job: stop on SIGUSR2 only, ignore SIGTERM")
    args = p.parse_args(argv)
    try:
        payload = json.loads(args.payload)
    except ValueError as exc:
        print(f"error: payload is not JSON: {exc}", file=sys.stderr)
        return 2
    return child_main(payload, args.slurm)


if __name__ == "__main__":
    sys.exit(_cli())
