"""The onnx-qop dialect: QLinearConv / QLinearMatMul forms, integer hand-off, and what its check asks for."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import brevitas.export as bx
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantMaxPool2d, QuantReLU
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloat,
    Int8BiasPerTensorFloatInternalScaling,
    Int8WeightPerChannelFloat,
    Int32Bias,
    Uint8ActPerTensorFloat,
)
from brevitas.quant.shifted_scaled_int import ShiftedUint8WeightPerTensorFloat

IO = dict(input_quant=Int8ActPerTensorFloat, output_quant=Int8ActPerTensorFloat)


def _calibrated(model: nn.Module, *shape: int) -> nn.Module:
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(*shape))
    return model.eval()


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _assert_exact(model: nn.Module, artifact: onnx.ModelProto, x: torch.Tensor) -> None:
    with torch.no_grad():
        ref = model(x)
    ref = getattr(ref, "value", ref).numpy()
    for optimize in (False, True):
        out = bx.get_exporter("onnx-qop").run(artifact, x, optimize=optimize)[0]
        np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_conv_becomes_one_qlinearconv() -> None:
    conv = QuantConv2d(3, 4, 3, padding=1, weight_quant=Int8WeightPerChannelFloat, bias_quant=Int32Bias, **IO)
    conv = _calibrated(conv, 2, 3, 6, 6)
    x = torch.randn(2, 3, 6, 6)
    artifact = bx.export(conv, x, exporter="onnx-qop")
    assert _ops(artifact) == ["QuantizeLinear", "QLinearConv", "DequantizeLinear"]
    qconv = artifact.graph.node[1]
    assert len(qconv.input) == 9  # with the int32 bias
    _assert_exact(conv, artifact, x)


@pytest.mark.parametrize(
    ("bias", "shape", "op"),
    [(False, (2, 6), "QLinearMatMul"), (True, (2, 6), "QLinearConv"), (True, (2, 3, 6), "MatMulInteger")],
)
def test_linear_forms(bias: bool, shape: tuple[int, ...], op: str) -> None:
    layer = QuantLinear(6, 4, bias=bias, bias_quant=Int32Bias if bias else None, **IO)
    layer = _calibrated(layer, 4, *shape[1:])
    x = torch.randn(*shape)
    artifact = bx.export(layer, x, exporter="onnx-qop")
    assert op in _ops(artifact)
    assert "Gemm" not in _ops(artifact) and "MatMul" not in _ops(artifact)
    _assert_exact(layer, artifact, x)


def test_layers_hand_integers_to_each_other() -> None:
    common = dict(weight_quant=Int8WeightPerChannelFloat, bias_quant=Int32Bias, return_quant_tensor=True)
    model = nn.Sequential(
        QuantIdentity(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True),
        QuantConv2d(3, 4, 3, output_quant=Uint8ActPerTensorFloat, **common),
        QuantMaxPool2d(2),
        QuantConv2d(4, 4, 1, output_quant=Int8ActPerTensorFloat, **common),  # uint8 in, int8 out
    )
    model = _calibrated(model, 2, 3, 8, 8)
    x = torch.randn(2, 3, 8, 8)
    artifact = bx.export(model, x, exporter="onnx-qop")
    ops = _ops(artifact)
    assert ops.count("QLinearConv") == 2 and ops.count("DequantizeLinear") <= 2
    pool = next(n for n in artifact.graph.node if n.op_type == "MaxPool")
    producer = next(n for n in artifact.graph.node if pool.input[0] in n.output)
    assert producer.op_type == "QLinearConv"  # max pooling on the integers
    _assert_exact(model, artifact, x)


def _missing(model: nn.Module, x: torch.Tensor) -> list[Any]:
    problems = bx.check(model, x, exporter="onnx-qop")
    with pytest.raises(bx.ExportCheckError):
        bx.export(model, x, exporter="onnx-qop")
    return problems


def test_check_says_exactly_what_is_missing() -> None:
    conv = QuantConv2d(3, 4, 3)  # only the weight is quantized
    problems = _missing(conv.eval(), torch.randn(1, 3, 5, 5))
    text = [p.constraint for p in problems]
    assert any("no input quantizer" in t for t in text)
    assert any("no output quantizer" in t for t in text)
    assert any("bias is float" in t for t in text)
    fixes = " ".join(p.fix for p in problems)
    assert "input_quant=Int8ActPerTensorFloat" in fixes and "output_quant=" in fixes and "Int32Bias" in fixes


@pytest.mark.parametrize(
    ("kwargs", "needle", "fix"),
    [
        ({"weight_bit_width": 4}, "weight_quant is 4-bit", "weight_bit_width=8"),
        ({"input_bit_width": 6}, "input_quant is 6-bit", "bit_width=8"),
        ({"bias_quant": Int8BiasPerTensorFloatInternalScaling}, "its own scale", "Int32Bias"),
        ({"weight_quant": ShiftedUint8WeightPerTensorFloat}, "zero-point", "symmetric"),
        ({"bias": False, "weight_quant": None}, "float weight", "Int8WeightPerTensorFloat"),
    ],
)
def test_one_problem_per_missing_piece(kwargs: dict, needle: str, fix: str) -> None:
    base = dict(bias_quant=Int32Bias, **IO)
    base.update(kwargs)
    conv = _calibrated(QuantConv2d(3, 4, 3, **base), 2, 3, 5, 5)
    problems = _missing(conv, torch.randn(1, 3, 5, 5))
    assert len(problems) == 1, [str(p) for p in problems]
    assert needle in problems[0].constraint and fix in problems[0].fix


def test_quant_tensor_input_counts_as_an_input_quantizer() -> None:
    model = nn.Sequential(
        QuantIdentity(return_quant_tensor=True),
        QuantConv2d(3, 4, 3, output_quant=Int8ActPerTensorFloat, bias=False),
    )
    model = _calibrated(model, 2, 3, 5, 5)
    x = torch.randn(2, 3, 5, 5)
    artifact = bx.export(model, x, exporter="onnx-qop")
    assert "QLinearConv" in _ops(artifact)
    _assert_exact(model, artifact, x)
    low = nn.Sequential(QuantIdentity(bit_width=4, return_quant_tensor=True), QuantConv2d(3, 4, 3, bias=False,
                        output_quant=Int8ActPerTensorFloat))  # fmt: skip
    problems = _missing(_calibrated(low, 2, 3, 5, 5), x)
    assert any("the QuantTensor input of 1 is 4-bit" in p.constraint for p in problems)


def test_activation_layers_must_be_eight_bit() -> None:
    problems = _missing(QuantReLU(bit_width=4).eval(), torch.randn(2, 3))
    assert "4-bit" in problems[0].constraint and "onnx-qcdq" in problems[0].fix
