"""Interface of a tensor quantizer (registry kind ``tensor_quant``).

A tensor quantizer takes the tensor to quantize and returns four tensors:
``(value_in_dequantized_format, scale, zero_point, bit_width)``.

Example:
    >>> import torch
    >>> from brevitas.core.quant import TensorQuant
    >>> class Identity8(TensorQuant):
    ...     def forward(self, x):
    ...         one = x.new_ones(())
    ...         return x, one, 0 * one, 8 * one
    >>> y, s, z, b = Identity8()(torch.zeros(2))
    >>> int(b)
    8
"""

from __future__ import annotations

from torch import Tensor

from brevitas.core.base import QuantBlock

__all__ = ["TensorQuant", "TruncQuant"]


class TensorQuant(QuantBlock):
    """``forward(x) -> (value, scale, zero_point, bit_width)``.

    ``value`` has the shape of ``x``; ``scale`` and ``zero_point`` broadcast
    against it (scalar per-tensor, e.g. ``(C, 1, 1, 1)`` per-channel);
    ``bit_width`` is a scalar tensor. ``zero_point`` is in the integer domain.
    """

    kind = "tensor_quant"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError


class TruncQuant(QuantBlock):
    """Re-quantization of an already quantized tensor to fewer bits.

    ``forward(x, scale, zero_point, input_bit_width) -> (value, scale,
    zero_point, bit_width)``, used for truncating accumulators and average
    pooling.
    """

    kind = "tensor_quant"

    def forward(
        self, x: Tensor, scale: Tensor, zero_point: Tensor, input_bit_width: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError
