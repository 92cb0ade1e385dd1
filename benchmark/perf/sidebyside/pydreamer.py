"""Side by side: pydreamer's WorldModel (jurgisp/pydreamer) vs ours, one world-model training step
(loss + backward + clip + optimiser step), batch 16 x 50, 64x64x3, equal sizes.

Not part of the suite (it imports third-party code we do not depend on); no patch of pydreamer needed.
    PYDREAMER_DIR=/path/to/pydreamer OMP_NUM_THREADS=1 \
        python benchmark/perf/sidebyside/pydreamer.py 1 4 run matched
    (threads, repeats, "params" to print parameter counts only, a filter on the configuration label)
"""

# ruff: noqa: E402  (the third-party checkout goes on sys.path before its imports)

import os
import statistics
import sys
import time
import types

import numpy as np
import torch
import yaml

THREADS = int(sys.argv[1])
R = int(sys.argv[2])
ONLY_PARAMS = len(sys.argv) > 3 and sys.argv[3] == "params"
torch.set_num_threads(THREADS)
PYDREAMER = os.environ.get("PYDREAMER_DIR", "/tmp/pydreamer")
sys.path.insert(0, PYDREAMER)
from pydreamer.models.dreamer import WorldModel as PDWorldModel

import algorithms
from algorithms.contract import RunContext
from algorithms.nets.torch_parts import batch_to_device

B, L, A = 16, 50, 4
rng = np.random.default_rng(0)
img = rng.integers(0, 256, (B, L, 64, 64, 3), dtype=np.uint8)
act = rng.uniform(-1, 1, (B, L, A)).astype(np.float32)
rew = (rng.uniform(size=(B, L)) > 0.8).astype(np.float32)
first = np.zeros((B, L), bool)
first[:, 0] = True


# ours: "paper" preset; with MATCH=True restructured to pydreamer's layout (no encoder MLP, no decoder
# MLP, dense 32*depth -> deconvs (4d, 2d, d, 3), a continuation head) so that every layer matches
def ours(match):
    over = dict(batch=B, length=L, precision="fp32", compile="off")
    if match:
        over.update(enc_mlp=(), dec_mlp=(), dec_in=48 * 32, dec_channels=(192, 96, 48, 3), pred_discount=True)
    cfg = algorithms.make_config("dreamerv2", "paper", **over)
    ag = algorithms.make_agent(
        "dreamerv2",
        cfg,
        RunContext(obs_shape=(64, 64, 3), action_dim=A, seed=0, total_updates=1000, device="cpu"),
    )
    batch = {
        "image": img,
        "action": act,
        "reward": rew,
        "is_first": first,
        "is_terminal": np.zeros((B, L), bool),
        "discount": np.ones((B, L), np.float32),
    }

    def step():
        b = batch_to_device(batch, ag.device)
        with ag._autocast():
            loss, _, _ = ag.wm.loss(b, ag.gen)
        ag.wm_opt.step(loss)
        return float(loss)

    return step, sum(p.numel() for p in ag.wm.parameters()), cfg


def pyd(cfg, gru_type):
    conf = yaml.safe_load(open(os.path.join(PYDREAMER, "config", "defaults.yaml")))["defaults"]
    conf.update(
        device="cpu",
        action_dim=A,
        deter_dim=cfg.deter,
        hidden_dim=cfg.hidden,
        stoch_dim=cfg.stoch,
        stoch_discrete=cfg.classes,
        cnn_depth=cfg.enc_channels[0],
        gru_type=gru_type,
        reward_decoder_layers=4,
        terminal_decoder_layers=4,
        batch_size=B,
        batch_length=L,
    )
    conf = types.SimpleNamespace(**conf)
    wm = PDWorldModel(conf)
    opt = torch.optim.AdamW(wm.parameters(), lr=conf.adam_lr, eps=conf.adam_eps)  # as Dreamer.init_optimizers
    # pydreamer's data workers hand it preprocessed tensors (T, B, ...): float images in [-0.5, 0.5],
    # (C, H, W); that conversion is done here once, outside its timed step (ours converts uint8 inside its
    # step)
    obs = {
        "image": torch.from_numpy(img.transpose(1, 0, 4, 2, 3).astype(np.float32) / 255.0 - 0.5),
        "action": torch.from_numpy(act.transpose(1, 0, 2).copy()),
        "reward": torch.from_numpy(rew.T.copy()),
        "terminal": torch.zeros(L, B),
        "reset": torch.from_numpy(first.T.copy()),
    }

    def step():
        state = wm.init_state(B)
        loss = wm.training_step(obs, state)[0]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.parameters(), conf.grad_clip)
        opt.step()
        return float(loss)

    return step, sum(p.numel() for p in wm.parameters()), conf


def run(label, so, sp):
    print(f"warm-up {label}: ours loss {so():.1f}, pydreamer loss {sp():.1f}", flush=True)
    to, tp = [], []
    for r in range(R):  # interleaved
        t = time.perf_counter()
        so()
        to.append(time.perf_counter() - t)
        t = time.perf_counter()
        sp()
        tp.append(time.perf_counter() - t)
        print(
            f"  {label} rep {r}: ours {to[-1]:.2f} s  pydreamer {tp[-1]:.2f} s  ratio {tp[-1] / to[-1]:.2f}",
            flush=True,
        )
    mo, mp = statistics.median(to), statistics.median(tp)
    print(
        f"RESULT {label}: ours median {mo:.2f} s ({1 / mo:.3f} steps/s, best {min(to):.2f}), "
        f"pydreamer median {mp:.2f} s ({1 / mp:.3f} steps/s, best {min(tp):.2f}); "
        f"speed ratio ours/pydreamer {mp / mo:.2f}x "
        f"(best-of {min(tp) / min(to):.2f}x)",
        flush=True,
    )


print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {B} x {L}, 64x64x3")
configs = [
    ("matched layout, pydreamer gru_layernorm_dv2", True, "gru_layernorm_dv2"),
    ("ours paper preset vs pydreamer at its nearest (gru_layernorm_dv2)", False, "gru_layernorm_dv2"),
]
if len(sys.argv) > 4:
    configs = [c for c in configs if sys.argv[4] in c[0]]
for label, match, gru in configs:
    so, no, cfg = ours(match)
    sp, npd, conf = pyd(cfg, gru)
    print(
        f"{label}: params ours {no:,} / pydreamer {npd:,} ({no / npd:.3f}); deter {cfg.deter} "
        f"hidden {cfg.hidden} "
        f"stoch {cfg.stoch}x{cfg.classes} enc {cfg.enc_channels} enc_mlp {cfg.enc_mlp} dec_mlp {cfg.dec_mlp} "
        f"dec_in {cfg.dec_in} dec {cfg.dec_channels}",
        flush=True,
    )
    if not ONLY_PARAMS:
        run(label, so, sp)
