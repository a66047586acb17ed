"""MultiThreshold thresholds reproduce the PyTorch quantizers bit for bit, ties and float32 neighbours included."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from qonnx.custom_op.general.multithreshold import multithreshold

from brevitas.function.ste import dpu_round
from brevitas_export_finn.thresholds import binary_code, int_code, search, ternary_code, trunc_code

_TORCH_ROUNDING = {
    "ROUND": torch.round,
    "FLOOR": torch.floor,
    "CEIL": torch.ceil,
    "ROUND_TO_ZERO": torch.trunc,
    "DPU": dpu_round,
}


def _probe_points(thresholds: np.ndarray, scale: float, span: int) -> np.ndarray:
    """Every threshold, its float32 neighbours, exact half steps, and a spread of values."""
    t = thresholds[np.isfinite(thresholds)].astype(np.float32)
    halves = (np.arange(-span, span + 1, dtype=np.float64) + 0.5) * scale
    pts = [
        t,
        np.nextafter(t, np.float32(np.inf)),
        np.nextafter(t, np.float32(-np.inf)),
        halves.astype(np.float32),
        (np.arange(-span, span + 1, dtype=np.float64) * scale).astype(np.float32),
        np.linspace(-1.5 * span * scale, 1.5 * span * scale, 301, dtype=np.float32),
    ]
    return np.concatenate(pts).astype(np.float32)


def _multithreshold_codes(v: np.ndarray, thresholds: np.ndarray, int_min: int) -> np.ndarray:
    # qonnx's own MultiThreshold kernel, on a (1, 1, N) tensor with one channel
    out = multithreshold(v.reshape(1, 1, -1), thresholds.reshape(1, -1), out_scale=1.0, out_bias=float(int_min))
    return out.reshape(-1)


@settings(max_examples=60, deadline=None)
@given(
    scale=st.floats(0.0009765625, 10.0, allow_nan=False, allow_infinity=False, width=32),
    bit_width=st.integers(1, 6),
    signed=st.booleans(),
    narrow=st.booleans(),
    mode=st.sampled_from(sorted(_TORCH_ROUNDING)),
)
def test_int_thresholds_equal_torch_fake_quant(
    scale: float, bit_width: int, signed: bool, narrow: bool, mode: str
) -> None:
    if signed:
        lo, hi = -(2 ** (bit_width - 1)) + int(narrow), 2 ** (bit_width - 1) - 1
    else:
        lo, hi = 0, 2**bit_width - 1 - int(narrow)
    if hi <= lo:
        return
    code = int_code(np.float32(scale), np.float32(0.0), lo, hi, mode)
    thresholds = search(code, np.arange(lo + 1, hi + 1, dtype=np.float64)[None, :])
    assert thresholds.dtype == np.float32 and np.isfinite(thresholds).all()
    assert (np.diff(thresholds[0]) >= 0).all()
    v = _probe_points(thresholds, scale, 2**bit_width)
    s = torch.tensor(scale, dtype=torch.float32)
    expected = torch.clamp(_TORCH_ROUNDING[mode](torch.from_numpy(v) / s + 0.0), lo, hi).numpy()
    np.testing.assert_array_equal(_multithreshold_codes(v, thresholds, lo), expected)


def test_ties_round_half_to_even() -> None:
    # scale 1: codes 0..3, exact halves 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
    code = int_code(np.float32(1.0), np.float32(0.0), 0, 3, "ROUND")
    t = search(code, np.array([[1.0, 2.0, 3.0]]))[0]
    assert t[0] == np.nextafter(np.float32(0.5), np.float32(1)) and t[1] == 1.5
    assert t[2] == np.nextafter(np.float32(2.5), np.float32(3))
    v = np.array([0.5, 1.5, 2.5, 3.5], np.float32)
    assert _multithreshold_codes(v, t, 0).tolist() == [0.0, 2.0, 2.0, 3.0]


def test_per_channel_rows_and_zero_point() -> None:
    scales = np.array([0.1, 0.25, 2.0], np.float32)
    zps = np.array([0.0, 1.0, -2.0], np.float32)
    code = int_code(scales, zps, -4, 3, "ROUND")
    t = search(code, np.broadcast_to(np.arange(-3, 4, dtype=np.float64), (3, 7)))
    assert t.shape == (3, 7)
    for c in range(3):
        v = _probe_points(t[c], float(scales[c]), 8)
        expected = np.clip(np.round(v / scales[c] + zps[c]), -4, 3)
        np.testing.assert_array_equal(_multithreshold_codes(v, t[c], -4), expected)


def test_binary_threshold_is_zero() -> None:
    t = search(binary_code(), np.ones((1, 1)))
    assert t.tolist() == [[0.0]]
    v = np.array([-1e-30, -0.0, 0.0, 1e-30], np.float32)
    out = multithreshold(v.reshape(1, 1, -1), t, out_scale=2.0, out_bias=-1.0).reshape(-1)
    assert out.tolist() == [-1.0, 1.0, 1.0, 1.0]  # sign(0) = +1, as BinaryQuant


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.8])
def test_ternary_thresholds(threshold: float) -> None:
    scale = np.float32(0.7)
    t = search(ternary_code(scale, threshold), np.array([[0.0, 1.0]]))[0]
    cut = np.float32(threshold) * scale
    assert t[0] == -cut and t[1] == np.nextafter(cut, np.float32(1))  # 0 from -t on, +1 strictly above t


def test_trunc_thresholds_equal_floor_of_shifted_codes() -> None:
    # 10-bit signed accumulator codes on scale 0.125, truncated to 8 bits (shift 2, floor)
    code = trunc_code(np.float32(0.125), np.float32(0.0), 2, -128, 127, "FLOOR")
    t = search(code, np.arange(-127, 128, dtype=np.float64)[None, :])
    acc = np.arange(-512, 512, dtype=np.float32) * np.float32(0.125)
    np.testing.assert_array_equal(_multithreshold_codes(acc, t[0], -128), np.floor(np.arange(-512, 512) / 4.0))


def test_unreachable_codes_are_infinite() -> None:
    code = int_code(np.float32(1.0), np.float32(0.0), 0, 3, "ROUND")
    t = search(code, np.array([[0.0, 4.0]]))[0]
    assert t[0] == -np.inf and t[1] == np.inf
