"""Synthetic run directories in the results format, for tests, the read benchmark and trying the report.

``write_run`` writes one run with known evaluation numbers; ``write_suite`` a whole fake sweep (every
paper method, MetaWorld and Kitchen tasks, seeds, ablations, a data-size study, ragged, failed and
running runs, GIFs and model diagnostics). The numbers are made up: they only exercise the analysis.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from benchmark.core.rundir import METRICS_COLUMNS as BASE_COLUMNS
from benchmark.tasks import PAPER_METAWORLD_RETURNS


def write_run(
    root: str | Path,
    algo: str,
    task: str,
    seed: int,
    evals: list[tuple[int, float]],
    *,
    base_algo: str | None = None,
    profile: str = "smoke",
    dataset: str | None = None,
    status: str = "done",
    episode_steps: int = 200,
    offline_steps: int = 300,
    grad_per_episode: int = 20,
    extra_columns: tuple[str, ...] = ("bc_loss",),
    subdir: str | None = None,
    gif: bool = False,
    objects: list[float] | None = None,
) -> Path:
    """One run directory under ``root`` (``<task>/<algo>/seed_<seed>`` unless ``subdir``).

    ``evals``: (episodes, eval_success) pairs; env_steps = episodes * episode_steps. Online rows are
    written for every episode up to the last evaluation. ``objects``: Kitchen's ``eval_objects`` (0-4) of
    each evaluation, in the order of ``evals``."""
    d = Path(root) / (subdir or f"{task}/{algo}/seed_{seed}")
    d.mkdir(parents=True, exist_ok=True)
    dataset = dataset or task
    cfg = {
        "task": task,
        "algo": algo,
        "base_algo": base_algo or algo,
        "seed": seed,
        "profile": profile,
        "dataset": {"path": f"/data/datasets/{dataset}", "checksum": "0" * 64, "episodes": 10},
        "agent_config": {},
        "schedule": {},
    }
    (d / "config.json").write_text(json.dumps(cfg))
    st = {"status": status}
    if status == "failed":
        st["error"] = "non-finite loss at gradient step 1234"
    (d / "status.json").write_text(json.dumps(st))
    cols = BASE_COLUMNS + list(extra_columns) + (["eval_objects"] if objects is not None else [])
    by_episode = dict(zip((e for e, _ in evals), objects or []))
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(100, offline_steps + 1, 100):
        rows.append(
            dict(
                phase="offline",
                grad_step=g,
                env_steps=0,
                episodes=0,
                **{c: float(rng.random()) for c in extra_columns},
            )
        )
    ev = dict(evals)
    last = max(ev) if ev else 0
    for ep in range(0, last + 1):
        gs = offline_steps + ep * grad_per_episode
        if ep > 0:
            rows.append(
                dict(
                    phase="online",
                    grad_step=gs,
                    env_steps=ep * episode_steps,
                    episodes=ep,
                    episode_return=float(rng.random()),
                    episode_success=float(rng.random() > 0.5),
                )
            )
        if ep in ev:
            rows.append(
                dict(
                    phase="eval",
                    grad_step=gs,
                    env_steps=ep * episode_steps,
                    episodes=ep,
                    eval_success=ev[ep],
                    eval_return=100.0 * ev[ep],
                    **({"eval_objects": by_episode[ep]} if ep in by_episode else {}),
                )
            )
    with open(d / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(rows)
    if gif:
        import imageio.v3 as iio

        (d / "gifs").mkdir(exist_ok=True)
        for ep in sorted(ev)[-2:]:
            t = np.arange(20)[:, None, None]
            x = np.arange(64)[None, None, :]
            frame = np.zeros((20, 64, 64, 3), np.uint8)
            frame[..., 0] = ((x + 3 * t) % 64 * 4).astype(np.uint8)
            frame[..., 1] = 80 + 40 * seed
            frame[..., 2] = (np.arange(64)[None, :, None] * 4).astype(np.uint8)
            iio.imwrite(d / "gifs" / f"eval_{ep:06d}.gif", frame, extension=".gif", duration=100, loop=0)
    return d


def write_reward_prediction(
    run: Path,
    rng: np.random.Generator,
    episodes: int = 4,
    length: int = 60,
    context: int = 20,
    grad_step: int = 300,
) -> None:
    rows = []
    for src in ("data", "policy"):
        for e in range(episodes):
            steps = np.sort(rng.choice(np.arange(5, length - 5), 4, replace=False))
            true = np.searchsorted(steps, np.arange(length), side="right").astype(float)
            for t in range(length):
                pred = true[t] + rng.normal(0, 0.15)
                rows.append(
                    dict(
                        grad_step=grad_step,
                        phase="offline",
                        source=src,
                        episode=e,
                        t=t,
                        context=context,
                        true_reward=true[t] if src == "data" else "",
                        predicted_reward=round(pred, 4),
                    )
                )
    (run / "diagnostics").mkdir(exist_ok=True)
    with open(run / "diagnostics" / "reward_prediction.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_uncertainty(
    run: Path, rng: np.random.Generator, points: int = 15, episode_steps: int = 280
) -> None:
    rows = []
    for i in range(points):
        u = 1.0 * np.exp(-i / 5) + 0.05 * rng.random()
        rows.append(
            dict(
                grad_step=1000 + 50 * i * 5,
                phase="offline" if i == 0 else "online",
                episodes=5 * i,
                env_steps=5 * i * episode_steps,
                expected_uncertainty=round(u, 4),
                performance_gap=round(3.0 * u * rng.uniform(0.5, 1.0), 4),
                eval_success=round(1 - u, 3),
                policy_return_source="eval_episodes",
                policy_episodes=10,
            )
        )
    (run / "diagnostics").mkdir(exist_ok=True)
    with open(run / "diagnostics" / "uncertainty.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


METHOD_SKILL = {
    "moto": 0.9,
    "moto-no-unc": 0.75,
    "moto-no-bc": 0.6,
    "moto-no-bc-no-unc": 0.5,
    "dreamerv2": 0.65,
    "lompo": 0.1,
    "combo": 0.12,
    "cql": 0.3,
    "iql": 0.35,
    "sac": 0.15,
    "bc": 0.25,
}
METAWORLD = list(PAPER_METAWORLD_RETURNS)  # the paper's ten MetaWorld tasks


def _curve(skill: float, n_evals: int, every: int, rng) -> list[tuple[int, float]]:
    out = []
    for i in range(n_evals + 1):
        frac = i / max(1, n_evals)
        p = skill * (1 - np.exp(-4 * frac)) + 0.05 * rng.standard_normal()
        out.append((i * every, float(np.clip(np.round(p * 10) / 10, 0, 1))))
    return out


def write_suite(root: str | Path, seeds: int = 3, gifs: bool = True) -> Path:
    """A fake sweep shaped like the paper's (see the module doc)."""
    root = Path(root)
    rng = np.random.default_rng(0)
    for algo, skill in METHOD_SKILL.items():
        base = "moto" if algo.startswith("moto") else algo
        tasks = [f"metaworld/{t}" for t in METAWORLD] if base == algo else []
        tasks += ["kitchen/mixed", "kitchen/partial"]
        for task in tasks:
            kitchen = task.startswith("kitchen")
            for s in range(seeds):
                sk = skill * (0.8 if task.endswith("partial") else 1.0) * rng.uniform(0.7, 1.1)
                ev = _curve(min(sk, 1), 10, 5, rng)
                status = "done"
                if algo == "iql" and task == "metaworld/hammer" and s == 2:
                    status, ev = "failed", ev[:4]
                if algo == "moto" and task == "kitchen/partial" and s == 2:
                    status, ev = "running", ev[:7]
                write_run(
                    root,
                    algo,
                    task,
                    s,
                    ev,
                    base_algo=base,
                    status=status,
                    episode_steps=280 if kitchen else 200,
                    gif=gifs and s == 0,
                    extra_columns=("model_loss", "actor_loss")
                    if base in ("moto", "dreamerv2", "lompo", "combo")
                    else ("bc_loss",),
                )
    for n in (100, 250):
        for s in range(seeds):
            ev = _curve(0.9 * rng.uniform(0.8, 1.1), 10, 5, rng)
            write_run(
                root,
                "moto",
                "kitchen/mixed",
                s,
                ev,
                dataset=f"kitchen/mixed-{n}ep-seed0",
                episode_steps=280,
                subdir=f"kitchen/mixed/moto/mixed-{n}ep-seed0/seed_{s}",
            )
    for s in range(seeds):
        d = root / "kitchen/partial/moto" / f"seed_{s}"
        write_reward_prediction(d, rng)
        write_uncertainty(d, rng)
    return root
