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
