import numpy as np
import pytest

from benchmark.tasks import TASKS, get_task, resolve_tasks, suites

PAPER_METAWORLD = {
    "assembly",
    "bin-picking",
    "box-close",
    "coffee-push",
    "disassemble",
    "door-open",
    "drawer-open",
    "hammer",
    "plate-slide",
    "window-open",
}


def test_registry_holds_the_papers_twelve_tasks():
    assert {n.split("/")[1] for n in suites()["metaworld"]} == PAPER_METAWORLD
    assert suites()["kitchen"] == ["kitchen/mixed", "kitchen/partial"]
    assert len(suites()["all"]) == 12 == len(TASKS)


def test_resolve_suites_lists_and_duplicates():
    assert resolve_tasks("kitchen") == ["kitchen/mixed", "kitchen/partial"]
    assert resolve_tasks("kitchen/partial,kitchen,metaworld/hammer") == [
        "kitchen/partial",
        "kitchen/mixed",
        "metaworld/hammer",
    ]
    assert len(resolve_tasks("all")) == 12


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(KeyError) as err:
        get_task("metaworld/door-close")
    assert "metaworld/door-open" in str(err.value) and "suites: all" in str(err.value)
    with pytest.raises(KeyError):
        resolve_tasks("kitchen,nope")


def test_schedules_follow_the_paper():
    mw, k = get_task("metaworld/hammer"), get_task("kitchen/mixed")
    assert (mw.schedule.offline_steps, mw.schedule.updates_per_episode, mw.schedule.online_steps) == (
        1000,
        20,
        20000,
    )
    assert (k.schedule.offline_steps, k.schedule.updates_per_episode, k.schedule.online_steps) == (
        10000,
        50,
        66300,
    )
    assert mw.schedule.online_episodes == 1000 and k.schedule.online_episodes == 1326
    assert (mw.action_repeat, k.action_repeat, k.episode_length) == (2, 1, 280)
    assert (mw.episode_length, mw.demo_length, k.demo_length) == (200, 100, 280)  # online/eval vs demos


def test_filtered_bc_goal_rule():
    done = np.zeros((6, 4), bool)
    done[3:, :3] = True  # microwave, kettle, bottom burner but never the light switch
    ep = {"success": done.all(1), "objects_done": done}
    assert get_task("kitchen/partial").reaches_goal(ep)  # first three objects are enough
    assert not get_task("kitchen/mixed").reaches_goal(ep)  # needs all four
    assert get_task("metaworld/hammer").reaches_goal({"success": np.array([0, 1, 0], bool)})
    assert not get_task("metaworld/hammer").reaches_goal({"success": np.zeros(3, bool)})


def test_the_long_cpu_profile_has_time_to_fine_tune_at_the_cpu_sizes():
    import algorithms
    from benchmark.tasks.profiles import schedule_for, sizes

    s = schedule_for(get_task("metaworld/drawer-open"), "cpu-long")
    assert (s.offline_steps, s.online_episodes, s.eval_every_episodes, s.eval_episodes) == (1000, 30, 3, 10)
    assert sizes("cpu-long") == "cpu" and sizes("paper") == "paper"
    assert algorithms.make_config("moto", sizes("cpu-long")) == algorithms.make_config("moto", "cpu")
