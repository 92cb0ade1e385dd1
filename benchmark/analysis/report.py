"""report.html (opens from disk, no server: figures and GIFs are relative files next to it) and report.md."""

from __future__ import annotations

import html
import math
import time

import numpy as np
import pandas as pd

SECTIONS = [
    ("curves", "Learning curves"),
    ("aggregates", "Aggregate statistics (rliable)"),
    ("tables", "Final success vs the paper"),
    ("diagnostics", "Model diagnostics"),
]
STATUS_COLORS = {
    "done": "#2a7",
    "running": "#27c",
    "failed": "#c33",
    "interrupted": "#c80",
    "unknown": "#888",
}


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        v = v + 0.0  # no "-0"
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return str(v)


def md_table(df: pd.DataFrame, index: bool = False) -> str:
    if index:
        df = df.reset_index()
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "---|" * len(df.columns)
    body = [
        "| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |"
        for row in df.itertuples(index=False)
    ]
    return "\n".join([head, sep, *body])


def html_table(df: pd.DataFrame, index: bool = False, raw: set[str] = frozenset()) -> str:
    if index:
        df = df.reset_index()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for row in df.itertuples(index=False):
        cells = [(str(v) if c in raw else html.escape(_fmt(v))) for c, v in zip(df.columns, row)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
        f"</table></div>"
    )


def sparkline(steps: np.ndarray, values: np.ndarray, xmax: float, w: int = 160, h: int = 40) -> str:
    """An inline SVG of one run's evaluation success (0..1) against env steps (0..xmax)."""
    if len(steps) == 0:
        return '<span class="muted">no evaluation</span>'
    xmax = xmax if xmax > 0 else 1.0
    pts = " ".join(
        f"{2 + (w - 4) * s / xmax:.1f},{h - 2 - (h - 4) * min(max(v, 0), 1):.1f}"
        for s, v in zip(steps, values)
    )
    return (
        f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}"><rect width="{w}" height="{h}" fill="#f7f7f7"/>'
        f'<polyline points="{pts}" fill="none" stroke="#0173b2" stroke-width="1.5"/></svg>'
    )


CSS = (
    """body{font-family:system-ui,sans-serif;max-width:1300px;margin:auto;padding:1em 2em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.6em 0}td,th{border:1px solid #ddd;padding:2px 6px;
text-align:left;vertical-align:middle}th{background:#f0f0f0}figure{margin:1em 0}figure img{max-width:100%;
border:1px solid #eee}figcaption{font-size:.9em;color:#444}.muted{color:#888}.flag{color:#a60}
.status{font-weight:bold}.scroll{overflow-x:auto}nav a{margin-right:1em}"""
    "img.gif{width:64px;height:64px;image-rendering:pixelated}"
)


class Doc:
    """The report as HTML (``H``) and Markdown (``M``) lines, written side by side."""

    def __init__(self):
        self.H: list[str] = []
        self.M: list[str] = []

    def heading(self, key: str, title: str) -> None:
        self.H.append(f"<h2 id='{key}'>{title}</h2>")
        self.M += [f"## {title}", ""]

    def para(self, text: str, cls: str = "") -> None:
        self.H.append(f"<p class='{cls}'>{html.escape(text)}</p>" if cls else f"<p>{html.escape(text)}</p>")
        self.M += [text, ""]

    def table(self, title: str, df: pd.DataFrame, index: bool = False, cls: str = "") -> None:
        tag = f"<p class='{cls}'>" if cls else "<p>"
        self.H.append(f"{tag}{html.escape(title)}</p>" + html_table(df, index=index))
        self.M += [title, "", md_table(df, index=index), ""]

    def figure(self, caption: str, png: str) -> None:
        pdf = png[:-4] + ".pdf"
        self.H.append(
            f"<figure><img src='{html.escape(png)}' alt='{html.escape(caption)}'><figcaption>"
            f"{html.escape(caption)} (<a href='{html.escape(pdf)}'>PDF</a>)</figcaption></figure>"
        )
        self.M += [f"![{caption}]({png})", "", f"*{caption}* ([PDF]({pdf}))", ""]


def write(A) -> None:
    """report.html and report.md: the header, coverage, flags, each section and the runs."""
    D = Doc()
    _header(A, D)
    _coverage(A, D)
    _flags(A, D)
    for key, title in SECTIONS:
        _section(A, D, key, title)
    _runs(A, D)
    D.H.append("</body></html>")
    (A.out / "report.html").write_text("\n".join(D.H))
    (A.out / "report.md").write_text("\n".join(D.M) + "\n")


def _header(A, D: Doc) -> None:
    res, o, runs = A.results, A.options, A.results.runs
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    intro = (
        f"Results: <code>{html.escape(str(res.root))}</code> &middot; {len(runs)} run(s), "
        f"{runs['method'].nunique()} method(s), {runs['task'].nunique()} task(s), "
        f"{runs['dataset'].nunique()} dataset(s), profiles "
        f"{', '.join(sorted(runs['profile'].unique()))} &middot; generated {when} in {A.seconds:.1f} s "
        f"&middot; bootstrap reps {o.reps}, final success = mean of the last {o.final_window} evaluation(s)"
        + (", unfinished runs included" if o.include_unfinished else ", finished runs only")
    )
    D.H.append(
        f"<!doctype html><html><head><meta charset='utf-8'><title>MOTO benchmark report</title>"
        f"<style>{CSS}</style></head><body><h1>MOTO benchmark report</h1><p>{intro}</p>"
    )
    D.M += ["# MOTO benchmark report", "", intro.replace("<code>", "`").replace("</code>", "`")]
    D.M[-1] = D.M[-1].replace("&middot;", "·")
    D.M.append("")
    links = [("coverage", "Coverage"), *SECTIONS, ("runs", "Runs")]
    D.H.append("<nav>" + "".join(f"<a href='#{k}'>{t}</a>" for k, t in links) + "</nav>")


def _coverage(A, D: Doc) -> None:
    """Runs by status, the datasets found, runs per method and task (and dataset), the missing, unfinished
    and unreadable runs."""
    res, runs = A.results, A.results.runs
    counts = runs["status"].value_counts()
    D.heading("coverage", "Coverage")
    D.table("Runs by status:", pd.DataFrame({"status": counts.index, "runs": counts.values}))
    if "datasets" in A.tables:
        D.table(
            "Datasets found (--dataset keeps a dataset, a subset's source or a family):", A.tables["datasets"]
        )
    setting = runs["setting"] if "setting" in runs else runs["task"]
    cover = runs.assign(setting=setting).pivot_table(
        index="method", columns="setting", values="run", aggfunc="count", fill_value=0
    )
    D.table("Runs per method and task (· dataset, where not the task's own):", cover, index=True)
    missing = A.missing if A.missing is not None else pd.DataFrame()
    if len(missing):
        D.table(
            f"{len(missing)} run(s) missing from the grid (every variant x task x seed seen in a domain, "
            f"profile and dataset family):",
            missing,
            cls="flag",
        )
    else:
        D.para("No run missing from the grid of variants x tasks x seeds.")
    notdone = runs[runs["status"] != "done"][["run", "status", "last_env_steps", "evals", "error"]]
    if len(notdone):
        D.table("Runs not finished:", notdone)
    if res.problems:
        D.table(
            "Unreadable run directories:",
            pd.DataFrame(res.problems, columns=["directory", "problem"]),
            cls="flag",
        )


def _flags(A, D: Doc) -> None:
    if not A.flags.items:
        return
    D.H.append(
        "<p><b>Flags</b> (what the numbers below leave out or rest on):</p><ul>"
        + "".join(f"<li class='flag'>{html.escape(f)}</li>" for f in A.flags.items)
        + "</ul>"
    )
    D.M += ["**Flags**:", "", *[f"- {f}" for f in A.flags.items], ""]


def _section(A, D: Doc, key: str, title: str) -> None:
    """One section: its notes, its tables, its figures."""
    D.heading(key, title)
    for n in A.notes.get(key, []):
        D.para(n, "muted")
    if key == "tables":
        _tables(A, D)
    if key == "aggregates":
        for name, t in A.tables.items():
            if name.startswith("aggregates_"):
                D.table(
                    f"{t['domain'].iloc[0]}: final success, value [95% CI]",
                    _wide_aggregates(t).drop(columns=["domain"]),
                )
            elif name.startswith("poi_"):
                ci = [f"{r.value:.3g} [{r.lo:.3g}, {r.hi:.3g}]" for r in t.itertuples()]
                t = t.assign(**{"P(X > Y) [95% CI]": ci})[["domain", "x", "y", "P(X > Y) [95% CI]"]]
                title = (f"{t['domain'].iloc[0]}: " if len(t) else "") + "probability of improvement"
                D.table(title, t.drop(columns=["domain"]))
    if key == "diagnostics":
        if "reward_generalisation" in A.tables:
            D.table(
                "Model generalisation (paper Fig. 4, App. A.1): at the end of the offline phase, the mean "
                "final reward the model predicts along held-out probe episodes (episode_set probe; on "
                "Kitchen episodes that do all four objects) and along the policy's rollouts in the model, "
                "next to the paper's and the largest reward in the training data "
                "(tables/reward_generalisation.csv)",
                A.tables["reward_generalisation"].drop(columns=["run"]).round(3),
            )
        if "uncertainty_actions" in A.tables:
            D.table(
                "Mean u along model rollouts from dataset states, by action source and measure (ratios "
                "near 1: the measure cannot tell random, perturbed policy or policy actions from the data's)",
                A.tables["uncertainty_actions"].round(4),
            )
        if "action_fit" in A.tables:
            D.table(
                "The actors' fit to the demonstrations: mean |action - demo action| over the first 10 steps "
                "and over the rest (tables/action_fit.csv)",
                A.tables["action_fit"].round(4),
            )
    for caption, png in A.figures.get(key, []):
        D.figure(caption, png)


def _runs(A, D: Doc) -> None:
    """Per run: its evaluation success against env steps (one x-scale per task), its last GIF, identity."""
    runs = A.results.runs
    D.H.append(
        "<h2 id='runs'>Runs</h2><p>Each run's evaluation success against environment steps (same x-scale "
        "within a task) and the first episode of its last evaluation.</p>"
    )
    D.M += ["## Runs", ""]
    by_run = {r: g for r, g in A.results.evals.groupby("run", observed=True)}
    rows = []
    for task, g in runs.sort_values(["task", "dataset", "method", "seed"]).groupby("task", sort=True):
        xmax = float(g["last_env_steps"].max()) if g["last_env_steps"].notna().any() else 1.0
        for r in g.itertuples():
            e = by_run.get(r.run)
            spark = (
                sparkline(e["env_steps"].to_numpy(float), e["eval_success"].to_numpy(float), xmax)
                if e is not None
                else sparkline(np.array([]), np.array([]), 1)
            )
            gif = (
                f"<img class='gif' src='gifs/{html.escape(r.run.replace('/', '__'))}.gif' "
                "alt='last evaluation'>"
                if r.last_gif
                else "<span class='muted'>no GIF</span>"
            )
            color = STATUS_COLORS.get(r.status, "#888")
            rows.append(
                dict(
                    run=html.escape(r.run),
                    status=f"<span class='status' style='color:{color}'>{html.escape(r.status)}</span>",
                    curve=spark,
                    gif=gif,
                    last_success=_fmt(r.last_eval_success),
                    env_steps=_fmt(r.last_env_steps),
                    evals=r.evals,
                    method=html.escape(r.method),
                    dataset=html.escape(str(r.dataset)) if r.dataset != task else "",
                    seed=r.seed,
                )
            )
    rt = pd.DataFrame(rows)
    D.H.append(html_table(rt, raw=set(rt.columns)))
    cols = [
        "run",
        "method",
        "task",
        "dataset",
        "seed",
        "status",
        "last_env_steps",
        "evals",
        "last_eval_success",
    ]
    D.M.append(md_table(runs[cols]))


def _wide_aggregates(t: pd.DataFrame) -> pd.DataFrame:
    """One row per method: each metric as 'value [lo, hi]', then runs and tasks."""
    from benchmark.analysis.figures import method_order

    rows = []
    for m in method_order(t["method"].unique()):
        g = t[t["method"] == m]
        row = {"domain": g["domain"].iloc[0], "method": m}
        row.update({r.metric: f"{r.value:.3g} [{r.lo:.3g}, {r.hi:.3g}]" for r in g.itertuples()})
        row.update(runs=int(g["runs"].iloc[0]), tasks=int(g["tasks"].iloc[0]))
        rows.append(row)
    return pd.DataFrame(rows)


def _tables(A, D: Doc) -> None:
    """The final success table next to the paper's, its sources, and method x task."""
    t = A.tables.get("final")
    if t is None or t.empty:
        D.para("No final scores.", "muted")
        return
    show = t.drop(columns=["paper_source"]).rename(
        columns={
            "final_success": "final success %",
            "ci_low": "95% CI low",
            "ci_high": "95% CI high",
            "last_third": "last third %",
            "last_third_iqm": "last third IQM %",
            "last_third_low": "last third CI low",
            "last_third_high": "last third CI high",
            "paper": "paper %",
            "difference": "ours - paper",
            "regret": "regret",
        }
    )
    D.table(
        "Final success rate (%) per task, dataset and method, mean over runs with a 95% bootstrap CI; regret "
        "is CORL's fine-tuning regret (mean over the online training episodes of 1 - success, averaged over "
        "runs); next to the paper's reported number where it gives one (tables/final_success.csv):",
        show,
    )
    src = t[t["paper_source"] != ""][["task", "method", "paper_source"]]
    if len(src):
        D.H.append(
            "<p class='muted'>Sources: "
            + "; ".join(html.escape(f"{r.task} {r.method}: {r.paper_source}") for r in src.itertuples())
            + "</p>"
        )
    ob = A.tables.get("objects")
    if ob is not None and len(ob):
        D.table(
            "Kitchen: the most task objects in their goal configuration at once (0-4), mean over the last "
            "evaluation's episodes, and success (%): mean over runs and range over seeds; the last third "
            "is the mean over the online phase's last third of evaluations (tables/objects.csv):",
            ob,
        )
    w = A.tables.get("final_wide")
    if w is not None:
        D.table("Method x task (· dataset, where not the task's own; final success %):", w, index=True)
