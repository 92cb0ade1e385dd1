"""How fast run directories are read: ``python -m benchmark.analysis.bench`` prints the figure.

Writes N synthetic run directories (algorithms x tasks x seeds, each with offline rows, one online row
per episode and an evaluation every 10 episodes), then times ``load_runs`` over them (best of 3).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmark.analysis.load import load_runs
from benchmark.analysis.synthetic import METAWORLD, METHOD_SKILL, write_run


def make_runs(root: Path, n: int, episodes: int) -> None:
    algos = list(METHOD_SKILL)
    i = 0
    while i < n:
        algo, task = algos[i % len(algos)], METAWORLD[(i // len(algos)) % len(METAWORLD)]
        seed = i // (len(algos) * len(METAWORLD))
        ev = [(e, min(1.0, e / episodes)) for e in range(0, episodes + 1, 10)]
        write_run(root, algo, f"metaworld/{task}", seed, ev, offline_steps=1000)
        i += 1


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m benchmark.analysis.bench",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--runs", type=int, default=1000, help="run directories to write and read")
    p.add_argument("--episodes", type=int, default=200, help="online episodes per run (one metrics row each)")
    p.add_argument("--repeat", type=int, default=3, help="timed reads; the best is printed")
    a = p.parse_args(argv)
    if a.runs < 1 or a.episodes < 1 or a.repeat < 1:
        p.error("--runs, --episodes and --repeat must be >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        make_runs(root, a.runs, a.episodes)
        print(f"wrote {a.runs} run directories in {time.perf_counter() - t:.1f} s")
        best = float("inf")
        for _ in range(a.repeat):
            t = time.perf_counter()
            res = load_runs(root, progress=False)
            best = min(best, time.perf_counter() - t)
        print(
            f"load_runs: {len(res.runs)} runs, {len(res.metrics):,} metrics rows in {best:.2f} s "
            f"(best of {a.repeat}; {len(res.runs) / best:,.0f} runs/s, {len(res.metrics) / best:,.0f} rows/s)"
        )


if __name__ == "__main__":
    main()
