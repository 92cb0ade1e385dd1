"""``python -m benchmark.perf store [--tasks TASK] [--data-dir DIR]``: the episode store's memory against the
raw frame bytes, and its sampling speed (one thread, then through the prefetch thread), on a dataset and on a
synthetic store of Kitchen's size."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from benchmark.core.cli import Parser
from benchmark.perf.common import best_rate, print_table


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _synthetic_episode(rng, T: int, action_dim: int) -> dict:
    return {
        "image": rng.integers(0, 256, (T + 1, 64, 64, 3), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (T, action_dim)).astype(np.float32),
        "reward": rng.integers(0, 5, T).astype(np.float32),
        "success": np.zeros(T, bool),
        "terminal": np.zeros(T, bool),
    }


# The store before v2 (per-episode gathers), measured on drawer-open's 1,010 frames: the targets' baseline.
STORE_V1 = {"transitions/s": "15-30", "sequences/s": "~440"}


def bench_store(name: str, episodes, n_online: int = 0, online_T: int = 280, batch: int = 256) -> dict:
    """Memory of the episode store against the raw frame bytes, and sampling speed (one thread;
    then with the prefetch thread, as the protocol runs it)."""
    from algorithms.contract import Sequences, Transitions
    from benchmark.core.replay import BatchSampler, EpisodeStore, sampling_rng

    rss0 = _rss_mb()
    store = EpisodeStore()
    for ep in episodes:
        store.add(ep)
    rng = np.random.default_rng(1)
    for _ in range(n_online):
        store.add(_synthetic_episode(rng, online_T, store._arr["action_in"].shape[1]), online=True)
    raw = store.frame_bytes
    rss = _rss_mb() - rss0
    step = iter(range(10**9))
    tr, sq = Transitions(batch, framestack=3), Sequences(16, 50)
    transitions = best_rate(lambda: store.sample(tr, sampling_rng(0, next(step), 0)), 30)
    sequences = best_rate(lambda: store.sample(sq, sampling_rng(0, next(step), 1)), 30)
    sampler = BatchSampler(store, {"q": tr}, seed=0, depth=2)
    t = time.perf_counter()
    for _ in sampler.block(0, 60):
        pass
    prefetched = 60 / (time.perf_counter() - t)
    sampler.close()
    return {
        "store": name,
        "episodes": store.num_episodes,
        "frames": store.n_frames,
        "raw_frame_MB": raw / 2**20,
        "store_MB": store.nbytes() / 2**20,
        "store/raw": store.nbytes() / raw,
        "RSS_growth/raw": rss * 2**20 / raw,
        f"trans/s B={batch},k=3": transitions,
        "trans/s prefetched": prefetched,
        "seq/s 16x50": sequences,
    }


def store_main(data_dir, task: str) -> int:
    from benchmark.datasets import iter_episodes

    rows = []
    if (data_dir / task / "manifest.json").exists():
        rows.append(bench_store(task, iter_episodes(data_dir / task)))
    else:
        print(
            f"(no dataset at {data_dir / task}: `python -m benchmark.datasets generate {task}` adds its row)"
        )
    rng = np.random.default_rng(0)
    # Kitchen size: the paper's 563 demonstrations (128,569 transitions) plus 50 online episodes of 280 steps.
    lengths = np.full(563, 128_569 // 563)
    lengths[: 128_569 - lengths.sum()] += 1
    rows.append(
        bench_store(
            "kitchen-size (synthetic)", (_synthetic_episode(rng, int(T), 9) for T in lengths), n_online=50
        )
    )
    print_table(rows, list(rows[0]))
    per_frame = rows[-1]["store_MB"] * 2**20 / rows[-1]["frames"]
    full = 128_569 + 563 + (66_300 // 50) * 281  # a full Kitchen run: the dataset and every online episode
    print(
        f"targets: >= 300 transition batches/s (B=256, k=3), >= 1,000 sequence batches/s (16x50), "
        f"store <= 1.05x the raw frames; the v1 store did {STORE_V1['transitions/s']} and "
        f"{STORE_V1['sequences/s']} on drawer-open."
    )
    print(
        f"a full Kitchen run holds {full:,} frames: {full * per_frame / 2**30:.2f} GiB in the store "
        f"(reserved up front; pages are committed as frames arrive)"
    )
    return 0


def main(argv=None) -> int:
    from benchmark.tasks import default_data_dir

    p = Parser(prog="python -m benchmark.perf store", description=__doc__)
    p.add_argument(
        "--tasks", default="metaworld/drawer-open", help="the dataset measured (default: %(default)s)"
    )
    p.add_argument(
        "--data-dir", default=None, help="datasets folder (default: $BENCHMARK_DATA_DIR, else datasets/)"
    )
    args = p.parse_args(argv)
    root = Path(args.data_dir) if args.data_dir else default_data_dir()
    return store_main(root, args.tasks.split(",")[0].strip())
