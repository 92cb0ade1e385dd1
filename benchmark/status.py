"""``python -m benchmark.status``: kept as the command users type; the module is
``benchmark.launch.status``."""

import sys

from benchmark.launch.status import main

if __name__ == "__main__":
    sys.exit(main())
