"""Every sweep file in slurm/ plans (as ``--dry-run`` does): its keys, algorithms, tasks, overrides and
schedule fields are all known, and no two of its runs share a folder."""

from pathlib import Path

import pytest

from benchmark.launch.plan import plan_args
from benchmark.launch.sweeps import expand

REPO = Path(__file__).resolve().parents[2]
SWEEPS = sorted(p for p in (REPO / "slurm").glob("*.yaml") if p.name != "example.yaml")


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_every_sweep_file_plans_with_one_folder_per_run(path, tmp_path):
    args = plan_args(out=str(tmp_path), data_dir=str(tmp_path / "no-data"), sweep=str(path), dry_run=True)
    runs = [r for _, rs in expand(args, []) for r in rs]
    assert runs and len({r.dir for r in runs}) == len(runs)


def test_the_kitchen_sizing_sweep_runs_bc_offline_only_at_growing_schedules(tmp_path):
    args = plan_args(
        out=str(tmp_path), sweep=str(REPO / "slurm/kitchen_sizing.yaml"), data_dir=str(tmp_path), dry_run=True
    )
    runs = [r for _, rs in expand(args, []) for r in rs]
    assert {r.algo for r in runs} == {"bc"} and {r.schedule.online_steps for r in runs} == {0}
    assert [r.schedule.offline_steps for r in runs] == [1000, 3000, 10000, 3000]
    assert all(r.dataset.name == "scripted-mixed" for r in runs)
