"""Bias quantization on the accumulator's grid: an integer quantizer whose scale is given.

Registry kind ``tensor_quant``, name ``prescaled_int``: :class:`PrescaledIntQuant`.
The bias solver (``brevitas.quant.solver.bias``) picks it for a bias
quantizer with ``requires_input_scale = True`` (``Int8Bias``): the proxy
passes the scale of the product input x weight at call time, so the bias
lands on the accumulator's integer grid.

Example:
    >>> import torch
    >>> from brevitas.core.bit_width import BitWidthConst
    >>> from brevitas_plugins.core.float_to_int import RoundSte, TensorClamp
    >>> from brevitas_plugins.core.quant import IntQuant
    >>> q = PrescaledIntQuant(IntQuant(RoundSte(), TensorClamp(), signed=True, narrow_range=False), BitWidthConst(8))
    >>> y, scale, zero_point, bit_width = q(torch.tensor([0.3, -0.2, 9.0]), torch.tensor(0.01))
    >>> (y / scale).round().tolist(), int(bit_width)
    ([30.0, -20.0, 127.0], 8)
"""

from __future__ import annotations

from torch import Tensor, nn

from brevitas.core.quant import TensorQuant
from brevitas.errors import ConfigError
from brevitas.plugins.registry import Registry

__all__ = ["PrescaledIntQuant", "register"]


class PrescaledIntQuant(TensorQuant):
    """Integer quantization with an external scale and a zero zero-point.

    ``forward(x, scale, input_bit_width=None) -> (y, scale, zero_point, bit_width)``
    with ``bit_width = bit_width_impl()`` (or ``input_bit_width`` when
    ``bit_width_impl`` is ``None``: the bit-width of the accumulator),
    ``zero_point = 0`` and ``y = int_quant(scale, 0, bit_width, x)``.

    Args:
        int_quant: the integer core (``IntQuant``: rounding, clamp, range).
        bit_width_impl: bit-width block, or ``None`` to take ``input_bit_width``.

    Raises:
        ConfigError: ``int_quant`` is not a module.
    """

    #: the scale is an argument of ``forward`` (read by the bias proxy and exporters)
    requires_input_scale = True

    def __init__(self, int_quant: nn.Module, bit_width_impl: nn.Module | None = None) -> None:
        super().__init__()
        if not isinstance(int_quant, nn.Module):
            raise ConfigError(f"int_quant must be the integer core module (IntQuant), got {type(int_quant).__name__}")
        self.int_quant = int_quant
        self.bit_width_impl = bit_width_impl
        #: whether ``forward`` needs ``input_bit_width``
        self.requires_input_bit_width = bit_width_impl is None

    def forward(  # type: ignore[override]
        self, x: Tensor, scale: Tensor, input_bit_width: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if self.bit_width_impl is not None:
            bit_width = self.bit_width_impl()
        elif input_bit_width is not None:
            bit_width = input_bit_width
        else:
            raise ConfigError(
                "this bias quantizer takes its bit-width from the accumulator (requires_input_bit_width=True) "
                "and none was given: pass input_bit_width, or set bit_width=... on the quantizer"
            )
        zero_point = scale.new_zeros(())
        y = self.int_quant(scale, zero_point, bit_width, x)
        return y, scale, zero_point, bit_width


def register(registry: Registry) -> None:
    """Add the ``tensor_quant`` name ``prescaled_int``."""
    registry.add(
        "tensor_quant",
        "prescaled_int",
        PrescaledIntQuant,
        description="integer quantization with the scale given at call time (bias on the accumulator grid)",
    )
