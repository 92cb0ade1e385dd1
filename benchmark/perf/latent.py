"""``python -m benchmark.perf latent``: LOMPO and COMBO update speed at the paper's sizes.

Batches of 64 x 50 random 64x64 frames (LOMPO's model batch) on this machine's device. Per agent:
the online update without rollouts (world-model step + SAC step on 256 latent rows, half real, half model;
COMBO adds its 17 CQL actions per state), the rollout batch alone (horizon 5 from 3200 posterior
states, 7 prior heads), and updates/s with the rollout amortised over ``rollout_every`` updates
(20: once per MetaWorld online episode). Median of ``--steps`` after one warm-up update.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmark.core.cli import Parser
from benchmark.perf.common import paper_agent, print_table, random_batch, timed


def rows(steps: int = 2, device: str = "cpu", batch: int = 64, length: int = 50) -> list[dict]:
    rng = np.random.default_rng(0)
    data = random_batch(batch, length, 4, rng)
    out = []
    for name in ("lompo", "combo"):
        agent = paper_agent(
            name,
            device,
            batch=batch,
            length=length,
            model_warmup=0,
            rollout_every=10**9,
            rollout_starts=min(3200, batch * length),
        )
        agent.on_phase("online")  # the update with its model step (offline: frozen after the warm-up)
        T = 100
        agent.on_episode(
            {
                "image": rng.integers(0, 256, (T + 1, 64, 64, 3), dtype=np.uint8),
                "action": rng.uniform(-1, 1, (T, 4)).astype(np.float32),
                "reward": np.zeros(T, np.float32),
                "terminal": np.zeros(T, bool),
            },
            False,
        )
        agent.update(data)  # warm-up: encodes the episode and fills the model buffer once
        upd = timed(lambda: agent.update(data), steps, warmup=False)[0]
        b = {
            k: torch.as_tensor(v).to(agent.device)
            for k, v in data["model"].items()
            if k in ("image", "action", "reward", "is_first", "is_terminal")
        }
        with torch.no_grad():
            _, _, post = agent.wm.loss(b, agent.gen)
        roll = timed(lambda: agent._generate(post), steps, warmup=False)[0]
        every = algorithms_default_rollout_every(name)
        out.append(
            {
                "agent": name,
                "update w/o rollout (s)": round(upd, 3),
                "rollout batch (s)": round(roll, 3),
                "rollout_every": every,
                "updates/s": round(1.0 / (upd + roll / every), 3),
            }
        )
        agent = None  # free it before the next one is built
    return out


def algorithms_default_rollout_every(name: str) -> int:
    import algorithms

    return algorithms.make_config(name).rollout_every


def main(argv=None) -> int:
    p = Parser(
        prog="python -m benchmark.perf latent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--steps", type=int, default=2, help="timed steps (median), after 1 warm-up")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    table = rows(args.steps, args.device, args.batch, args.length)
    print(
        f"LOMPO / COMBO at paper sizes, model batch {args.batch} x {args.length}, 64x64 frames, "
        f"agent batch 256, device {args.device}, {torch.get_num_threads()} threads, median of {args.steps}"
    )
    print_table(table, list(table[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
