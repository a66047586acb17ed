"""The onnx-qcdq dialect: node patterns, storage types, options, ties and its refusals."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, numpy_helper
from torch import nn

import brevitas.export as bx
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int32Bias, Uint8ActPerTensorFloat


def _calibrated(model: nn.Module, *shape: int) -> nn.Module:
    torch.manual_seed(0)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(*shape))
    return model.eval()


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _init(model: onnx.ModelProto, name: str) -> np.ndarray:
    return numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name))


def _run_both(model: nn.Module, artifact: onnx.ModelProto, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        ref = model(x)
    ref = getattr(ref, "value", ref).numpy()
    return bx.get_exporter("onnx-qcdq").run(artifact, x)[0], ref


@pytest.mark.parametrize(
    ("kwargs", "dtype", "bounds"),
    [
        ({"bit_width": 8}, TensorProto.INT8, None),
        ({"bit_width": 8, "narrow_range": True}, TensorProto.INT8, (-127, 127)),
        ({"bit_width": 4}, TensorProto.INT8, (-8, 7)),
        ({"bit_width": 2, "act_quant": Uint8ActPerTensorFloat}, TensorProto.UINT8, (0, 3)),
    ],
)
def test_activation_pattern_clips_only_when_narrower_than_the_type(kwargs: dict, dtype: int, bounds: Any) -> None:
    model = _calibrated(QuantIdentity(**kwargs), 4, 6)
    x = torch.randn(3, 6)
    artifact = bx.export(model, x, exporter="onnx-qcdq")
    q = artifact.graph.node[0]
    assert q.op_type == "QuantizeLinear" and _init(artifact, q.input[2]).dtype == onnx.helper.tensor_dtype_to_np_dtype(
        dtype
    )
    if bounds is None:
        assert _ops(artifact) == ["QuantizeLinear", "DequantizeLinear"]
    else:
        assert _ops(artifact) == ["QuantizeLinear", "Clip", "DequantizeLinear"]
        clip = artifact.graph.node[1]
        assert (int(_init(artifact, clip.input[1])), int(_init(artifact, clip.input[2]))) == bounds
    out, ref = _run_both(model, artifact, x)
    np.testing.assert_array_equal(out, ref)


def test_weights_and_int32_bias_are_integer_initializers() -> None:
    layer = QuantLinear(6, 3, input_quant=Int8ActPerTensorFloat, bias_quant=Int32Bias, weight_bit_width=5)
    layer = _calibrated(layer, 4, 6)
    artifact = bx.export(layer, torch.randn(2, 6), exporter="onnx-qcdq")
    dqs = [n for n in artifact.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in
           {t.name for t in artifact.graph.initializer}]  # fmt: skip
    w, b = (_init(artifact, n.input[0]) for n in dqs)
    assert w.dtype == np.int8 and np.abs(w).max() <= 15 and w.shape == (3, 6)
    assert b.dtype == np.int32
    assert _ops(artifact)[-1] == "Gemm"


def test_binary_weights_export_as_plus_minus_one() -> None:
    layer = QuantLinear(
        4, 2, bias=False, weight_quant=SignedBinaryWeightPerTensorConst, input_quant=Int8ActPerTensorFloat
    )
    layer = _calibrated(layer, 3, 4)
    x = torch.randn(2, 4)
    artifact = bx.export(layer, x, exporter="onnx-qcdq")
    w = next(t for t in artifact.graph.initializer if t.name.startswith("weight_quant.int"))
    assert set(numpy_helper.to_array(w).flatten().tolist()) <= {-1, 1}
    out, ref = _run_both(layer, artifact, x)
    np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_per_channel_activation_uses_the_channel_axis() -> None:
    relu = QuantReLU(scaling_per_output_channel=True, per_channel_broadcastable_shape=(1, 3, 1, 1),
                     scaling_stats_permute_dims=(1, 0, 2, 3))  # fmt: skip
    relu = _calibrated(relu, 4, 3, 5, 5)
    x = torch.randn(2, 3, 5, 5)
    artifact = bx.export(relu, x, exporter="onnx-qcdq", opset_version=13)
    q = next(n for n in artifact.graph.node if n.op_type == "QuantizeLinear")
    assert [a.i for a in q.attribute if a.name == "axis"] == [1]
    assert _init(artifact, q.input[1]).shape == (3,)
    out, ref = _run_both(relu, artifact, x)
    np.testing.assert_array_equal(out, ref)


def test_ties_round_half_to_even_on_both_sides() -> None:
    model = _calibrated(QuantIdentity(act_quant=Int8ActPerTensorFixedPoint), 8, 16)
    scale = float(model.act_quant.scale().detach())
    assert np.log2(scale) == round(np.log2(scale))  # a power of two: the ties below are exact
    codes = torch.arange(-6, 6, dtype=torch.float32) + 0.5
    x = (codes * scale).reshape(1, -1)
    artifact = bx.export(model, x, exporter="onnx-qcdq")
    for optimize in (False, True):
        out = bx.get_exporter("onnx-qcdq").run(artifact, x, optimize=optimize)[0]
        with torch.no_grad():
            ref = model(x).numpy()
        np.testing.assert_array_equal(out, ref)
    assert (ref / scale).flatten().tolist() == torch.round(codes).tolist()
    assert 0.0 in (ref / scale).flatten().tolist()  # 0.5 rounds down to the even 0


def test_int4_option_at_opset_21() -> None:
    conv = QuantConv2d(3, 4, 3, weight_bit_width=4, input_quant=Int8ActPerTensorFloat, input_bit_width=4)
    conv = _calibrated(conv, 2, 3, 5, 5)
    x = torch.randn(2, 3, 5, 5)
    artifact = bx.export(conv, x, exporter="onnx-qcdq", opset_version=21, int4=True)
    types = {t.data_type for t in artifact.graph.initializer}
    assert TensorProto.INT4 in types
    assert "Clip" not in _ops(artifact)  # int4 holds the 4-bit range exactly
    for optimize in (False, True):
        out = bx.get_exporter("onnx-qcdq").run(artifact, x, optimize=optimize)[0]
        with torch.no_grad():
            np.testing.assert_allclose(out, conv(x).numpy(), rtol=1e-5, atol=1e-6)


def test_sixteen_bit_activations_need_opset_21() -> None:
    model = _calibrated(QuantIdentity(bit_width=16), 4, 6)
    x = torch.randn(2, 6)
    problems = bx.check(model, x, exporter="onnx-qcdq")
    assert "16-bit" in problems[0].constraint and "opset_version=21" in problems[0].fix
    artifact = bx.export(model, x, exporter="onnx-qcdq", opset_version=21)
    out, ref = _run_both(model, artifact, x)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize(
    ("model", "needle"),
    [
        (lambda: QuantIdentity(act_quant=SignedBinaryActPerTensorConst), "binary"),
        (lambda: QuantIdentity(float_to_int_impl_type="floor"), "FLOOR"),
        (lambda: QuantIdentity(bit_width=20), "20-bit"),
    ],
)
def test_activations_quantizelinear_cannot_express_are_refused(model: Any, needle: str) -> None:
    problems = bx.check(model().eval(), torch.randn(2, 3), exporter="onnx-qcdq", opset_version=21)
    assert len(problems) == 1 and needle in problems[0].constraint and problems[0].fix


def test_option_problems() -> None:
    model = QuantIdentity().eval()
    x = torch.randn(1, 3)
    assert "opset_version=21" in bx.check(model, x, exporter="onnx-qcdq", int4=True)[0].fix
    assert "unknown option" in bx.check(model, x, exporter="onnx-qcdq", int8=True)[0].constraint
    assert "too old" in bx.check(model, x, exporter="onnx-qcdq", opset_version=10)[0].constraint


def test_opset_13_export_runs() -> None:
    model = nn.Sequential(QuantIdentity(return_quant_tensor=True), QuantConv2d(3, 2, 3), QuantReLU(bit_width=3))
    model = _calibrated(model, 2, 3, 6, 6)
    x = torch.randn(2, 3, 6, 6)
    artifact = bx.export(model, x, exporter="onnx-qcdq", opset_version=13)
    assert artifact.opset_import[0].version == 13 and artifact.ir_version == 7
    out, ref = _run_both(model, artifact, x)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-3 * float(model[2].act_quant.scale().detach()))


def test_consecutive_quantizers_are_exact_with_optimizations_disabled() -> None:
    """A tensor quantized twice (two grids) keeps both roundings; onnxruntime's optimizer may merge them."""
    model = nn.Sequential(QuantIdentity(bit_width=8, return_quant_tensor=True), QuantIdentity(bit_width=5))
    model = _calibrated(model, 4, 32)
    x = torch.randn(3, 32)
    artifact = bx.export(model, x, exporter="onnx-qcdq")
    assert _ops(artifact).count("QuantizeLinear") == 2
    out, ref = _run_both(model, artifact, x)
    np.testing.assert_array_equal(out, ref)


def test_saved_file_is_the_artifact(tmp_path: Any) -> None:
    model = QuantIdentity().eval()
    path = tmp_path / "sub" / "m.onnx"
    artifact = bx.export(model, torch.randn(1, 3), exporter="onnx-qcdq", path=path)
    assert onnx.load(str(path)) == artifact
    out = bx.get_exporter("onnx-qcdq").run(str(path), torch.zeros(2, 3))[0]
    assert out.shape == (2, 3)


def test_onnxruntime_rounds_before_adding_the_zero_point() -> None:
    """The consumer's QuantizeLinear computes round(x / s) + z; Brevitas computes round(x / s + z).

    They differ only on exact ties with an odd zero-point (by one step). The
    exporter keeps the standard QuantizeLinear (which onnxruntime fuses into
    integer kernels); this test pins the consumer's behaviour so a change is noticed.
    """
    from brevitas_export_onnx.graph import BATCH, GraphBuilder
    from brevitas_export_onnx.runtime import run

    g = GraphBuilder(opset=13)
    x = g.input("x", np.float32, [BATCH])
    q = g.node("QuantizeLinear", [x, g.const(np.float32(0.5), "s"), g.const(np.uint8(3), "z")], "q")
    g.output(q, np.uint8, [BATCH])
    ties = np.array([0.25, 0.75, -0.25], np.float32)  # x / s = 0.5, 1.5, -0.5
    out = run(g.build(), ties)[0].tolist()
    assert out == [3, 5, 3]  # round-half-even of x / s, then + 3
    brevitas_side = torch.round(torch.from_numpy(ties) / 0.5 + 3).tolist()
    assert brevitas_side == [4.0, 4.0, 2.0]
