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


def write(A) -> None:
    out, res, o = A.out, A.results, A.options
    runs = res.runs
    counts = runs["status"].value_counts()
    summary = pd.DataFrame({"status": counts.index, "runs": counts.values})
    cover = runs.assign(
        method=runs["method"] + np.where(runs["dataset"] != runs["task"], " · " + runs["dataset"], "")
    ).pivot_table(index="method", columns="task", values="run", aggfunc="count", fill_value=0)
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    intro = (
        f"Results: <code>{html.escape(str(res.root))}</code> &middot; {len(runs)} run(s), "
        f"{runs['method'].nunique()} method(s), {runs['task'].nunique()} task(s), profiles "
        f"{', '.join(sorted(runs['profile'].unique()))} &middot; generated {when} in {A.seconds:.1f} s "
        f"&middot; bootstrap reps {o.reps}, final success = mean of the last {o.final_window} evaluation(s)"
        + (", unfinished runs included" if o.include_unfinished else ", finished runs only")
    )

    H = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>MOTO benchmark report</title>"
        f"<style>{CSS}</style></head><body><h1>MOTO benchmark report</h1><p>{intro}</p>"
    ]
    M = [
        "# MOTO benchmark report",
        "",
        intro.replace("<code>", "`").replace("</code>", "`").replace("&middot;", "·"),
        "",
    ]
    H.append(
        "<nav>"
        + "".join(
            f"<a href='#{k}'>{t}</a>" for k, t in [("coverage", "Coverage"), *SECTIONS, ("runs", "Runs")]
        )
        + "</nav>"
    )

    # coverage ---------------------------------------------------------------
    H.append("<h2 id='coverage'>Coverage</h2>" + html_table(summary))
    H.append("<p>Runs per method and task:</p>" + html_table(cover, index=True))
    M += [
        "## Coverage",
        "",
        md_table(summary),
        "",
        "Runs per method and task:",
        "",
        md_table(cover, index=True),
        "",
    ]
    missing = A.missing if A.missing is not None else pd.DataFrame()
    if len(missing):
        txt = (
            f"{len(missing)} run(s) missing from the grid (every variant x task x seed seen in a domain and "
            f"profile):"
        )
        H.append(f"<p class='flag'>{txt}</p>" + html_table(missing))
        M += [txt, "", md_table(missing), ""]
    else:
        H.append("<p>No run missing from the grid of variants x tasks x seeds.</p>")
        M += ["No run missing from the grid of variants x tasks x seeds.", ""]
    notdone = runs[runs["status"] != "done"][["run", "status", "last_env_steps", "evals", "error"]]
    if len(notdone):
        H.append("<p>Runs not finished:</p>" + html_table(notdone))
        M += ["Runs not finished:", "", md_table(notdone), ""]
    if res.problems:
        pr = pd.DataFrame(res.problems, columns=["directory", "problem"])
        H.append("<p class='flag'>Unreadable run directories:</p>" + html_table(pr))
        M += ["Unreadable run directories:", "", md_table(pr), ""]
    if A.flags.items:
        H.append(
            "<p><b>Flags</b> (what the numbers below leave out or rest on):</p><ul>"
            + "".join(f"<li class='flag'>{html.escape(f)}</li>" for f in A.flags.items)
            + "</ul>"
        )
        M += ["**Flags**:", "", *[f"- {f}" for f in A.flags.items], ""]

    # sections ---------------------------------------------------------------
    for key, title in SECTIONS:
        H.append(f"<h2 id='{key}'>{title}</h2>")
        M += [f"## {title}", ""]
        for n in A.notes.get(key, []):
            H.append(f"<p class='muted'>{html.escape(n)}</p>")
            M += [n, ""]
        if key == "tables":
            _tables(A, H, M)
        if key == "aggregates":
            for name, t in A.tables.items():
                if name.startswith(("aggregates_", "poi_")):
                    t = (
                        _wide_aggregates(t)
                        if name.startswith("aggregates_")
                        else t.assign(
                            **{
                                "P(X > Y) [95% CI]": [
                                    f"{r.value:.3g} [{r.lo:.3g}, {r.hi:.3g}]" for r in t.itertuples()
                                ]
                            }
                        )[["domain", "x", "y", "P(X > Y) [95% CI]"]]
                    )
                    title = (f"{t['domain'].iloc[0]}: " if len(t) else "") + (
                        "final success, value [95% CI]"
                        if name.startswith("aggregates_")
                        else "probability of improvement"
                    )
                    H.append(f"<p>{html.escape(title)}</p>" + html_table(t.drop(columns=["domain"])))
                    M += [title, "", md_table(t.drop(columns=["domain"])), ""]
        if key == "diagnostics" and "uncertainty_actions" in A.tables:
            t = A.tables["uncertainty_actions"].round(4)
            title = (
                "Mean u along model rollouts from dataset states, by action source and measure (ratios "
                "near 1: the measure cannot tell random, perturbed policy or policy actions from the data's)"
            )
            H.append(f"<p>{html.escape(title)}</p>" + html_table(t))
            M += [title, "", md_table(t), ""]
        if key == "diagnostics" and "action_fit" in A.tables:
            t = A.tables["action_fit"].round(4)
            title = (
                "The actors' fit to the demonstrations: mean |action - demo action| over the first 10 steps "
                "and over the rest (tables/action_fit.csv)"
            )
            H.append(f"<p>{html.escape(title)}</p>" + html_table(t))
            M += [title, "", md_table(t), ""]
        for caption, png in A.figures.get(key, []):
            pdf = png[:-4] + ".pdf"
            H.append(
                f"<figure><img src='{html.escape(png)}' alt='{html.escape(caption)}'><figcaption>"
                f"{html.escape(caption)} (<a href='{html.escape(pdf)}'>PDF</a>)</figcaption></figure>"
            )
            M += [f"![{caption}]({png})", "", f"*{caption}* ([PDF]({pdf}))", ""]

    # runs ---------------------------------------------------------------------
    H.append(
        "<h2 id='runs'>Runs</h2><p>Each run's evaluation success against environment steps (same x-scale "
        "within a task) and the first episode of its last evaluation.</p>"
    )
    M += ["## Runs", ""]
    ev = res.evals
    by_run = {r: g for r, g in ev.groupby("run", observed=True)}
    rows = []
    for task, g in runs.sort_values(["task", "method", "seed"]).groupby("task", sort=True):
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
    H.append(html_table(rt, raw=set(rt.columns)))
    M.append(
        md_table(
            runs[
                [
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
            ]
        )
    )
    H.append("</body></html>")
    (out / "report.html").write_text("\n".join(H))
    (out / "report.md").write_text("\n".join(M) + "\n")


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


def _tables(A, H: list, M: list) -> None:
    t = A.tables.get("final")
    if t is None or t.empty:
        H.append("<p class='muted'>No final scores.</p>")
        M += ["No final scores.", ""]
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
    H.append(
        "<p>Final success rate (%) per method and task, mean over runs with a 95% bootstrap CI; regret is "
        "CORL's fine-tuning regret (mean over the online training episodes of 1 - success, averaged over "
        "runs); next to the paper's reported number where it gives one (tables/final_success.csv):</p>"
        + html_table(show)
    )
    M += [
        "Final success rate (%) per method and task, mean over runs with a 95% bootstrap CI; regret is "
        "CORL's fine-tuning regret (mean over the online training episodes of 1 - success, averaged over "
        "runs); next to the paper's number where it gives one:",
        "",
        md_table(show),
        "",
    ]
    src = t[t["paper_source"] != ""][["task", "method", "paper_source"]]
    if len(src):
        H.append(
            "<p class='muted'>Sources: "
            + "; ".join(html.escape(f"{r.task} {r.method}: {r.paper_source}") for r in src.itertuples())
            + "</p>"
        )
    w = A.tables.get("final_wide")
    if w is not None:
        H.append("<p>Method x task (final success %):</p>" + html_table(w, index=True))
        M += ["Method x task (final success %):", "", md_table(w, index=True), ""]
