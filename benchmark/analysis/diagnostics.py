"""Model diagnostics that world-model agents write, and their readers (paper Fig. 4 and Fig. 6).

An agent writes these into ``<run_dir>/diagnostics/`` (``context.run_dir``), appending rows with a
header line first; the columns are ``DIAGNOSTICS_COLUMNS`` (``algorithms/contract.py``, their one
definition). The analysis reads them by header: every listed column must be there; extra ones are ignored.

``reward_prediction.csv`` (Fig. 4, App. A.1: does the model predict rewards the data never reached?)
One row per predicted time step.

    grad_step         int    gradient step of the model when the prediction was made
    phase             str    offline | online (the protocol phase at that step)
    source            str    data   = a dataset episode: the model filters its first ``context``
                                      frames, then predicts open-loop under the episode's own actions
                             policy = the policy acting inside the model from a posterior state of a
                                      dataset episode (no true reward exists: leave true_reward empty)
    episode           int    which episode (an index within this evaluation)
    t                 int    time step within the episode
    context           int    frames observed before open-loop prediction starts
    true_reward       float  the recorded reward at t (empty for source = policy)
    predicted_reward  float  the reward head's mean prediction at t
    episode_set       str    dataset = the episode is a training-data episode
                             probe   = a held-out episode of the run's probe set (``<dataset>-probe``:
                                       Kitchen episodes that do all four objects, which ``partial``'s data
                                       never holds; source policy: the policy from its first frames)
                             (files written before this column: dataset)
    data_max_reward   float  the largest step reward in the run's training data (older files: empty)

The analysis takes, per run, the rows of the last ``grad_step`` of the offline phase (the paper's
"end of offline pre-training"; the last grad_step of all when there are no offline rows); Fig. 4 and
``reward_generalisation_summary`` use the probe episodes where a run has them, else the dataset's.

``uncertainty.csv`` (Fig. 6, App. B, Eq. 12: the performance gap is bounded by the expected model
uncertainty). One row per measurement during fine-tuning.

    grad_step             int    gradient step
    phase                 str    offline | online
    episodes              int    online episodes so far
    env_steps             int    environment steps so far
    expected_uncertainty  float  epsilon_u of Eq. 12: the mean over j, t of u(s_j^t, a_{j+t}) (by the run's
                                 uncertainty measure) along H-step model rollouts of expert actions
                                 from posterior states of expert episodes
    performance_gap       float  J(expert) - J(policy): the expert episodes' mean return minus the
                                 policy's mean evaluation return at this point
    eval_success          float  the policy's evaluation success at this point
    policy_return_source  str    where J(policy) came from (eval_episodes: this evaluation's episodes)
    policy_episodes       int    how many episodes J(policy) averages

``uncertainty_actions.csv`` (does u tell the data's actions from others? MOTO's conservatism needs it to).
One row per measurement and uncertainty measure: from the posterior states of dataset episodes, H-step
model rollouts under the data's own actions, the policy's, the policy's perturbed by Gaussian noise and
uniform random actions; the mean u of each.

    grad_step, phase, episodes, env_steps   as above
    measure           str    logits | log_probs | probs | sample_log_prob | meandis (``RSSM.disagreement``)
    selected          bool   the measure the run penalises with (``MOTOConfig.uncertainty``)
    data, policy, random     float  mean u along rollouts of each action source
    perturbed_0.1, perturbed_0.3  float  the same for the policy's actions plus N(0, 0.1^2) / N(0, 0.3^2)
                                  noise, clipped to [-1, 1]
    <source>_over_data       float  each source's ratio over data (policy, random, perturbed_0.1,
                                    perturbed_0.3; 1.0: the measure cannot tell them apart)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from algorithms.contract import DIAGNOSTICS_COLUMNS

_ACTION_COLUMNS = DIAGNOSTICS_COLUMNS["uncertainty_actions.csv"]
# the action sources compared with the data's: policy, random, perturbed_0.1, perturbed_0.3
ACTION_SOURCES = [c for c in _ACTION_COLUMNS if f"{c}_over_data" in _ACTION_COLUMNS]


# Columns added to a file after runs had written it, with what an older file means by their absence.
ADDED_COLUMNS = {"reward_prediction.csv": {"episode_set": "dataset", "data_max_reward": float("nan")}}


def _read(path: str | Path) -> pd.DataFrame:
    """A diagnostics file by its name's columns (``DIAGNOSTICS_COLUMNS``); a missing column is a
    ValueError, except those of ``ADDED_COLUMNS``, which get their default."""
    df = pd.read_csv(path, on_bad_lines="skip")
    added = ADDED_COLUMNS.get(Path(path).name, {})
    for c, default in added.items():
        df[c] = df[c].fillna(default) if c in df.columns else default
    missing = [c for c in DIAGNOSTICS_COLUMNS[Path(path).name] if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; the format is "
            f"DIAGNOSTICS_COLUMNS in algorithms/contract.py"
        )
    return df


def read_reward_prediction(path: str | Path) -> pd.DataFrame:
    """The Fig. 4 snapshot of one run: rows of its last offline grad_step (else its last grad_step)."""
    df = _read(path)
    for c in ("grad_step", "episode", "t", "context", "true_reward", "predicted_reward", "data_max_reward"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df = df[df["grad_step"].notna() & df["predicted_reward"].notna()]
    if df.empty:
        return df
    off = df[df["phase"] == "offline"]
    step = (off if len(off) else df)["grad_step"].max()
    return df[df["grad_step"] == step].reset_index(drop=True)


def fig4_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows Fig. 4 shows of one run's snapshot: its probe episodes' where it has any, else the
    dataset episodes'."""
    probe = df[df["episode_set"] == "probe"]
    return probe if len(probe) else df[df["episode_set"] != "probe"]


def final_per_episode(df: pd.DataFrame) -> pd.DataFrame:
    """The last row (largest t) of each (source, episode): the final predicted and true rewards."""
    return df.sort_values("t").groupby(["source", "episode"], sort=False).tail(1)


REWARD_GENERALISATION_COLUMNS = [
    "run",
    "grad_step",
    "phase",
    "episode_set",
    "episodes",
    "final_true_reward",
    "final_predicted_reward",
    "max_predicted_reward",
    "final_policy_reward",
    "data_max_reward",
    "dataset_final_predicted_reward",
]


def reward_generalisation_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per run of ``read_reward_prediction`` snapshots (a ``run`` column), Fig. 4's numbers: along the
    episodes of ``fig4_rows`` (``episode_set``: probe or dataset), the means over episodes of the final
    true reward, the final predicted reward under the episodes' own actions and its largest value along
    each episode, and the final predicted reward of the policy's rollouts in the model (source policy);
    the training data's largest step reward; the final predicted reward along the dataset episodes."""
    rows = []
    for run, g in df.groupby("run", sort=False):
        shown = fig4_rows(g)
        data, pol = shown[shown["source"] == "data"], shown[shown["source"] == "policy"]
        final = final_per_episode(shown)
        fin_data, fin_pol = final[final["source"] == "data"], final[final["source"] == "policy"]
        own = g[(g["episode_set"] != "probe") & (g["source"] == "data")]
        rows.append(
            dict(
                run=run,
                grad_step=int(g["grad_step"].max()),
                phase=g["phase"].iloc[0],
                episode_set=shown["episode_set"].iloc[0] if len(shown) else "",
                episodes=int(data["episode"].nunique() if len(data) else pol["episode"].nunique()),
                final_true_reward=fin_data["true_reward"].mean(),
                final_predicted_reward=fin_data["predicted_reward"].mean(),
                max_predicted_reward=data.groupby("episode")["predicted_reward"].max().mean(),
                final_policy_reward=fin_pol["predicted_reward"].mean(),
                data_max_reward=g["data_max_reward"].max(),
                dataset_final_predicted_reward=final_per_episode(own)["predicted_reward"].mean(),
            )
        )
    return pd.DataFrame(rows, columns=REWARD_GENERALISATION_COLUMNS)


def read_uncertainty(path: str | Path) -> pd.DataFrame:
    df = _read(path)
    for c in df.columns:
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.dropna(subset=["expected_uncertainty", "performance_gap"]).reset_index(drop=True)


def read_action_fit(path: str | Path) -> pd.DataFrame:
    """One run's ``action_fit.csv``: the actor's error on the demonstrations per (grad_step, episode, t)."""
    df = _read(path)
    for c in ("grad_step", "episode", "t", "action_error"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return df.dropna(subset=["grad_step", "action_error"]).reset_index(drop=True)


def action_fit_summary(df: pd.DataFrame, early: int = 10) -> pd.DataFrame:
    """Per run: the mean action error over the demonstrations' first ``early`` steps and over the rest,
    at the end of the offline phase (its last offline grad_step) and at the last measurement."""
    rows = []
    for run, g in df.groupby("run", sort=False):
        off = g[g["phase"] == "offline"]
        for at, step in (
            ("offline end", off["grad_step"].max() if len(off) else None),
            ("last", g["grad_step"].max()),
        ):
            if step is None:
                continue
            s = g[g["grad_step"] == step]
            rows.append(
                dict(
                    run=run,
                    at=at,
                    grad_step=int(step),
                    error_first_steps=s.loc[s["t"] < early, "action_error"].mean(),
                    error_later=s.loc[s["t"] >= early, "action_error"].mean(),
                )
            )
    return pd.DataFrame(rows)


def read_action_uncertainty(path: str | Path) -> pd.DataFrame:
    """Every row of one run's ``uncertainty_actions.csv`` (numbers as floats, ``selected`` as bool)."""
    df = _read(path)
    for c in ("grad_step", "data", *ACTION_SOURCES, *(f"{s}_over_data" for s in ACTION_SOURCES)):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    df["selected"] = df["selected"].astype(str).str.lower() == "true"
    return df.dropna(subset=["grad_step", "data"]).reset_index(drop=True)


def action_uncertainty_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per run and measure, the rows at the end of the offline phase and at the run's last measurement:
    columns run, measure, selected, at (offline_end | last), grad_step, data, each source of
    ``ACTION_SOURCES`` and its ratio over data."""
    parts = []
    for run, g in df.groupby("run"):
        off = g[g["phase"] == "offline"]
        for at, rows in (("offline_end", off), ("last", g)):
            if rows.empty:
                continue
            parts.append(rows[rows["grad_step"] == rows["grad_step"].max()].assign(at=at))
    if not parts:
        return pd.DataFrame()
    cols = ["run", "measure", "selected", "at", "grad_step", "data", *ACTION_SOURCES]
    cols += [f"{s}_over_data" for s in ACTION_SOURCES]
    return pd.concat(parts, ignore_index=True)[cols]
