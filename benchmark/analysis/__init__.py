"""Analysis: run directories -> one tidy DataFrame -> rliable statistics -> figures, tables, one report.

Reads run directories only (``config.json``, ``status.json``, ``metrics.csv``, ``gifs/``,
``diagnostics/``); it never imports training code, JAX or torch, so figures can be regenerated anywhere
from copied results. ``python -m benchmark.analysis --help`` for the CLI.

    from benchmark.analysis import load_runs, analyze, Options
    res = load_runs("results/")          # res.metrics (tidy), res.runs (one row per run), res.problems
    analyze("results/", "analysis/")     # tables/, figures/ (PNG + PDF), gifs/, report.html, report.md
"""

from benchmark.analysis.load import Results, find_run_dirs, load_runs
from benchmark.analysis.pipeline import Analysis, Options, analyze

__all__ = ["Results", "find_run_dirs", "load_runs", "Analysis", "Options", "analyze"]
