"""The documentation's quantizer examples, and every prebuilt quantizer, built with the standard plugin.

Each quantizer is attached to a stand-in layer the way a proxy does it:
``quant.let(module=conv, tracked_parameter_list=[conv.weight])``.
"""

from __future__ import annotations

import types

import pytest
import torch
from torch import nn

import brevitas.quant
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.errors import ConfigError, UnknownNameError
from brevitas.inject.enum import BitWidthImplType, RestrictValueType, ScalingImplType
from brevitas.plugins import hookimpl, register, unregister
from brevitas.quant.fixed_point import Int8WeightPerTensorFixedPoint
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloat,
    Int8ActPerTensorFloatMinMaxInit,
    Int8Bias,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    TruncTo8bit,
    Uint8ActPerTensorFloat,
)
from brevitas.quant.shifted_scaled_int import ShiftedUint8WeightPerTensorFloat
from brevitas_plugins.core.bit_width import BitWidthParameter
from brevitas_plugins.core.quant import BinaryQuant, RescalingIntQuant
from brevitas_plugins.core.restrict_val import LogFloatRestrictValue
from brevitas_plugins.core.scaling import ParameterFromStatsFromParameterScaling, StatsFromParameterScaling

torch.manual_seed(0)


class MyWeightQuant(Int8WeightPerTensorFloat):
    bit_width = 4
    scaling_per_output_channel = True


class MyLearnedWeightQuant(Int8WeightPerTensorFloat):
    bit_width_impl_type = BitWidthImplType.PARAMETER
    scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS
    restrict_scaling_type = RestrictValueType.LOG_FP


def attach(quant: type, layer: nn.Module | None = None, attr: str = "weight", **overrides: object) -> type:
    """What a proxy does: the quantizer with its layer and tracked tensor."""
    layer = layer if layer is not None else nn.Conv2d(3, 8, 3)
    return quant.let(module=layer, tracked_parameter_list=[getattr(layer, attr)], **overrides)


def codes(y: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    return (y / scale + zero_point).detach()


def assert_integers(t: torch.Tensor) -> None:
    assert torch.allclose(t, torch.round(t), atol=1e-4), t


# ---------------------------------------------------------------------------
# The documentation's examples
# ---------------------------------------------------------------------------


def test_my_weight_quant_is_4_bit_narrow_per_channel() -> None:
    conv = nn.Conv2d(3, 8, 3)
    y, scale, zero_point, bit_width = attach(MyWeightQuant, conv).tensor_quant(conv.weight)
    assert tuple(scale.shape) == (8, 1, 1, 1)
    assert int(bit_width) == 4
    c = codes(y, scale, zero_point)
    assert_integers(c)
    c = torch.round(c)
    assert int(c.min()) >= -7 and int(c.max()) <= 7
    # max statistics: each channel's largest |w| lands on the last code
    assert torch.allclose(c.abs().amax(dim=(1, 2, 3)), torch.full((8,), 7.0))
    expected = conv.weight.detach().abs().amax(dim=(1, 2, 3), keepdim=True) / 7
    assert torch.allclose(scale.detach(), expected)


def test_my_learned_weight_quant_learns_bit_width_and_scale() -> None:
    conv = nn.Conv2d(3, 8, 3)
    tq = attach(MyLearnedWeightQuant, conv).tensor_quant
    assert isinstance(tq, RescalingIntQuant)
    assert isinstance(tq.bit_width_impl, BitWidthParameter)
    assert isinstance(tq.scaling_impl, ParameterFromStatsFromParameterScaling)
    assert isinstance(tq.scaling_impl.restrict_scaling_impl, LogFloatRestrictValue)
    learned = dict(tq.named_parameters())
    assert set(learned) == {"bit_width_impl.bit_width_offset", "scaling_impl.value"}
    y, scale, zero_point, bit_width = tq(conv.weight)
    assert int(bit_width) == 8
    ((y - 0.3 * conv.weight.detach()) ** 2).sum().backward()
    for name, p in learned.items():
        assert p.grad is not None and torch.all(torch.isfinite(p.grad)), name
        assert float(p.grad.abs().sum()) > 0, name


@pytest.mark.parametrize(
    "overrides",
    [
        dict(bit_width_impl_type="parameter", scaling_impl_type="parameter_from_stats", restrict_scaling_type="log_fp"),
        dict(bit_width_impl_type="PARAMETER", scaling_impl_type="PARAMETER_FROM_STATS", restrict_scaling_type="LOG_FP"),
    ],
)
def test_string_overrides_give_the_same_modules_as_the_enums(overrides: dict[str, str]) -> None:
    by_enum = attach(MyLearnedWeightQuant).tensor_quant
    by_name = attach(Int8WeightPerTensorFloat, **overrides).tensor_quant
    assert [type(m) for m in by_name.modules()] == [type(m) for m in by_enum.modules()]
    assert [n for n, _ in by_name.named_parameters()] == [n for n, _ in by_enum.named_parameters()]


def test_default_weight_quant_uses_stats_scaling_and_zero_zero_point() -> None:
    tq = attach(Int8WeightPerTensorFloat).tensor_quant
    assert isinstance(tq.scaling_impl, StatsFromParameterScaling)
    assert isinstance(tq.zero_point_impl, ZeroZeroPoint)
    assert list(tq.parameters()) == []


def test_naming_a_component_class_directly_wins() -> None:
    class MyBinaryWeightQuant(Int8WeightPerTensorFloat):
        tensor_quant = BinaryQuant

    conv = nn.Conv2d(3, 8, 3)
    tq = attach(MyBinaryWeightQuant, conv).tensor_quant
    assert isinstance(tq, BinaryQuant)
    y, scale, _, bit_width = tq(conv.weight)
    assert int(bit_width) == 1
    assert torch.equal(y.detach().abs(), scale.detach().expand_as(y))


def test_fp_quant_type_builds_no_quantizer() -> None:
    assert attach(Int8WeightPerTensorFloat, quant_type="fp").tensor_quant is None


# ---------------------------------------------------------------------------
# A third-party name, registered by a plugin, works wherever an enum does
# ---------------------------------------------------------------------------


class HalfMaxScaling(nn.Module):
    """A third party's scaling: half the max |w| of the tracked weights."""

    def __init__(self, tracked_parameter_list: list[torch.Tensor]) -> None:
        super().__init__()
        self.tracked = tracked_parameter_list

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.tracked[0].abs().max()


@pytest.fixture
def lsq_plugin():
    plugin = types.ModuleType("tests_lsq_plugin")

    @hookimpl
    def brevitas_register(registry):  # type: ignore[no-untyped-def]
        registry.add("scaling", "tests_lsq", HalfMaxScaling)

    plugin.brevitas_register = brevitas_register
    register(plugin)
    yield
    unregister("tests_lsq_plugin")


def test_a_registered_third_party_scaling_is_usable_by_name(lsq_plugin: None) -> None:
    conv = nn.Conv2d(3, 8, 3)
    tq = attach(Int8WeightPerTensorFloat, conv, scaling_impl_type="tests_lsq").tensor_quant
    assert isinstance(tq.scaling_impl, HalfMaxScaling)
    y, scale, _, _ = tq(conv.weight)
    assert torch.allclose(scale, 0.5 * conv.weight.detach().abs().max() / 127)


def test_an_unregistered_name_lists_the_registered_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        _ = attach(Int8WeightPerTensorFloat, scaling_impl_type="tests_lsq").tensor_quant
    message = str(info.value)
    assert "Int8WeightPerTensorFloat" in message
    assert "scaling_impl_type='tests_lsq'" in message
    for name in ("const", "stats", "parameter", "parameter_from_stats"):
        assert name in message
    assert "brevitas.plugins.register" in message


# ---------------------------------------------------------------------------
# Every prebuilt quantizer builds and quantizes
# ---------------------------------------------------------------------------

PREBUILT = [getattr(brevitas.quant, name) for name in brevitas.quant.__all__]
FIXED_POINT = [q for q in PREBUILT if q.__module__ == "brevitas.quant.fixed_point"]


def run_prebuilt(quant: type) -> tuple[type, tuple[torch.Tensor, ...], torch.Tensor]:
    """Build ``quant`` for its role and quantize a tensor; returns (injector, outputs, input)."""
    role = quant.quant_role
    conv = nn.Conv2d(3, 8, 3)
    if role == "weight":
        q = attach(quant, conv)
        x = conv.weight
        return q, q.tensor_quant(x), x
    if role == "bias":
        q = attach(quant, conv, attr="bias")
        x = conv.bias
        if not q.requires_input_scale:
            return q, q.tensor_quant(x), x
        scale = torch.tensor(2.0**-9)
        if q.requires_input_bit_width:
            return q, q.tensor_quant(x, scale, torch.tensor(20.0)), x
        return q, q.tensor_quant(x, scale), x
    if role == "act":
        q = quant
        if "MinMax" in quant.__name__ or "MaxInit" in quant.__name__:
            q = quant.let(max_val=3.0)
        x = torch.randn(4, 3, 5, 5)
        return q, q.tensor_quant(x), x
    assert role == "trunc"
    x = torch.arange(-512.0, 512.0, 7.0)  # 10-bit signed codes at scale 1
    return quant, quant.tensor_quant(x, torch.tensor(1.0), torch.tensor(0.0), torch.tensor(10.0)), x


@pytest.mark.parametrize("quant", PREBUILT, ids=lambda q: q.__name__)
def test_every_prebuilt_quantizer_builds_and_quantizes(quant: type) -> None:
    q, (y, scale, zero_point, bit_width), x = run_prebuilt(quant)
    assert y.shape == x.shape
    assert bit_width.dim() == 0 and int(bit_width) >= 1
    assert torch.all(scale > 0)
    c = codes(y, scale, zero_point)
    assert_integers(c)
    assert_integers(zero_point.detach())
    c = torch.round(c)
    b = int(bit_width)
    signed = q.signed if "signed" in q else True
    low = -(2 ** (b - 1)) if signed else 0
    high = 2 ** (b - 1) - 1 if signed else 2**b - 1
    if b == 1:  # binary: codes -1 / +1
        assert set(c.flatten().tolist()) <= {-1.0, 1.0}
    else:
        assert float(c.min()) >= low and float(c.max()) <= high
    if quant.quant_role == "trunc":
        assert b == 8 and float(scale) == 4.0  # 10 -> 8 bits: 2 bits dropped


@pytest.mark.parametrize("quant", FIXED_POINT, ids=lambda q: q.__name__)
def test_fixed_point_quantizers_give_power_of_two_scales(quant: type) -> None:
    _, (y, scale, _, _), _ = run_prebuilt(quant)
    exponent = torch.log2(scale.detach())
    assert torch.equal(exponent, torch.round(exponent)), scale


def test_fixed_point_covers_every_prebuilt_family() -> None:
    names = {q.__name__ for q in FIXED_POINT}
    assert {"Int8WeightPerTensorFixedPoint", "Int8ActPerTensorFixedPoint", "Uint8ActPerTensorFixedPoint"} <= names


def test_int8_bias_is_on_the_accumulator_grid() -> None:
    y, scale, zero_point, bit_width = Int8Bias.tensor_quant(torch.tensor([0.3, -0.2, 5.0]), torch.tensor(0.01))
    assert torch.allclose(y, torch.tensor([0.30, -0.20, 1.27]))
    assert float(scale) == pytest.approx(0.01) and int(bit_width) == 8 and float(zero_point) == 0.0


def test_trunc_to_8bit_drops_least_significant_bits() -> None:
    x = torch.tensor([1023.0, 5.0, -6.0, -1024.0])  # 11-bit codes, scale 1
    y, scale, _, bit_width = TruncTo8bit.tensor_quant(x, torch.tensor(1.0), torch.tensor(0.0), torch.tensor(11.0))
    assert torch.equal(y, torch.tensor([1016.0, 0.0, -8.0, -1024.0]))  # floor(x / 8) * 8
    assert float(scale) == 8.0 and int(bit_width) == 8


def test_activation_defaults_follow_the_original_library() -> None:
    assert Int8ActPerTensorFloat.signed is True and Uint8ActPerTensorFloat.signed is False
    assert str(Int8ActPerTensorFloat.scaling_impl_type) == "parameter_from_stats"
    assert str(Int8ActPerTensorFloat.scaling_stats_op) == "percentile"
    assert Int8ActPerTensorFloat.high_percentile_q == 99.999
    assert Int8ActPerTensorFloat.collect_stats_steps == 300
    tq = Int8ActPerTensorFloatMinMaxInit.let(min_val=-1.0, max_val=1.0).tensor_quant
    _, scale, _, _ = tq(torch.zeros(3))
    assert float(scale.detach()) * 128 == pytest.approx(1.0)


# ---------------------------------------------------------------------------
# Bad input, each with its message
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bit_width", "message"),
    [(0, "between 1 and 32, got 0"), (-1, "between 1 and 32, got -1"), (2.5, "must be an integer, got 2.5")],
)
def test_bad_bit_width_is_a_config_error_naming_the_quantizer(bit_width: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _ = attach(MyWeightQuant, bit_width=bit_width).tensor_quant
    assert "MyWeightQuant" in str(info.value)
    assert "bit_width" in str(info.value)
    assert message in str(info.value)


def test_misspelled_enum_string_lists_the_names_and_the_closest_one() -> None:
    with pytest.raises(UnknownNameError) as info:
        _ = attach(Int8WeightPerTensorFloat, scaling_impl_type="stat").tensor_quant
    message = str(info.value)
    assert "scaling_impl_type='stat'" in message
    assert "affine_stats, const, he, parameter, parameter_from_stats, stats" in message
    assert "did you mean 'stats'" in message.lower()


def test_narrow_signed_one_bit_integer_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        _ = attach(Int8WeightPerTensorFloat, bit_width=1).tensor_quant
    message = str(info.value)
    assert "Int8WeightPerTensorFloat" in message
    assert "1-bit signed narrow-range integer has only the value 0" in message
    assert "QuantType.BINARY" in message


def test_per_channel_weight_without_a_layer_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        _ = Int8WeightPerChannelFloat.let(tracked_parameter_list=[]).tensor_quant
    message = str(info.value)
    assert "Int8WeightPerChannelFloat" in message
    assert "needs the number of channels" in message
    assert "module=layer" in message


def test_per_channel_activation_without_a_shape_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        _ = Int8ActPerTensorFloat.let(scaling_per_output_channel=True).tensor_quant
    assert "Int8ActPerTensorFloat" in str(info.value)
    assert "per_channel_broadcastable_shape=(1, C, 1, 1)" in str(info.value)


def test_per_channel_activation_with_a_shape_works() -> None:
    q = Int8ActPerTensorFloat.let(scaling_per_output_channel=True, per_channel_broadcastable_shape=(1, 3, 1, 1))
    y, scale, _, _ = q.tensor_quant(torch.randn(4, 3, 5, 5))
    assert tuple(scale.shape) == (1, 3, 1, 1)


def test_power_of_two_scale_with_a_stats_zero_point_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        _ = attach(ShiftedUint8WeightPerTensorFloat, restrict_scaling_type="power_of_two").tensor_quant
    message = str(info.value)
    assert "ShiftedUint8WeightPerTensorFloat" in message
    assert "POWER_OF_TWO" in message and "StatsFromParameterZeroPoint" in message
    assert "fixed-point formats (FINN, PyXIR) have no zero-point" in message


def test_fixed_point_weight_keeps_a_zero_zero_point() -> None:
    tq = attach(Int8WeightPerTensorFixedPoint).tensor_quant
    assert isinstance(tq.zero_point_impl, ZeroZeroPoint)
