"""Local sweeps (--launcher local --workers N), sweep files, --retry-failed, the status CLI and the
dry-run estimate. Runs are real (smoke profile, BC or the slow-bc plugin); nothing is mocked."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.core import rundir
from benchmark.launch.sweeps import load_sweep
from benchmark.run import main as run_cli
from benchmark.status import main as status_cli
from tests.helpers.runs import metric_rows as rows

REPO = Path(__file__).resolve().parents[2]
PLUGIN = str(REPO / "tests" / "helpers" / "slow_bc.py")


def wait_for(cond, timeout=300):
    t = time.time()
    while not cond():
        if time.time() - t > timeout:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


def local_cmd(out, drawer_open_data, seeds="0,1", workers="2"):
    return [
        sys.executable,
        "-m",
        "benchmark.run",
        "--import",
        PLUGIN,
        "--algos",
        "slow-bc",
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
        "--launcher",
        "local",
        "--workers",
        workers,
    ]


def seed_dir(out, seed):
    return Path(out) / "metaworld/drawer-open/slow-bc/smoke" / f"seed_{seed}"


def n_online(d):
    try:
        return sum(r["phase"] == "online" for r in rows(d))
    except (FileNotFoundError, KeyError):
        return 0


def test_two_workers_run_a_sweep_and_a_killed_workers_run_resumes_to_the_same_metrics(
    tmp_path, drawer_open_data
):
    env = {**os.environ, "SLOW_BC_DELAY": "0"}
    ref = tmp_path / "ref"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmark.run",
            "--import",
            PLUGIN,
            "--algos",
            "slow-bc",
            "--profile",
            "smoke",
            "--seeds",
            "0,1",
            "--out",
            str(ref),
            "--data-dir",
            str(drawer_open_data),
            "--no-progress",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    out = tmp_path / "out"
    launcher = subprocess.Popen(
        local_cmd(out, drawer_open_data),
        cwd=REPO,
        env={**os.environ, "SLOW_BC_DELAY": "0.4"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = seed_dir(out, 1)
    wait_for(
        lambda: n_online(victim) >= 1 and rundir.read_status(seed_dir(out, 0)).get("status") == "running"
    )
    both_running = rundir.read_status(seed_dir(out, 0)).get("status") == "running"
    worker = rundir.read_status(victim)["pid"]  # the worker process that holds seed 1
    assert worker != launcher.pid
    os.kill(worker, signal.SIGKILL)
    stdout, stderr = launcher.communicate(timeout=600)
    assert launcher.returncode == 1, stdout + stderr  # a run did not finish
    assert "worker died (killed by SIGKILL; rerun to resume)" in stdout
    assert both_running  # two workers at once
    assert rundir.read_status(seed_dir(out, 0))["status"] == "done"
    assert rundir.read_status(victim)["status"] == "running"  # its process died holding it
    st = subprocess.run(
        [sys.executable, "-m", "benchmark.status", str(out), "--no-squeue"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "total: 1 done, 0 running, 0 queued, 1 interrupted, 0 failed, 0 missing" in st.stdout, st.stdout
    # the same command again: seed 0 is skipped, seed 1 resumes from its checkpoint
    again = subprocess.run(
        local_cmd(out, drawer_open_data),
        cwd=REPO,
        env={**os.environ, "SLOW_BC_DELAY": "0"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 to launch, 1 done (skipped)" in again.stdout
    for s in (0, 1):
        assert rows(seed_dir(out, s)) == rows(seed_dir(ref, s))
    assert len(list((out / ".logs").glob("*.log"))) == 2  # each run's output in its own file


def test_failed_runs_are_listed_skipped_and_retried_with_retry_failed(tmp_path, drawer_open_data, capsys):
    out = tmp_path / "out"
    args = [
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
        "--launcher",
        "local",
    ]
    assert run_cli(args) == 0
    d = out / "metaworld/drawer-open/bc/smoke/seed_1"
    rundir.set_status(d, "failed", error="RuntimeError: out of memory")  # as a crashed run leaves it
    capsys.readouterr()
    assert run_cli(args) == 1  # nothing run, but a failed run remains
    printed = capsys.readouterr().out
    assert "1 failed (skipped; --retry-failed runs them again)" in printed
    assert f"failed: {d}: RuntimeError: out of memory" in printed
    assert status_cli([str(out), "--no-squeue"]) == 0
    table = capsys.readouterr().out
    assert (
        "1 done, 0 running, 0 queued, 0 interrupted, 1 failed" in table
        and "RuntimeError: out of memory" in table
    )
    assert run_cli([*args, "--retry-failed"]) == 0
    assert rundir.read_status(d)["status"] == "done"


SWEEP = """
name: tiny
figure: a test sweep
profile: smoke
seeds: [0, 1]
runs_per_job: 2
groups:
  - algos: bc
    tasks: metaworld/drawer-open
  - algos: [bc]
    tasks: [metaworld/drawer-open]
    seeds: 2
    runs_per_job: 3
"""


def test_a_sweep_file_runs_and_status_counts_its_missing_runs(tmp_path, drawer_open_data, capsys):
    sweep = tmp_path / "tiny.yaml"
    sweep.write_text(SWEEP)
    s = load_sweep(sweep)
    assert [(g["algos"], g["seeds"], g["runs_per_job"]) for g in s["groups"]] == [
        ("bc", "0,1", 2),
        ("bc", "2", 3),
    ]
    out = tmp_path / "out"
    base = ["--sweep", str(sweep), "--out", str(out), "--data-dir", str(drawer_open_data)]
    assert run_cli([*base, "--launcher", "slurm", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert (
        "plan: 3 runs in 2 jobs, 24 gradient updates, 72 env steps" in plan
    )  # seeds 0,1 packed in 1 job; seed 2: 1
    assert "no measurement for bc/smoke" in plan
    assert not out.exists()
    assert run_cli([*base, "--no-progress"]) == 0  # a sweep runs inline too, in this process
    assert (
        status_cli([str(out), "--sweep", str(sweep), "--data-dir", str(drawer_open_data), "--no-squeue"]) == 0
    )
    assert "total: 3 done, 0 running, 0 queued, 0 interrupted, 0 failed, 0 missing" in capsys.readouterr().out
    (out / "metaworld/drawer-open/bc/smoke/seed_2/status.json").unlink()  # as if never finished
    for f in (out / "metaworld/drawer-open/bc/smoke/seed_2").iterdir():
        f.unlink() if f.is_file() else None
    assert (
        status_cli([str(out), "--sweep", str(sweep), "--data-dir", str(drawer_open_data), "--no-squeue"]) == 0
    )
    assert "2 done, 0 running, 0 queued, 0 interrupted, 0 failed, 1 missing" in capsys.readouterr().out
    # the dry run now estimates from the measured steps/s of the finished runs
    assert run_cli([*base, "--launcher", "slurm", "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert (
        "plan: 1 runs in 1 jobs" in plan
        and "GPU-hours" in plan
        and "bc/smoke run(s) on metaworld/drawer-open" in plan
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("algos: bc\ntasks: metaworld/drawer-open\nseeds: 0\n", "no profile"),
        (
            "algos: bc\ntasks: metaworld/drawer-open\nseeds: 0\nprofile: smoke\nbogus: 1\n",
            "unknown key(s) bogus",
        ),
        ("algos: nope\ntasks: metaworld/drawer-open\nseeds: 0\nprofile: smoke\n", "unknown algorithm 'nope'"),
        ("[1, 2", "not valid YAML"),
    ],
)
def test_bad_sweep_files_are_one_line_errors(tmp_path, drawer_open_data, capsys, text, message):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(text)
    assert (
        run_cli(
            [
                "--sweep",
                str(sweep),
                "--launcher",
                "local",
                "--out",
                str(tmp_path / "o"),
                "--data-dir",
                str(drawer_open_data),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_sweep_with_swept_flags_and_bad_workers_are_refused(tmp_path, drawer_open_data, capsys):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("algos: bc\ntasks: metaworld/drawer-open\nseeds: 0\nprofile: smoke\n")
    argv = [
        "--sweep",
        str(sweep),
        "--algos",
        "bc",
        "--out",
        str(tmp_path / "o"),
        "--data-dir",
        str(drawer_open_data),
    ]
    assert run_cli(argv) == 2
    assert "drop --algos" in capsys.readouterr().err
    assert (
        run_cli(
            [
                "--launcher",
                "local",
                "--workers",
                "0",
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
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_the_repositorys_sweep_files_load_and_name_the_papers_runs():
    counts = {}
    for f in sorted((REPO / "slurm").glob("fig*.yaml")):
        s = load_sweep(f)
        assert s["figure"]
        counts[f.stem] = sum(
            len(g["algos"].split(","))
            * len(g["seeds"].split(","))
            * (
                10
                if g["tasks"] == "metaworld"
                else 2
                if g["tasks"] == "kitchen"
                else len(g["tasks"].split(","))
            )
            for g in s["groups"]
        )
    assert set(counts) == {"fig2_metaworld", "fig3_kitchen", "fig3_ablations", "fig5_data_size"}
    assert counts["fig2_metaworld"] == 8 * 10 * 3
    study = load_sweep(
        REPO / "slurm" / "cpu_study.yaml"
    )  # the MOTO fidelity study: 5 methods x 3 seeds, seed by seed
    assert [g["seeds"] for g in study["groups"]] == ["0", "1", "2"]
    assert all(
        g["algos"] == "moto,moto-no-unc,moto-no-bc,dreamerv2,bc"
        and g["profile"] == "cpu"
        and g["tasks"] == "metaworld/drawer-open"
        for g in study["groups"]
    )


def test_help_explains_the_launcher_options():
    p = subprocess.run(
        [sys.executable, "-m", "benchmark.run", "--help"], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 0
    for flag in (
        "--launcher",
        "--sweep",
        "--workers",
        "--retry-failed",
        "--cluster",
        "--runs-per-job",
        "--array-parallelism",
        "--gpus",
        "--time-min",
        "(default: 1440)",
    ):
        assert flag in p.stdout, flag
    s = subprocess.run(
        [sys.executable, "-m", "benchmark.status", "--help"], capture_output=True, text=True, timeout=60
    )
    assert s.returncode == 0 and "--sweep" in s.stdout and "interrupted" in s.stdout


def test_a_sweep_runs_at_another_profile_or_on_other_data_from_the_command_line(
    tmp_path, kitchen_scripted_data, capsys
):
    # Fig. 3's ablation sweep (paper profile, the tasks' own datasets) as a smoke pass on scripted Kitchen
    # data
    sweep = REPO / "slurm" / "fig3_ablations.yaml"
    argv = [
        "--sweep",
        str(sweep),
        "--out",
        str(tmp_path / "o"),
        "--data-dir",
        str(kitchen_scripted_data),
        "--dry-run",
    ]
    assert run_cli([*argv, "--profile", "smoke", "--dataset", "kitchen/scripted"]) == 0
    out = capsys.readouterr().out
    plan = [line for line in out.splitlines() if " -> " in line]
    assert len(plan) == 30 and all("[smoke" in line for line in plan)
    assert all("smoke@kitchen-scripted-" in line for line in plan)
    assert run_cli(argv) == 0  # without the flags: the file's own profile and datasets
    plan = [line for line in capsys.readouterr().out.splitlines() if " -> " in line]
    assert all("[paper" in line and "@" not in line.split(" -> ")[1] for line in plan)


def test_the_data_size_sweep_runs_at_cpu_scale_on_scripted_subsets(tmp_path, kitchen_scripted_data, capsys):
    # Fig. 5 on data anyone can make: the paper-profile sweep, its datasets replaced by a scripted source
    # and a seeded subset of it (--dataset a,b), at another profile
    from benchmark.datasets.__main__ import main as datasets_cli

    data = tmp_path / "data"
    shutil.copytree(kitchen_scripted_data, data)
    assert datasets_cli(["subset", "kitchen/scripted-mixed", "--episodes", "1", "--data-dir", str(data)]) == 0
    capsys.readouterr()
    names = "kitchen/scripted-mixed,kitchen/scripted-mixed-1ep-seed0"
    argv = ["--sweep", str(REPO / "slurm" / "fig5_data_size.yaml"), "--out", str(tmp_path / "o")]
    argv += ["--data-dir", str(data), "--profile", "cpu", "--dataset", names, "--dry-run"]
    assert run_cli(argv) == 0
    plan = [line for line in capsys.readouterr().out.splitlines() if " -> " in line]
    assert len(plan) == 6 and all("[cpu" in line and "dataset missing" not in line for line in plan)
    assert sum("cpu@kitchen-scripted-mixed-1ep-seed0/" in line for line in plan) == 3
    assert sum("cpu@kitchen-scripted-mixed/" in line for line in plan) == 3
    # without --sweep the list plans one set of runs per dataset too; an empty name is a usage error
    base = [
        "--algos",
        "moto",
        "--tasks",
        "kitchen/mixed",
        "--out",
        str(tmp_path / "o"),
        "--data-dir",
        str(data),
    ]
    assert run_cli([*base, "--dataset", names, "--profile", "smoke", "--dry-run"]) == 0
    plan = [line for line in capsys.readouterr().out.splitlines() if " -> " in line]
    assert len(plan) == 2 and "smoke@kitchen-scripted-mixed/" in plan[0] and "1ep-seed0/" in plan[1]
    assert run_cli([*base, "--dataset", "kitchen/scripted-mixed,", "--dry-run"]) == 2
    assert "empty name" in capsys.readouterr().err
