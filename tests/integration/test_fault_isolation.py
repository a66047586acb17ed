"""Fault isolation: a broken third-party plugin never takes the rest down.

Each plugin here is a real throw-away distribution (a ``*.dist-info`` folder
with an entry point, discovered by importlib-metadata like a pip-installed
package): one raises on import, one on registration, one registers
components that raise in their constructor or in ``forward``. Discovery goes
on past each; the CLI shows the failures; every other name keeps working; an
error raised by a broken component names the plugin that provided it; and
``BREVITAS_DISABLE_PLUGIN_AUTOLOAD`` / ``BREVITAS_PLUGINS_BLOCKED`` are
honoured by every way into the library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import brevitas.export
import brevitas.plugins
from brevitas.cli import main as cli_main
from brevitas.errors import BrevitasError, InjectionError, UnknownNameError
from brevitas.export.base import Exporter
from brevitas.nn import QuantLinear, QuantReLU

GOOD = """
import torch
from brevitas.core.scaling import ScalingImpl
from brevitas.plugins import hookimpl

class FiGoodScaling(ScalingImpl):
    def __init__(self, scaling_init=1.0):
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(float(scaling_init)))

    def forward(self, x):
        return self.value.abs() + 1e-3

@hookimpl
def brevitas_register(registry):
    registry.add("scaling", "fi_good", FiGoodScaling)
"""

RAISES_ON_IMPORT = """
raise ImportError("fi: a dependency of this plugin is missing")
"""

RAISES_ON_REGISTER = """
from brevitas.plugins import hookimpl

@hookimpl
def brevitas_register(registry):
    registry.add("scaling", "fi_half", object)
    raise RuntimeError("fi: registration exploded")
"""

INVALID_HOOK = """
from brevitas.plugins import hookimpl

@hookimpl
def brevitas_register(registry, not_a_hook_argument):
    pass
"""

BROKEN_COMPONENTS = """
import torch
from brevitas.core.scaling import ScalingImpl
from brevitas.export.base import Exporter
from brevitas.plugins import hookimpl

class FiInitRaises(ScalingImpl):
    def __init__(self, scaling_init=1.0):
        super().__init__()
        raise ValueError("fi: constructor bug")

class FiForwardRaises(ScalingImpl):
    def __init__(self, scaling_init=1.0):
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        raise RuntimeError("fi: forward bug")

class FiBrokenExporter(Exporter):
    name = "fi-broken"

    def check(self, model, args, **options):
        return []

    def export(self, model, args, **options):
        raise KeyError("fi: exporter bug")

    def save(self, artifact, path):
        raise AssertionError("unreachable")

    def run(self, artifact, *inputs):
        raise AssertionError("unreachable")

@hookimpl
def brevitas_register(registry):
    registry.add("scaling", "fi_init_raises", FiInitRaises)
    registry.add("scaling", "fi_forward_raises", FiForwardRaises)
    registry.add("exporter", "fi-broken", FiBrokenExporter)
"""

MARKER = """
import sys
sys.modules[__name__].IMPORTED = True
from brevitas.plugins import hookimpl

@hookimpl
def brevitas_register(registry):
    registry.add("scaling", "fi_marker", object)
"""

FIRST_PARTY = ("standard", "onnx", "finn", "pyxir")


@pytest.fixture
def broken_world(make_distribution: Callable[..., Path]) -> Path:
    """Every kind of plugin installed at once; returns the site folder."""
    make_distribution("fi-good", {"fi_good": "fi_good_mod"}, {"fi_good_mod": GOOD})
    make_distribution("fi-bad-import", {"fi_bad_import": "fi_bad_import_mod"}, {"fi_bad_import_mod": RAISES_ON_IMPORT})
    make_distribution("fi-bad-register", {"fi_bad_register": "fi_bad_reg_mod"}, {"fi_bad_reg_mod": RAISES_ON_REGISTER})
    make_distribution("fi-invalid", {"fi_invalid": "fi_invalid_mod"}, {"fi_invalid_mod": INVALID_HOOK})
    return make_distribution("fi-components", {"fi_components": "fi_comp_mod"}, {"fi_comp_mod": BROKEN_COMPONENTS})


def _statuses() -> dict[str, tuple[str, str]]:
    return {name: (p.status, p.error) for name, p in brevitas.plugins.plugin_manager().plugins.items()}


def test_discovery_goes_on_past_every_broken_plugin(broken_world: Path) -> None:
    registry = brevitas.plugins.get_registry()
    status = _statuses()
    assert status["fi_bad_import"][0] == "failed" and "fi: a dependency of this plugin is missing" in status[
        "fi_bad_import"][1]  # fmt: skip
    assert status["fi_bad_register"][0] == "failed" and "fi: registration exploded" in status["fi_bad_register"][1]
    assert status["fi_invalid"][0] == "failed" and "not_a_hook_argument" in status["fi_invalid"][1]
    assert status["fi_good"][0] == "loaded" and status["fi_components"][0] == "loaded"
    for name in FIRST_PARTY:
        assert status[name][0] == "loaded", status[name]
    assert ("scaling", "fi_good") in registry
    assert ("scaling", "fi_half") not in registry  # nothing half-registered
    assert {"onnx-qcdq", "torch-quantized"} <= set(brevitas.export.exporters())


def test_every_other_name_still_works(broken_world: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 4)
    with pytest.raises(BrevitasError):
        QuantLinear(4, 2, bias=False, weight_scaling_impl_type="fi_init_raises")
    broken = QuantLinear(4, 2, bias=False, weight_scaling_impl_type="fi_forward_raises")
    with pytest.raises(RuntimeError):
        broken(x)
    # after both failures: the standard names, and the good plugin's, still build and run
    standard = QuantLinear(4, 2, bias=True, weight_bit_width=4)
    good = QuantLinear(4, 2, bias=False, weight_scaling_impl_type="fi_good")
    relu = QuantReLU(bit_width=4)
    for layer in (standard, good, relu):
        assert torch.isfinite(layer(x)).all()
    scaling = good.weight_quant.tensor_quant.scaling_impl
    assert type(scaling).__name__ == "FiGoodScaling"
    expected = (float(scaling.value.detach().abs()) + 1e-3) / 127
    assert float(good.quant_weight_scale().detach()) == pytest.approx(expected)


def test_constructor_error_names_the_plugin_and_keeps_its_cause(broken_world: Path) -> None:
    with pytest.raises(InjectionError) as err:  # building a layer: the plugin's error is the cause
        QuantLinear(4, 2, bias=False, weight_scaling_impl_type="fi_init_raises")
    assert isinstance(err.value.__cause__, ValueError)
    text = str(err.value)
    assert "building weight_quant of QuantLinear" in text
    assert "fi: constructor bug" in text
    assert "scaling 'fi_init_raises' of plugin 'fi_components'" in text
    assert "'fi-components'" in text  # the distribution to blame, with its version
    assert "FiInitRaises" in text


def test_forward_error_names_the_plugin_and_the_layer(broken_world: Path) -> None:
    from brevitas.nn.utils import name_quant_layers

    model = torch.nn.Sequential(
        QuantLinear(4, 4, bias=False), QuantLinear(4, 2, bias=False, weight_scaling_impl_type="fi_forward_raises")
    )
    name_quant_layers(model)
    with pytest.raises(RuntimeError) as err:
        model(torch.randn(2, 4))
    text = str(err.value)
    assert "fi: forward bug" in text
    assert "weight_quant of QuantLinear '1'" in text
    assert "raised by FiForwardRaises (scaling 'fi_forward_raises' of plugin 'fi_components'" in text
    # activations too, and the error keeps its type and traceback
    relu = QuantReLU(scaling_impl_type="fi_forward_raises", scaling_init=1.0)
    with pytest.raises(RuntimeError, match="act_quant of QuantReLU.*plugin 'fi_components'") as err:
        relu(torch.randn(2, 4))
    assert any(frame.name == "forward" for frame in err.traceback)


def test_errors_of_first_party_components_say_where_they_come_from() -> None:
    per_channel = QuantLinear(4, 2, bias=False, weight_scaling_per_output_channel=True)
    with pytest.raises(RuntimeError) as err:
        per_channel.weight_quant(torch.randn(3, 5))  # 2 scales cannot broadcast over 3 rows
    assert "in weight_quant of QuantLinear" in str(err.value)
    assert "of plugin 'standard'" in str(err.value)


def test_a_broken_exporter_names_its_plugin_and_others_export(broken_world: Path) -> None:
    model = torch.nn.Sequential(QuantLinear(4, 2, bias=False))
    with pytest.raises(KeyError) as err:
        brevitas.export.export(model, torch.randn(1, 4), exporter="fi-broken")
    assert "fi: exporter bug" in str(err.value)
    assert "exporter 'fi-broken' of plugin 'fi_components'" in str(err.value)
    artifact = brevitas.export.export(model, torch.randn(1, 4), exporter="torch-quantized")
    assert artifact is not None


def test_cli_shows_each_failure_and_exits_zero(broken_world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["plugins"]) == 0
    table = capsys.readouterr().out
    assert "fi_bad_import" in table and "failed: import failed: ImportError: fi: a dependency" in table
    assert "failed: registration failed: RuntimeError: fi: registration exploded" in table
    assert "3 plugin(s) failed; the others work" in table
    brevitas.plugins.reset()
    assert cli_main(["plugins", "--json"]) == 0
    data = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert data["fi_invalid"]["status"] == "failed"
    assert data["fi_good"]["status"] == "loaded"
    assert {"kind": "scaling", "name": "fi_forward_raises"} in data["fi_components"]["registered"]


# ---------------------------------------------------------------------------
# Controls: honoured by every entry point
# ---------------------------------------------------------------------------


def _build_a_layer() -> object:
    return QuantLinear(4, 2, bias=True, weight_bit_width=4)(torch.randn(1, 4))


def _cli_plugins() -> object:
    return cli_main(["plugins"])


def _cli_describe() -> object:
    return cli_main(["describe", "brevitas.quant.scaled_int.Int8ActPerTensorFloat"])


def _lookup_marker_name() -> object:
    try:
        return brevitas.plugins.lookup("scaling", "fi_marker")
    except UnknownNameError as exc:
        return exc


#: every way into the library that may trigger discovery
ENTRY_POINTS: dict[str, Callable[[], object]] = {
    "registry": brevitas.plugins.get_registry,
    "lookup": _lookup_marker_name,
    "exporters": brevitas.export.exporters,
    "layer": _build_a_layer,
    "cli plugins": _cli_plugins,
    "cli describe": _cli_describe,
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_disable_autoload_is_honoured(
    entry: str, make_distribution: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    make_distribution("fi-marker", {"fi_marker": "fi_marker_mod"}, {"fi_marker_mod": MARKER})
    monkeypatch.setenv("BREVITAS_DISABLE_PLUGIN_AUTOLOAD", "1")
    ENTRY_POINTS[entry]()
    capsys.readouterr()
    assert "fi_marker_mod" not in sys.modules, f"{entry} imported a third-party plugin"
    status = _statuses()
    assert status["fi_marker"][0] == "disabled"
    assert all(status[name][0] == "loaded" for name in FIRST_PARTY)
    assert ("scaling", "fi_marker") not in brevitas.plugins.get_registry()
    # explicit registration in code still works
    import types

    plugin = types.ModuleType("fi_explicit")
    plugin.brevitas_register = brevitas.plugins.hookimpl(lambda registry: registry.add("scaling", "fi_explicit", int))
    brevitas.plugins.register(plugin)
    assert brevitas.plugins.lookup("scaling", "fi_explicit") is int


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_block_list_is_honoured(
    entry: str, make_distribution: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    make_distribution("fi-marker", {"fi_marker": "fi_marker_mod"}, {"fi_marker_mod": MARKER})
    monkeypatch.setenv("BREVITAS_PLUGINS_BLOCKED", "FI_MARKER, pyxir")
    ENTRY_POINTS[entry]()
    capsys.readouterr()
    assert "fi_marker_mod" not in sys.modules
    status = _statuses()
    assert status["fi_marker"][0] == "blocked" and status["pyxir"][0] == "blocked"
    assert status["standard"][0] == "loaded"
    names = set(brevitas.export.exporters())
    assert not any(name.startswith("pyxir") for name in names)
    with pytest.raises(UnknownNameError, match="pyxir"):
        brevitas.export.get_exporter("pyxir")


def test_console_script_honours_both_controls(broken_world: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(broken_world), os.environ.get("PYTHONPATH", "")]),
        "BREVITAS_DISABLE_PLUGIN_AUTOLOAD": "1",
        "BREVITAS_PLUGINS_BLOCKED": "finn",
    }
    code = "import sys; from brevitas.cli import main; rc = main(['plugins', '--json']); " \
        "assert not any(m.startswith('fi_') for m in sys.modules), sorted(sys.modules); sys.exit(rc)"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    data = {p["name"]: p["status"] for p in json.loads(done.stdout)}
    assert data["finn"] == "blocked"
    assert data["standard"] == data["onnx"] == data["pyxir"] == "loaded"
    assert {data[n] for n in ("fi_good", "fi_bad_import", "fi_bad_register", "fi_components")} == {"disabled"}


def test_plugin_errors_are_brevitas_errors_where_raised_on_purpose(broken_world: Path) -> None:
    with pytest.raises(UnknownNameError) as err:
        QuantLinear(4, 2, bias=False, weight_scaling_impl_type="fi_half")  # never registered: its plugin failed
    assert isinstance(err.value, BrevitasError)
    assert "fi_good" in str(err.value)  # the names that do exist are listed
    assert isinstance(Exporter, type)
