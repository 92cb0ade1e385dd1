"""EpisodeStore: the offline dataset plus every online episode, frames stored once.

Each episode keeps its own uint8 frame array (T+1 images) and per-step arrays; nothing is copied
to build frame stacks or next observations: a sample is a list of indices gathered at batch time.

* ``sample_transitions(batch, framestack=k)`` -> obs (B, H, W, 3k), action, reward, next_obs,
  discount (0 at a true terminal), as in jaxrl2: frames t-k+1..t (the first frame repeated before
  an episode's start) and t-k+2..t+1.
* ``sample_sequences(batch, length=L)`` -> image (B, L, H, W, 3), action (B, L, A) (the action
  *into* each frame, zero for an episode's first frame, as in Dreamer), reward (B, L), is_first,
  discount: windows inside one episode.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

PER_STEP = ("action", "reward", "success", "terminal")


class EpisodeStore:
    def __init__(self, seed: int = 0):
        self.episodes: list[dict[str, np.ndarray]] = []
        self.online: list[bool] = []
        self._lengths: list[int] = []
        self._rng = np.random.default_rng(seed)

    # -- filling -----------------------------------------------------------------------------
    def add(self, episode: dict[str, np.ndarray], online: bool = False) -> None:
        T = len(episode["action"])
        if episode["image"].shape[0] != T + 1:
            raise ValueError(f"an episode needs T+1 images for T actions, got {episode['image'].shape[0]} and {T}")
        if self.episodes and episode["image"].shape[1:] != self.episodes[0]["image"].shape[1:]:
            raise ValueError(f"image shape {episode['image'].shape[1:]} differs from the store's "
                             f"{self.episodes[0]['image'].shape[1:]}")
        self.episodes.append(episode)
        self.online.append(online)
        self._lengths.append(T)

    @property
    def num_transitions(self) -> int:
        return int(sum(self._lengths))

    @property
    def frame_bytes(self) -> int:
        return int(sum(ep["image"].nbytes for ep in self.episodes))

    def nbytes(self) -> int:
        return int(sum(arr.nbytes for ep in self.episodes for arr in ep.values()))

    def goal_mask(self, reaches_goal: Callable[[dict], bool]) -> np.ndarray:
        """Per episode: does it reach the goal (for filtered BC)."""
        return np.array([reaches_goal(ep) for ep in self.episodes], bool)

    # -- RNG state (for exact resume) ---------------------------------------------------------
    def rng_state(self) -> dict:
        return self._rng.bit_generator.state

    def set_rng_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state

    # -- sampling ------------------------------------------------------------------------------
    def _pick(self, batch: int, weights: np.ndarray | None, min_length: int = 1) -> tuple[np.ndarray, np.ndarray]:
        lengths = np.asarray(self._lengths)
        ok = lengths >= min_length
        if weights is not None:
            ok &= weights
        if not ok.any():
            raise ValueError(f"no episode to sample from (need length >= {min_length}"
                             f"{' and the goal filter' if weights is not None else ''})")
        p = np.where(ok, lengths - min_length + 1, 0).astype(np.float64)
        eps = self._rng.choice(len(lengths), size=batch, p=p / p.sum())  # uniform over valid starts
        starts = np.floor(self._rng.random(batch) * (lengths[eps] - min_length + 1)).astype(np.int64)
        return eps, starts

    def sample_transitions(self, batch: int, framestack: int = 1, mask: np.ndarray | None = None) -> dict:
        eps, ts = self._pick(batch, mask)
        H, W, C = self.episodes[0]["image"].shape[1:]
        obs = np.empty((batch, framestack, H, W, C), np.uint8)
        nxt = np.empty_like(obs)
        A = self.episodes[0]["action"].shape[1]
        out = {"action": np.empty((batch, A), np.float32), "reward": np.empty(batch, np.float32),
               "success": np.empty(batch, bool), "terminal": np.empty(batch, bool)}
        offsets = np.arange(-framestack + 1, 1)
        for e in np.unique(eps):  # one gather per episode present in the batch
            sel = np.flatnonzero(eps == e)
            t = ts[sel]
            ep = self.episodes[e]
            obs[sel] = ep["image"][np.maximum(t[:, None] + offsets, 0)]  # the first frame repeats before the start
            nxt[sel] = ep["image"][np.maximum(t[:, None] + 1 + offsets, 0)]
            for k in PER_STEP:
                out[k][sel] = ep[k][t]
        fold = lambda x: x.transpose(0, 2, 3, 1, 4).reshape(batch, H, W, framestack * C)  # oldest frame first
        return {"obs": fold(obs), "next_obs": fold(nxt), "action": out["action"], "reward": out["reward"],
                "success": out["success"], "discount": 1.0 - out["terminal"].astype(np.float32)}

    def sample_sequences(self, batch: int, length: int) -> dict:
        # A window covers `length` frames; it may start at frame 0..T+1-length.
        eps, starts = self._pick(batch, None, min_length=length - 1)
        image, action, reward, first, disc = [], [], [], [], []
        for e, s in zip(eps, starts):
            ep = self.episodes[e]
            A = ep["action"].shape[1]
            act = np.concatenate([np.zeros((1, A), np.float32), ep["action"]])  # action into frame i
            rew = np.concatenate([[0.0], ep["reward"]]).astype(np.float32)
            term = np.concatenate([[False], ep["terminal"]])
            sl = slice(s, s + length)
            image.append(ep["image"][sl])
            action.append(act[sl])
            reward.append(rew[sl])
            first.append(np.arange(s, s + length) == 0)
            disc.append(1.0 - term[sl].astype(np.float32))
        return {"image": np.stack(image), "action": np.stack(action), "reward": np.stack(reward),
                "is_first": np.stack(first), "discount": np.stack(disc)}
