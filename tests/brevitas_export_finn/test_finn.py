"""The ``finn`` exporter: integer weights, MultiThreshold activations, datatype annotations, and its refusals."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from _common import DOMAIN, export_and_run
from _common import attrs as _attrs
from _common import initializer as _init
from _common import ops as _ops
from _common import reference as _reference
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.transformation.fold_constants import FoldConstants
from qonnx.transformation.infer_datatypes import InferDataTypes
from torch import nn

import brevitas.export as bx
from brevitas.core.bit_width import BitWidthConst
from brevitas.export.base import ExportCheckError
from brevitas.inject import ExtendedInjector
from brevitas.nn import (
    ClampQuantAccumulator,
    QuantAdaptiveAvgPool2d,
    QuantAvgPool2d,
    QuantConv2d,
    QuantHardTanh,
    QuantIdentity,
    QuantLinear,
    QuantReLU,
    QuantScaleBias,
    TruncQuantAccumulator,
)
from brevitas.quant.binary import (
    SignedBinaryActPerTensorConst,
    SignedBinaryActPerTensorFloat,
    SignedBinaryWeightPerTensorConst,
)
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Uint8ActPerTensorFloat
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat, ShiftedUint8WeightPerTensorFloat
from brevitas.quant.ternary import SignedTernaryWeightPerTensorConst
from brevitas_export_finn.runtime import run
from brevitas_plugins.core.float_to_int import TensorClamp
from brevitas_plugins.core.quant import ClampQuant


def _export_and_run(model: nn.Module, x: Any, **options: Any) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    return export_and_run(model, x, "finn", **options)


def _refusal(model: nn.Module, x: Any, **options: Any) -> list[Any]:
    with pytest.raises(ExportCheckError) as info:
        bx.export(model, x, exporter="finn", **options)
    assert info.value.exporter == "finn"
    return info.value.problems


def _calibrated(model: nn.Module, *shape: int) -> nn.Module:
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, *shape))
    return model.eval()


# ---------------------------------------------------------------------------------------------- structure
def test_linear_layer_has_integer_weights_and_a_scale_after_the_matmul() -> None:
    fc = QuantLinear(8, 5, bias=True, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=4)
    model = nn.Sequential(OrderedDict(inp=QuantIdentity(bit_width=4), fc=fc, act=QuantReLU(bit_width=3)))
    x = torch.randn(3, 8)
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert _ops(exported) == ["MultiThreshold", "Mul", "MatMul", "Mul", "Add", "MultiThreshold", "Mul"]
    matmul, mul, add = exported.graph.node[2:5]
    ints = _init(exported, matmul.input[1])
    assert ints.dtype == np.float32 and ints.shape == (8, 5)  # (in, out): FINN's MatMul layout
    assert np.array_equal(ints, np.round(ints)) and np.abs(ints).max() <= 7
    wrapper = ModelWrapper(exported)
    assert wrapper.get_tensor_datatype(matmul.input[1]) == DataType["INT4"]
    scale = _init(exported, mul.input[1])
    assert scale.shape == (5,)  # per output channel, after the MatMul
    dequantized = fc.quant_weight().value.detach().numpy()
    np.testing.assert_array_equal(ints.T * scale[:, None], dequantized)
    np.testing.assert_array_equal(_init(exported, add.input[1]), fc.bias.detach().numpy())


def test_conv_scale_and_bias_are_per_channel_after_the_conv() -> None:
    conv = QuantConv2d(3, 4, 3, padding=1, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=3)
    model = nn.Sequential(QuantIdentity(bit_width=4), conv, QuantIdentity(bit_width=4))
    x = torch.randn(2, 3, 6, 6)
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    conv_node = next(n for n in exported.graph.node if n.op_type == "Conv")
    assert len(conv_node.input) == 2  # the bias is added after the scale
    mul, add = exported.graph.node[3:5]
    assert (mul.op_type, add.op_type) == ("Mul", "Add")
    assert _init(exported, mul.input[1]).shape == (1, 4, 1, 1) and _init(exported, add.input[1]).shape == (1, 4, 1, 1)
    assert ModelWrapper(exported).get_tensor_datatype(conv_node.input[1]) == DataType["INT3"]


@pytest.mark.parametrize("bits, narrow", [(2, False), (3, True), (4, False), (8, False), (8, True)])
def test_signed_multithreshold_attributes(bits: int, narrow: bool) -> None:
    model = QuantIdentity(bit_width=bits, narrow_range=narrow)
    x = torch.randn(2, 3, 4, 4) * 2
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_array_equal(out, expected)
    mt = exported.graph.node[0]
    assert mt.op_type == "MultiThreshold" and mt.domain == DOMAIN
    low = -(2 ** (bits - 1)) + int(narrow)
    assert _attrs(mt) == {"out_dtype": f"INT{bits}".encode(), "out_scale": 1.0, "out_bias": float(low),
                          "data_layout": b"NCHW"}  # fmt: skip
    thresholds = _init(exported, mt.input[1])
    assert thresholds.dtype == np.float32 and thresholds.shape == (1, 2**bits - 1 - int(narrow))
    assert ModelWrapper(exported).get_tensor_datatype(mt.output[0]) == DataType[f"INT{bits}"]


def test_relu_is_absorbed_into_unsigned_thresholds() -> None:
    model = nn.Sequential(QuantIdentity(bit_width=4), QuantLinear(6, 4, bias=False), QuantReLU(bit_width=4))
    exported, out, expected = _export_and_run(model, torch.randn(5, 6))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert "Relu" not in _ops(exported)
    mt = exported.graph.node[-2]
    assert _attrs(mt)["out_dtype"] == b"UINT4" and _attrs(mt)["out_bias"] == 0.0
    assert _init(exported, mt.input[1]).shape == (1, 15) and (_init(exported, mt.input[1]) > 0).all()


def test_hardtanh_clip_is_kept_only_when_it_changes_codes() -> None:
    wide = QuantHardTanh(bit_width=4, min_val=-1.0, max_val=1.0)  # clip at the quantizer's own range
    narrow = QuantHardTanh(act_quant=Int8ActPerTensorFloat, bit_width=4, min_val=-0.25, max_val=1.0,
                           scaling_impl_type="const", scaling_init=1.0)  # fmt: skip
    x = torch.linspace(-2, 2, 81)[None]
    wide_model, out, expected = _export_and_run(wide, x)
    np.testing.assert_array_equal(out, expected)
    assert _ops(wide_model) == ["MultiThreshold", "Mul"]
    narrow_model, out, expected = _export_and_run(narrow, x)
    np.testing.assert_array_equal(out, expected)
    assert _ops(narrow_model) == ["Clip", "MultiThreshold", "Mul"]


def test_ties_are_rounded_half_to_even_like_pytorch() -> None:
    model = QuantIdentity(bit_width=4, scaling_impl_type="const", scaling_init=1.0)  # scale 1/8
    x = (torch.arange(-10, 10, dtype=torch.float32) + 0.5)[None] / 8
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_array_equal(out, expected)
    assert expected[0, 10] == 0.0 and expected[0, 11] == 0.25  # 0.5 -> 0, 1.5 -> 2


def test_bipolar_weights_and_activations() -> None:
    model = nn.Sequential(
        QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
        QuantLinear(8, 6, bias=False, weight_quant=SignedBinaryWeightPerTensorConst),
        nn.BatchNorm1d(6),
        QuantIdentity(act_quant=SignedBinaryActPerTensorConst),
    )
    _calibrated(model, 8)
    exported, out, expected = _export_and_run(model, torch.randn(4, 8))
    np.testing.assert_array_equal(out, expected)
    assert _ops(exported) == ["MultiThreshold", "MatMul", "Mul", "BatchNormalization", "MultiThreshold"]
    wrapper = ModelWrapper(exported)
    first, matmul, last = exported.graph.node[0], exported.graph.node[1], exported.graph.node[-1]
    for mt in (first, last):
        assert _attrs(mt) == {"out_dtype": b"BIPOLAR", "out_scale": 2.0, "out_bias": -1.0, "data_layout": b"NC"}
        assert _init(exported, mt.input[1]).tolist() == [[0.0]]
        assert wrapper.get_tensor_datatype(mt.output[0]) == DataType["BIPOLAR"]
    assert wrapper.get_tensor_datatype(matmul.input[1]) == DataType["BIPOLAR"]
    assert set(np.unique(_init(exported, matmul.input[1])).tolist()) == {-1.0, 1.0}


def test_ternary_weights() -> None:
    model = nn.Sequential(
        QuantIdentity(bit_width=2),
        QuantLinear(8, 6, bias=False, weight_quant=SignedTernaryWeightPerTensorConst, weight_quant_type="ternary"),
    )
    exported, out, expected = _export_and_run(model, torch.randn(4, 8))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    matmul = next(n for n in exported.graph.node if n.op_type == "MatMul")
    assert ModelWrapper(exported).get_tensor_datatype(matmul.input[1]) == DataType["TERNARY"]


def test_quant_tensor_input_is_annotated_with_the_input_quantizer_datatype() -> None:
    qin = QuantIdentity(bit_width=8, return_quant_tensor=True).eval()
    with torch.no_grad():
        x = qin(torch.randn(2, 3, 6, 6))
    model = nn.Sequential(QuantConv2d(3, 4, 3, bias=False, weight_bit_width=4, input_quant=None),
                          QuantReLU(bit_width=4))  # fmt: skip
    expected = _reference(model, x)
    exported = bx.export(model, x, exporter="finn")
    graph_input = exported.graph.input[0].name
    assert ModelWrapper(exported).get_tensor_datatype(graph_input) == DataType["INT8"]
    assert exported.graph.node[0].op_type == "Mul" and exported.graph.node[0].input[0] == graph_input
    np.testing.assert_allclose(run(exported, x)[0], expected, rtol=0, atol=1e-6)
    codes = torch.round(x.value / x.scale).numpy()
    np.testing.assert_allclose(run(exported, codes)[0], expected, rtol=0, atol=1e-6)


def test_average_pooling_is_quant_avg_pool_2d() -> None:
    model = nn.Sequential(QuantIdentity(bit_width=4, return_quant_tensor=True), QuantAvgPool2d(2, bit_width=4))
    x = torch.randn(2, 3, 6, 6)
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_array_equal(out, expected)
    assert _ops(exported) == ["MultiThreshold", "Mul", "Mul", "QuantAvgPool2d", "Mul"]
    pool = exported.graph.node[3]
    assert _attrs(pool) == {"stride": 2, "kernel": 2, "ibits": 4, "obits": 4, "signed": 1, "data_layout": b"NCHW"}
    assert ModelWrapper(exported).get_tensor_datatype(pool.output[0]) == DataType["INT4"]


@pytest.mark.parametrize(
    ("pool", "size", "obits", "shifted"),
    [
        (lambda: QuantAvgPool2d(2), 4, 4, False),  # 4 codes of {-1, +1}: [-4, 4], INT4 (INT3 holds only [-4, 3])
        (lambda: QuantAvgPool2d(3), 6, 5, False),  # [-9, 9]: INT5
        (lambda: QuantAdaptiveAvgPool2d(1), 16, 8, True),  # [-256, 256]: 10 bits, 2 dropped to INT8
    ],
    ids=["2x2", "3x3", "global-16x16"],
)
def test_average_pooling_of_binary_codes(pool: Callable[[], nn.Module], size: int, obits: int, shifted: bool) -> None:
    model = nn.Sequential(QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True), pool())
    x = torch.randn(4, 2, size, size)
    x[0], x[1] = 1.0, -1.0  # every window at +size**2 / -size**2: the extremes of the accumulator
    exported, out, expected = _export_and_run(model, x)
    np.testing.assert_array_equal(out, expected)
    pool_node = next(n for n in exported.graph.node if n.op_type == "QuantAvgPool2d")
    attrs = _attrs(pool_node)
    # binary codes are declared INT2 (INT1 is {-1, 0}), the output holds the whole accumulator range
    assert (attrs["ibits"], attrs["signed"], attrs["obits"]) == (2, 1, obits)
    assert ModelWrapper(exported).get_tensor_datatype(pool_node.output[0]) == DataType[f"INT{obits}"]
    with torch.no_grad():
        y = model(x)
    ints = y.int().numpy()
    low, high = -(2 ** (obits - 1)), 2 ** (obits - 1) - 1
    assert low <= ints.min() and ints.max() <= high
    window = size // y.value.shape[-1]
    shift = 2 if shifted else 0
    assert ints.max() == (window * window) >> shift and ints.min() == -((window * window) >> shift)


def test_global_and_uneven_pooling() -> None:
    global_pool = nn.Sequential(QuantIdentity(bit_width=4, return_quant_tensor=True), QuantAdaptiveAvgPool2d(1))
    exported, out, expected = _export_and_run(global_pool, torch.randn(2, 3, 4, 4))
    np.testing.assert_array_equal(out, expected)
    assert "QuantAvgPool2d" in _ops(exported)
    # non-square windows: AveragePool then the truncation as thresholds
    uneven = nn.Sequential(QuantIdentity(bit_width=4, return_quant_tensor=True), QuantAdaptiveAvgPool2d((2, 1)))
    exported, out, expected = _export_and_run(uneven, torch.randn(2, 3, 4, 6))
    np.testing.assert_array_equal(out, expected)
    assert _ops(exported)[-3:] == ["AveragePool", "MultiThreshold", "Mul"]


def test_accumulator_truncation_and_clamping_are_thresholds() -> None:
    class ClampTo4bit(ExtendedInjector):
        tensor_quant = ClampQuant
        bit_width_impl = BitWidthConst
        tensor_clamp_impl = TensorClamp
        bit_width = 4
        signed = True
        narrow_range = False

    for tail in (TruncQuantAccumulator(bit_width=6), ClampQuantAccumulator(clamp_quant=ClampTo4bit)):
        model = nn.Sequential(
            QuantIdentity(bit_width=4, return_quant_tensor=True),
            QuantLinear(8, 6, bias=False, weight_bit_width=4, return_quant_tensor=True),
            tail,
        )
        exported, out, expected = _export_and_run(model, torch.randn(3, 8))
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
        assert _ops(exported)[-2:] == ["MultiThreshold", "Mul"]


def test_scale_bias_layer() -> None:
    model = nn.Sequential(QuantIdentity(bit_width=4), QuantScaleBias(4, bias=True, weight_bit_width=4),
                          QuantIdentity(bit_width=4))  # fmt: skip
    exported, out, expected = _export_and_run(model, torch.randn(2, 4, 3, 3))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert _ops(exported) == ["MultiThreshold", "Mul", "Mul", "Mul", "Add", "MultiThreshold", "Mul"]


def test_exported_file_loads_and_datatypes_survive_qonnx_inference(tmp_path: Path) -> None:
    model = nn.Sequential(QuantIdentity(bit_width=2), QuantLinear(8, 4, bias=False, weight_bit_width=2),
                          QuantReLU(bit_width=2))  # fmt: skip
    path = tmp_path / "finn.onnx"
    exported = bx.export(model, torch.randn(1, 8), exporter="finn", path=path)
    wrapper = ModelWrapper(str(path))
    declared = {a.tensor_name: a.quant_parameter_tensor_names[0].value for a in exported.graph.quantization_annotation}
    assert sorted(declared.values()) == ["INT2", "INT2", "UINT2"]
    typed = wrapper.transform(InferDataTypes())
    for name, dtype in declared.items():
        assert typed.get_tensor_datatype(name) == DataType[dtype]
    # tidy: qonnx's clean-up and constant folding find nothing to do
    tidied = wrapper.transform(FoldConstants())
    assert sorted(map(str, tidied.graph.node)) == sorted(map(str, exported.graph.node))
    assert sorted(t.name for t in tidied.graph.initializer) == sorted(t.name for t in exported.graph.initializer)
    assert wrapper.check_all_tensor_shapes_specified()


# ---------------------------------------------------------------------------------------------- refusals
def test_refuses_activation_zero_points() -> None:
    model = nn.Sequential(OrderedDict(act=QuantIdentity(act_quant=ShiftedUint8ActPerTensorFloat, bit_width=4)))
    _calibrated(model, 6)
    problems = _refusal(model, torch.randn(2, 6))
    assert [p.layer for p in problems] == ["act", "act"]  # the zero-point, and an unsigned quantizer off a ReLU
    assert "act.act_quant has a non-zero zero-point" in problems[0].constraint
    assert "FINN takes zero-point 0 only" in problems[0].constraint
    assert "quantizer without zero-point" in problems[0].fix and "Uint8ActPerTensorFloat" in problems[0].fix


def test_refuses_weight_zero_points() -> None:
    fc = QuantLinear(6, 3, bias=False, weight_quant=ShiftedUint8WeightPerTensorFloat)
    model = nn.Sequential(OrderedDict(inp=QuantIdentity(), fc=fc))
    (problem,) = _refusal(model, torch.randn(2, 6))
    assert problem.layer == "fc" and "fc.weight_quant has a non-zero zero-point" in problem.constraint
    assert "Int8WeightPerTensorFloat" in problem.fix


def test_refuses_activations_above_8_bits_unless_allowed() -> None:
    model = nn.Sequential(OrderedDict(inp=QuantIdentity(bit_width=10)))
    (problem,) = _refusal(model, torch.randn(2, 6))
    assert problem.layer == "inp"
    assert "10-bit activation; FINN takes activations of at most 8 bits" in problem.constraint
    assert "bit_width=8" in problem.fix and "max_act_bit_width=10" in problem.fix
    exported, out, expected = _export_and_run(model, torch.randn(2, 6), max_act_bit_width=10)
    np.testing.assert_array_equal(out, expected)
    assert _attrs(exported.graph.node[0])["out_dtype"] == b"INT10"


def test_refuses_per_channel_bipolar_activations() -> None:
    act = QuantIdentity(
        act_quant=SignedBinaryActPerTensorFloat,
        scaling_per_output_channel=True,
        per_channel_broadcastable_shape=(1, 3, 1, 1),
        scaling_stats_permute_dims=(1, 0, 2, 3),
    )
    model = nn.Sequential(OrderedDict(act=act))
    (problem,) = _refusal(model, torch.randn(2, 3, 4, 4))
    assert problem.layer == "act" and "per-channel scales" in problem.constraint
    assert "FINN needs a per-tensor scale for bipolar activations" in problem.constraint
    assert "scaling_per_output_channel=False" in problem.fix


def test_refuses_per_channel_average_pooling_input() -> None:
    relu = QuantReLU(bit_width=4, scaling_per_output_channel=True, per_channel_broadcastable_shape=(1, 3, 1, 1),
                     scaling_stats_permute_dims=(1, 0, 2, 3), return_quant_tensor=True)  # fmt: skip
    model = _calibrated(nn.Sequential(OrderedDict(relu=relu, pool=QuantAvgPool2d(2))), 3, 4, 4)
    (problem,) = _refusal(model, torch.randn(2, 3, 4, 4))
    assert problem.layer == "pool"
    assert "FINN needs a per-tensor scale for average pooling" in problem.constraint
    # per-channel activations elsewhere are fine: per-channel thresholds
    exported, out, expected = _export_and_run(model[0], torch.randn(2, 3, 4, 4))
    np.testing.assert_array_equal(out, expected)
    assert _init(exported, exported.graph.node[0].input[1]).shape == (3, 15)


def test_refuses_signed_quantizers_after_relu() -> None:
    model = nn.Sequential(OrderedDict(act=QuantReLU(act_quant=Int8ActPerTensorFloat, bit_width=4)))
    (problem,) = _refusal(model, torch.randn(2, 6))
    assert problem.layer == "act"
    assert "act.act_quant is signed" in problem.constraint and "output of a ReLU" in problem.constraint
    assert "FINN takes unsigned, non-narrow quantizers after a ReLU" in problem.constraint
    assert "Uint8ActPerTensorFloat" in problem.fix


def test_refuses_narrow_quantizers_after_relu() -> None:
    model = nn.Sequential(OrderedDict(act=QuantReLU(bit_width=4, narrow_range=True)))
    (problem,) = _refusal(model, torch.randn(2, 6))
    assert "act.act_quant is narrow-range" in problem.constraint and "narrow_range=False" in problem.fix


def test_refuses_unsigned_quantizers_elsewhere() -> None:
    model = nn.Sequential(OrderedDict(inp=QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=4)))
    (problem,) = _refusal(model, torch.randn(2, 6))
    assert problem.layer == "inp"
    assert "inp.act_quant is unsigned" in problem.constraint and "not a ReLU output" in problem.constraint
    assert "FINN takes signed quantizers there" in problem.constraint
    assert "Int8ActPerTensorFloat" in problem.fix and "QuantReLU" in problem.fix
    # after a plain ReLU the same quantizer is in its place
    after_relu = nn.Sequential(nn.ReLU(), QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=4))
    exported, out, expected = _export_and_run(after_relu, torch.randn(2, 6))
    np.testing.assert_array_equal(out, expected)
    assert "Relu" not in _ops(exported)


def test_refuses_quantized_input_with_zero_point() -> None:
    qin = QuantIdentity(act_quant=ShiftedUint8ActPerTensorFloat, return_quant_tensor=True)
    _calibrated(qin, 4)
    with torch.no_grad():
        x = qin(torch.rand(2, 4) * 3 - 1)
    problems = _refusal(QuantLinear(4, 2, bias=False, input_quant=None), x)
    assert any("quantized input" in p.constraint and "non-zero zero-point" in p.constraint for p in problems)


def test_every_problem_is_reported_and_nothing_is_written(tmp_path: Path) -> None:
    model = nn.Sequential(
        OrderedDict(
            inp=QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=12),
            fc=QuantLinear(6, 4, bias=False, weight_quant=ShiftedUint8WeightPerTensorFloat),
            act=QuantReLU(act_quant=Int8ActPerTensorFloat),
        )
    )
    path = tmp_path / "never.onnx"
    with pytest.raises(ExportCheckError) as info:
        bx.export(model, torch.randn(2, 6), exporter="finn", path=path)
    text = str(info.value)
    for needle in ("12-bit activation", "inp.act_quant is unsigned", "fc.weight_quant has a non-zero zero-point",
                   "act.act_quant is signed"):  # fmt: skip
        assert needle in text
    assert [p.layer for p in info.value.problems] == ["inp", "inp", "fc", "act"]
    assert not path.exists() and not list(tmp_path.iterdir())
    assert len(bx.check(model, torch.randn(2, 6), exporter="finn")) == 4


def test_unknown_option_is_refused() -> None:
    problems = bx.check(QuantIdentity(), torch.randn(2, 3), exporter="finn", max_bits=4)
    assert any("unknown option 'max_bits'" in p.constraint and "max_act_bit_width" in p.fix for p in problems)


@pytest.mark.parametrize("exporter", ["qonnx", "finn"])
def test_models_on_any_device_export(exporter: str, device: torch.device) -> None:
    model = nn.Sequential(
        QuantIdentity(bit_width=4, return_quant_tensor=True),
        QuantConv2d(3, 4, 3, bias=False, weight_quant=Int8WeightPerChannelFloat, weight_bit_width=4,
                    return_quant_tensor=True),
        TruncQuantAccumulator(bit_width=8),
        QuantReLU(bit_width=4, return_quant_tensor=True),
        QuantAvgPool2d(2, bit_width=4),
    ).to(device)
    x = torch.randn(2, 3, 6, 6, device=device)
    expected = _reference(model, x) if device.type == "cpu" else _reference(model.cpu(), x.cpu())
    model.to(device)
    exported = bx.export(model, x, exporter=exporter)
    np.testing.assert_allclose(run(exported, x)[0], expected, rtol=0, atol=1e-5)
