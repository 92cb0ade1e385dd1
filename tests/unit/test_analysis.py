"""The analysis package on run directories built here with known numbers."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from rliable import library as rly
from rliable import metrics as rlm

from benchmark.analysis import __main__ as cli
from benchmark.analysis import load, stats
from benchmark.analysis.pipeline import Options, analyze
from benchmark.analysis.synthetic import write_reward_prediction, write_run, write_uncertainty

REPS = 200


def direct(score_dict, func, seed):
    """A direct rliable call; its bootstrap draws from numpy's global RNG, so seed that."""
    np.random.seed(seed)
    return rly.get_interval_estimates(score_dict, func, reps=REPS, random_state=np.random.RandomState(seed))


def test_identity_comes_from_config_not_path(tmp_path):
    d = write_run(
        tmp_path,
        "moto-no-bc",
        "kitchen/mixed",
        3,
        [(0, 0.0), (5, 0.5)],
        base_algo="moto",
        profile="cpu",
        dataset="kitchen/mixed-100ep-seed0",
        status="running",
        subdir="some/odd/place",
    )
    res = load.load_runs(tmp_path, progress=False)
    r = res.runs.iloc[0]
    assert (r.run, r.algorithm, r.variant, r.task, r.domain) == (
        "some/odd/place",
        "moto",
        "moto-no-bc",
        "kitchen/mixed",
        "kitchen",
    )
    assert (r.dataset, r.profile, r.seed, r.status) == ("kitchen/mixed-100ep-seed0", "cpu", 3, "running")
    assert r.path == str(d)
    assert list(res.evals["eval_success"]) == [0.0, 0.5]
    assert list(res.evals["env_steps"]) == [0, 1000]


def test_metrics_read_by_header_partial_lines_and_bad_dirs(tmp_path):
    d = write_run(tmp_path, "bc", "metaworld/hammer", 0, [(0, 0.1)])
    # a column added later in the run's life, columns in another order, and a half-written last line
    (d / "metrics.csv").write_text(
        "episodes,phase,grad_step,env_steps,eval_success,new_loss\n"
        "0,eval,100,0,0.1,3.0\n2,eval,140,400,0.7,2.0\n3,eval,16"
    )
    bad = tmp_path / "broken" / "seed_0"
    bad.mkdir(parents=True)
    (bad / "config.json").write_text("{not json")
    nocfg = tmp_path / "incomplete" / "seed_0"
    nocfg.mkdir(parents=True)
    (nocfg / "config.json").write_text(json.dumps({"algo": "bc"}))
    res = load.load_runs(tmp_path, progress=False)
    assert list(res.runs["run"]) == ["metaworld/hammer/bc/seed_0"]
    ev = res.evals
    assert list(ev["eval_success"]) == [0.1, 0.7] and list(ev["episodes"]) == [0, 2]
    assert ev["eval_return"].isna().all()  # a column the file lacks is NaN, not an error
    problems = dict(res.problems)
    assert "not valid JSON" in problems[str(bad)] and "lacks task, seed" in problems[str(nocfg)]
    assert res.runs.iloc[0]["status"] == "done" and res.runs.iloc[0]["last_eval_success"] == 0.7


def test_walk_does_not_descend_into_runs_and_rejects_missing_root(tmp_path):
    d = write_run(tmp_path, "bc", "metaworld/hammer", 0, [(0, 0.1)])
    nested = d / "episodes" / "x"
    nested.mkdir(parents=True)
    (nested / "config.json").write_text("{}")
    assert load.find_run_dirs(tmp_path) == [d]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load.find_run_dirs(tmp_path / "nope")


def test_alignment_on_a_common_grid():
    a = (np.array([0, 10, 20]), np.array([0.0, 0.5, 1.0]))
    b = (np.array([5, 15]), np.array([0.2, 0.4]))  # starts later, stops earlier
    grid = stats.step_grid([a[0], b[0]])
    assert list(grid) == [0, 5, 10, 15, 20]
    m = stats.align([a, b], grid)
    np.testing.assert_array_equal(m[0], [0.0, 0.0, 0.5, 0.5, 1.0])
    np.testing.assert_array_equal(m[1], [np.nan, 0.2, 0.2, 0.4, np.nan])
    assert list(stats.step_grid([np.arange(1000)], max_points=5)) == [0, 250, 500, 749, 999]


def test_curve_ci_equals_a_direct_rliable_call_and_counts_runs():
    rng = np.random.default_rng(1)
    m = rng.random((4, 6))
    c = stats.curve_with_ci(m, reps=REPS, seed=3)
    pe, ie = direct({"x": m[:, None, :]}, lambda x: np.mean(x, axis=(0, 1)), 3)
    np.testing.assert_allclose(c["mean"], m.mean(0))
    np.testing.assert_allclose(c["lo"], ie["x"][0])
    np.testing.assert_allclose(c["hi"], ie["x"][1])
    assert (c["lo"] <= c["mean"]).all() and (c["mean"] <= c["hi"]).all()
    m[0, 4:] = np.nan  # one run stopped early
    c = stats.curve_with_ci(m, reps=REPS, seed=3)
    assert list(c["n_runs"]) == [4, 4, 4, 4, 3, 3]
    np.testing.assert_allclose(c["mean"][4:], m[1:, 4:].mean(0))


def test_fast_iqm_and_poi_equal_rliable():
    rng = np.random.default_rng(0)
    for shape in [(3, 10), (5, 2), (7, 1), (2, 3)]:
        x = np.round(rng.random(shape), 1)  # rounded: many ties
        y = np.round(rng.random((shape[0] + 2, shape[1])), 1)
        assert stats.iqm(x) == pytest.approx(rlm.aggregate_iqm(x), abs=1e-12)
        assert stats.poi_statistic(x, y) == pytest.approx(rlm.probability_of_improvement(x, y), abs=1e-12)
    assert stats.poi_statistic(x, x) == pytest.approx(0.5)
    s = rng.random((4, 3, 5))
    np.testing.assert_allclose(stats.iqm_per_point(s), [rlm.aggregate_iqm(s[..., j]) for j in range(5)])


def test_aggregates_and_poi_intervals_equal_direct_rliable_calls():
    rng = np.random.default_rng(2)
    scores = {"moto": rng.random((3, 4)), "bc": 0.5 * rng.random((3, 4))}
    agg = stats.aggregates(scores, reps=REPS, seed=5)
    funcs = [rlm.aggregate_iqm, rlm.aggregate_mean, rlm.aggregate_median, rlm.aggregate_optimality_gap]
    pe, ie = direct(scores, lambda x: np.array([f(x) for f in funcs]), 5)
    for m in scores:
        got = agg[agg["method"] == m].set_index("metric")
        for i, name in enumerate(["IQM", "Mean", "Median", "Optimality gap"]):
            assert got.loc[name, "value"] == pytest.approx(pe[m][i])
            assert got.loc[name, "lo"] == pytest.approx(ie[m][0, i])
            assert got.loc[name, "hi"] == pytest.approx(ie[m][1, i])
    assert agg[(agg.method == "bc") & (agg.metric == "Mean")]["value"].iloc[0] == pytest.approx(
        scores["bc"].mean()
    )
    poi = stats.probability_of_improvement(scores, "moto", reps=REPS, seed=5)
    pe, ie = direct(
        {"moto,bc": [scores["moto"], scores["bc"]]},
        lambda x, y: np.array([rlm.probability_of_improvement(x, y)]),
        5,
    )
    assert poi.iloc[0]["value"] == pytest.approx(pe["moto,bc"][0])
    assert (poi.iloc[0]["lo"], poi.iloc[0]["hi"]) == pytest.approx((ie["moto,bc"][0, 0], ie["moto,bc"][1, 0]))
    prof, ci = stats.performance_profiles(scores, np.array([0.0, 0.5, 1.0]), reps=REPS, seed=5)
    assert prof["moto"][1] == pytest.approx(np.mean(scores["moto"] > 0.5))
    np.random.seed(5)
    _, ci2 = rly.create_performance_profile(scores, np.array([0.0, 0.5, 1.0]), reps=REPS)
    np.testing.assert_allclose(ci["moto"], ci2["moto"])
    # sample efficiency: IQM per step, the same as rliable's aggregate_iqm per step
    s3 = {"moto": rng.random((3, 4, 5))}
    pe3, ie3 = stats.iqm_over_steps(s3, reps=REPS, seed=2)
    pe4, ie4 = direct(s3, lambda x: np.array([rlm.aggregate_iqm(x[..., j]) for j in range(5)]), 2)
    np.testing.assert_allclose(pe3["moto"], pe4["moto"])
    np.testing.assert_allclose(ie3["moto"], ie4["moto"])


def test_final_scores_window_unfinished_and_matrices_by_position(tmp_path):
    write_run(tmp_path, "bc", "metaworld/a", 0, [(0, 0.0), (5, 0.4), (10, 0.8)])
    write_run(tmp_path, "bc", "metaworld/a", 1, [(0, 0.0), (5, 0.2), (10, 0.6)])
    write_run(tmp_path, "bc", "metaworld/a", 2, [(0, 0.0), (5, 1.0)], status="running")
    write_run(tmp_path, "bc", "metaworld/b", 7, [(0, 0.0), (10, 0.3)])
    res = load.load_runs(tmp_path, progress=False)
    runs = res.runs.assign(method=res.runs["variant"])
    flags = stats.Flags()
    fin = stats.final_scores(res.evals, runs, window=2, flags=flags)
    got = fin.set_index("run")["final"]
    assert got["metaworld/a/bc/seed_0"] == pytest.approx(0.6) and got[
        "metaworld/a/bc/seed_1"
    ] == pytest.approx(0.4)
    assert "metaworld/a/bc/seed_2" not in got and any("seed_2 is running" in f for f in flags.items)
    fin_all = stats.final_scores(res.evals, runs, include_unfinished=True)
    assert fin_all.set_index("run")["final"]["metaworld/a/bc/seed_2"] == 1.0
    mats, tasks = stats.score_matrices(fin, flags=flags)
    assert tasks == ["metaworld/a", "metaworld/b"] and mats["bc"].shape == (1, 2)
    np.testing.assert_allclose(mats["bc"], [[0.6, 0.15]])
    assert any("1 of 2 runs beyond" in f for f in flags.items)
    with pytest.raises(ValueError, match="window"):
        stats.final_scores(res.evals, runs, window=0)


def _small_suite(root):
    rng = np.random.default_rng(0)
    for algo, base, skill in [
        ("moto", "moto", 0.9),
        ("moto-no-bc", "moto", 0.6),
        ("dreamerv2", "dreamerv2", 0.5),
        ("bc", "bc", 0.2),
    ]:
        tasks = ["kitchen/mixed", "kitchen/partial"] + (
            ["metaworld/hammer", "metaworld/door-open"] if algo == base else []
        )
        for task in tasks:
            for s in range(2):
                ev = [
                    (e, float(np.clip(skill * e / 10 + rng.normal(0, 0.05), 0, 1))) for e in range(0, 11, 2)
                ]
                write_run(root, algo, task, s, ev, base_algo=base, gif=(s == 0))
    write_run(root, "bc", "metaworld/hammer", 2, [(0, 0.0), (2, 0.1)], status="failed")
    write_run(root, "moto", "kitchen/partial", 2, [(0, 0.0), (2, 0.3), (4, 0.5)], status="running")
    # the finals of moto on kitchen/mixed: 1.0 and 0.8 -> 90% vs the paper's 100%
    write_run(root, "moto", "kitchen/mixed", 0, [(0, 0.0), (10, 1.0)])
    write_run(root, "moto", "kitchen/mixed", 1, [(0, 0.0), (10, 0.8)])
    for n in (100, 250):
        write_run(
            root,
            "moto",
            "kitchen/mixed",
            0,
            [(0, 0.0), (10, 0.9)],
            dataset=f"kitchen/mixed-{n}ep-seed0",
            subdir=f"kitchen/mixed/moto/{n}/seed_0",
        )
    write_reward_prediction(root / "kitchen/partial/moto/seed_0", rng)
    write_uncertainty(root / "kitchen/partial/moto/seed_0", rng)


@pytest.mark.slow
def test_analyze_writes_every_figure_table_and_the_report(tmp_path):
    _small_suite(tmp_path / "res")
    out = tmp_path / "out"
    A = analyze(tmp_path / "res", out, Options(reps=50, progress=False))
    figs = [png for items in A.figures.values() for _, png in items]
    names = {p.split("/")[-1] for p in figs}
    for n in [
        "curves_kitchen.png",
        "curves_metaworld.png",
        "ablations_kitchen.png",
        "datasize.png",
        "aggregates_kitchen.png",
        "profiles_metaworld.png",
        "poi_kitchen.png",
        "sample_efficiency_metaworld.png",
        "reward_prediction_moto_kitchen-partial.png",
        "uncertainty_moto_kitchen-partial.png",
    ]:
        assert n in names, n
    for p in figs:
        assert (out / p).stat().st_size > 5000 and (out / p.replace(".png", ".pdf")).stat().st_size > 1000
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    for p in figs:
        assert f"src='{p}'" in html and f"]({p})" in md
    assert "failed" in html and "running" in html and "non-finite loss" in html
    assert html.count("<img class='gif'") == len(list((tmp_path / "res").rglob("gifs")))
    # the missing grid: bc seed 2 exists on hammer only, so it is missing elsewhere in metaworld
    missing = pd.read_csv(out / "tables" / "missing.csv")
    assert ((missing.variant == "bc") & (missing.task == "metaworld/door-open") & (missing.seed == 2)).any()
    assert not ((missing.variant == "bc") & (missing.task == "metaworld/hammer")).any()
    table = pd.read_csv(out / "tables" / "final_success.csv")
    row = table[(table.task == "kitchen/mixed") & (table.method == "moto")].iloc[0]
    assert row.runs == 2 and row.final_success == pytest.approx(90.0)
    assert row.paper == 100.0 and row.difference == pytest.approx(-10.0)
    assert "100" in md and "-10" in md
    # the running run is in the curves (dashed) but not the finals; the data-size runs are drawn in their
    # figure (not the per-domain curves) and are rows of the tables, by dataset
    assert any("kitchen/partial/moto/seed_2 is running" in f for f in A.flags.items)
    assert any("2 run(s) on subsets of a dataset" in n for n in A.notes["curves"])
    sub = table[table.dataset == "kitchen/mixed-100ep-seed0"]
    assert list(sub.method) == ["moto"] and sub.final_success.iloc[0] == pytest.approx(90.0)
    assert sub.paper.isna().all()  # the paper's numbers are for its own data
    ds = pd.read_csv(out / "tables" / "curves_datasize.csv")
    assert set(ds.dataset) == {"kitchen/mixed", "kitchen/mixed-100ep-seed0", "kitchen/mixed-250ep-seed0"}
    assert set(ds.panel) == {"moto on kitchen/mixed"}
    listed = pd.read_csv(out / "tables" / "datasets.csv").set_index("dataset")
    assert listed.loc["kitchen/mixed-100ep-seed0", "kind"] == "subset of kitchen/mixed"
    assert listed.loc["metaworld/hammer", "kind"] == "the task's own"
    curves = pd.read_csv(out / "tables" / "curves.csv")
    part = curves[(curves.method == "moto") & (curves.task == "kitchen/partial")]
    assert part["of_runs"].iloc[0] == 3 and part["n_runs"].min() == 2
    tidy = pd.read_csv(out / "tables" / "metrics_tidy.csv.gz")
    assert {
        "algorithm",
        "variant",
        "task",
        "domain",
        "dataset",
        "profile",
        "seed",
        "phase",
        "env_steps",
        "episodes",
        "eval_success",
        "eval_return",
    } <= set(tidy.columns)


def test_report_says_when_diagnostics_and_ablations_are_absent(tmp_path):
    write_run(tmp_path / "res", "bc", "metaworld/hammer", 0, [(0, 0.0), (4, 0.5)])
    A = analyze(tmp_path / "res", tmp_path / "out", Options(reps=20, progress=False))
    md = (tmp_path / "out" / "report.md").read_text()
    assert (
        "No run wrote diagnostics/reward_prediction.csv" in md
        and "No run wrote diagnostics/uncertainty.csv" in md
    )
    assert "No ablation runs" in md and "probability of improvement needs moto" in md
    assert "diagnostics" not in A.figures


def test_filters_and_errors(tmp_path):
    write_run(tmp_path / "res", "bc", "metaworld/hammer", 0, [(0, 0.0), (4, 0.5)])
    with pytest.raises(ValueError, match="no run .* matches the filters"):
        analyze(tmp_path / "res", tmp_path / "out", Options(reps=20, algos=["moto"], progress=False))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no run directory"):
        analyze(tmp_path / "empty", tmp_path / "out", Options(reps=20, progress=False))


def test_cli_help_and_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for opt in [
        "--out",
        "--algos",
        "--tasks",
        "--dataset",
        "--seeds",
        "--profile",
        "--reps",
        "--seed",
        "--final-window",
        "--include-unfinished",
        "--reference-method",
        "--reference",
        "--max-points",
        "--sample-points",
        "--no-progress",
        "default: 2000",
    ]:
        assert opt in out, opt
    assert cli.main([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path), "--out", str(tmp_path / "o"), "--reps", "3"])
    assert "--reps must be >= 10" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(tmp_path), "--out", str(tmp_path / "o"), "--seeds", "a,b"])
    assert "comma-separated integers" in capsys.readouterr().err


def test_cli_runs_end_to_end(tmp_path, capsys):
    write_run(tmp_path / "res", "bc", "metaworld/hammer", 0, [(0, 0.0), (4, 0.5)])
    write_run(tmp_path / "res", "bc", "metaworld/hammer", 1, [(0, 0.0), (4, 0.7)])
    assert (
        cli.main([str(tmp_path / "res"), "--out", str(tmp_path / "o"), "--reps", "20", "--no-progress"]) == 0
    )
    assert "2 runs (done 2)" in capsys.readouterr().out
    t = pd.read_csv(tmp_path / "o" / "tables" / "final_success.csv")
    assert t.iloc[0]["final_success"] == pytest.approx(60.0)


def test_importing_the_analysis_imports_no_training_framework():
    # the analysis reads the agent contract (the diagnostics files' columns), nothing of any algorithm
    code = (
        "import sys, benchmark.analysis, benchmark.analysis.pipeline, benchmark.analysis.figures; "
        "bad = [m for m in sys.modules if m in ('jax', 'torch', 'flax', 'benchmark.core.protocol', 'mujoco') "
        "or (m.startswith('algorithms.') and m != 'algorithms.contract')]; print(bad)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_the_analysis_survives_a_sweep_in_progress(tmp_path, capsys, monkeypatch):
    # mid-sweep: the data-size group (one method, one task, two datasets) holds no run with an evaluation
    res = tmp_path / "res"
    write_run(res, "moto", "kitchen/partial", 0, [(0, 0.0), (10, 1.0)])
    for n, status in ((100, "running"), (250, "failed")):
        write_run(
            res,
            "moto",
            "kitchen/mixed",
            0,
            [],
            status=status,
            dataset=f"kitchen/mixed-{n}ep-seed0",
            subdir=f"kitchen/mixed/moto/{n}/seed_0",
        )
    assert cli.main([str(res), "--out", str(tmp_path / "o"), "--reps", "20", "--no-progress"]) == 0
    md = (tmp_path / "o" / "report.md").read_text()
    assert "Data-size runs exist but none has an evaluation yet" in md
    assert "kitchen/mixed-100ep-seed0 (running)" in md and "kitchen/mixed-250ep-seed0 (failed)" in md
    # an internal error is a bug: it keeps its traceback instead of reading as bad input
    from benchmark.analysis import figures

    def broken(*a, **k):
        raise ValueError("a bug inside a figure")

    monkeypatch.setattr(figures, "curves_figure", broken)
    with pytest.raises(ValueError, match="a bug inside a figure"):
        cli.main([str(res), "--out", str(tmp_path / "o2"), "--reps", "20", "--no-progress"])


def test_regret_is_the_mean_over_online_episodes_of_one_minus_success(tmp_path):
    m = pd.DataFrame(
        {
            "run": ["a"] * 5 + ["b"] * 2,
            "phase": ["offline", "online", "online", "eval", "online", "offline", "eval"],
            "episode_success": [np.nan, 1.0, 0.0, np.nan, 0.0, np.nan, np.nan],
        }
    )
    r = stats.regret(m)
    assert r.to_dict() == {"a": pytest.approx(2 / 3)}  # b has no online episode
    # in the final table and report: the mean over runs of each run's regret from its metrics.csv
    res = tmp_path / "res"
    for s in (0, 1):
        write_run(res, "bc", "metaworld/hammer", s, [(0, 0.0), (6, 0.5)])
    A = analyze(res, tmp_path / "o", Options(reps=20, progress=False))
    per_run = [
        1.0
        - load.read_metrics(res / f"metaworld/hammer/bc/seed_{s}")
        .query("phase == 'online'")["episode_success"]
        .mean()
        for s in (0, 1)
    ]
    assert A.tables["final"]["regret"].iloc[0] == pytest.approx(np.mean(per_run))
    assert "regret" in pd.read_csv(tmp_path / "o" / "tables" / "final_per_run.csv").columns
    assert "fine-tuning regret" in (tmp_path / "o" / "report.md").read_text()


def test_uncertainty_by_action_source_tabulates_and_draws_the_perturbed_policy(tmp_path):
    from algorithms.contract import DIAGNOSTICS_COLUMNS

    cols = DIAGNOSTICS_COLUMNS["uncertainty_actions.csv"]
    sources = ["policy", "random", "perturbed_0.1", "perturbed_0.3"]
    u = {"policy": 1.1, "random": 3.0, "perturbed_0.1": 1.4, "perturbed_0.3": 2.0}  # times data's u
    res = tmp_path / "res"
    for s in (0, 1):
        d = write_run(res, "moto", "kitchen/mixed", s, [(0, 0.0), (4, 0.5)])
        rows = []
        for step, phase in ((300, "offline"), (380, "online")):
            for m in ("meandis", "logits"):
                data = 0.5 * (s + 1) * (2 if m == "logits" else 1)
                r = dict(grad_step=step, phase=phase, episodes=0, env_steps=0, measure=m, data=data)
                r.update(selected=m == "meandis", **{k: u[k] * data * (1 + s) for k in sources})
                r.update({f"{k}_over_data": r[k] / data for k in sources})
                rows.append(r)
        (d / "diagnostics").mkdir()
        pd.DataFrame(rows)[cols].to_csv(d / "diagnostics" / "uncertainty_actions.csv", index=False)
    old = write_run(res, "moto", "kitchen/mixed", 2, [(0, 0.0), (4, 0.5)]) / "diagnostics"
    old.mkdir()  # a file from before the perturbed sources
    pd.DataFrame(rows)[[c for c in cols if "perturbed" not in c]].to_csv(old / "uncertainty_actions.csv")
    A = analyze(res, tmp_path / "out", Options(reps=20, progress=False))
    t = pd.read_csv(tmp_path / "out" / "tables" / "uncertainty_actions.csv")
    assert {*sources, *(f"{k}_over_data" for k in sources)} <= set(t.columns)
    r = t[(t["at"] == "offline_end") & (t["measure"] == "meandis")].iloc[0]
    assert r["runs"] == 2 and r["data"] == pytest.approx(0.75)  # runs 0 and 1: the old file is left out
    for k in sources:  # the mean over runs of each run's u and ratio
        assert r[k] == pytest.approx(np.mean([u[k] * 0.5 * (s + 1) * (1 + s) for s in (0, 1)]))
        assert r[f"{k}_over_data"] == pytest.approx(u[k] * 1.5)
    assert any("missing column(s) perturbed_0.1" in f for f in A.flags.items)
    figs = {p.split("/")[-1] for _, p in A.figures["diagnostics"]}
    assert "uncertainty_actions_moto_kitchen-mixed.png" in figs
    md = (tmp_path / "out" / "report.md").read_text()
    assert "perturbed_0.1_over_data" in md and "perturbed policy" in md


def test_last_third_averages_the_online_evaluations_after_two_thirds_of_the_episodes():
    from benchmark.analysis.stats import last_third

    evals = pd.DataFrame(
        {
            "run": ["a"] * 5 + ["b"] * 2,
            "episodes": [0, 10, 20, 25, 30, 0, 3],
            "eval_success": [0.9, 0.1, 0.5, 0.7, 0.3, 1.0, 0.4],
        }
    )
    got = last_third(evals)
    assert got["a"] == pytest.approx((0.5 + 0.7 + 0.3) / 3)  # episodes >= 20 of 30; the offline eval out
    assert got["b"] == pytest.approx(0.4)


def test_dataset_roles_source_subset_and_family():
    role = load.dataset_role
    assert role("kitchen/mixed", "kitchen/mixed") == {
        "source": "kitchen/mixed",
        "subset": False,
        "family": "",
    }
    assert role("kitchen/mixed", "kitchen/scripted-mixed") == {
        "source": "kitchen/scripted-mixed",
        "subset": False,
        "family": "kitchen/scripted",
    }
    assert role("kitchen/mixed", "kitchen/scripted-mixed-25ep-seed1") == {
        "source": "kitchen/scripted-mixed",
        "subset": True,
        "family": "kitchen/scripted",
    }
    assert role("kitchen/mixed", "kitchen/mixed-100ep-seed0")["family"] == ""
    assert role("kitchen/partial", "kitchen/mine") == {
        "source": "kitchen/mine",
        "subset": False,
        "family": "kitchen/mine",
    }


def _scripted_kitchen(root, algos=("moto", "bc"), status="done"):
    """Finished smoke runs as ``--tasks kitchen/mixed,kitchen/partial --dataset kitchen/scripted`` writes
    them: 3 evaluations each, final success seed / 10 + 0.2 (moto) or seed / 10 (bc)."""
    for algo in algos:
        for task in ("kitchen/mixed", "kitchen/partial"):
            short = task.split("/")[1]
            for s in (0, 1):
                final = s / 10 + (0.2 if algo == "moto" else 0.0)
                write_run(
                    root,
                    algo,
                    task,
                    s,
                    [(0, 0.0), (2, 0.1), (4, final)],
                    status=status,
                    episode_steps=280,
                    dataset=f"kitchen/scripted-{short}",
                    subdir=f"{task}/{algo}/smoke@kitchen-scripted-{short}/seed_{s}",
                )


@pytest.mark.slow
def test_finished_scripted_kitchen_runs_are_in_every_curve_table_and_aggregate(tmp_path, capsys):
    res = tmp_path / "res"
    _scripted_kitchen(res)
    assert cli.main([str(res), "--out", str(tmp_path / "o"), "--reps", "20", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "datasets: kitchen/scripted-mixed (other (--dataset kitchen/scripted), 4 runs)" in printed
    t = pd.read_csv(tmp_path / "o" / "tables" / "final_success.csv")
    assert len(t) == 4 and set(t.dataset) == {"kitchen/scripted-mixed", "kitchen/scripted-partial"}
    row = t[(t.task == "kitchen/mixed") & (t.method == "moto")].iloc[0]
    assert row.dataset == "kitchen/scripted-mixed" and row.runs == 2
    assert row.final_success == pytest.approx(25.0) and np.isnan(row.paper)  # not the paper's data
    curves = pd.read_csv(tmp_path / "o" / "tables" / "curves.csv")
    assert set(zip(curves.method, curves.task, curves.dataset)) == {
        (a, f"kitchen/{t}", f"kitchen/scripted-{t}") for a in ("moto", "bc") for t in ("mixed", "partial")
    }
    agg = pd.read_csv(tmp_path / "o" / "tables" / "aggregates_kitchen_scripted.csv")
    mean = agg[(agg.method == "bc") & (agg.metric == "Mean")].iloc[0]
    assert (
        mean.value == pytest.approx(0.05)
        and mean.tasks == 2
        and mean.domain == "kitchen (kitchen/scripted data)"
    )
    poi = pd.read_csv(tmp_path / "o" / "tables" / "poi_kitchen_scripted.csv")
    assert poi.iloc[0].value == pytest.approx(1.0)  # moto's every run beats bc's
    figs = {p.name for p in (tmp_path / "o" / "figures").glob("*.png")}
    assert {"curves_kitchen.png", "aggregates_kitchen_scripted.png", "poi_kitchen_scripted.png"} <= figs
    assert "datasize.png" not in figs
    md = (tmp_path / "o" / "report.md").read_text()
    assert "data-size study only" not in md and "No final scores" not in md
    assert "No data-size runs (a method on one task with subsets of one dataset" in md
    row = (
        "| kitchen/scripted-partial | other (--dataset kitchen/scripted) | kitchen/partial | 4 | 4 | moto, bc"
    )
    assert row in md
    assert "kitchen/mixed · kitchen/scripted-mixed" in md  # the coverage and method x task columns


@pytest.mark.slow
def test_two_sources_on_one_task_are_two_settings_not_a_data_size_study_and_dataset_filters(tmp_path):
    res = tmp_path / "res"
    _scripted_kitchen(res, algos=("bc",))
    for s in (0, 1):  # bc on the paper's kitchen/mixed data too
        write_run(res, "bc", "kitchen/mixed", s, [(0, 0.0), (4, 0.5)], episode_steps=280)
    A = analyze(res, tmp_path / "o", Options(reps=20, progress=False))
    t = A.tables["final"].set_index(["task", "dataset"])["final_success"]
    assert t[("kitchen/mixed", "kitchen/mixed")] == pytest.approx(50.0)
    assert t[("kitchen/mixed", "kitchen/scripted-mixed")] == pytest.approx(5.0)
    assert "curves_datasize.csv" not in A.csv and not (tmp_path / "o" / "figures" / "datasize.png").exists()
    assert {"aggregates_kitchen", "aggregates_kitchen_scripted"} <= set(A.tables)
    assert A.tables["aggregates_kitchen"]["tasks"].iloc[0] == 1  # the own data: kitchen/mixed only
    assert list(A.tables["final_wide"].columns) == [
        "kitchen/mixed",
        "kitchen/mixed · kitchen/scripted-mixed",
        "kitchen/partial · kitchen/scripted-partial",
    ]
    # the grid of missing runs is per dataset family: no bc on kitchen/partial's own data is implied
    assert A.missing.empty
    # --dataset: a family, a dataset, and a mistake that names what was found
    for given, kept in (
        (["kitchen/scripted"], {"kitchen/scripted-mixed", "kitchen/scripted-partial"}),
        (["kitchen/scripted-partial"], {"kitchen/scripted-partial"}),
        (["kitchen/mixed"], {"kitchen/mixed"}),
    ):
        A = analyze(res, tmp_path / "f", Options(reps=20, progress=False, datasets=given))
        assert set(A.results.runs["dataset"]) == kept, given
    with pytest.raises(ValueError, match=r"--dataset kitchen/scripted-mix \(did you mean .*found .*datasets"):
        analyze(res, tmp_path / "f", Options(reps=20, progress=False, datasets=["kitchen/scripted-mix"]))


def test_no_final_scores_says_what_the_runs_are(tmp_path):
    res = tmp_path / "res"
    _scripted_kitchen(res, algos=("bc",), status="running")
    A = analyze(res, tmp_path / "o", Options(reps=20, progress=False))
    assert A.tables["final"].empty
    note = " ".join(A.notes["aggregates"])
    assert "of the 4 run(s) (running 4), the 4 with an evaluation are unfinished" in note
    assert "--include-unfinished counts them" in note
    A = analyze(res, tmp_path / "o", Options(reps=20, progress=False, include_unfinished=True))
    assert len(A.tables["final"]) == 2


def test_kitchen_runs_get_objects_in_goal_curves_and_a_table_with_the_range_over_seeds(tmp_path):
    res = tmp_path / "res"
    evals = [(0, 0.0), (3, 0.0), (6, 0.5), (9, 1.0)]
    for seed, objects in ((0, [0.0, 1.0, 2.5, 4.0]), (1, [1.0, 1.0, 2.0, 3.0])):
        write_run(res, "moto", "kitchen/mixed", seed, evals, episode_steps=280, objects=objects)
    write_run(res, "bc", "kitchen/mixed", 0, evals, episode_steps=280, objects=[0.0, 0.0, 0.0, 1.0])
    write_run(res, "bc", "metaworld/drawer-open", 0, evals)  # no objects: not in the table
    A = analyze(res, tmp_path / "o", Options(reps=20, progress=False))
    t = A.tables["objects"].set_index("method")
    assert list(t.index) == ["bc", "moto"] and set(A.tables["objects"]["task"]) == {"kitchen/mixed"}
    assert t.loc["moto", "final_objects"] == pytest.approx(3.5)
    assert (t.loc["moto", "objects_min"], t.loc["moto", "objects_max"]) == (3.0, 4.0)
    assert t.loc["moto", "last_third_objects"] == pytest.approx((3.25 + 2.5) / 2)  # episodes 6 and 9 of 9
    assert t.loc["moto", "final_success"] == pytest.approx(100.0) and t.loc["bc", "final_objects"] == 1.0
    c = A.csv["curves_objects.csv"]
    assert c[c["method"] == "moto"]["mean"].max() == pytest.approx(3.5)
    assert (tmp_path / "o" / "figures" / "objects_kitchen.png").exists()
    assert "objects in their goal configuration" in (tmp_path / "o" / "report.html").read_text()


def test_most_objects_counts_the_task_objects_in_goal_at_once():
    from benchmark.core.protocol import most_objects

    done = np.array([[0, 0, 0, 0], [1, 1, 0, 0], [1, 0, 1, 1], [0, 0, 1, 0]], bool)
    assert most_objects({"objects_done": done}) == 3  # at step 2, not the last step's 1


def test_a_sweep_before_its_first_evaluation_says_there_are_no_curves_yet(tmp_path):
    res = tmp_path / "res"
    for algo in ("moto", "bc"):
        write_run(res, algo, "kitchen/mixed", 0, [], episode_steps=280, status="running")
    A = analyze(res, tmp_path / "o", Options(reps=20, progress=False))
    says = "No learning curves: no run outside the data-size study has an evaluation yet."
    assert says in A.notes["curves"]
    assert A.tables["final"].empty
    write_run(res, "bc", "kitchen/mixed", 1, [(0, 0.0), (5, 0.1)], episode_steps=280)
    A = analyze(res, tmp_path / "o", Options(reps=20, progress=False))
    assert not any("No learning curves" in n for n in A.notes["curves"])
