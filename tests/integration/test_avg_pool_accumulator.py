"""Average pooling's accumulator holds every window sum: binary, ternary, narrow, signed and unsigned inputs.

The accumulator of an average pool is the sum of ``n`` integer codes of the
input; its bit-width must hold ``[n * low, n * high]`` (for binary codes
``{-1, +1}``: ``[-n, n]``, one bit more than ``bit_width + ceil(log2(n))``
gives when ``n`` is a power of two) and be the smallest that does. The
references here are computed with Python integers, independently of
:mod:`brevitas.function.ops`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brevitas.function.ops import int_bounds, sum_bit_width
from brevitas.nn import QuantAdaptiveAvgPool2d, QuantAvgPool2d, QuantIdentity
from brevitas.quant.binary import SignedBinaryActPerTensorConst
from brevitas.quant.ternary import SignedTernaryActPerTensorConst
from brevitas.quant_tensor import QuantTensor

# --------------------------------------------------------------------------- independent references


def code_range(bit_width: int, signed: bool, narrow: bool) -> tuple[int, int]:
    """The integer codes of a range, binary (1-bit signed) as ``[-1, 1]``."""
    if signed and bit_width == 1:
        return -1, 1
    if signed:
        return -(2 ** (bit_width - 1)) + int(narrow), 2 ** (bit_width - 1) - 1
    return 0, 2**bit_width - 1 - int(narrow)


def fits(low: int, high: int, bits: int, signed: bool) -> bool:
    """``[low, high]`` inside the full ``bits``-bit range."""
    if signed:
        return -(2 ** (bits - 1)) <= low and high <= 2 ** (bits - 1) - 1
    return 0 <= low and high <= 2**bits - 1


def smallest_bits(low: int, high: int, signed: bool) -> int:
    bits = 1
    while not fits(low, high, bits, signed):
        bits += 1
    return bits


#: (bit_width, signed, narrow) of every range the tests walk through: 1..8 bits, binary and ternary included
RANGES = [
    (b, signed, narrow)
    for b, signed, narrow in itertools.product(range(1, 9), (True, False), (True, False))
    if not (b == 1 and not signed and narrow)  # only the code 0: no quantizer emits it
]


def _ids(r: tuple[int, bool, bool]) -> str:
    b, signed, narrow = r
    name = {(1, True): "binary", (2, True): "ternary"}.get((b, signed and narrow), "")
    return name or f"{'int' if signed else 'uint'}{b}{'-narrow' if narrow else ''}"


def _codes_with_extremes(low: int, high: int, kernel: int, seed: int, device: torch.device) -> torch.Tensor:
    """Random codes of ``[low, high]`` (binary: ``{-1, +1}``), one window at each extreme."""
    g = torch.Generator().manual_seed(seed)
    size = 4 * kernel
    if (low, high) == (-1, 1):  # binary codes are never 0
        codes = torch.randint(0, 2, (1, 2, size, size), generator=g).float() * 2 - 1
    else:
        codes = torch.randint(low, high + 1, (1, 2, size, size), generator=g).float()
    codes[0, 0, :kernel, :kernel] = low
    codes[0, 1, :kernel, :kernel] = high
    return codes.to(device)


# --------------------------------------------------------------------------- sum_bit_width


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("narrow", [True, False])
def test_sum_bit_width_is_the_smallest_holding_every_sum(signed: bool, narrow: bool) -> None:
    for b in range(1, 17):
        low, high = code_range(b, signed, narrow)
        if (low, high) == (0, 0):
            continue
        for count in list(range(1, 70)) + [255, 256, 257, 1023, 1024, 1025, 65536, 65537]:
            expected = smallest_bits(count * low, count * high, signed)
            for dtype in (torch.float32, torch.float16):
                got = sum_bit_width(signed, narrow, torch.tensor(float(b), dtype=dtype), count)
                assert got.dtype == dtype
                assert int(got) == expected, (b, signed, narrow, count, dtype)


def test_sum_bit_width_cases_named_in_the_bug() -> None:
    # binary: four codes of {-1, +1} sum to [-4, 4]: 4 signed bits, where 1 + log2(4) = 3 holds only [-4, 3]
    assert int(sum_bit_width(True, True, torch.tensor(1.0), 4)) == 4
    assert not fits(-4, 4, 3, True) and fits(-4, 4, 4, True)
    # full-range 8-bit unsigned over 2x2: 255 * 4 = 1020, exactly 10 bits, as before
    assert int(sum_bit_width(False, False, torch.tensor(8.0), 4)) == 10
    assert int(sum_bit_width(True, False, torch.tensor(8.0), 4)) == 10
    # ternary over 2x2 and 3x3
    assert int(sum_bit_width(True, True, torch.tensor(2.0), 4)) == 4
    assert int(sum_bit_width(True, True, torch.tensor(2.0), 9)) == 5


def test_sum_bit_width_keeps_the_bit_width_gradient_and_refuses_bad_counts() -> None:
    b = torch.tensor(3.0, requires_grad=True)
    sum_bit_width(True, True, b, 9).backward()
    assert float(b.grad) == 1.0
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="count"):
            sum_bit_width(True, False, torch.tensor(4.0), bad)  # type: ignore[arg-type]


def test_int_bounds_reads_one_signed_bit_as_binary(device: torch.device) -> None:
    bw = torch.tensor([1.0, 2.0, 8.0], device=device)
    low, high = int_bounds(True, True, bw)
    assert low.tolist() == [-1.0, -1.0, -127.0] and high.tolist() == [1.0, 1.0, 127.0]
    assert low.device == bw.device
    low, high = int_bounds(False, False, bw)
    assert low.tolist() == [0.0, 0.0, 0.0] and high.tolist() == [1.0, 3.0, 255.0]


# --------------------------------------------------------------------------- the accumulator QuantTensor


@pytest.mark.parametrize("kernel", [1, 2, 3, 4])
@pytest.mark.parametrize("bits_signed_narrow", RANGES, ids=_ids)
def test_avg_pool_accumulator_fits_and_is_minimal(
    bits_signed_narrow: tuple[int, bool, bool], kernel: int, device: torch.device
) -> None:
    b, signed, narrow = bits_signed_narrow
    low, high = code_range(b, signed, narrow)
    codes = _codes_with_extremes(low, high, kernel, seed=b * 10 + kernel, device=device)
    scale = torch.tensor(0.25, device=device)
    x = QuantTensor(codes * scale, scale, torch.zeros((), device=device), b, signed, narrow, False)
    x.check_is_valid()
    y = F.avg_pool2d(x, kernel)
    assert isinstance(y, QuantTensor) and y.bit_width.device == codes.device
    n = kernel * kernel
    sums = F.avg_pool2d(codes, kernel, divisor_override=1).to(torch.int64)  # exact window sums of the codes
    assert torch.equal(y.int(), sums)
    bits = int(y.bit_width)
    assert bits == smallest_bits(n * low, n * high, signed)
    # the sums fit the reported bits ...
    assert fits(int(sums.min()), int(sums.max()), bits, signed)
    y.check_is_valid()
    # ... and one bit fewer does not hold the extreme windows the input contains
    assert {int(sums.min()), int(sums.max())} == {n * low, n * high}
    assert bits == 1 or not fits(n * low, n * high, bits - 1, signed)


@pytest.mark.parametrize("output_size", [1, 2])
@pytest.mark.parametrize("bits_signed_narrow", [(1, True, True), (2, True, True), (4, False, False)], ids=_ids)
def test_adaptive_avg_pool_accumulator_fits(
    bits_signed_narrow: tuple[int, bool, bool], output_size: int, device: torch.device
) -> None:
    b, signed, narrow = bits_signed_narrow
    low, high = code_range(b, signed, narrow)
    codes = torch.full((1, 1, 16, 16), float(high), device=device)  # 256 (or 64) codes at the top
    x = QuantTensor(codes * 0.5, 0.5, 0.0, b, signed, narrow, False)
    y = F.adaptive_avg_pool2d(x, output_size)
    n = (16 // output_size) ** 2
    assert int(y.bit_width) == smallest_bits(n * low, n * high, signed)
    assert y.int().unique().tolist() == [n * high]
    y.check_is_valid()


# --------------------------------------------------------------------------- through the layers, truncated


def _input_quant(kind: str) -> QuantIdentity:
    if kind == "binary":
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
    if kind == "ternary":
        return QuantIdentity(act_quant=SignedTernaryActPerTensorConst, return_quant_tensor=True)
    return QuantIdentity(bit_width=int(kind[3:]), return_quant_tensor=True)


@pytest.mark.parametrize(
    ("kind", "pool", "size"),
    [
        ("binary", lambda: QuantAvgPool2d(2), 4),
        ("binary", lambda: QuantAvgPool2d(3), 6),
        ("binary", lambda: QuantAdaptiveAvgPool2d(1), 16),  # 256 codes: [-256, 256], 10 bits, 2 dropped
        ("binary", lambda: QuantAdaptiveAvgPool2d(1), 32),  # 1024 codes: 12 bits, 4 dropped
        ("ternary", lambda: QuantAdaptiveAvgPool2d(1), 16),
        ("int8", lambda: QuantAvgPool2d(2), 4),  # 10 bits, 2 dropped, as before
        ("int4", lambda: QuantAdaptiveAvgPool2d(1), 16),
    ],
    ids=["binary-2x2", "binary-3x3", "binary-global-16", "binary-global-32", "ternary-global", "int8-2x2", "int4"],
)
def test_truncated_pooling_of_extreme_windows_stays_in_8_bits(
    kind: str, pool: Callable[[], nn.Module], size: int, device: torch.device
) -> None:
    quant = _input_quant(kind).to(device).eval()
    layer = pool().to(device).eval()
    x = torch.randn(4, 2, size, size, device=device)
    x[0], x[1] = 10.0, -10.0  # every window at the top / bottom of the range
    with torch.no_grad():
        q = quant(x)
        y = layer(q)
    q.check_is_valid()
    codes = torch.round(q.value / q.scale).to(torch.int64)
    window = codes.shape[-1] // y.value.shape[-1]
    n = window * window
    sums = F.avg_pool2d(codes.double(), window, divisor_override=1).to(torch.int64)
    low, high = (int(v) for v in int_bounds(bool(q.signed), q.narrow_range, q.bit_width))
    acc_bits = smallest_bits(n * low, n * high, True)
    shift = max(acc_bits - 8, 0)
    assert int(y.bit_width) == min(acc_bits, 8)
    assert torch.allclose(y.scale, q.scale * 2**shift / n)
    expected = torch.div(sums, 2**shift, rounding_mode="floor")
    assert torch.equal(y.int(), expected)
    assert int(expected.max()) == (n * high) >> shift and int(expected.min()) == (n * low) >> shift
    y.check_is_valid()  # every code inside the reported (at most 8-bit) signed range
