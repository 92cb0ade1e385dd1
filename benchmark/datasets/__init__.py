"""Offline datasets: one on-disk format (see ``format``), generators and importers, and a CLI
(``python -m benchmark.datasets {generate,import,subset,verify,stats}``)."""

from benchmark.datasets.format import (  # noqa: F401
    DatasetError,
    DatasetWriter,
    iter_episodes,
    load_episodes,
    read_manifest,
    verify_dataset,
)
