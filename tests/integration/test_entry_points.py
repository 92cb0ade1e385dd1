"""Each command-line entry point runs from a fresh interpreter (CleanRL-style smoke tests)."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300)


def test_perf_render_prints_the_ratio():
    out = run("benchmark.perf", "render", "--steps", "5", "--tasks", "metaworld/hammer")
    assert out.returncode == 0, out.stderr
    header, _, row = out.stdout.strip().splitlines()[-3:]
    assert "ratio" in header and row.startswith("metaworld/hammer")
    assert float(row.split()[3]) > 0


def test_datasets_cli_help_and_bad_subcommand():
    assert run("benchmark.datasets", "--help").returncode == 0
    out = run("benchmark.datasets", "explode")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_perf_run_times_the_protocol_and_projects_hours(drawer_open_data, tmp_path):
    out = run(
        "benchmark.perf",
        "run",
        "--algos",
        "bc,dreamerv2",
        "--profile",
        "smoke",
        "--data-dir",
        str(drawer_open_data),
        "--offline",
        "4",
        "--log-every",
        "2",
        "--episodes",
        "3",
        "--eval-episodes",
        "1",
        "--set",
        "compile=off",
        "--keep",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    table = [line.split() for line in out.stdout.splitlines() if line.startswith(("bc ", "dreamerv2 "))]
    assert [r[0] for r in table] == ["bc", "dreamerv2"]
    for r in table:
        assert float(r[1]) > 0 and float(r[2]) > 0  # offline updates/s, seconds per online episode
    # the runs are real: each wrote its metrics (offline windows, 3 online episodes, 2 evaluations)
    for algo in ("bc", "dreamerv2"):
        (metrics,) = tmp_path.glob(f"metaworld/drawer-open/{algo}/smoke/seed_0/metrics.csv")
        phases = [line.split(",")[0] for line in metrics.read_text().splitlines()[1:]]
        assert phases.count("online") == 3 and phases.count("eval") == 2
    bad = run("benchmark.perf", "run", "--episodes", "2")
    assert bad.returncode == 2 and "--episodes must be at least 3" in bad.stderr
    bad = run("benchmark.perf", "run", "--algos", "bc", "--set", "compile=off")  # a field bc does not have
    assert bad.returncode == 2 and "--set compile: no config field" in bad.stderr and "BCConfig" in bad.stderr


def test_device_options_defaults_and_errors():
    import pytest
    import torch

    from algorithms.nets.torch_parts import resolve_device_options

    cpu = torch.device("cpu")
    assert resolve_device_options(cpu, "auto", "auto") == (False, False)  # fp32, no compile: measured fastest
    assert resolve_device_options(cpu, "bf16", "on") == (True, True)
    assert resolve_device_options(cpu, "tf32", "off") == (False, False)
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_device_options(cpu, "fp16", "auto")
    with pytest.raises(ValueError, match="compile must be one of"):
        resolve_device_options(cpu, "auto", "yes")


def test_perf_worldmodel_counts_the_operators_of_an_update():
    out = run("benchmark.perf", "worldmodel", "--count-ops", "--batch", "2")
    assert out.returncode == 0, out.stderr
    rows = {
        line.split()[0]: line.split()[1:5]
        for line in out.stdout.splitlines()
        if line.startswith(("dreamerv2 ", "moto "))
    }
    assert set(rows) == {"dreamerv2", "moto"}
    for agent, (ops, compute, wm, wm_compute) in rows.items():
        assert int(ops) > int(compute) > int(wm_compute) > 1000, (agent, rows[agent])
        assert int(ops) > int(wm) > int(wm_compute)
    assert int(rows["moto"][0]) > int(rows["dreamerv2"][0])  # twin critics, BC and the ensemble


def test_perf_gpu_check_runs_its_four_parts_on_a_cpu_at_smoke_sizes(drawer_open_data):
    out = run(
        "benchmark.perf",
        "gpu-check",
        "--device",
        "cpu",
        "--sizes",
        "smoke",
        "--repeats",
        "1",
        "--learner-updates",
        "2",
        "--data-dir",
        str(drawer_open_data),
    )
    assert out.returncode == 0, out.stderr
    parts = [line.split("|")[0].strip() for line in out.stdout.splitlines() if line.startswith("part=")]
    # on a CPU cuda_graph=on is refused, so each agent has its eager row only
    assert parts == (
        ["part=update"] * 2 + ["part=equality"] * 2 + ["part=run"] + ["part=learners"] * 4 + ["part=run"] * 2
    )  # MOTO's projected run before the learners
    assert "\nupdate\n" in out.stdout and "\nrun\n" in out.stdout  # the final table of every part
    equality = [line for line in out.stdout.splitlines() if line.startswith("part=equality")]
    assert all("eager_vs_eager=0.0e+00" in line for line in equality), equality  # the CPU is deterministic


def test_perf_gpu_check_goes_on_past_a_failing_row_and_exits_1(tmp_path):
    out = run(
        "benchmark.perf",
        "gpu-check",
        *("--device", "cpu", "--sizes", "smoke", "--repeats", "1", "--learner-updates", "2"),
        *("--data-dir", str(tmp_path / "no-datasets")),  # the projected runs need the dataset
    )
    assert out.returncode == 1, out.stderr
    runs = [line for line in out.stdout.splitlines() if line.startswith("part=run")]
    assert len(runs) == 3 and all("error=UsageError: missing dataset" in line for line in runs), runs
    assert "\nupdate\n" in out.stdout and "\nrun\n" in out.stdout  # the rows before it, and the table


def test_perf_gpu_check_without_a_gpu_is_a_clear_error():
    out = run("benchmark.perf", "gpu-check")
    assert out.returncode == 2 and "needs a CUDA GPU" in out.stderr
