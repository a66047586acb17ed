"""The ``torch-quantized`` exporter, proved by PyTorch itself.

- Every case of the export matrix: the plain program (before ``torch.export``)
  reproduces the Brevitas model in eval mode exactly, on a batch size it was
  not traced with.
- One configuration per layer kind, end to end: ``torch.export`` program,
  saved with ``torch.export.save``, reloaded with ``torch.export.load`` (in a
  process where Brevitas cannot be imported), exact again, with no
  deprecation warning anywhere.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _export_models import CASES_BY_LAYER, build, cases

import brevitas.export as bx
from brevitas.export.trace import trace
from brevitas.nn import QuantConv2d, QuantIdentity, QuantReLU
from brevitas.quant.scaled_int import Int8WeightPerChannelFloat, Int32Bias
from brevitas_plugins.export.modules import IntegerConstant
from brevitas_plugins.export.torch_quantized import TorchQuantizedConverter

CASES = cases()
END_TO_END = CASES_BY_LAYER()


def _reference(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    with torch.no_grad():
        out = model(*inputs)
    return out.value if hasattr(out, "value") else out


@pytest.mark.parametrize(("layer", "config"), CASES, ids=[f"{layer}-{config}" for layer, config in CASES])
def test_plain_program_is_exact(layer: str, config: str) -> None:
    model, example, other = build(layer, config)
    program, problems = TorchQuantizedConverter(trace(model, example)).convert()
    assert not problems and program is not None
    with torch.no_grad():
        out = program(*other)
    assert torch.equal(out, _reference(model, other))


@pytest.mark.parametrize(("layer", "config"), END_TO_END, ids=[f"{layer}-{config}" for layer, config in END_TO_END])
def test_saved_program_reloads_and_is_exact(layer: str, config: str, tmp_path: Path) -> None:
    model, example, other = build(layer, config)
    path = tmp_path / "model.pt2"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        bx.export(model, example, exporter="torch-quantized", path=path)
        loaded = torch.export.load(str(path))
        with torch.no_grad():
            out = loaded.module()(*other)
    assert torch.equal(out, _reference(model, other))
    backend = bx.get_exporter("torch-quantized")
    assert np.array_equal(backend.run(path, *other)[0], _reference(model, other).numpy())


def _cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        QuantIdentity(return_quant_tensor=True),
        QuantConv2d(3, 8, 3, weight_quant=Int8WeightPerChannelFloat, bias_quant=Int32Bias, return_quant_tensor=True),
        QuantReLU(bit_width=4),
    )
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 8, 8))
    return model.eval()


def test_program_stores_integer_weights_with_scales() -> None:
    model = _cnn()
    program = bx.export(model, torch.randn(1, 3, 8, 8), exporter="torch-quantized")
    state = program.state_dict
    ints = [k for k, v in state.items() if k.endswith(".ints")]
    assert ints and all(not state[k].is_floating_point() for k in ints)
    assert state[next(k for k in ints if "weight" in k)].dtype == torch.int8
    assert any(k.endswith("weight.scale") and state[k].numel() == 8 for k in state)  # per-channel
    assert not any(v.is_floating_point() and v.shape == model[1].weight.shape for v in state.values())
    # the bias is int32 (Int32Bias): stored as integers too
    assert any("bias" in k and not state[k].is_floating_point() for k in ints)
    mods = [m for m in TorchQuantizedConverter(trace(model, torch.randn(1, 3, 8, 8))).convert()[0].modules()]
    assert any(isinstance(m, IntegerConstant) for m in mods)


def test_batch_of_one_example_still_exports_a_dynamic_batch() -> None:
    model = _cnn()
    program = bx.export(model, torch.randn(1, 3, 8, 8), exporter="torch-quantized")
    x = torch.randn(5, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(program.module()(x), _reference(model, (x,)))


def test_reloads_without_brevitas(tmp_path: Path) -> None:
    model = _cnn()
    path = tmp_path / "cnn.pt2"
    x = torch.randn(2, 3, 8, 8)
    torch.save({"x": x, "y": _reference(model, (x,))}, tmp_path / "io.pt")
    bx.export(model, x, exporter="torch-quantized", path=path)
    script = (
        "import sys, warnings\n"
        "for name in ('brevitas', 'brevitas_plugins'): sys.modules[name] = None\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        "import torch\n"
        f"io = torch.load({str(tmp_path / 'io.pt')!r}, weights_only=True)\n"
        f"program = torch.export.load({str(path)!r})\n"
        "with torch.no_grad(): y = program.module()(io['x'])\n"
        "assert torch.equal(y, io['y']), 'mismatch'\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().endswith("ok")


def test_unknown_option_and_custom_layer_are_problems() -> None:
    model = _cnn()
    problems = bx.check(model, torch.randn(1, 3, 8, 8), exporter="torch-quantized", opset_version=13)
    assert problems and "opset_version" in problems[0].constraint

    class Custom(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.act_quant = QuantIdentity().act_quant

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act_quant(x).value * 2

    wrapped = torch.nn.Sequential(torch.nn.Identity(), Custom())
    problems = bx.check(wrapped, torch.randn(2, 3), exporter="torch-quantized")
    assert [p.layer for p in problems] == ["1"]
    assert "Custom" in problems[0].constraint and problems[0].fix
