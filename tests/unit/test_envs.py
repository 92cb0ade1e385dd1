import os
import subprocess
import sys

import numpy as np
import pytest

from benchmark.tasks import TASKS, get_task
from benchmark.tasks.envs.kitchen import KITCHEN_TASKS, objects_done
from benchmark.tasks.envs.metaworld import scripted_expert


@pytest.mark.slow
@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_builds_resets_and_steps(name):
    spec = get_task(name)
    env = spec.make_env(seed=0, episode_length=3)
    try:
        image, info = env.reset()
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        assert env.observation_space.contains(image)
        assert env.action_space.shape == (spec.action_dim,)
        assert image.std() > 10  # a real scene, not a blank buffer
        for t in range(3):
            image, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert image.shape == (64, 64, 3) and image.dtype == np.uint8
            assert not terminated and truncated == (t == 2)
            if spec.domain == "metaworld":
                assert reward == float(info["success"]) and reward in (0.0, 1.0)
            else:
                assert reward == info["n_objects"] == info["objects_done"].sum()
                assert info["success"] == info["objects_done"].all()
    finally:
        env.close()


def test_metaworld_sparse_reward_turns_on_when_the_expert_solves_the_task():
    env = get_task("metaworld/drawer-open").make_env(seed=3)
    expert = scripted_expert("drawer-open")
    _, info = env.reset()
    rewards = []
    for _ in range(100):
        _, r, _, truncated, info = env.step(expert.get_action(info["state"]))
        rewards.append(r)
    env.close()
    rewards = np.array(rewards)
    assert rewards[:20].sum() == 0 and rewards[-1] == 1.0  # 0 before the drawer opens, 1 once it is open
    assert set(np.unique(rewards)) == {0.0, 1.0}


def test_metaworld_objects_are_randomised_and_seeded():
    def first_frames(seed, n=2):
        env = get_task("metaworld/door-open").make_env(seed=seed)
        frames = [env.reset()[0] for _ in range(n)]
        env.close()
        return frames

    a, b = first_frames(0), first_frames(0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # same seed, same episodes
    assert not np.array_equal(a[0], a[1])  # a new object position every episode
    assert not np.array_equal(a[0], first_frames(1)[0])


def test_metaworld_corner_camera_is_turned_upright():
    from benchmark.tasks.envs.metaworld import CAMERAS
    from benchmark.tasks.envs.render import Camera, PixelRenderer

    env = get_task("metaworld/hammer").make_env(seed=0, camera="corner")
    env.reset()
    raw = PixelRenderer(env._env.model, Camera(name="corner", flip=False))
    assert CAMERAS["corner"].flip
    np.testing.assert_array_equal(env.render(), raw.render(env._env.data)[::-1, ::-1])
    raw.close()
    env.close()
    with pytest.raises(ValueError, match="unknown camera"):
        get_task("metaworld/hammer").make_env(camera="top")


def test_kitchen_reward_counts_the_tasks_objects_in_goal_configuration():
    env = get_task("kitchen/mixed").make_env(seed=0)
    env.reset()
    env.data.qpos[22] = -0.75  # microwave door open (goal -0.75)
    env.data.qpos[19] = 0.37  # slide cabinet open (goal 0.37)
    _, reward, _, _, info = env.step(np.zeros(9, np.float32))
    assert reward == 2.0 and list(info["objects_done"]) == [True, False, False, True]
    env.close()
    # The same state counts one object for "partial" (no slide cabinet there).
    q = info["qpos"]
    assert objects_done(q, KITCHEN_TASKS["partial"]).tolist() == [True, False, False, False]


def test_kitchen_goal_threshold_is_0_3():
    q = np.zeros(30)
    q[22] = -0.75 + 0.29
    assert objects_done(q, ["microwave"])[0]
    q[22] = -0.75 + 0.31
    assert not objects_done(q, ["microwave"])[0]
    with pytest.raises(ValueError, match="unknown kitchen objects"):
        objects_done(q, ["toaster"])
    with pytest.raises(ValueError, match="30 entries"):
        objects_done(np.zeros(29), ["microwave"])


def test_kitchen_render_qpos_keeps_the_episode_state():
    env = get_task("kitchen/partial").make_env(seed=0)
    before, _ = env.reset()
    q = env.data.qpos.copy()
    q[22] = -0.75
    opened = env.render_qpos(q)
    assert not np.array_equal(opened, before)  # the open microwave shows
    np.testing.assert_array_equal(env.render(), before)  # and the live scene is untouched
    env.close()


def test_several_envs_in_one_process_each_render_their_own_scene():
    envs = [
        get_task(n).make_env(seed=0)
        for n in ("metaworld/door-open", "metaworld/drawer-open", "kitchen/mixed")
    ]
    firsts = [env.reset()[0] for env in envs]
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        assert not np.array_equal(firsts[i], firsts[j])
    # Interleave: every renderer still shows its own scene after the others drew theirs.
    for _ in range(2):
        for env, first in zip(envs, firsts):
            np.testing.assert_array_equal(env.render(), first)
    for env in envs:
        env.close()


def _run(code: str, **env_vars):
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    env.update(env_vars)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_unsupported_gl_backend_is_a_clear_error():
    out = _run("import benchmark.tasks.envs", MUJOCO_GL="directx")
    assert out.returncode != 0 and "MUJOCO_GL='directx' is not supported" in out.stderr


def test_missing_gl_context_is_a_clear_error():
    # mujoco imported first with no MUJOCO_GL picks GLFW, which has no display here.
    code = (
        "import mujoco, benchmark.tasks as t\n"
        "try:\n    t.get_task('metaworld/hammer').make_env()\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = _run(code, DISPLAY="")
    assert "RenderBackendError" in out.stdout and "headless backend" in out.stdout


def test_metaworld_reward_is_the_last_sub_steps_success():
    env = get_task("metaworld/drawer-open").make_env(seed=3)
    expert = scripted_expert("drawer-open")
    inner_step, seen = env._env.step, []

    def spy(action):  # the real simulator step; records the success of every sub-step
        out = inner_step(action)
        seen.append(bool(out[4]["success"]))
        return out

    env._env.step = spy
    _, info = env.reset()
    seen.clear()
    for _ in range(80):
        _, r, _, _, info = env.step(expert.get_action(info["state"]))
        assert r == float(seen[-1]) and len(seen) % 2 == 0  # two sub-steps, the last one decides
    env.close()
    assert any(seen)
