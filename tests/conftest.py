"""Fixtures shared by every test: a data dir, and small datasets made once per session. Helper functions
live in ``tests/helpers/`` (a package: ``from tests.helpers.runs import metric_rows``)."""

import pytest

import benchmark.tasks.envs  # noqa: F401  (sets MUJOCO_GL before anything imports mujoco)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "data"
    monkeypatch.setenv("BENCHMARK_DATA_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def drawer_open_data(tmp_path_factory):
    """A data dir holding ``metaworld/drawer-open`` with 2 scripted demonstrations, made once per session."""
    from benchmark.datasets.__main__ import main as datasets_cli

    d = tmp_path_factory.mktemp("drawer-open-data")
    assert (
        datasets_cli(
            ["generate", "metaworld/drawer-open", "--episodes", "2", "--quiet", "--data-dir", str(d)]
        )
        == 0
    )
    return d


@pytest.fixture(scope="session")
def kitchen_scripted_data(tmp_path_factory):
    """A data dir holding ``kitchen/scripted-mixed`` and ``kitchen/scripted-partial``: two full scripted
    episodes (seed 8: one completes the "mixed" objects, the other the "partial" task's first three, so
    both tasks' goal filters keep an episode), made once per session (~15 s)."""
    from benchmark.datasets.__main__ import main as datasets_cli

    d = tmp_path_factory.mktemp("kitchen-scripted-data")
    assert (
        datasets_cli(
            ["generate", "kitchen", "--episodes", "2", "--seed", "8", "--quiet", "--data-dir", str(d)]
        )
        == 0
    )
    return d
