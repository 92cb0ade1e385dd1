"""Every test under tests/integration/ is marked ``slow``: ``python -m pytest -m "not slow"`` is the
fast tier."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)
