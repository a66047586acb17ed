"""Unexportable models fail check and export with one message naming each layer, the reason and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import brevitas.export as bx
from brevitas.errors import UnknownNameError
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.proxy import ActQuantProxy
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int32Bias

EXPORTERS = ("onnx-qcdq", "onnx-qop", "torch-quantized")


class Net(nn.Module):
    """A 4-bit convolution, one without input quantizer, and a healthy 8-bit one."""

    def __init__(self) -> None:
        super().__init__()
        io = dict(input_quant=Int8ActPerTensorFloat, output_quant=Int8ActPerTensorFloat, bias_quant=Int32Bias)
        self.features = nn.Sequential(
            QuantConv2d(3, 4, 3, weight_bit_width=4, **io),
            QuantReLU(),
            QuantConv2d(4, 4, 3, output_quant=Int8ActPerTensorFloat, bias=False),
        )
        self.head = QuantLinear(4, 2, **io)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


def test_qop_lists_every_layer_reason_and_fix_in_one_error(tmp_path: Path) -> None:
    model = Net().eval()
    x = torch.randn(1, 3, 8, 8)
    problems = bx.check(model, x, exporter="onnx-qop")
    assert [p.layer for p in problems] == ["features.0", "features.2"]
    assert "4-bit" in problems[0].constraint and "weight_bit_width=8" in problems[0].fix
    assert "no input quantizer" in problems[1].constraint and "input_quant=" in problems[1].fix
    path = tmp_path / "net.onnx"
    with pytest.raises(bx.ExportCheckError) as err:
        bx.export(model, x, exporter="onnx-qop", path=path)
    message = str(err.value)
    assert "2 problem(s)" in message
    for p in problems:
        assert str(p) in message
    assert err.value.problems == problems
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary file
    # the other exporters take it
    assert bx.check(model, x, exporter="onnx-qcdq") == []
    assert bx.check(model, x, exporter="torch-quantized") == []


class ScaledQuant(nn.Module):
    """A custom layer with its own quantizer: no exporter knows what its forward() computes."""

    def __init__(self) -> None:
        super().__init__()
        self.act_quant = ActQuantProxy(Int8ActPerTensorFloat)
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act_quant(x * self.gain).value


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_custom_layer_no_exporter_knows(exporter: str) -> None:
    model = nn.Sequential(QuantIdentity(), nn.Sequential(ScaledQuant())).eval()
    problems = bx.check(model, torch.randn(2, 3), exporter=exporter)
    assert [p.layer for p in problems] == ["1.0"]
    assert "ScaledQuant" in problems[0].constraint and "translation" in problems[0].constraint
    assert "brevitas.nn" in problems[0].fix
    with pytest.raises(bx.ExportCheckError, match="1.0: quant layer ScaledQuant"):
        bx.export(model, torch.randn(2, 3), exporter=exporter)


class DataDependent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = QuantIdentity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(x)
        return y if y.sum() > 0 else -y


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_untraceable_model_names_the_module(exporter: str) -> None:
    model = nn.Sequential(nn.Identity(), DataDependent()).eval()
    problems = bx.check(model, torch.randn(2, 3), exporter=exporter)
    assert len(problems) == 1 and problems[0].layer == "1"
    assert "cannot be traced" in problems[0].constraint and "control flow" in problems[0].fix


def test_missing_input_quantizer_is_a_problem_only_where_the_target_needs_it() -> None:
    conv = QuantConv2d(3, 4, 3, output_quant=Int8ActPerTensorFloat, bias=False).eval()
    x = torch.randn(1, 3, 5, 5)
    qop = bx.check(conv, x, exporter="onnx-qop")
    assert len(qop) == 1 and "no input quantizer" in qop[0].constraint
    assert bx.check(conv, x, exporter="onnx-qcdq") == []


def test_unknown_exporter_lists_the_installed_ones() -> None:
    with pytest.raises(UnknownNameError) as err:
        bx.export(nn.Linear(2, 2), torch.randn(1, 2), exporter="onnx-qdq")
    message = str(err.value)
    for name in EXPORTERS:
        assert name in message
    assert set(EXPORTERS) <= set(bx.exporters())
    assert "[onnx]" in bx.exporters()["onnx-qcdq"] and "[standard]" in bx.exporters()["torch-quantized"]
