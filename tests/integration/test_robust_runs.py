"""Runs that survive clusters and mistakes: one process per run, signals, run identity, checks."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.core import rundir
from benchmark.core.replay import BatchSampler
from benchmark.datasets.__main__ import main as datasets_cli
from benchmark.launch.execute import ConfigMismatch, execute
from benchmark.launch.plan import plan
from benchmark.run import build_parser
from benchmark.run import main as run_cli
from tests.helpers.runs import metric_rows as rows

REPO = Path(__file__).resolve().parents[2]
PLUGIN = str(REPO / "tests" / "helpers" / "slow_bc.py")


@pytest.fixture
def data_dir(drawer_open_data):
    return drawer_open_data


def cli_args(out, data_dir, profile="smoke"):
    return [
        "--import",
        PLUGIN,
        "--algos",
        "slow-bc",
        "--tasks",
        "metaworld/drawer-open",
        "--profile",
        profile,
        "--out",
        str(out),
        "--data-dir",
        str(data_dir),
        "--no-progress",
    ]


def start(out, data_dir, profile="smoke", delay="0.4"):
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark.run", *cli_args(out, data_dir, profile)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SLOW_BC_DELAY": delay},
    )


def run_dir(out, profile="smoke"):
    return Path(out) / "metaworld/drawer-open/slow-bc" / profile / "seed_0"


def wait_for(cond, timeout=240):
    t = time.time()
    while not cond():
        if time.time() - t > timeout:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def n_rows(d, phase=None):
    try:
        return sum(1 for r in rows(d) if phase is None or r["phase"] == phase)
    except (FileNotFoundError, KeyError):
        return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory, drawer_open_data):
    out = tmp_path_factory.mktemp("ref")
    p = start(out, drawer_open_data, delay="0")
    assert p.wait(timeout=600) == 0, p.stderr.read()
    return rows(run_dir(out))


def test_two_processes_on_one_run_one_runs_the_other_refuses(tmp_path, data_dir, reference):
    a = start(tmp_path, data_dir)
    wait_for(lambda: rundir.read_status(run_dir(tmp_path)).get("status") == "running")
    b = start(tmp_path, data_dir)
    out_b, err_b = b.communicate(timeout=600)
    assert a.wait(timeout=600) == 0, a.stderr.read()
    assert b.returncode == 4, err_b
    assert f"skipped: running in pid {a.pid} on host" in out_b
    status = rundir.read_status(run_dir(tmp_path))
    assert status["status"] == "done"
    assert rows(run_dir(tmp_path)) == reference  # the finished metrics equal a single run's
    assert not list(run_dir(tmp_path).glob(".*.tmp"))  # no temporary file left behind


@pytest.mark.parametrize(
    "sig, phase", [(signal.SIGTERM, "offline"), (signal.SIGINT, "online"), (signal.SIGUSR2, "online")]
)
def test_a_signal_checkpoints_and_the_rerun_resumes_to_the_same_metrics(
    tmp_path, data_dir, reference, sig, phase
):
    p = start(tmp_path, data_dir)
    d = run_dir(tmp_path)
    wait_for(lambda: n_rows(d, phase) >= 1)
    p.send_signal(sig)
    _, err = p.communicate(timeout=600)
    assert p.returncode == 3, err
    status = rundir.read_status(d)
    assert status["status"] == "interrupted" and status["signal"] == sig.name
    assert f"interrupted ({sig.name})" in err and "Traceback" not in err
    assert len(rows(d)) < len(reference)
    p = start(tmp_path, data_dir, delay="0")
    assert p.wait(timeout=600) == 0, p.stderr.read()
    assert rows(d) == reference
    assert rundir.read_status(d)["status"] == "done"


def test_smoke_and_cpu_runs_into_one_out_do_not_collide(tmp_path, data_dir):
    p = start(tmp_path, data_dir, delay="0")
    assert p.wait(timeout=600) == 0
    cpu = start(tmp_path, data_dir, profile="cpu", delay="0")  # not skipped: a run of its own
    wait_for(lambda: n_rows(run_dir(tmp_path, "cpu")) >= 1)
    cpu.send_signal(signal.SIGTERM)
    cpu.communicate(timeout=600)
    assert rundir.read_status(run_dir(tmp_path, "cpu"))["status"] == "interrupted"
    assert rundir.read_status(run_dir(tmp_path, "smoke"))["status"] == "done"
    assert json.loads((run_dir(tmp_path, "cpu") / "config.json").read_text())["profile"] == "cpu"


def test_resuming_with_another_config_is_refused_naming_the_fields(tmp_path, data_dir, monkeypatch):
    import benchmark.run  # noqa: F401

    args = build_parser().parse_args(
        ["--algos", "bc", "--profile", "smoke", "--out", str(tmp_path), "--data-dir", str(data_dir)]
    )
    r = plan(args)[0]
    real = BatchSampler.batch
    monkeypatch.setattr(
        BatchSampler,
        "batch",
        lambda self, s, *a: (_ for _ in ()).throw(KeyboardInterrupt) if s == 2 else real(self, s, *a),
    )
    with pytest.raises(Exception, match="interrupted"):
        execute(r, "smoke", progress=False)
    monkeypatch.undo()
    changed = dataclasses.replace(r, cfg=dataclasses.replace(r.cfg, lr=1e-3))
    with pytest.raises(ConfigMismatch, match=r"agent_config.lr: 0.0003 -> 0.001"):
        execute(changed, "smoke", progress=False)
    assert execute(r, "smoke", progress=False) == "done"  # the same config resumes


def test_a_run_on_another_dataset_gets_its_own_directory(tmp_path, data_dir):
    assert (
        datasets_cli(
            ["subset", "metaworld/drawer-open", "--episodes", "1", "--seed", "3", "--data-dir", str(data_dir)]
        )
        == 0
    )
    sub = next(p.name for p in (data_dir / "metaworld").iterdir() if p.name.startswith("drawer-open-"))
    args = build_parser().parse_args(
        [
            "--algos",
            "bc",
            "--profile",
            "smoke",
            "--out",
            str(tmp_path),
            "--data-dir",
            str(data_dir),
            "--dataset",
            f"metaworld/{sub}",
            "--dry-run",
        ]
    )
    (r,) = plan(args, resolve=False)
    assert r.dir == tmp_path / "metaworld/drawer-open/bc" / f"smoke@metaworld-{sub}" / "seed_0"


def test_bad_inputs_are_one_line_errors_with_nothing_written(tmp_path, data_dir, capsys):
    base = ["--algos", "bc", "--profile", "smoke", "--data-dir", str(data_dir)]
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert run_cli([*base, "--out", str(afile)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    # a damaged dataset is reported as such (not as missing), naming the bad file
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in (data_dir / "metaworld").rglob("*"):
        target = bad / "metaworld" / f.relative_to(data_dir / "metaworld")
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.is_file():
            target.write_bytes(f.read_bytes())
    episode = next((bad / "metaworld/drawer-open/episodes").glob("*.npz"))
    episode.write_bytes(episode.read_bytes()[:-50])
    assert (
        run_cli(["--algos", "bc", "--profile", "smoke", "--data-dir", str(bad), "--out", str(tmp_path / "o")])
        == 2
    )
    err = capsys.readouterr().err
    assert "invalid dataset" in err and episode.name in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_dataset_name_resolves_per_task_when_it_has_no_manifest_itself(tmp_path):
    import numpy as np

    from benchmark.datasets import DatasetWriter
    from tests.helpers.runs import make_episode

    for t in ("mixed", "partial"):  # what `generate kitchen` writes: one dataset per task
        with DatasetWriter(
            tmp_path / f"kitchen/scripted-{t}", task=f"kitchen/{t}", generator={"name": "test"}, seed=0
        ) as w:
            w.add(make_episode(T=3, size=64, action_dim=9, objects_done=np.zeros((3, 4), bool)))
    args = build_parser().parse_args(
        [
            "--algos",
            "bc",
            "--tasks",
            "kitchen",
            "--profile",
            "smoke",
            "--out",
            str(tmp_path / "out"),
            "--data-dir",
            str(tmp_path),
            "--dataset",
            "kitchen/scripted",
            "--dry-run",
        ]
    )
    runs = plan(args, resolve=False)
    assert [r.dataset.name for r in runs] == ["scripted-mixed", "scripted-partial"]
    assert runs[0].dir.parent.name == "smoke@kitchen-scripted-mixed"


def test_device_cuda_without_a_gpu_and_auto_records_what_it_resolved(tmp_path, drawer_open_data, capsys):
    from benchmark.launch.plan import has_nvidia_gpu

    if has_nvidia_gpu():
        pytest.skip("this machine has an NVIDIA GPU")
    base = ["--algos", "bc", "--profile", "smoke", "--data-dir", str(drawer_open_data), "--no-progress"]
    assert run_cli([*base, "--device", "cuda", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "error: --device cuda: this machine has no NVIDIA GPU (no driver found); use --device cpu or auto"
    )
    assert not (tmp_path / "c").exists()
    assert run_cli([*base, "--out", str(tmp_path / "a")]) == 0  # --device auto (the default)
    config = json.loads((tmp_path / "a/metaworld/drawer-open/bc/smoke/seed_0/config.json").read_text())
    assert config["device"] == "cpu"


def test_an_import_that_does_not_parse_is_a_one_line_error(tmp_path, capsys):
    plugin = tmp_path / "broken_algo.py"
    plugin.write_text("from algorithms import register\n\ndef make(:\n    pass\n")
    assert run_cli(["--import", str(plugin), "--list"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(plugin) in err and "line 3" in err and "invalid syntax" in err
