"""SLURM through submitit: cluster files, job arrays of runs, preemption and requeue (see the signal path in
``benchmark/launch/__init__.py``). Only this module imports submitit, and only when it submits."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmark.core import rundir
from benchmark.launch.execute import child_payload
from benchmark.launch.local import Pool
from benchmark.launch.plan import UsageError, load_yaml

CLUSTER_KEYS = {  # key in a cluster file -> (flag, help, default)
    "partition": ("--partition", "SLURM partition", None),
    "account": ("--account", "SLURM account to charge", None),
    "qos": ("--qos", "SLURM quality of service", None),
    "constraint": ("--constraint", "SLURM node constraint (features), e.g. 'a100|h100'", None),
    "gpus_per_node": ("--gpus", "GPUs per job (0 for none)", 1),
    "cpus_per_task": ("--cpus", "CPUs per job", 8),
    "mem_gb": ("--mem-gb", "memory per job, GB", 32),
    "timeout_min": (
        "--time-min",
        "time limit per job, minutes (a run that outlasts it checkpoints on SLURM's "
        "warning signal and requeues)",
        24 * 60,
    ),
    "array_parallelism": ("--array-parallelism", "at most this many jobs of the array run at once", 256),
    "runs_per_job": (
        "--runs-per-job",
        "runs packed into one job, run at once on its GPU (for small model-free "
        "runs); a sweep file's group may set its own",
        1,
    ),
    "signal_delay_s": (
        "--signal-delay-s",
        "seconds between SLURM's warning signal (USR2) and the time limit",
        180,
    ),
    "max_requeues": (
        "--max-requeues",
        "times a job may be requeued after reaching its time limit (preemptions do not count)",
        20,
    ),
    "folder": (
        "--slurm-folder",
        "submitit's folder (sbatch scripts, job logs, pickles); default <out>/.submitit",
        None,
    ),
}
CLUSTER_ONLY_KEYS = {
    "setup": "shell lines run before the job (e.g. module load, conda activate)",
    "exclude": "nodes to avoid",
    "additional": "extra sbatch options, {name: value}",
    "job_name": "job name (default moto-<sweep name>)",
}


def load_cluster(path: str | Path) -> dict:
    data = load_yaml(path, "--cluster")
    unknown = sorted(set(data) - set(CLUSTER_KEYS) - set(CLUSTER_ONLY_KEYS))
    if unknown:
        raise UsageError(
            f"--cluster {path}: unknown key(s) {', '.join(unknown)}; known: "
            f"{', '.join([*CLUSTER_KEYS, *CLUSTER_ONLY_KEYS])}"
        )
    for key in (
        "gpus_per_node",
        "cpus_per_task",
        "mem_gb",
        "timeout_min",
        "array_parallelism",
        "runs_per_job",
        "signal_delay_s",
        "max_requeues",
    ):
        if key in data and (not isinstance(data[key], int) or isinstance(data[key], bool) or data[key] < 0):
            raise UsageError(f"--cluster {path}: {key} must be a non-negative integer, got {data[key]!r}")
    if "setup" in data and not (
        isinstance(data["setup"], list) and all(isinstance(x, str) for x in data["setup"])
    ):
        raise UsageError(f"--cluster {path}: setup must be a list of shell lines")
    if "additional" in data and not isinstance(data["additional"], dict):
        raise UsageError(f"--cluster {path}: additional must be a mapping of sbatch option names to values")
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


def runs_per_job(ns, res: dict) -> int:
    if ns.slurm_runs_per_job is not None:  # the flag wins over a sweep group's value
        return ns.slurm_runs_per_job
    return ns.runs_per_job or res.get("runs_per_job", 1)


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
                print(
                    "some runs did not checkpoint in time; they resume from their last checkpoint",
                    file=sys.stderr,
                    flush=True,
                )
        return DelayedSubmission(SweepJob(self.payloads, self.grace_s))

    def __getstate__(self):
        return {"payloads": self.payloads, "grace_s": self.grace_s, "pool": None}


def submit(jobs: list[list[dict]], res: dict, out: Path, name: str):
    """Submits one job-array element per list of payloads; returns submitit's jobs."""
    import submitit

    folder = Path(res.get("folder") or Path(out) / ".submitit").resolve()
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=res["max_requeues"])
    params = {
        "timeout_min": res["timeout_min"],
        "mem_gb": res["mem_gb"],
        "cpus_per_task": res["cpus_per_task"],
        "slurm_array_parallelism": res["array_parallelism"],
        "slurm_signal_delay_s": res["signal_delay_s"],
        "name": res.get("job_name") or f"moto-{name}",
        "nodes": 1,
        "tasks_per_node": 1,
    }
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


def launch_slurm(groups, args, res: dict, launch: set, sweep_name: str) -> int:
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise UsageError("--launcher slurm needs sbatch and srun on PATH (run it on a SLURM login node)")
    jobs: list[list[dict]] = []
    for ns, runs in groups:
        todo = [child_payload(ns, r) for r in runs if r.dir in launch]
        k = runs_per_job(ns, res)
        jobs += [todo[i : i + k] for i in range(0, len(todo), k)]
    if not jobs:
        print("nothing to submit")
        return 0
    from submitit.core.utils import FailedJobError, FailedSubmissionError

    try:
        handles, folder = submit(jobs, res, Path(args.out), sweep_name)
    except (
        FailedJobError,
        FailedSubmissionError,
    ) as exc:  # sbatch said no: nothing was submitted or recorded
        said = " ".join(str(exc).split()) or "no message"
        raise UsageError(
            f"sbatch refused the submission: {said}. Check the resources against your cluster (sinfo -o "
            f"'%P %G %c %m %f'): without GPUs pass --gpus 0; partition, account, QoS and constraint come "
            f"from --cluster FILE (see slurm/example.yaml)"
        ) from None
    for handle, payloads in zip(handles, jobs):
        for pl in payloads:
            d = Path(pl["dir"])
            d.mkdir(parents=True, exist_ok=True)
            rundir.write_json(
                d / rundir.SLURM_JOB_FILE,
                {
                    "job_id": handle.job_id,
                    "folder": str(folder),
                    "submitted": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "runs_in_job": [p["dir"] for p in payloads],
                },
            )
    ids = sorted({h.job_id.split("_")[0] for h in handles})
    print(
        f"submitted {len(jobs)} job(s) ({sum(map(len, jobs))} runs) as SLURM job {', '.join(ids)}; "
        f"logs and sbatch scripts in {folder}"
    )
    print(f"follow with: python -m benchmark.status {args.out}")
    return 0


def slurm_queue() -> dict[str, str] | None:
    """Job id -> state for every job squeue lists (array ranges expanded), or None without squeue."""
    if shutil.which("squeue") is None:
        return None
    try:
        p = subprocess.run(["squeue", "-h", "-o", "%i|%T"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if p.returncode != 0:
        return None
    from submitit.slurm.slurm import read_job_id  # understands 123_[4-7%2]

    queue = {}
    for line in p.stdout.splitlines():
        if "|" not in line:
            continue
        jid, state = line.split("|", 1)
        for parts in read_job_id(jid.strip()):
            if len(parts) == 1:
                queue[parts[0]] = state
            else:
                for i in range(int(parts[1]), int(parts[-1]) + 1):
                    queue[f"{parts[0]}_{i}"] = state
    return queue
