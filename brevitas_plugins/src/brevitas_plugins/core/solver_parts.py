"""Collaborators the solver wires that no enum names, under auxiliary registry kinds.

The solver (``brevitas.quant.solver``) lives in the core and never imports
this package, so the blocks an integer quantizer needs besides its named
components are registered too, under kinds of their own:

=================  ====================================  =====================================================
kind               name                                  block
=================  ====================================  =====================================================
``int_quant``      ``int``                               :class:`~brevitas_plugins.core.quant.IntQuant`
``int_scaling``    ``int``                               :class:`~brevitas_plugins.core.bit_width.IntScaling`
``int_scaling``    ``power_of_two``                      :class:`PowerOfTwoIntScaling` (fixed point)
``tensor_clamp``   ``clamp``, ``clamp_ste``              ``TensorClamp``, ``TensorClampSte``
``stats_view``     ``over_tensor``                       ``OverTensorView``
``stats_view``     ``over_output_channels``              ``OverOutputChannelView``
``stats_view``     ``over_batch_over_output_channels``   ``OverBatchOverOutputChannelView``
=================  ====================================  =====================================================

``int_scaling`` entries are named after the scale's restriction
(``restrict_value`` name): the solver uses the entry of that name when there
is one, ``int`` otherwise.

Example:
    >>> import torch
    >>> PowerOfTwoIntScaling(signed=True)(torch.tensor(8.0)), PowerOfTwoIntScaling(signed=False)(torch.tensor(8.0))
    (tensor(128.), tensor(256.))
"""

from __future__ import annotations

from torch import Tensor

from brevitas.core.base import QuantBlock
from brevitas.plugins.registry import Registry
from brevitas_plugins.core.bit_width import IntScaling
from brevitas_plugins.core.float_to_int import TensorClamp, TensorClampSte
from brevitas_plugins.core.quant import IntQuant
from brevitas_plugins.core.stats import OverBatchOverOutputChannelView, OverOutputChannelView, OverTensorView

__all__ = ["PowerOfTwoIntScaling", "register"]


class PowerOfTwoIntScaling(QuantBlock):
    """``forward(bit_width)`` -> ``2 ** (bit_width - 1)`` signed, ``2 ** bit_width`` unsigned.

    The divisor of a fixed-point quantizer: a power-of-two threshold divided
    by it is a power-of-two scale, so the radix point stays at a bit position.
    Accepts ``narrow_range`` for symmetry with ``IntScaling``; it does not
    change the divisor.

    Args:
        signed: signed integer range.
        narrow_range: ignored (the range stays within ``[-2**(b-1), 2**(b-1))``).

    Example:
        >>> import torch
        >>> PowerOfTwoIntScaling(signed=True, narrow_range=True)(torch.tensor(4.0))
        tensor(8.)
    """

    def __init__(self, signed: bool, narrow_range: bool = False) -> None:
        super().__init__()
        self.signed = bool(signed)
        self.narrow_range = bool(narrow_range)

    def forward(self, bit_width: Tensor) -> Tensor:
        exponent = bit_width - 1.0 if self.signed else bit_width
        return 2.0**exponent

    def extra_repr(self) -> str:
        return f"signed={self.signed}"


def register(registry: Registry) -> None:
    """Add the auxiliary kinds ``int_quant``, ``int_scaling``, ``tensor_clamp`` and ``stats_view``."""
    registry.add("int_quant", "int", IntQuant, description="integer core: round, clamp to the range, rescale")
    registry.add("int_scaling", "int", IntScaling, description="threshold divisor: the integer range")
    registry.add("int_scaling", "power_of_two", PowerOfTwoIntScaling, description="threshold divisor: a power of two")
    registry.add("tensor_clamp", "clamp", TensorClamp, description="clamp, gradient blocked outside the range")
    registry.add("tensor_clamp", "clamp_ste", TensorClampSte, description="clamp, straight-through gradient")
    registry.add("stats_view", "over_tensor", OverTensorView, description="flatten: one statistic per tensor")
    registry.add(
        "stats_view", "over_output_channels", OverOutputChannelView, description="(C, -1): one statistic per channel"
    )
    registry.add(
        "stats_view",
        "over_batch_over_output_channels",
        OverBatchOverOutputChannelView,
        description="(N, C, ...) -> (C, -1): per-channel statistics of activations",
    )
