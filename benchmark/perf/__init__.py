"""Speed benchmarks (``python -m benchmark.perf --help``); nothing here runs in tests' timing."""
