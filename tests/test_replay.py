import numpy as np
import pytest
from conftest import make_episode

from benchmark.replay import EpisodeStore


def naive_stack(frames, t, k):
    return np.concatenate([frames[max(i, 0)] for i in range(t - k + 1, t + 1)], axis=-1)


def test_frame_stack_by_index_equals_naive_stacking():
    store = EpisodeStore(seed=0)
    eps = [make_episode(T=6, seed=1), make_episode(T=4, seed=2)]
    for ep in eps:
        store.add(ep)
    # Find each sample's source by matching the action, then compare with naive stacking.
    b = store.sample_transitions(64, framestack=3)
    assert b["obs"].shape == (64, 8, 8, 9) and b["next_obs"].shape == (64, 8, 8, 9)
    for i in range(64):
        (e, t), = [(e, t) for e, ep in enumerate(eps) for t in range(len(ep["action"]))
                   if np.array_equal(ep["action"][t], b["action"][i])]
        np.testing.assert_array_equal(b["obs"][i], naive_stack(eps[e]["image"], t, 3))
        np.testing.assert_array_equal(b["next_obs"][i], naive_stack(eps[e]["image"], t + 1, 3))
        assert b["reward"][i] == eps[e]["reward"][t]


def test_terminal_sets_discount_zero():
    ep = make_episode(T=3)
    ep["terminal"][:] = True
    store = EpisodeStore()
    store.add(ep)
    assert np.all(store.sample_transitions(8)["discount"] == 0.0)


def test_sequences_stay_inside_one_episode_and_align_actions():
    store = EpisodeStore(seed=3)
    eps = [make_episode(T=9, seed=1), make_episode(T=3, seed=2)]  # the second is too short for L=6
    for ep in eps:
        store.add(ep)
    b = store.sample_sequences(16, length=6)
    assert b["image"].shape == (16, 6, 8, 8, 3) and b["action"].shape == (16, 6, 4)
    ep = eps[0]
    for i in range(16):
        s = next(s for s in range(0, 5) if np.array_equal(ep["image"][s], b["image"][i, 0]))
        np.testing.assert_array_equal(b["image"][i], ep["image"][s:s + 6])
        # action[j] is the action that led into frame j (zero before the first frame).
        expected = np.concatenate([np.zeros((1, 4)), ep["action"]])[s:s + 6]
        np.testing.assert_array_equal(b["action"][i], expected)
        assert b["is_first"][i, 0] == (s == 0) and not b["is_first"][i, 1:].any()


def test_append_seeding_goal_mask_and_memory():
    a, b = EpisodeStore(seed=7), EpisodeStore(seed=7)
    for s in (a, b):
        s.add(make_episode(T=5, seed=0))
        s.add(make_episode(T=5, seed=1), online=True)
    x, y = a.sample_transitions(10, 3), b.sample_transitions(10, 3)
    np.testing.assert_array_equal(x["obs"], y["obs"])
    assert a.num_transitions == 10 and a.online == [False, True]
    assert a.nbytes() <= 1.05 * a.frame_bytes + 1000  # frames stored once, nothing else of size
    mask = a.goal_mask(lambda ep: ep["reward"].sum() > 100)
    assert not mask.any()
    with pytest.raises(ValueError, match="goal filter"):
        a.sample_transitions(4, mask=mask)
    with pytest.raises(ValueError, match="T\\+1 images"):
        a.add({**make_episode(T=5), "action": np.zeros((6, 4), np.float32)})
