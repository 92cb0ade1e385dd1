"""A plugin for subprocess tests (``--import tests/helpers/slow_bc.py``): BC that sleeps in every update,
so a test can signal or race a run while it is in a given phase. Registers ``slow-bc``."""

import os
import time

import algorithms
from algorithms.bc import BCAgent, BCConfig

DELAY = float(os.environ.get("SLOW_BC_DELAY", "0.4"))


class SlowBC(BCAgent):
    def update(self, batches):
        time.sleep(DELAY)
        return super().update(batches)


if "slow-bc" not in algorithms.REGISTRY:
    algorithms.register("slow-bc", BCConfig, SlowBC)
