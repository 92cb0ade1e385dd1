"""Every command answers a mistake the same way (docs/protocol.md, exit codes): one ``error:`` line on
stderr, exit 2, nothing written; unknown names suggest the closest known ones; an --import that fails
names the file; nothing found is non-zero; a closed pipe is silent."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.analysis.__main__ import main as analysis
from benchmark.datasets.__main__ import main as datasets
from benchmark.launch.status import main as status
from benchmark.perf.__main__ import main as perf
from benchmark.run import main as run

REPO = Path(__file__).resolve().parents[2]
CLASH = """from dataclasses import dataclass
from algorithms import register


@dataclass
class C:
    x: int = 0


register("bc", C, None)
"""

CASES = [
    (run, ["--algos", "mot"], "unknown algorithm 'mot' (did you mean moto?)"),
    (run, ["--profile", "smok"], "unknown profile 'smok' (did you mean smoke?)"),
    (
        run,
        ["--tasks", "metaworld/door-opn"],
        "unknown task 'metaworld/door-opn' (did you mean metaworld/door-open",
    ),
    (run, ["--out", "/proc/results"], "--out /proc/results: /proc is not writable"),
    (run, ["--out", "afile/results"], "--out afile/results: afile is a file, not a folder"),
    (run, ["--import", "bad.py", "--list"], "--import bad.py, line 1: No module named 'nosuchmodule'"),
    (
        run,
        ["--import", "clash.py"],
        "--import clash.py, line 10: algorithm 'bc' from --import clash.py is already provided by the "
        "built-in algorithms.bc",
    ),
    (run, ["--seeds", "x"], "--seeds must be comma-separated"),
    (run, ["--bogus"], "unrecognized arguments: --bogus"),
    (datasets, ["genrate", "metaworld"], "invalid choice: 'genrate'"),
    (datasets, ["generate", "metaworld/door-opn", "--data-dir", "data"], "(did you mean metaworld/door-open"),
    (datasets, ["verify", "nosuch", "--data-dir", "empty"], "no dataset at empty/nosuch"),
    (analysis, ["nosuch", "--out", "report"], "results directory nosuch does not exist"),
    (analysis, ["empty", "--out", "afile/report"], "--out afile/report: afile is a file, not a folder"),
    (analysis, ["empty", "--out", "report"], "no run directory"),  # nothing found
    (analysis, ["empty", "--out", "report", "--reps", "1"], "--reps must be >= 10"),
    (status, ["empty"], "no run directory under empty"),  # nothing found, as for the analysis
    (status, ["afile"], "afile is not a folder"),
    (status, ["empty", "--sweep", "missing.yaml"], "--sweep missing.yaml: no such file"),
    (perf, ["rendr"], "unknown benchmark 'rendr' (did you mean render?)"),
    (perf, [], "no benchmark named"),
    (perf, ["store", "--bogus"], "unrecognized arguments: --bogus"),
]


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize(
    "main, argv, says", CASES, ids=[f"{m.__module__}:{' '.join(a)}" for m, a, _ in CASES]
)
def test_a_mistake_is_one_line_exit_2_and_nothing_written(main, argv, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BENCHMARK_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "afile").write_text("")
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.py").write_text("import nosuchmodule\n")
    (tmp_path / "clash.py").write_text(CLASH)
    before = _tree(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and says in err, err
    assert _tree(tmp_path) == before


def test_status_of_a_sweep_before_its_folder_exists_lists_every_run_missing(tmp_path, capsys):
    out = tmp_path / "not-yet"
    assert status([str(out), "--sweep", str(REPO / "slurm/fig2_metaworld.yaml"), "--no-squeue"]) == 0
    total = capsys.readouterr().out.splitlines()[-1]
    assert total.startswith(
        "total: 0 done, 0 running, 0 queued, 0 interrupted, 0 failed, "
    ) and total.endswith(" missing")
    assert int(total.split()[-2]) > 0 and not out.exists()


ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_a_closed_pipe_is_silent_through_head():
    seeds = ",".join(map(str, range(3000)))  # ~500 KB of plan: more than a pipe holds, so head closes it
    cmd = (
        f"{sys.executable} -m benchmark.run --dry-run --algos bc --tasks metaworld/drawer-open "
        f"--seeds {seeds} --out /nonexistent/r | head -1"
    )
    out = subprocess.run(
        ["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=300, cwd=REPO, env=ENV
    )
    assert out.stdout.count("\n") == 1 and "seed 0" in out.stdout
    assert out.stderr == "" and out.returncode == 141


@pytest.mark.parametrize(
    "module",
    ["benchmark.run", "benchmark.datasets", "benchmark.analysis", "benchmark.status", "benchmark.perf"],
)
def test_help_into_a_closed_pipe_is_silent(module):
    r, w = os.pipe()
    os.close(r)  # the reader is gone before anything is written
    try:
        out = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
            cwd=REPO,
            env=ENV,
        )
    finally:
        os.close(w)
    assert out.stderr == "" and out.returncode == 141
