"""Fig. 4 end to end on data anyone can make: a scripted kitchen/partial dataset, its probe set (held-out
episodes doing all four objects), a MOTO run that predicts rewards along them, and the analysis's table
and report panel next to the paper's 3.63 / 3.52."""

import shutil

import pandas as pd

from benchmark.analysis.__main__ import main as analysis_cli
from benchmark.datasets.__main__ import main as datasets_cli
from benchmark.run import main as run_cli


def test_a_moto_run_predicts_rewards_along_the_probe_set_and_the_analysis_tables_them(
    tmp_path, kitchen_scripted_data, capsys
):
    data = tmp_path / "data"
    shutil.copytree(kitchen_scripted_data, data)
    assert (
        datasets_cli(
            ["probe", "kitchen/scripted-partial", "--episodes", "1", "--quiet", "--data-dir", str(data)]
        )
        == 0
    )
    assert (data / "kitchen" / "scripted-partial-probe" / "manifest.json").exists()
    out = tmp_path / "runs"
    argv = ["--tasks", "kitchen/partial", "--profile", "smoke", "--data-dir", str(data), "--out", str(out)]
    # the probe set is held out: no run trains on it
    assert (
        run_cli(["--algos", "bc", *argv, "--dataset", "kitchen/scripted-partial-probe", "--no-progress"]) == 2
    )
    assert "is a probe set" in capsys.readouterr().err
    assert run_cli(["--algos", "moto", *argv, "--dataset", "kitchen/scripted", "--no-progress"]) == 0
    (run,) = out.glob("kitchen/partial/moto/*/seed_0")
    rows = pd.read_csv(run / "diagnostics" / "reward_prediction.csv")
    probe = rows[(rows.episode_set == "probe") & (rows.source == "data")]
    assert len(probe) and probe.groupby("episode").true_reward.max().eq(4.0).all()  # all four objects
    assert (rows[rows.episode_set == "dataset"].true_reward.max() <= 3.0) and set(rows.data_max_reward) == {
        3.0
    }
    assert analysis_cli([str(out), "--out", str(tmp_path / "analysis")]) == 0
    table = pd.read_csv(tmp_path / "analysis" / "tables" / "reward_generalisation.csv")
    (row,) = table.itertuples()
    assert (row.method, row.episode_set, row.episodes, row.final_true_reward) == ("moto", "probe", 1, 4.0)
    assert row.above_data_max == (row.final_predicted_reward > 3.0)  # known: the data's maximum is
    assert (row.paper_final_predicted_reward, row.paper_final_policy_reward, row.data_max_reward) == (
        3.63,
        3.52,
        3.0,
    )
    report = (tmp_path / "analysis" / "report.html").read_text()
    assert "Fig. 4" in report and "reward_prediction_moto_kitchen-partial" in report
    assert "Model generalisation (paper Fig. 4" in report and "along held-out probe episodes" in report
