"""``python -m benchmark.perf run --breakdown``: every part of a real (smoke) run timed, exclusively."""

import pytest

from benchmark.core.protocol import Runner
from benchmark.launch.plan import plan, plan_args
from benchmark.perf.breakdown import PARTS, Breakdown


def test_the_parts_of_a_smoke_run_add_up_to_its_wall_time_and_unwrap_after(tmp_path, drawer_open_data):
    (r,) = plan(plan_args(algos="moto", profile="smoke", out=str(tmp_path), data_dir=str(drawer_open_data)))
    build = Runner.__dict__["_build"]
    with Breakdown() as b:
        Runner(r, progress=False, log_every=1).run()
    assert Runner.__dict__["_build"] is build  # everything patched is restored
    rows = {row["part"]: row for row in b.rows()}
    s = r.schedule
    assert rows["model update"]["calls"] == s.offline_steps + s.online_steps
    assert rows["actor-critic update"]["calls"] == rows["model update"]["calls"]  # MOTO's train_agent
    assert (
        rows["eval: acting"]["calls"]
        == s.eval_episodes * (1 + s.online_episodes) * r.env_overrides["episode_length"]
    )
    assert rows["diagnostics"]["calls"] == 1 + s.online_episodes and rows["GIFs"]["calls"] >= 1
    timed = sum(v for k, v in b.seconds.items() if k in PARTS)
    assert timed <= b.wall + 1e-6 and b.wall == pytest.approx(rows["run (wall)"]["s"], abs=0.01)
    assert rows["other"]["s"] == pytest.approx(b.wall - timed, abs=0.02)


def test_a_jax_learners_update_is_timed_until_its_results_exist(tmp_path, drawer_open_data, monkeypatch):
    """JAX dispatches asynchronously: the breakdown waits for a JAX learner's new state inside the
    update's timer (else its time lands in "other"); an agent without JAX state gets no wait."""
    import types

    import torch

    from benchmark.perf import breakdown

    (r,) = plan(plan_args(algos="bc", profile="smoke", out=str(tmp_path), data_dir=str(drawer_open_data)))
    waits = []
    real = breakdown._jax_sync

    def counting(agent):
        sync = real(agent)
        return None if sync is None else (lambda out: waits.append(sync(out)))

    monkeypatch.setattr(breakdown, "_jax_sync", counting)
    with Breakdown() as b:
        Runner(r, progress=False, log_every=1).run()
    s = r.schedule
    updates = s.offline_steps + s.online_steps
    assert {row["part"]: row for row in b.rows()}["model update"]["calls"] == updates
    assert len(waits) == updates  # every update of the JAX learner waited inside its timer
    assert real(types.SimpleNamespace(state={"w": torch.zeros(2)})) is None
    assert real(types.SimpleNamespace()) is None
