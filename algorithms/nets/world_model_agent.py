"""``WorldModelAgent``: what the world-model agents (DreamerV2, MOTO, LOMPO, COMBO) share around their
methods -- the set-up of a run and the checkpoint plumbing, not any of the methods' equations.

Construction (``__init__``), in this order:
  device and precision options (``torch_parts.resolve_device_options``), ``act_stack = 1``;
  under ``torch.random.fork_rng`` seeded with the run's seed (initialisation depends on the seed only and
  leaves the global generators alone): the world model, then the method's heads (``build_heads``), each
  moved to the device;
  the world model's optimiser (DreamerV2's clipped Adam, ``optimiser``), then the heads'
  (``build_optimisers``);
  the agent's generator (``gen``, seed + 1; every random draw of training and acting takes it);
  ``updates = 0``; ``torch.compile`` of the world model's stateless parts when the config asks for it.
A subclass then sets ``requests`` and its own state.

An update (``update``) is split so that its tensor work can be captured as one CUDA graph
(``cuda_graph``, ``algorithms/nets/cuda_graph.py``):
  ``step_inputs(batches)``  the batches as device tensors (host-to-device copies);
  ``before_step()``         Python-side work between steps (periodic target copies), never captured;
  ``train_step(inputs)``    the update's tensor work: losses, backward passes, optimiser steps; returns
                            a dict of tensors. Eager, or captured once and replayed (``cuda_graph``);
  ``updates += 1``, then ``after_step(outputs)`` (LOMPO/COMBO: the latent SAC and its host-side buffers),
                            which returns the update's metrics.

Checkpoints: ``state_dict()`` holds the parts of ``_parts()`` (modules, optimisers, generators under
their keys), ``updates`` and whatever ``_extra_state()`` adds; ``load_state_dict`` loads the same.
"""

from __future__ import annotations

import torch

from algorithms.contract import RunContext
from algorithms.nets.cuda_graph import GraphedStep, resolve_cuda_graph
from algorithms.nets.torch_parts import ClippedAdam, load_parts, resolve_device_options, save_parts, to_cpu
from algorithms.nets.world_model import WorldModel, WorldModelConfig


class WorldModelAgent:
    def __init__(self, config: WorldModelConfig, context: RunContext):
        self.config, self.context = config, context
        self.device = torch.device(context.device)
        self.amp, use_compile = resolve_device_options(self.device, config.precision, config.compile)
        self.graphed = resolve_cuda_graph(config.cuda_graph, self.device, use_compile)
        self._graph: GraphedStep | None = None  # made at the first update (cuda_graph on)
        self.act_stack = 1
        with torch.random.fork_rng(devices=[]):  # initialisation depends on the seed only
            torch.manual_seed(context.seed)
            self.wm = WorldModel(WorldModelConfig.of(config), context.obs_shape, context.action_dim)
            self.wm.to(self.device)
            self.build_heads(self.wm.rssm.feat_dim)
        self.wm_opt = self.optimiser(self.wm, config.model_lr)
        self.build_optimisers()
        self.gen = torch.Generator(device=self.device).manual_seed(context.seed + 1)
        self.updates = 0
        if use_compile:
            self.wm.compile()

    # -- what a method builds -------------------------------------------------------------------------
    def build_heads(self, feat_dim: int) -> None:
        """The method's networks on the world model's features (``feat_dim``), on ``self.device``; their
        parameters are drawn right after the world model's, from the same seeded generator."""
        raise NotImplementedError

    def build_optimisers(self) -> None:
        """The optimisers of the heads (the world model's, ``wm_opt``, exists already)."""

    def optimiser(self, module: torch.nn.Module, lr: float) -> ClippedAdam:
        """DreamerV2's optimiser with the config's eps, clipping and weight decay."""
        c = self.config
        return ClippedAdam(
            module.parameters(), lr, c.opt_eps, c.grad_clip, c.weight_decay, capturable=self.graphed
        )

    def _autocast(self):
        """bf16 autocast where the config asks for it (``precision="bf16"``), else a no-op. Under a CUDA
        graph without autocast's cast cache (a cached cast would outlive the captured region)."""
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.amp, cache_enabled=not self.graphed
        )

    # -- an update ------------------------------------------------------------------------------------
    def update(self, batches) -> dict:
        inputs = self.step_inputs(batches)
        self.before_step()
        if self.graphed:
            if self._graph is None:
                self._graph = GraphedStep(self.train_step, generators=[self.gen])
            outputs = self._graph(inputs)
        else:
            outputs = self.train_step(inputs)
        self.updates += 1
        return self.after_step(outputs)

    def step_inputs(self, batches) -> dict:
        """The batches the step reads, as device tensors (a pytree of tensors, fixed shapes per run)."""
        raise NotImplementedError

    def before_step(self) -> None:
        """Python-side work before each step (``self.updates`` is the number of steps done so far)."""

    def train_step(self, inputs: dict) -> dict:
        """The update's tensor work on ``step_inputs``' tensors; returns a dict of tensors. It must run
        the same operators on the same shapes every update (``tests/unit/test_cuda_graph.py``)."""
        raise NotImplementedError

    def after_step(self, outputs: dict) -> dict:
        """The update's metrics from the step's outputs (after ``updates += 1``)."""
        return outputs

    # -- state ----------------------------------------------------------------------------------------
    def _parts(self) -> dict:
        """The modules, optimisers and generators a checkpoint holds, under their keys."""
        raise NotImplementedError

    def _extra_state(self) -> dict:
        """What a checkpoint holds besides the parts and ``updates`` (counters, small lists)."""
        return {}

    def _load_extra_state(self, d: dict) -> None:
        """Restores what ``_extra_state`` saved."""

    def state_dict(self):
        return to_cpu({**save_parts(self._parts()), "updates": self.updates, **self._extra_state()})

    def load_state_dict(self, d):
        self._graph = None  # a captured graph holds the addresses of the optimisers' old state tensors
        load_parts(self._parts(), d)
        self.updates = d["updates"]
        self._load_extra_state(d)
