"""EpisodeStore: the offline dataset plus every online episode, each frame stored once.

Layout: one contiguous uint8 array of frames (all episodes back to back, T+1 frames per episode)
and, per frame, what led into it (Dreamer's layout): ``action_in[i]`` is the action whose result is
frame i (zeros at an episode's first frame), likewise ``reward_in``, ``terminal_in``, ``success_in``
and ``goal_in``; plus ``is_first``/``is_last`` and the frame's episode. A transition starting at
frame g is then (frames g-k+1..g, action_in[g+1], reward_in[g+1], frames g-k+2..g+1): one gather of
a (B, k+1) index grid, with ``obs``/``next_obs`` as views. A sequence is one gather of a (B, L) grid.

Sampling is uniform over a flat table of valid start frames (one table per window size and
filter, rebuilt only when an episode is added; ``Sequences``' ``cross_episodes`` and
``prioritize_ends`` draw from the table of kept frames and of long-enough episodes instead), with a
caller-supplied ``numpy.random.Generator``:
the protocol keys it by (seed, gradient step, request), so a batch depends on nothing but the
store's content and those three numbers. That is what makes background prefetching and exact
resume compatible (``BatchSampler``).

Memory: ``reserve(n)`` allocates room for n frames up front (the protocol knows the run's total:
dataset + online episodes); untouched pages of that allocation are never committed by the OS, so
the resident size tracks the frames actually stored. Without a reservation the arrays grow by 25%.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator

import numpy as np

from algorithms.contract import FILTERS, Sequences, Transitions

# Per-frame arrays besides the frames: name -> dtype (action_in is 2-D).
_PER_FRAME = {
    "reward_in": np.float32,
    "terminal_in": bool,
    "success_in": bool,
    "goal_in": bool,
    "is_first": bool,
    "is_last": bool,
    "online": bool,
    "episode_goal": bool,
}
# Per-step episode fields that some tasks carry (the dataset format's optional (T, K) arrays): kept
# when the store's first episode has them, so that ``episode(e)`` hands agents what a task's goal
# rule reads (Kitchen: ``objects_done``). Stored as ``<name>_in`` in the frame layout.
_OPTIONAL_STEPS = {"objects_done": bool}


def sampling_rng(seed: int, step: int, request: int) -> np.random.Generator:
    """The generator for one batch: a pure function of (run seed, gradient step, request index)."""
    return np.random.default_rng([seed, step, request])


class EpisodeStore:
    def __init__(self, goal_fn: Callable[[dict], np.ndarray] | None = None, grow: float = 1.25):
        """``goal_fn(episode) -> (T,) bool``: does the task's goal hold after step t (default: the
        episode's ``success`` flags). It defines the ``goal`` filter and the ``goal`` flags."""
        self.goal_fn = goal_fn or (lambda ep: np.asarray(ep["success"], bool))
        self.grow = grow
        self.frames: np.ndarray | None = None
        self._arr: dict[str, np.ndarray] = {}
        self.n_frames = 0
        self.ep_start: list[int] = []  # first frame of each episode
        self.ep_len: list[int] = []  # transitions (T) of each episode
        self.ep_online: list[bool] = []
        self.ep_goal: list[bool] = []
        self._frame_ep = np.zeros(0, np.int32)  # episode of each frame
        self._tables: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()

    # -- memory --------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return 0 if self.frames is None else len(self.frames)

    def _allocate(self, frame_shape, action_dim, capacity: int) -> None:
        old_n = self.n_frames
        frames = np.empty((capacity, *frame_shape), np.uint8)
        arrays = {
            "action_in": np.empty((capacity, action_dim), np.float32),
            **{k: np.empty(capacity, dt) for k, dt in _PER_FRAME.items()},
            **{
                k: np.empty((capacity, *v.shape[1:]), v.dtype)
                for k, v in self._arr.items()
                if k not in _PER_FRAME and k != "action_in"
            },
        }
        frame_ep = np.empty(capacity, np.int32)
        if self.frames is not None:
            frames[:old_n] = self.frames[:old_n]
            for k, v in self._arr.items():
                arrays[k][:old_n] = v[:old_n]
            frame_ep[:old_n] = self._frame_ep[:old_n]
        self.frames, self._arr, self._frame_ep = frames, arrays, frame_ep

    def reserve(self, n_frames: int, frame_shape=None, action_dim: int | None = None) -> None:
        """Make room for ``n_frames`` frames in total (call before adding, with the shapes, or after
        the first episode)."""
        if self.frames is None:
            if frame_shape is None or action_dim is None:
                raise ValueError("reserve() on an empty store needs frame_shape and action_dim")
            self._allocate(tuple(frame_shape), action_dim, n_frames)
        elif n_frames > self.capacity:
            self._allocate(self.frames.shape[1:], self._arr["action_in"].shape[1], n_frames)

    def nbytes(self) -> int:
        """Bytes holding stored data (frames and per-frame arrays of the frames in use)."""
        if self.frames is None:
            return 0
        per_frame = self.frames[0].nbytes + sum(v[0:1].nbytes for v in self._arr.values()) + 4
        return self.n_frames * per_frame

    @property
    def frame_bytes(self) -> int:
        return 0 if self.frames is None else self.n_frames * self.frames[0].nbytes

    # -- filling -------------------------------------------------------------------------------
    def add(self, episode: dict[str, np.ndarray], online: bool = False) -> int:
        """Append an episode (``image`` (T+1, H, W, C) uint8, ``action`` (T, A), ``reward``, ``success``,
        ``terminal`` (T,)); returns its index. Not thread-safe against sampling: the protocol adds
        episodes only while no batch is being prefetched."""
        image = np.asarray(episode["image"])
        T = len(episode["action"])
        if image.ndim != 4 or image.dtype != np.uint8:
            raise ValueError(f"episode images must be (T+1, H, W, C) uint8, got {image.shape} {image.dtype}")
        if image.shape[0] != T + 1:
            raise ValueError(f"an episode needs T+1 images for T actions, got {image.shape[0]} and {T}")
        if T < 1:
            raise ValueError("an episode needs at least one transition")
        action = np.asarray(episode["action"], np.float32)
        if self.frames is not None:
            if image.shape[1:] != self.frames.shape[1:]:
                raise ValueError(
                    f"image shape {image.shape[1:]} differs from the store's {self.frames.shape[1:]}"
                )
            if action.shape[1] != self._arr["action_in"].shape[1]:
                raise ValueError(
                    f"action dim {action.shape[1]} differs from the store's {self._arr['action_in'].shape[1]}"
                )
        goal = np.asarray(self.goal_fn(episode), bool)
        if goal.shape != (T,):
            raise ValueError(f"goal_fn must return ({T},) bool flags, got {goal.shape}")
        optional = self._optional_steps(episode, T)
        n = T + 1
        if self.frames is None:
            self._allocate(image.shape[1:], action.shape[1], n)
        elif self.n_frames + n > self.capacity:
            self._allocate(
                self.frames.shape[1:], action.shape[1], max(self.n_frames + n, int(self.capacity * self.grow))
            )
        if self.n_frames == 0:  # the first episode decides which optional fields the store keeps
            for k, v in optional.items():
                self._arr.setdefault(f"{k}_in", np.empty((self.capacity, *v.shape[1:]), v.dtype))
        s = slice(self.n_frames, self.n_frames + n)
        a = self._arr
        self.frames[s] = image
        a["action_in"][s] = np.concatenate([np.zeros((1, action.shape[1]), np.float32), action])

        def shifted(x, dtype):
            return np.concatenate([np.zeros(1, dtype), np.asarray(x, dtype)])

        a["reward_in"][s] = shifted(episode["reward"], np.float32)
        for k, v in optional.items():
            a[f"{k}_in"][s] = np.concatenate([np.zeros((1, *v.shape[1:]), v.dtype), v])
        a["terminal_in"][s] = shifted(episode["terminal"], bool)
        a["success_in"][s] = shifted(episode["success"], bool)
        a["goal_in"][s] = shifted(goal, bool)
        a["is_first"][s] = False
        a["is_first"][s.start] = True
        a["is_last"][s] = False
        a["is_last"][s.stop - 1] = True
        a["online"][s] = online
        a["episode_goal"][s] = goal.any()
        e = len(self.ep_start)
        self._frame_ep[s] = e
        self.ep_start.append(s.start)
        self.ep_len.append(T)
        self.ep_online.append(online)
        self.ep_goal.append(bool(goal.any()))
        self.n_frames += n
        self._tables.clear()
        return e

    def _optional_steps(self, episode: dict, T: int) -> dict[str, np.ndarray]:
        """The episode's optional per-step fields, checked against what the store keeps."""
        out = {}
        for k, dt in _OPTIONAL_STEPS.items():
            kept = f"{k}_in" in self._arr
            if k not in episode:
                if kept:
                    raise ValueError(
                        f"the episode has no {k!r}, which the store's other episodes carry "
                        f"(every episode of a task must carry the same fields)"
                    )
                continue
            v = np.asarray(episode[k], dt)
            if len(v) != T:
                raise ValueError(f"episode field {k!r} has {len(v)} rows for {T} actions")
            if self.n_frames and not kept:
                raise ValueError(
                    f"the episode carries {k!r}, which the store's earlier episodes lack "
                    f"(every episode of a task must carry the same fields)"
                )
            if kept and v.shape[1:] != self._arr[f"{k}_in"].shape[1:]:
                raise ValueError(
                    f"episode field {k!r} has shape {v.shape[1:]} per step, the store's "
                    f"{self._arr[f'{k}_in'].shape[1:]}"
                )
            out[k] = v
        return out

    # -- views ---------------------------------------------------------------------------------
    @property
    def num_episodes(self) -> int:
        return len(self.ep_start)

    @property
    def num_transitions(self) -> int:
        return int(sum(self.ep_len))

    def episode(self, e: int) -> dict[str, np.ndarray]:
        """Episode ``e`` as stored, in the dataset's layout (views into the store), with the optional
        per-step fields the store keeps (e.g. Kitchen's ``objects_done``)."""
        s, T = self.ep_start[e], self.ep_len[e]
        a = self._arr
        steps = slice(s + 1, s + T + 1)
        return {
            "image": self.frames[s : s + T + 1],
            "action": a["action_in"][steps],
            "reward": a["reward_in"][steps],
            "terminal": a["terminal_in"][steps],
            "success": a["success_in"][steps],
            "goal": a["goal_in"][steps],
            **{k: a[f"{k}_in"][steps] for k in _OPTIONAL_STEPS if f"{k}_in" in a},
        }

    def global_index(self, e: int, t: int) -> int:
        return self.ep_start[e] + t

    # -- sampling --------------------------------------------------------------------------------
    def starts(self, window: int, filter: str = "all") -> np.ndarray:
        """Frames from which ``window`` consecutive frames stay inside their episode, kept by ``filter``."""
        if filter not in FILTERS:
            raise ValueError(f"unknown filter {filter!r}; choose one of {', '.join(FILTERS)}")
        key = (window, filter)
        table = self._tables.get(key)
        if table is None:
            n = self.n_frames
            ep = self._frame_ep[:n]
            last = np.asarray(self.ep_start, np.int64)[ep] + np.asarray(self.ep_len, np.int64)[ep]
            ok = np.arange(n) + window - 1 <= last
            if filter == "online":
                ok &= self._arr["online"][:n]
            elif filter == "offline":
                ok &= ~self._arr["online"][:n]
            elif filter == "goal":
                ok &= self._arr["episode_goal"][:n]
            elif filter == "offline_goal":
                ok &= self._arr["episode_goal"][:n] & ~self._arr["online"][:n]
            table = np.flatnonzero(ok)
            table.setflags(write=False)  # shared by every sampler (and returned by stream())
            with self._lock:
                self._tables[key] = table
        return table

    def episodes_with(self, window: int, filter: str = "all") -> np.ndarray:
        """Episodes with at least ``window`` frames that ``filter`` keeps (for ``prioritize_ends``)."""
        key = ("episodes", window, filter)
        table = self._tables.get(key)
        if table is None:
            starts = np.asarray(self.ep_start, np.int64)
            frames = np.asarray(self.ep_len, np.int64) + 1
            kept = np.isin(starts, self.starts(1, filter))  # an episode is kept whole or not at all
            table = np.flatnonzero(kept & (frames >= window))
            table.setflags(write=False)
            with self._lock:
                self._tables[key] = table
        return table

    def _draw_prioritizing_ends(
        self, rng: np.random.Generator, n: int, window: int, filter: str
    ) -> np.ndarray:
        """DreamerV2's draw: an episode uniformly, then start = min(U{0 .. frames - L + L}, frames - L)."""
        eps = self.episodes_with(window, filter)
        if len(eps) == 0:
            raise self._nothing_to_sample(window, filter)
        e = eps[rng.integers(0, len(eps), n)]
        frames = np.asarray(self.ep_len, np.int64)[e] + 1
        start = np.minimum(rng.integers(0, frames - window + 1 + window), frames - window)
        return np.asarray(self.ep_start, np.int64)[e] + start

    def stream(self, filter: str = "all") -> np.ndarray:
        """Every frame ``filter`` keeps, in storage order: the frames that ``cross_episodes`` windows run
        along."""
        return self.starts(1, filter)

    def _stream_windows(self, rng: np.random.Generator, n: int, length: int, filter: str) -> np.ndarray:
        """Global frames (n, length) of windows along ``stream(filter)``, uniform starts, wrapping round."""
        kept = self.stream(filter)
        if len(kept) == 0:
            raise ValueError(f"no episode to sample from: none passes the {filter!r} filter")
        j = rng.integers(0, len(kept), n)
        return kept[(j[:, None] + np.arange(length)) % len(kept)]

    @staticmethod
    def _nothing_to_sample(window: int, filter: str) -> ValueError:
        return ValueError(
            f"no episode to sample from: none has {window} frames"
            f"{'' if filter == 'all' else f' and passes the {filter!r} filter'}"
        )

    def _draw(self, rng: np.random.Generator, n: int, window: int, filter: str) -> np.ndarray:
        table = self.starts(window, filter)
        if len(table) == 0:
            raise self._nothing_to_sample(window, filter)
        return table[rng.integers(0, len(table), n)]

    def frame_buffer(self, request: Transitions | Sequences) -> np.ndarray:
        """An empty array for a request's frames (``sample(..., out=)``); see ``BatchSampler``."""
        n = request.framestack + 1 if isinstance(request, Transitions) else request.length
        return np.empty((request.batch, n, *self.frames.shape[1:]), np.uint8)

    def sample(
        self, request: Transitions | Sequences, rng: np.random.Generator, out: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        if isinstance(request, Transitions):
            B = request.batch
            if request.online_fraction is not None and len(self.starts(2, "online")):
                n_on = int(round(B * request.online_fraction))
                on = self._draw(rng, n_on, 2, "online") if n_on else np.zeros(0, np.int64)
                off_filter = "offline" if request.filter == "all" else request.filter
                off = self._draw(rng, B - n_on, 2, off_filter) if B - n_on else np.zeros(0, np.int64)
                g = np.concatenate([on, off])
            else:  # no online data yet: everything from what the filter keeps
                g = self._draw(rng, B, 2, request.filter)
            return self.transitions(g, request.framestack, out)
        if isinstance(request, Sequences):
            if request.cross_episodes:
                return self._gather_sequences(
                    self._stream_windows(rng, request.batch, request.length, request.filter), out
                )
            draw = self._draw_prioritizing_ends if request.prioritize_ends else self._draw
            return self.sequences(
                draw(rng, request.batch, request.length, request.filter), request.length, out
            )
        raise TypeError(f"unknown request {request!r}")

    def transitions(
        self, g: np.ndarray, framestack: int, out: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Transitions starting at global frames ``g`` (B,): frames g-k+1..g+1, clipped at episode starts."""
        k = framestack
        g = np.asarray(g, np.int64)
        grid = g[:, None] + np.arange(-k + 1, 2)
        if k > 1:
            first = np.asarray(self.ep_start, np.int64)[self._frame_ep[g]]
            np.maximum(grid, first[:, None], out=grid)  # the first frame repeats before an episode's start
        # (B, k+1, H, W, C): one gather. mode="clip" (indices are in range by construction): with
        # mode="raise" numpy buffers a take into `out`, several times slower.
        frames = self.frames.take(grid, axis=0, out=out, mode="clip")
        a, nxt = self._arr, g + 1
        return {
            "frames": frames,
            "obs": frames[:, :k],
            "next_obs": frames[:, 1:],
            "action": a["action_in"].take(nxt, axis=0),
            "reward": a["reward_in"].take(nxt),
            "discount": 1.0 - a["terminal_in"].take(nxt).astype(np.float32),
            "terminal": a["terminal_in"].take(nxt),
            "is_last": a["is_last"].take(nxt),
            "success": a["success_in"].take(nxt),
            "goal": a["goal_in"].take(nxt),
            "online": a["online"].take(g),
            "episode_goal": a["episode_goal"].take(g),
        }

    def sequences(
        self, starts: np.ndarray, length: int, out: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        """Windows of ``length`` stored frames from global frames ``starts`` (B,)."""
        return self._gather_sequences(np.asarray(starts, np.int64)[:, None] + np.arange(length), out)

    def _gather_sequences(self, grid: np.ndarray, out: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The sequence batch of the global frames ``grid`` (B, L): one gather per array."""
        a = self._arr
        terminal = a["terminal_in"].take(grid)
        return {
            "image": self.frames.take(grid, axis=0, out=out, mode="clip"),
            "action": a["action_in"].take(grid, axis=0),
            "reward": a["reward_in"].take(grid),
            "discount": 1.0 - terminal.astype(np.float32),
            "is_first": a["is_first"].take(grid),
            "is_last": a["is_last"].take(grid),
            "is_terminal": terminal,
            "success": a["success_in"].take(grid),
            "goal": a["goal_in"].take(grid),
            "episode_goal": a["episode_goal"].take(grid),
            "online": a["online"].take(grid),
        }


class BatchSampler:
    """Batches for every request of an agent, for gradient step ``s`` drawn with
    ``sampling_rng(seed, s, request index)``; ``block(first, n)`` yields the batches of n consecutive
    steps, prefetched ``depth`` ahead in a background thread (numpy's gathers release the GIL, so
    they overlap the update). A block never outlives a change of the store: the protocol adds
    episodes only between blocks, and leaving a block waits for the work in flight."""

    def __init__(self, store: EpisodeStore, requests: dict, seed: int, depth: int = 2):
        self.store, self.requests, self.seed, self.depth = store, dict(requests), seed, depth
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") if depth > 0 else None

    def batch(self, step: int, buffers: dict | None = None) -> dict[str, dict[str, np.ndarray]]:
        buffers = buffers or {}
        return {
            name: self.store.sample(req, sampling_rng(self.seed, step, i), out=buffers.get(name))
            for i, (name, req) in enumerate(self.requests.items())
        }

    def _buffers(self) -> dict:
        # Frame arrays are allocated here, in the consuming thread, and filled by the worker: memory
        # malloc'd and freed by one thread is reused without fresh page faults (a worker's own
        # allocations land in another malloc arena, which returns its pages to the OS each time).
        return {name: self.store.frame_buffer(req) for name, req in self.requests.items()}

    def block(self, first: int, n: int) -> Iterator[dict[str, dict[str, np.ndarray]]]:
        if self._pool is None:
            for s in range(first, first + n):
                yield self.batch(s)
            return
        pending: deque = deque()
        nxt = first
        try:
            for _ in range(n):
                while nxt < first + n and len(pending) < self.depth:
                    pending.append(self._pool.submit(self.batch, nxt, self._buffers()))
                    nxt += 1
                yield pending.popleft().result()
        finally:
            for f in pending:  # leaving early (an error, a signal): let in-flight gathers finish
                f.cancel()
            for f in pending:
                if not f.cancelled():
                    f.exception()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
