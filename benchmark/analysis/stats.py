"""Statistics over runs, all intervals from rliable's stratified bootstrap (95%, percentile method).

Step alignment. A run is evaluated at its own environment steps; to average runs whose evaluations
fall at different steps, or that stopped at different points, every run is put on one grid: its value
at grid step g is its most recent evaluation at or before g, and it has no value (NaN) before its
first evaluation or after its last. A grid point's mean and CI use the runs that have a value there;
``n_runs`` says how many, so where a curve rests on fewer runs than the group holds it is flagged
(drawn dashed in the figures), never silently dropped.

Final scores. A run's final success is the mean ``eval_success`` of its last ``window`` evaluations;
next to it, ``last_third``: the mean over the evaluations of the last third of its online phase (those
after at least 2/3 of its online episodes), which a single flipping evaluation moves less. Only finished
runs (status ``done``) count unless ``include_unfinished``; the others are listed.

Aggregates over tasks. rliable wants, per method, a (runs x tasks) matrix. Runs of different tasks
are independent, so the matrix is built by position: the j-th run of each task (by seed) forms row j,
with as many rows as the task with the fewest runs; runs beyond that, and tasks a method has no run on,
are reported as flags.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rliable import library as rly
from rliable import metrics as rlm


def iqm_per_point(x: np.ndarray) -> np.ndarray:
    """rliable's ``aggregate_iqm`` (scipy's 25% ``trim_mean`` over all runs and tasks) of x[..., j] for
    every j at once: sort, drop int(n/4) values at each end, average. The same numbers (tested against
    rliable); scipy's per-call overhead (~1 ms) made bootstraps of thousands of replications take minutes."""
    a = np.sort(x.reshape(-1, x.shape[-1]), axis=0)
    k = int(0.25 * a.shape[0])
    return a[k : a.shape[0] - k].mean(axis=0)


def iqm(x: np.ndarray) -> float:
    """rliable's ``aggregate_iqm`` of a (runs x tasks) matrix (see iqm_per_point)."""
    return float(iqm_per_point(np.asarray(x, float).reshape(-1, 1))[0])


AGGREGATES = {
    "IQM": iqm,
    "Mean": rlm.aggregate_mean,
    "Median": rlm.aggregate_median,
    "Optimality gap": rlm.aggregate_optimality_gap,
}


@dataclass
class Flags:
    """Things the reader must know about the data behind a number (shown in the report)."""

    items: list[str] = field(default_factory=list)

    def add(self, msg: str) -> None:
        if msg not in self.items:
            self.items.append(msg)


def _rs(seed: int) -> np.random.RandomState:
    return np.random.RandomState(seed)


class _seeded:
    """rliable's bootstraps draw their indices from numpy's global RNG (``np.random.choice``), whatever
    ``random_state`` says; seed it for the call and put the caller's state back afterwards."""

    def __init__(self, seed: int):
        self.seed = seed

    def __enter__(self):
        self.state = np.random.get_state()
        np.random.seed(self.seed)
        self.w = warnings.catch_warnings()
        self.w.__enter__()
        warnings.simplefilter("ignore", FutureWarning)  # arch: random_state is deprecated (rliable's call)
        warnings.simplefilter("ignore", RuntimeWarning)  # empty slices in resamples

    def __exit__(self, *exc):
        self.w.__exit__(*exc)
        np.random.set_state(self.state)


def _interval_estimates(score_dict, func, reps: int, seed: int):
    """rliable.library.get_interval_estimates (percentile, 95%), reproducible for a given seed."""
    with _seeded(seed):
        return rly.get_interval_estimates(score_dict, func, reps=reps, random_state=_rs(seed))


# ---------------------------------------------------------------------------- alignment
def step_grid(steps: list[np.ndarray], max_points: int = 100) -> np.ndarray:
    """The union of the runs' evaluation steps, thinned to at most ``max_points`` (first and last kept)."""
    if max_points < 2:
        raise ValueError(f"max_points must be >= 2, got {max_points}")
    allsteps = np.unique(np.concatenate([np.asarray(s, float) for s in steps])) if steps else np.array([])
    if len(allsteps) <= max_points:
        return allsteps
    idx = np.unique(np.round(np.linspace(0, len(allsteps) - 1, max_points)).astype(int))
    return allsteps[idx]


def align(runs: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> np.ndarray:
    """(steps, values) per run -> (n_runs, len(grid)): the last value at or before each grid step, NaN
    before a run's first evaluation and after its last."""
    out = np.full((len(runs), len(grid)), np.nan)
    for i, (s, v) in enumerate(runs):
        s, v = np.asarray(s, float), np.asarray(v, float)
        order = np.argsort(s, kind="stable")
        s, v = s[order], v[order]
        if len(s) == 0:
            continue
        idx = np.searchsorted(s, grid, side="right") - 1
        ok = (idx >= 0) & (grid <= s[-1])
        out[i, ok] = v[idx[ok]]
    return out


def curve_with_ci(matrix: np.ndarray, reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean over runs at each grid point with a stratified-bootstrap 95% CI, from an aligned
    (n_runs, n_grid) matrix (NaN = no value). Columns: mean, lo, hi, n_runs."""
    n_grid = matrix.shape[1]
    mean, lo, hi = np.full(n_grid, np.nan), np.full(n_grid, np.nan), np.full(n_grid, np.nan)
    present = ~np.isnan(matrix)
    n_runs = present.sum(0)
    # Grid points with the same set of runs are bootstrapped together (one rliable call per set).
    keys = [tuple(np.flatnonzero(present[:, j])) for j in range(n_grid)]
    for key in dict.fromkeys(keys):
        if not key:
            continue
        cols = [j for j in range(n_grid) if keys[j] == key]
        sub = matrix[np.ix_(list(key), cols)][:, None, :]  # (runs, 1 task, points)
        pe, ie = _interval_estimates({"m": sub}, lambda x: np.mean(x, axis=(0, 1)), reps, seed)
        mean[cols], lo[cols], hi[cols] = pe["m"], ie["m"][0], ie["m"][1]
    return pd.DataFrame({"mean": mean, "lo": lo, "hi": hi, "n_runs": n_runs})


def learning_curves(
    evals: pd.DataFrame,
    by: list[str],
    max_points: int = 100,
    reps: int = 2000,
    seed: int = 0,
    x: str = "env_steps",
    value: str = "eval_success",
) -> pd.DataFrame:
    """One curve of ``value`` per group of ``by`` (e.g. method, task): columns ``by`` + step, mean, lo,
    hi, n_runs, of_runs."""
    out = []
    for key, g in evals.groupby(by, observed=True, sort=True):
        per_run = [(r[x].to_numpy(), r[value].to_numpy()) for _, r in g.groupby("run", observed=True)]
        grid = step_grid([s for s, _ in per_run], max_points)
        c = curve_with_ci(align(per_run, grid), reps, seed)
        c.insert(0, "step", grid)
        for k, v in zip(by, key if isinstance(key, tuple) else (key,)):
            c.insert(0, k, v)
        c["of_runs"] = len(per_run)
        out.append(c)
    cols = by + ["step", "mean", "lo", "hi", "n_runs", "of_runs"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


# ---------------------------------------------------------------------------- final scores
def final_scores(
    evals: pd.DataFrame,
    runs: pd.DataFrame,
    window: int = 1,
    include_unfinished: bool = False,
    flags: Flags | None = None,
) -> pd.DataFrame:
    """One row per run: its identity and ``final`` (mean eval_success over its last ``window``
    evaluations)."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    flags = flags if flags is not None else Flags()
    ev = evals.sort_values(["run", "env_steps", "grad_step"], kind="stable")
    last = ev.groupby("run", observed=True)["eval_success"].apply(lambda s: s.iloc[-window:].mean())
    fin = runs.set_index("run").join(last.rename("final"), how="left")
    fin = fin.join(last_third(ev).rename("last_third"), how="left")
    if "eval_objects" in ev and ev["eval_objects"].notna().any():  # Kitchen: objects in goal, 0-4
        objects = ev.groupby("run", observed=True)["eval_objects"].apply(lambda s: s.iloc[-window:].mean())
        fin = fin.join(objects.rename("final_objects"), how="left")
        fin = fin.join(last_third(ev, "eval_objects").rename("last_third_objects"), how="left")
    fin = fin.reset_index()
    no_eval = fin[fin["final"].isna()]
    for r in no_eval.itertuples():
        flags.add(f"{r.run} ({r.status}) has no evaluation yet: not in final scores")
    fin = fin[fin["final"].notna()]
    if not include_unfinished:
        unfinished = fin[fin["status"] != "done"]
        for r in unfinished.itertuples():
            flags.add(
                f"{r.run} is {r.status}: not in final scores (curves only; --include-unfinished counts it)"
            )
        fin = fin[fin["status"] == "done"]
    return fin.reset_index(drop=True)


def last_third(evals: pd.DataFrame, value: str = "eval_success") -> pd.Series:
    """Per run: the mean ``value`` of its online evaluations (``episodes`` > 0) made after at least
    2/3 of the online episodes it has run; NaN for a run without an online evaluation."""
    online = evals[evals["episodes"] > 0]
    if not len(online):
        return pd.Series(dtype=float)
    cut = online.groupby("run", observed=True)["episodes"].transform("max") * 2.0 / 3.0
    return online[online["episodes"] >= cut].groupby("run", observed=True)[value].mean()


def regret(metrics: pd.DataFrame) -> pd.Series:
    """CORL's fine-tuning regret per run: the mean over its online training episodes of 1 - success
    (``episode_success`` of the online rows); runs without an online episode are left out."""
    online = metrics[(metrics["phase"] == "online") & metrics["episode_success"].notna()]
    return (1.0 - online.groupby("run", observed=True)["episode_success"].mean()).rename("regret")


def score_matrices(
    final: pd.DataFrame, tasks: list[str] | None = None, flags: Flags | None = None, value: str = "final"
) -> tuple[dict[str, np.ndarray], list[str]]:
    """{method: (runs x tasks) array} over ``tasks`` (default: every task in ``final``), rows by position."""
    flags = flags if flags is not None else Flags()
    tasks = sorted(final["task"].unique()) if tasks is None else list(tasks)
    out = {}
    for method, g in final.groupby("method", sort=True, observed=True):
        cols, missing = [], [t for t in tasks if t not in set(g["task"])]
        if missing:
            flags.add(
                f"{method}: no finished run on {', '.join(missing)}; left out of the aggregates over "
                f"{', '.join(tasks)}"
            )
            continue
        per_task = [g[g["task"] == t].sort_values("seed")[value].to_numpy() for t in tasks]
        k = min(len(v) for v in per_task)
        for t, v in zip(tasks, per_task):
            if len(v) > k:
                flags.add(
                    f"{method} on {t}: {len(v) - k} of {len(v)} runs beyond the {k} every task has are "
                    f"left out of the aggregates (rliable needs as many runs per task)"
                )
            cols.append(v[:k])
        out[method] = np.stack(cols, axis=1)
    return out, tasks


def aggregates(score_dict: dict[str, np.ndarray], reps: int = 2000, seed: int = 0) -> pd.DataFrame:
    """IQM, mean, median and optimality gap with 95% CIs: rows method, metric, value, lo, hi, runs, tasks."""
    funcs = list(AGGREGATES.values())
    rows = []
    if not score_dict:
        return pd.DataFrame(columns=["method", "metric", "value", "lo", "hi", "runs", "tasks"])
    pe, ie = _interval_estimates(score_dict, lambda x: np.array([f(x) for f in funcs]), reps, seed)
    for m, scores in score_dict.items():
        for i, name in enumerate(AGGREGATES):
            rows.append(
                dict(
                    method=m,
                    metric=name,
                    value=pe[m][i],
                    lo=ie[m][0, i],
                    hi=ie[m][1, i],
                    runs=scores.shape[0],
                    tasks=scores.shape[1],
                )
            )
    return pd.DataFrame(rows)


def performance_profiles(
    score_dict: dict[str, np.ndarray], taus: np.ndarray, reps: int = 2000, seed: int = 0
):
    """rliable score distributions: ({method: fraction of runs with score > tau},
    {method: (2, len(taus)) CIs})."""
    with _seeded(seed):
        return rly.create_performance_profile(score_dict, taus, reps=reps)


def poi_statistic(x: np.ndarray, y: np.ndarray) -> float:
    """rliable's ``metrics.probability_of_improvement`` (the Mann-Whitney U of each task over
    n_x * n_y, averaged over tasks: P(X > Y) + P(X = Y) / 2), computed on all tasks at once. It is the
    same number (tested against rliable); rliable's loop of scipy calls costs ~1 ms per task, which
    made the bootstrap (reps x tasks x baselines calls) take minutes."""
    gt = (x[:, None, :] > y[None, :, :]).mean(axis=(0, 1))
    eq = (x[:, None, :] == y[None, :, :]).mean(axis=(0, 1))
    return float(np.mean(gt + 0.5 * eq))


def probability_of_improvement(
    score_dict: dict[str, np.ndarray], reference: str, reps: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """P(reference > other) for every other method, with 95% CIs (rliable's stratified independent
    bootstrap)."""
    cols = ["pair", "x", "y", "value", "lo", "hi"]
    if reference not in score_dict:
        return pd.DataFrame(columns=cols)
    pairs = {f"{reference},{m}": [score_dict[reference], s] for m, s in score_dict.items() if m != reference}
    if not pairs:
        return pd.DataFrame(columns=cols)
    pe, ie = _interval_estimates(pairs, lambda x, y: np.array([poi_statistic(x, y)]), reps, seed)
    return pd.DataFrame(
        [
            dict(
                pair=p,
                x=p.split(",")[0],
                y=p.split(",", 1)[1],
                value=float(pe[p][0]),
                lo=float(ie[p][0, 0]),
                hi=float(ie[p][1, 0]),
            )
            for p in pairs
        ],
        columns=cols,
    )


def iqm_over_steps(scores: dict[str, np.ndarray], reps: int = 2000, seed: int = 0):
    """Sample efficiency: {method: (runs x tasks x points)} -> IQM per point and (2, points) CIs."""
    if not scores:
        return {}, {}
    return _interval_estimates(scores, iqm_per_point, reps, seed)


def sample_efficiency_scores(
    evals: pd.DataFrame, final: pd.DataFrame, tasks: list[str], n_points: int = 20, flags: Flags | None = None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The runs of ``final`` (runs x tasks by position, as score_matrices) aligned on a common grid of
    ``n_points`` env steps from 0 to the last step every such run reached. Returns
    (grid, {method: 3D array})."""
    flags = flags if flags is not None else Flags()
    sel = evals[evals["run"].isin(set(final["run"]))]
    if sel.empty:
        return np.array([]), {}
    ends = sel.groupby("run", observed=True)["env_steps"].max()
    end = float(ends.min())
    if (ends > end).any() and ends.max() > 0:
        flags.add(
            f"sample-efficiency curves over {', '.join(tasks)} stop at {end:,.0f} env steps, the last step "
            f"every run reached (longest: {ends.max():,.0f})"
        )
    grid = np.linspace(0.0, end, n_points) if end > 0 else np.array([0.0])
    out = {}
    by_run = {rid: r for rid, r in sel.groupby("run", observed=True)}
    for method, g in final.groupby("method", sort=True, observed=True):
        if any(t not in set(g["task"]) for t in tasks):
            continue
        per_task = [g[g["task"] == t].sort_values("seed")["run"].tolist() for t in tasks]
        k = min(len(v) for v in per_task)
        arr = np.empty((k, len(tasks), len(grid)))
        for j, run_ids in enumerate(per_task):
            for i, rid in enumerate(run_ids[:k]):
                r = by_run[rid]
                arr[i, j] = align([(r["env_steps"].to_numpy(), r["eval_success"].to_numpy())], grid)[0]
        if np.isnan(arr).any():  # a run whose first evaluation comes after step 0: start at its first value
            arr = pd.DataFrame(arr.reshape(-1, len(grid)).T).bfill().to_numpy().T.reshape(arr.shape)
            flags.add(
                f"{method}: some runs have no evaluation at step 0; their first evaluation stands in "
                "before it"
            )
        out[method] = arr
    return grid, out
