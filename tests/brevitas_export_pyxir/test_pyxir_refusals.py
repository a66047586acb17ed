"""Every refusal of the PyXIR check, with its message: the layer, the constraint, and the quantizer to use instead."""

from __future__ import annotations

import pytest
import torch
from pyxir_nets import DpuInt8Act, DpuUint8Act, calibrate, conv_kwargs
from torch import nn

import brevitas.export as bx
from brevitas.export.base import ExportCheckError, Problem
from brevitas.nn import (
    QuantAvgPool2d,
    QuantCat,
    QuantConv1d,
    QuantConv2d,
    QuantConvTranspose2d,
    QuantEltwiseAdd,
    QuantHardTanh,
    QuantIdentity,
    QuantLinear,
    QuantReLU,
    QuantSigmoid,
    QuantUpsample,
)
from brevitas.quant.fixed_point import (
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    Uint8ActPerTensorFixedPoint,
)
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerTensorFloat, Int32Bias
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat

FP = "brevitas.quant.fixed_point"


def _inp(**kw):
    return QuantIdentity(act_quant=DpuInt8Act, return_quant_tensor=True, **kw)


def _problems(model: nn.Module, shape: tuple[int, ...], exporter: str = "pyxir") -> list[Problem]:
    model = calibrate(model, shape)
    problems = bx.check(model, torch.randn(shape), exporter=exporter)
    assert problems, "expected a refusal"
    return problems


def _one(problems: list[Problem], layer: str, *phrases: str) -> Problem:
    """The problem of ``layer`` whose message holds every phrase (fails listing them all otherwise)."""
    for p in problems:
        if p.layer == layer and all(ph in p.constraint for ph in phrases):
            return p
    raise AssertionError(f"no problem of {layer!r} with {phrases}; got:\n" + "\n".join(map(str, problems)))


def _conv(**kw):
    return QuantConv2d(2, 3, 3, padding=1, **conv_kwargs(**kw))


# --------------------------------------------------------------------------- item 2 of the issue


def test_float_weight_scale_is_refused_naming_the_fixed_point_weight_quantizer():
    p = _one(_problems(nn.Sequential(_inp(), _conv(weight_quant=Int8WeightPerTensorFloat)), (2, 2, 5, 5)), "1",
             "1.weight_quant", "float scale (restrict_scaling_type=fp")  # fmt: skip
    assert p.fix == f"use weight_quant={FP}.Int8WeightPerTensorFixedPoint"


def test_per_channel_weight_scales_are_refused():
    model = nn.Sequential(_inp(), _conv(weight_scaling_per_output_channel=True))
    p = _one(_problems(model, (2, 2, 5, 5)), "1", "per-channel scales (axis 0)", "one power-of-two scale per tensor")
    assert f"{FP}.Int8WeightPerTensorFixedPoint" in p.fix


def test_float_activation_scale_is_refused_with_the_signed_fixed_point_act():
    model = nn.Sequential(_inp(), _conv(output_quant=Int8ActPerTensorFloat))
    p = _one(_problems(model, (2, 2, 5, 5)), "1", "1.output_quant", "float scale (restrict_scaling_type=fp")
    assert p.fix == f"use output_quant={FP}.Int8ActPerTensorFixedPoint"


def test_float_input_quantizer_scale_is_refused():
    model = nn.Sequential(QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True), _conv())
    p = _one(_problems(model, (2, 2, 5, 5)), "0", "0.act_quant", "float scale")
    assert p.fix == f"use act_quant={FP}.Int8ActPerTensorFixedPoint"


def test_a_float_scale_is_refused_even_when_its_value_is_a_power_of_two_for_now():
    model = nn.Sequential(_inp(), _conv(output_quant=Int8ActPerTensorFloat)).eval()  # never calibrated: 1 / 128
    assert float(model[1].output_quant.scale().detach()) == 2.0**-7
    p = _one(bx.check(model, torch.randn(2, 2, 5, 5), exporter="pyxir"), "1", "float scale (restrict_scaling_type=fp")
    assert p.fix == f"use output_quant={FP}.Int8ActPerTensorFixedPoint"


@pytest.mark.parametrize("restriction", [None, "power_of_two"])
def test_a_scale_value_that_is_not_a_power_of_two_is_refused(restriction):
    from brevitas.export.description import QuantDescription
    from brevitas_export_pyxir.constraints import bias_problems, weight_problems

    desc = QuantDescription("weight", "int", torch.tensor(0.3), torch.tensor(0.0), 8, True, True)
    (p,) = weight_problems(desc, "fc", "QuantLinear", "fc.weight_quant", restriction)
    assert p.layer == "fc" and "has a scale of 0.3, not a power of two" in p.constraint
    assert p.fix == f"use weight_quant={FP}.Int8WeightPerTensorFixedPoint"
    (p,) = bias_problems(desc, "fc", "QuantLinear", "fc.bias_quant", restriction)
    assert "not a power of two" in p.constraint and "Int8BiasPerTensorFixedPointInternalScaling" in p.fix


def test_average_pool_over_a_window_of_nine_has_no_power_of_two_scale():
    model = nn.Sequential(_inp(), _conv(), QuantAvgPool2d(3, float_to_int_impl_type="dpu"))
    p = _one(_problems(model, (2, 2, 6, 6)), "2", "2.trunc_quant", "not a power of two")
    assert "2x2 or 4x4" in p.fix


def test_activations_that_are_not_8_bit_are_refused():
    model = nn.Sequential(_inp(), _conv(), QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4))
    p = _one(_problems(model, (2, 2, 5, 5)), "2", "2.act_quant", "is 4-bit", "8-bit activations")
    assert p.fix == f"use act_quant={FP}.Uint8ActPerTensorFixedPoint"


def test_weights_above_8_bits_are_refused():
    model = nn.Sequential(_inp(), _conv(weight_bit_width=12))
    p = _one(_problems(model, (2, 2, 5, 5)), "1", "12-bit weights", "at most 8 bits")
    assert p.fix == f"use weight_quant={FP}.Int8WeightPerTensorFixedPoint"


@pytest.mark.parametrize(
    ("kw", "bits"), [({"bias_bit_width": 16}, 16), ({"bias_quant": Int32Bias}, 32)], ids=["16-bit", "Int32Bias"]
)
def test_biases_above_8_bits_are_refused(kw, bits):
    model = nn.Sequential(_inp(), _conv(**kw))
    p = _one(_problems(model, (2, 2, 5, 5)), "1", f"{bits}-bit bias", "at most 8 bits")
    assert p.fix == f"use bias_quant={FP}.Int8BiasPerTensorFixedPointInternalScaling"


@pytest.mark.parametrize(
    ("layer", "shape", "name"),
    [
        (lambda: QuantSigmoid(act_quant=DpuUint8Act), (2, 3, 5, 5), "QuantSigmoid"),
        (lambda: QuantHardTanh(act_quant=DpuInt8Act, max_val=1.0, min_val=-1.0), (2, 3, 5, 5), "QuantHardTanh"),
        (lambda: nn.BatchNorm2d(3), (2, 3, 5, 5), "BatchNorm2d"),
        (lambda: QuantUpsample(scale_factor=2), (2, 3, 5, 5), "QuantUpsample"),
        (lambda: QuantConvTranspose2d(3, 3, 2, **conv_kwargs()), (2, 3, 5, 5), "QuantConvTranspose2d"),
        (lambda: nn.Tanh(), (2, 3, 5, 5), "Tanh"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_layers_the_dpu_does_not_have_are_refused(layer, shape, name):
    model = nn.Sequential(_inp(), QuantConv2d(shape[1], 3, 1, **conv_kwargs()), layer())
    p = _one(_problems(model, shape), "2", f"{name} is not a layer the DPU has", "Conv, Gemm, Relu, Add")
    assert FP in p.fix or "QuantConv2d" in p.fix


def test_conv1d_is_refused_pointing_at_conv2d():
    model = nn.Sequential(_inp(), QuantConv1d(2, 3, 3, **conv_kwargs()))
    p = _one(_problems(model, (2, 2, 8)), "1", "QuantConv1d is not a layer the DPU has")
    assert "QuantConv2d" in p.fix


def test_concatenation_is_refused():
    class Cat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = _inp()
            self.conv = QuantConv2d(2, 2, 1, **conv_kwargs())
            self.cat = QuantCat(input_quant=DpuInt8Act, output_quant=None)

        def forward(self, x):
            x = self.inp(x)
            return self.cat([x, self.conv(x)], dim=1)

    _one(_problems(Cat(), (2, 2, 4, 4)), "cat", "QuantCat is not a layer the DPU has")


def test_function_the_dpu_does_not_have_is_refused():
    class Neg(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = _inp()
            self.conv = QuantConv2d(2, 2, 1, **conv_kwargs())

        def forward(self, x):
            return torch.sigmoid(self.conv(self.inp(x)))

    _one(_problems(Neg(), (2, 2, 4, 4)), "", "sigmoid() is not a layer the DPU has")


# --------------------------------------------------------------------------- the other constraints


def test_float_weight_and_float_bias_are_refused():
    model = nn.Sequential(_inp(), _conv(weight_quant=None, bias_quant=None))
    problems = _problems(model, (2, 2, 5, 5))
    assert _one(problems, "1", "QuantConv2d has a float weight").fix == f"use weight_quant={FP}." \
        "Int8WeightPerTensorFixedPoint"  # fmt: skip
    p = _one(problems, "1", "QuantConv2d has a float bias")
    assert p.fix == f"use bias_quant={FP}.Int8BiasPerTensorFixedPointInternalScaling"


def test_a_layer_without_output_quantizer_is_refused():
    model = nn.Sequential(_inp(), _conv(output_quant=None, return_quant_tensor=False))
    p = _one(_problems(model, (2, 2, 5, 5)), "1", "the output of QuantConv2d is not quantized", "8-bit")
    assert p.fix == f"set output_quant={FP}.Int8ActPerTensorFixedPoint on '1'"


def test_a_float_input_is_refused():
    p = _one(_problems(nn.Sequential(_conv()), (2, 2, 5, 5)), "0", "QuantConv2d receives a float input")
    assert f"QuantIdentity(act_quant={FP}.Int8ActPerTensorFixedPoint)" in p.fix


def test_unsigned_output_quantizer_on_a_conv_is_refused():
    model = nn.Sequential(_inp(), _conv(output_quant=Uint8ActPerTensorFixedPoint))
    p = _one(_problems(model, (2, 2, 5, 5)), "1", "is unsigned but quantizes a tensor that can be negative")
    assert p.fix == f"use output_quant={FP}.Int8ActPerTensorFixedPoint"


def test_signed_quantizer_of_a_relu_output_is_refused():
    model = nn.Sequential(_inp(), _conv(), QuantReLU(act_quant=Int8ActPerTensorFixedPoint))
    p = _one(_problems(model, (2, 2, 5, 5)), "2", "is signed but quantizes the output of a ReLU")
    assert p.fix == f"use act_quant={FP}.Uint8ActPerTensorFixedPoint"


def test_average_pool_truncating_with_floor_is_refused():
    model = nn.Sequential(_inp(), _conv(), QuantAvgPool2d(2))
    p = _one(_problems(model, (2, 2, 6, 6)), "2", "rounds with FLOOR")
    assert "float_to_int_impl_type='dpu'" in p.fix


def test_activation_rounding_other_than_nearest_is_refused():
    class FloorAct(Int8ActPerTensorFixedPoint):
        float_to_int_impl_type = "floor"

    p = _one(_problems(nn.Sequential(_inp(), _conv(output_quant=FloorAct)), (2, 2, 5, 5)), "1", "rounds with FLOOR")
    assert f"{FP}.Int8ActPerTensorFixedPoint" in p.fix and "'dpu'" in p.fix


def test_narrow_range_activation_is_refused():
    model = nn.Sequential(_inp(), _conv(output_narrow_range=True))
    _one(_problems(model, (2, 2, 5, 5)), "1", "narrow range", "from -128")


def test_zero_point_is_refused():
    model = nn.Sequential(_inp(), _conv(output_quant=ShiftedUint8ActPerTensorFloat))
    problems = _problems(model, (2, 2, 5, 5))
    assert _one(problems, "1", "has a zero-point").fix == f"use output_quant={FP}.Int8ActPerTensorFixedPoint"


def test_adding_operands_on_different_grids_is_refused():
    class Add(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = _inp()
            self.a = QuantConv2d(2, 2, 1, **conv_kwargs())
            self.b = QuantConv2d(2, 2, 1, **conv_kwargs(output_quant=Int8ActPerTensorFixedPoint, output_bit_width=8))
            self.q = QuantIdentity(act_quant=DpuInt8Act)

        def forward(self, x):
            x = self.inp(x)
            return self.q(self.a(x).value + self.b(x * 8).value)

    model = Add()
    model.b.weight.data.mul_(64)
    p = _one(_problems(model, (2, 2, 4, 4)), "", "add() adds operands on different fixed-point grids")
    assert f"QuantEltwiseAdd(input_quant={FP}.Int8ActPerTensorFixedPoint" in p.fix


def test_eltwise_add_with_float_quantizers_is_refused():
    class Res(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = _inp()
            self.conv = QuantConv2d(2, 2, 1, **conv_kwargs())
            self.add = QuantEltwiseAdd()  # Int8ActPerTensorFloat in and out

        def forward(self, x):
            x = self.inp(x)
            return self.add(x, self.conv(x))

    problems = _problems(Res(), (2, 2, 4, 4))
    assert _one(problems, "add", "add.input_quant", "float scale").fix == f"use input_quant={FP}." \
        "Int8ActPerTensorFixedPoint"  # fmt: skip
    assert _one(problems, "add", "add.output_quant", "float scale").fix == f"use output_quant={FP}." \
        "Int8ActPerTensorFixedPoint"  # fmt: skip


#: a signed 8-bit fixed-point quantizer with a constant scale of 2**-1, far coarser than the calibrated ones
COARSE = {"scaling_impl_type": "const", "scaling_init": 64.0}


def test_quantizing_twice_before_a_layer_is_refused():
    coarse_input = {f"input_{k}": v for k, v in COARSE.items()}
    conv = QuantConv2d(2, 3, 1, input_quant=Int8ActPerTensorFixedPoint, **coarse_input, **conv_kwargs())
    p = _one(_problems(nn.Sequential(_inp(), conv), (2, 2, 4, 4)), "1",
             "1.input_quant re-quantizes the output of 0.act_quant, which no DPU layer computes")  # fmt: skip
    assert "remove one of the two quantizers" in p.fix


def test_requantizing_a_dpu_layer_output_is_not_refused():
    model = nn.Sequential(_inp(), _conv(), QuantConv2d(3, 2, 1, input_quant=Int8ActPerTensorFixedPoint,
                                                       **{f"input_{k}": v for k, v in COARSE.items()},
                                                       **conv_kwargs()))  # fmt: skip
    model = calibrate(model, (2, 2, 5, 5))
    assert bx.check(model, torch.randn(2, 2, 5, 5), exporter="pyxir") == []


def test_a_model_ending_with_a_standalone_quantizer_is_refused():
    model = nn.Sequential(_inp(), _conv(), QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, **COARSE))
    p = _one(_problems(model, (2, 2, 5, 5)), "", "the model's output is quantized by 2.act_quant, which is not a DPU")
    assert f"output_quant={FP}.Int8ActPerTensorFixedPoint" in p.fix


# --------------------------------------------------------------------------- one error, nothing written


@pytest.mark.parametrize("exporter", ["pyxir", "pyxir-dpuv1", "pyxir-dpuv2"])
def test_export_raises_once_listing_every_layer_and_writes_nothing(tmp_path, exporter):
    model = nn.Sequential(
        _inp(),
        QuantConv2d(2, 3, 3, **conv_kwargs(weight_quant=Int8WeightPerTensorFloat)),
        QuantReLU(act_quant=Uint8ActPerTensorFixedPoint, bit_width=4),
        nn.Flatten(),
        QuantLinear(3 * 3 * 3, 2, **conv_kwargs(bias_quant=None, output_quant=Int8ActPerTensorFloat)),
    )
    model = calibrate(model, (2, 2, 5, 5))
    path = tmp_path / "model.onnx"
    with pytest.raises(ExportCheckError) as info:
        bx.export(model, torch.randn(2, 2, 5, 5), exporter=exporter, path=path)
    assert not path.exists() and not list(tmp_path.iterdir())
    layers = {p.layer for p in info.value.problems}
    assert layers == {"1", "2", "4"}
    text = str(info.value)
    for phrase in ("1: 1.weight_quant", "2: 2.act_quant", "4: QuantLinear has a float bias", "4: 4.output_quant",
                   f"{FP}.Int8WeightPerTensorFixedPoint", f"{FP}.Uint8ActPerTensorFixedPoint",
                   f"{FP}.Int8BiasPerTensorFixedPointInternalScaling"):  # fmt: skip
        assert phrase in text
    assert all(FP in p.fix for p in info.value.problems)


def test_the_dpu_ready_quantizers_pass_the_check():
    model = nn.Sequential(_inp(), _conv(), QuantReLU(act_quant=Uint8ActPerTensorFixedPoint))
    model[1].weight_quant  # noqa: B018 - the layer is built with Int8WeightPerTensorFixedPoint
    assert model[1].weight_quant.quant is Int8WeightPerTensorFixedPoint
    model = calibrate(model, (2, 2, 5, 5))
    assert bx.check(model, torch.randn(2, 2, 5, 5), exporter="pyxir") == []
