"""MOTO's full update next to DreamerV2's, at the paper's sizes (``python -m benchmark.perf moto``).

Batches of 16 x 50 random 64x64 frames (plus MOTO's goal-filtered 4 x 32 BC batch). For each agent:
the full update (world model + imagination + actor + critics), median of ``--steps`` after one warm-up,
as wall seconds and as this process's CPU seconds (``time.process_time``: robust to other processes on a
shared machine; with ``--threads 1`` it is the compute cost). Rows: DreamerV2 (1 prior head), MOTO
(7 heads), and MOTO with one head (what the ensemble costs). Target: MOTO <= 1.5x DreamerV2.
``rows()`` is what ``benchmark.perf worldmodel`` can print next to its own table.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmark.core.cli import Parser
from benchmark.perf.common import paper_agent, print_table, random_batch, timed


def rows(
    steps: int = 2,
    batch: int = 16,
    length: int = 50,
    device: str = "cpu",
    algo: str = "moto",
    baseline: str = "dreamerv2",
) -> list[dict]:
    rng = np.random.default_rng(0)
    data = random_batch(batch, length, 4, rng)["model"]
    out = []
    for name, overrides in ((baseline, {}), (algo, {}), (algo, {"ensemble": 1})):
        agent = paper_agent(name, device, batch=batch, length=length, **overrides)
        batches = with_bc_batch({"model": data}, agent)
        wall, cpu = timed(lambda: agent.update(batches), steps)
        out.append(
            {
                "agent": name,
                "prior heads": agent.wm.rssm.members,
                "full step wall (s)": round(wall, 3),
                "full step CPU (s)": round(cpu, 3),
            }
        )
        agent = None  # free it before the next one is built
    base = out[0]
    for r in out:
        r["CPU vs baseline"] = round(r["full step CPU (s)"] / base["full step CPU (s)"], 3)
        r["wall vs baseline"] = round(r["full step wall (s)"] / base["full step wall (s)"], 3)
    return out


def with_bc_batch(batches: dict, agent) -> dict:
    """The model batch plus the goal-filtered BC batch MOTO requests (cut from the model batch)."""
    if "bc" not in agent.requests:
        return batches
    r, data = agent.requests["bc"], batches["model"]
    bc = {k: v[: r.batch, : r.length].copy() for k, v in data.items()}
    bc["episode_goal"] = np.ones(bc["is_first"].shape, bool)
    return {**batches, "bc": bc}


def moto_step_ratio(
    baseline, batches: dict, baseline_algo: str, device: str, batch: int, length: int, repeats: int
) -> str:
    """MOTO's full update timed interleaved with an already built DreamerV2 agent's (wall seconds);
    the line ``benchmark.perf worldmodel`` prints."""
    algo = "moto-dmc" if baseline_algo.endswith("-dmc") else "moto"
    agent = paper_agent(algo, device, batch=batch, length=length)
    mb = with_bc_batch(batches, agent)
    agent.update(mb)  # warm-up
    t_base, t_moto = [], []
    for _ in range(repeats):
        t_base.append(timed(lambda: baseline.update(batches), 1, warmup=False)[0])
        t_moto.append(timed(lambda: agent.update(mb), 1, warmup=False)[0])
    m, d = float(np.median(t_moto)), float(np.median(t_base))
    return (
        f"{algo} full step (7 prior heads, {agent.config.agent_batch} rollouts, twin critics, filtered BC): "
        f"{m:.3f} s = {m / d:.3f}x {baseline_algo}'s full step ({d:.3f} s), interleaved  [target <= 1.5x]"
    )


def main(argv=None) -> int:
    p = Parser(
        prog="python -m benchmark.perf moto",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--algo", default="moto", help="moto or moto-dmc")
    p.add_argument("--baseline", default="dreamerv2", help="dreamerv2 or dreamerv2-dmc")
    p.add_argument("--steps", type=int, default=2, help="timed steps (median), after 1 warm-up")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    table = rows(args.steps, args.batch, args.length, args.device, args.algo, args.baseline)
    print(
        f"{args.algo} vs {args.baseline}, batch {args.batch} x {args.length}, 64x64 frames, "
        f"device {args.device}, {torch.get_num_threads()} threads, median of {args.steps} steps"
    )
    print_table(table, list(table[0]))
    print(
        f"MOTO full step / DreamerV2 full step = {table[1]['CPU vs baseline']:.3f}x CPU, "
        f"{table[1]['wall vs baseline']:.3f}x wall  [target <= 1.5x]; "
        f"7 prior heads / 1 = {table[1]['full step CPU (s)'] / table[2]['full step CPU (s)']:.3f}x CPU"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
