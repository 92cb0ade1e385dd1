import json

import numpy as np
import pytest

from benchmark.datasets import DatasetError, DatasetWriter, load_episodes, read_manifest, verify_dataset
from benchmark.datasets.__main__ import main as cli
from benchmark.datasets.format import load_episode
from tests.helpers.runs import make_episode


def write(path, episodes, **kw):
    with DatasetWriter(path, task="metaworld/hammer", generator={"name": "test"}, seed=0, **kw) as w:
        for ep in episodes:
            w.add(ep)
    return read_manifest(path)


def test_round_trip_keeps_every_array_and_counts(tmp_path):
    eps = [make_episode(T=5, seed=0), make_episode(T=7, seed=1, objects_done=np.ones((7, 2), bool))]
    m = write(tmp_path / "d", eps)
    back = load_episodes(tmp_path / "d")
    for a, b in zip(eps, back):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
            assert a[k].dtype == b[k].dtype
    assert (m["episodes"], m["transitions"], m["success_rate"]) == (2, 12, 1.0)
    assert m["mean_return"] == pytest.approx(np.mean([e["reward"].sum() for e in eps]))
    assert m["image_shape"] == [8, 8, 3] and m["action_dim"] == 4
    assert verify_dataset(tmp_path / "d")["checksum"] == m["checksum"]


def test_same_episodes_give_the_same_checksum(tmp_path):
    a = write(tmp_path / "a", [make_episode(seed=3)])
    b = write(tmp_path / "b", [make_episode(seed=3)])
    c = write(tmp_path / "c", [make_episode(seed=4)])
    assert a["checksum"] == b["checksum"] != c["checksum"]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e.update(image=e["image"].astype(np.float32)), "dtype float32, expected uint8"),
        (lambda e: e.update(action=e["action"][:-1]), "'action' has 4 rows"),
        (lambda e: e.pop("terminal"), "missing arrays"),
        (lambda e: e.update(extra=np.zeros(5)), "unknown arrays"),
        (lambda e: e.update(reward=np.full(5, np.nan, np.float32)), "non-finite"),
    ],
)
def test_malformed_episodes_are_refused(tmp_path, change, message):
    ep = make_episode()
    change(ep)
    with pytest.raises(DatasetError, match=message):
        write(tmp_path / "d", [ep])
    assert not (tmp_path / "d").exists() and not list(tmp_path.iterdir())  # nothing half-written


def test_episodes_must_agree_on_shapes(tmp_path):
    with pytest.raises(DatasetError, match="unlike the first episode"):
        write(tmp_path / "d", [make_episode(size=8), make_episode(size=16)])


def test_an_existing_dataset_is_kept_unless_overwritten(tmp_path):
    first = write(tmp_path / "d", [make_episode(seed=0)])
    with pytest.raises(DatasetError, match="--overwrite"):
        write(tmp_path / "d", [make_episode(seed=1)])
    # A failed overwrite leaves the old dataset whole.
    with pytest.raises(DatasetError):
        write(tmp_path / "d", [make_episode(seed=1), make_episode(size=4)], overwrite=True)
    assert verify_dataset(tmp_path / "d")["checksum"] == first["checksum"]
    second = write(tmp_path / "d", [make_episode(seed=1)], overwrite=True)
    assert second["checksum"] != first["checksum"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_verify_finds_a_corrupt_episode_file(tmp_path, capsys):
    write(tmp_path / "d", [make_episode(seed=0), make_episode(seed=1)])
    f = tmp_path / "d" / "episodes" / "000001.npz"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="000001.npz does not match its checksum: the file is corrupt"):
        verify_dataset(tmp_path / "d")
    assert cli(["verify", "d", "--data-dir", str(tmp_path)]) == 2
    assert "corrupt" in capsys.readouterr().err


def test_truncated_missing_and_mislabelled_files(tmp_path):
    write(tmp_path / "d", [make_episode(seed=0), make_episode(seed=1)])
    ep = tmp_path / "d" / "episodes"
    (ep / "000000.npz").write_bytes((ep / "000000.npz").read_bytes()[:100])
    with pytest.raises(DatasetError, match="cannot be read"):
        load_episodes(tmp_path / "d")
    (ep / "000001.npz").unlink()
    with pytest.raises(DatasetError, match="000000.npz does not match its checksum"):
        verify_dataset(tmp_path / "d")
    with pytest.raises(DatasetError, match="000001.npz is missing"):
        load_episode(tmp_path / "d", read_manifest(tmp_path / "d")["files"][1])
    (ep / "000000.npz").unlink()
    with pytest.raises(DatasetError, match="000000.npz is missing"):
        verify_dataset(tmp_path / "d")
    manifest = tmp_path / "d" / "manifest.json"
    manifest.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        verify_dataset(tmp_path / "d")
    with pytest.raises(
        DatasetError, match=r"no dataset at .*nowhere \(no manifest.json\)\. Create MetaWorld datasets with"
    ):
        verify_dataset(tmp_path / "nowhere")


def test_verify_refuses_a_hand_edited_manifest(tmp_path):
    write(tmp_path / "d", [make_episode(seed=0)])
    manifest = tmp_path / "d" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["files"][0]["length"] = 99
    manifest.write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="does not match its checksum"):
        verify_dataset(tmp_path / "d")


def test_a_mis_shaped_file_behind_a_valid_manifest_is_refused(tmp_path):
    write(tmp_path / "d", [make_episode(seed=0)])
    from benchmark.datasets.format import _sha256, save_npz

    f = tmp_path / "d" / "episodes" / "000000.npz"
    bad = make_episode(seed=0)
    bad["reward"] = bad["reward"][:, None]
    save_npz(f, bad)
    manifest = tmp_path / "d" / "manifest.json"
    m = json.loads(manifest.read_text())
    m["files"][0]["sha256"] = _sha256(f)
    from benchmark.datasets.format import _combined_checksum

    m["checksum"] = _combined_checksum(m["files"])
    manifest.write_text(json.dumps(m))
    with pytest.raises(DatasetError, match="'reward' must be 1-D"):
        verify_dataset(tmp_path / "d")


def test_subset_is_seeded_uniform_and_valid(tmp_path, capsys):
    write(tmp_path / "kitchen" / "mixed", [make_episode(seed=i, T=3 + i) for i in range(12)])
    args = ["subset", "kitchen/mixed", "--episodes", "5", "--data-dir", str(tmp_path)]
    assert cli(args + ["--seed", "0"]) == 0
    assert cli(args + ["--seed", "0", "--name", "again"]) == 0
    assert cli(args + ["--seed", "1"]) == 0
    s0 = verify_dataset(tmp_path / "kitchen" / "mixed-5ep-seed0")
    again = verify_dataset(tmp_path / "again")
    s1 = verify_dataset(tmp_path / "kitchen" / "mixed-5ep-seed1")
    assert s0["episodes"] == 5 and s0["generator"]["parent"] == "kitchen/mixed"
    assert s0["generator"]["indices"] == again["generator"]["indices"] != s1["generator"]["indices"]
    assert s0["checksum"] == again["checksum"]
    parent = load_episodes(tmp_path / "kitchen" / "mixed")
    for i, ep in zip(s0["generator"]["indices"], load_episodes(tmp_path / "kitchen" / "mixed-5ep-seed0")):
        np.testing.assert_array_equal(ep["image"], parent[i]["image"])
    assert s0["transitions"] == sum(len(parent[i]["action"]) for i in s0["generator"]["indices"])
    assert cli(args[:3] + ["13", "--data-dir", str(tmp_path)]) == 2
    assert "between 1 and 12" in capsys.readouterr().err


@pytest.mark.slow
def test_generate_metaworld_is_successful_and_reproducible(tmp_path, capsys):
    args = ["generate", "metaworld/plate-slide", "--episodes", "2", "--quiet"]
    assert cli(args + ["--data-dir", str(tmp_path / "a")]) == 0
    table = capsys.readouterr().out
    assert "paper_return" in table and "71.100" in table  # the paper's Table 1 value beside ours
    assert cli(args + ["--data-dir", str(tmp_path / "b")]) == 0
    a = verify_dataset(tmp_path / "a" / "metaworld" / "plate-slide")
    b = verify_dataset(tmp_path / "b" / "metaworld" / "plate-slide")
    assert a["checksum"] == b["checksum"]  # same seed, same bytes
    assert a["success_rate"] == 1.0 and a["episodes"] == 2 and a["transitions"] == 200
    for ep in load_episodes(tmp_path / "a" / "metaworld" / "plate-slide"):
        assert ep["image"].shape == (101, 64, 64, 3) and ep["action"].shape == (100, 4)
        assert np.array_equal(ep["reward"], ep["success"].astype(np.float32))
        assert np.abs(ep["action"]).max() <= 1.0


def test_cli_errors_exit_non_zero_with_a_message(tmp_path, capsys):
    assert cli(["generate", "kitchen/mixed", "--data-dir", str(tmp_path)]) == 2
    assert "import kitchen" in capsys.readouterr().err
    assert cli(["generate", "metaworld/nope", "--data-dir", str(tmp_path)]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert cli(["stats", "--data-dir", str(tmp_path)]) == 2
    assert "generate metaworld" in capsys.readouterr().err
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_bad_places_and_numbers_are_one_line_errors_that_leave_nothing(tmp_path, capsys):
    assert (
        cli(
            [
                "generate",
                "metaworld/drawer-open",
                "--episodes",
                "1",
                "--quiet",
                "--data-dir",
                "/proc/not-here",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and len(err.strip().splitlines()) == 1
    assert cli(["generate", "metaworld/drawer-open", "--max-attempts", "0", "--data-dir", str(tmp_path)]) == 2
    assert "--max-attempts must be at least" in capsys.readouterr().err
    # a failed import leaves no folder behind, empty or half-written
    data = tmp_path / "data"
    assert (
        cli(
            [
                "import",
                "kitchen",
                "--format",
                "d4rl",
                "--source",
                str(tmp_path / "missing.hdf5"),
                "--data-dir",
                str(data),
            ]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    assert not data.exists() or not any(data.rglob("*"))


def test_sigterm_during_generation_leaves_no_temporary_folder(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmark.datasets",
            "generate",
            "metaworld/drawer-open",
            "--episodes",
            "10",
            "--quiet",
            "--data-dir",
            str(tmp_path),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    folder = tmp_path / "metaworld"
    t = time.time()
    while not (folder.exists() and any(folder.glob(".drawer-open.tmp-*/episodes/*.npz"))):
        assert time.time() - t < 300 and p.poll() is None, "generation never started writing"
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and "interrupted (SIGTERM)" in err
    assert not list(tmp_path.rglob(".*tmp*")) and not (folder / "drawer-open").exists()


def test_a_sigterm_inside_a_c_call_is_still_an_interrupt(monkeypatch, capsys):
    """A SIGTERM that arrives while ctypes converts an argument (as in MuJoCo's EGL calls while a frame is
    rendered) surfaces as ``ctypes.ArgumentError``, not as the handler's KeyboardInterrupt; the command
    still reports an interrupt and exits 130."""
    import ctypes
    import os
    import signal

    from benchmark.datasets import __main__ as cli

    class SignalOnConversion:
        @classmethod
        def from_param(cls, value):
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside the conversion
            return value

    def stats(args):
        c_abs = ctypes.CDLL(None).abs
        c_abs.argtypes = [SignalOnConversion]
        c_abs(1)

    monkeypatch.setattr(cli, "cmd_stats", stats)
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(["stats", "--quiet"]) == 130
    assert "interrupted (SIGTERM): nothing half-written was kept" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) is before  # the command's handler is removed again
