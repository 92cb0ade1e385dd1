"""What long work shows on a terminal: a progress bar with steps/s (``Progress``) and plain-text tables
(``print_table``, for the dataset and speed CLIs)."""

from __future__ import annotations

import math
import sys
import time

from tqdm import tqdm


def _fmt(x) -> str:
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:.3f}"
    return str(x)


def print_table(rows: list[dict], columns: list[str]) -> None:
    cells = [[_fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


class Progress:
    """A tqdm bar on a terminal; elsewhere (a log file, a SLURM job) one line every ``every`` seconds.
    The rate and ETA start after the first update, so compilation does not distort them."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool = True, every: float = 30.0):
        self.total, self.n, self.desc, self.every = total, initial, desc, every
        self.enabled, self.tty = enabled, sys.stderr.isatty()
        self.info: dict = {}
        self._t0 = None  # set after the first update
        self._n0 = initial
        self._last_line = time.time()
        self.bar = None
        if enabled and self.tty:
            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit="upd",
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
            )

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._t0 is None:  # the first update (compiling) is not a rate sample
            self._t0, self._n0 = time.time(), self.n
            if self.bar is not None:
                self.bar.bar_format = None  # the default format, with rate and ETA from here on
                self.bar.start_t, self.bar.initial = self.bar._time(), self.n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and time.time() - self._last_line >= self.every:
            self._line()

    def _line(self) -> None:
        self._last_line = now = time.time()
        rate = (self.n - self._n0) / max(now - (self._t0 or now), 1e-9)
        eta = (self.total - self.n) / rate if rate > 0 else float("nan")
        extra = " ".join(f"{k}={v}" for k, v in self.info.items())
        print(
            f"{self.desc}: {self.n}/{self.total} updates, {rate:.2f} upd/s, ETA {eta / 60:.1f} min {extra}",
            file=sys.stderr,
            flush=True,
        )

    def note(self, **info) -> None:
        self.info.update(info)
        if self.bar is not None:
            self.bar.set_postfix(self.info, refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
