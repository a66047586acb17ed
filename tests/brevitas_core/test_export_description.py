"""The quantizer description exporters read, and the tracing every exporter starts from."""

from __future__ import annotations

import torch
from torch import nn

from brevitas.export.description import ProxyRecorder, QuantDescription, capture
from brevitas.export.trace import trace
from brevitas.nn import (
    QuantAvgPool2d,
    QuantConv2d,
    QuantConvTranspose2d,
    QuantEltwiseAdd,
    QuantIdentity,
    QuantLinear,
    QuantReLU,
)
from brevitas.quant.binary import SignedBinaryWeightPerTensorConst
from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int32Bias,
    Uint8ActPerTensorFloat,
)
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat


def _calibrated(model: nn.Module, *shape: int) -> nn.Module:
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(*shape))
    return model.eval()


def test_weight_per_channel_and_transposed_axis() -> None:
    conv = QuantConv2d(2, 3, 3, weight_quant=Int8WeightPerChannelFloat)
    d = capture(conv, torch.randn(1, 2, 5, 5))["weight_quant"]
    assert (d.role, d.quant_type, d.bit_width, d.signed, d.narrow_range) == ("weight", "int", 8, True, True)
    assert d.per_channel_axis == 0 and tuple(d.flat_scale().shape) == (3,)
    assert (d.int_min, d.int_max) == (-127, 127) and d.rounding_mode == "ROUND"
    assert d.quantizer == "Int8WeightPerChannelFloat" and d.has_zero_zero_point
    deconv = QuantConvTranspose2d(2, 3, 3, weight_quant=Int8WeightPerChannelFloat)
    assert capture(deconv, torch.randn(1, 2, 5, 5))["weight_quant"].per_channel_axis == 1


def test_activation_ranges_zero_point_and_power_of_two() -> None:
    relu = _calibrated(QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4), 4, 6)
    d = capture(relu, torch.randn(2, 6))["act_quant"]
    assert (d.role, d.signed, d.int_min, d.int_max, d.per_channel_axis) == ("act", False, 0, 15, None)
    assert not d.scale_is_power_of_two

    shifted = _calibrated(QuantIdentity(act_quant=ShiftedUint8ActPerTensorFloat), 4, 6)
    d = capture(shifted, torch.randn(2, 6) + 3)["act_quant"]
    assert not d.has_zero_zero_point and d.int_max == 255
    assert float(d.zero_point) == round(float(d.zero_point))

    fixed = _calibrated(QuantIdentity(act_quant=Int8ActPerTensorFixedPoint), 4, 6)
    assert capture(fixed, torch.randn(2, 6))["act_quant"].scale_is_power_of_two


def test_bias_on_the_accumulator_grid() -> None:
    layer = QuantLinear(4, 3, input_quant=Int8ActPerTensorFloat, bias_quant=Int32Bias)
    layer = _calibrated(layer, 8, 4)
    descs = capture(layer, torch.randn(2, 4))
    b, w, x = descs["bias_quant"], descs["weight_quant"], descs["input_quant"]
    assert b.role == "bias" and b.bit_width == 32
    assert torch.allclose(b.flat_scale().reshape(-1), (x.scale * w.scale).reshape(-1))


def test_truncation_records_its_input_grid() -> None:
    model = _calibrated(nn.Sequential(QuantIdentity(return_quant_tensor=True), QuantAvgPool2d(2)), 2, 1, 4, 4)
    d = capture(model, torch.randn(1, 1, 4, 4))["1.trunc_quant"]
    assert d.role == "trunc" and d.rounding_mode == "FLOOR" and d.bit_width == 8
    assert d.input is not None and d.input.bit_width == 10  # 8 bits + log2(4) summed values
    assert torch.allclose(d.scale, d.input.scale * 4)


def test_binary_weights_are_described_as_binary() -> None:
    layer = QuantLinear(4, 2, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
    d = capture(layer, torch.randn(1, 4))["weight_quant"]
    assert (d.quant_type, d.bit_width, d.int_min, d.int_max) == ("binary", 1, -1, 1)


def test_recorder_sees_every_call_of_a_shared_proxy_and_keeps_parameter_values() -> None:
    add = QuantEltwiseAdd().eval()
    calls = []
    with ProxyRecorder(add, calls.append), torch.no_grad():
        add(torch.randn(1, 3), torch.randn(1, 3))
    assert [c.proxy for c in calls] == [add.input_quant, add.input_quant, add.output_quant]
    assert all(c.value is None for c in calls)  # activations are not kept
    conv = QuantConv2d(1, 1, 1)
    with ProxyRecorder(conv, calls.append), torch.no_grad():
        conv(torch.randn(1, 1, 2, 2))
    assert calls[-1].description.role == "weight" and calls[-1].value.shape == conv.weight.shape


def test_capture_restores_training_mode_and_to_int_round_trips() -> None:
    model = QuantIdentity(bit_width=4)
    model.train()
    d = capture(model, torch.randn(3, 5))["act_quant"]
    assert model.training and model.act_quant.training
    values = torch.tensor([-3.0, 0.0, 2.0]) * d.scale
    assert d.to_int(values).tolist() == [-3, 0, 2]


def test_description_summary_and_grid_comparison() -> None:
    a = QuantDescription("act", "int", torch.tensor(0.5), torch.tensor(0.0), 4, False, False)
    b = QuantDescription("act", "int", torch.tensor(0.5), torch.tensor(0.0), 4, False, False, quantizer="Q")
    c = QuantDescription("act", "int", torch.tensor(0.25), torch.tensor(0.0), 4, False, False)
    assert a.same_grid(b) and not a.same_grid(c)
    assert b.describe() == "4-bit unsigned per-tensor (Q)"


# ---------------------------------------------------------------------------------------------- tracing


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = QuantConv2d(3, 4, 3, return_quant_tensor=True)
        self.act = QuantReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.conv(x))
        return y.view(y.size(0), -1) * 2


def test_trace_keeps_quant_layers_whole_and_names_user_code() -> None:
    model = nn.Sequential(QuantIdentity(return_quant_tensor=True), _Block())
    traced = trace(model, torch.randn(2, 3, 6, 6))
    assert not traced.problems
    modules = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    assert modules == ["0", "1.conv", "1.act"]
    mul = next(n for n in traced.graph.nodes if n.op == "call_function")
    assert traced.qualname(mul) == "1"
    conv = traced.node("1.conv")
    assert [c.description.role for c in traced.calls_of(conv)] == ["weight"]
    assert traced.proxy_name(conv, traced.module(conv).weight_quant) == "1.conv.weight_quant"
    assert tuple(traced.values[conv].value.shape) == (2, 4, 4, 4)


def test_trace_of_a_single_layer_and_constant_nodes() -> None:
    layer = QuantLinear(3, 2)
    traced = trace(layer, torch.randn(1, 3))
    node = next(n for n in traced.graph.nodes if n.op == "call_module")
    assert traced.qualname(node) == "" and traced.proxy_name(node, layer.weight_quant) == "weight_quant"

    class WithConst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * (self.w * 2)

    traced = trace(WithConst(), torch.randn(1, 3))
    scaled = next(n for n in traced.graph.nodes if n.op == "call_function" and traced.values[n].shape == (3,))
    assert not traced.depends_on_input(scaled)


def test_untraceable_model_and_wrong_inputs_are_problems() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = nn.Sequential(_Gate())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x)

    traced = trace(Branchy(), torch.randn(1, 3))
    assert traced.graph_module is None and traced.problems[0].layer == "inner.0"
    assert "cannot be traced" in traced.problems[0].constraint and traced.problems[0].fix
    traced = trace(nn.Sequential(nn.Linear(3, 3)), (torch.randn(1, 3), torch.randn(1, 3)))
    assert "2 example input(s)" in traced.problems[0].constraint


class _Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x
        return -x


def test_one_bit_tensors_are_binary_only_when_signed() -> None:
    from brevitas.export.description import describe_quant_tensor
    from brevitas.quant_tensor import QuantTensor

    def described(signed: bool) -> QuantDescription:
        qt = QuantTensor(torch.tensor([0.0, 0.5]), torch.tensor(0.5), torch.tensor(0.0), torch.tensor(1.0), signed)
        return describe_quant_tensor(qt)

    unsigned, signed = described(False), described(True)
    assert unsigned.quant_type == "int" and (unsigned.int_min, unsigned.int_max) == (0, 1)
    assert signed.quant_type == "binary" and (signed.int_min, signed.int_max) == (-1, 1)
    # a 1-bit unsigned integer quantizer (codes 0 and 1) is described as an integer one
    layer = QuantIdentity(bit_width=1, signed=False, return_quant_tensor=True)
    desc = capture(layer, torch.rand(2, 4))["act_quant"]
    assert desc.quant_type == "int" and (desc.int_min, desc.int_max) == (0, 1)
