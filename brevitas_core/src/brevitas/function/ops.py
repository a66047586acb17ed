"""Plain tensor functions of quantization: integer ranges and clamping.

Nothing here has a custom gradient; the straight-through estimators live in
:mod:`brevitas.function.ste`. Every function takes tensors and returns tensors
derived from them (same device, same dtype), so it compiles with
``torch.compile`` and moves with the model.

Integer ranges, for a bit-width ``b``:

============  ===============  =====================  =====================
signed        narrow_range     min_int                max_int
============  ===============  =====================  =====================
True          False            ``-2**(b-1)``          ``2**(b-1) - 1``
True          True             ``-2**(b-1) + 1``      ``2**(b-1) - 1``
False         False            ``0``                  ``2**b - 1``
False         True             ``0``                  ``2**b - 2``
============  ===============  =====================  =====================

A QuantTensor reads a 1-bit *signed* range as ``[-1, 1]`` (:func:`int_bounds`):
binary quantizers emit ``{-1, +1}`` with ``bit_width=1, signed=True,
narrow_range=True`` (where the table gives only ``0``), and the 1-bit two's
complement codes ``{-1, 0}`` lie inside it. :func:`sum_bit_width` sizes the
accumulator of a sum of such integers (average pooling) exactly.

Example:
    >>> import torch
    >>> from brevitas.function.ops import max_int, min_int, tensor_clamp
    >>> b = torch.tensor(8.0)
    >>> int(min_int(True, True, b)), int(max_int(True, True, b))
    (-127, 127)
    >>> int(min_int(False, False, b)), int(max_int(False, False, b))
    (0, 255)
    >>> tensor_clamp(torch.tensor([-3.0, 0.5, 3.0]), torch.tensor(-1.0), torch.tensor(1.0))
    tensor([-1.0000,  0.5000,  1.0000])
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["identity", "int_bounds", "max_int", "min_int", "sum_bit_width", "tensor_clamp"]


def max_int(signed: bool, narrow_range: bool, bit_width: Tensor) -> Tensor:
    """The largest integer of a ``bit_width``-bit range.

    Args:
        signed: two's complement range when true, unsigned otherwise.
        narrow_range: drop one code: the most negative one when signed
            (symmetric range), the largest one when unsigned.
        bit_width: the bit-width, a tensor holding an integer (a learned
            bit-width keeps its gradient: the result is differentiable in it).

    Returns:
        A tensor shaped like ``bit_width``.

    Example:
        >>> import torch
        >>> max_int(False, True, torch.tensor(4.0))
        tensor(14.)
    """
    if signed:
        return 2.0 ** (bit_width - 1) - 1
    if narrow_range:
        return 2.0**bit_width - 2
    return 2.0**bit_width - 1


def min_int(signed: bool, narrow_range: bool, bit_width: Tensor) -> Tensor:
    """The smallest integer of a ``bit_width``-bit range (see :func:`max_int`).

    Returns:
        A tensor shaped like ``bit_width``; ``0 * bit_width`` when unsigned, so
        the result always follows the input's device and dtype.

    Example:
        >>> import torch
        >>> min_int(True, False, torch.tensor(4.0))
        tensor(-8.)
    """
    if signed and narrow_range:
        return -(2.0 ** (bit_width - 1)) + 1
    if signed:
        return -(2.0 ** (bit_width - 1))
    return 0.0 * bit_width


def int_bounds(signed: bool, narrow_range: bool, bit_width: Tensor) -> tuple[Tensor, Tensor]:
    """Smallest and largest integer code a QuantTensor with this metadata holds.

    :func:`min_int` and :func:`max_int`, except that a 1-bit signed range is
    ``[-1, 1]``: binary (bipolar) codes ``{-1, +1}``, which binary quantizers
    label ``bit_width=1, signed=True, narrow_range=True``, and the two's
    complement codes ``{-1, 0}`` both lie inside it.

    Args:
        signed: two's complement range when true, unsigned otherwise.
        narrow_range: see :func:`max_int`.
        bit_width: the bit-width, a tensor holding an integer.

    Returns:
        ``(low, high)``, tensors shaped like ``bit_width``.

    Example:
        >>> import torch
        >>> [int(v) for v in int_bounds(True, True, torch.tensor(1.0))]  # binary
        [-1, 1]
        >>> [int(v) for v in int_bounds(True, True, torch.tensor(2.0))]  # ternary
        [-1, 1]
        >>> [int(v) for v in int_bounds(False, False, torch.tensor(3.0))]
        [0, 7]
    """
    low, high = min_int(signed, narrow_range, bit_width), max_int(signed, narrow_range, bit_width)
    if not signed:
        return low, high
    one_bit = bit_width == 1
    return torch.where(one_bit, -torch.ones_like(low), low), torch.where(one_bit, torch.ones_like(high), high)


def sum_bit_width(signed: bool, narrow_range: bool, bit_width: Tensor, count: int) -> Tensor:
    """The smallest bit-width of the accumulator of a sum of ``count`` integer codes.

    The codes lie in ``[low, high] = int_bounds(signed, narrow_range, bit_width)``
    (:func:`int_bounds`: a 1-bit signed range is binary ``[-1, 1]``), so the
    sum lies in ``[count * low, count * high]``. The accumulator keeps the
    sign and uses the full range (two's complement ``[-2**(B-1), 2**(B-1) - 1]``
    when signed, ``[0, 2**B - 1]`` otherwise); the result is the smallest
    ``B`` holding the whole interval. With ``e = ceil(log2(count))`` it is
    ``bit_width + e`` for full-range integers (e.g. 8-bit unsigned, 4 codes:
    ``4 * 255 = 1020``, 10 bits), one less where the range leaves room (a
    narrow range, or a ``count`` that is not a power of two), and
    ``1 + ceil(log2(count + 1))`` for binary codes (4 of them sum to
    ``[-4, 4]``: 4 bits, where ``1 + e`` would give 3).

    The decision is taken on tensors (``torch.compile`` traces it), in
    float32 whatever the bit-width's dtype, and is exact for any
    ``bit_width`` and ``count < 2**24``; the result is
    ``bit_width`` plus a piecewise-constant offset, so a learned bit-width
    receives the gradient of ``bit_width`` unchanged.

    Args:
        signed: the codes are signed (two's complement).
        narrow_range: the codes' range is narrow (see :func:`max_int`).
        bit_width: the codes' bit-width, a tensor holding an integer ``>= 1``.
        count: how many codes are summed, a Python int ``>= 1``.

    Returns:
        A tensor shaped like ``bit_width``.

    Raises:
        ValueError: ``count`` is not a positive integer.

    Example:
        >>> import torch
        >>> int(sum_bit_width(False, False, torch.tensor(8.0), 4))  # [0, 1020]
        10
        >>> int(sum_bit_width(True, True, torch.tensor(1.0), 4))  # binary: [-4, 4]
        4
        >>> int(sum_bit_width(True, True, torch.tensor(2.0), 9))  # ternary: [-9, 9]
        5
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive Python int (how many codes are summed), got {count!r}")
    b = bit_width.detach()
    if count == 1:
        # a 1-bit signed range [-1, 1] needs 2 full-range bits; every other range fits its own bits
        extra = (b == 1).to(b.dtype) if signed else torch.zeros_like(b)
        return bit_width + extra
    e = (count - 1).bit_length()  # ceil(log2(count))
    # The sum needs between bit_width + e - 1 and bit_width + e bits (binary codes: see below). With
    # d = count - 2**(e - 1) (1 <= d <= 2**(e - 1)) the upper choice is needed exactly when the
    # scaled-down inequality below holds; 2**b times a small integer is exact in floating point.
    d = count - 2 ** (e - 1)
    b = b.to(torch.float32)  # exact for these integers even when the bit-width is half precision
    if signed and narrow_range:  # [-count * (2**(b-1) - 1), count * (2**(b-1) - 1)]
        upper = 2.0 ** (b - 1) * d > count - 1
    elif signed:  # [-count * 2**(b-1), ...]: always bit_width + e
        upper = torch.ones_like(b, dtype=torch.bool)
    elif narrow_range:  # [0, count * (2**b - 2)]
        upper = 2.0**b * d >= 2 * count
    else:  # [0, count * (2**b - 1)]
        upper = 2.0**b * d >= count
    extra = (e - 1) + upper.to(bit_width.dtype)
    if signed:  # binary [-count, count]: 1 + ceil(log2(count + 1)) bits in all
        extra = torch.where(b == 1, torch.full_like(extra, count.bit_length()), extra)
    elif narrow_range:  # 1-bit unsigned narrow holds only 0: so does the sum
        extra = torch.where(b == 1, torch.zeros_like(extra), extra)
    return bit_width + extra


def tensor_clamp(x: Tensor, min_val: Tensor, max_val: Tensor) -> Tensor:
    """Clamp ``x`` to ``[min_val, max_val]`` with tensor bounds that broadcast.

    The gradient is the ordinary one of the piecewise function: ``x`` receives
    it where ``min_val <= x <= max_val`` (bounds included) and nothing outside;
    ``max_val`` receives it where ``x > max_val`` and ``min_val`` where
    ``x < min_val``, so a bound computed from a learned bit-width or scale
    learns from the clamped values.

    Args:
        x: the tensor to clamp.
        min_val: lower bound, broadcastable against ``x``.
        max_val: upper bound, broadcastable against ``x``; expected ``>= min_val``.

    Returns:
        The clamped tensor, of the broadcast shape of the three arguments.

    Example:
        >>> import torch
        >>> x = torch.tensor([-2.0, 0.0, 2.0], requires_grad=True)
        >>> tensor_clamp(x, torch.tensor(-1.0), torch.tensor(1.0)).sum().backward()
        >>> x.grad
        tensor([0., 1., 0.])
    """
    y = torch.where(x > max_val, max_val, x)
    return torch.where(y < min_val, min_val, y)


def identity(x: Tensor) -> Tensor:
    """Return ``x`` unchanged (a named no-op for injected ``*_impl`` slots).

    Example:
        >>> import torch
        >>> identity(torch.tensor(1.5))
        tensor(1.5000)
    """
    return x
