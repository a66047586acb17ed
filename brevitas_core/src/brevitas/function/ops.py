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

__all__ = ["identity", "max_int", "min_int", "tensor_clamp"]


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
