"""``python -m benchmark.perf gpu-check``: the suite's GPU figures in one table, in under ten minutes.

For a machine with one CUDA GPU, the suite installed and the drawer-open dataset
(``python -m benchmark.datasets generate metaworld/drawer-open``). Each row is printed as soon as it is
measured, so a stop (Ctrl-C, SIGTERM, or ``--budget-min`` running out) still leaves the rows so far and
the final table of them:

  update     world-model step and full update (ms) of DreamerV2 and MOTO at the paper's sizes (batch
             16 x 50, fp32), each agent's steps interleaved with the other's; cuda_graph: off (the eager
             path) -- graph capture is not built yet, so there is no "on" row and no graph-vs-eager loss
             comparison (docs/performance.md)
  learners   model-free updates/s at the paper's sizes (BC, SAC, CQL, IQL; JAX), update alone
  run        ``perf run``'s projection of a full metaworld/drawer-open run (hours) for moto, dreamerv2, bc

``--device cpu --sizes smoke`` runs the same code at tiny sizes anywhere (that is how it is tested).
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

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


def updates(check: Check, device: str, sizes: str, repeats: int) -> None:
    """World-model step and full update of DreamerV2 and MOTO, interleaved (same machine load for both)."""
    import torch

    from benchmark.perf.moto import with_bc_batch

    agents = {}
    for algo in ("dreamerv2", "moto"):
        agent = paper_agent(algo, device, profile=sizes)
        req = agent.requests["model"]
        batch = random_batch(req.batch, req.length, 4, np.random.default_rng(0))
        agents[algo] = (agent, with_bc_batch(batch, agent))
        agent.update(agents[algo][1])  # warm-up: allocations, cuDNN autotuning
    times = {(a, k): [] for a in agents for k in ("wm", "full")}
    for _ in range(repeats):
        for algo, (agent, b) in agents.items():
            times[algo, "wm"].append(timed(lambda: wm_step(agent, b), 1, warmup=False)[0])
            times[algo, "full"].append(timed(lambda: agent.update(b), 1, warmup=False)[0])
    for algo in agents:
        wm, full = (1000 * float(np.median(times[algo, k])) for k in ("wm", "full"))
        check.row(
            part="update",
            what=algo,
            cuda_graph="off",
            wm_ms=round(wm, 1),
            full_ms=round(full, 1),
            vs_dreamerv2=round(full / (1000 * float(np.median(times["dreamerv2", "full"]))), 2),
            torch=torch.__version__,
        )


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


def runs(check: Check, device: str, data_dir: str | None, sizes: str) -> None:
    from benchmark.perf.run import measure

    offline, log_every = (200, 50) if sizes == "paper" else (4, 2)
    with tempfile.TemporaryDirectory() as tmp:
        for algo in ("moto", "dreamerv2", "bc"):
            check.need(150, f"the projected run of {algo}")
            r = measure(
                algo,
                "metaworld/drawer-open",
                "paper" if sizes == "paper" else "smoke",
                device,
                data_dir,
                Path(tmp) / algo,
                offline,
                3,
                1,
                log_every,
            )
            check.row(
                part="run",
                what=algo,
                full_run_h=r["full run h"],
                offline_upd_per_s=r["offline upd/s"],
                s_per_online_episode=r["s/online episode"],
                measured_s=r["measured s"],
            )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
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
    check = Check(60 * args.budget_min)
    stopped = []

    def on_signal(signum, frame):
        stopped.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM,)}
    try:
        updates(check, args.device, args.sizes, args.repeats)
        learners(check, args.data_dir, args.sizes, args.learner_updates)
        runs(check, args.device, args.data_dir, args.sizes)
    except OutOfTime as exc:
        print(f"budget: {exc}", flush=True)
    except KeyboardInterrupt:
        print(f"stopped ({stopped[0] if stopped else 'SIGINT'}): the rows so far", flush=True)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    print(f"\ngpu-check, {time.time() - check.t0:.0f} s, device {args.device}, sizes {args.sizes}")
    for part in ("update", "learners", "run"):
        rows = [{k: v for k, v in r.items() if k != "part"} for r in check.rows if r["part"] == part]
        if rows:
            print(f"\n{part}")
            print_table(rows, list(rows[0]))
    return 0 if not stopped else 3


if __name__ == "__main__":
    raise SystemExit(main())
