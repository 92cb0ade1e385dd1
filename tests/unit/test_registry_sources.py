"""One name, one source: a plugin file or an entry point cannot take a built-in's name (or each other's),
and config.json records where a run's algorithm came from without making it part of the run's identity."""

import hashlib
import sys
import textwrap

import pytest

import algorithms
from benchmark.core import rundir
from benchmark.launch.plan import UsageError, load_imports

# A plugin with its own config (importing BCConfig would load the built-in bc first).
PLUGIN = textwrap.dedent("""
    from dataclasses import dataclass
    from algorithms import register

    @dataclass(frozen=True)
    class C:
        lr: float = 1.0

    register("{name}", C, lambda config, context: None)
""")


@pytest.fixture
def registry(monkeypatch):
    """A copy of the registry for the test (whatever it registers is gone after it); bc is in the real one."""
    algorithms.get("bc")
    monkeypatch.setattr(algorithms, "REGISTRY", dict(algorithms.REGISTRY))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith(("moto_plugin_", "ep_")):
            del sys.modules[name]


def install(site, dist, module, names):
    """An installed distribution as pip lays it out: ``module`` registers ``names``, its entry points."""
    pkg = site / module
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    header, _, line = PLUGIN.rpartition("register(")
    (pkg / "algo.py").write_text(header + "".join(f"register({line}".replace("{name}", n) for n in names))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    eps = "".join(f"{n} = {module}.algo\n" for n in names)
    (info / "entry_points.txt").write_text(f"[{algorithms.ENTRY_POINT_GROUP}]\n{eps}")


@pytest.mark.parametrize("bc_loaded_first", [False, True])
def test_a_plugin_file_cannot_take_a_builtin_name(tmp_path, registry, bc_loaded_first):
    plugin = tmp_path / "clash.py"
    plugin.write_text(PLUGIN.replace("{name}", "bc"))
    if not bc_loaded_first:
        bc = algorithms.REGISTRY.pop("bc")  # as in a fresh process: built-ins load lazily
    with pytest.raises(UsageError) as err:
        load_imports([str(plugin)])
    msg = str(err.value)
    assert (
        msg.startswith(f"--import {plugin}, line 9: algorithm 'bc' from --import {plugin}")
        and "\n" not in msg
    )
    assert "the built-in algorithms.bc" in msg
    if not bc_loaded_first:
        assert "bc" not in algorithms.REGISTRY
        algorithms.REGISTRY["bc"] = bc
    assert algorithms.get("bc").origin == {"kind": "built-in", "module": "algorithms.bc"}  # still BC


def test_a_variant_cannot_take_a_builtin_name(registry):
    algorithms.REGISTRY.pop("moto-no-bc", None)  # as before moto's module is imported
    with pytest.raises(
        algorithms.NameClash,
        match=f"'moto-no-bc' from module {__name__} .*already provided by the built-in algorithms.moto",
    ):
        algorithms.register_variant("moto-no-bc", "bc", lr=1.0)
    assert "moto-no-bc" not in algorithms.REGISTRY


def test_an_entry_point_cannot_take_a_builtin_name(tmp_path, registry, monkeypatch, capsys):
    install(tmp_path, "ep-clash", "ep_clash", ["bc", "ep-clash-other"])
    monkeypatch.syspath_prepend(str(tmp_path))
    both = (
        "provided by both the built-in algorithms.bc and the entry point 'bc = ep_clash.algo' of ep-clash 1.0"
    )
    assert both in algorithms.clash("bc")
    from benchmark.run import main

    assert main(["--algos", "bc", "--dry-run", "--out", str(tmp_path / "r")]) == 2
    assert both in capsys.readouterr().err
    bc = algorithms.REGISTRY.pop("bc")  # as in a fresh process
    with pytest.raises(algorithms.NameClash, match=both):
        algorithms.get("bc")
    algorithms.REGISTRY["bc"] = bc
    # the package's module, loaded for its other name, is refused the built-in's name
    with pytest.raises(algorithms.NameClash, match="'bc' from the entry point 'bc = ep_clash.algo'"):
        algorithms.get("ep-clash-other")
    assert algorithms.REGISTRY["bc"].origin["kind"] == "built-in"


def test_two_entry_points_cannot_share_a_name(tmp_path, registry, monkeypatch):
    install(tmp_path, "ep-one", "ep_one", ["ep-dup"])
    install(tmp_path, "ep-two", "ep_two", ["ep-dup"])
    monkeypatch.syspath_prepend(str(tmp_path))
    problem = algorithms.clash("ep-dup")
    assert "of ep-one 1.0" in problem and "of ep-two 1.0" in problem
    with pytest.raises(algorithms.NameClash, match="provided by both"):
        algorithms.get("ep-dup")
    with pytest.raises(algorithms.NameClash, match="'ep-dup' from the entry point 'ep-dup = ep_one.algo'"):
        __import__("ep_one.algo")  # loaded some other way, it is still refused
    assert "ep-dup" not in algorithms.REGISTRY


def test_sources_name_the_builtin_the_file_and_its_hash_and_the_distribution(tmp_path, registry, monkeypatch):
    assert algorithms.sources("bc") == {"bc": {"kind": "built-in", "module": "algorithms.bc"}}
    plugin = tmp_path / "mine.py"
    plugin.write_text(PLUGIN.replace("{name}", "mine-src-test"))
    load_imports([str(plugin)])
    (src,) = algorithms.sources("mine-src-test").values()
    assert src["kind"] == "import" and src["import"] == str(plugin) and src["file"] == str(plugin)
    assert src["sha256"] == hashlib.sha256(plugin.read_bytes()).hexdigest()
    install(tmp_path / "site", "ep-src", "ep_src", ["ep-src-test"])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert algorithms.sources("ep-src-test") == {
        "ep-src-test": {
            "kind": "entry-point",
            "entry_point": "ep-src-test = ep_src.algo",
            "distribution": "ep-src",
            "version": "1.0",
        }
    }
    algorithms.register_variant("bc-src-test", "bc", lr=1.0)
    assert algorithms.sources("bc-src-test") == {
        "bc-src-test": {"kind": "module", "module": __name__, "file": __file__},
        "bc": {"kind": "built-in", "module": "algorithms.bc"},
    }


def test_config_json_records_the_source_outside_the_run_identity(tmp_path, monkeypatch):
    from benchmark.core import protocol
    from benchmark.tasks import get_task
    from benchmark.tasks.profiles import schedule_for

    monkeypatch.setattr(protocol, "read_manifest", lambda path: dict(checksum="c", episodes=1, transitions=2))
    spec = get_task("metaworld/drawer-open")
    run = protocol.RunSpec(
        task=spec,
        algo="bc",
        cfg=algorithms.make_config("bc", "smoke"),
        schedule=schedule_for(spec, "smoke"),
        seed=0,
        dataset=tmp_path,
        dir=tmp_path,
    )
    config = protocol.resolved_config(run, "smoke")
    assert config["algorithm_source"] == {"bc": {"kind": "built-in", "module": "algorithms.bc"}}
    old = {k: v for k, v in config.items() if k != "algorithm_source"}  # a run directory from before
    assert rundir.identity_diff(old, config) == []
    assert rundir.config_hash(old) == rundir.config_hash(config)
