import numpy as np
import pytest

from algorithms import Sequences, Transitions
from benchmark.core.replay import BatchSampler, EpisodeStore, sampling_rng
from tests.helpers.runs import make_episode


def naive_stack(frames, t, k):
    return np.stack([frames[max(i, 0)] for i in range(t - k + 1, t + 1)])


def filled(*episodes, online=()):
    store = EpisodeStore()
    for i, ep in enumerate(episodes):
        store.add(ep, online=i in online)
    return store


def locate(eps, action):
    return [
        (e, t)
        for e, ep in enumerate(eps)
        for t in range(len(ep["action"]))
        if np.array_equal(ep["action"][t], action)
    ]


def test_frame_stack_by_index_equals_naive_stacking():
    eps = [make_episode(T=6, seed=1), make_episode(T=4, seed=2)]
    eps[1]["terminal"][-1] = True
    store = filled(*eps)
    b = store.sample(Transitions(64, framestack=3), sampling_rng(0, 0, 0))
    assert b["frames"].shape == (64, 4, 8, 8, 3) and b["obs"].shape == b["next_obs"].shape == (64, 3, 8, 8, 3)
    assert np.shares_memory(b["obs"], b["frames"]) and np.shares_memory(b["next_obs"], b["frames"])  # views
    for i in range(64):
        ((e, t),) = locate(eps, b["action"][i])
        np.testing.assert_array_equal(b["obs"][i], naive_stack(eps[e]["image"], t, 3))
        np.testing.assert_array_equal(b["next_obs"][i], naive_stack(eps[e]["image"], t + 1, 3))
        assert b["reward"][i] == eps[e]["reward"][t]
        assert b["discount"][i] == (0.0 if (e == 1 and t == 3) else 1.0)
        assert b["is_last"][i] == (t == len(eps[e]["action"]) - 1)
        assert b["success"][i] == eps[e]["success"][t]


def test_sequences_stay_inside_one_episode_and_align_actions():
    eps = [make_episode(T=9, seed=1), make_episode(T=3, seed=2)]  # the second is too short for L=6
    store = filled(*eps)
    b = store.sample(Sequences(16, length=6), sampling_rng(0, 0, 0))
    assert b["image"].shape == (16, 6, 8, 8, 3) and b["action"].shape == (16, 6, 4)
    ep = eps[0]
    for i in range(16):
        s = next(s for s in range(0, 5) if np.array_equal(ep["image"][s], b["image"][i, 0]))
        np.testing.assert_array_equal(b["image"][i], ep["image"][s : s + 6])
        # action[j] / reward[j]: what led into frame j (zero before the first frame).
        np.testing.assert_array_equal(
            b["action"][i], np.concatenate([np.zeros((1, 4)), ep["action"]])[s : s + 6]
        )
        np.testing.assert_array_equal(b["reward"][i], np.concatenate([[0], ep["reward"]])[s : s + 6])
        np.testing.assert_array_equal(b["is_first"][i], np.arange(s, s + 6) == 0)
        np.testing.assert_array_equal(b["is_last"][i], np.arange(s, s + 6) == 9)
        np.testing.assert_array_equal(b["success"][i], np.concatenate([[False], ep["success"]])[s : s + 6])
    assert set(b) >= {
        "image",
        "action",
        "reward",
        "discount",
        "is_first",
        "is_last",
        "is_terminal",
        "success",
        "goal",
        "episode_goal",
    }


def test_cross_episode_windows_cover_every_kept_frame_equally_and_mark_episode_starts():
    eps = [make_episode(T=9, seed=1), make_episode(T=3, seed=2), make_episode(T=5, seed=3)]
    eps[1]["success"][:] = False  # the goal filter drops episode 1: its stream is episodes 0 and 2
    store = filled(*eps)
    L = 6
    for flt, kept in [("all", (0, 1, 2)), ("goal", (0, 2))]:
        frames = np.concatenate([eps[e]["image"] for e in kept])  # the stream, episodes back to back
        firsts = np.concatenate([np.arange(len(eps[e]["image"])) == 0 for e in kept])
        into = np.concatenate([np.concatenate([np.zeros((1, 4)), eps[e]["action"]]) for e in kept])
        N = len(frames)
        b = store.sample(Sequences(400, L, filter=flt, cross_episodes=True), sampling_rng(0, 0, 0))
        counts = np.zeros(N, int)
        for i in range(400):
            s = next(
                s
                for s in range(N)
                if all(np.array_equal(frames[(s + j) % N], b["image"][i, j]) for j in range(L))
            )
            idx = (s + np.arange(L)) % N
            counts[idx] += 1
            np.testing.assert_array_equal(
                b["is_first"][i], firsts[idx]
            )  # a new episode starts where is_first
            np.testing.assert_array_equal(b["action"][i], into[idx])  # zeros into an episode's first frame
        # Each frame is in exactly L of the N windows, so its expected count is 400 L / N, start or middle
        # alike (inside-episode windows put an episode's first frame in 1 window of its 5 (T=9, L=6)).
        expected = 400 * L / N
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), (flt, counts, expected)
    assert b["is_first"][:, 1:].any()  # some windows do cross a boundary


def test_prioritize_ends_draws_episodes_uniformly_and_half_the_windows_at_the_end():
    # DreamerV2's draw for a T+1 = 11-frame episode and L = 5: start = min(U{0..11}, 6), so the last
    # window (start 6) has probability 6/12 and every other start 1/12; episodes are equally likely
    # whatever their length (the short one, 6 frames: start = min(U{0..6}, 1) -> 1 with probability 6/7).
    eps = [
        make_episode(T=10, seed=1),
        make_episode(T=5, seed=2),
        make_episode(T=3, seed=3),
    ]  # the last is too short
    store = filled(*eps)
    n = 24_000
    g = store.sample(Sequences(n, 5, prioritize_ends=True), sampling_rng(0, 0, 0))["image"][:, 0]
    where = {ep["image"][t].tobytes(): (e, t) for e, ep in enumerate(eps) for t in range(len(ep["image"]))}
    drawn = [where[img.tobytes()] for img in g]  # (episode, start) of each window
    e0 = np.array([t for e, t in drawn if e == 0])
    e1 = np.array([t for e, t in drawn if e == 1])
    assert not any(e == 2 for e, _ in drawn)
    assert abs(len(e0) / n - 0.5) < 0.02  # two eligible episodes, each half the time
    assert set(e0) == set(range(7)) and abs(np.mean(e0 == 6) - 6 / 12) < 0.02
    assert abs(np.mean(e0 == 0) - 1 / 12) < 0.01
    assert set(e1) == {0, 1} and abs(np.mean(e1 == 1) - 6 / 7) < 0.02
    b = store.sample(Sequences(64, 5, prioritize_ends=True), sampling_rng(0, 1, 0))
    assert not b["is_first"][:, 1:].any()  # windows stay inside their episode
    with pytest.raises(ValueError, match="exclude each other"):
        Sequences(4, 5, cross_episodes=True, prioritize_ends=True)
    with pytest.raises(ValueError, match="none has 12 frames"):
        store.sample(Sequences(4, 12, prioritize_ends=True), sampling_rng(0, 0, 0))


def test_windows_across_an_episode_start_give_the_same_posterior_as_a_fresh_window():
    import torch

    from algorithms.nets.world_model import RSSM, WorldModelConfig

    eps = [make_episode(T=5, seed=1), make_episode(T=5, seed=2)]
    store = filled(*eps)
    torch.manual_seed(0)
    rssm = RSSM(WorldModelConfig(deter=8, hidden=8, stoch=3, classes=4), embed_dim=5, action_dim=4)
    across = store.sequences(np.array([3]), 6)  # frames 3..5 of episode 0, then 0..2 of episode 1
    fresh = store.sequences(np.array([6]), 3)
    assert across["is_first"].tolist() == [[False, False, False, True, False, False]]

    def post(b):  # an embedding that depends on the frame only (a stand-in for the encoder)
        embed = torch.as_tensor(b["image"]).float().flatten(2)[..., :5] / 255
        p, _ = rssm.observe(embed, torch.as_tensor(b["action"]), torch.as_tensor(b["is_first"]), sample=False)
        return p["deter"][0]

    torch.testing.assert_close(post(across)[3:], post(fresh))


def test_filters_return_only_the_episodes_asked_for():
    eps = [make_episode(T=5, seed=s) for s in range(4)]
    eps[0]["success"][:] = False  # episode 0 never reaches the goal; the others do at their last step
    store = filled(*eps, online=(2, 3))
    rng = np.random.default_rng(0)
    for flt, allowed in [("offline", {0, 1}), ("online", {2, 3}), ("goal", {1, 2, 3}), ("all", {0, 1, 2, 3})]:
        b = store.sample(Transitions(200, framestack=2, filter=flt), rng)
        seen = {locate(eps, a)[0][0] for a in b["action"]}
        assert seen == allowed, flt
        s = store.sample(Sequences(50, length=3, filter=flt), rng)
        seen = {
            next(e for e, ep in enumerate(eps) for t in range(4) if np.array_equal(ep["image"][t], img))
            for img in s["image"][:, 0]
        }
        assert seen == allowed, flt
    b = store.sample(Transitions(100, online_fraction=0.25), rng)
    assert b["online"].sum() == 25
    with pytest.raises(ValueError, match="unknown filter 'sucess'"):
        Transitions(8, filter="sucess")
    with pytest.raises(ValueError, match="unknown filter"):
        Sequences(8, 4, filter="expert")
    with pytest.raises(ValueError, match="'goal' filter"):
        filled(eps[0]).sample(Transitions(4, filter="goal"), rng)


def test_goal_flags_follow_the_task_rule():
    ep = make_episode(
        T=4, objects_done=np.array([[1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], bool)
    )
    store = EpisodeStore(goal_fn=lambda e: e["objects_done"][:, :3].all(1))  # Kitchen partial: first three
    store.add(ep)
    np.testing.assert_array_equal(store.episode(0)["goal"], [False, True, False, True])
    assert store.ep_goal == [True]


def test_sampling_is_a_function_of_seed_step_and_request_and_prefetch_changes_nothing():
    eps = [make_episode(T=7, seed=s) for s in range(3)]
    a, b = filled(*eps), filled(*eps)
    requests = {"q": Transitions(16, framestack=3), "m": Sequences(4, 4)}
    sync = BatchSampler(a, requests, seed=5, depth=0)
    pre = BatchSampler(b, requests, seed=5, depth=3)
    got_sync = list(sync.block(10, 7))
    got_pre = list(pre.block(10, 7))
    for x, y in zip(got_sync, got_pre):
        for name in requests:
            for key in x[name]:
                np.testing.assert_array_equal(x[name][key], y[name][key])
    assert not np.array_equal(got_sync[0]["q"]["action"], got_sync[1]["q"]["action"])  # steps differ
    # Leaving a block early waits for the gathers in flight, then the store may grow.
    for i, _ in enumerate(pre.block(0, 100)):
        if i == 2:
            break
    b.add(make_episode(T=7, seed=9))
    pre.close()


def test_memory_is_the_frames_and_reserve_avoids_copies():
    store = EpisodeStore()
    eps = [make_episode(T=50, size=16, seed=s) for s in range(4)]
    store.reserve(4 * 51, (16, 16, 3), 4)
    frames = store.frames
    for ep in eps:
        store.add(ep)
    assert store.frames is frames  # no reallocation
    assert store.nbytes() <= 1.05 * store.frame_bytes
    grown = filled(*eps)  # without a reservation it grows and keeps the data
    np.testing.assert_array_equal(grown.episode(3)["image"], eps[3]["image"])
    with pytest.raises(ValueError, match="T\\+1 images"):
        store.add({**make_episode(T=5), "action": np.zeros((6, 4), np.float32)})
    with pytest.raises(ValueError, match="image shape"):
        store.add(make_episode(T=5, size=8))


def test_episodes_keep_the_fields_a_goal_rule_reads():
    # Kitchen's goal rule reads objects_done: the store keeps it, so episode(e) hands it to agents
    from benchmark.tasks import get_task

    spec = get_task("kitchen/partial")
    done = np.zeros((5, 4), bool)
    done[3:, :3] = True  # the first three objects hold from step 3 on
    eps = [
        make_episode(T=5, action_dim=9, seed=1, objects_done=done),
        make_episode(T=4, action_dim=9, seed=2, objects_done=np.zeros((4, 4), bool)),
    ]
    store = EpisodeStore(goal_fn=spec.goal_flags)
    store.reserve(20, (8, 8, 3), 9)
    for ep in eps:
        store.add(ep)
    for e, ep in enumerate(eps):
        got = store.episode(e)
        np.testing.assert_array_equal(got["objects_done"], ep["objects_done"])
        assert spec.reaches_goal(got) == spec.reaches_goal(ep)
    assert [spec.reaches_goal(store.episode(e)) for e in range(2)] == [True, False]
    store.reserve(200)  # a regrown store keeps the field
    np.testing.assert_array_equal(store.episode(0)["objects_done"], done)
    with pytest.raises(ValueError, match="objects_done"):
        store.add(make_episode(T=3, action_dim=9, seed=3))
    with pytest.raises(ValueError, match="no 'objects_done'"):  # a goal rule that does not read it
        s2 = EpisodeStore()
        s2.add(make_episode(T=3, objects_done=np.zeros((3, 4), bool)))
        s2.add(make_episode(T=3))
    with pytest.raises(ValueError, match="shape"):
        store.add(make_episode(T=3, action_dim=9, seed=3, objects_done=np.zeros((3, 2), bool)))
    plain = filled(make_episode(T=3))
    assert "objects_done" not in plain.episode(0)
    with pytest.raises(ValueError, match="earlier episodes lack"):
        plain.add(make_episode(T=3, objects_done=np.zeros((3, 4), bool)))


def test_a_first_episode_longer_than_the_reservation_grows_the_store_with_its_fields():
    store = EpisodeStore()
    store.reserve(3, (8, 8, 3), 4)  # room for 3 frames; the episode has 7
    ep = make_episode(T=6, objects_done=np.ones((6, 2), bool))
    store.add(ep)
    np.testing.assert_array_equal(store.episode(0)["image"], ep["image"])
    np.testing.assert_array_equal(store.episode(0)["objects_done"], ep["objects_done"])
