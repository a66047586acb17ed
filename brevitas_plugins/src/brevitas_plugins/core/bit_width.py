"""Bit-width blocks: learned bit-width, bit-width offsets, and the integer range divisor.

Registry kind ``bit_width`` (``BitWidthImplType``):

- ``const``: :class:`brevitas.core.bit_width.BitWidthConst` (from the core);
- ``parameter``: :class:`BitWidthParameter`, a learned bit-width.

Also here, unregistered helpers the solver wires by attribute name:

- :class:`OffsetBitWidth`: ``forward(input_bit_width) -> input_bit_width + offset``
  (e.g. a bias or accumulator a fixed number of bits wider than its input);
- :class:`IntScaling`: ``forward(bit_width)`` -> the divisor turning a
  threshold into a scale (``int_scaling_impl``).

Example:
    >>> import torch
    >>> from brevitas_plugins.core.bit_width import BitWidthParameter, IntScaling
    >>> BitWidthParameter(bit_width=4)()
    tensor(4., grad_fn=<RoundSteFnBackward>)
    >>> IntScaling(signed=True, narrow_range=True)(torch.tensor(8.0))
    tensor(127.)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from brevitas.core.base import QuantBlock
from brevitas.core.bit_width import BitWidthConst, BitWidthImpl, validate_bit_width
from brevitas.errors import ConfigError
from brevitas.function.ops import max_int, min_int
from brevitas.function.ste import abs_binary_sign_grad, round_ste, scalar_clamp_ste
from brevitas.plugins.registry import Registry

__all__ = ["BitWidthParameter", "IntScaling", "OffsetBitWidth", "register"]


class BitWidthParameter(BitWidthImpl):
    """A learned bit-width: ``forward() = round_ste(|p| + min_overall_bit_width)``.

    The parameter ``bit_width_offset`` (``p``) starts at
    ``bit_width - min_overall_bit_width``. ``|p|`` keeps the result at or
    above the minimum whatever the optimizer does; its gradient at ``p = 0``
    is +1 (:func:`~brevitas.function.ste.abs_binary_sign_grad`), so a
    bit-width starting at its minimum can still grow. Rounding is
    straight-through. With ``max_overall_bit_width`` the result is also
    clamped from above, with a straight-through gradient so ``p`` can come
    back.

    Args:
        bit_width: initial bit-width, an integer in
            ``[min_overall_bit_width, max_overall_bit_width or 32]``.
        min_overall_bit_width: smallest bit-width it can learn (default 2).
        max_overall_bit_width: largest bit-width it can learn, or ``None``.

    Raises:
        ConfigError: a bound or the initial value is not an integer in range.

    Example:
        >>> b = BitWidthParameter(bit_width=2, min_overall_bit_width=2)
        >>> out = b()
        >>> out.backward()
        >>> float(out.detach()), float(b.bit_width_offset.grad)
        (2.0, 1.0)
    """

    def __init__(
        self,
        bit_width: int,
        min_overall_bit_width: int = 2,
        max_overall_bit_width: int | None = None,
    ) -> None:
        super().__init__()
        low = validate_bit_width(min_overall_bit_width, name="min_overall_bit_width")
        high = None
        if max_overall_bit_width is not None:
            high = validate_bit_width(max_overall_bit_width, name="max_overall_bit_width", minimum=low)
        init = validate_bit_width(bit_width, minimum=low, maximum=32 if high is None else high)
        self.min_overall_bit_width = low
        self.max_overall_bit_width = high
        self.bit_width_offset = nn.Parameter(torch.tensor(float(init - low)))

    def forward(self) -> Tensor:
        bit_width = abs_binary_sign_grad(self.bit_width_offset) + self.min_overall_bit_width
        if self.max_overall_bit_width is not None:
            low, high = float(self.min_overall_bit_width), float(self.max_overall_bit_width)
            bit_width = scalar_clamp_ste(bit_width, low, high)
        return round_ste(bit_width)

    def extra_repr(self) -> str:
        return f"min_overall_bit_width={self.min_overall_bit_width}, max_overall_bit_width={self.max_overall_bit_width}"


class OffsetBitWidth(QuantBlock):
    """``forward(input_bit_width) -> input_bit_width + offset``.

    For a bit-width derived from another one, e.g. a bias kept a few bits
    wider than the accumulator it is added to.

    Args:
        offset: an integer (may be negative).

    Raises:
        ConfigError: ``offset`` is not an integer.

    Example:
        >>> import torch
        >>> OffsetBitWidth(offset=2)(torch.tensor(8.0))
        tensor(10.)
    """

    kind = "bit_width"

    def __init__(self, offset: int) -> None:
        super().__init__()
        if isinstance(offset, bool) or not isinstance(offset, (int, float)) or float(offset) != int(offset):
            raise ConfigError(f"offset must be an integer number of bits, got {offset!r}; write e.g. offset=2")
        self.offset = int(offset)

    def forward(self, input_bit_width: Tensor) -> Tensor:
        return input_bit_width + float(self.offset)

    def extra_repr(self) -> str:
        return f"offset={self.offset}"


class IntScaling(QuantBlock):
    """``forward(bit_width)`` -> the integer the threshold is divided by to get the scale.

    Signed: ``-min_int`` (``2**(b-1) - 1`` narrow, ``2**(b-1)`` otherwise), so
    the threshold maps onto the most negative code. Unsigned: ``max_int``
    (``2**b - 1``, or ``2**b - 2`` narrow).

    Args:
        signed: signed integer range.
        narrow_range: narrow integer range.

    Example:
        >>> import torch
        >>> IntScaling(signed=True, narrow_range=False)(torch.tensor(4.0))
        tensor(8.)
        >>> IntScaling(signed=False, narrow_range=False)(torch.tensor(4.0))
        tensor(15.)
    """

    def __init__(self, signed: bool, narrow_range: bool) -> None:
        super().__init__()
        self.signed = bool(signed)
        self.narrow_range = bool(narrow_range)

    def forward(self, bit_width: Tensor) -> Tensor:
        if self.signed:
            return -min_int(self.signed, self.narrow_range, bit_width)
        return max_int(self.signed, self.narrow_range, bit_width)

    def extra_repr(self) -> str:
        return f"signed={self.signed}, narrow_range={self.narrow_range}"


def register(registry: Registry) -> None:
    """Add the ``bit_width`` names: ``const`` (core ``BitWidthConst``) and ``parameter``."""
    registry.add("bit_width", "const", BitWidthConst, description="constant bit-width")
    registry.add("bit_width", "parameter", BitWidthParameter, description="learned bit-width")
