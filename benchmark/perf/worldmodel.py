"""``python -m benchmark.perf worldmodel``: world-model and DreamerV2 update speed at the paper's sizes.

Prints, for batches of 16 x 50 random 64x64 frames on this machine's device (CPU unless --device cuda):
world-model train steps/s (ELBO, backward, Adam), full agent updates/s (world model + 15-step
imagination from all 800 posterior states + actor + critic), and the same full update with a
7-member prior ensemble (MOTO's model) relative to one member. Few steps: each takes seconds on a CPU.

``--count-ops``: instead of timing, the ATen operators one update runs (forward, backward, optimisers; as
they reach the kernels, each a kernel launch on a GPU) for DreamerV2 and MOTO at the paper's sizes, and
for the world-model step alone; "compute" leaves out the view operators (t, view, select, ...), which
launch nothing. The count does not depend on the device, the batch size or the widths.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmark.core.cli import Parser
from benchmark.perf.common import VIEW_OPS, count_ops, paper_agent, print_table, random_batch, timed, wm_step

# measured 2026-11-23 with pydreamer's own WorldModel beside ours, interleaved (docs/performance.md,
# Side by side with pydreamer)
PYDREAMER_SIDE_BY_SIDE = {"pydreamer wm step (s)": 14.0, "ours wm step (s)": 10.79, "ratio": 1.30}


def main(argv=None) -> int:
    p = Parser(
        prog="python -m benchmark.perf worldmodel",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--algo", default="dreamerv2", help="dreamerv2 (base sizes) or dreamerv2-dmc (deter 200)")
    p.add_argument(
        "--repeats", type=int, default=3, help="timed steps per measurement (median), after 1 warm-up"
    )
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--ensemble", type=int, default=7, help="members of the ensemble compared with one")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--no-moto", action="store_true", help="skip MOTO's full step (timed next to DreamerV2's)")
    p.add_argument(
        "--precision",
        default="auto",
        help="auto (fp32), tf32, fp32 or bf16 (see nets/torch_parts.resolve_device_options; default: auto)",
    )
    p.add_argument("--compile", default="auto", help="auto (= off), on or off (default: auto)")
    p.add_argument(
        "--count-ops", action="store_true", help="count the operators of one update instead of timing"
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.count_ops:
        return print_op_counts(args.batch, args.length, args.device)
    rng = np.random.default_rng(0)
    batch = random_batch(args.batch, args.length, 4, rng)
    agents = {
        m: paper_agent(
            args.algo,
            args.device,
            ensemble=m,
            batch=args.batch,
            length=args.length,
            precision=args.precision,
            compile=args.compile,
        )
        for m in (1, args.ensemble)
    }

    for agent in agents.values():
        agent.update(batch)  # warm-up (allocations; compilation where on)
    times = {(m, k): [] for m in agents for k in ("wm", "full")}
    for _ in range(args.repeats):  # interleaved, so load changes on a shared machine hit both alike
        for m, agent in agents.items():
            times[m, "wm"].append(timed(lambda: wm_step(agent, batch), 1, warmup=False)[0])
        for m, agent in agents.items():
            times[m, "full"].append(timed(lambda: agent.update(batch), 1, warmup=False)[0])
    rows = []
    for m, agent in agents.items():
        n_params = sum(p.numel() for mod in (agent.wm, agent.actor, agent.critic) for p in mod.parameters())
        wm_params = sum(p.numel() for p in agent.wm.parameters())
        wm_s, full_s = float(np.median(times[m, "wm"])), float(np.median(times[m, "full"]))
        rows.append(
            {
                "prior heads": m,
                "params (wm / all)": f"{wm_params / 1e6:.1f}M / {n_params / 1e6:.1f}M",
                "wm step (s)": round(wm_s, 3),
                "wm steps/s": round(1 / wm_s, 3),
                "full step (s)": round(full_s, 3),
                "full steps/s": round(1 / full_s, 3),
            }
        )
    one, ens = rows
    print(
        f"{args.algo}, batch {args.batch} x {args.length}, 64x64 frames, device {args.device}, "
        f"precision {args.precision}, compile {args.compile} (amp {agents[1].amp}), "
        f"{torch.get_num_threads()} threads, median of {args.repeats} steps, interleaved"
    )
    print_table(rows, list(rows[0]))
    print(
        f"ensemble cost: {args.ensemble} prior heads / 1 = "
        f"{ens['full step (s)'] / one['full step (s)']:.3f}x "
        f"(full step), {ens['wm step (s)'] / one['wm step (s)']:.3f}x (world-model step)  [target <= 1.3x]"
    )
    print(
        f"pydreamer side by side (2-core CPU, 1 thread each, equal sizes: 28.4M parameters, batch 16 x 50; "
        f"docs/performance.md): its world-model step {PYDREAMER_SIDE_BY_SIDE['pydreamer wm step (s)']} s, "
        f"ours {PYDREAMER_SIDE_BY_SIDE['ours wm step (s)']} s -> {PYDREAMER_SIDE_BY_SIDE['ratio']:.2f}x  "
        f"[target >= 1.2x]"
    )
    if not args.no_moto:  # MOTO's full step (benchmark/perf/moto.py has more: CPU time, MOTO with one head)
        from benchmark.perf.moto import moto_step_ratio

        print(
            moto_step_ratio(agents[1], batch, args.algo, args.device, args.batch, args.length, args.repeats)
        )
    return 0


def print_op_counts(batch: int, length: int, device: str) -> int:
    """The ``--count-ops`` table: ATen operators per update of DreamerV2 and MOTO (paper sizes)."""
    from benchmark.perf.moto import with_bc_batch

    rows = []
    for algo in ("dreamerv2", "moto"):
        agent = paper_agent(algo, device, batch=batch, length=length)
        batches = with_bc_batch(random_batch(batch, length, 4, np.random.default_rng(0)), agent)
        agent.update(batches)  # warm-up: the first update builds what later ones reuse
        ops = count_ops(lambda: agent.update(batches))
        wm = count_ops(lambda: wm_step(agent, batches))
        compute = {k: v for k, v in ops.items() if k not in VIEW_OPS}
        rows.append(
            {
                "agent": algo,
                "ops/update": sum(ops.values()),
                "compute ops/update": sum(compute.values()),
                "wm-step ops": sum(wm.values()),
                "wm-step compute ops": sum(v for k, v in wm.items() if k not in VIEW_OPS),
                "most frequent (compute)": ", ".join(
                    f"{k} {v}" for k, v in sorted(compute.items(), key=lambda kv: -kv[1])[:6]
                ),
            }
        )
    print(
        f"ATen operators of one update, paper sizes, sequences {length} steps (batch {batch}: the count does "
        f"not depend on it), device {device}"
    )
    print_table(rows, list(rows[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
