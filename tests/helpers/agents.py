"""Small real agents for protocol tests: a PyTorch one (tiny conv policy, Adam, torch RNGs) and
wrappers that record what the protocol hands them. Registered by the tests that use them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from algorithms import Sequences, Transitions


@dataclass(frozen=True)
class TinyTorchConfig:
    batch_size: int = 8
    framestack: int = 2
    seq_batch: int = 2
    seq_length: int = 3
    lr: float = 1e-3

    PROFILES = {"smoke": {}}


class TinyTorchAgent:
    """Behaviour cloning with a dropout net (uses torch's global RNG), exploration noise from an
    agent-owned torch.Generator, and a sequence request whose rewards feed a second loss."""

    def __init__(self, config: TinyTorchConfig, context):
        self.config = config
        k = config.framestack
        H, W, C = context.obs_shape
        torch.manual_seed(context.seed)
        self.requests = {
            "bc": Transitions(config.batch_size, framestack=k),
            "seq": Sequences(config.seq_batch, config.seq_length),
        }
        self.act_stack = k
        self.net = nn.Sequential(
            nn.Conv2d(C * k, 4, 3, 2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Dropout(0.2),
            nn.LazyLinear(context.action_dim),
        )
        self.net(torch.zeros(1, C * k, H, W))
        self.reward_head = nn.Linear(C, 1)
        self.opt = torch.optim.Adam([*self.net.parameters(), *self.reward_head.parameters()], lr=config.lr)
        self.gen = torch.Generator().manual_seed(context.seed + 1)
        self.updates = 0

    @staticmethod
    def _fold(frames):  # (B, k, H, W, C) uint8 -> (B, k*C, H, W) float
        x = torch.as_tensor(np.ascontiguousarray(frames)).float() / 255.0
        B, k, H, W, C = x.shape
        return x.permute(0, 1, 4, 2, 3).reshape(B, k * C, H, W)

    def update(self, batches):
        b, s = batches["bc"], batches["seq"]
        pred = self.net(self._fold(b["obs"]))
        bc = 0.5 * ((pred - torch.as_tensor(b["action"])) ** 2).sum(-1).mean()
        pix = torch.as_tensor(s["image"]).float().mean(dim=(2, 3)) / 255.0  # (B, L, C)
        rew = ((self.reward_head(pix).squeeze(-1) - torch.as_tensor(s["reward"])) ** 2).mean()
        self.opt.zero_grad()
        (bc + rew).backward()
        self.opt.step()
        self.updates += 1
        return {"bc_loss": bc.detach(), "reward_loss": rew.detach()}

    @torch.no_grad()
    def act(self, obs, state, explore):
        self.net.eval()
        a = self.net(self._fold(obs[None]))[0]
        self.net.train()
        if explore:
            a = a + 0.3 * torch.randn(a.shape, generator=self.gen)
        return a.numpy().astype(np.float32), state

    def state_dict(self):
        return {
            "net": self.net.state_dict(),
            "head": self.reward_head.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, d):
        self.net.load_state_dict(d["net"])
        self.reward_head.load_state_dict(d["head"])
        self.opt.load_state_dict(d["opt"])
        self.gen.set_state(d["gen"])
        self.updates = d["updates"]
