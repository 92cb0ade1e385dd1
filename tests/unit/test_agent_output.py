"""An agent's act() output is checked on its first call (shape (action_dim,), float, finite) and a wrong
one stops the run with one line; the docs' example agent takes its action size from its context."""

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import algorithms
from algorithms import RunContext
from algorithms.contract import check_action
from benchmark.core.protocol import Runner, RunSpec
from benchmark.tasks import get_task
from benchmark.tasks.profiles import schedule_for

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "action, received",
    [
        (np.zeros(4, np.float32), "shape (4,), dtype float32"),
        (np.zeros((1, 9), np.float32), "shape (1, 9), dtype float32"),
        (np.zeros(9, np.int64), "shape (9,), dtype int64"),
        (np.full(9, np.nan, np.float32), "shape (9,), dtype float32, non-finite values"),
        ("left", "shape (), dtype <U4"),
    ],
)
def test_a_wrong_action_is_one_line_naming_the_algorithm_and_both_shapes(action, received):
    with pytest.raises(TypeError) as err:
        check_action(action, 9, "my-algo")
    msg = str(err.value)
    assert msg.startswith(f"algorithm 'my-algo': act() returned {received}; expected shape (9,)"), msg
    assert "\n" not in msg


def test_a_right_action_passes_in_any_float_dtype():
    assert check_action([0.5] * 9, 9, "x").shape == (9,)
    assert check_action(np.zeros(9, np.float16), 9, "x").dtype == np.float16


class FakeEnv:
    """Kitchen's action space (9,) and 3-step episodes; records the actions it executes."""

    action_space = SimpleNamespace(low=-np.ones(9, np.float32), high=np.ones(9, np.float32))

    def __init__(self):
        self.actions = []

    def reset(self, seed):
        return np.zeros((64, 64, 3), np.uint8), {}

    def step(self, action):
        self.actions.append(action)
        return np.zeros((64, 64, 3), np.uint8), 0.0, False, len(self.actions) % 3 == 0, {"success": False}


class Agent:
    act_stack = 1

    def __init__(self, dim):
        self.dim = dim

    def act(self, obs, state, explore):
        return np.zeros(self.dim, np.float32), state


def _runner():
    spec = get_task("kitchen/mixed")
    run = RunSpec(spec, "my-algo", None, schedule_for(spec, "smoke"), 0, Path("."), Path("."))
    return Runner(run, progress=False)


def test_the_protocol_stops_at_the_first_wrong_action_before_the_env_steps():
    env = FakeEnv()
    with pytest.raises(
        TypeError, match=re.escape("'my-algo': act() returned shape (4,), dtype float32; expected shape (9,)")
    ):
        _runner().rollout(env, Agent(4), True, 0)
    assert env.actions == []  # stopped before the environment saw it (no broadcasting error mid-episode)
    ep = _runner().rollout(env, Agent(9), True, 0)
    assert ep["action"].shape == (3, 9)


def _python_block(path: Path) -> str:
    text = path.read_text()
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if 'register("my-algo"' in b]
    return block


@pytest.mark.parametrize("doc", ["docs/adding-an-algorithm.md", "README.md"])
@pytest.mark.parametrize("action_dim", [4, 9])
def test_the_docs_example_agent_acts_in_the_size_of_its_context(doc, action_dim, monkeypatch):
    monkeypatch.setattr(algorithms, "REGISTRY", dict(algorithms.REGISTRY))
    exec(compile(_python_block(REPO / doc), doc, "exec"), {"__name__": "docs_example"})
    entry = algorithms.get("my-algo")
    context = RunContext(obs_shape=(64, 64, 3), action_dim=action_dim, seed=0, total_updates=10)
    agent = entry.make(entry.config_cls(), context)
    obs = np.zeros((agent.act_stack, 64, 64, 3), np.uint8)
    action, _ = agent.act(obs, None, False)
    assert check_action(action, action_dim, "my-algo").shape == (action_dim,)
