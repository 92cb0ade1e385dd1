"""A training step captured once as a CUDA graph and replayed (``cuda_graph = on``).

Why: at the paper's sizes a world-model update is ~10,000 small kernels (a 50-step posterior scan, 15
imagination steps, their backward passes, three optimiser steps), and on a GPU the update waits for
Python to launch them (docs/performance.md). A CUDA graph records the kernels of one step once and
launches them all with one call. ``torch.cuda.CUDAGraph`` is used directly rather than
``torch.compile(mode="reduce-overhead")``: the step backpropagates through a Python-level recurrent scan
and runs three optimisers, which torch.compile splits into many graphs at its graph breaks (and which
recompile on changing strides), while one manual capture records the whole step.

What the step must satisfy (each checked on the CPU, ``tests/unit/test_host_syncs.py`` and
``tests/unit/test_cuda_graph.py``):
  * no host read of a device value (a sync cannot be captured);
  * no tensor built from host data (``torch.tensor(list)``: a host-to-device copy of memory the replay
    no longer owns);
  * the same operators on the same shapes every update: Python-side decisions (the periodic target copy,
    counters) happen outside the step;
  * random draws only from generators passed here, which the graph registers, so each replay advances
    their Philox offsets as the eager step would, and a checkpoint's generator state stays exact;
  * optimisers with ``capturable=True`` (their step counts live on the GPU).

How a step runs (``GraphedStep.__call__``):
  1. the first ``warmup`` calls with a given input signature run the step eagerly on a side stream (real
     updates: the optimisers' state and cuBLAS workspaces get created there, as capture requires);
  2. the next call copies its inputs into static buffers, captures the step (recording only: nothing runs)
     and replays it once;
  3. every later call copies its inputs into the static buffers and replays.
Outputs are copied out of the graph's memory after each replay (the protocol keeps several updates'
metrics before it reads them; the next replay would overwrite them).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils import _pytree as pytree

CUDA_GRAPH_SETTINGS = ("off", "on", "auto")


def resolve_cuda_graph(setting: str, device: torch.device, compile_on: bool = False) -> bool:
    """Whether a world-model agent captures its step: ``off``; ``on`` (needs a CUDA device);
    ``auto`` = on where the device is CUDA. Refuses ``on`` without CUDA, and graphs with
    ``compile = on`` (torch.compile's own graphs and a manual capture do not nest)."""
    if setting not in CUDA_GRAPH_SETTINGS:
        raise ValueError(f"cuda_graph must be one of {CUDA_GRAPH_SETTINGS}, got {setting!r}")
    if setting == "on" and device.type != "cuda":
        raise ValueError(
            f"cuda_graph=on needs a CUDA device (this run's device is {device.type!r}); "
            "use cuda_graph=off, or auto (on where CUDA is)"
        )
    on = setting == "on" or (setting == "auto" and device.type == "cuda")
    if on and compile_on:
        raise ValueError("cuda_graph and compile=on do not combine: set one of them off")
    return on


def _signature(inputs) -> tuple:
    leaves, spec = pytree.tree_flatten(inputs)
    return (str(spec), tuple((tuple(t.shape), t.dtype, t.device) for t in leaves))


def _copy_out(tree):
    return pytree.tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, tree)


class GraphedStep:
    """``step(inputs) -> outputs`` (pytrees of CUDA tensors), captured per input signature and replayed.

    ``generators``: every ``torch.Generator`` the step draws from (registered with each graph).
    ``warmup``: eager calls before a capture (the capture also needs one call's worth of optimiser state).
    """

    WARMUP = 3

    def __init__(self, step: Callable, generators=(), warmup: int = WARMUP):
        if not hasattr(torch.cuda.CUDAGraph, "register_generator_state"):
            raise RuntimeError(
                f"cuda_graph needs torch.cuda.CUDAGraph.register_generator_state (torch >= 2.5; this is "
                f"{torch.__version__}): set cuda_graph=off"
            )
        self.step, self.generators, self.warmup = step, tuple(generators), warmup
        self.graphs: dict = {}  # signature -> (graph, static inputs, static outputs); each its own pool
        self.eager_calls: dict = {}  # signature -> eager calls so far
        self.side = torch.cuda.Stream()  # warm-up and capture on one stream (lazily made handles match)

    @property
    def captured(self) -> int:
        return len(self.graphs)

    def __call__(self, inputs):
        key = _signature(inputs)
        if key in self.graphs:
            graph, static_in, static_out = self.graphs[key]
            self._fill(static_in, inputs)
            graph.replay()
            return _copy_out(static_out)
        n = self.eager_calls.get(key, 0)
        if n < self.warmup:
            self.eager_calls[key] = n + 1
            return self._eager(inputs)
        static_in = pytree.tree_map(lambda t: t.clone(), inputs)
        graph = torch.cuda.CUDAGraph()
        for gen in self.generators:
            graph.register_generator_state(gen)
        torch.cuda.synchronize()
        try:
            # thread_local: a CUDA call from another thread (a logger, a prefetcher) does not end the capture
            with torch.cuda.graph(graph, stream=self.side, capture_error_mode="thread_local"):
                static_out = self.step(static_in)
        except Exception as exc:
            raise RuntimeError(
                f"capturing the update as a CUDA graph failed ({type(exc).__name__}: {exc}); this process "
                "cannot go on with the agent: resume the run from its last checkpoint with cuda_graph=off"
            ) from exc
        self.graphs[key] = (graph, static_in, static_out)
        graph.replay()  # the capture only recorded: this call's step runs now
        return _copy_out(static_out)

    def _eager(self, inputs):
        """One eager step on the side stream (as the capture will run), then back to the caller's."""
        self.side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.side):
            out = self.step(inputs)
        torch.cuda.current_stream().wait_stream(self.side)
        return out

    @staticmethod
    def _fill(static_in, inputs) -> None:
        for dst, src in zip(pytree.tree_leaves(static_in), pytree.tree_leaves(inputs)):
            dst.copy_(src, non_blocking=True)
