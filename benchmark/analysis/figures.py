"""Figures: one seaborn style, one colour per method across every figure, each saved as PNG and PDF."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from rliable import plot_utils  # noqa: E402

# The paper's methods first (MOTO, its ablations, DreamerV2, the offline model-based, then model-free).
KNOWN_ORDER = [
    "moto",
    "moto-no-unc",
    "moto-no-bc",
    "moto-no-bc-no-unc",
    "dreamerv2",
    "lompo",
    "combo",
    "cql",
    "iql",
    "sac",
    "bc",
]


def set_style() -> None:
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.1)
    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 130,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "legend.frameon": False,
        }
    )


def method_order(methods) -> list[str]:
    def key(m: str):
        base = m.split(" [")[0]
        return (KNOWN_ORDER.index(base) if base in KNOWN_ORDER else len(KNOWN_ORDER), base, m)

    return sorted(set(methods), key=key)


def method_colors(methods) -> dict[str, tuple]:
    order = method_order(methods)
    pal = sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10) + sns.color_palette("husl", 40)
    return {m: pal[i % len(pal)] for i, m in enumerate(order)}


def save(fig, out_dir: Path, name: str) -> Path:
    """Writes ``name.png`` and ``name.pdf``; returns the PNG path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png = out_dir / f"{name}.png"
    fig.savefig(png)
    fig.savefig(out_dir / f"{name}.pdf")
    plt.close(fig)
    return png


def _steps_formatter(ax) -> None:
    def fmt(x, _):
        if abs(x) >= 1e6:
            return f"{x / 1e6:g}M"
        if abs(x) >= 1e3:
            return f"{x / 1e3:g}k"
        return f"{x:g}"

    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(fmt))


def _grid(n: int, ncols: int, w: float = 3.4, h: float = 2.7):
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows), squeeze=False, sharey=True)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, axes.flat[:n]


def _draw_curve(ax, c: pd.DataFrame, color, label: str) -> None:
    """Mean with CI; solid where every run of the group contributes, dashed where fewer do."""
    x, y = c["step"].to_numpy(float), c["mean"].to_numpy(float)
    full = (c["n_runs"] == c["of_runs"]).to_numpy()
    ax.fill_between(x, c["lo"].to_numpy(float), c["hi"].to_numpy(float), color=color, alpha=0.18, lw=0)
    part = ~full
    if part.any():
        # extend the dashed part by one point each side so it joins the solid part
        grow = part | np.r_[part[1:], False] | np.r_[False, part[:-1]]
        ax.plot(x, np.where(grow, y, np.nan), color=color, lw=1.4, ls="--")
    ax.plot(x, np.where(full, y, np.nan), color=color, lw=1.8, label=label)
    if not full.any():
        ax.plot([], [], color=color, lw=1.8, label=label)


def curves_figure(
    curves: pd.DataFrame,
    panels: list[str],
    colors: dict,
    out_dir: Path,
    name: str,
    title: str,
    panel_col: str = "task",
    line_col: str = "method",
    ncols: int = 5,
    xlabel: str = "environment steps",
    ylim: tuple[float, float] = (-0.03, 1.03),
    ylabel: str = "success rate",
) -> Path:
    """One panel per value of ``panel_col``, one line per value of ``line_col``."""
    fig, axes = _grid(len(panels), ncols)
    for ax, p in zip(axes, panels):
        sub = curves[curves[panel_col] == p]
        for line in (
            method_order(sub[line_col].unique()) if line_col == "method" else sorted(sub[line_col].unique())
        ):
            _draw_curve(ax, sub[sub[line_col] == line], colors.get(line, "k"), str(line))
        ax.set_title(str(p).split("/")[-1] if panel_col == "task" else str(p))
        ax.set_ylim(*ylim)
        ax.set_xlabel(xlabel)
        _steps_formatter(ax)
    for ax in list(axes)[:: max(1, min(ncols, len(panels)))]:
        ax.set_ylabel(ylabel)
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    fig.suptitle(title)
    fig.tight_layout()
    fig.legend(
        list(handles.values()),
        list(handles.keys()),
        loc="upper center",
        ncol=min(6, max(1, len(handles))),
        bbox_to_anchor=(0.5, 0.0),
    )
    return save(fig, out_dir, name)


def aggregates_figure(table: pd.DataFrame, colors: dict, out_dir: Path, name: str, title: str) -> Path:
    methods = method_order(table["method"].unique())
    metrics = list(dict.fromkeys(table["metric"]))
    pe = {
        m: np.array([table[(table.method == m) & (table.metric == k)]["value"].iloc[0] for k in metrics])
        for m in methods
    }
    ie = {
        m: np.array(
            [
                [table[(table.method == m) & (table.metric == k)][b].iloc[0] for k in metrics]
                for b in ("lo", "hi")
            ]
        )
        for m in methods
    }
    fig, axes = plot_utils.plot_interval_estimates(
        pe,
        ie,
        metric_names=metrics,
        algorithms=methods,
        colors=colors,
        xlabel="final success rate",
        subfigure_width=3.2,
        row_height=max(0.45, 2.0 / len(methods)),
        xlabel_y_coordinate=-0.25,
        labelsize="large",
        ticklabelsize="medium",
    )
    for ax in np.atleast_1d(axes):
        ax.set_xlim(-0.02, 1.02)
        ax.set_xticks(
            [0, 0.5, 1.0], ["0", "0.5", "1"]
        )  # short labels: neighbouring panels' ends don't collide
    fig.subplots_adjust(wspace=0.25)
    fig.suptitle(title, y=1.12)
    return save(fig, out_dir, name)


def profiles_figure(
    profiles: dict, cis: dict, taus: np.ndarray, colors: dict, out_dir: Path, name: str, title: str
) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    order = method_order(profiles)
    plot_utils.plot_performance_profiles(
        {m: profiles[m] for m in order},
        taus,
        performance_profile_cis={m: cis[m] for m in order},
        colors=colors,
        ax=ax,
        xlabel=r"final success rate ($\tau$)",
        ylabel=r"fraction of runs with success $> \tau$",
        labelsize="medium",
        ticklabelsize="small",
    )
    ax.legend(
        [matplotlib.lines.Line2D([0], [0], color=colors[m], lw=2) for m in order],
        order,
        loc="upper right",
        fontsize="small",
    )
    ax.set_title(title)
    return save(fig, out_dir, name)


def poi_figure(poi: pd.DataFrame, colors: dict, out_dir: Path, name: str, title: str) -> Path:
    pe = {r.pair: np.array([r.value]) for r in poi.itertuples()}
    ie = {r.pair: np.array([[r.lo], [r.hi]]) for r in poi.itertuples()}
    fig, ax = plt.subplots(figsize=(4.5, 0.5 + 0.45 * len(pe)))
    plot_utils.plot_probability_of_improvement(
        pe,
        ie,
        ax=ax,
        colors=[colors.get(y, "k") for y in poi["y"]],
        xlabel="P(X > Y)",
        labelsize="medium",
        ticklabelsize="small",
        xticks=[0, 0.25, 0.5, 0.75, 1.0],
    )
    ax.set_xlim(0, 1)
    ax.axvline(0.5, color="0.5", lw=0.8, ls=":")
    ax.set_title(title)
    return save(fig, out_dir, name)


def sample_efficiency_figure(
    grid: np.ndarray, pe: dict, ie: dict, colors: dict, out_dir: Path, name: str, title: str
) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.8))
    order = method_order(pe)
    plot_utils.plot_sample_efficiency_curve(
        grid,
        {m: pe[m] for m in order},
        {m: ie[m] for m in order},
        algorithms=order,
        colors=colors,
        ax=ax,
        xlabel="environment steps",
        ylabel="IQM success rate",
        labelsize="medium",
        ticklabelsize="small",
        marker=".",
    )
    _steps_formatter(ax)
    ax.set_ylim(-0.03, 1.03)
    ax.legend(loc="upper left", fontsize="small")
    ax.set_title(title)
    return save(fig, out_dir, name)


def reward_prediction_figure(
    df: pd.DataFrame, out_dir: Path, name: str, title: str, reference: dict | None = None
) -> Path:
    """Fig. 4: left, true vs predicted reward along episodes (the probe set's held-out episodes where
    ``df``'s ``episode_set`` is probe, else dataset episodes); right, predicted reward of the policy's
    rollouts in the model from their first frames. A dashed line marks the training data's largest step
    reward (``data_max_reward``) where known."""
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.6), sharey=True)
    data, pol = df[df["source"] == "data"], df[df["source"] == "policy"]
    reference = reference or {}
    sets = set(df["episode_set"]) if "episode_set" in df else {"dataset"}
    what = {"probe": "probe episodes", "dataset": "dataset episodes"}
    episodes = " + ".join(what.get(x, str(x)) for x in sorted(sets, reverse=True))
    ax = axes[0]
    if len(data):
        long = pd.concat(
            [
                data.assign(kind="predicted", reward=data["predicted_reward"]),
                data.assign(kind="true", reward=data["true_reward"]),
            ]
        )
        sns.lineplot(
            long,
            x="t",
            y="reward",
            hue="kind",
            style="kind",
            errorbar=("ci", 95),
            n_boot=300,
            seed=0,
            ax=ax,
            hue_order=["true", "predicted"],
            palette=["0.35", sns.color_palette()[0]],
        )
        ctx = data["context"].dropna()
        if len(ctx):
            ax.axvline(float(ctx.median()), color="0.5", lw=0.8, ls=":")
            ax.text(
                float(ctx.median()), ax.get_ylim()[1], " open loop", va="top", fontsize="small", color="0.4"
            )
        fin = data.sort_values("t").groupby(["run", "episode"])["predicted_reward"].last().mean()
        ref = reference.get("mean_final_predicted_reward_data")
        ax.set_title(f"{episodes}: final predicted {fin:.2f}" + (f" (paper {ref:g})" if ref else ""))
    else:
        ax.text(0.5, 0.5, "no source = data rows", ha="center", transform=ax.transAxes)
    ax = axes[1]
    if len(pol):
        sns.lineplot(
            pol,
            x="t",
            y="predicted_reward",
            errorbar=("ci", 95),
            n_boot=300,
            seed=0,
            ax=ax,
            color=sns.color_palette()[1],
        )
        fin = pol.sort_values("t").groupby(["run", "episode"])["predicted_reward"].last().mean()
        ref = reference.get("mean_final_predicted_reward_policy")
        ax.set_title(f"policy in the model: final {fin:.2f}" + (f" (paper {ref:g})" if ref else ""))
    else:
        ax.text(0.5, 0.5, "no source = policy rows", ha="center", transform=ax.transAxes)
    top = df["data_max_reward"].max() if "data_max_reward" in df else float("nan")
    if pd.notna(top):
        for ax in axes:
            ax.axhline(float(top), color="0.5", lw=0.8, ls="--")
        axes[1].text(
            axes[1].get_xlim()[0], float(top), " largest reward in the data", va="bottom", fontsize="small"
        )
    for ax in axes:
        ax.set_xlabel("time step")
    axes[0].set_ylabel("reward")
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out_dir, name)


def uncertainty_figure(df: pd.DataFrame, out_dir: Path, name: str, title: str) -> Path:
    """Fig. 6: performance gap against normalised expected model uncertainty (Eq. 12)."""
    df = df.copy()
    df["u_norm"] = df["expected_uncertainty"] / df.groupby("run")["expected_uncertainty"].transform("max")
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.5))
    ax = axes[0]
    sc = ax.scatter(df["u_norm"], df["performance_gap"], c=df["episodes"], cmap="viridis", s=14)
    fig.colorbar(sc, ax=ax, label="online episodes")
    pos = df[df["u_norm"] > 0]
    if len(pos):
        c = float((pos["performance_gap"] / pos["u_norm"]).max())
        xs = np.linspace(0, 1, 20)
        ax.plot(xs, c * xs, color="0.3", ls="--", lw=1, label=f"bound {c:.2g} x u")
        ax.legend(loc="upper left", fontsize="small")
    ax.set_xlabel("expected model uncertainty (normalised)")
    ax.set_ylabel("performance gap")
    ax = axes[1]
    for i, (run, g) in enumerate(df.groupby("run")):
        g = g.sort_values("episodes")
        gap_n = g["performance_gap"] / max(1e-12, float(df["performance_gap"].abs().max()))
        ax.plot(
            g["episodes"],
            g["u_norm"],
            color=sns.color_palette()[0],
            lw=1.2,
            label="uncertainty" if i == 0 else None,
        )
        ax.plot(
            g["episodes"],
            gap_n,
            color=sns.color_palette()[3],
            lw=1.2,
            ls="--",
            label="performance gap" if i == 0 else None,
        )
    ax.set_xlabel("online episodes")
    ax.set_ylabel("normalised")
    ax.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out_dir, name)


def action_uncertainty_figure(df: pd.DataFrame, out_dir: Path, name: str, title: str) -> Path:
    """u along rollouts of random, perturbed policy (noise std 0.3, 0.1) and policy actions over u along the
    data's actions, one panel each, per measure, against gradient steps (mean over runs; 1.0: the measure
    cannot tell them apart)."""
    panels = ("random", "perturbed_0.3", "perturbed_0.1", "policy")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.5), sharey=True)
    for ax, source in zip(axes, panels):
        col = f"{source}_over_data"
        ax.set_title(f"{source.replace('_', ' std ')} / data", fontsize="medium")
        if df[col].isna().all():  # not measured (no actor)
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
            continue
        sns.lineplot(
            df,
            x="grad_step",
            y=col,
            hue="measure",
            style="selected",
            errorbar=None,
            marker="o",
            ax=ax,
            style_order=[True, False],
        )
        ax.axhline(1.0, color="0.4", lw=1, ls=":")
        ax.set_xlabel("gradient step")
        ax.legend(fontsize="x-small")
    axes[0].set_ylabel("mean u over the data's")
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, out_dir, name)
