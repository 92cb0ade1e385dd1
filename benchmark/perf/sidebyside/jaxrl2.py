"""Side by side: JAXRL2 (the authors' fork, khatch31/jaxrl2) vs ours, update steps alone, paper sizes,
batch 256, 64x64x3 frames, 3-frame stacks. Interleaved per pair; best and median.

Not part of the suite (it imports third-party code we do not depend on). Set-up and the one patch the
fork needs are in docs/performance.md (Side by side with JAXRL2); then:
    JAXRL2_DIR=/path/to/jaxrl2 OMP_NUM_THREADS=2 \
        /path/to/venv/bin/python benchmark/perf/sidebyside/jaxrl2.py \
        bc,iql,sac,cql,sac-pixelsac 2 3      # pairs, updates per timing, repeats
"""

# ruff: noqa: E402  (the third-party checkout goes on sys.path before its imports)

import json
import os
import statistics
import sys
import time

JAXRL2 = os.environ.get("JAXRL2_DIR", "/tmp/jaxrl2")
sys.path.insert(0, JAXRL2)
sys.path.insert(0, os.path.join(JAXRL2, "baselines_finetuning"))
import jax
import numpy as np
from configs.offline_pixels_config import get_config
from flax.core.frozen_dict import FrozenDict

import algorithms
from algorithms import RunContext
from benchmark.core.replay import BatchSampler
from benchmark.perf.learners import _store

N = int(sys.argv[2]) if len(sys.argv) > 2 else 2  # updates per timing
R = int(sys.argv[3]) if len(sys.argv) > 3 else 3  # repeats
B, A = 256, 4
store, source = _store("metaworld/drawer-open", None)
print("jax", jax.__version__, "devices", jax.devices(), "data:", source, flush=True)
rng = np.random.default_rng(0)
pix4 = rng.integers(0, 256, (B, 64, 64, 3, 4), dtype=np.uint8)
jbatch = FrozenDict(
    {
        "observations": {"pixels": pix4},
        "next_observations": {},
        "actions": rng.uniform(-1, 1, (B, A)).astype(np.float32),
        "rewards": rng.random(B).astype(np.float32),
        "masks": np.ones(B, np.float32),
        "dones": np.zeros(B, np.float32),
    }
)
jbatch_bc = jbatch.copy({"observations": {"pixels": pix4[..., :3]}})
obs0 = {"pixels": pix4[0, ..., :3]}
act0 = np.asarray(jbatch["actions"][0])


def nparams(tree):
    return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def theirs(cfgname, **over):
    c = get_config(cfgname)
    kw = dict(c.model_config)
    kw.pop("cosine_decay")
    kw["decay_steps"] = 10_000
    kw.update(over)
    ag = globals()[c.model_constructor](0, obs0, act0, **kw)
    b = jbatch_bc if cfgname == "bc" else jbatch

    def step():
        return ag.update(b)

    def block(m):
        jax.block_until_ready((m, ag._actor.params))

    n = nparams(ag._actor.params) + sum(
        nparams(getattr(ag, a).params) for a in ("_critic", "_value") if hasattr(ag, a)
    )
    return step, block, n


def ours(name):
    cfg = algorithms.make_config(name, "paper")
    ctx = RunContext(obs_shape=tuple(store.frames.shape[1:]), action_dim=A, seed=0, total_updates=10_000)
    ag = algorithms.make_agent(name, cfg, ctx)
    sampler = BatchSampler(store, ag.requests, 0, depth=2)
    fixed = sampler.batch(0)
    sampler.close()

    def step():
        return ag.update(fixed)

    def block(m):
        jax.block_until_ready((m, ag.state))

    st = ag.state
    n = sum(nparams(st[k]) for k in ("actor", "critic", "value", "params") if k in st)
    return step, block, n


PAIRS = {
    "bc": (lambda: ours("bc"), lambda: theirs("bc"), "PixelBCLearner"),
    "sac": (
        lambda: ours("sac"),
        lambda: theirs("cql", cql_alpha=0.0),
        "PixelCQLLearner cql_alpha=0 (what the fork ran as SAC)",
    ),
    "sac-pixelsac": (lambda: ours("sac"), lambda: theirs("sac"), "PixelSACLearner share_encoder=False"),
    "cql": (lambda: ours("cql"), lambda: theirs("cql"), "PixelCQLLearner cql_alpha=5"),
    "iql": (lambda: ours("iql"), lambda: theirs("iql"), "PixelIQLLearner"),
}


def timed(step, block):
    t = time.perf_counter()
    for _ in range(N):
        m = step()
    block(m)
    return N / (time.perf_counter() - t)


rows = []
for key in sys.argv[1].split(","):
    mk_o, mk_t, desc = PAIRS[key]
    so, bo, no = mk_o()
    st, bt, nt = mk_t()
    t = time.perf_counter()
    bo(so())
    co = time.perf_counter() - t
    t = time.perf_counter()
    bt(st())
    ct = time.perf_counter() - t
    fo, ft = [], []
    for r in range(R):  # interleaved: ours, theirs, ours, theirs, ...
        fo.append(timed(so, bo))
        ft.append(timed(st, bt))
        print(f"  {key} rep {r}: ours {fo[-1]:.3f}  jaxrl2 {ft[-1]:.3f} updates/s", flush=True)
    row = dict(
        pair=key,
        jaxrl2=desc,
        params_ours=no,
        params_jaxrl2=nt,
        compile_ours=round(co, 1),
        compile_jaxrl2=round(ct, 1),
        ours_best=max(fo),
        jaxrl2_best=max(ft),
        ratio_best=max(fo) / max(ft),
        ours_median=statistics.median(fo),
        jaxrl2_median=statistics.median(ft),
        ratio_median=statistics.median(fo) / statistics.median(ft),
        ratio_per_rep=[round(a / b, 3) for a, b in zip(fo, ft)],
    )
    rows.append(row)
    print(json.dumps(row), flush=True)
    del so, st
print(
    "\n| pair | jaxrl2 learner | ours best | jaxrl2 best | ratio (best) | ours median | jaxrl2 median "
    "| ratio (median) |"
)
for r in rows:
    print(
        f"| {r['pair']} | {r['jaxrl2']} | {r['ours_best']:.3f} | {r['jaxrl2_best']:.3f} | "
        f"{r['ratio_best']:.2f} | {r['ours_median']:.3f} | {r['jaxrl2_median']:.3f} | "
        f"{r['ratio_median']:.2f} |"
    )
