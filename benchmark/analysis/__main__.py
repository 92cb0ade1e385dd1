"""python -m benchmark.analysis RESULTS_DIR --out DIR"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.core.cli import Parser, UsageError, check_out, entry
from benchmark.tasks.profiles import PROFILES


def _csv(s: str) -> list[str]:
    return [x.strip() for x in s.split(",") if x.strip()]


def _seeds(s: str) -> list[int]:
    try:
        return [int(x) for x in _csv(s)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds takes comma-separated integers, got {s!r}") from None


def _positive(name: str, minimum: int):
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} takes an integer, got {s!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {v}")
        return v

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m benchmark.analysis",
        description="Read every run directory under RESULTS_DIR (any folder holding config.json) and "
        "write the paper's figures, rliable statistics, tables next to the paper's numbers and one "
        "report (report.html, opens from disk; report.md) into --out.",
        epilog="Outputs: OUT/report.html, OUT/report.md, OUT/figures/*.png|pdf (curves_<domain>, "
        "ablations_<domain>, datasize, aggregates_<domain>[_<dataset family>], profiles_<domain>, "
        "poi_<domain>, sample_efficiency_<domain>, reward_prediction_*, uncertainty_*), OUT/tables/*.csv "
        "(runs, datasets, metrics_tidy.csv.gz, curves, curves_datasize, final_per_run, final_success, "
        "aggregates_<domain>, poi_<domain>, profiles_<domain>, sample_efficiency_<domain>, missing), "
        "OUT/gifs/ (last evaluation GIF per run).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("results_dir", type=Path, help="folder holding run directories (searched recursively)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for the report, figures and tables (created; existing files are overwritten)",
    )
    p.add_argument(
        "--algos",
        type=_csv,
        default=None,
        help="comma-separated variants or base algorithms to keep (e.g. moto,dreamerv2); default: all",
    )
    p.add_argument(
        "--tasks",
        type=_csv,
        default=None,
        help="comma-separated tasks or domains to keep (e.g. kitchen,metaworld/door-open); default: all",
    )
    p.add_argument(
        "--dataset",
        type=_csv,
        default=None,
        help="comma-separated datasets to keep: a dataset's name (kitchen/scripted-mixed), the source of "
        "subsets (kitchen/mixed: it and its subsets) or the --dataset a run was launched with "
        "(kitchen/scripted); the report lists the datasets found; default: all",
    )
    p.add_argument("--seeds", type=_seeds, default=None, help="comma-separated seeds to keep; default: all")
    p.add_argument(
        "--profile",
        default=None,
        help=f"keep runs of this profile only ({', '.join(PROFILES)}); default: "
        "all, labelled 'method [profile]' when there are several",
    )
    p.add_argument(
        "--reps",
        type=_positive("--reps", 10),
        default=2000,
        help="stratified-bootstrap replications for every 95%% CI (rliable's own default is 50000)",
    )
    p.add_argument("--seed", type=int, default=0, help="random state of the bootstrap")
    p.add_argument(
        "--final-window",
        type=_positive("--final-window", 1),
        default=1,
        help="a run's final success is the mean of its last N evaluations",
    )
    p.add_argument(
        "--include-unfinished",
        action="store_true",
        help="count running, failed and interrupted runs in final scores and aggregates (their last "
        "evaluation so far); by default only finished runs count, the others appear in the "
        "curves and are listed",
    )
    p.add_argument(
        "--reference-method",
        default="moto",
        help="method X of the probability of improvement P(X > baseline), and whose variants form the "
        "ablation figure",
    )
    p.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="CSV of the paper's numbers (columns figure,task,variant,metric,value,unit,source); "
        "default: results/paper_reference.csv of this repository",
    )
    p.add_argument(
        "--max-points",
        type=_positive("--max-points", 2),
        default=100,
        help="points per learning curve (the union of the runs' evaluation steps, thinned)",
    )
    p.add_argument(
        "--sample-points",
        type=_positive("--sample-points", 2),
        default=20,
        help="points per sample-efficiency (IQM vs steps) curve",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar while reading runs")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from benchmark.analysis.pipeline import InputError, Options, analyze

    if not args.results_dir.is_dir():
        print(
            f"error: results directory {args.results_dir} does not exist or is not a folder", file=sys.stderr
        )
        return 2
    try:
        check_out(args.out)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.reference is not None and not args.reference.is_file():
        print(f"error: reference file {args.reference} does not exist", file=sys.stderr)
        return 2
    o = Options(
        reps=args.reps,
        seed=args.seed,
        max_points=args.max_points,
        sample_points=args.sample_points,
        final_window=args.final_window,
        include_unfinished=args.include_unfinished,
        reference_method=args.reference_method,
        algos=args.algos,
        tasks=args.tasks,
        datasets=args.dataset,
        seeds=args.seeds,
        profile=args.profile,
        reference_file=args.reference,
        progress=not args.no_progress,
    )
    try:
        A = analyze(args.results_dir, args.out, o)
    except InputError as e:  # bad input only: any other error is a bug and keeps its traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    runs = A.results.runs
    nfig = sum(len(v) for v in A.figures.values())
    print(
        f"{len(runs)} runs ({', '.join(f'{k} {v}' for k, v in runs['status'].value_counts().items())}), "
        f"{nfig} figures, {len(A.flags.items)} flags, {len(A.missing)} missing, in {A.seconds:.1f} s"
    )
    ds = A.tables["datasets"]
    print(f"datasets: {', '.join(f'{r.dataset} ({r.kind}, {r.runs} runs)' for r in ds.itertuples())}")
    print(f"report: {(A.out / 'report.html').resolve()}")
    return 0


if __name__ == "__main__":
    entry(main)
