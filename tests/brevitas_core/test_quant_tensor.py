"""Tests of brevitas.quant_tensor: metadata that stays true through arithmetic and torch functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from brevitas.errors import QuantTensorError
from brevitas.function import max_int, min_int
from brevitas.quant_tensor import QuantTensor, _unpack, to_tensor
from brevitas.quant_tensor.torch_handler import QUANT_TENSOR_FN_HANDLER

SETTINGS = settings(max_examples=60, deadline=None)

bit_widths = st.integers(2, 16)
scales = st.floats(1e-3, 10.0, allow_nan=False, allow_infinity=False)


def int_range(bit_width: int, signed: bool, narrow: bool) -> tuple[int, int]:
    bw = torch.tensor(float(bit_width))
    return int(min_int(signed, narrow, bw)), int(max_int(signed, narrow, bw))


def grid_ints(bit_width: int, signed: bool, narrow: bool, seed: int, n: int = 32) -> torch.Tensor:
    """Integers of the range, its two extremes included, as float."""
    low, high = int_range(bit_width, signed, narrow)
    g = torch.Generator().manual_seed(seed)
    ints = torch.randint(low, high + 1, (n,), generator=g).float()
    ints[0], ints[1] = low, high
    return ints


def make_qt(
    ints: torch.Tensor,
    scale: float | torch.Tensor,
    zero_point: float | torch.Tensor,
    bit_width: int,
    signed: bool,
    narrow: bool = False,
    training: bool | None = False,
) -> QuantTensor:
    s = torch.as_tensor(scale, dtype=torch.float32)
    z = torch.as_tensor(zero_point, dtype=torch.float32)
    return QuantTensor((ints - z) * s, s, z, torch.tensor(float(bit_width)), signed, narrow, training)


def assert_same_values(result: object, expected: torch.Tensor) -> None:
    assert torch.equal(to_tensor(result), expected)


# --------------------------------------------------------------------------- construction and .int()


@SETTINGS
@given(
    bit_width=bit_widths,
    signed=st.booleans(),
    narrow=st.booleans(),
    scale=scales,
    zp_frac=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_int_recovers_the_integers_exactly(
    bit_width: int, signed: bool, narrow: bool, scale: float, zp_frac: float, seed: int
) -> None:
    low, high = int_range(bit_width, signed, narrow)
    zero_point = float(round(low + zp_frac * (high - low)))
    ints = grid_ints(bit_width, signed, narrow, seed)
    q = make_qt(ints, scale, zero_point, bit_width, signed, narrow)
    assert torch.equal(q.int(), ints.to(torch.int64))
    assert torch.equal(q.int(float_datatype=True), ints)
    assert q.check_is_valid() is q


def test_validity_and_accessors() -> None:
    q = QuantTensor(torch.ones(2, 3), 0.5, 0.0, 8, signed=True, training=False)
    assert q.is_valid and q.is_not_none
    assert q.tensor is q.value and q.shape == (2, 3) and q.size() == (2, 3) and q.size(1) == 3
    assert q.dim() == 2 and q.ndim == 2 and q.numel() == 6 and len(q) == 2
    assert q.dtype == torch.float32 and q.device == q.value.device
    assert isinstance(q.scale, torch.Tensor) and float(q.scale) == 0.5  # numbers become tensors
    plain = QuantTensor(torch.ones(2), training=True)
    assert not plain.is_valid and plain.training is True
    with pytest.raises(QuantTensorError, match="needs a valid QuantTensor, but this one has no scale"):
        plain.int()


def test_construction_errors_say_what_to_write() -> None:
    with pytest.raises(QuantTensorError, match="must be a torch.Tensor"):
        QuantTensor([1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(QuantTensorError, match=r"signed must be a Python bool .*signed=bool\(\.\.\.\)"):
        QuantTensor(torch.ones(1), 1.0, 0.0, 8, signed=torch.tensor(True))  # type: ignore[arg-type]
    with pytest.raises(QuantTensorError, match="unknown field"):
        QuantTensor(torch.ones(1)).replace(bits=3)


def test_from_tuple_and_to_tensor() -> None:
    out = (torch.tensor([0.5, -1.0]), torch.tensor(0.5), torch.tensor(0.0), torch.tensor(4.0))
    q = QuantTensor.from_tuple(*out, True, False, False)
    assert q.is_valid and q.signed is True and q.narrow_range is False and q.training is False
    assert q.int().tolist() == [1, -2]
    assert to_tensor(q) is out[0] and _unpack(q) is out[0]
    t = torch.zeros(1)
    assert to_tensor(t) is t


def test_metadata_follows_the_value_device(device: torch.device) -> None:
    q = QuantTensor(torch.tensor([[1.0, -0.5]], device=device), 0.5, 0.0, 4, signed=True, training=False)
    assert q.scale.device == q.value.device  # numbers become tensors next to the value
    for y in (q + q, q * q, -q, abs(q), q * 2, torch.cat([q, q]), q.flatten(), F.relu(q)):
        assert y.scale.device == q.value.device and y.bit_width.device == q.value.device
        y.check_is_valid()


def test_check_is_valid_explains_violations() -> None:
    with pytest.raises(QuantTensorError, match=r"off the grid .* gives value / scale \+ zero_point = 1\.5"):
        QuantTensor(torch.tensor([0.0, 0.75]), 0.5, 0.0, 4, signed=False).check_is_valid()
    with pytest.raises(QuantTensorError, match=r"outside the 4-bit signed narrow range \[-7, 7\]"):
        QuantTensor(torch.tensor([-4.0]), 0.5, 0.0, 4, signed=True, narrow_range=True).check_is_valid()
    with pytest.raises(QuantTensorError, match="scale must be positive"):
        QuantTensor(torch.tensor([0.0]), -0.5, 0.0, 4, signed=True).check_is_valid()
    with pytest.raises(QuantTensorError, match="zero_point .* is outside"):
        QuantTensor(torch.tensor([0.0]), 0.5, -1.0, 4, signed=False).check_is_valid()


def test_detach_to_and_cpu_keep_metadata() -> None:
    s = torch.tensor(0.5, requires_grad=True)
    q = QuantTensor(torch.tensor([1.0]) * s, s, torch.tensor(0.0), torch.tensor(8.0), True, False, True)
    d = q.detach()
    assert not d.value.requires_grad and not d.scale.requires_grad and d.training is True
    h = q.to(torch.float64)
    assert isinstance(h, QuantTensor) and h.value.dtype == torch.float64 and h.scale.dtype == torch.float64
    assert isinstance(q.to(torch.int32), torch.Tensor)  # integers carry no scale
    assert q.cpu().scale.device.type == "cpu"


# --------------------------------------------------------------------------- addition


@SETTINGS
@given(
    b1=bit_widths,
    b2=bit_widths,
    s1=st.booleans(),
    s2=st.booleans(),
    scale=scales,
    seed=st.integers(0, 2**16),
)
def test_add_in_eval_stays_on_the_grid_and_sizes_the_bit_width(
    b1: int, b2: int, s1: bool, s2: bool, scale: float, seed: int
) -> None:
    i1 = grid_ints(b1, s1, False, seed)
    i2 = grid_ints(b2, s2, False, seed + 1)
    # Both extremes meet each other: the sum reaches the ends of its range.
    i2[0], i2[1] = int_range(b2, s2, False)
    y = make_qt(i1, scale, 0.0, b1, s1) + make_qt(i2, scale, 0.0, b2, s2)
    assert isinstance(y, QuantTensor) and y.is_valid
    assert y.signed == (s1 or s2) and y.training is False
    widened = [b + (1 if (s1 or s2) and not s else 0) for b, s in ((b1, s1), (b2, s2))]
    assert int(y.bit_width) == max(widened) + 1
    if s1 == s2:
        assert int(y.bit_width) == max(b1, b2) + 1
    assert torch.equal(y.int(), (i1 + i2).to(torch.int64))
    y.check_is_valid()  # the sum fits the bit-width


def test_add_mixed_signedness_needs_more_than_max_plus_one() -> None:
    i1 = torch.tensor([-128.0, 127.0])
    i2 = torch.tensor([255.0, 255.0])
    y = make_qt(i1, 0.1, 0.0, 8, True) + make_qt(i2, 0.1, 0.0, 8, False)
    assert int(y.bit_width) == 10  # 127 + 255 = 382 does not fit 9 signed bits
    y.check_is_valid()


def test_add_with_equal_zero_points_adds_them() -> None:
    i = torch.tensor([0.0, 3.0, 15.0])
    a = make_qt(i, 0.25, 3.0, 4, signed=False)
    y = a + make_qt(i, 0.25, 3.0, 4, signed=False)
    assert float(y.zero_point) == 6.0 and torch.equal(y.int(), (2 * i).to(torch.int64))
    y.check_is_valid()


def test_add_in_eval_with_different_scales_names_both() -> None:
    a = make_qt(torch.tensor([1.0]), 0.125, 0.0, 8, True)
    b = make_qt(torch.tensor([1.0]), 0.375, 0.0, 8, True)
    with pytest.raises(QuantTensorError, match=r"scale 0\.125 .*scale 0\.375.*shared quantizer"):
        a + b
    c = make_qt(torch.tensor([1.0]), 0.125, 1.0, 8, True)
    with pytest.raises(QuantTensorError, match=r"zero_point 0 .*zero_point 1 "):
        a + c


def test_add_in_training_with_different_scales_is_non_valid() -> None:
    i = torch.tensor([1.0, -2.0])
    a = make_qt(i, 0.125, 0.0, 8, True, training=True)
    b = make_qt(i, 0.375, 0.0, 8, True, training=True)
    y = a + b
    assert isinstance(y, QuantTensor) and not y.is_valid and y.training is True
    assert torch.equal(y.value, a.value + b.value)
    same = a + make_qt(i, 0.125, 0.0, 8, True, training=True)
    assert same.is_valid and int(same.bit_width) == 9


def test_add_with_plain_operands_falls_back() -> None:
    a = make_qt(torch.tensor([1.0, 2.0]), 0.5, 0.0, 8, True)
    t = torch.tensor([0.1, 0.2])
    for result in (a + t, t + a, a + 1.0, 1.0 + a, a - t, t - a):
        assert type(result) is torch.Tensor
    assert torch.equal(t + a, t + a.value)
    nv = a + QuantTensor(torch.ones(2))
    assert isinstance(nv, QuantTensor) and not nv.is_valid


def test_sub_is_add_of_the_negation() -> None:
    i = torch.tensor([-8.0, 7.0, 0.0])
    a = make_qt(i, 0.5, 0.0, 4, True)
    y = a - make_qt(i.flip(0), 0.5, 0.0, 4, True)
    assert torch.equal(y.int(), (i - i.flip(0)).to(torch.int64))
    y.check_is_valid()


# --------------------------------------------------------------------------- multiplication, division


@SETTINGS
@given(
    b1=bit_widths, b2=bit_widths, s1=st.booleans(), s2=st.booleans(), sc1=scales, sc2=scales, seed=st.integers(0, 999)
)
def test_mul_multiplies_scales_and_adds_bit_widths(
    b1: int, b2: int, s1: bool, s2: bool, sc1: float, sc2: float, seed: int
) -> None:
    b1, b2 = min(b1, 8), min(b2, 8)  # 16-bit products: float32 noise stays far below 0.5
    i1 = grid_ints(b1, s1, False, seed)
    i2 = grid_ints(b2, s2, False, seed + 1)
    i2[0], i2[1] = int_range(b2, s2, False)
    a, b = make_qt(i1, sc1, 0.0, b1, s1), make_qt(i2, sc2, 0.0, b2, s2)
    y = a * b
    assert isinstance(y, QuantTensor)
    assert torch.allclose(y.scale, a.scale * b.scale)
    assert int(y.bit_width) == b1 + b2 and y.signed == (s1 or s2)
    assert torch.equal(y.int(), (i1 * i2).to(torch.int64))
    y.check_is_valid()


def test_mul_with_non_zero_zero_point_falls_back() -> None:
    a = make_qt(torch.tensor([1.0, 2.0]), 0.5, 1.0, 4, False)
    b = make_qt(torch.tensor([1.0, 2.0]), 0.5, 0.0, 4, False)
    y = a * b
    assert type(y) is torch.Tensor and torch.equal(y, a.value * b.value)


def test_mul_and_div_by_numbers_move_the_scale() -> None:
    i = torch.tensor([-3.0, 0.0, 5.0])
    a = make_qt(i, 0.5, 0.0, 4, True)
    for y, scale in ((a * 4, 2.0), (3 * a, 1.5), (a / 2, 0.25)):
        assert isinstance(y, QuantTensor) and float(y.scale) == scale
        assert torch.equal(y.int(), i.to(torch.int64))
    neg = a * -2
    assert float(neg.scale) == 1.0 and torch.equal(neg.int(), (-i).to(torch.int64))
    neg.check_is_valid()
    assert type(a * torch.tensor(2.0)) is torch.Tensor
    assert type(a / a) is torch.Tensor  # a quotient of grids is not a grid
    assert type(a * 0) is torch.Tensor


# --------------------------------------------------------------------------- negation, abs


@SETTINGS
@given(bit_width=bit_widths, signed=st.booleans(), narrow=st.booleans(), zp_frac=st.floats(0, 1), seed=st.integers())
def test_neg_and_abs_keep_true_metadata(bit_width: int, signed: bool, narrow: bool, zp_frac: float, seed: int) -> None:
    low, high = int_range(bit_width, signed, narrow)
    zero_point = float(round(low + zp_frac * (high - low)))
    ints = grid_ints(bit_width, signed, narrow, seed % 2**16)
    q = make_qt(ints, 0.25, zero_point, bit_width, signed, narrow)
    n = -q
    assert n.signed is True and torch.equal(n.value, -q.value)
    assert int(n.bit_width) == (bit_width if signed and narrow else bit_width + 1)
    assert torch.equal(n.int(), (-ints).to(torch.int64))
    n.check_is_valid()
    a = abs(q)
    assert a.signed is False and int(a.bit_width) == bit_width and float(a.zero_point) == 0.0
    assert torch.equal(a.int(), (ints - zero_point).abs().to(torch.int64))
    a.check_is_valid()
    assert torch.abs(q).bit_width is not None and torch.neg(q).signed is True


# --------------------------------------------------------------------------- cat


def test_cat_in_eval_keeps_equal_metadata() -> None:
    a = make_qt(grid_ints(4, True, False, 0).view(2, 16), 0.5, 0.0, 4, True)
    b = make_qt(grid_ints(6, False, False, 1).view(2, 16), 0.5, 0.0, 6, False)
    y = torch.cat([a, b], dim=1)
    assert isinstance(y, QuantTensor) and y.signed is True and int(y.bit_width) == 7
    assert torch.equal(y.value, torch.cat([a.value, b.value], 1))
    y.check_is_valid()
    assert QuantTensor.cat([a, a], dim=0).shape == (4, 16)


def test_cat_in_eval_with_different_scales_raises() -> None:
    a = make_qt(torch.tensor([1.0]), 0.5, 0.0, 4, True)
    b = make_qt(torch.tensor([1.0]), 0.25, 0.0, 4, True)
    with pytest.raises(QuantTensorError, match=r"scales 0\.5 \(shape \(\)\), 0\.25"):
        torch.cat([a, b])


def test_cat_in_training_with_different_scales_is_non_valid() -> None:
    a = make_qt(torch.tensor([1.0]), 0.5, 0.0, 4, True, training=True)
    b = make_qt(torch.tensor([1.0]), 0.25, 0.0, 4, True, training=True)
    y = torch.cat([a, b])
    assert isinstance(y, QuantTensor) and not y.is_valid and y.training is True
    assert torch.equal(y.value, torch.tensor([0.5, 0.25]))


def test_cat_along_per_channel_metadata_concatenates_it() -> None:
    sa, sb = torch.tensor([0.5, 0.25]).view(1, 2, 1), torch.tensor([0.125]).view(1, 1, 1)
    a = make_qt(grid_ints(4, True, False, 0).view(2, 2, 8), sa, 0.0, 4, True)
    b = make_qt(grid_ints(4, True, False, 1).view(2, 1, 16)[..., :8], sb, 0.0, 4, True)
    y = torch.cat([a, b], dim=1)
    assert y.scale.shape == (1, 3, 1) and torch.equal(y.scale.flatten(), torch.tensor([0.5, 0.25, 0.125]))
    y.check_is_valid()


def test_cat_with_a_plain_tensor_is_plain() -> None:
    a = make_qt(torch.tensor([1.0]), 0.5, 0.0, 4, True)
    assert type(torch.cat([a, torch.ones(1)])) is torch.Tensor


# --------------------------------------------------------------------------- functions that keep metadata


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: F.relu(x),
        lambda x: torch.relu(x),
        lambda x: F.max_pool2d(x, 2),
        lambda x: F.max_pool2d(x, 3, stride=1, padding=1),
        lambda x: nn.MaxPool2d(2)(x),
        lambda x: F.adaptive_max_pool2d(x, 1),
        lambda x: torch.flatten(x, 1),
        lambda x: x.flatten(1),
        lambda x: nn.Flatten()(x),
        lambda x: x.view(2, -1),
        lambda x: x.reshape(-1),
        lambda x: x.transpose(1, 3),
        lambda x: x.permute(0, 2, 3, 1),
        lambda x: x.contiguous(),
        lambda x: x[:, 1:],
        lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
        lambda x: F.dropout(x, 0.5, training=False),
        lambda x: F.pad(x, (1, 1)),
        lambda x: torch.unsqueeze(x, 0),
    ],
)
def test_functions_keep_per_tensor_metadata_and_match_torch(fn: Callable[[Any], Any]) -> None:
    ints = grid_ints(5, True, False, 3, n=2 * 3 * 4 * 4).view(2, 3, 4, 4)
    q = make_qt(ints, 0.3, 0.0, 5, True)
    y = fn(q)
    assert isinstance(y, QuantTensor) and y.is_valid
    assert y.scale is q.scale and y.bit_width is q.bit_width and y.signed is True
    assert torch.equal(y.value, fn(q.value))
    y.check_is_valid()


def test_max_pool_with_indices_wraps_the_values() -> None:
    q = make_qt(grid_ints(4, False, False, 0).view(1, 2, 4, 4), 0.5, 0.0, 4, False)
    values, indices = F.max_pool2d(q, 2, return_indices=True)
    assert isinstance(values, QuantTensor) and indices.dtype == torch.int64


def test_per_channel_metadata_kept_where_constant_and_dropped_where_not() -> None:
    scale = torch.tensor([0.5, 0.25, 0.125]).view(1, 3, 1, 1)
    q = make_qt(grid_ints(4, True, False, 0, n=96).view(2, 3, 4, 4), scale, 0.0, 4, True)
    for y in (F.max_pool2d(q, 2), F.relu(q), F.avg_pool2d(q, 2), q.flatten(2), q.permute(0, 2, 3, 1)):
        assert isinstance(y, QuantTensor) and y.is_valid
        y.check_is_valid()
    # Flattening channels and pixels together, reshaping or indexing would need a new scale layout.
    for y in (q.flatten(1), torch.flatten(q, 1), q.reshape(2, -1), q[0], torch.reshape(q, (-1,))):
        assert type(y) is torch.Tensor
    pixel = make_qt(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2), 0.0, 4, True)
    assert type(F.max_pool2d(pixel, 2)) is torch.Tensor  # per-element scale mixed by pooling


def test_dropout_in_training_rescales_the_scale() -> None:
    torch.manual_seed(0)
    ints = grid_ints(4, True, False, 0, n=64)
    q = make_qt(ints, 0.5, 0.0, 4, True, training=True)
    y = F.dropout(q, 0.25, training=True)
    assert isinstance(y, QuantTensor) and torch.allclose(y.scale, torch.tensor(0.5 / 0.75))
    kept = y.value != 0
    assert torch.equal(y.int()[kept], ints.to(torch.int64)[kept]) and bool((~kept).any())
    y.check_is_valid()
    assert type(F.dropout(q, 1.0, training=True)) is torch.Tensor


# --------------------------------------------------------------------------- average pooling


@SETTINGS
@given(
    bit_width=st.integers(2, 12),
    signed=st.booleans(),
    kernel=st.integers(1, 4),
    zp_frac=st.floats(0, 1),
    seed=st.integers(0, 999),
)
def test_avg_pool_is_an_exact_accumulator(bit_width: int, signed: bool, kernel: int, zp_frac: float, seed: int) -> None:
    low, high = int_range(bit_width, signed, False)
    zero_point = float(round(low + zp_frac * (high - low)))
    ints = grid_ints(bit_width, signed, False, seed, n=2 * 8 * 8).view(1, 2, 8, 8)
    ints[..., :kernel, :kernel] = high  # a window at the top of the range
    q = make_qt(ints, 0.5, zero_point, bit_width, signed)
    y = F.avg_pool2d(q, kernel)
    k = kernel * kernel
    assert torch.allclose(y.scale, torch.tensor(0.5 / k))
    # the smallest full-range width holding [k * low, k * high]: b + ceil(log2(k)) when signed,
    # bit_length(k * high) when unsigned (one less than b + ceil(log2(k)) for e.g. 2 bits over 3x3)
    expected_bits = bit_width + (k - 1).bit_length() if signed else (k * high).bit_length()
    assert int(y.bit_width) == expected_bits
    window_sums = F.avg_pool2d(ints, kernel, divisor_override=1)
    assert torch.equal(y.int(), window_sums.to(torch.int64))
    assert torch.equal(y.value, F.avg_pool2d(q.value, kernel))
    y.check_is_valid()


def test_adaptive_avg_pool_uniform_windows_only() -> None:
    q = make_qt(grid_ints(4, False, False, 0, n=2 * 36).view(1, 2, 6, 6), 0.5, 0.0, 4, False)
    y = F.adaptive_avg_pool2d(q, (3, 1))
    assert isinstance(y, QuantTensor) and int(y.bit_width) == 4 + 4  # 2 * 6 = 12 elements
    assert torch.equal(y.int(), F.avg_pool2d(q.int().float(), (2, 6), divisor_override=1).to(torch.int64))
    y.check_is_valid()
    assert isinstance(nn.AdaptiveAvgPool2d(1)(q), QuantTensor)
    assert type(F.adaptive_avg_pool2d(q, 4)) is torch.Tensor  # 6 -> 4: windows of 2 and 3


def test_avg_pool_with_varying_divisor_falls_back() -> None:
    q = make_qt(torch.ones(1, 1, 5, 5), 0.5, 0.0, 4, False)
    assert type(F.avg_pool2d(q, 2, ceil_mode=True)) is torch.Tensor
    assert type(F.avg_pool2d(q, 3, padding=1, count_include_pad=False)) is torch.Tensor
    assert isinstance(F.avg_pool2d(q, 3, padding=1), QuantTensor)  # zero padding counted: fixed divisor
    y = F.avg_pool2d(q, 2, divisor_override=2)
    assert float(y.scale) == 0.25 and int(y.bit_width) == 6
    y.check_is_valid()


# --------------------------------------------------------------------------- fallbacks


@pytest.mark.parametrize(
    "fn",
    [
        torch.tanh,
        torch.sigmoid,
        lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
        lambda x: F.conv2d(x, torch.ones(1, 3, 1, 1)),
        lambda x: F.hardtanh(x),
        lambda x: torch.clamp(x, -1, 1),
        lambda x: x.sum(),
        lambda x: torch.max(x),
        lambda x: x**2,
        lambda x: torch.add(x, x, alpha=2),
    ],
)
def test_unhandled_functions_return_plain_tensors(fn: Callable[[Any], Any]) -> None:
    q = make_qt(grid_ints(4, True, False, 0, n=48).view(1, 3, 4, 4), 0.5, 0.0, 4, True)
    y = fn(q)
    assert type(y) is torch.Tensor
    assert torch.equal(y, fn(q.value))


def test_tensor_methods_fall_back_and_in_place_ones_are_refused() -> None:
    q = make_qt(torch.tensor([[1.0, -2.0]]), 0.5, 0.0, 4, True)
    assert type(q.mean()) is torch.Tensor and q.T.shape == (2, 1)
    with pytest.raises(AttributeError, match=r"no in-place mul_\(\).*x\.value\.mul_"):
        q.mul_(2)
    with pytest.raises(AttributeError):
        q.not_a_tensor_attribute  # noqa: B018


def test_non_valid_inputs_give_non_valid_results() -> None:
    nv = QuantTensor(torch.randn(1, 2, 4, 4), training=True)
    for y in (F.relu(nv), F.max_pool2d(nv, 2), F.avg_pool2d(nv, 2), nv.flatten(1), nv.view(-1), nv[0]):
        assert isinstance(y, QuantTensor) and not y.is_valid and y.training is True
    assert all(fn in QUANT_TENSOR_FN_HANDLER for fn in (F.relu, F.max_pool2d, torch.cat, F.avg_pool2d))


def test_handlers_fall_back_when_the_input_is_plain() -> None:
    plain = torch.tensor([-1.0, 2.0])
    for fn, args in ((F.relu, ()), (torch.flatten, ()), (torch.unsqueeze, (0,))):
        out = QUANT_TENSOR_FN_HANDLER[fn](fn, plain, *args)
        assert type(out) is torch.Tensor and torch.equal(out, fn(plain, *args))


# --------------------------------------------------------------------------- torch.compile


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten()

    def forward(self, v: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q = QuantTensor(v, scale, torch.zeros_like(scale), torch.tensor(8.0), True, False, self.training)
        q = self.pool(F.relu(q))
        q = torch.cat([q, q], dim=1)
        s = q + q
        p = q * q
        a = self.avg(s)
        f = self.flat(-a)
        return f.value, f.bit_width, a.int(), p.scale, p.bit_width, a.scale


def test_torch_compile_fullgraph_matches_eager_with_no_graph_break() -> None:
    net = _Net().eval()
    v = torch.round(torch.randn(2, 3, 8, 8) * 20) * 0.05
    scale = torch.tensor(0.05)
    explained = torch._dynamo.explain(net)(v, scale)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    compiled = torch.compile(net, fullgraph=True)
    for got, want in zip(compiled(v, scale), net(v, scale)):
        assert torch.allclose(got.float(), want.float())


def test_torch_compile_turns_data_checks_into_runtime_assertions() -> None:
    def add(v: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        a = QuantTensor(v, s1, torch.zeros_like(s1), torch.tensor(8.0), True, False, False)
        b = QuantTensor(v, s2, torch.zeros_like(s2), torch.tensor(8.0), True, False, False)
        return (a + b).value

    compiled = torch.compile(add, fullgraph=True, backend="eager")
    v = torch.ones(3)
    assert torch.equal(compiled(v, torch.tensor(0.5), torch.tensor(0.5)), 2 * v)
    with pytest.raises(RuntimeError, match="needs equal scales and zero-points"):
        compiled(v, torch.tensor(0.5), torch.tensor(0.25))
