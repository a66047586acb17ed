"""Regularizers on bit-widths, for training with learned bit-widths.

Each regularizer registers forward hooks on a model and accumulates, during
forward passes, bit-widths weighted by how much they cost:

- :class:`WeightBitWidthWeightedBySize`: weight bit-widths weighted by the
  number of weights;
- :class:`ActivationBitWidthWeightedBySize`: activation bit-widths weighted
  by the number of activations per sample;
- :class:`QuantLayerOutputBitWidthWeightedByOps`: accumulator bit-widths of
  weight layers weighted by their multiply-accumulates per sample.

``retrieve()`` returns the weighted average (differentiable in learned
bit-widths); add it to the task loss, then ``zero_accumulated_values()``.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantLinear
    >>> from brevitas.loss import WeightBitWidthWeightedBySize
    >>> model = torch.nn.Sequential(QuantLinear(4, 4, weight_bit_width=4, weight_bit_width_impl_type="parameter"))
    >>> reg = WeightBitWidthWeightedBySize(model)
    >>> _ = model(torch.randn(2, 4))
    >>> float(reg.log())
    4.0
    >>> reg.zero_accumulated_values()
"""

from brevitas.loss.weighted_bit_width import (
    ActivationBitWidthWeightedBySize,
    BitWidthWeighted,
    QuantLayerOutputBitWidthWeightedByOps,
    WeightBitWidthWeightedBySize,
)

__all__ = [
    "ActivationBitWidthWeightedBySize",
    "BitWidthWeighted",
    "QuantLayerOutputBitWidthWeightedByOps",
    "WeightBitWidthWeightedBySize",
]
