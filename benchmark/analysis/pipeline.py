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
    datasets: list[str] | None = None  # keep runs on these datasets (a name, a subset's source, a family)
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
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # what the report shows
    csv: dict[str, pd.DataFrame] = field(default_factory=dict)  # tables/<name> to write
    reference: pd.DataFrame | None = None  # the paper's numbers
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
    if o.datasets:  # a dataset, the source of subsets, or a --dataset family (kitchen/scripted)
        keep &= (
            runs["dataset"].isin(o.datasets)
            | runs["source"].isin(o.datasets)
            | runs["family"].isin(o.datasets)
        )
    if o.seeds is not None:
        keep &= runs["seed"].isin(o.seeds)
    if o.profile:
        keep &= runs["profile"] == o.profile
    runs = runs[keep].reset_index(drop=True)
    if runs.empty:
        raise InputError(_no_match(res, o))
    metrics = res.metrics[res.metrics["run"].isin(set(runs["run"]))]
    return Results(root=res.root, metrics=metrics, runs=runs, problems=res.problems)


def _no_match(res: Results, o: Options) -> str:
    r = res.runs
    found = {
        "algos": {*r["variant"], *r["algorithm"]},
        "tasks": {*r["task"], *r["domain"]},
        "dataset": {*r["dataset"], *r["source"], *r["family"]} - {""},
        "profile": set(r["profile"]),
    }
    given = {
        "algos": o.algos or [],
        "tasks": o.tasks or [],
        "dataset": o.datasets or [],
        "profile": [o.profile] if o.profile else [],
    }
    hints = "".join(
        f"; --{what} {name}{suggest(name, found[what])}"
        for what, names in given.items()
        for name in names
        if name not in found[what] and suggest(name, found[what])
    )
    return (
        f"no run in {res.root} matches the filters{hints} (algos={o.algos}, tasks={o.tasks}, "
        f"datasets={o.datasets}, seeds={o.seeds}, profile={o.profile}); found algos "
        f"{sorted(r['variant'].unique())}, tasks {sorted(r['task'].unique())}, datasets "
        f"{sorted(r['dataset'].unique())}, profiles {sorted(r['profile'].unique())}"
    )


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


def setting_label(task: str, dataset: str, short: bool = False) -> str:
    """A task and its dataset as tables and panels name them: ``kitchen/mixed`` on its own data,
    ``kitchen/mixed · kitchen/scripted-mixed`` on another; ``short``: without the domain
    (``mixed · scripted-mixed``)."""
    if not short:
        return task if dataset == task else f"{task} · {dataset}"
    domain = task.split("/")[0] + "/"
    name = task.split("/", 1)[-1]
    return name if dataset == task else f"{name} · {dataset.removeprefix(domain)}"


def family_label(domain: str, family: str) -> tuple[str, str]:
    """(label, file stem) of the aggregates over a domain's tasks on one dataset family: ``kitchen`` and
    ``kitchen`` for the tasks' own data, ``kitchen (kitchen/scripted data)`` and ``kitchen_scripted`` else."""
    if not family:
        return domain, domain
    return f"{domain} ({family} data)", f"{domain}_" + family.removeprefix(domain + "/").replace("/", "-")


@dataclass
class Groups:
    """The runs grouped: each run's setting (task and dataset) and role. The per-domain curves and the
    aggregates hold the runs on whole datasets (``main``); the data-size panels one method on one task with
    subsets of one source, and that source (``datasize``, panel ``method on task · source``)."""

    runs: pd.DataFrame
    evals: pd.DataFrame  # every evaluation row, with its run's setting, panel, source, subset, family
    main: pd.DataFrame
    datasize: pd.DataFrame
    datasize_runs: pd.DataFrame
    families: list[tuple[str, str]]  # (domain, family) of the aggregates
    curves: pd.DataFrame | None = None
    curves_drawn: pd.DataFrame | None = None  # curves with each setting's panel label
    datasize_curves: pd.DataFrame | None = None
    objects_curves: pd.DataFrame | None = None  # Kitchen: objects in goal (0-4) per evaluation
    final: pd.DataFrame | None = None
    aggregates: list[dict] = field(default_factory=list)
    diag: dict[str, list] = field(default_factory=dict)  # file -> [(method, task, dataset, runs, frame)]


def analyze(results_dir: str | Path, out: str | Path, options: Options | None = None) -> Analysis:
    """Reads ``results_dir`` and writes tables/, figures/, gifs/, report.html and report.md into ``out``."""
    o = options or Options()
    if o.reps < 10:
        raise InputError(f"reps must be >= 10 bootstrap replications, got {o.reps}")
    t0 = time.perf_counter()
    A = load(results_dir, Path(out), o)
    G = group(A)
    tabulate(A, G)
    draw(A, G)
    write(A, G, t0)
    return A


def load(results_dir: str | Path, out: Path, o: Options) -> Analysis:
    """The runs that pass the filters, their methods labelled, and the paper's numbers."""
    res = _select(load_runs(results_dir, progress=o.progress), o)
    if res.runs.empty:
        raise InputError(
            f"no run directory (a folder holding config.json) under {results_dir}"
            + (f"; unreadable: {res.problems}" if res.problems else "")
        )
    _label_methods(res)
    A = Analysis(out=out, results=res, options=o)
    A.reference = read_reference(o.reference_file if o.reference_file is not None else DEFAULT_REFERENCE)
    if A.reference.empty:
        A.note("tables", "No paper reference file was found: the table has no paper column.")
    return A


def group(A: Analysis) -> Groups:
    runs = A.results.runs
    runs["setting"] = [setting_label(t, d) for t, d in zip(runs["task"], runs["dataset"])]
    runs["panel"] = [setting_label(t, d, short=True) for t, d in zip(runs["task"], runs["dataset"])]
    ev = A.results.evals
    by_run = runs.set_index("run")
    evals = ev.assign(**{c: ev["run"].astype(str).map(by_run[c]) for c in ("setting", "panel", "source")})
    evals["subset"] = ev["run"].astype(str).map(by_run["subset"]).astype(bool)
    for c in ("method", "task", "domain", "dataset"):  # categoricals of different categories do not compare
        evals[c] = evals[c].astype(str)
    subsets = runs[runs["subset"]]
    keys = set(zip(subsets["method"], subsets["task"], subsets["source"]))
    in_ds = pd.Series(
        [k in keys for k in zip(runs["method"], runs["task"], runs["source"])], index=runs.index
    )
    ds_runs = runs[in_ds].assign(
        datasize_panel=lambda r: (
            r["method"] + " on " + [setting_label(t, s) for t, s in zip(r["task"], r["source"])]
        )
    )
    ds = evals[evals["run"].astype(str).isin(set(ds_runs["run"]))]
    ds = ds.assign(panel=ds["run"].astype(str).map(ds_runs.set_index("run")["datasize_panel"]))
    whole = runs[~runs["subset"]]
    families = sorted(set(zip(whole["domain"], whole["family"])), key=lambda k: (k[0], k[1] != "", k[1]))
    if len(subsets):
        A.note(
            "curves",
            f"{len(subsets)} run(s) on subsets of a dataset (the data-size study: "
            f"{', '.join(sorted(subsets['dataset'].unique()))}) are drawn in the data-size figure, not in "
            "the per-domain curves; the tables list them by dataset.",
        )
    return Groups(
        runs=runs,
        evals=evals,
        main=evals[~evals["subset"]],
        datasize=ds,
        datasize_runs=ds_runs,
        families=families,
    )


def tabulate(A: Analysis, G: Groups) -> None:
    """Every table: datasets, curves, finals, aggregates, the diagnostics' and the missing runs."""
    o, runs = A.options, G.runs
    A.csv["metrics_tidy.csv.gz"] = A.results.metrics
    A.csv["runs.csv"] = runs.drop(columns=["path"])
    A.tables["datasets"] = A.csv["datasets.csv"] = datasets_table(runs)
    G.curves = stats.learning_curves(G.evals, ["method", "task", "dataset"], o.max_points, o.reps, o.seed)
    A.csv["curves.csv"] = G.curves
    _flag_thin_curves(A, G.curves)
    if len(G.datasize):
        G.datasize_curves = stats.learning_curves(
            G.datasize, ["panel", "dataset"], o.max_points, o.reps, o.seed
        )
        A.csv["curves_datasize.csv"] = G.datasize_curves
    final = stats.final_scores(G.evals, runs, o.final_window, o.include_unfinished, A.flags)
    G.final = final = final.join(stats.regret(A.results.metrics), on="run")
    A.csv["final_per_run.csv"] = final.drop(columns=["path"])
    table = _final_table(final, A.reference, o)
    A.tables["final"] = A.csv["final_success.csv"] = table
    objects = _objects_table(final)
    if len(objects):
        A.tables["objects"] = A.csv["objects.csv"] = objects
        G.objects_curves = stats.learning_curves(
            G.evals[G.evals["eval_objects"].notna()],
            ["method", "task", "dataset"],
            o.max_points,
            o.reps,
            o.seed,
            value="eval_objects",
        )
        A.csv["curves_objects.csv"] = G.objects_curves
    if len(table):
        wide = table.assign(setting=[setting_label(t, d) for t, d in zip(table["task"], table["dataset"])])
        wide = wide.pivot(index="method", columns="setting", values="final_success")
        A.tables["final_wide"] = wide.loc[figures.method_order(wide.index)]
    if (table["dataset"] != table["task"]).any() and not A.reference.empty:
        A.note(
            "tables",
            "The paper's numbers are for its own datasets: rows on other datasets have no paper column.",
        )
    whole = final[~final["subset"]] if len(final) else final
    for domain, family in G.families:
        fd = whole[(whole["domain"] == domain) & (whole["family"] == family)] if len(whole) else whole
        if len(fd):
            agg = _aggregate(A, G, fd, *family_label(domain, family))
            if agg:
                G.aggregates.append(agg)
    if final.empty:
        A.note("aggregates", _why_no_finals(runs))
    _read_diagnostics(A, G)
    _reward_generalisation_table(A, G)
    _action_uncertainty_table(A, G)
    _action_fit_table(A, G)
    A.missing = A.csv["missing.csv"] = _expected_missing(runs, o)


def datasets_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The datasets found: per dataset its kind, tasks, runs (done) and methods."""
    rows = []
    for dataset, g in runs.groupby("dataset", sort=True):
        r = g.iloc[0]
        if r.subset:
            kind = f"subset of {r.source}"
        elif r.family == "":
            kind = "the task's own"
        else:
            kind = "other" + (f" (--dataset {r.family})" if r.family != dataset else "")
        rows.append(
            dict(
                dataset=dataset,
                kind=kind,
                tasks=", ".join(sorted(g["task"].unique())),
                runs=len(g),
                done=int((g["status"] == "done").sum()),
                methods=", ".join(figures.method_order(g["method"].unique())),
            )
        )
    return pd.DataFrame(rows, columns=["dataset", "kind", "tasks", "runs", "done", "methods"])


def _flag_thin_curves(A: Analysis, curves: pd.DataFrame) -> None:
    for r in (
        curves[curves["n_runs"] < curves["of_runs"]]
        .groupby(["method", "task", "dataset"])
        .agg(first=("step", "min"), n=("n_runs", "min"), of=("of_runs", "first"))
        .reset_index()
        .itertuples()
    ):
        A.flags.add(
            f"{r.method} on {setting_label(r.task, r.dataset)}: from {r.first:,.0f} env steps the curve "
            f"rests on fewer runs (down to {r.n} of {r.of}); drawn dashed"
        )


def _why_no_finals(runs: pd.DataFrame) -> str:
    """What the runs found are, when none gives a final score."""
    counts = ", ".join(f"{s} {n}" for s, n in runs["status"].value_counts().items())
    evaluated = runs[runs["evals"] > 0]
    if evaluated.empty:
        why = f"none of the {len(runs)} run(s) ({counts}) has an evaluation yet"
    else:
        ecounts = ", ".join(f"{s} {n}" for s, n in evaluated["status"].value_counts().items())
        why = (
            f"of the {len(runs)} run(s) ({counts}), the {len(evaluated)} with an evaluation are unfinished "
            f"({ecounts}; --include-unfinished counts them)"
        )
    return f"No final scores, tables or aggregates: {why}."


def _aggregate(A: Analysis, G: Groups, fd: pd.DataFrame, label: str, stem: str) -> dict | None:
    """rliable's aggregates, performance profiles, probability of improvement and IQM over steps of the
    finished runs ``fd`` over the tasks of one domain on one dataset family."""
    o = A.options
    score_dict, tasks = stats.score_matrices(fd, flags=A.flags)
    if not score_dict:
        A.note("aggregates", f"{label}: no method has a finished run on every task: no aggregates.")
        return None
    agg = stats.aggregates(score_dict, o.reps, o.seed)
    agg.insert(0, "domain", label)
    A.tables[f"aggregates_{stem}"] = A.csv[f"aggregates_{stem}.csv"] = agg
    taus = np.linspace(0.0, 1.0, 21)
    prof, prof_ci = stats.performance_profiles(score_dict, taus, o.reps, o.seed)
    A.csv[f"profiles_{stem}.csv"] = pd.DataFrame({"tau": taus, **{m: p for m, p in prof.items()}})
    out = dict(label=label, stem=stem, tasks=tasks, agg=agg, taus=taus, prof=prof, prof_ci=prof_ci, poi=None)
    ref_methods = [m for m in score_dict if m.split(" [")[0] == o.reference_method]
    if ref_methods and len(score_dict) > 1:
        pois = [stats.probability_of_improvement(score_dict, rm, o.reps, o.seed) for rm in ref_methods]
        poi = pd.concat(pois, ignore_index=True)
        poi.insert(0, "domain", label)
        A.tables[f"poi_{stem}"] = A.csv[f"poi_{stem}.csv"] = out["poi"] = poi
    else:
        A.note(
            "aggregates",
            f"{label}: probability of improvement needs {o.reference_method} and another "
            f"method with finished runs on every task.",
        )
    grid, se_scores = stats.sample_efficiency_scores(G.evals, fd, tasks, o.sample_points, A.flags)
    out["sample_efficiency"] = None
    if se_scores:
        pe, ie = stats.iqm_over_steps(se_scores, o.reps, o.seed)
        out["sample_efficiency"] = (grid, pe, ie)
        A.csv[f"sample_efficiency_{stem}.csv"] = pd.DataFrame(
            [
                dict(method=m, env_steps=s, iqm=pe[m][j], lo=ie[m][0, j], hi=ie[m][1, j])
                for m in pe
                for j, s in enumerate(grid)
            ]
        )
    return out


def _expected_missing(runs: pd.DataFrame, o: Options) -> pd.DataFrame:
    """Runs the grid implies but no directory holds: per domain, profile and dataset family (each subset
    its own), every variant x task x seed seen."""
    rows = []
    grid = runs.assign(_grid=runs["dataset"].where(runs["subset"], runs["family"]))
    for (domain, profile, _), g in grid.groupby(["domain", "profile", "_grid"]):
        variants = o.algos if o.algos else sorted(g["variant"].unique())
        variants = [v for v in variants if v in set(runs["variant"])] or variants
        data = dict(zip(g["task"], g["dataset"]))
        seeds = o.seeds if o.seeds is not None else sorted(g["seed"].unique())
        have = set(zip(g["variant"], g["task"], g["seed"]))
        for v in variants:
            for t in sorted(data):
                for s in seeds:
                    if (v, t, s) not in have:
                        rows.append(dict(variant=v, task=t, dataset=data[t], seed=s, profile=profile))
    return pd.DataFrame(rows, columns=["variant", "task", "dataset", "seed", "profile"])


def _final_table(final: pd.DataFrame, ref: pd.DataFrame, o: Options) -> pd.DataFrame:
    """Final success (%) per task x dataset x method with a 95% CI, the mean over the last third of the
    online evaluations (mean, IQM over runs and a 95% CI of the mean) and the mean regret (CORL's: mean over
    online episodes of 1 - success), next to the paper's number (on the task's own data) and the
    difference."""
    rows = []
    rs = ref[ref["metric"] == "final_success"]
    for (task, dataset, method), g in final.groupby(["task", "dataset", "method"], sort=True):
        scores = 100.0 * g["final"].to_numpy(float)[:, None]
        pe, ie = stats._interval_estimates({"m": scores}, lambda x: np.array([np.mean(x)]), o.reps, o.seed)
        variant = g["variant"].iloc[0]
        paper = rs[(rs["task"] == task) & (rs["variant"] == variant)] if dataset == task else rs.iloc[:0]
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
                dataset=dataset,
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
    return pd.DataFrame(rows, columns=FINAL_COLUMNS)


def _objects_table(final: pd.DataFrame) -> pd.DataFrame:
    """Kitchen: objects in their goal configuration (0-4) and success per task x dataset x method: the
    mean over runs and the range (min, max) over seeds, the last evaluation's and the last third's."""
    if "final_objects" not in final:
        return pd.DataFrame(columns=OBJECTS_COLUMNS)
    rows = []
    kitchen = final[final["final_objects"].notna()]
    for (task, dataset, method), g in kitchen.groupby(["task", "dataset", "method"], sort=True):
        obj, suc = g["final_objects"].astype(float), 100.0 * g["final"].astype(float)
        rows.append(
            dict(
                task=task,
                dataset=dataset,
                method=method,
                runs=len(g),
                final_objects=obj.mean(),
                objects_min=obj.min(),
                objects_max=obj.max(),
                last_third_objects=g["last_third_objects"].astype(float).mean(),
                final_success=suc.mean(),
                success_min=suc.min(),
                success_max=suc.max(),
            )
        )
    return pd.DataFrame(rows, columns=OBJECTS_COLUMNS)


OBJECTS_COLUMNS = [
    "task",
    "dataset",
    "method",
    "runs",
    "final_objects",
    "objects_min",
    "objects_max",
    "last_third_objects",
    "final_success",
    "success_min",
    "success_max",
]

FINAL_COLUMNS = [
    "task",
    "dataset",
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
]


def draw(A: Analysis, G: Groups) -> None:
    """Every figure: the per-domain curves, ablations, data-size study, aggregates, model diagnostics."""
    figures.set_style()
    fig_dir = A.out / "figures"
    colors = figures.method_colors(G.runs["method"])
    _draw_curves(A, G, colors, fig_dir)
    _draw_ablations(A, G, colors, fig_dir)
    _draw_datasize(A, G, fig_dir)
    for agg in G.aggregates:
        _draw_aggregates(A, agg, colors, fig_dir)
    _draw_diagnostics(A, G, fig_dir)


def _panels(evals: pd.DataFrame) -> list[str]:
    """The panels of ``evals``' settings: the tasks on their own data first, then by task and dataset."""
    keys = evals[["panel", "task", "dataset"]].drop_duplicates()
    keys = keys.assign(other=keys["dataset"] != keys["task"]).sort_values(["other", "task", "dataset"])
    return list(keys["panel"])


def _draw_curves(A: Analysis, G: Groups, colors: dict, fig_dir: Path) -> None:
    runs = G.runs
    curves = G.curves.assign(
        panel=[setting_label(t, d, short=True) for t, d in zip(G.curves["task"], G.curves["dataset"])]
    )
    G.curves_drawn = curves
    # main figures: base methods; variants (ablations) have their own figure
    main_methods = set(runs[runs["variant"] == runs["algorithm"]]["method"]) or set(runs["method"])
    if G.main.empty:
        A.note("curves", "No learning curves: no run outside the data-size study has an evaluation yet.")
    for domain in sorted(G.main["domain"].unique()):
        dm = G.main[G.main["domain"] == domain]
        panels = _panels(dm)
        keys = set(zip(dm["task"], dm["dataset"]))
        sel = curves[
            np.array([k in keys for k in zip(curves["task"], curves["dataset"])], bool)
            & curves["method"].isin(main_methods)
        ]
        title = DOMAIN_TITLES.get(domain, domain)
        png = figures.curves_figure(
            sel,
            panels,
            colors,
            fig_dir,
            f"curves_{domain}",
            title + ": evaluation success",
            panel_col="panel",
            ncols=5 if len(panels) > 4 else len(panels),
        )
        on = sorted({d for t, d in keys if d != t})
        A.fig(
            "curves",
            f"{title}: mean evaluation success over seeds, 95% stratified-bootstrap CIs; dashed where fewer "
            f"runs than the group holds remain"
            + (f"; panels on other data name it ({', '.join(on)})" if on else ""),
            png,
        )
        oc = G.objects_curves
        if oc is not None and len(oc):
            oc = oc.assign(panel=[setting_label(t, d, short=True) for t, d in zip(oc["task"], oc["dataset"])])
            sel = oc[
                np.array([k in keys for k in zip(oc["task"], oc["dataset"])], bool)
                & oc["method"].isin(main_methods)
            ]
            if len(sel):
                png = figures.curves_figure(
                    sel,
                    [p for p in panels if p in set(sel["panel"])],
                    colors,
                    fig_dir,
                    f"objects_{domain}",
                    title + ": objects in their goal configuration",
                    panel_col="panel",
                    ncols=5 if len(panels) > 4 else len(panels),
                    ylim=(-0.1, 4.1),
                    ylabel="objects in goal",
                )
                A.fig(
                    "curves",
                    f"{title}: the most task objects in their goal configuration at once (0-4) per "
                    "evaluation episode, mean over seeds with 95% stratified-bootstrap CIs",
                    png,
                )


def _draw_ablations(A: Analysis, G: Groups, colors: dict, fig_dir: Path) -> None:
    """Paper Fig. 3 right: the reference method's variants next to DreamerV2, per domain."""
    runs, base, curves = G.runs, A.options.reference_method, G.curves_drawn
    abl_methods = runs[(runs["algorithm"] == base) | (runs["variant"] == "dreamerv2")]["method"].unique()
    variant_runs = runs[(runs["algorithm"] == base) & (runs["variant"] != base) & ~runs["subset"]]
    if variant_runs.empty:
        A.note("curves", f"No ablation runs (variants of {base}) were found: no ablation figure.")
        return
    for domain in sorted(variant_runs["domain"].unique()):
        dm = G.main[(G.main["domain"] == domain) & G.main["method"].isin(abl_methods)]
        panels = _panels(dm)
        sub = curves[curves["panel"].isin(panels) & curves["method"].isin(abl_methods)]
        sub = sub[[k in set(zip(dm["task"], dm["dataset"])) for k in zip(sub["task"], sub["dataset"])]]
        if len(sub):
            png = figures.curves_figure(
                sub,
                panels,
                colors,
                fig_dir,
                f"ablations_{domain}",
                f"Ablations of {base} on {domain} (paper Fig. 3, right)",
                panel_col="panel",
                ncols=4,
            )
            A.fig("curves", f"Ablations: {base}, its variants and DreamerV2 on {domain}", png)


def _draw_datasize(A: Analysis, G: Groups, fig_dir: Path) -> None:
    """Paper Fig. 5: per method, task and source, one line per subset (and the source itself)."""
    if G.datasize_runs.empty:
        A.note(
            "curves",
            "No data-size runs (a method on one task with subsets of one dataset, made by "
            "`python -m benchmark.datasets subset`) were found: no data-size figure.",
        )
        return
    if G.datasize.empty:  # mid-sweep or after failures: the groups exist, no run has evaluated yet
        A.note(
            "curves",
            "Data-size runs exist but none has an evaluation yet, so no data-size figure: "
            + "; ".join(
                f"{r.method} on {r.task} with {r.dataset} ({r.status})" for r in G.datasize_runs.itertuples()
            ),
        )
        return
    ev = G.datasize
    names = sorted(ev["dataset"].unique())
    colors = dict(zip(names, figures.sns.color_palette("viridis", len(names))))
    png = figures.curves_figure(
        G.datasize_curves,
        sorted(ev["panel"].unique()),
        colors,
        fig_dir,
        "datasize",
        "Offline data size (paper Fig. 5)",
        panel_col="panel",
        line_col="dataset",
        ncols=3,
    )
    A.fig(
        "curves", "Data-size study: one line per offline dataset (subsets of one source, and the source)", png
    )


def _draw_aggregates(A: Analysis, agg: dict, colors: dict, fig_dir: Path) -> None:
    label, stem, ntask = agg["label"], agg["stem"], len(agg["tasks"])
    A.fig(
        "aggregates",
        f"{label}: IQM, mean, median and optimality gap of final success over runs x "
        f"{ntask} task(s), 95% stratified-bootstrap CIs",
        figures.aggregates_figure(
            agg["agg"], colors, fig_dir, f"aggregates_{stem}", f"{label}: final success"
        ),
    )
    A.fig(
        "aggregates",
        f"{label}: performance profiles (fraction of runs above each success threshold)",
        figures.profiles_figure(
            agg["prof"],
            agg["prof_ci"],
            agg["taus"],
            colors,
            fig_dir,
            f"profiles_{stem}",
            f"{label}: performance profiles",
        ),
    )
    if agg["poi"] is not None:
        A.fig(
            "aggregates",
            f"{label}: probability that {A.options.reference_method} beats each baseline on a task",
            figures.poi_figure(agg["poi"], colors, fig_dir, f"poi_{stem}", label),
        )
    if agg["sample_efficiency"] is not None:
        grid, pe, ie = agg["sample_efficiency"]
        A.fig(
            "aggregates",
            f"{label}: sample efficiency, IQM of evaluation success over runs x tasks "
            f"against environment steps, 95% CIs",
            figures.sample_efficiency_figure(
                grid,
                pe,
                ie,
                colors,
                fig_dir,
                f"sample_efficiency_{stem}",
                f"{label}: IQM vs environment steps",
            ),
        )


def write(A: Analysis, G: Groups, t0: float) -> None:
    """The tables as CSV, the runs' last evaluation GIFs, then the report."""
    tab_dir = A.out / "tables"
    tab_dir.mkdir(parents=True, exist_ok=True)
    for name, df in A.csv.items():
        df.to_csv(tab_dir / name, index=False)
    gif_dir = A.out / "gifs"
    if gif_dir.exists():
        shutil.rmtree(gif_dir)
    for r in G.runs[G.runs["last_gif"] != ""].itertuples():
        dst = gif_dir / (r.run.replace("/", "__") + ".gif")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(r.last_gif, dst)
    A.seconds = time.perf_counter() - t0
    from benchmark.analysis import report

    report.write(A)


DIAGNOSTIC_FILES = {
    "reward_prediction": diagnostics.read_reward_prediction,
    "uncertainty": diagnostics.read_uncertainty,
    "uncertainty_actions": diagnostics.read_action_uncertainty,
    "action_fit": diagnostics.read_action_fit,
}
DIAGNOSTIC_ABSENT = {
    "reward_prediction": "No run wrote diagnostics/reward_prediction.csv: no model-generalisation figure "
    "(paper Fig. 4). World-model agents write it; the format is in docs/analysis.md.",
    "uncertainty": "No run wrote diagnostics/uncertainty.csv: no performance-gap figure (paper Fig. 6).",
    "uncertainty_actions": "No run wrote diagnostics/uncertainty_actions.csv: no table of u by action "
    "source.",
}


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


def _read_diagnostics(A: Analysis, G: Groups) -> None:
    """Every run's diagnostics files, stacked per method, task and dataset, into ``G.diag``."""
    for kind, read in DIAGNOSTIC_FILES.items():
        with_f = G.runs[G.runs[kind] != ""]
        if with_f.empty and kind in DIAGNOSTIC_ABSENT:
            A.note("diagnostics", DIAGNOSTIC_ABSENT[kind])
        G.diag[kind] = []
        for (method, task, dataset), g in with_f.groupby(["method", "task", "dataset"]):
            df = _read_diagnostic(A, g, kind, read)
            if not df.empty:
                G.diag[kind].append((method, task, dataset, g, df))


def _fig4_reference(ref: pd.DataFrame, task: str, variant: str) -> dict:
    """The paper's Fig. 4 numbers for a method on a task ({metric: value}; empty where it gives none)."""
    rr = ref[(ref["task"] == task) & (ref["variant"] == variant) & (ref["figure"] == "fig4")]
    return dict(zip(rr["metric"], rr["value"]))


# tables/reward_generalisation.csv: a run's setting, then ``diagnostics.reward_generalisation_summary``'s
# columns with the paper's numbers beside those they compare with.
REWARD_GENERALISATION_TABLE_COLUMNS = [
    "method",
    "task",
    "dataset",
    "seed",
    "grad_step",
    "episode_set",
    "episodes",
    "final_true_reward",
    "final_predicted_reward",
    "paper_final_predicted_reward",
    "max_predicted_reward",
    "final_policy_reward",
    "paper_final_policy_reward",
    "data_max_reward",
    "above_data_max",
    "dataset_final_predicted_reward",
    "run",
]


def _reward_generalisation_table(A: Analysis, G: Groups) -> None:
    """Paper Fig. 4 / App. A.1 as numbers: per run, at the end of the offline phase, the mean final reward
    the model predicts along the probe episodes (held-out: on Kitchen, episodes that do all four objects;
    else along dataset episodes, ``episode_set``) and along the policy's rollouts in the model, next to
    the paper's (3.63, 3.52 on kitchen/partial) and the largest reward in the training data."""
    parts = []
    for method, task, dataset, g, df in G.diag["reward_prediction"]:
        summ = diagnostics.reward_generalisation_summary(df)
        ref = _fig4_reference(A.reference, task, g["variant"].iloc[0])
        seeds = g.set_index("run")["seed"]
        parts.append(
            summ.assign(
                method=method,
                task=task,
                dataset=dataset,
                seed=summ["run"].map(seeds),
                paper_final_predicted_reward=ref.get("mean_final_predicted_reward_data", np.nan),
                paper_final_policy_reward=ref.get("mean_final_predicted_reward_policy", np.nan),
                # empty where the data's largest reward is unknown (files written before the column)
                above_data_max=(summ["final_predicted_reward"] > summ["data_max_reward"]).where(
                    summ["data_max_reward"].notna()
                ),
            )
        )
    if parts:
        t = pd.concat(parts, ignore_index=True)[REWARD_GENERALISATION_TABLE_COLUMNS]
        A.tables["reward_generalisation"] = A.csv["reward_generalisation.csv"] = t


def _action_fit_table(A: Analysis, G: Groups) -> None:
    """The actors' fit to the demonstrations, side by side (MOTO's and BC's write ``action_fit.csv``): per
    method, task and dataset, the mean action error over the first 10 steps and over the rest, at the end
    of the offline phase and at the last measurement, mean over runs."""
    parts = []
    for method, task, dataset, _, df in G.diag["action_fit"]:
        summ = diagnostics.action_fit_summary(df)
        agg = summ.groupby("at", sort=False).agg(
            runs=("run", "nunique"),
            grad_step=("grad_step", "max"),
            error_first_steps=("error_first_steps", "mean"),
            error_later=("error_later", "mean"),
        )
        parts.append(agg.reset_index().assign(method=method, task=task, dataset=dataset))
    if parts:
        t = pd.concat(parts, ignore_index=True)
        t = t[["method", "task", "dataset", "at", "runs", "grad_step", "error_first_steps", "error_later"]]
        A.tables["action_fit"] = A.csv["action_fit.csv"] = t


def _action_uncertainty_table(A: Analysis, G: Groups) -> None:
    """Does u tell the data's actions from others? Per method, task and dataset: the mean u along rollouts
    of the data's, the policy's, the perturbed policy's and random actions by measure
    (``uncertainty_actions.csv``), at the end of the offline phase and at the last measurement."""
    sources = diagnostics.ACTION_SOURCES  # policy, random, perturbed_0.1, perturbed_0.3
    ratios = [f"{s}_over_data" for s in sources]
    parts = []
    for method, task, dataset, _, df in G.diag["uncertainty_actions"]:
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
        parts.append(agg.assign(method=method, task=task, dataset=dataset))
    if parts:
        t = pd.concat(parts, ignore_index=True)
        head = ["method", "task", "dataset", "at", "measure", "selected", "runs", "data"]
        t = t[[*head, *sources, *ratios, "random_over_data_min", "random_over_data_max"]]
        A.tables["uncertainty_actions"] = A.csv["uncertainty_actions.csv"] = t


def _diag_name(kind: str, method: str, task: str, dataset: str) -> str:
    name = f"{kind}_{method}_{task}" + ("" if dataset == task else f"_{dataset}")
    return name.replace("/", "-").replace(" ", "")


def _draw_diagnostics(A: Analysis, G: Groups, fig_dir: Path) -> None:
    """Paper Fig. 4 (reward prediction), Fig. 6 (performance gap vs u) and u by action source, per method,
    task and dataset."""
    for method, task, dataset, g, df in G.diag["reward_prediction"]:
        on = setting_label(task, dataset)
        ref = _fig4_reference(A.reference, task, g["variant"].iloc[0])
        shown = pd.concat([diagnostics.fig4_rows(r) for _, r in df.groupby("run", sort=False)])
        probe = int(shown.loc[shown["episode_set"] == "probe", "run"].nunique())
        png = figures.reward_prediction_figure(
            shown,
            fig_dir,
            _diag_name("reward_prediction", method, task, dataset),
            f"{method} on {on}: model-predicted reward (grad step {int(df['grad_step'].max()):,})",
            ref,
        )
        A.fig(
            "diagnostics",
            f"{method} on {on}: reward predicted by the model vs recorded (paper Fig. 4), {len(g)} run(s); "
            + (
                f"along held-out probe episodes ({probe} run(s); the data never holds them) and the policy's "
                "rollouts from their first frames"
                if probe
                else "along dataset episodes (no probe set beside the dataset: "
                "`python -m benchmark.datasets probe`)"
            )
            + ("" if dataset == task or not ref else "; the paper's numbers are on its own data"),
            png,
        )
    for method, task, dataset, g, df in G.diag["uncertainty"]:
        on = setting_label(task, dataset)
        png = figures.uncertainty_figure(
            df,
            fig_dir,
            _diag_name("uncertainty", method, task, dataset),
            f"{method} on {on}: performance gap vs expected model uncertainty (Eq. 12)",
        )
        A.fig(
            "diagnostics",
            f"{method} on {on}: performance gap against expected model uncertainty (paper Fig. 6), "
            f"{len(g)} run(s)",
            png,
        )
    for method, task, dataset, g, df in G.diag["uncertainty_actions"]:
        on = setting_label(task, dataset)
        png = figures.action_uncertainty_figure(
            df,
            fig_dir,
            _diag_name("uncertainty_actions", method, task, dataset),
            f"{method} on {on}: does u tell the data's actions from others?",
        )
        A.fig(
            "diagnostics",
            f"{method} on {on}: mean u along model rollouts of random, policy and perturbed policy "
            f"actions over that along the data's actions, per measure (1.0: no separation), {len(g)} run(s)",
            png,
        )
