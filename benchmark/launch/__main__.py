"""``python -m benchmark.launch child '<json>'``: how the local and SLURM launchers start one run."""

import sys

from benchmark.launch.execute import cli

sys.exit(cli())
