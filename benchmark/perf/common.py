"""What every speed benchmark shares: one timer, random paper-size batches and agents, the table printer."""

from __future__ import annotations

import collections
import sys
import time

import numpy as np

from benchmark.core.console import print_table  # noqa: F401  (the one table printer, re-exported for perf/)


def timed(fn, steps: int, warmup: bool = True) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process) of ``steps`` calls of ``fn``, after one
    warm-up call; CUDA work is waited for. CPU time is robust to other processes on a shared machine."""
    torch = sys.modules.get("torch")
    cuda = torch is not None and torch.cuda.is_available()
    if warmup:
        fn()
    wall, cpu = [], []
    for _ in range(steps):
        t, c = time.perf_counter(), time.process_time()
        fn()
        if cuda:
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return float(np.median(wall)), float(np.median(cpu))


def random_batch(B: int, L: int, A: int, rng: np.random.Generator) -> dict:
    """A world-model batch ``{"model": ...}`` of B x L random 64x64 frames, actions and rewards."""
    b = {
        "image": rng.integers(0, 256, (B, L, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (B, L, A)).astype(np.float32),
        "reward": (rng.uniform(size=(B, L)) > 0.8).astype(np.float32),
        "is_first": np.zeros((B, L), bool),
        "is_terminal": np.zeros((B, L), bool),
        "discount": np.ones((B, L), np.float32),
    }
    b["is_first"][:, 0] = True
    b["episode_goal"] = np.ones((B, L), bool)  # every window from a goal-reaching episode (MOTO's BC filter)
    return {"model": b}


def paper_agent(algo: str, device: str, profile: str = "paper", **overrides):
    """An agent at a profile's sizes (default the paper's; 64x64 frames, 4-dim actions), ``overrides`` on
    its config."""
    import algorithms
    from algorithms.contract import RunContext

    cfg = algorithms.make_config(algo, profile, **overrides)
    ctx = RunContext(obs_shape=(64, 64, 3), action_dim=4, seed=0, total_updates=1000, device=device)
    return algorithms.make_agent(algo, cfg, ctx)


def best_rate(fn, steps: int, repeats: int = 3) -> float:
    """Calls per second of ``fn``: the best of ``repeats`` runs of ``steps`` calls, after one warm-up call
    (the best, not the median: on a shared, noisy machine the fastest run is the closest to the code's
    speed)."""
    fn()  # warm up
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(steps):
            fn()
        best = max(best, steps / (time.perf_counter() - t))
    return best


def wm_step(agent, batches: dict, graph=None) -> None:
    """A world-model agent's world-model step alone: the ELBO on the model batch, backward, clip, Adam
    (through ``graph``, a ``GraphedStep`` of ``wm_core``, when given)."""
    from algorithms.nets.torch_parts import batch_to_device

    b = batch_to_device(
        batches["model"], agent.device, keys=("image", "action", "reward", "is_first", "is_terminal")
    )
    if graph is not None:
        graph(b)
    else:
        wm_core(agent, b)


def wm_core(agent, b: dict) -> dict:
    """The tensor work of ``wm_step`` on device tensors (what a CUDA graph of it captures)."""
    with agent._autocast():
        loss, _, _ = agent.wm.loss(b, agent.gen)
    agent.wm_opt.step(loss)
    return {"model_loss": loss.detach()}


# Operators that only make a new view of existing memory (no kernel launch on a GPU).
VIEW_OPS = frozenset(
    {
        "t",
        "view",
        "_unsafe_view",
        "detach",
        "select",
        "slice",
        "unsqueeze",
        "squeeze",
        "expand",
        "as_strided",
        "permute",
        "transpose",
        "split",
        "split_with_sizes",
        "unbind",
        "alias",
        "_reshape_alias",
        "narrow",
        "lift_fresh",
        "_record_function_enter_new",
        "_record_function_exit",
    }
)


def count_ops(fn) -> collections.Counter:
    """The ATen operators ``fn()`` runs, by name, as they reach the kernels (below autograd, after composite
    operators are decomposed: forward, backward and optimiser alike), each a kernel launch on a GPU."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = collections.Counter()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops[func.overloadpacket.__name__] += 1
            return func(*args, **(kwargs or {}))

    with Count() as counter:
        fn()
    return counter.ops
