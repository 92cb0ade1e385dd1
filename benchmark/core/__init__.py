"""One run: the offline-to-online loop and what it writes.

protocol.py  Runner: the loop (offline phase, online episodes, evaluation), checkpoints, exact resume
replay.py    EpisodeStore (one frame array, index gathers, filters) and BatchSampler (prefetch thread)
rundir.py    the run-directory format: naming, finding runs, lock, state, metrics.csv, checkpoints
livelog.py   TensorBoard / W&B mirror of metrics.csv, evaluation GIFs
console.py   progress bar and text tables
"""
