"""Thresholds of ``MultiThreshold`` nodes that reproduce a PyTorch quantizer exactly.

A quantizer maps a float ``v`` to an integer code that never decreases when
``v`` grows (rounding, clamping, sign and truncation are all monotonic). Such a
map is a staircase, and ``MultiThreshold`` is a staircase: its output is
``out_scale * count(v >= t) + out_bias``. Threshold ``t_k`` is where the
code first reaches ``int_min + k + 1``.

The textbook thresholds (``scale * (k + 0.5)`` for round-to-nearest) are
first computed in float64, but a float32 quantizer does not switch exactly
there: PyTorch computes ``round(v / scale + zero_point)`` in float32, and ties
round half to even. So each threshold is found *on the float32 grid*: the
smallest float32 ``v`` whose code, computed with the same float32 operations
as PyTorch, reaches the step. A binary search over the ordered float32 bit
patterns finds it in 32 steps, for every channel and step at once. The
exported node then gives the PyTorch code for every float32 input, ties
included.

Example:
    >>> import numpy as np
    >>> code = int_code(np.float32(0.5), np.float32(0.0), 0, 3, "ROUND")
    >>> search(code, np.array([[1.0, 2.0, 3.0]])).tolist()  # 0.25 ties to 0, 0.75 to 2 (half to even)
    [[0.2500000298023224, 0.75, 1.2500001192092896]]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "CodeFn",
    "ROUNDING",
    "binary_code",
    "int_code",
    "search",
    "ternary_code",
    "trunc_code",
]

#: a vectorized float32 -> integer-code map (codes returned as floats), monotonic non-decreasing
CodeFn = Callable[[np.ndarray], np.ndarray]

_KEY_MAX = int(np.float32(np.finfo(np.float32).max).view(np.int32))


def _dpu(x: np.ndarray) -> np.ndarray:
    # brevitas.function.ste.dpu_round: ceil on exact halves, round elsewhere
    return np.where(x - np.floor(x) == 0.5, np.ceil(x), np.round(x))


#: numpy twins of the roundings the PyTorch quantizers use, by ``rounding_mode`` name
ROUNDING: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ROUND": np.round,  # half to even, as torch.round
    "FLOOR": np.floor,
    "CEIL": np.ceil,
    "ROUND_TO_ZERO": np.trunc,
    "DPU": _dpu,
}


def _to_key(x: np.ndarray) -> np.ndarray:
    bits = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _from_key(key: np.ndarray) -> np.ndarray:
    bits = np.where(key < 0, (-key) | 0x80000000, key).astype(np.uint32)
    return bits.view(np.float32)


def _column(a: object) -> np.ndarray:
    return np.asarray(a, np.float32).reshape(-1, 1)


def int_code(scale: object, zero_point: object, int_min: int, int_max: int, rounding: str) -> CodeFn:
    """The code of an integer quantizer: ``clamp(rounding(v / scale + zero_point), int_min, int_max)``.

    ``scale`` and ``zero_point`` are scalars or 1-D per channel (one row per
    channel of the thresholds).
    """
    s, z = _column(scale), _column(zero_point)
    fn = ROUNDING[rounding]

    def code(v: np.ndarray) -> np.ndarray:
        return np.clip(fn(v / s + z), int_min, int_max)

    return code


def binary_code() -> CodeFn:
    """The code of a binary quantizer: ``+1`` where ``v >= 0`` (sign of 0 is +1), else ``-1``."""

    def code(v: np.ndarray) -> np.ndarray:
        return np.where(v >= 0, np.float32(1), np.float32(-1))

    return code


def ternary_code(scale: object, threshold: float) -> CodeFn:
    """The code of a ternary quantizer: ``+1`` where ``v > t``, ``-1`` where ``v < -t``, else 0.

    ``t = threshold * scale``, as the ``ternary`` tensor quantizer computes it.
    """
    t = np.float32(threshold) * _column(scale)

    def code(v: np.ndarray) -> np.ndarray:
        return (v > t).astype(np.float32) - (v < -t).astype(np.float32)

    return code


def trunc_code(
    in_scale: object, in_zero_point: object, shift_bits: int, int_min: int, int_max: int, rounding: str
) -> CodeFn:
    """The code of a truncation: ``rounding(round(v / in_scale + in_zero_point) / 2**shift_bits)``, clamped."""
    s, z = _column(in_scale), _column(in_zero_point)
    step = np.float32(2.0**shift_bits)
    fn = ROUNDING[rounding]

    def code(v: np.ndarray) -> np.ndarray:
        return np.clip(fn(np.round(v / s + z) / step), int_min, int_max)

    return code


def search(code: CodeFn, targets: np.ndarray) -> np.ndarray:
    """For each target code, the smallest float32 ``v`` with ``code(v) >= target``.

    Args:
        code: a monotonic non-decreasing code map, vectorized over arrays shaped like ``targets``.
        targets: codes to reach, shape ``(C, T)`` (one row per channel).

    Returns:
        float32 thresholds shaped like ``targets``; ``-inf`` where the target is
        reached by every input, ``+inf`` where by none.
    """
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _search(code, np.asarray(targets, np.float64))


def _search(code: CodeFn, targets: np.ndarray) -> np.ndarray:
    lo = np.full(targets.shape, -_KEY_MAX, np.int64)
    hi = np.full(targets.shape, _KEY_MAX, np.int64)
    always = code(_from_key(lo)) >= targets
    never = code(_from_key(hi)) < targets
    while bool((hi - lo > 1).any()):
        mid = lo + (hi - lo) // 2
        ok = code(_from_key(mid)) >= targets
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    out = _from_key(hi).copy()
    out[always] = -np.inf
    out[never] = np.inf
    return out
