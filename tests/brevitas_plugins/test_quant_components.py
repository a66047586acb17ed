"""Tests of the standard rounding, bit-width and tensor-quantizer blocks of brevitas_plugins.core."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brevitas.core.bit_width import BitWidthConst, BitWidthImpl
from brevitas.core.float_to_int import FloatToInt
from brevitas.core.quant import TensorQuant, TruncQuant
from brevitas.core.scaling import ConstScaling
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.errors import ConfigError
from brevitas.function.ops import max_int, min_int
from brevitas.plugins.registry import ByRole, Registry
from brevitas_plugins.core import bit_width as bit_width_module
from brevitas_plugins.core import float_to_int as float_to_int_module
from brevitas_plugins.core import quant as quant_module
from brevitas_plugins.core.bit_width import BitWidthParameter, IntScaling, OffsetBitWidth
from brevitas_plugins.core.float_to_int import (
    CeilSte,
    DPURoundSte,
    FloorSte,
    RoundSte,
    RoundToZeroSte,
    TensorClamp,
    TensorClampSte,
)
from brevitas_plugins.core.quant import (
    BinaryQuant,
    ClampedBinaryQuant,
    ClampQuant,
    IntQuant,
    RescalingIntQuant,
    TernaryQuant,
    TruncIntQuant,
)

SETTINGS = settings(max_examples=60, deadline=None)


class _SlowRoundSte(RoundSte):
    """Same rounding as RoundSte, but not the exact type: forces IntQuant's unfused path."""


def _int_quant_inputs(seed: int, bit_width: int, signed: bool, per_channel: bool, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    shape = (3, 1) if per_channel else ()
    scale = (torch.rand(shape, generator=gen, dtype=dtype) + 0.1) / 2 ** (bit_width - 1)
    if signed:
        zero_point = torch.zeros(shape, dtype=dtype)
    else:
        zero_point = torch.randint(0, 2 ** (bit_width - 1) + 1, shape, generator=gen).to(dtype)
    x = torch.randn(3, 20, generator=gen, dtype=dtype) * 2 ** (bit_width - 1) * scale * 1.5
    return x, scale, zero_point, torch.tensor(float(bit_width), dtype=dtype)


# --------------------------------------------------------------------------- registration


def test_register_adds_the_contract_names() -> None:
    reg = Registry()
    float_to_int_module.register(reg)
    bit_width_module.register(reg)
    quant_module.register(reg)
    assert reg.names("float_to_int") == ["ceil", "dpu", "floor", "round", "round_to_zero"]
    assert reg.get("float_to_int", "ROUND") is RoundSte and reg.get("float_to_int", "dpu") is DPURoundSte
    assert reg.get("bit_width", "const") is BitWidthConst
    assert reg.get("bit_width", "parameter") is BitWidthParameter
    int_entry = reg.get("tensor_quant", "int")
    assert isinstance(int_entry, ByRole)
    assert int_entry.resolve("weight") is RescalingIntQuant and int_entry.resolve("trunc") is TruncIntQuant
    binary = reg.get("tensor_quant", "binary")
    assert binary.resolve("weight") is BinaryQuant and binary.resolve("act") is ClampedBinaryQuant
    assert reg.get("tensor_quant", "ternary") is TernaryQuant
    assert reg.get("tensor_quant", "fp") is None


# --------------------------------------------------------------------------- float_to_int


@pytest.mark.parametrize(
    ("cls", "mode", "reference"),
    [
        (RoundSte, "ROUND", torch.round),
        (CeilSte, "CEIL", torch.ceil),
        (FloorSte, "FLOOR", torch.floor),
        (RoundToZeroSte, "ROUND_TO_ZERO", torch.trunc),
        (DPURoundSte, "DPU", lambda t: torch.floor(t + 0.5)),
    ],
)
def test_float_to_int_blocks(cls, mode, reference) -> None:
    block = cls()
    assert isinstance(block, FloatToInt) and block.rounding_mode == mode
    x = (torch.randint(-20, 20, (40,)) / 4.0).double().requires_grad_()
    y = block(x)
    assert torch.equal(y.detach(), reference(x.detach()))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def test_tensor_clamp_blocks_differ_only_in_gradient() -> None:
    x1 = torch.tensor([-3.0, 0.0, 3.0], requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    lo, hi = torch.tensor(-1.0), torch.tensor(1.0)
    y1, y2 = TensorClamp()(x1, lo, hi), TensorClampSte()(x2, lo, hi)
    assert torch.equal(y1, y2)
    y1.sum().backward()
    y2.sum().backward()
    assert torch.equal(x1.grad, torch.tensor([0.0, 1.0, 0.0]))
    assert torch.equal(x2.grad, torch.ones(3))


# --------------------------------------------------------------------------- IntQuant


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    bit_width=st.integers(1, 16),
    signed=st.booleans(),
    narrow=st.booleans(),
    per_channel=st.booleans(),
)
def test_int_quant_output_is_on_grid_in_range_and_idempotent(
    seed: int, bit_width: int, signed: bool, narrow: bool, per_channel: bool
) -> None:
    x, scale, zero_point, b = _int_quant_inputs(seed, bit_width, signed, per_channel)
    iq = IntQuant(RoundSte(), TensorClamp(), signed=signed, narrow_range=narrow)
    y = iq(scale, zero_point, b, x)
    # y = (q - zp) * scale carries one float32 rounding: |error of y / scale| <= |q - zp| * eps
    shifted = y.double() / scale.double()
    code = shifted + zero_point.double()
    tolerance = (shifted.abs() + 1) * 2 * torch.finfo(torch.float32).eps
    assert torch.all((code - torch.round(code)).abs() <= tolerance)
    assert torch.all(torch.round(code) >= min_int(signed, narrow, b))
    assert torch.all(torch.round(code) <= max_int(signed, narrow, b))
    assert torch.equal(iq.to_int(scale, zero_point, b, x).double(), torch.round(code))
    # quantizing a quantized tensor with the same grid changes nothing
    assert torch.equal(iq(scale, zero_point, b, y), y)


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    bit_width=st.integers(1, 16),
    signed=st.booleans(),
    narrow=st.booleans(),
    per_channel=st.booleans(),
)
def test_int_quant_fused_path_equals_composition(
    seed: int, bit_width: int, signed: bool, narrow: bool, per_channel: bool
) -> None:
    values = _int_quant_inputs(seed, bit_width, signed, per_channel, dtype=torch.float64)
    x, scale, zero_point, b = values
    fast = IntQuant(RoundSte(), TensorClamp(), signed=signed, narrow_range=narrow)
    slow = IntQuant(_SlowRoundSte(), TensorClamp(), signed=signed, narrow_range=narrow)
    fast_in = [t.clone().requires_grad_() for t in (scale, zero_point, b, x)]
    slow_in = [t.clone().requires_grad_() for t in (scale, zero_point, b, x)]
    y_fast, y_slow = fast(*fast_in), slow(*slow_in)
    assert torch.equal(y_fast.detach(), y_slow.detach())
    g = torch.randn(y_fast.shape, dtype=torch.float64)
    for got, ref in zip(torch.autograd.grad(y_fast, fast_in, g), torch.autograd.grad(y_slow, slow_in, g)):
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("float_to_int_impl", [RoundSte, _SlowRoundSte])
def test_int_quant_gradient_passes_inside_range_and_is_blocked_outside(float_to_int_impl) -> None:
    iq = IntQuant(float_to_int_impl(), TensorClamp(), signed=True, narrow_range=False)
    x = torch.tensor([-9.0, -8.2, -0.3, 0.6, 7.2, 7.6, 20.0], requires_grad=True)
    y = iq(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(4.0), x)  # range [-8, 7]
    assert torch.equal(y.detach(), torch.tensor([-8.0, -8.0, -0.0, 1.0, 7.0, 7.0, 7.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]))


def test_int_quant_uses_its_rounding() -> None:
    iq = IntQuant(FloorSte(), TensorClamp(), signed=True, narrow_range=False)
    y = iq(torch.tensor(1.0), torch.tensor(0.0), torch.tensor(8.0), torch.tensor([0.9, -0.1]))
    assert torch.equal(y, torch.tensor([0.0, -1.0])) and iq.rounding_mode == "FLOOR"


# --------------------------------------------------------------------------- RescalingIntQuant


def _rescaling(bit_width_impl, signed=True, narrow=True, threshold=2.0):
    return RescalingIntQuant(
        int_quant=IntQuant(RoundSte(), TensorClamp(), signed=signed, narrow_range=narrow),
        scaling_impl=ConstScaling(threshold),
        int_scaling_impl=IntScaling(signed=signed, narrow_range=narrow),
        zero_point_impl=ZeroZeroPoint(),
        bit_width_impl=bit_width_impl,
    )


@SETTINGS
@given(bit_width=st.integers(2, 16), signed=st.booleans(), narrow=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_rescaling_int_quant_scale_is_threshold_over_int_range(bit_width, signed, narrow, seed) -> None:
    q = _rescaling(BitWidthConst(bit_width), signed=signed, narrow=narrow, threshold=2.0)
    assert isinstance(q, TensorQuant)
    x = torch.randn(50, generator=torch.Generator().manual_seed(seed)) * 3
    y, scale, zero_point, b = q(x)
    divisor = IntScaling(signed, narrow)(b)
    assert float(b) == bit_width and float(zero_point) == 0.0
    assert torch.allclose(scale, 2.0 / divisor)
    assert torch.all(y.abs() <= 2.0 + 1e-5)
    if not signed:
        assert torch.all(y >= 0)


@pytest.mark.parametrize("signed", [True, False])
def test_rescaling_int_quant_refuses_one_bit_narrow_range(signed: bool) -> None:
    with pytest.raises(ConfigError, match="only the value 0.*BINARY"):
        _rescaling(BitWidthConst(1), signed=signed, narrow=True)
    with pytest.raises(ConfigError, match="min_overall_bit_width"):
        _rescaling(BitWidthParameter(bit_width=4, min_overall_bit_width=1), signed=signed, narrow=True)


def test_rescaling_int_quant_one_bit_signed_wide_range_works() -> None:
    y, scale, _, _ = _rescaling(BitWidthConst(1), signed=True, narrow=False)(torch.tensor([-5.0, -0.5, 0.2, 5.0]))
    assert float(scale) == 2.0 and torch.equal(y, torch.tensor([-2.0, -0.0, 0.0, 0.0]))


def test_rescaling_int_quant_has_no_graph_break() -> None:
    q = _rescaling(BitWidthParameter(bit_width=4))
    explanation = torch._dynamo.explain(q)(torch.randn(8))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


# --------------------------------------------------------------------------- bit-width blocks


def test_bit_width_parameter_gets_gradient_and_never_goes_below_minimum() -> None:
    bw = BitWidthParameter(bit_width=3, min_overall_bit_width=2)
    assert isinstance(bw, BitWidthImpl) and float(bw().detach()) == 3.0
    assert "bit_width_offset" in dict(bw.named_parameters())
    optimizer = torch.optim.SGD(bw.parameters(), lr=0.4)
    seen = []
    for _ in range(20):  # push the bit-width down as hard as possible
        optimizer.zero_grad()
        out = bw()
        out.backward()
        assert bw.bit_width_offset.grad is not None and float(bw.bit_width_offset.grad) != 0.0
        optimizer.step()
        seen.append(float(bw().detach()))
    assert min(seen) >= 2.0 and all(v == round(v) for v in seen)


def test_bit_width_parameter_starting_at_minimum_can_grow() -> None:
    bw = BitWidthParameter(bit_width=2, min_overall_bit_width=2)
    (-bw()).backward()  # a loss that wants more bits
    assert float(bw.bit_width_offset.grad) == -1.0


def test_bit_width_parameter_respects_maximum_and_validates() -> None:
    bw = BitWidthParameter(bit_width=6, min_overall_bit_width=2, max_overall_bit_width=6)
    with torch.no_grad():
        bw.bit_width_offset.fill_(10.0)
    out = bw()
    out.backward()
    assert float(out.detach()) == 6.0 and float(bw.bit_width_offset.grad) == 1.0
    with pytest.raises(ConfigError, match="between 4 and 32"):
        BitWidthParameter(bit_width=3, min_overall_bit_width=4)
    with pytest.raises(ConfigError, match="between 2 and 5"):
        BitWidthParameter(bit_width=8, max_overall_bit_width=5)
    with pytest.raises(ConfigError, match="integer"):
        BitWidthParameter(bit_width=4.5)


def test_bit_width_parameter_state_dict_round_trip() -> None:
    a, b = BitWidthParameter(bit_width=5), BitWidthParameter(bit_width=8)
    b.load_state_dict(a.state_dict())
    assert float(b().detach()) == 5.0


@SETTINGS
@given(bit_width=st.integers(1, 16), offset=st.integers(-4, 8))
def test_offset_bit_width_and_int_scaling(bit_width: int, offset: int) -> None:
    b = torch.tensor(float(bit_width))
    assert float(OffsetBitWidth(offset)(b)) == bit_width + offset
    assert int(IntScaling(True, False)(b)) == 2 ** (bit_width - 1)
    assert int(IntScaling(True, True)(b)) == 2 ** (bit_width - 1) - 1
    assert int(IntScaling(False, False)(b)) == 2**bit_width - 1
    assert int(IntScaling(False, True)(b)) == 2**bit_width - 2


def test_offset_bit_width_rejects_fractional_offset() -> None:
    with pytest.raises(ConfigError, match="offset"):
        OffsetBitWidth(1.5)


# --------------------------------------------------------------------------- binary and ternary


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), per_channel=st.booleans())
def test_binary_quant_values(seed: int, per_channel: bool) -> None:
    gen = torch.Generator().manual_seed(seed)
    threshold = torch.rand((3, 1) if per_channel else (), generator=gen) + 0.1
    x = torch.randn(3, 10, generator=gen)
    x[0, 0] = 0.0
    y, scale, zero_point, b = BinaryQuant(ConstScaling(threshold))(x)
    assert torch.equal(y, torch.where(x >= 0, scale, -scale).expand_as(x))
    assert float(b) == 1.0 and float(zero_point) == 0.0
    assert float(y[0, 0]) > 0


def test_clamped_binary_quant_blocks_gradient_outside_scale() -> None:
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)
    y, _, _, b = ClampedBinaryQuant(ConstScaling(1.0), TensorClamp())(x)
    assert torch.equal(y.detach(), torch.tensor([-1.0, -1.0, 1.0, 1.0, 1.0])) and float(b) == 1.0
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))
    x2 = x.detach().clone().requires_grad_()
    BinaryQuant(ConstScaling(1.0))(x2)[0].sum().backward()
    assert torch.equal(x2.grad, torch.ones(5))


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), threshold=st.floats(0.0, 1.0))
def test_ternary_quant_values(seed: int, threshold: float) -> None:
    x = torch.randn(40, generator=torch.Generator().manual_seed(seed)) * 2
    y, scale, zero_point, b = TernaryQuant(ConstScaling(1.5), threshold=threshold)(x)
    t = threshold * 1.5
    expected = 1.5 * (x > t).float() - 1.5 * (x < -t).float()
    assert torch.equal(y, expected)
    assert set(y.unique().tolist()) <= {-1.5, 0.0, 1.5}
    assert float(b) == 2.0 and float(zero_point) == 0.0 and float(scale) == 1.5


@pytest.mark.parametrize("threshold", [-0.1, float("nan"), "0.5", True])
def test_ternary_quant_validates_threshold(threshold) -> None:
    with pytest.raises(ConfigError, match="threshold"):
        TernaryQuant(ConstScaling(1.0), threshold=threshold)


# --------------------------------------------------------------------------- truncation and saturation


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    input_bit_width=st.integers(2, 16),
    drop=st.integers(0, 15),
    signed=st.booleans(),
    per_channel=st.booleans(),
)
def test_trunc_int_quant_drops_lsbs(seed, input_bit_width, drop, signed, per_channel) -> None:
    drop = min(drop, input_bit_width - 1)
    output_bit_width = input_bit_width - drop
    gen = torch.Generator().manual_seed(seed)
    b_in = torch.tensor(float(input_bit_width), dtype=torch.float64)
    lo, hi = int(min_int(signed, False, b_in)), int(max_int(signed, False, b_in))
    codes = torch.randint(lo, hi + 1, (3, 16), generator=gen).double()
    scale = torch.rand((3, 1) if per_channel else (), generator=gen, dtype=torch.float64) + 0.01
    x = codes * scale
    trunc = TruncIntQuant(FloorSte(), BitWidthConst(output_bit_width))
    assert isinstance(trunc, TruncQuant) and trunc.rounding_mode == "FLOOR"
    y, out_scale, out_zero_point, out_b = trunc(x, scale, torch.zeros((), dtype=torch.float64), b_in)
    expected_codes = torch.floor(codes / 2**drop)
    assert float(out_b) == output_bit_width
    torch.testing.assert_close(out_scale, scale * 2**drop)
    assert float(out_zero_point) == 0.0
    out_codes = y / out_scale
    torch.testing.assert_close(out_codes, expected_codes)
    b_out = torch.tensor(float(output_bit_width))
    assert torch.all(expected_codes >= min_int(signed, False, b_out))
    assert torch.all(expected_codes <= max_int(signed, False, b_out))


def test_trunc_int_quant_keeps_narrower_input_unchanged_and_passes_gradient() -> None:
    trunc = TruncIntQuant(FloorSte(), BitWidthConst(8))
    x = torch.tensor([-3.0, 1.0, 5.0], requires_grad=True)
    y, scale, _, b = trunc(x, torch.tensor(1.0), torch.tensor(0.0), torch.tensor(4.0))
    assert torch.equal(y.detach(), x.detach()) and float(scale) == 1.0 and float(b) == 4.0
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))


def test_clamp_quant_saturates_and_keeps_scale() -> None:
    clamp = ClampQuant(BitWidthConst(4), TensorClamp(), signed=False, narrow_range=False)
    scale = torch.tensor(0.5)
    x = torch.tensor([-1.0, 2.0, 7.5, 10.0], requires_grad=True)  # codes -2, 4, 15, 20
    y, out_scale, out_zero_point, b = clamp(x, scale, torch.tensor(0.0), torch.tensor(12.0))
    assert torch.equal(y.detach(), torch.tensor([0.0, 2.0, 7.5, 7.5]))
    assert out_scale is scale and float(b) == 4.0 and float(out_zero_point) == 0.0
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 0.0]))
    with pytest.raises(ConfigError, match="only the value 0"):
        ClampQuant(BitWidthConst(1), TensorClamp(), signed=True, narrow_range=True)
