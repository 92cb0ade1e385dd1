"""``python -m benchmark.perf gpu-check``: the suite's GPU figures in one table, in under ten minutes.

For a machine with one CUDA GPU, the suite installed and the drawer-open dataset
(``python -m benchmark.datasets generate metaworld/drawer-open``). Each row is printed as soon as it is
measured, so a stop (Ctrl-C, SIGTERM, or ``--budget-min`` running out) still leaves the rows so far and
the final table of them:

  update     world-model step and full update (ms) of DreamerV2 and MOTO at the paper's sizes (batch
             16 x 50, fp32) with ``cuda_graph`` off (the eager path) and on (the step captured once and
             replayed, ``algorithms/nets/cuda_graph.py``), the four agents' steps interleaved (same machine
             load for all); ``vs_eager``: eager ms / this row's ms (the speed-up of graphs)
  equality   graph against eager, same seed and batches: the largest relative difference of any metric
             over the 5 updates after the capture, next to two eager runs' own difference (run-to-run
             noise of GPU kernels); ``equal`` when the graph's is at most max(1e-4, 2 x the eager runs').
             ``rng_equal``: the agent's generator state after the updates is the same (exact resume).
             (The graph's Adam is ``capturable``: its bias corrections are float32 on the device, not
             float64 on the host, a relative difference of ~1e-5 in the step size.)
  run        ``perf run``'s projection of a full metaworld/drawer-open run (hours) for moto (cuda_graph
             on, then off), measured before the learners; dreamerv2 and bc after them
  learners   model-free updates/s at the paper's sizes (BC, SAC, CQL, IQL; JAX), update alone

A part or row that fails (a capture error, say) prints an error row and the check goes on; the exit
status is then 1. ``--device cpu --sizes smoke`` runs the same code at tiny sizes anywhere (that is how
it is tested; the ``cuda_graph=on`` rows need CUDA and are left out there).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

from benchmark.core.cli import Parser
from benchmark.perf.common import paper_agent, print_table, random_batch, timed, wm_step


class OutOfTime(Exception):
    pass


class Check:
    """The table so far; ``row`` prints each row at once; ``left`` says how much of the budget remains."""

    def __init__(self, budget_s: float):
        self.rows: list[dict] = []
        self.t0, self.budget_s = time.time(), budget_s

    def row(self, **r) -> None:
        self.rows.append(r)
        print(" | ".join(f"{k}={v}" for k, v in r.items()), flush=True)

    def left(self) -> float:
        return self.budget_s - (time.time() - self.t0)

    def need(self, seconds: float, what: str) -> None:
        if self.left() < seconds:
            raise OutOfTime(
                f"{what} skipped: {self.left():.0f} s of the budget left, it needs ~{seconds:.0f}"
            )


GRAPH_SETTINGS = ("off", "on")
EQUAL_REL = 1e-4  # the graph equals eager when its metrics differ by at most max(this, 2 x eager's own)


def graph_settings(device: str) -> tuple[str, ...]:
    """``cuda_graph`` settings to measure: both on CUDA; off alone elsewhere (``on`` needs CUDA)."""
    return GRAPH_SETTINGS if device == "cuda" else ("off",)


def updates(check: Check, device: str, sizes: str, repeats: int) -> None:
    """World-model step and full update of DreamerV2 and MOTO, eager and graphed, interleaved."""
    import torch

    from algorithms.nets.cuda_graph import GraphedStep
    from benchmark.perf.common import wm_core
    from benchmark.perf.moto import with_bc_batch

    agents = {}
    for algo in ("dreamerv2", "moto"):
        for setting in graph_settings(device):
            agent = paper_agent(algo, device, profile=sizes, cuda_graph=setting)
            req = agent.requests["model"]
            batch = with_bc_batch(random_batch(req.batch, req.length, 4, np.random.default_rng(0)), agent)
            wm_graph = None
            if agent.graphed:  # the world-model step alone, captured the same way as the update
                wm_graph = GraphedStep(lambda b, agent=agent: wm_core(agent, b), generators=[agent.gen])
            try:
                for _ in range(GraphedStep.WARMUP + 2):  # allocations, cuDNN autotuning; capture, a replay
                    agent.update(batch)
                    wm_step(agent, batch, wm_graph)
            except Exception as exc:  # a failed capture: the row says so, the eager rows still come
                check.row(part="update", what=algo, cuda_graph=setting, error=f"{type(exc).__name__}: {exc}")
                continue
            agents[algo, setting] = (agent, batch, wm_graph)
    times = {(key, k): [] for key in agents for k in ("wm", "full")}
    for _ in range(repeats):
        for key, (agent, b, wm_graph) in agents.items():
            times[key, "wm"].append(timed(lambda: wm_step(agent, b, wm_graph), 1, warmup=False)[0])
            times[key, "full"].append(timed(lambda: agent.update(b), 1, warmup=False)[0])
    ms = {key: 1000 * float(np.median(v)) for key, v in times.items()}
    ratio = lambda a, b: round(ms[a, "full"] / ms[b, "full"], 2) if (b, "full") in ms else "-"  # noqa: E731
    for algo, setting in agents:
        check.row(
            part="update",
            what=algo,
            cuda_graph=setting,
            wm_ms=round(ms[(algo, setting), "wm"], 1),
            full_ms=round(ms[(algo, setting), "full"], 1),
            vs_eager=ratio((algo, "off"), (algo, setting)),
            vs_dreamerv2=ratio((algo, setting), ("dreamerv2", setting)),
            torch=torch.__version__,
        )
    del agents
    _free(device)


def equality(check: Check, device: str, sizes: str, compared: int = 5) -> None:
    """Graph against eager (and eager against eager) over the ``compared`` updates after the capture."""
    from algorithms.nets.cuda_graph import GraphedStep

    n = GraphedStep.WARMUP + compared  # eager warm-up, then the capture (one update) and replays
    for algo in ("dreamerv2", "moto"):
        check.need(60, f"the equality check of {algo}")
        runs = []
        try:
            for setting in ("off", "off") + graph_settings(device)[1:]:
                runs.append(_seeded_updates(algo, device, sizes, setting, n))
        except Exception as exc:
            check.row(part="equality", what=algo, error=f"{type(exc).__name__}: {exc}")
            continue
        finally:
            _free(device)
        noise = _max_rel(runs[0][0], runs[1][0])
        row = dict(part="equality", what=algo, updates=compared, eager_vs_eager=f"{noise:.1e}")
        if len(runs) == 3:
            diff = _max_rel(runs[0][0], runs[2][0])
            row.update(
                graph_vs_eager=f"{diff:.1e}",
                equal=diff <= max(EQUAL_REL, 2 * noise),
                rng_equal=bool((runs[0][1] == runs[2][1]).all()),
            )
        else:
            row.update(graph_vs_eager="-", equal="-", rng_equal="-")
        check.row(**row)


def _seeded_updates(algo, device, sizes, setting, n) -> tuple[list[dict], object]:
    """n updates of a fresh agent (seed 0) on seeded random batches: the metrics after the warm-up
    (those of the capture and the replays with graphs on) and the generator's final state."""
    from algorithms.nets.cuda_graph import GraphedStep
    from benchmark.perf.moto import with_bc_batch

    agent = paper_agent(algo, device, profile=sizes, cuda_graph=setting)
    req, rng = agent.requests["model"], np.random.default_rng(1)
    metrics = []
    for _ in range(n):
        batch = with_bc_batch(random_batch(req.batch, req.length, 4, rng), agent)
        metrics.append({k: float(v) for k, v in agent.update(batch).items()})
    return metrics[GraphedStep.WARMUP :], agent.gen.get_state()


def _free(device: str) -> None:
    """Frees the GPU memory of agents just deleted (an agent and its graph form a reference cycle)."""
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def _max_rel(a: list[dict], b: list[dict]) -> float:
    """The largest |x - y| / max(|x|, 1e-6) over every metric of every update."""
    return max(abs(x[k] - y[k]) / max(abs(x[k]), 1e-6) for x, y in zip(a, b) for k in x)


def learners(check: Check, data_dir: str | None, sizes: str, n_updates: int) -> None:
    from benchmark.perf.learners import _store, bench

    store, what = _store("metaworld/drawer-open", data_dir)
    for name in ("bc", "sac", "cql", "iql"):
        check.need(60, f"learner {name}")
        r = bench(name, store, "paper" if sizes == "paper" else "smoke", None, n_updates, 1)
        check.row(
            part="learners",
            what=name,
            updates_per_s=round(r["update_alone/s"], 1),
            compile_s=round(r["compile_s"], 1),
            data=what,
        )


def runs(check: Check, device: str, data_dir: str | None, sizes: str, algos: tuple[str, ...]) -> None:
    """``perf run``'s projections for ``algos`` (world-model agents with each ``cuda_graph`` setting)."""
    from benchmark.perf.run import measure

    offline, log_every = (200, 50) if sizes == "paper" else (4, 2)
    with tempfile.TemporaryDirectory() as tmp:
        todo = [(a, g) for a in algos for g in (graph_settings(device)[::-1] if a != "bc" else ("-",))]
        for algo, setting in todo:
            check.need(150, f"the projected run of {algo} (cuda_graph {setting})")
            try:
                r = measure(
                    algo,
                    "metaworld/drawer-open",
                    "paper" if sizes == "paper" else "smoke",
                    device,
                    data_dir,
                    Path(tmp) / f"{algo}-{setting}",
                    offline,
                    3,
                    1,
                    log_every,
                    overrides=None if setting == "-" else {"cuda_graph": setting},
                )
            except Exception as exc:
                check.row(part="run", what=algo, cuda_graph=setting, error=f"{type(exc).__name__}: {exc}")
                continue
            check.row(
                part="run",
                what=algo,
                cuda_graph=setting,
                full_run_h=r["full run h"],
                offline_upd_per_s=r["offline upd/s"],
                s_per_online_episode=r["s/online episode"],
                measured_s=r["measured s"],
            )


def main(argv=None) -> int:
    p = Parser(
        prog="python -m benchmark.perf gpu-check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", default="cuda", help="cuda, or cpu to try the script (default: %(default)s)")
    p.add_argument(
        "--sizes",
        default="paper",
        choices=("paper", "smoke"),
        help="network sizes: paper, or smoke to try the script (default: %(default)s)",
    )
    p.add_argument("--repeats", type=int, default=10, help="timed updates per agent (default: %(default)s)")
    p.add_argument(
        "--learner-updates",
        type=int,
        default=200,
        help="timed updates per model-free learner (default: %(default)s)",
    )
    p.add_argument(
        "--data-dir", default=None, help="datasets folder (default: $BENCHMARK_DATA_DIR, else datasets/)"
    )
    p.add_argument(
        "--budget-min",
        type=float,
        default=7.0,
        help="stop starting new measurements after this many minutes (default: %(default)s)",
    )
    args = p.parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(
                "error: gpu-check needs a CUDA GPU (torch.cuda.is_available() is False); "
                "`--device cpu --sizes smoke` tries the script here",
                file=sys.stderr,
            )
            return 2
        print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}", flush=True)
    # JAX (the learners part) would otherwise reserve most of the GPU that the torch parts around it need
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    check = Check(60 * args.budget_min)
    stopped = []

    def on_signal(signum, frame):
        stopped.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM,)}
    parts = [
        ("update", lambda: updates(check, args.device, args.sizes, args.repeats)),
        ("equality", lambda: equality(check, args.device, args.sizes)),
        # MOTO's projected run comes before the rest: it is the figure the target is about
        ("run", lambda: runs(check, args.device, args.data_dir, args.sizes, ("moto",))),
        ("learners", lambda: learners(check, args.data_dir, args.sizes, args.learner_updates)),
        ("run", lambda: runs(check, args.device, args.data_dir, args.sizes, ("dreamerv2", "bc"))),
    ]
    try:
        for name, part in parts:
            try:
                part()
            except (OutOfTime, KeyboardInterrupt):
                raise
            except Exception as exc:  # one part's failure (e.g. a capture error) keeps the others' rows
                check.row(part=name, what="error", error=f"{type(exc).__name__}: {exc}"[:300])
                traceback.print_exc()
                _free(args.device)
    except OutOfTime as exc:
        print(f"budget: {exc}", flush=True)
    except KeyboardInterrupt:
        print(f"stopped ({stopped[0] if stopped else 'SIGINT'}): the rows so far", flush=True)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    print(f"\ngpu-check, {time.time() - check.t0:.0f} s, device {args.device}, sizes {args.sizes}")
    for part in ("update", "equality", "learners", "run"):
        rows = [{k: v for k, v in r.items() if k != "part"} for r in check.rows if r["part"] == part]
        if rows:
            print(f"\n{part}")
            print_table(rows, list(dict.fromkeys(k for r in rows for k in r)))
    failed = any("error" in r for r in check.rows)
    return 3 if stopped else (1 if failed else 0)


if __name__ == "__main__":
    raise SystemExit(main())
