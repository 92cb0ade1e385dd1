"""A scripted demonstrator for Franka Kitchen (gymnasium-robotics ``FrankaKitchen-v1``).

The env's action is a normalised joint velocity: the robot moves joint ``i`` towards
``qpos_i + 2 * action_i * dt`` (dt = 0.08 s, 40 physics steps of 2 ms) through position servos,
clipped to the joint limits; actions 7 and 8 drive the two fingers the same way (+1 opens, -1 closes).

The demonstrator is an end-effector controller: a proportional law on the position and orientation
error of the ``end_effector`` site gives a 6-D twist, which damped least squares through MuJoCo's site
Jacobian turns into 7 arm joint velocities (plus a null-space pull towards the start posture), scaled to
the action range. Each of the seven D4RL objects has a waypoint plan (approach, grasp or touch, move the
handle / knob / lever / kettle along its joint, release, back off) that ends with the object in its goal
configuration; plans chain, four per episode, as in the relay-policy-learning demonstrations. Plans read
the current object positions from the simulator, so they work from any state a previous plan left.

Everything the demonstrator does is a deterministic function of the simulator state and its own
``numpy`` generator (action noise), so a seed gives the same episode every time.

# Generation (``python -m benchmark.datasets generate kitchen``)

Kitchen demonstrations generated from code: the scripted demonstrator (above)
chains four objects per 280-step episode in ``FrankaKitchen-v1``; every state is rendered with the LEXA-view
camera and both Kitchen tasks' rewards are recomputed from the joint positions exactly as for imported data.

This is *not* the paper's data (the relay-policy-learning teleoperated demonstrations); it is a stand-in
that anyone can rebuild, written as two datasets that share episodes and differ only in their rewards:
``kitchen/scripted-mixed`` and ``kitchen/scripted-partial`` (``kitchen/scripted`` for short).

Episode ``i`` of seed ``s`` depends only on ``(s, i)``: its object order, reset seed and action noise are
drawn from ``SeedSequence([s, i])``, so the bytes do not depend on how many worker processes ran.

The demonstrator's success table: ``python -m benchmark.datasets.kitchen_demo``.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from benchmark.tasks.envs.kitchen import KITCHEN_TASKS, KitchenPixelEnv, objects_done

OBJECTS = (
    "microwave",
    "kettle",
    "bottom burner",
    "top burner",
    "light switch",
    "slide cabinet",
    "hinge cabinet",
)

ACTION_SCALE = 2.0  # rad/s per unit of action (gymnasium-robotics FrankaRobot: act_rng = 2)
OPEN, CLOSE = 1.0, -1.0

# Joint positions (qpos indices) the plans read: knob angles, the light switch, the slide, doors.
_QPOS = {
    "bottom burner": 11,
    "top burner": 15,
    "light switch": 17,
    "slide cabinet": 19,
    "hinge cabinet": 21,
    "microwave": 22,
}
# Where each plan drives its joint (past the goal, inside the joint range, so noise keeps it within 0.3).
_TARGET = {
    "bottom burner": -0.98,
    "top burner": -1.02,
    "light switch": -0.62,
    "slide cabinet": 0.40,
    "hinge cabinet": 1.50,
    "microwave": -0.90,
}
_GOAL = {
    "bottom burner": -0.88,
    "top burner": -0.92,
    "light switch": -0.69,
    "slide cabinet": 0.37,
    "hinge cabinet": 1.45,
    "microwave": -0.75,
}
ENOUGH = 0.2  # a door within this of its goal is not grasped again (the goal threshold is 0.3)
# Kettle: its body position at the goal (OBS_ELEMENT_GOALS), and the handle's offset from the body.
_KETTLE_GOAL = np.array([-0.23, 0.75, 1.62])
# Controller gains and plan constants (tuned on 20 noisy seeds per object; docs/datasets.md, scripted
# Kitchen).
KP = 12.0  # end-effector position gain, 1/s
KO = 4.5  # orientation gain, 1/s
HOME_Q1 = -1.2  # null-space posture: the start pose but with the shoulder (joint 2) off its limit
NULL_GAIN = 0.5
STOP = 0.15  # knobs, lever and slide stop moving once this close to their goal (inside the 0.3)
KETTLE_BACK = np.array(
    [0.0, -0.12, -0.02]
)  # back off the set-down kettle slightly downwards: straight back drags it
RELEASED = 0.075  # finger opening (sum of the two finger joints, m) that lets go of a handle
# The joint servos realise about half the commanded velocity (measured: action 1 moves joints 1-4 by 0.07 rad
# per step, not 0.16), so joint velocities are commanded this much larger than the Cartesian law asks.
SERVO_GAIN = 2.0
WMAX = 2.0  # rad/s: the end effector's largest commanded angular speed
DZ = 0.08  # grasp the microwave handle this far above its middle (more reach: the goal is at its edge)
LEAD = 0.3  # door pulls aim this far (rad) ahead of the door's angle
PSPEED = 0.4  # m/s while pulling a door
LZ = 0.0  # height of the light-switch push relative to the lever
LSP = 0.4  # m/s while pushing the lever
# Between objects the arm goes straight (in end-effector space) from one plan's last waypoint to the next
# plan's first: a joint-space return to a central posture swept the forearm through the open microwave door
# and the kettle, and cost ~9 steps per object.


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rot_y(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


class KitchenExpert:
    """Waypoint plans + a Jacobian end-effector controller acting on a gymnasium-robotics ``KitchenEnv``.

    ``plan(objects)`` returns an iterator of actions: call ``next()`` once per env step (the iterator reads
    the simulator state each time). When the plans are done it keeps the arm still.
    """

    def __init__(
        self,
        model,
        data,
        *,
        noise: float = 0.0,
        rng: np.random.Generator | None = None,
        max_speed: float = 0.7,
        damping: float = 0.05,
    ):
        import mujoco

        self._mj = mujoco
        self.model, self.data = model, data
        self.noise = noise
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.max_speed = max_speed  # m/s of the end effector
        self.damping = damping
        self.site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "end_effector")
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))
        self.dt = float(model.opt.timestep) * 40
        self._range = model.jnt_range[:7].copy()
        self._kp = model.actuator_gainprm[:7, 0].copy()
        self.home_q: np.ndarray | None = None
        self.steps = 0  # actions produced so far
        self.events: list[tuple[int, str]] = []  # (step, what) at the start of every waypoint, for debugging
        self.R0: np.ndarray | None = None

    # -- state ------------------------------------------------------------------------------------
    def _site(self, name: str) -> np.ndarray:
        return self.data.site(name).xpos.copy()

    def _anchor(self, joint: str) -> np.ndarray:
        return self.data.joint(joint).xanchor.copy()

    def ee(self) -> tuple[np.ndarray, np.ndarray]:
        return self.data.site_xpos[self.site].copy(), self.data.site_xmat[self.site].reshape(3, 3).copy()

    # -- control ----------------------------------------------------------------------------------
    def control(self, pos, rot, grip: float, speed: float | None = None) -> np.ndarray:
        """One action moving the end effector towards ``pos`` / ``rot`` with the fingers ``grip``
        (+1 / -1)."""
        mj, m, d = self._mj, self.model, self.data
        self.steps += 1
        p, R = self.ee()
        v = KP * (np.asarray(pos) - p)
        vmax = self.max_speed if speed is None else speed
        n = np.linalg.norm(v)
        if n > vmax:
            v *= vmax / n
        err = 0.5 * sum(np.cross(R[:, i], rot[:, i]) for i in range(3))
        w = KO * err
        wn = np.linalg.norm(w)
        if wn > WMAX:
            w *= WMAX / wn
        mj.mj_jacSite(m, d, self._jacp, self._jacr, self.site)
        J_full = np.vstack([self._jacp[:, :7], self._jacr[:, :7]])
        q = d.qpos[:7]
        lo, hi = self._range[:, 0] + 0.03, self._range[:, 1] - 0.03
        free = np.ones(7, bool)
        for _ in range(4):  # joints at a limit that the solution pushes further are taken out, then re-solve
            J = J_full * free
            JJt = J @ J.T + self.damping**2 * np.eye(6)
            dq = J.T @ np.linalg.solve(JJt, np.concatenate([v, w]))
            null = np.eye(7) - J.T @ np.linalg.solve(JJt, J)
            dq += (null @ (NULL_GAIN * (self.home_q - q))) * free
            stuck = free & (((q <= lo) & (dq < 0)) | ((q >= hi) & (dq > 0)))
            if not stuck.any():
                break
            free &= ~stuck
        dq = dq * free * SERVO_GAIN
        # Gravity feed-forward: the servo pushes kp * (2 * action * dt), so this much action holds the arm up.
        dq += d.qfrc_bias[:7] / (self._kp * self.dt)
        action = np.empty(9)
        action[:7] = dq / ACTION_SCALE
        peak = np.abs(action[:7]).max()
        if peak > 1.0:  # slow all joints down together, so the hand keeps its direction
            action[:7] /= peak
        action[7:] = grip
        if self.noise > 0:
            action[:7] += self.noise * self.rng.standard_normal(7)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _move(
        self, pos, rot, grip, *, tol=0.012, rot_tol=0.08, max_steps=40, speed=None, label="move"
    ) -> Iterator[np.ndarray]:
        """Go to a waypoint (re-evaluating callables each step) until within tolerance or out of steps."""
        self.events.append((self.steps, label))
        for _ in range(max_steps):
            target = pos() if callable(pos) else pos
            R_t = rot() if callable(rot) else rot
            p, R = self.ee()
            rerr = np.linalg.norm(0.5 * sum(np.cross(R[:, i], R_t[:, i]) for i in range(3)))
            if np.linalg.norm(target - p) < tol and rerr < rot_tol:
                return
            yield self.control(target, R_t, grip, speed)

    def _hold(self, grip, steps) -> Iterator[np.ndarray]:
        p, R = self.ee()
        for _ in range(steps):
            yield self.control(p, R, grip)

    def _release(self, max_steps: int = 6) -> Iterator[np.ndarray]:
        """Open the fingers in place until they are apart (they open ~1 cm per step), so backing off
        afterwards does not drag the handle (or the kettle) along."""
        p, R = self.ee()
        for _ in range(max_steps):
            if self.data.qpos[7] + self.data.qpos[8] >= RELEASED:
                return
            yield self.control(p, R, OPEN)

    def _near_goal(self, obj: str) -> bool:
        """The joint is within ``STOP`` of its goal: far enough inside the 0.3 threshold to stop moving it."""
        return abs(float(self.data.qpos[_QPOS[obj]]) - _GOAL[obj]) < STOP

    # -- object plans -----------------------------------------------------------------------------
    def _door(
        self, obj: str, handle_site: str, joint: str, sign: float, yaw0: float, dz: float = 0.0
    ) -> Iterator[np.ndarray]:
        """Grasp a vertical door handle from the front (``dz`` above its middle) and carry it along the
        arc."""
        d = self.data
        qi = _QPOS[obj]
        hinge = self._anchor(joint)
        h0, a0 = self._site(handle_site) + [0.0, 0.0, dz], float(d.qpos[qi])

        def rot(a):  # the gripper turns with the door
            return _rot_z(yaw0 + a - a0) @ self.R0

        def normal(a):  # approach direction
            return _rot_z(yaw0 + a - a0) @ np.array([0.0, 1.0, 0.0])

        def on_arc(a, off=0.0):
            return hinge + _rot_z(a - a0) @ (h0 - hinge) + off * normal(a)

        target = _TARGET[obj]
        for attempt in range(3):  # a slipped handle is grasped again where the door now is
            a = float(d.qpos[qi])
            if abs(a - _GOAL[obj]) < ENOUGH:
                break
            if attempt == 0:
                yield from self._move(on_arc(a, -0.10), rot(a), OPEN, tol=0.03, max_steps=35, label="_door1")
            else:  # the hand is still next to the handle
                yield from self._move(on_arc(a, -0.04), rot(a), OPEN, tol=0.02, max_steps=8, label="_door2")
            yield from self._move(
                on_arc(a, 0.01), rot(a), OPEN, tol=0.012, max_steps=12, speed=0.4, label="_door3"
            )
            yield from self._hold(CLOSE, 2)
            history = []
            for _ in range(60):
                a = float(d.qpos[qi])
                history.append(a)
                stalled = len(history) > 6 and abs(a - history[-7]) < 0.015  # at the edge of the arm's reach
                there = sign * (a - target) >= 0 or abs(a - _GOAL[obj]) < 0.15
                if there or d.qpos[7] + d.qpos[8] < 0.006 or stalled:  # or the handle slipped
                    break
                lead = a + sign * LEAD
                lead = min(lead, target) if sign > 0 else max(lead, target)
                yield self.control(on_arc(lead, 0.01), rot(lead), CLOSE, speed=PSPEED)
            yield from self._release()
            a = float(d.qpos[qi])
            yield from self._move(on_arc(a, -0.08), rot(a), OPEN, tol=0.03, max_steps=5, label="_door4")
        # Clear the open door (back, away from it) before going on, or the fingers push it shut again.
        a = float(d.qpos[qi])
        yield from self._move(
            on_arc(a, -0.10) + [0.0, -0.10, 0.06], rot(a), OPEN, tol=0.04, max_steps=6, label="_door5"
        )

    def _knob(self, obj: str, site: str) -> Iterator[np.ndarray]:
        """Pinch the knob's vertical tab and turn the wrist about the knob's axis (-y)."""
        d = self.data
        qi = _QPOS[obj]
        c = self._site(site)
        yield from self._move(c + [0.0, -0.09, 0.0], self.R0, OPEN, tol=0.03, max_steps=35, label="_knob1")
        yield from self._move(
            c + [0.0, -0.025, 0.0], self.R0, OPEN, tol=0.012, max_steps=12, speed=0.5, label="_knob2"
        )
        yield from self._hold(CLOSE, 2)
        for _ in range(40):
            a = float(d.qpos[qi])
            if a <= _TARGET[obj] or self._near_goal(obj):
                break
            yield self.control(c + [0.0, -0.025, 0.0], _rot_y(-(a - 0.45)) @ self.R0, CLOSE)
        yield from self._release()
        p, R = self.ee()
        yield from self._move(p + [0.0, -0.08, 0.0], R, OPEN, tol=0.03, max_steps=5, label="_knob3")

    def _light(self) -> Iterator[np.ndarray]:
        """Push the lever's right side to the left with closed fingers (again if the hand slipped over it)."""
        d = self.data
        qi = _QPOS["light switch"]
        c = self._site("light_site")
        for attempt in range(2):
            if d.qpos[qi] <= _TARGET["light switch"] or self._near_goal("light switch"):
                break
            if attempt == 0:
                yield from self._move(
                    c + [0.09, -0.09, -0.01], self.R0, CLOSE, tol=0.03, max_steps=35, label="_light1"
                )
            else:
                yield from self._move(
                    self.ee()[0] + [0.0, -0.06, 0.0], self.R0, CLOSE, tol=0.03, max_steps=6, label="_light2"
                )
                yield from self._move(
                    c + [0.09, -0.06, -0.015], self.R0, CLOSE, tol=0.03, max_steps=15, label="_light3"
                )
            yield from self._move(
                c + [0.07, -0.015, LZ], self.R0, CLOSE, tol=0.012, max_steps=15, speed=0.5, label="_light4"
            )
            for _ in range(25):
                if (
                    d.qpos[qi] <= _TARGET["light switch"]
                    or self._near_goal("light switch")
                    or self.ee()[0][0] < c[0] - 0.12
                ):
                    break
                yield self.control(c + [-0.15, -0.015, LZ], self.R0, CLOSE, speed=LSP)
        p, R = self.ee()
        yield from self._move(p + [0.0, -0.08, 0.0], R, CLOSE, tol=0.03, max_steps=5, label="_light5")

    def _slide(self) -> Iterator[np.ndarray]:
        """Grasp the slide cabinet's vertical handle and pull it to the right."""
        d = self.data
        c = self._site("slide_site")
        yield from self._move(c + [0.0, -0.10, 0.0], self.R0, OPEN, tol=0.03, max_steps=35, label="_slide1")
        yield from self._move(
            c + [0.0, 0.005, 0.0], self.R0, OPEN, tol=0.012, max_steps=12, speed=0.5, label="_slide2"
        )
        yield from self._hold(CLOSE, 2)
        q0 = float(d.qpos[_QPOS["slide cabinet"]])
        for _ in range(40):
            q = float(d.qpos[_QPOS["slide cabinet"]])
            if q >= _TARGET["slide cabinet"] or self._near_goal("slide cabinet"):
                break
            yield self.control(
                c + [min(q + 0.15, _TARGET["slide cabinet"] + 0.02) - q0, 0.005, 0.0],
                self.R0,
                CLOSE,
                speed=0.5,
            )
        yield from self._release()
        p, R = self.ee()
        yield from self._move(p + [0.0, -0.08, 0.0], R, OPEN, tol=0.03, max_steps=5, label="_slide3")

    def _kettle(self) -> Iterator[np.ndarray]:
        """Grasp the handle with the fingers vertical, lift, carry to the top-left burner, set down."""
        d = self.data
        # Fingers one above, one below the horizontal handle bar: roll the hand by +90 degrees. (Rolling by
        # -90 degrees, or by whichever is nearer, left the wrist's last joint near its limit after the kettle,
        # and a burner knob grasped next then turned through the other joints, ~25 steps slower.)
        R = _rot_y(np.pi / 2) @ self.R0
        h = self._site("kettle_site")
        body = d.qpos[23:26].copy()
        offset = h - body
        yield from self._move(
            h + [0.0, -0.10, 0.0], R, OPEN, tol=0.03, rot_tol=0.1, max_steps=40, label="_kettle1"
        )
        yield from self._move(h, R, OPEN, tol=0.012, max_steps=12, speed=0.5, label="_kettle2")
        yield from self._hold(CLOSE, 3)
        lift = np.array([0.0, 0.0, 0.07])
        yield from self._move(h + lift, R, CLOSE, tol=0.03, max_steps=10, speed=0.5, label="_kettle3")
        goal_h = _KETTLE_GOAL + offset
        # The goal is at the edge of the arm's reach: set the kettle down a little short of it (within 0.3).
        yield from self._move(
            goal_h + [0.0, -0.04, 0.06], R, CLOSE, tol=0.04, max_steps=22, speed=0.7, label="_kettle4"
        )
        yield from self._move(
            goal_h + [0.0, -0.04, 0.02], R, CLOSE, tol=0.02, max_steps=6, speed=0.4, label="_kettle5"
        )
        yield from self._release()
        p, _ = self.ee()
        yield from self._move(p + KETTLE_BACK, R, OPEN, tol=0.03, max_steps=8, label="_kettle6")
        yield from self._move(p + [0.0, -0.12, 0.10], R, OPEN, tol=0.04, max_steps=6, label="_kettle7")

    def object_plan(self, obj: str) -> Iterator[np.ndarray]:
        if obj == "microwave":
            return self._door(obj, "microhandle_site", "microwave", -1.0, yaw0=0.30, dz=DZ)
        if obj == "hinge cabinet":
            return self._door(obj, "hinge_site2", "right_hinge_cabinet", +1.0, yaw0=0.0)
        if obj in ("bottom burner", "top burner"):
            return self._knob(obj, "knob2_site" if obj == "bottom burner" else "knob4_site")
        if obj == "light switch":
            return self._light()
        if obj == "slide cabinet":
            return self._slide()
        if obj == "kettle":
            return self._kettle()
        raise ValueError(f"unknown kitchen object {obj!r}; known: {', '.join(OBJECTS)}")

    def plan(self, objects: Sequence[str]) -> Iterator[np.ndarray]:
        """Actions for the chained plans of ``objects`` (in order), then the arm held still forever."""
        for o in objects:
            if o not in OBJECTS:
                raise ValueError(f"unknown kitchen object {o!r}; known: {', '.join(OBJECTS)}")
        return self._chain(list(objects))

    def _chain(self, objects) -> Iterator[np.ndarray]:
        if self.home_q is None:
            self.start_q = self.data.qpos[:7].copy()
            self.home_q = self.data.qpos[:7].copy()
            self.home_q[1] = HOME_Q1  # the start posture leans the shoulder against its limit
            self.R0 = self.ee()[1]
        for o in objects:
            yield from self.object_plan(o)
        p, R = self.ee()
        while True:
            yield self.control(p, R, OPEN)


def make_physics_env():
    """The bare gymnasium-robotics KitchenEnv our pixel env wraps (no rendering), for fast rollouts."""
    from gymnasium_robotics.envs.franka_kitchen.kitchen_env import KitchenEnv

    return KitchenEnv(tasks_to_complete=list(OBJECTS), terminate_on_tasks_completed=False)


def rollout(
    kitchen_env,
    objects: Sequence[str],
    *,
    steps: int,
    seed: int,
    noise: float,
    on_step: Callable | None = None,
) -> dict[str, np.ndarray]:
    """Run the demonstrator on ``objects`` for ``steps`` env steps from ``reset(seed=seed)``.

    Returns ``qpos`` (steps+1, 30) and ``action`` (steps, 9); ``on_step()`` is called after the reset and
    after every step (the dataset generator renders there). Actions are cast and clipped exactly as
    ``KitchenPixelEnv.step`` does, so this and the pixel env produce the same states.
    """
    kitchen_env.reset(seed=seed)
    expert = KitchenExpert(
        kitchen_env.model, kitchen_env.data, noise=noise, rng=np.random.default_rng([seed, 1])
    )
    actions_it = expert.plan(objects)
    qpos, actions = [kitchen_env.data.qpos.copy()], []
    if on_step is not None:
        on_step()
    for _ in range(steps):
        a = np.clip(np.asarray(next(actions_it), np.float32), -1.0, 1.0)
        kitchen_env.step(a)
        actions.append(a)
        qpos.append(kitchen_env.data.qpos.copy())
        if on_step is not None:
            on_step()
    return {"qpos": np.array(qpos), "action": np.array(actions, np.float32)}


# ---------------------------------------------------------------------------------------------------
# Datasets from the demonstrator

GENERATOR = "kitchen-scripted"
GENERATOR_VERSION = 2  # 2: faster plans, no hub posture between objects (chains complete)
EPISODE_LENGTH = 280
PAPER_EPISODES = 563  # the paper's Kitchen data: 563 episodes, 128,569 transitions
DEFAULT_NOISE = 0.1  # std of Gaussian noise on the normalised joint velocities (arm joints)
NAMES = {task: f"kitchen/scripted-{task}" for task in KITCHEN_TASKS}

MIXED = KITCHEN_TASKS["mixed"]  # microwave, kettle, light switch, slide cabinet
PARTIAL = KITCHEN_TASKS["partial"]  # microwave, kettle, bottom burner, light switch
# Objects an episode may visit. The hinge cabinet's plan reaches its goal alone but needs ~130 steps
# (it pulls the door open through several regrasps), too long to chain four objects in 280 steps.
CHAIN_OBJECTS = ("microwave", "kettle", "bottom burner", "top burner", "light switch", "slide cabinet")


def draw_order(rng: np.random.Generator) -> list[str]:
    """Four objects, visited in D4RL's task order (microwave, kettle, bottom burner, top burner, light switch,
    slide cabinet), as the relay-policy-learning demonstrations mostly do.

    As in the paper's data: a quarter of the episodes do the "mixed" task's four objects, a quarter the
    "partial" task's first three (microwave, kettle, bottom burner) and one object outside it, the rest four
    random objects - but never all four "partial" objects in one episode.
    """
    u = rng.random()
    if u < 0.25:
        chosen = list(MIXED)
    elif u < 0.5:
        rest = [o for o in CHAIN_OBJECTS if o not in PARTIAL]
        chosen = list(PARTIAL[:3]) + [rest[rng.integers(len(rest))]]
    else:
        while True:
            chosen = [CHAIN_OBJECTS[i] for i in rng.permutation(len(CHAIN_OBJECTS))[:4]]
            if set(chosen) != set(PARTIAL):
                break
    return sorted(chosen, key=CHAIN_OBJECTS.index)


def episode_plan(
    seed: int, index: int, noise: float = DEFAULT_NOISE, steps: int = EPISODE_LENGTH
) -> dict[str, Any]:
    """Everything episode ``index`` of a dataset with ``seed`` depends on."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    order = draw_order(rng)
    return {
        "index": index,
        "order": order,
        "reset_seed": int(rng.integers(2**31 - 1)),
        "noise": noise,
        "steps": steps,
    }


def run_episode(
    plan: dict[str, Any], env=None, *, render: bool = True, on_frame: Callable[[], None] | None = None
) -> dict[str, np.ndarray]:
    """Run one planned episode: ``qpos`` (T+1, 30), ``action`` (T, 9) and, rendering, ``image``
    (T+1, 64, 64, 3).

    ``env`` is a ``KitchenPixelEnv`` (made here if not given); without rendering only its physics is stepped.
    ``on_frame`` is called after each rendered frame (progress within an episode).
    """
    own = env is None
    env = env or KitchenPixelEnv()
    images: list[np.ndarray] = []
    try:
        out = rollout(
            env._env,
            plan["order"],
            steps=plan["steps"],
            seed=plan["reset_seed"],
            noise=plan["noise"],
            on_step=(lambda: _frame(images, env, on_frame)) if render else None,
        )
    finally:
        if own:
            env.close()
    if render:
        out["image"] = np.stack(images)
    return out


def _frame(images: list, env, on_frame) -> None:
    images.append(env.render())
    if on_frame is not None:
        on_frame()


def objects_completed(qpos_last: np.ndarray) -> int:
    """How many of the seven objects are in their goal configuration in a state."""
    return int(objects_done(qpos_last, OBJECTS).sum())


def once(warn: Callable[[str], None] | None = None) -> Callable[[str], None]:
    """A ``note(text)`` that passes each distinct text to ``warn`` (default: stderr) the first time only."""
    import sys

    seen: set[str] = set()
    warn = warn or (lambda text: print(text, file=sys.stderr))

    def note(text: str) -> None:
        if text not in seen:
            seen.add(text)
            warn(text)

    return note


def import_quietly() -> list[str]:
    """Imports gymnasium-robotics with what it prints to stderr on import (its Adroit notice) and any
    Python warning captured; returns them, for the caller to print once however many processes import it."""
    import contextlib
    import io
    import warnings

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import gymnasium_robotics  # noqa: F401
        from gymnasium_robotics.envs.franka_kitchen import kitchen_env  # noqa: F401
    return [line for line in buf.getvalue().splitlines() if line.strip()] + [str(w.message) for w in caught]


def _recording(fn, *args):
    """``fn(*args)`` and the distinct Python warnings it raised (as text)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args)
    return out, list(dict.fromkeys(str(w.message) for w in caught))


_WORKER_ENV = None
_WORKER_FRAMES = None  # a shared counter of the frames rendered by every worker
_WORKER_NOTES: list[str] = []  # what the worker's imports printed, sent back with its first episode


def _init_worker(frames) -> None:
    global _WORKER_FRAMES, _WORKER_NOTES
    _WORKER_FRAMES = frames
    _WORKER_NOTES = import_quietly()


def _count_frame() -> None:
    with _WORKER_FRAMES.get_lock():
        _WORKER_FRAMES.value += 1


def _worker_episode(plan: dict[str, Any]) -> tuple[dict[str, np.ndarray], list[str]]:
    global _WORKER_ENV, _WORKER_NOTES
    if _WORKER_ENV is None:
        _WORKER_ENV, notes = _recording(KitchenPixelEnv)
        _WORKER_NOTES += notes
    raw, notes = _recording(lambda: run_episode(plan, _WORKER_ENV, on_frame=_count_frame))
    notes, _WORKER_NOTES = _WORKER_NOTES + notes, []
    return raw, notes


def generate_episodes(
    plans: list[dict[str, Any]],
    workers: int = 1,
    on_frames: Callable[[int], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Rendered episodes in plan order, from ``workers`` processes (the order never depends on them).
    ``on_frames(n)``: n more frames rendered (within episodes, every half second from workers);
    ``on_note(text)``: a warning or notice printed by the simulator's imports or raised while stepping
    (each process's; the caller prints each distinct one once)."""
    frames = on_frames or (lambda n: None)
    note = on_note or (lambda text: None)
    if workers <= 1:
        env, notes = _recording(KitchenPixelEnv)
        for text in notes:
            note(text)
        try:
            for plan in plans:
                raw, notes = _recording(lambda: run_episode(plan, env, on_frame=lambda: frames(1)))
                for text in notes:
                    note(text)
                yield raw
        finally:
            env.close()
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    counter, reported = ctx.Value("q", 0), 0
    with ctx.Pool(workers, initializer=_init_worker, initargs=(counter,)) as pool:
        results = pool.imap(_worker_episode, plans)
        for _ in plans:
            while True:
                try:
                    raw, notes = results.next(timeout=0.5)
                    break
                except mp.TimeoutError:
                    pass
                finally:
                    done = counter.value
                    if done > reported:
                        frames(done - reported)
                        reported = done
            for text in notes:
                note(text)
            yield raw


def generate(
    writers: dict[str, Any],
    *,
    episodes: int = PAPER_EPISODES,
    seed: int = 0,
    noise: float = DEFAULT_NOISE,
    workers: int = 1,
    steps: int = EPISODE_LENGTH,
    progress=None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write ``episodes`` scripted episodes to every task's writer; returns manifest extras. ``progress``
    (a tqdm bar) is updated per rendered frame; ``warn`` gets each distinct warning or notice of the
    simulator once, whichever process raised it (default: printed to stderr).
    (``steps`` shortens episodes, for tests only: the datasets' episodes are 280 steps.)"""

    from benchmark.datasets.kitchen import task_episode

    note = once(warn)
    for text in import_quietly():
        note(text)
    plans = [episode_plan(seed, i, noise, steps) for i in range(episodes)]
    completed, planned_done = [], []
    on_frames = progress.update if progress is not None else None
    for plan, raw in zip(plans, generate_episodes(plans, workers, on_frames=on_frames, on_note=note)):
        for task, writer in writers.items():
            writer.add(task_episode(raw, raw["image"], KITCHEN_TASKS[task]))
        completed.append(objects_completed(raw["qpos"][-1]))
        planned_done.append(bool(objects_done(raw["qpos"][-1], plan["order"]).all()))
    return {
        "action_noise": noise,
        "objects_per_episode": float(np.mean(completed)),
        "all_planned_objects_rate": float(np.mean(planned_done)),
        "orders": [p["order"] for p in plans],
        "objects_completed": completed,
    }


# ---------------------------------------------------------------------------------------------------
# Probe sets: held-out episodes that do all four objects of a task (``python -m benchmark.datasets probe``)

# The spawn key of each task's probe episodes: a dataset episode's stream (SeedSequence([seed, i])) has
# none, so a probe episode never repeats a training episode's reset or noise.
PROBE_STREAM = {"mixed": 1, "partial": 2}
PROBE_EPISODES = 8


def probe_plan(
    task: str, seed: int, index: int, noise: float = DEFAULT_NOISE, steps: int = EPISODE_LENGTH
) -> dict[str, Any]:
    """Attempt ``index`` of a probe set of the Kitchen ``task`` ("mixed" or "partial"): the task's four
    objects in D4RL's order, a reset seed (and so the action noise) drawn from
    ``SeedSequence([seed, index], spawn_key=(PROBE_STREAM[task],))``."""
    if task not in PROBE_STREAM:
        raise ValueError(f"unknown kitchen task {task!r}; known: {', '.join(PROBE_STREAM)}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, index], spawn_key=(PROBE_STREAM[task],)))
    return {
        "index": index,
        "order": sorted(KITCHEN_TASKS[task], key=CHAIN_OBJECTS.index),
        "reset_seed": int(rng.integers(2**31 - 1)),
        "noise": noise,
        "steps": steps,
    }


def completes(plan: dict[str, Any], kitchen_env) -> bool:
    """Does the planned episode end with all of its objects in their goal configuration? (Physics only, no
    rendering: ~1 s for 280 steps.)"""
    out = rollout(
        kitchen_env, plan["order"], steps=plan["steps"], seed=plan["reset_seed"], noise=plan["noise"]
    )
    return bool(objects_done(out["qpos"][-1], plan["order"]).all())


def generate_probe(
    writer,
    task: str,
    *,
    episodes: int = PROBE_EPISODES,
    seed: int = 0,
    noise: float = DEFAULT_NOISE,
    workers: int = 1,
    steps: int = EPISODE_LENGTH,
    max_attempts: int | None = None,
    progress=None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Write up to ``episodes`` probe episodes of ``task`` to ``writer``: attempts ``0, 1, ...`` of
    ``probe_plan`` are run (physics only) until ``episodes`` of them end with the task's four objects done
    or ``max_attempts`` (default 3x) were tried; those are rendered, checked again and written. Returns
    the manifest's ``probe`` entry (attempts, kept indices, how many were checked complete)."""

    from benchmark.datasets.kitchen import task_episode

    max_attempts = 3 * episodes if max_attempts is None else max_attempts
    note = once(warn)
    for text in import_quietly():
        note(text)
    env, notes = _recording(make_physics_env)
    kept, attempts = [], 0
    try:
        while len(kept) < episodes and attempts < max_attempts:
            plan = probe_plan(task, seed, attempts, noise, steps)
            attempts += 1
            done, notes_now = _recording(completes, plan, env)
            notes += notes_now
            if done:
                kept.append(plan)
    finally:
        env.close()
    for text in notes:
        note(text)
    if progress is not None:
        progress.total = len(kept) * (steps + 1)
        progress.refresh()
    on_frames = progress.update if progress is not None else None
    written = []
    for plan, raw in zip(kept, generate_episodes(kept, workers, on_frames=on_frames, on_note=note)):
        if objects_done(raw["qpos"][-1], plan["order"]).all():  # the same states as the check (deterministic)
            writer.add(task_episode(raw, raw["image"], KITCHEN_TASKS[task]))
            written.append(plan["index"])
    return {
        "task": f"kitchen/{task}",
        "objects": list(kept[0]["order"]) if kept else sorted(KITCHEN_TASKS[task], key=CHAIN_OBJECTS.index),
        "attempts": attempts,
        "all_objects_done": len(written),
        "attempt_indices": written,
        "action_noise": noise,
    }


def evaluate(
    episodes: int = 20,
    *,
    noise: float = 0.1,
    steps: int = 280,
    seed: int = 0,
    log: Callable[[str], None] | None = print,
) -> dict[str, object]:
    """Success of each object's plan alone (reset seeds ``0..episodes-1``) and of chained four-object episodes
    (episodes ``0..episodes-1`` of a ``generate kitchen`` dataset with ``seed``: its orders, reset seeds and
    noise), counted on the last state of ``steps``-step episodes as the datasets' rewards count them."""

    env = make_physics_env()
    try:
        alone = {}
        for obj in OBJECTS:
            done = [
                bool(
                    objects_done(rollout(env, [obj], steps=steps, seed=s, noise=noise)["qpos"][-1], [obj])[0]
                )
                for s in range(episodes)
            ]
            alone[obj] = sum(done)
            if log:
                log(f"{obj:15s} alone: {alone[obj]:3d} / {episodes}")
        by_position, by_object, chained = np.zeros(4, int), {o: [0, 0] for o in OBJECTS}, 0
        for i in range(episodes):
            plan = episode_plan(seed, i, noise, steps)
            out = rollout(env, plan["order"], steps=steps, seed=plan["reset_seed"], noise=noise)
            done = objects_done(out["qpos"][-1], plan["order"])
            by_position += done
            chained += bool(done.all())
            for o, d in zip(plan["order"], done):
                by_object[o][0] += int(d)
                by_object[o][1] += 1
        if log:
            log(
                f"chained, all four: {chained} / {episodes}; by position in the chain: "
                + ", ".join(f"{place} {n}" for place, n in zip(("1st", "2nd", "3rd", "4th"), by_position))
            )
            log("chained, by object: " + ", ".join(f"{o} {a}/{n}" for o, (a, n) in by_object.items() if n))
    finally:
        env.close()
    return {
        "episodes": episodes,
        "alone": alone,
        "chained": chained,
        "by_position": by_position.tolist(),
        "by_object": by_object,
    }


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m benchmark.datasets.kitchen_demo",
        description="Success table of the scripted Kitchen demonstrator.",
    )
    parser.add_argument(
        "--episodes", type=int, default=20, help="episodes per object and chained (default 20)"
    )
    parser.add_argument("--action-noise", type=float, default=0.1, help="std of the arm's action noise")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed whose episode plans are chained")
    args = parser.parse_args(argv)
    evaluate(args.episodes, noise=args.action_noise, seed=args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
