"""Every registered algorithm and variant completes the smoke protocol on a MetaWorld task and on both
Kitchen tasks, through the CLI a user types (a MOTO that ran only on MetaWorld once failed every Kitchen
run)."""

import csv

import pytest

import algorithms
from benchmark.run import main as run_cli

MOTO_FAMILY = {n for n in algorithms.names() if algorithms.get(n).base_algo == "moto"}


def _eval_rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["phase"] == "eval"]


@pytest.mark.slow
@pytest.mark.parametrize("algo", algorithms.names())
def test_every_algorithm_completes_the_smoke_protocol_on_both_domains(
    algo, tmp_path, drawer_open_data, kitchen_scripted_data
):
    out = tmp_path / "runs"
    assert (
        run_cli(
            [
                "--algos",
                algo,
                "--tasks",
                "metaworld/drawer-open",
                "--profile",
                "smoke",
                "--no-progress",
                "--data-dir",
                str(drawer_open_data),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert (
        run_cli(
            [
                "--algos",
                algo,
                "--tasks",
                "kitchen",
                "--profile",
                "smoke",
                "--no-progress",
                "--data-dir",
                str(kitchen_scripted_data),
                "--dataset",
                "kitchen/scripted",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    runs = {
        "metaworld/drawer-open": out / f"metaworld/drawer-open/{algo}/smoke/seed_0",
        **{
            f"kitchen/{t}": out / f"kitchen/{t}/{algo}/smoke@kitchen-scripted-{t}/seed_0"
            for t in ("mixed", "partial")
        },
    }
    for task, run in runs.items():
        assert '"status": "done"' in (run / "status.json").read_text(), task
        assert len(_eval_rows(run)) == 3, (
            task
        )  # after the offline phase and after each of the 2 online episodes
        # Kitchen rows count the task's objects in goal (0-4); MetaWorld's files have no such column
        objects = [r.get("eval_objects") for r in _eval_rows(run)]
        if task.startswith("kitchen/"):
            assert all(o not in (None, "") and 0 <= float(o) <= 4 for o in objects), (task, objects)
        else:
            assert all(o is None for o in objects), task
        if algo in MOTO_FAMILY:  # MOTO's diagnostics exist on both domains
            for name in ("uncertainty.csv", "uncertainty_actions.csv", "reward_prediction.csv"):
                assert (run / "diagnostics" / name).exists(), (task, name)
