"""No host sync inside a world-model agent's update (issue: the update off the launch floor).

On a GPU, reading a device tensor's value on the host (``.item()``, ``int(t)``, ``float(t)``, ``if t:``)
waits for every queued kernel, and a CUDA graph cannot be captured around one. Each of them dispatches
``aten._local_scalar_dense`` (or ``aten.is_nonzero`` / ``aten.item``), whatever the device, so a CPU run
of one update under a dispatch hook finds them all.

The one read allowed: ``torch.optim.Adam`` without ``capturable`` reads its step count, a tensor it keeps on
the CPU even when the parameters are on a GPU (no device sync). The hook checks that the test would see a
read anywhere else (``test_the_hook_sees_a_read``).
"""

import traceback

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import algorithms
from algorithms.contract import RunContext

SCALAR_READS = {
    torch.ops.aten._local_scalar_dense.default,
    torch.ops.aten.is_nonzero.default,
    torch.ops.aten.item.default,
}


class HostReads(TorchDispatchMode):
    """Records every scalar read outside torch's optimisers, with where it came from."""

    def __init__(self):
        super().__init__()
        self.reads: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SCALAR_READS:
            stack = traceback.extract_stack()
            if not any("torch/optim/" in f.filename for f in stack):
                ours = [f for f in stack if "/algorithms/" in f.filename or "/benchmark/" in f.filename]
                self.reads.append(
                    " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in ours[::-1])
                )
        return func(*args, **(kwargs or {}))


def batches_for(agent, rng: np.random.Generator) -> dict:
    """Random batches of the shapes the agent requests (64x64 frames, 4-dim actions)."""
    out = {}
    for key, req in agent.requests.items():
        B, L = req.batch, getattr(req, "length", 2)
        out[key] = {
            "image": rng.integers(0, 256, (B, L, 64, 64, 3), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (B, L, 4)).astype(np.float32),
            "reward": (rng.uniform(size=(B, L)) > 0.8).astype(np.float32),
            "is_first": np.eye(1, L, dtype=bool).repeat(B, 0),
            "is_terminal": np.zeros((B, L), bool),
            "discount": np.ones((B, L), np.float32),
            "episode_goal": np.ones((B, L), bool),
        }
    return out


def episode(rng: np.random.Generator, T: int = 20) -> dict:
    return {
        "image": rng.integers(0, 256, (T + 1, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (T, 4)).astype(np.float32),
        "reward": np.zeros(T, np.float32),
        "success": np.eye(1, T, T - 1, dtype=bool)[0],
        "terminal": np.zeros(T, bool),
    }


def test_the_hook_sees_a_read():  # the check below would pass vacuously on a hook that sees nothing
    x = torch.ones(3)
    with HostReads() as hook:
        float(x.sum())
        if x[0] > 0:
            pass
    assert len(hook.reads) == 2


@pytest.mark.parametrize(
    "algo, phase",
    [
        ("dreamerv2", None),
        ("moto", None),
        ("lompo", "offline"),
        ("lompo", "online"),
        ("combo", "offline"),
        ("combo", "online"),
    ],
)
def test_an_update_reads_no_device_value_on_the_host(algo, phase):
    cfg = algorithms.make_config(algo, "smoke")
    agent = algorithms.make_agent(
        algo, cfg, RunContext(obs_shape=(64, 64, 3), action_dim=4, seed=0, total_updates=100)
    )
    rng = np.random.default_rng(0)
    agent.on_episode(episode(rng), False)
    if phase:
        agent.on_phase(phase)
    batches = batches_for(agent, rng)
    agent.update(batches)  # the first update (LOMPO / COMBO: the model's warm-up)
    if phase == "online":
        agent.on_episode(episode(rng), True)  # the next update re-encodes the real buffer
    with HostReads() as hook:
        metrics = agent.update(batches)  # LOMPO / COMBO: the real buffer encoded, rollouts, the agent
    if phase:
        assert agent.encoded == len(agent.episodes) and len(agent.model) > 0
        assert ("model_loss" in metrics) == (phase == "online")  # offline: the frozen model
    assert not hook.reads, f"{algo}: host reads inside an update:\n" + "\n".join(hook.reads)
    assert metrics  # the update ran (its metrics stay device tensors until the protocol logs them)
