"""The plugin machinery through the real entry-point path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types

import pytest

import brevitas.plugins
from brevitas.errors import DuplicateNameError, PluginError, UnknownNameError
from brevitas.plugins import ByRole, hookimpl
from brevitas.plugins.registry import Registry

GOOD_PLUGIN = """
from brevitas.plugins import hookimpl

class TestsOnlyScaling:
    pass

@hookimpl
def brevitas_register(registry):
    registry.add("scaling", "tests_only", TestsOnlyScaling, description="from a throw-away distribution")
"""

RAISES_ON_IMPORT = """
raise RuntimeError("boom at import")
"""

RAISES_ON_REGISTER = """
from brevitas.plugins import hookimpl

@hookimpl
def brevitas_register(registry):
    registry.add("scaling", "half_registered", object)
    raise ValueError("boom while registering")
"""

DUPLICATE = """
from brevitas.plugins import hookimpl

@hookimpl
def brevitas_register(registry):
    registry.add("scaling", "TESTS_ONLY", object)
"""


def test_registry_finds_scaling_from_entry_point(make_distribution):
    make_distribution("tests-good-plugin", {"tests_good": "tests_good_mod"}, {"tests_good_mod": GOOD_PLUGIN})
    registry = brevitas.plugins.get_registry()
    impl = registry.get("scaling", "TESTS_ONLY")
    assert impl.__name__ == "TestsOnlyScaling"
    info = brevitas.plugins.plugin_manager().plugins["tests_good"]
    assert info.status == "loaded"
    assert info.distribution == "tests-good-plugin"
    assert info.version == "1.0"
    assert ("scaling", "tests_only") in info.registered
    assert registry.entry("scaling", "tests_only").provider == "tests_good"


def test_plugin_raising_on_import_is_reported_and_others_work(make_distribution):
    make_distribution("tests-good-plugin", {"tests_good": "tests_good_mod"}, {"tests_good_mod": GOOD_PLUGIN})
    make_distribution("tests-bad-import", {"tests_bad": "tests_bad_mod"}, {"tests_bad_mod": RAISES_ON_IMPORT})
    registry = brevitas.plugins.get_registry()
    assert registry.get("scaling", "tests_only") is not None
    info = brevitas.plugins.plugin_manager().plugins["tests_bad"]
    assert info.status == "failed"
    assert info.distribution == "tests-bad-import"
    assert "RuntimeError: boom at import" in info.error
    assert "import failed" in info.error


def test_plugin_raising_on_register_leaves_nothing_half_registered(make_distribution):
    make_distribution(
        "tests-bad-reg", {"tests_bad_reg": "tests_bad_reg_mod"}, {"tests_bad_reg_mod": RAISES_ON_REGISTER}
    )
    registry = brevitas.plugins.get_registry()
    info = brevitas.plugins.plugin_manager().plugins["tests_bad_reg"]
    assert info.status == "failed"
    assert "ValueError: boom while registering" in info.error
    assert ("scaling", "half_registered") not in registry


def test_duplicate_name_refused_naming_both_providers(make_distribution):
    make_distribution("tests-good-plugin", {"tests_good": "tests_good_mod"}, {"tests_good_mod": GOOD_PLUGIN})
    make_distribution("tests-dup-plugin", {"tests_zdup": "tests_dup_mod"}, {"tests_dup_mod": DUPLICATE})
    registry = brevitas.plugins.get_registry()
    info = brevitas.plugins.plugin_manager().plugins["tests_zdup"]
    assert info.status == "failed"
    assert "'tests_only' is registered twice" in info.error
    assert "'tests_good'" in info.error and "'tests_zdup'" in info.error
    # the first provider keeps its name
    assert registry.entry("scaling", "tests_only").provider == "tests_good"


def test_blocked_plugin_is_never_imported(make_distribution, monkeypatch):
    make_distribution("tests-bad-import", {"tests_bad": "tests_bad_mod"}, {"tests_bad_mod": RAISES_ON_IMPORT})
    monkeypatch.setenv("BREVITAS_PLUGINS_BLOCKED", "Tests_Bad, other")
    brevitas.plugins.get_registry()
    info = brevitas.plugins.plugin_manager().plugins["tests_bad"]
    assert info.status == "blocked"
    assert "tests_bad_mod" not in sys.modules


def test_autoload_disabled_skips_third_party_but_loads_first_party(make_distribution, monkeypatch):
    make_distribution("tests-good-plugin", {"tests_good": "tests_good_mod"}, {"tests_good_mod": GOOD_PLUGIN})
    monkeypatch.setenv("BREVITAS_DISABLE_PLUGIN_AUTOLOAD", "1")
    registry = brevitas.plugins.get_registry()
    plugins = brevitas.plugins.plugin_manager().plugins
    assert plugins["tests_good"].status == "disabled"
    assert "tests_good_mod" not in sys.modules
    assert ("scaling", "tests_only") not in registry
    for first_party in ("standard", "onnx", "finn", "pyxir"):
        assert plugins[first_party].status != "disabled"


def test_explicit_register_in_code(fresh_plugins):
    plugin = types.ModuleType("tests_inline_plugin")

    @hookimpl
    def brevitas_register(registry):
        registry.add("scaling", "inline_scaling", int)

    plugin.brevitas_register = brevitas_register
    info = brevitas.plugins.register(plugin)
    assert info.status == "loaded"
    assert brevitas.plugins.lookup("scaling", "inline_scaling") is int
    brevitas.plugins.unregister("tests_inline_plugin")
    assert ("scaling", "inline_scaling") not in brevitas.plugins.get_registry()


def test_explicit_register_failure_raises_plugin_error(fresh_plugins):
    plugin = types.ModuleType("tests_inline_broken")

    @hookimpl
    def brevitas_register(registry):
        raise KeyError("nope")

    plugin.brevitas_register = brevitas_register
    with pytest.raises(PluginError, match="tests_inline_broken.*KeyError"):
        brevitas.plugins.register(plugin)


def test_unknown_name_lists_registered_names_and_suggests():
    reg = Registry()
    reg.add("scaling", "stats", object, provider="p")
    reg.add("scaling", "parameter", object, provider="p")
    with pytest.raises(UnknownNameError) as err:
        reg.get("scaling", "stat")
    msg = str(err.value)
    assert "unknown scaling 'stat'" in msg
    assert "parameter, stats" in msg
    assert "Did you mean 'stats'?" in msg


def test_unknown_name_names_the_distribution_that_provides_it(fresh_plugins):
    registry = brevitas.plugins.get_registry()
    registry.remove("exporter", "qonnx")  # as if brevitas-export-finn were not installed
    with pytest.raises(UnknownNameError, match="pip install brevitas-export-finn"):
        registry.get("exporter", "qonnx")


def test_unknown_name_of_a_blocked_installed_distribution_says_it_is_blocked(fresh_plugins, monkeypatch):
    monkeypatch.setenv("BREVITAS_PLUGINS_BLOCKED", "finn")
    registry = brevitas.plugins.get_registry()
    with pytest.raises(UnknownNameError) as err:
        registry.get("exporter", "qonnx")
    msg = str(err.value)
    assert "'qonnx' is provided by brevitas-export-finn, which is installed" in msg
    assert "its plugin 'finn' is blocked by BREVITAS_PLUGINS_BLOCKED" in msg
    assert "pip install" not in msg


def test_unknown_name_of_a_failed_plugin_says_it_failed():
    reg = Registry()
    reg.hint("exporter", "mine", "my-dist")
    reg.note_unavailable("my-dist", "its plugin 'mine' failed: import failed: ImportError: boom")
    with pytest.raises(UnknownNameError, match="which is installed but its plugin 'mine' failed: import failed"):
        reg.get("exporter", "mine")


def test_duplicate_in_registry_names_both_providers():
    reg = Registry()
    reg.add("stats_op", "Max", object, provider="first")
    with pytest.raises(DuplicateNameError, match="first by 'first', then by 'second'"):
        reg.add("stats_op", "max", object, provider="second")


def test_names_are_case_insensitive_and_accept_str_enums():
    import enum

    class E(str, enum.Enum):
        LSQ = "lsq"

    reg = Registry()
    reg.add("scaling", "LSQ", object, provider="p")
    assert reg.get("scaling", E.LSQ) is object
    assert ("SCALING", "lsq") in reg


def test_by_role_resolution():
    r = ByRole(default="w", act="a")
    assert r.resolve("weight") == "w"
    assert r.resolve("act") == "a"
    assert r.candidates() == ["w", "a"]
    with pytest.raises(ValueError, match="unknown role"):
        r.resolve("nope")


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, check=False
    )


def test_import_brevitas_loads_no_entry_point():
    code = (
        "import sys, brevitas\n"
        "import brevitas.plugins as p\n"
        "loaded = [m for m in sys.modules if m.startswith(('brevitas_plugins', 'brevitas_export'))]\n"
        "assert not loaded, loaded\n"
        "assert p._MANAGER is None\n"
        "assert 'importlib_metadata' not in sys.modules\n"
        "print('ok')\n"
    )
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cli_lists_the_four_first_party_plugins_as_loaded():
    out = _run("from brevitas.cli import main; raise SystemExit(main(['plugins', '--json']))")
    assert out.returncode == 0, out.stderr
    data = {p["name"]: p for p in json.loads(out.stdout)}
    expected = {
        "standard": "brevitas-plugins",
        "onnx": "brevitas-export-onnx",
        "finn": "brevitas-export-finn",
        "pyxir": "brevitas-export-pyxir",
    }
    for name, dist in expected.items():
        assert data[name]["distribution"] == dist
        assert data[name]["status"] == "loaded", data[name]["error"]


def test_cli_table_shows_failures_and_exits_zero(make_distribution, tmp_path):
    site = make_distribution("tests-bad-import", {"tests_bad": "tests_bad_mod"}, {"tests_bad_mod": RAISES_ON_IMPORT})
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = _run("from brevitas.cli import main; raise SystemExit(main(['plugins']))", **env)
    assert out.returncode == 0
    assert "tests_bad" in out.stdout
    assert "failed: import failed: RuntimeError: boom at import" in out.stdout
    assert re.search(r"\d+ plugin\(s\) failed; the others work", out.stdout)


def test_python_dash_m_brevitas_runs():
    out = subprocess.run([sys.executable, "-m", "brevitas", "plugins"], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert "brevitas-plugins" in out.stdout


def test_every_hook_specification_is_exercised_by_these_tests():
    """Meta-test: a hook added to hookspecs must get a test here."""
    import inspect
    from pathlib import Path

    from brevitas.plugins import hookspecs

    specs = [
        name
        for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(fn, f"{hookspecs.PROJECT_NAME}_spec")
    ]
    assert specs == ["brevitas_register"]
    source = Path(__file__).read_text()
    for name in specs:
        assert source.count(f"def {name}(") >= 3, f"hook {name} has no plugin implementing it in the tests"
