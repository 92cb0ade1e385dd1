"""Speed and memory figures: ``python -m benchmark.perf <benchmark> [its options]``.

    render      environment steps/s: raw MuJoCo vs our wrapped env, fast vs default rendering
    store       episode-store memory and sampling batches/s
    learners    model-free (JAX) updates/s
    worldmodel  world-model and DreamerV2 update time at the paper's sizes (and MOTO's beside it)
    moto        MOTO's full update next to DreamerV2's (wall and CPU time)
    latent      LOMPO / COMBO updates/s
    run         the whole protocol timed; a full run's hours projected
    gpu-check   the GPU figures in one table, under ten minutes (updates, learners, projected runs)
    versus      whole runs of this tree against another commit's, side by side, and their time ratio

Each is a module of ``benchmark/perf/`` with its own ``--help``. Figures measured so far: docs/performance.md.
"""

from __future__ import annotations

import difflib
import importlib
import sys

from benchmark.core.cli import entry

BENCHMARKS = ("render", "store", "learners", "worldmodel", "moto", "latent", "run", "gpu-check", "versus")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if not argv or argv[0] not in BENCHMARKS:
        close = difflib.get_close_matches(argv[0], BENCHMARKS, n=2, cutoff=0.6) if argv else []
        what = f"unknown benchmark {argv[0]!r}" if argv else "no benchmark named"
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        print(
            f"error: {what}{hint}; one of {', '.join(BENCHMARKS)} (see python -m benchmark.perf --help)",
            file=sys.stderr,
        )
        return 2
    return importlib.import_module(f"benchmark.perf.{argv[0].replace('-', '_')}").main(argv[1:])


if __name__ == "__main__":
    entry(main)
