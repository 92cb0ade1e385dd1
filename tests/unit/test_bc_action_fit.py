"""BC writes the same action_fit.csv as MOTO (issue 33, item 6: is MOTO's BC under-trained next to the
BC baseline?), and the analysis puts the actors side by side."""

import numpy as np
import pandas as pd
import pytest

from algorithms.contract import DIAGNOSTICS_COLUMNS
from benchmark.analysis import diagnostics
from benchmark.run import main as run_cli


def test_bc_writes_its_action_error_on_the_demonstrations_at_each_evaluation(tmp_path, drawer_open_data):
    out = tmp_path / "out"
    argv = ["--algos", "bc", "--profile", "smoke", "--data-dir", str(drawer_open_data), "--out", str(out)]
    assert run_cli([*argv, "--no-progress"]) == 0
    (path,) = out.rglob("diagnostics/action_fit.csv")
    df = pd.read_csv(path)
    assert list(df.columns) == DIAGNOSTICS_COLUMNS["action_fit.csv"]
    # two demonstrations (the fixture's), every step of each, at the offline and the online evaluations
    assert set(df["phase"]) == {"offline", "online"} and df["episode"].nunique() == 2
    first = df[df["grad_step"] == df["grad_step"].min()]
    assert first["grad_step"].iloc[0] == 4 and len(first) == 2 * 100  # 4 offline updates; 100-step demos
    assert (df["action_error"] >= 0).all() and df["action_error"].notna().all()
    summ = diagnostics.action_fit_summary(diagnostics.read_action_fit(path).assign(run="r"))
    assert list(summ["at"]) == ["offline end", "last"]
    assert summ["error_first_steps"].iloc[0] == pytest.approx(
        first.loc[first["t"] < 10, "action_error"].mean()
    )
    assert np.isfinite(summ["error_later"]).all()
    from benchmark.analysis.pipeline import analyze

    analyze(out, tmp_path / "report")
    table = pd.read_csv(tmp_path / "report" / "tables" / "action_fit.csv")
    assert list(table["method"]) == ["bc", "bc"] and list(table["at"]) == ["offline end", "last"]
    assert table["error_first_steps"].iloc[0] == pytest.approx(summ["error_first_steps"].iloc[0])
    assert "fit to the demonstrations" in (tmp_path / "report" / "report.md").read_text()
