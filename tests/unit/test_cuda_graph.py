"""What a CUDA graph of a world-model agent's step needs, checked on the CPU (``nets/cuda_graph.py``).

A graph records one step's kernels and replays them for every later update, so the step
(``WorldModelAgent.train_step``) must run the same operators on the same shapes with the same constants
every update, build no tensor from host data, draw random numbers only from a given generator (the
agent's) and
return tensors only. One step of each world-model agent is recorded under a dispatch hook at updates 1, 2
and 3 (the target critics are copied at update 2, outside the step) and compared (LOMPO / COMBO in their
online phase: offline after the warm-up their model is frozen and no step runs).

Left out of the comparison: profiler markers, and the scalar arguments of torch's optimisers (without
``capturable``, which needs CUDA, Adam computes its bias corrections on the host; with it they are
tensors). The no-host-read half of the contract is ``test_host_syncs.py``. The capture itself needs a GPU:
``test_graph_equals_eager_on_cuda`` (skipped without one) and ``python -m benchmark.perf gpu-check``.
"""

import dataclasses
import sys

import numpy as np
import pytest
import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

import algorithms
from algorithms.contract import RunContext
from algorithms.nets.cuda_graph import resolve_cuda_graph
from benchmark.perf.common import paper_agent
from tests.unit.test_host_syncs import batches_for, episode

RANDOM_WORDS = ("rand", "normal", "bernoulli", "multinomial", "uniform", "exponential", "dropout", "random")


def _in_optimiser() -> bool:
    f = sys._getframe(2)
    while f is not None:
        if "torch/optim/" in f.f_code.co_filename:
            return True
        f = f.f_back
    return False


class StepRecorder(TorchDispatchMode):
    """The operators a step dispatches, each as (name, tensor shapes/dtypes and other arguments); tensors
    built from host data (``lift_fresh``) and random draws from torch's global generator (no ``generator``
    passed; the step's draws take the agent's) are listed apart."""

    def __init__(self):
        super().__init__()
        self.ops: list = []
        self.host_data: list = []
        self.foreign_draws: list = []

    def _describe(self, a, scalars: bool):
        if isinstance(a, torch.Tensor):
            return ("T", tuple(a.shape), str(a.dtype))
        if isinstance(a, (list, tuple)):
            return tuple(self._describe(x, scalars) for x in a)
        if isinstance(a, torch.Generator):
            return "generator"
        return repr(a) if scalars else "_"

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = str(func)
        if not name.startswith("profiler."):
            in_opt = _in_optimiser()
            self.ops.append(
                (
                    name,
                    self._describe(args, scalars=not in_opt),
                    tuple(sorted((k, self._describe(v, not in_opt)) for k, v in kwargs.items())),
                )
            )
            if func is torch.ops.aten.lift_fresh.default and not in_opt:
                self.host_data.append(name)
            op = name.split(".")[1] if name.startswith("aten.") else name
            if any(w in op for w in RANDOM_WORDS) and kwargs.get("generator") is None:
                self.foreign_draws.append(name)
        return func(*args, **kwargs)


def recorded_steps(algo: str, updates: int = 4):
    cfg = algorithms.make_config(algo, "smoke")
    if hasattr(cfg, "slow_target_every"):
        cfg = dataclasses.replace(cfg, slow_target_every=2)  # a target copy at update 2
    agent = algorithms.make_agent(
        algo, cfg, RunContext(obs_shape=(64, 64, 3), action_dim=4, seed=0, total_updates=100)
    )
    rng = np.random.default_rng(0)
    agent.on_episode(episode(rng), False)
    if hasattr(agent, "on_phase"):  # LOMPO / COMBO: offline after the warm-up the model is frozen and
        agent.on_phase("online")  # no step runs (nor a graph); online every update steps the model
    records, outputs = [], []
    step = agent.train_step

    def recorded(inputs):
        rec = StepRecorder()
        with rec:
            out = step(inputs)
        records.append(rec)
        outputs.append(out)
        return out

    agent.train_step = recorded
    for _ in range(updates):
        agent.update(batches_for(agent, rng))  # new random batches each update
    return records, outputs


def test_the_recorder_sees_a_changed_constant_and_host_data():  # else the checks below pass vacuously
    x = torch.ones(3)
    recs = []
    for c in (2.0, 3.0):
        with StepRecorder() as rec:
            x * c
            torch.tensor([c])
            torch.rand(2)
        recs.append(rec)
    assert recs[0].ops != recs[1].ops
    assert recs[0].host_data and recs[0].foreign_draws


@pytest.mark.parametrize("algo", ["dreamerv2", "moto", "moto-no-bc", "lompo", "combo"])
def test_the_step_is_the_same_every_update(algo):
    records, outputs = recorded_steps(algo)
    first = records[1].ops  # update 0 creates the optimisers' state: a graph is captured after warm-up
    for k in (2, 3):
        assert records[k].ops == first, f"{algo}: the step at update {k} differs from update 1"
    for rec in records[1:]:
        assert not rec.host_data, f"{algo}: tensors built from host data inside the step: {rec.host_data}"
        assert not rec.foreign_draws, f"{algo}: random draws not from the agent's generator"
    assert len(first) > 100  # the step ran
    leaves = pytree.tree_leaves(outputs[-1])
    assert leaves and all(isinstance(v, torch.Tensor) for v in leaves), f"{algo}: non-tensor outputs"


def test_cuda_graph_setting():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not resolve_cuda_graph("off", cpu) and not resolve_cuda_graph("auto", cpu)
    assert resolve_cuda_graph("auto", cuda) and resolve_cuda_graph("on", cuda)
    assert not resolve_cuda_graph("off", cuda, compile_on=True)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        resolve_cuda_graph("on", cpu)
    with pytest.raises(ValueError, match="must be one of"):
        resolve_cuda_graph("yes", cpu)
    with pytest.raises(ValueError, match="do not combine"):
        resolve_cuda_graph("auto", cuda, compile_on=True)


def test_an_agent_refuses_cuda_graph_on_without_cuda():
    with pytest.raises(ValueError, match="cuda_graph=on needs a CUDA device"):
        paper_agent("moto", "cpu", profile="smoke", cuda_graph="on")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("algo", ["dreamerv2", "moto", "lompo"])
def test_graph_equals_eager_on_cuda(algo):
    """Replays give the eager step's losses (float tolerance) and leave the generator where eager does."""
    runs = {}
    for setting in ("off", "on"):
        agent = paper_agent(algo, "cuda", profile="smoke", cuda_graph=setting)
        rng = np.random.default_rng(0)
        agent.on_episode(episode(rng), False)
        if hasattr(agent, "on_phase"):
            agent.on_phase("online")  # LOMPO: a model step (the graphed part) at every update
        metrics = [agent.update(batches_for(agent, rng)) for _ in range(7)]  # 3 warm-up, capture, 3 replays
        runs[setting] = ([{k: float(v) for k, v in m.items()} for m in metrics], agent.gen.get_state())
        if setting == "on":
            assert agent._graph is not None and agent._graph.captured == 1
    (eager, g_eager), (graph, g_graph) = runs["off"], runs["on"]
    for a, b in zip(eager, graph):
        for k in a:
            assert b[k] == pytest.approx(a[k], rel=1e-3, abs=1e-5), k
    assert torch.equal(g_eager, g_graph)


def test_a_run_resumes_across_cuda_graph_settings_but_not_across_precision():
    from benchmark.core.rundir import identity_diff

    saved = {"algo": "moto", "agent_config": {"alpha": 10.0, "precision": "auto"}}  # before the field existed
    assert (
        identity_diff(saved, {**saved, "agent_config": {**saved["agent_config"], "cuda_graph": "on"}}) == []
    )
    other = {**saved, "agent_config": {"alpha": 10.0, "precision": "bf16"}}
    assert identity_diff(saved, other) == ["agent_config.precision: auto -> bf16"]
