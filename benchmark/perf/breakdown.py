"""Where a run's wall time goes: ``python -m benchmark.perf run --breakdown``.

``Breakdown`` wraps, for the length of one run, the methods that make up the protocol's work and adds
up the wall time spent in each, *exclusively*: a part nested in another (acting inside an evaluation,
GIFs inside diagnostics) counts for itself and not again for its caller. The parts:

    set-up               the dataset read into the store, the agent built, the environments made
    model update         ``agent.update`` less what follows (world model: ELBO, backward, optimiser step;
                         a model-free learner's whole update)
    actor-critic update  the world-model agents' behaviour learning (``train_agent`` / ``train_behavior`` /
                         LOMPO's and COMBO's latent SAC in ``after_step``)
    batch wait           the loop waiting for the prefetching sampler's next batch
    collect: acting      ``agent.act`` in the online training episodes
    collect: env         ``env.step`` / ``env.reset`` there (MuJoCo and rendering)
    eval: acting, eval: env   the same in the evaluation episodes
    diagnostics          ``agent.on_eval`` (reward predictions, u along actions, Eq. 12)
    GIFs                 every GIF written (evaluation episodes, open-loop predictions)
    checkpoints          ``Runner._checkpoint`` (agent state, counters, RNGs)
    episode files        online episodes saved to the run directory
    logs                 metrics rows (``metrics.csv``, TensorBoard)
    other                the run's wall time less all of the above

Timers are wall clock (``time.perf_counter``); on a CPU every torch operation is synchronous, so the
figures are where the time went. JAX dispatches asynchronously on every device, so the timed update waits
for its results (``jax.block_until_ready`` on the learner's new state): without it a JAX learner's update
lands wherever the host next reads a value (it did: 93% "other"). On a GPU torch's asynchronous kernels
land wherever the host next waits.
"""

from __future__ import annotations

import functools
import inspect
import time

PARTS = (
    "set-up",
    "model update",
    "actor-critic update",
    "batch wait",
    "collect: acting",
    "collect: env",
    "eval: acting",
    "eval: env",
    "diagnostics",
    "GIFs",
    "checkpoints",
    "episode files",
    "logs",
)
_ACTOR_CRITIC = ("train_agent", "train_behavior", "after_step")


class Breakdown:
    """Exclusive wall time per part (``PARTS``) of the runs made inside ``with Breakdown() as b:``."""

    def __init__(self):
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self.calls = dict.fromkeys(PARTS, 0)
        self._stack: list[list] = []  # [part, start, time taken by nested parts]
        self._phase = "collect"
        self._undo: list = []

    # -- timing ---------------------------------------------------------------------------------------
    def _enter(self, part: str) -> None:
        self._stack.append([part, time.perf_counter(), 0.0])

    def _exit(self) -> None:
        part, start, nested = self._stack.pop()
        took = time.perf_counter() - start
        self.seconds[part] += took - nested
        self.calls[part] += 1
        if self._stack:
            self._stack[-1][2] += took

    def _timed(self, fn, part, sync=None):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            name = part() if callable(part) else part
            self._enter(name)
            try:
                out = fn(*args, **kwargs)
                if sync is not None:
                    sync(out)
                return out
            finally:
                self._exit()

        return wrapper

    def _patch(self, owner, name: str, part, sync=None) -> None:
        """Time ``owner.name`` (a class's function, a module's function or an instance's method) as
        ``part`` (a name, or a function giving it at call time); ``sync(result)``, where given, runs
        inside the timer (to wait for asynchronous work)."""
        instance = not isinstance(owner, type) and not inspect.ismodule(owner)
        self._undo.append((owner, name, None if instance else vars(owner)[name]))
        setattr(owner, name, self._timed(getattr(owner, name) if instance else vars(owner)[name], part, sync))

    # -- what is wrapped ------------------------------------------------------------------------------
    def __enter__(self) -> "Breakdown":
        import algorithms.diagnostics as diag
        import benchmark.core.livelog as livelog
        import benchmark.core.protocol as protocol
        from benchmark.core.replay import BatchSampler
        from benchmark.tasks import TaskSpec

        b = self
        Runner = protocol.Runner
        self._patch(Runner, "_checkpoint", "checkpoints")
        self._patch(Runner, "_row", "logs")
        self._patch(protocol, "save_npz", "episode files")
        self._patch(diag, "write_gif", "GIFs")
        self._patch(livelog, "write_gif", "GIFs")

        build = Runner.__dict__["_build"]

        def timed_build(runner):
            b._enter("set-up")
            try:
                store, agent = build(runner)
                b._wrap_agent(agent)
                return store, agent
            finally:
                b._exit()

        evaluate = Runner.__dict__["evaluate"]

        def timed_evaluate(runner, env, agent):
            b._phase = "eval"
            try:
                return evaluate(runner, env, agent)
            finally:
                b._phase = "collect"

        block = BatchSampler.__dict__["block"]

        def timed_block(sampler, first, n):
            it = block(sampler, first, n)
            while True:
                b._enter("batch wait")
                try:
                    batches = next(it)
                except StopIteration:
                    return
                finally:
                    b._exit()
                yield batches

        make_env = TaskSpec.__dict__["make_env"]

        def timed_make_env(spec, *args, **kwargs):
            b._enter("set-up")
            try:
                env = make_env(spec, *args, **kwargs)
            finally:
                b._exit()
            for name in ("step", "reset"):
                setattr(env, name, b._timed(getattr(env, name), lambda: f"{b._phase}: env"))
            return env

        for owner, name, fn in (
            (Runner, "_build", timed_build),
            (Runner, "evaluate", timed_evaluate),
            (BatchSampler, "block", timed_block),
            (TaskSpec, "make_env", timed_make_env),
        ):
            self._undo.append((owner, name, owner.__dict__[name]))
            setattr(owner, name, fn)
        run = Runner.__dict__["run"]
        self._undo.append((Runner, "run", run))

        def timed_run(runner):
            b._t0 = time.perf_counter()
            try:
                return run(runner)
            finally:
                b.wall = time.perf_counter() - b._t0

        Runner.run = timed_run
        return self

    def _wrap_agent(self, agent) -> None:
        self._patch(agent, "update", "model update", _jax_sync(agent))
        self._patch(agent, "act", lambda: f"{self._phase}: acting")
        for name in _ACTOR_CRITIC:  # where a class of the agent's defines it (not the base's no-op)
            owners = [k for k in type(agent).__mro__ if name in vars(k)]
            if owners and owners[0].__name__ != "WorldModelAgent":
                self._patch(agent, name, "actor-critic update")
        if hasattr(agent, "on_eval"):
            self._patch(agent, "on_eval", "diagnostics")

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._undo):
            if original is None:  # an instance attribute set over its class's method
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        self._undo.clear()

    # -- the table --------------------------------------------------------------------------------
    def rows(self) -> list[dict]:
        wall = getattr(self, "wall", sum(self.seconds.values()))
        out = [
            {"part": k, "s": round(v, 2), "%": round(100 * v / wall, 1), "calls": self.calls[k]}
            for k, v in self.seconds.items()
            if self.calls[k]
        ]
        other = wall - sum(self.seconds.values())
        out.append({"part": "other", "s": round(other, 2), "%": round(100 * other / wall, 1), "calls": ""})
        out.append({"part": "run (wall)", "s": round(wall, 2), "%": 100.0, "calls": ""})
        return out


def _jax_sync(agent):
    """For a JAX learner (a ``state`` of JAX arrays): a function that waits until the update's new
    state and metrics are computed; ``None`` for any other agent (torch on a CPU is synchronous)."""
    import sys

    jax = sys.modules.get("jax")
    state = getattr(agent, "state", None)
    if jax is None or not isinstance(state, dict):
        return None
    if not any(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(state)):
        return None
    return lambda metrics: jax.block_until_ready((agent.state, metrics))
