"""``python -m benchmark.status``: kept as the command users type; the module is
``benchmark.launch.status``."""

from benchmark.core.cli import entry
from benchmark.launch.status import main

if __name__ == "__main__":
    entry(main)
