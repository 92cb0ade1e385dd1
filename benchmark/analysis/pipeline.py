"""results dir -> every table, figure and the report (the work behind ``python -m benchmark.analysis``)."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from algorithms import suggest
from benchmark.analysis import diagnostics, figures, stats
from benchmark.analysis.load import Results, load_runs

DEFAULT_REFERENCE = Path(__file__).resolve().parents[2] / "results" / "paper_reference.csv"
DOMAIN_TITLES = {"metaworld": "MetaWorld (paper Fig. 2)", "kitchen": "Franka Kitchen (paper Fig. 3, left)"}


class InputError(ValueError):
    """Bad input to the analysis (no runs, filters that match none, a bad reference file, bad options):
    the CLI prints it as one line and exits 2. Any other exception is a bug and keeps its traceback."""


@dataclass
class Options:
    reps: int = 2000  # bootstrap replications for every CI
    seed: int = 0  # bootstrap random state
    max_points: int = 100  # points per learning curve
    sample_points: int = 20  # points per sample-efficiency curve
    final_window: int = 1  # evaluations averaged into a run's final success
    include_unfinished: bool = False  # count running / failed / interrupted runs in final scores
    reference_method: str = "moto"  # X in the probability of improvement P(X > Y)
    algos: list[str] | None = None  # keep these variants (or base algorithms) only
    tasks: list[str] | None = None  # keep these tasks (or domains) only
    seeds: list[int] | None = None
    profile: str | None = None
    reference_file: Path | None = None
    progress: bool = True


@dataclass
class Analysis:
    """Everything the report shows; figure paths are relative to ``out``."""

    out: Path
    results: Results
    options: Options
    flags: stats.Flags = field(default_factory=stats.Flags)
    figures: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # section -> [(caption, png)]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)  # section -> sentences
    missing: pd.DataFrame | None = None
    seconds: float = 0.0

    def fig(self, section: str, caption: str, png: Path) -> None:
        self.figures.setdefault(section, []).append((caption, png.relative_to(self.out).as_posix()))

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)


def _select(res: Results, o: Options) -> Results:
    runs = res.runs
    if runs.empty:
        return res
    keep = pd.Series(True, index=runs.index)
    if o.algos:
        keep &= runs["variant"].isin(o.algos) | runs["algorithm"].isin(o.algos)
    if o.tasks:
        keep &= runs["task"].isin(o.tasks) | runs["domain"].isin(o.tasks)
    if o.seeds is not None:
        keep &= runs["seed"].isin(o.seeds)
    if o.profile:
        keep &= runs["profile"] == o.profile
    runs = runs[keep].reset_index(drop=True)
    if runs.empty:
        found = {
            "algos": {*res.runs["variant"], *res.runs["algorithm"]},
            "tasks": {*res.runs["task"], *res.runs["domain"]},
            "profile": set(res.runs["profile"]),
        }
        given = {"algos": o.algos or [], "tasks": o.tasks or [], "profile": [o.profile] if o.profile else []}
        hints = "".join(
            f"; --{what} {name}{suggest(name, found[what])}"
            for what, names in given.items()
            for name in names
            if name not in found[what] and suggest(name, found[what])
        )
        raise InputError(
            f"no run in {res.root} matches the filters{hints} (algos={o.algos}, tasks={o.tasks}, "
            f"seeds={o.seeds}, profile={o.profile}); found algos "
            f"{sorted(res.runs['variant'].unique())}, tasks {sorted(res.runs['task'].unique())}, "
            f"profiles {sorted(res.runs['profile'].unique())}"
        )
    metrics = res.metrics[res.metrics["run"].isin(set(runs["run"]))]
    return Results(root=res.root, metrics=metrics, runs=runs, problems=res.problems)


def _label_methods(res: Results) -> None:
    multi = res.runs["profile"].nunique() > 1
    res.runs["method"] = res.runs["variant"] + (" [" + res.runs["profile"] + "]" if multi else "")
    m = res.runs.set_index("run")["method"]
    res.metrics = res.metrics.assign(method=res.metrics["run"].astype(str).map(m).astype("category"))


def read_reference(path: Path | None) -> pd.DataFrame:
    cols = ["figure", "task", "variant", "metric", "value", "unit", "source"]
    if path is None or not Path(path).is_file():
        return pd.DataFrame(columns=cols)
    ref = pd.read_csv(path)
    missing = [c for c in cols if c not in ref.columns]
    if missing:
        raise InputError(
            f"reference file {path} lacks column(s) {', '.join(missing)} (expected {', '.join(cols)})"
        )
    return ref


def _expected_missing(runs: pd.DataFrame, o: Options) -> pd.DataFrame:
    """Runs the grid implies but no directory holds: per domain and profile, every variant x task x seed
    seen."""
    rows = []
    for (domain, profile), g in runs.groupby(["domain", "profile"]):
        variants = o.algos if o.algos else sorted(g["variant"].unique())
        variants = [v for v in variants if v in set(runs["variant"])] or variants
        tasks = sorted(g["task"].unique())
        seeds = o.seeds if o.seeds is not None else sorted(g["seed"].unique())
        have = set(zip(g["variant"], g["task"], g["seed"]))
        for v in variants:
            for t in tasks:
                for s in seeds:
                    if (v, t, s) not in have:
                        rows.append(dict(variant=v, task=t, seed=s, profile=profile))
    return pd.DataFrame(rows, columns=["variant", "task", "seed", "profile"])


def _final_table(final: pd.DataFrame, ref: pd.DataFrame, o: Options) -> pd.DataFrame:
    """Final success (%) per method x task with a 95% CI, the mean over the last third of the online
    evaluations (mean, IQM over runs and a 95% CI of the mean) and the mean regret (CORL's: mean over
    online episodes of 1 - success), next to the paper's number and the difference."""
    rows = []
    rs = ref[ref["metric"] == "final_success"]
    for (task, method), g in final.groupby(["task", "method"], sort=True):
        scores = 100.0 * g["final"].to_numpy(float)[:, None]
        pe, ie = stats._interval_estimates({"m": scores}, lambda x: np.array([np.mean(x)]), o.reps, o.seed)
        variant = g["variant"].iloc[0]
        paper = rs[(rs["task"] == task) & (rs["variant"] == variant)]
        pv = float(paper["value"].iloc[0]) if len(paper) else np.nan
        third = 100.0 * g["last_third"].dropna().to_numpy(float)[:, None]
        if len(third):
            tpe, tie = stats._interval_estimates(
                {"m": third}, lambda x: np.array([np.mean(x)]), o.reps, o.seed
            )
            third_stats = dict(
                last_third=float(tpe["m"][0]),
                last_third_iqm=stats.iqm(third[:, 0]),
                last_third_low=float(tie["m"][0, 0]),
                last_third_high=float(tie["m"][1, 0]),
            )
        else:
            third_stats = dict.fromkeys(
                ("last_third", "last_third_iqm", "last_third_low", "last_third_high"), np.nan
            )
        rows.append(
            dict(
                task=task,
                method=method,
                runs=len(g),
                final_success=float(pe["m"][0]),
                ci_low=float(ie["m"][0, 0]),
                ci_high=float(ie["m"][1, 0]),
                **third_stats,
                regret=float(g["regret"].mean()) if g["regret"].notna().any() else np.nan,
                paper=pv,
                difference=float(pe["m"][0]) - pv if len(paper) else np.nan,
                paper_source=paper["source"].iloc[0] if len(paper) else "",
            )
        )
    return pd.DataFrame(
        rows,
        columns=[
            "task",
            "method",
            "runs",
            "final_success",
            "ci_low",
            "ci_high",
            "last_third",
            "last_third_iqm",
            "last_third_low",
            "last_third_high",
            "regret",
            "paper",
            "difference",
            "paper_source",
        ],
    )


def analyze(results_dir: str | Path, out: str | Path, options: Options | None = None) -> Analysis:
    """Reads ``results_dir`` and writes tables/, figures/, gifs/, report.html and report.md into ``out``."""
    o = options or Options()
    if o.reps < 10:
        raise InputError(f"reps must be >= 10 bootstrap replications, got {o.reps}")
    t0 = time.perf_counter()
    out = Path(out)
    res = _select(load_runs(results_dir, progress=o.progress), o)
    if res.runs.empty:
        raise InputError(
            f"no run directory (a folder holding config.json) under {results_dir}"
            + (f"; unreadable: {res.problems}" if res.problems else "")
        )
    _label_methods(res)
    figures.set_style()
    fig_dir, tab_dir = out / "figures", out / "tables"
    for d in (fig_dir, tab_dir):
        d.mkdir(parents=True, exist_ok=True)
    A = Analysis(out=out, results=res, options=o)
    colors = figures.method_colors(res.runs["method"])
    ref = read_reference(o.reference_file if o.reference_file is not None else DEFAULT_REFERENCE)
    if ref.empty:
        A.note("tables", "No paper reference file was found: the table has no paper column.")

    runs = res.runs
    res.metrics.to_csv(tab_dir / "metrics_tidy.csv.gz", index=False)
    runs.drop(columns=["path"]).to_csv(tab_dir / "runs.csv", index=False)
    evals = res.evals
    own = evals[evals["dataset"].astype(str) == evals["task"].astype(str)]
    for r in (
        runs[runs["dataset"] != runs["task"]].drop_duplicates(["method", "task", "dataset"]).itertuples()
    ):
        A.flags.add(
            f"{r.method} on {r.task} with dataset {r.dataset}: data-size study only (not in the main "
            f"curves, tables and aggregates)"
        )

    # ------------------------------------------------------------------ learning curves
    curves = stats.learning_curves(own, ["method", "task"], o.max_points, o.reps, o.seed)
    curves.to_csv(tab_dir / "curves.csv", index=False)
    for r in (
        curves[curves["n_runs"] < curves["of_runs"]]
        .groupby(["method", "task"])
        .agg(first=("step", "min"), n=("n_runs", "min"), of=("of_runs", "first"))
        .reset_index()
        .itertuples()
    ):
        A.flags.add(
            f"{r.method} on {r.task}: from {r.first:,.0f} env steps the curve rests on fewer runs "
            f"(down to {r.n} of {r.of}); drawn dashed"
        )
    # main figures: base methods; variants (ablations) have their own figure
    main_methods = set(runs[runs["variant"] == runs["algorithm"]]["method"]) or set(runs["method"])
    for domain in sorted(own["domain"].unique()):
        tasks = sorted(own[own["domain"] == domain]["task"].unique())
        png = figures.curves_figure(
            curves[curves["task"].isin(tasks) & curves["method"].isin(main_methods)],
            tasks,
            colors,
            fig_dir,
            f"curves_{domain}",
            DOMAIN_TITLES.get(domain, domain) + ": evaluation success",
            ncols=5 if len(tasks) > 4 else len(tasks),
        )
        A.fig(
            "curves",
            f"{DOMAIN_TITLES.get(domain, domain)}: mean evaluation success over seeds, "
            f"95% stratified-bootstrap CIs; dashed where fewer runs than the group holds remain",
            png,
        )
    # ablations (paper Fig. 3 right): the reference method's variants next to DreamerV2
    base = o.reference_method
    abl_methods = runs[(runs["algorithm"] == base) | (runs["variant"] == "dreamerv2")]["method"].unique()
    variant_runs = runs[(runs["algorithm"] == base) & (runs["variant"] != base)]
    if len(variant_runs):
        for domain in sorted(variant_runs["domain"].unique()):
            tasks = sorted(own[(own["domain"] == domain) & own["method"].isin(abl_methods)]["task"].unique())
            sub = curves[curves["task"].isin(tasks) & curves["method"].isin(abl_methods)]
            if len(sub):
                png = figures.curves_figure(
                    sub,
                    tasks,
                    colors,
                    fig_dir,
                    f"ablations_{domain}",
                    f"Ablations of {base} on {domain} (paper Fig. 3, right)",
                    ncols=4,
                )
                A.fig("curves", f"Ablations: {base}, its variants and DreamerV2 on {domain}", png)
    else:
        A.note("curves", f"No ablation runs (variants of {base}) were found: no ablation figure.")
    # data-size study (paper Fig. 5): a method on one task with several datasets
    multi = runs.groupby(["method", "task"])["dataset"].nunique()
    multi = multi[multi > 1]
    keys = set(multi.index)
    ev = evals[[(m, t) in keys for m, t in zip(evals["method"], evals["task"])]].copy()
    if len(multi) and ev.empty:  # mid-sweep or after failures: the groups exist, no run has evaluated yet
        waiting = runs[[(m, t) in keys for m, t in zip(runs["method"], runs["task"])]]
        A.note(
            "curves",
            "Data-size runs exist but none has an evaluation yet, so no data-size figure: "
            + "; ".join(
                f"{r.method} on {r.task} with {r.dataset} ({r.status})" for r in waiting.itertuples()
            ),
        )
    elif len(multi):
        ev["panel"] = ev["method"].astype(str) + " on " + ev["task"].astype(str)
        ds_curves = stats.learning_curves(ev, ["panel", "dataset"], o.max_points, o.reps, o.seed)
        ds_curves.to_csv(tab_dir / "curves_datasize.csv", index=False)
        ds_colors = dict(
            zip(sorted(ev["dataset"].unique()), figures.sns.color_palette("viridis", ev["dataset"].nunique()))
        )
        png = figures.curves_figure(
            ds_curves,
            sorted(ev["panel"].unique()),
            ds_colors,
            fig_dir,
            "datasize",
            "Offline data size (paper Fig. 5)",
            panel_col="panel",
            line_col="dataset",
            ncols=3,
        )
        A.fig("curves", "Data-size study: one line per offline dataset", png)
    else:
        A.note("curves", "No data-size runs (one method on one task with several datasets) were found.")

    # ------------------------------------------------------------------ final scores and aggregates
    final = stats.final_scores(
        own, runs[runs["dataset"] == runs["task"]], o.final_window, o.include_unfinished, A.flags
    )
    final = final.join(stats.regret(res.metrics), on="run")
    final.drop(columns=["path"]).to_csv(tab_dir / "final_per_run.csv", index=False)
    table = _final_table(final, ref, o)
    A.tables["final"] = table
    table.to_csv(tab_dir / "final_success.csv", index=False)
    if len(table):
        wide = table.pivot(index="method", columns="task", values="final_success")
        A.tables["final_wide"] = wide.loc[figures.method_order(wide.index)]
    for domain in sorted(final["domain"].unique()) if len(final) else []:
        fd = final[final["domain"] == domain]
        score_dict, tasks = stats.score_matrices(fd, flags=A.flags)
        if not score_dict:
            A.note("aggregates", f"{domain}: no method has a finished run on every task: no aggregates.")
            continue
        agg = stats.aggregates(score_dict, o.reps, o.seed)
        agg.insert(0, "domain", domain)
        A.tables[f"aggregates_{domain}"] = agg
        agg.to_csv(tab_dir / f"aggregates_{domain}.csv", index=False)
        ntask = len(tasks)
        A.fig(
            "aggregates",
            f"{domain}: IQM, mean, median and optimality gap of final success over runs x "
            f"{ntask} task(s), 95% stratified-bootstrap CIs",
            figures.aggregates_figure(
                agg, colors, fig_dir, f"aggregates_{domain}", f"{domain}: final success"
            ),
        )
        taus = np.linspace(0.0, 1.0, 21)
        prof, prof_ci = stats.performance_profiles(score_dict, taus, o.reps, o.seed)
        pd.DataFrame({"tau": taus, **{m: p for m, p in prof.items()}}).to_csv(
            tab_dir / f"profiles_{domain}.csv", index=False
        )
        A.fig(
            "aggregates",
            f"{domain}: performance profiles (fraction of runs above each success threshold)",
            figures.profiles_figure(
                prof, prof_ci, taus, colors, fig_dir, f"profiles_{domain}", f"{domain}: performance profiles"
            ),
        )
        ref_methods = [m for m in score_dict if m.split(" [")[0] == o.reference_method]
        if ref_methods and len(score_dict) > 1:
            pois = [stats.probability_of_improvement(score_dict, rm, o.reps, o.seed) for rm in ref_methods]
            poi = pd.concat(pois, ignore_index=True)
            poi.insert(0, "domain", domain)
            A.tables[f"poi_{domain}"] = poi
            poi.to_csv(tab_dir / f"poi_{domain}.csv", index=False)
            A.fig(
                "aggregates",
                f"{domain}: probability that {o.reference_method} beats each baseline on a task",
                figures.poi_figure(poi, colors, fig_dir, f"poi_{domain}", f"{domain}"),
            )
        else:
            A.note(
                "aggregates",
                f"{domain}: probability of improvement needs {o.reference_method} and another "
                f"method with finished runs on every task.",
            )
        grid, se_scores = stats.sample_efficiency_scores(own, fd, tasks, o.sample_points, A.flags)
        if se_scores:
            pe, ie = stats.iqm_over_steps(se_scores, o.reps, o.seed)
            pd.DataFrame(
                [
                    dict(method=m, env_steps=s, iqm=pe[m][j], lo=ie[m][0, j], hi=ie[m][1, j])
                    for m in pe
                    for j, s in enumerate(grid)
                ]
            ).to_csv(tab_dir / f"sample_efficiency_{domain}.csv", index=False)
            A.fig(
                "aggregates",
                f"{domain}: sample efficiency, IQM of evaluation success over runs x tasks "
                f"against environment steps, 95% CIs",
                figures.sample_efficiency_figure(
                    grid,
                    pe,
                    ie,
                    colors,
                    fig_dir,
                    f"sample_efficiency_{domain}",
                    f"{domain}: IQM vs environment steps",
                ),
            )
    if final.empty:
        A.note("aggregates", "No finished run with an evaluation: no final scores, tables or aggregates.")

    # ------------------------------------------------------------------ model diagnostics
    _diagnostics(A, runs, ref, fig_dir)
    _action_uncertainty(A, runs, fig_dir, tab_dir)
    _action_fit(A, runs, tab_dir)

    # ------------------------------------------------------------------ runs: missing, gifs
    A.missing = _expected_missing(runs, o)
    A.missing.to_csv(tab_dir / "missing.csv", index=False)
    gif_dir = out / "gifs"
    if gif_dir.exists():
        shutil.rmtree(gif_dir)
    for r in runs[runs["last_gif"] != ""].itertuples():
        dst = gif_dir / (r.run.replace("/", "__") + ".gif")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(r.last_gif, dst)
    A.seconds = time.perf_counter() - t0
    from benchmark.analysis import report

    report.write(A)
    return A


def _read_diagnostic(A: Analysis, g: pd.DataFrame, column: str, read) -> pd.DataFrame:
    """The runs' ``diagnostics/<column>.csv`` (path in ``column``) read with ``read`` and stacked, with a
    ``run`` column; a file that cannot be read is flagged and left out."""
    parts = []
    for r in g.itertuples():
        try:
            parts.append(read(getattr(r, column)).assign(run=r.run))
        except (ValueError, OSError, pd.errors.ParserError) as e:
            A.flags.add(f"{r.run}: {column}.csv unreadable ({e})")
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _diagnostics(A: Analysis, runs: pd.DataFrame, ref: pd.DataFrame, fig_dir: Path) -> None:
    with_rp = runs[runs["reward_prediction"] != ""]
    if with_rp.empty:
        A.note(
            "diagnostics",
            "No run wrote diagnostics/reward_prediction.csv: no model-generalisation figure "
            "(paper Fig. 4). World-model agents write it; the format is in docs/analysis.md.",
        )
    for (method, task), g in with_rp.groupby(["method", "task"]):
        df = _read_diagnostic(A, g, "reward_prediction", diagnostics.read_reward_prediction)
        if df.empty:
            continue
        rr = ref[(ref["task"] == task) & (ref["variant"] == g["variant"].iloc[0]) & (ref["figure"] == "fig4")]
        png = figures.reward_prediction_figure(
            df,
            fig_dir,
            f"reward_prediction_{method}_{task}".replace("/", "-").replace(" ", ""),
            f"{method} on {task}: model-predicted reward (grad step {int(df['grad_step'].max()):,})",
            dict(zip(rr["metric"], rr["value"])),
        )
        A.fig(
            "diagnostics",
            f"{method} on {task}: reward predicted by the model vs recorded (paper Fig. 4), "
            f"{g.shape[0]} run(s)",
            png,
        )
    with_u = runs[runs["uncertainty"] != ""]
    if with_u.empty:
        A.note(
            "diagnostics",
            "No run wrote diagnostics/uncertainty.csv: no performance-gap figure (paper Fig. 6).",
        )
    for (method, task), g in with_u.groupby(["method", "task"]):
        df = _read_diagnostic(A, g, "uncertainty", diagnostics.read_uncertainty)
        if df.empty:
            continue
        png = figures.uncertainty_figure(
            df,
            fig_dir,
            f"uncertainty_{method}_{task}".replace("/", "-").replace(" ", ""),
            f"{method} on {task}: performance gap vs expected model uncertainty (Eq. 12)",
        )
        A.fig(
            "diagnostics",
            f"{method} on {task}: performance gap against expected model uncertainty "
            f"(paper Fig. 6), {g.shape[0]} run(s)",
            png,
        )


def _action_fit(A: Analysis, runs: pd.DataFrame, tab_dir: Path) -> None:
    """The actors' fit to the demonstrations, side by side (MOTO's and BC's write ``action_fit.csv``): per
    method and task, the mean action error over the first 10 steps and over the rest, at the end of the
    offline phase and at the last measurement, mean over runs."""
    with_f = runs[runs["action_fit"] != ""]
    if with_f.empty:
        return
    parts = []
    for (method, task), g in with_f.groupby(["method", "task"]):
        df = _read_diagnostic(A, g, "action_fit", diagnostics.read_action_fit)
        if df.empty:
            continue
        summ = diagnostics.action_fit_summary(df)
        agg = summ.groupby("at", sort=False).agg(
            runs=("run", "nunique"),
            grad_step=("grad_step", "max"),
            error_first_steps=("error_first_steps", "mean"),
            error_later=("error_later", "mean"),
        )
        parts.append(agg.reset_index().assign(method=method, task=task))
    if parts:
        t = pd.concat(parts, ignore_index=True)
        t = t[["method", "task", "at", "runs", "grad_step", "error_first_steps", "error_later"]]
        t.to_csv(tab_dir / "action_fit.csv", index=False)
        A.tables["action_fit"] = t


def _action_uncertainty(A: Analysis, runs: pd.DataFrame, fig_dir: Path, tab_dir: Path) -> None:
    """Does u tell the data's actions from others? Per method and task: the mean u along rollouts of the
    data's, the policy's, the perturbed policy's and random actions by measure (``uncertainty_actions.csv``),
    as a table at the end of the offline phase and at the last measurement, and the ratios over gradient
    steps as a figure."""
    with_a = runs[runs["uncertainty_actions"] != ""]
    if with_a.empty:
        A.note(
            "diagnostics", "No run wrote diagnostics/uncertainty_actions.csv: no table of u by action source."
        )
        return
    sources = diagnostics.ACTION_SOURCES  # policy, random, perturbed_0.1, perturbed_0.3
    ratios = [f"{s}_over_data" for s in sources]
    parts = []
    for (method, task), g in with_a.groupby(["method", "task"]):
        df = _read_diagnostic(A, g, "uncertainty_actions", diagnostics.read_action_uncertainty)
        if df.empty:
            continue
        summ = diagnostics.action_uncertainty_summary(df)
        means = {c: (c, "mean") for c in ["data", *sources, *ratios]}  # perturbed_0.1: not a keyword
        agg = (
            summ.groupby(["at", "measure"], sort=False)
            .agg(
                selected=("selected", "any"),
                runs=("run", "nunique"),
                **means,
                random_over_data_min=("random_over_data", "min"),
                random_over_data_max=("random_over_data", "max"),
            )
            .reset_index()
        )
        parts.append(agg.assign(method=method, task=task))
        png = figures.action_uncertainty_figure(
            df,
            fig_dir,
            f"uncertainty_actions_{method}_{task}".replace("/", "-").replace(" ", ""),
            f"{method} on {task}: does u tell the data's actions from others?",
        )
        A.fig(
            "diagnostics",
            f"{method} on {task}: mean u along model rollouts of random, policy and perturbed policy "
            f"actions over that along the data's actions, per measure (1.0: no separation), "
            f"{g.shape[0]} run(s)",
            png,
        )
    if parts:
        t = pd.concat(parts, ignore_index=True)
        head = ["method", "task", "at", "measure", "selected", "runs", "data"]
        t = t[[*head, *sources, *ratios, "random_over_data_min", "random_over_data_max"]]
        t.to_csv(tab_dir / "uncertainty_actions.csv", index=False)
        A.tables["uncertainty_actions"] = t
