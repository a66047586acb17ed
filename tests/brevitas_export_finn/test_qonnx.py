"""The ``qonnx`` exporter: Quant / BipolarQuant / Trunc nodes, proved by qonnx's execute_onnx."""

from __future__ import annotations

import copy
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from _common import DOMAIN, export_and_run
from _common import attrs as _attrs
from _common import ops as _ops
from _common import reference as _reference
from onnx import numpy_helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.general import RemoveUnusedTensors
from qonnx.transformation.infer_datatypes import InferDataTypes
from qonnx.transformation.infer_shapes import InferShapes
from torch import nn

import brevitas.export as bx
from brevitas.export.base import ExportCheckError
from brevitas.export.description import capture
from brevitas.nn import (
    QuantAvgPool2d,
    QuantConv2d,
    QuantIdentity,
    QuantLinear,
    QuantReLU,
    TruncQuantAccumulator,
)
from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Uint8ActPerTensorFloat
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat, ShiftedUint8WeightPerTensorFloat
from brevitas.quant.ternary import SignedTernaryActPerTensorConst, SignedTernaryWeightPerTensorConst
from brevitas_export_finn.runtime import run


def _export_and_run(model: nn.Module, x: Any, **options: Any) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    return export_and_run(model, x, "qonnx", **options)


def _const_act(bits: int, signed: bool, narrow: bool) -> nn.Module:
    quant = Int8ActPerTensorFloat if signed else Uint8ActPerTensorFloat
    return QuantIdentity(act_quant=quant, bit_width=bits, narrow_range=narrow, scaling_impl_type="const",
                         scaling_init=2.0)  # fmt: skip


def _probe(model: nn.Module, width: int = 48) -> torch.Tensor:
    """Random values plus every exact half step of the quantizer's grid (ties)."""
    scale = float(capture(model, torch.zeros(1, 4))["act_quant"].scale)
    halves = (torch.arange(-width // 2, width // 2, dtype=torch.float32) + 0.5) * scale
    return torch.cat([torch.randn(2, width, generator=torch.Generator().manual_seed(0)) * 3, halves[None]], 0)


_BIT_CASES = [
    (b, s, n)
    for b in (1, 2, 3, 4, 5, 8, 12, 16, 24, 32)
    for s in (True, False)
    for n in (False, True)
    if not (b == 1 and n)  # a 1-bit narrow range holds only 0: Brevitas refuses it
]


@pytest.mark.parametrize("bits, signed, narrow", _BIT_CASES)
def test_integer_activation_of_any_bit_width(bits: int, signed: bool, narrow: bool) -> None:
    model = _const_act(bits, signed, narrow)
    x = _probe(model)
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_array_equal(out, expected)
    quant = [n for n in exported.graph.node if n.op_type == "Quant"]
    assert len(quant) == 1 and quant[0].domain == DOMAIN
    attrs = _attrs(quant[0])
    assert attrs["rounding_mode"] == b"ROUND"
    if bits == 1 and signed:  # qonnx reads 1-bit signed Quant as bipolar: -Quant(-x) on the unsigned bit
        assert _ops(exported) == ["Neg", "Quant", "Neg"] and attrs["signed"] == 0
        assert getCustomOp(quant[0]).get_integer_datatype(ModelWrapper(exported)) == DataType["BINARY"]
    else:
        assert _ops(exported) == ["Quant"]
        assert (attrs["signed"], attrs["narrow"]) == (int(signed), int(narrow))
        expected_dt = DataType[f"INT{bits}" if signed else ("BINARY" if bits == 1 else f"UINT{bits}")]
        assert getCustomOp(quant[0]).get_integer_datatype(ModelWrapper(exported)) == expected_dt
    bit_width = numpy_helper.to_array(next(t for t in exported.graph.initializer if t.name == quant[0].input[3]))
    assert float(bit_width) == bits


def test_domain_is_declared_at_version_1_without_trunc() -> None:
    exported = bx.export(_const_act(4, True, False), torch.randn(1, 4), exporter="qonnx")
    imports = {o.domain: o.version for o in exported.opset_import}
    assert imports == {"": 13, DOMAIN: 1}


@pytest.mark.parametrize(
    "mode, qonnx_mode",
    [("round", "ROUND"), ("floor", "FLOOR"), ("ceil", "CEIL"), ("round_to_zero", "DOWN")],
)
def test_rounding_modes(mode: str, qonnx_mode: str) -> None:
    model = QuantIdentity(bit_width=3, float_to_int_impl_type=mode, scaling_impl_type="const", scaling_init=1.0)
    x = _probe(model)
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_array_equal(out, expected)
    assert _attrs(exported.graph.node[0])["rounding_mode"].decode() == qonnx_mode


def test_one_bit_signed_with_floor_mirrors_to_ceil() -> None:
    model = QuantIdentity(bit_width=1, float_to_int_impl_type="floor", scaling_impl_type="const", scaling_init=1.0)
    x = torch.linspace(-3, 3, 61)[None]
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_array_equal(out, expected)
    assert set(np.unique(expected).tolist()) == {-1.0, 0.0}
    assert _attrs(exported.graph.node[1])["rounding_mode"] == b"CEIL"


def test_dpu_rounding_is_refused_with_the_fix() -> None:
    model = nn.Sequential(OrderedDict(act=QuantIdentity(bit_width=4, float_to_int_impl_type="dpu")))
    with pytest.raises(ExportCheckError) as info:
        bx.export(model, torch.randn(1, 4), exporter="qonnx")
    (problem,) = info.value.problems
    assert problem.layer == "act" and "DPU" in problem.constraint and "no QONNX rounding_mode" in problem.constraint
    assert "float_to_int_impl_type='round'" in problem.fix


def test_binary_and_ternary_quantizers() -> None:
    model = nn.Sequential(
        QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
        QuantLinear(8, 6, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
        QuantIdentity(act_quant=SignedTernaryActPerTensorConst),
        QuantLinear(6, 5, bias=False, weight_quant=SignedTernaryWeightPerTensorConst, weight_quant_type="ternary",
                    weight_threshold=1.2),  # fmt: skip
        QuantIdentity(act_quant=SignedTernaryActPerTensorConst, quant_type="ternary", threshold=0.3),
    )
    x = torch.randn(3, 8)
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert _ops(exported) == ["BipolarQuant", "BipolarQuant", "Gemm", "Quant", "Quant", "Gemm", "Mul", "Quant"]
    wrapper = ModelWrapper(exported)
    kinds = [getCustomOp(n).get_integer_datatype(wrapper).name for n in exported.graph.node if n.domain == DOMAIN]
    assert kinds == ["BIPOLAR", "BIPOLAR", "INT2", "INT2", "INT2"]
    for node in exported.graph.node:
        if node.op_type == "Quant":
            assert (_attrs(node)["signed"], _attrs(node)["narrow"]) == (1, 1)
    # ternary weights are stored on their grid (no threshold scaling); the threshold 0.3 of the last
    # activation quantizer: inputs scaled by 0.5 / 0.3 before a round-to-nearest Quant
    mul = exported.graph.node[6]
    factor = numpy_helper.to_array(next(t for t in exported.graph.initializer if t.name == mul.input[1]))
    assert float(factor) == pytest.approx(0.5 / 0.3)


def test_weights_stay_float_with_a_quant_node() -> None:
    conv = QuantConv2d(3, 4, 3, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=5, bias=False)
    model = nn.Sequential(OrderedDict(inp=QuantIdentity(), conv=conv))
    x = torch.randn(2, 3, 6, 6)
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    inits = {t.name: numpy_helper.to_array(t) for t in exported.graph.initializer}
    conv_node = next(n for n in exported.graph.node if n.op_type == "Conv")
    quant = next(n for n in exported.graph.node if n.output[0] == conv_node.input[1])
    assert quant.op_type == "Quant"
    np.testing.assert_array_equal(inits[quant.input[0]], conv.weight.detach().numpy())  # the float weights
    assert inits[quant.input[1]].shape == (4, 1, 1, 1)  # per output channel
    assert (_attrs(quant)["signed"], _attrs(quant)["narrow"]) == (1, 1)


def test_zero_points_are_exported() -> None:
    model = nn.Sequential(
        QuantIdentity(act_quant=ShiftedUint8ActPerTensorFloat, bit_width=5),
        QuantLinear(6, 4, bias=True, weight_quant=ShiftedUint8WeightPerTensorFloat),
    )
    model.train()
    for _ in range(3):
        model(torch.rand(8, 6) * 2 - 0.5)
    x = torch.rand(2, 6) * 2 - 0.5
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    inits = {t.name: numpy_helper.to_array(t) for t in exported.graph.initializer}
    zero_points = [float(inits[n.input[2]]) for n in exported.graph.node if n.op_type == "Quant"]
    assert any(z != 0 for z in zero_points)


def test_average_pool_truncation_is_trunc_v2() -> None:
    model = nn.Sequential(QuantIdentity(bit_width=6, return_quant_tensor=True), QuantAvgPool2d(2, bit_width=5))
    x = torch.randn(2, 3, 6, 6)
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_array_equal(out, expected)
    assert _ops(exported) == ["Quant", "AveragePool", "Trunc"]
    assert {o.domain: o.version for o in exported.opset_import}[DOMAIN] == 2
    trunc = exported.graph.node[2]
    assert len(trunc.input) == 6
    assert _attrs(trunc) == {"rounding_mode": b"FLOOR", "signed": 1, "narrow": 0}
    inits = {t.name: float(numpy_helper.to_array(t)) for t in exported.graph.initializer if t.name in trunc.input}
    in_scale, out_scale = inits[trunc.input[1]], inits[trunc.input[4]]
    assert (inits[trunc.input[3]], inits[trunc.input[5]]) == (8.0, 5.0)
    assert out_scale == in_scale * 8  # TruncIntQuant's coarser grid: scale * 2**(8 - 5)
    # qonnx's Trunc v1 keeps the input scale: the same file read as v1 computes something else
    as_v1 = copy.deepcopy(exported)
    for imp in as_v1.opset_import:
        if imp.domain == DOMAIN:
            imp.version = 1
    del as_v1.graph.node[2].input[4]
    assert not np.array_equal(run(as_v1, x)[0], expected)


@pytest.mark.parametrize(("size", "input_bits"), [(16, 10.0), (32, 12.0)])
def test_average_pool_of_binary_codes_truncates_the_whole_accumulator(size: int, input_bits: float) -> None:
    # size**2 codes of {-1, +1} sum to [-size**2, size**2]: 1 + log2(size**2) bits hold only up to size**2 - 1,
    # and Trunc would clamp the top window; the accumulator is declared one bit wider
    model = nn.Sequential(QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True),
                          QuantAvgPool2d(size))  # fmt: skip
    x = torch.randn(4, 2, size, size)
    x[0], x[1] = 1.0, -1.0
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_array_equal(out, expected)
    assert _ops(exported) == ["BipolarQuant", "AveragePool", "Trunc"]
    trunc = exported.graph.node[2]
    inits = {t.name: float(numpy_helper.to_array(t)) for t in exported.graph.initializer if t.name in trunc.input}
    assert (inits[trunc.input[3]], inits[trunc.input[5]]) == (input_bits, 8.0)
    shift = int(input_bits) - 8
    np.testing.assert_array_equal(out[:2].reshape(2, -1) / inits[trunc.input[4]],
                                  [[size * size >> shift] * 2, [-(size * size >> shift)] * 2])  # fmt: skip


def test_trunc_accumulator() -> None:
    model = nn.Sequential(
        QuantIdentity(bit_width=4, return_quant_tensor=True),
        QuantLinear(8, 6, bias=False, weight_bit_width=4, return_quant_tensor=True),
        TruncQuantAccumulator(bit_width=6),
    )
    exported, out, expected = _export_and_run(model, torch.randn(3, 8))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert _ops(exported)[-1] == "Trunc"


def test_quant_tensor_input_takes_integer_codes() -> None:
    qin = QuantIdentity(act_quant=ShiftedUint8ActPerTensorFloat, bit_width=6, return_quant_tensor=True)
    qin.train()
    qin(torch.rand(16, 5) * 3 - 1)
    qin.eval()
    x = qin(torch.rand(2, 5) * 3 - 1)
    model = QuantLinear(5, 3, bias=False, input_quant=None)
    expected = _reference(model, x)
    exported = bx.export(model, x, exporter="qonnx")
    assert _ops(exported)[:2] == ["Sub", "Mul"]
    name = exported.graph.input[0].name
    assert ModelWrapper(exported).get_tensor_datatype(name) == DataType["UINT6"]
    np.testing.assert_allclose(run(exported, x)[0], expected, rtol=1e-5, atol=1e-6)


def test_file_is_tidy_for_qonnx(tmp_path: Path) -> None:
    model = nn.Sequential(
        OrderedDict(
            inp=QuantIdentity(bit_width=4),
            fc1=QuantLinear(8, 6, bias=True, weight_bit_width=3),
            act=QuantReLU(bit_width=3),
            fc2=QuantLinear(6, 2, bias=False, weight_bit_width=3),
        )
    )
    path = tmp_path / "model.onnx"
    exported = bx.export(model, torch.randn(1, 8), exporter="qonnx", path=path)
    wrapper = ModelWrapper(str(path))
    assert wrapper.check_all_tensor_shapes_specified()
    names = [n.name for n in wrapper.graph.node]
    assert all(names) and len(set(names)) == len(names)
    assert any(n.startswith("fc1") for n in names) and any(n.startswith("act") for n in names)
    # a fixed point of qonnx's own clean-up (unique parameters, initializers last, nothing unused) and folding:
    # the same nodes with the same inputs (qonnx's SortGraph may list them in another topological order)
    before = copy.deepcopy(wrapper.model)
    tidied = wrapper.transform(InferShapes()).transform(FoldConstants()).transform(RemoveUnusedTensors())
    assert sorted(map(str, tidied.graph.node)) == sorted(map(str, before.graph.node))  # same nodes (any order)
    assert sorted(t.name for t in tidied.graph.initializer) == sorted(t.name for t in before.graph.initializer)
    typed = tidied.transform(InferDataTypes(allow_scaledint_dtypes=True))
    relu_quant = next(n for n in typed.graph.node if n.op_type == "Quant" and n.name.startswith("act"))
    assert typed.get_tensor_datatype(relu_quant.output[0]) == DataType["SCALEDINT<3>"]
    np.testing.assert_allclose(run(path, torch.ones(1, 8))[0], run(exported, torch.ones(1, 8))[0])


@pytest.mark.parametrize("exporter", ["qonnx", "finn"])
def test_static_batch_by_default_dynamic_on_request(exporter: str) -> None:
    model = nn.Sequential(QuantIdentity(bit_width=4), QuantConv2d(3, 4, 3, weight_bit_width=4),
                          QuantReLU(bit_width=4), nn.Flatten(), QuantLinear(64, 3, weight_bit_width=4))  # fmt: skip
    static = bx.export(model, torch.randn(2, 3, 6, 6), exporter=exporter)
    assert [d.dim_value for d in static.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 6, 6]
    dynamic = bx.export(model, torch.randn(2, 3, 6, 6), exporter=exporter, dynamic_batch=True)
    assert dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    x = torch.randn(5, 3, 6, 6)
    np.testing.assert_allclose(run(dynamic, x)[0], _reference(model, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bits", [2, 5, 16, 32])
def test_weights_and_32_bit_bias_of_any_bit_width(bits: int) -> None:
    from brevitas.quant.scaled_int import Int32Bias

    fc = QuantLinear(8, 4, bias=True, weight_bit_width=bits, bias_quant=Int32Bias)
    model = nn.Sequential(QuantIdentity(bit_width=6, return_quant_tensor=True), fc)
    exported, out, expected = _export_and_run(model, torch.randn(3, 8))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    wrapper = ModelWrapper(exported)
    gemm = next(n for n in exported.graph.node if n.op_type == "Gemm")
    weight_quant, bias_quant = (next(n for n in exported.graph.node if n.output[0] == i) for i in gemm.input[1:])
    assert getCustomOp(weight_quant).get_integer_datatype(wrapper) == DataType[f"INT{bits}"]
    assert getCustomOp(bias_quant).get_integer_datatype(wrapper) == DataType["INT32"]
    np.testing.assert_array_equal(_init_of(exported, bias_quant.input[0]), fc.bias.detach().numpy())


def _init_of(m: onnx.ModelProto, name: str) -> np.ndarray:
    return numpy_helper.to_array(next(t for t in m.graph.initializer if t.name == name))
