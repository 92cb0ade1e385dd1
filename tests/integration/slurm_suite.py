"""Sweeps through submitit on a real one-node SLURM cluster (tests/helpers/slurm_cluster.py): a sweep of
smoke runs completes, a preempted job requeues and its run ends with an uninterrupted run's metrics,
a GPU sweep's sbatch script holds the requested resources, and finished runs are not resubmitted.
No mock of submitit or SLURM. Skipped, with the reason, where the SLURM/munge packages are missing."""

import json
import os
import time
from pathlib import Path

import pytest

from benchmark.core import rundir
from benchmark.run import main as run_cli
from tests.helpers.runs import metric_rows as rows
from tests.helpers.slurm_cluster import FEATURE, PARTITION, ClusterUnavailable, SlurmCluster, missing_reason

REPO = Path(__file__).resolve().parents[2]
PLUGIN = str(REPO / "tests" / "helpers" / "slow_bc.py")

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"slurm-test-{os.getpid()}"  # short: munge socket paths
    c = SlurmCluster(root)
    try:
        c.start()
    except ClusterUnavailable as exc:
        pytest.skip(f"one-node SLURM cluster did not start: {exc}")
    mp = pytest.MonkeyPatch()
    for k, v in c.env.items():
        mp.setenv(k, v)  # sbatch, squeue, scontrol and submitit in this process, and the jobs, use it
    yield c
    mp.undo()
    c.stop()
    assert all(p.poll() is not None for p in c.procs.values())
    import shutil

    shutil.rmtree(root, ignore_errors=True)


def wait_for(cond, timeout=300, cluster=None, what="condition"):
    t = time.time()
    while not cond():
        if time.time() - t > timeout:
            raise TimeoutError(
                f"{what} not met in {timeout} s; queue: {cluster.squeue() if cluster else '?'}"
                + (cluster.diagnosis() if cluster else "")
            )
        time.sleep(0.5)


def slurm_args(out, drawer_open_data, algos="bc", seeds="0", extra=()):
    return [
        "--launcher",
        "slurm",
        "--algos",
        algos,
        "--tasks",
        "metaworld/drawer-open",
        "--seeds",
        seeds,
        "--profile",
        "smoke",
        "--out",
        str(out),
        "--data-dir",
        str(drawer_open_data),
        "--no-progress",
        "--gpus",
        "0",
        "--cpus",
        "1",
        "--mem-gb",
        "2",
        "--time-min",
        "30",
        *extra,
    ]


def status_of(d):
    return rundir.read_status(Path(d)).get("status")


def test_a_sweep_of_smoke_runs_completes_and_a_resubmission_skips_it(
    cluster, drawer_open_data, tmp_path, capsys
):
    out = tmp_path / "out"
    assert run_cli(slurm_args(out, drawer_open_data, seeds="0,1", extra=["--runs-per-job", "2"])) == 0
    printed = capsys.readouterr().out
    assert "submitted 1 job(s) (2 runs)" in printed
    dirs = [out / "metaworld/drawer-open/bc/smoke" / f"seed_{s}" for s in (0, 1)]
    job = json.loads((dirs[0] / "slurm_job.json").read_text())["job_id"]
    assert json.loads((dirs[1] / "slurm_job.json").read_text())["job_id"] == job  # packed into one job
    # while the job is queued or running, a second submission submits nothing
    assert run_cli(slurm_args(out, drawer_open_data, seeds="0,1")) == 0
    again = capsys.readouterr().out
    assert "0 to launch" in again and "nothing to submit" in again
    wait_for(lambda: all(status_of(d) == "done" for d in dirs), cluster=cluster, what="runs done")
    status = rundir.read_status(dirs[0])
    assert status["grad_step"] == 8 and status["episodes"] == 2
    assert [r["phase"] for r in rows(dirs[0])][-1] == "eval"
    wait_for(lambda: not cluster.squeue(), cluster=cluster, what="queue empty")
    # finished runs are skipped on resubmission: nothing is submitted
    assert run_cli(slurm_args(out, drawer_open_data, seeds="0,1")) == 0
    printed = capsys.readouterr().out
    assert "2 done (skipped)" in printed and "nothing to submit" in printed
    assert not cluster.squeue()
    from benchmark.status import main as status_cli

    assert status_cli([str(out)]) == 0
    table = capsys.readouterr().out
    assert "bc" in table and "total: 2 done, 0 running, 0 queued, 0 interrupted, 0 failed, 0 missing" in table


def test_a_preempted_job_requeues_and_finishes_with_an_uninterrupted_runs_metrics(
    cluster, drawer_open_data, tmp_path, monkeypatch, capsys
):
    import submitit

    base = [
        "--import",
        PLUGIN,
        "--algos",
        "slow-bc",
        "--tasks",
        "metaworld/drawer-open",
        "--profile",
        "smoke",
        "--data-dir",
        str(drawer_open_data),
        "--no-progress",
    ]
    monkeypatch.setenv("SLOW_BC_DELAY", "0")
    assert run_cli([*base, "--out", str(tmp_path / "ref")]) == 0  # the reference: inline, uninterrupted
    reference = rows(tmp_path / "ref/metaworld/drawer-open/slow-bc/smoke/seed_0")
    monkeypatch.setenv("SLOW_BC_DELAY", "0.5")  # the job inherits the submitting environment
    out = tmp_path / "out"
    assert (
        run_cli(
            [
                *base,
                "--out",
                str(out),
                "--launcher",
                "slurm",
                "--gpus",
                "0",
                "--cpus",
                "1",
                "--mem-gb",
                "2",
                "--time-min",
                "30",
            ]
        )
        == 0
    )
    d = out / "metaworld/drawer-open/slow-bc/smoke/seed_0"
    job_id = json.loads((d / "slurm_job.json").read_text())["job_id"]
    folder = json.loads((d / "slurm_job.json").read_text())["folder"]
    wait_for(
        lambda: any(r["phase"] == "online" for r in rows(d)) if (d / "metrics.csv").exists() else False,
        what="an online row",
    )
    assert len(rows(d)) < len(reference)
    submitit.SlurmJob(folder=folder, job_id=job_id)._interrupt()  # SIGTERM then SIGUSR2, as a preemption
    wait_for(
        lambda: status_of(d) == "interrupted" or "Restarts=1" in cluster.scontrol("show", "job", job_id),
        what="the run interrupted",
    )
    wait_for(
        lambda: "Restarts=1" in cluster.scontrol("show", "job", job_id), cluster=cluster, what="requeued"
    )
    wait_for(lambda: status_of(d) == "done", cluster=cluster, what="the requeued run done")
    assert rows(d) == reference  # no row lost or duplicated, values equal
    log = "".join(p.read_text() for p in Path(folder).glob(f"{job_id}_0_log.*"))
    assert "interrupted (SIGUSR2)" in log and "checkpointed" in log
    assert "Calling checkpoint method" in log and "Requeued job" in log  # submitit's handler did the requeue


def test_the_sbatch_script_of_a_gpu_sweep_holds_the_requested_resources(
    cluster, drawer_open_data, tmp_path, capsys
):
    cfile = tmp_path / "cluster.yaml"
    cfile.write_text(
        f"partition: {PARTITION}\naccount: moto\nqos: normal\nconstraint: {FEATURE}\ngpus_per_node: 1\n"
        "cpus_per_task: 1\nmem_gb: 3\ntimeout_min: 45\narray_parallelism: 1\n"
        "setup: ['export MOTO_SETUP_RAN=1']\n"
    )
    out = tmp_path / "out"
    assert (
        run_cli(
            [
                "--launcher",
                "slurm",
                "--cluster",
                str(cfile),
                "--mem-gb",
                "2",
                "--algos",
                "bc",
                "--tasks",
                "metaworld/drawer-open",
                "--seeds",
                "0,1",
                "--profile",
                "smoke",
                "--out",
                str(out),
                "--data-dir",
                str(drawer_open_data),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "submitted 2 job(s)" in capsys.readouterr().out
    (script,) = list((out / ".submitit").glob("*_submission.sh"))
    text = script.read_text()
    for line in (
        "#SBATCH --gpus-per-node=1",
        "#SBATCH --cpus-per-task=1",
        "#SBATCH --mem=2GB",  # the flag wins
        "#SBATCH --time=45",
        f"#SBATCH --partition={PARTITION}",
        "#SBATCH --account=moto",
        "#SBATCH --qos=normal",
        f"#SBATCH --constraint={FEATURE}",
        "#SBATCH --array=0-1%1",
        "#SBATCH --signal=USR2@180",
        "export MOTO_SETUP_RAN=1",
    ):
        assert line in text, line
    dirs = [out / "metaworld/drawer-open/bc/smoke" / f"seed_{s}" for s in (0, 1)]
    wait_for(lambda: all(status_of(d) == "done" for d in dirs), cluster=cluster, what="GPU-sweep runs done")


def test_slurm_launcher_bad_input_is_a_one_line_error(cluster, drawer_open_data, tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("gpus: 2\n")
    assert (
        run_cli(
            [
                "--launcher",
                "slurm",
                "--cluster",
                str(bad),
                "--algos",
                "bc",
                "--profile",
                "smoke",
                "--data-dir",
                str(drawer_open_data),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "unknown key(s) gpus" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_submission_sbatch_refuses_is_an_error_with_a_hint_and_records_nothing(
    cluster, drawer_open_data, tmp_path, capsys
):
    # a partition the cluster does not have: sbatch itself refuses the job (asking for more GPUs than the
    # node has is not refused here: the job would just wait)
    out = tmp_path / "o"
    assert (
        run_cli(
            [
                "--launcher",
                "slurm",
                "--partition",
                "no-such-partition",
                "--gpus",
                "0",
                "--algos",
                "bc",
                "--profile",
                "smoke",
                "--data-dir",
                str(drawer_open_data),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 2
    )
    last = (
        capsys.readouterr().err.strip().splitlines()[-1]
    )  # (before it: sbatch's own lines, echoed by submitit)
    assert last.startswith("error: sbatch refused the submission:") and "nvalid partition" in last
    assert "--gpus 0" in last and "--cluster FILE" in last  # the hint
    assert not list(out.rglob(rundir.SLURM_JOB_FILE))  # nothing recorded as submitted
