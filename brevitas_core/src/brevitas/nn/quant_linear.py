"""Quantized fully connected layer: :class:`QuantLinear`.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantLinear
    >>> fc = QuantLinear(16, 4, bias=True, weight_bit_width=4)
    >>> fc(torch.randn(2, 16)).shape
    torch.Size([2, 4])
    >>> int(fc.quant_weight_bit_width())
    4
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer
from brevitas.quant.scaled_int import Int8WeightPerTensorFloat

__all__ = ["QuantLinear"]


class QuantLinear(QuantWeightBiasInputOutputLayer, nn.Linear):
    """``torch.nn.Linear`` with weight, bias, input and output quantizers.

    Only the weight is quantized by default (``Int8WeightPerTensorFloat``);
    keywords are routed as described in :mod:`brevitas.nn.quant_layer`.

    Example:
        >>> import torch
        >>> fc = QuantLinear(3, 2, bias=False, weight_quant=None)
        >>> ref = torch.nn.Linear(3, 2, bias=False)
        >>> _ = fc.load_state_dict(ref.state_dict())
        >>> x = torch.randn(4, 3)
        >>> torch.equal(fc(x), ref(x))
        True
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        weight_quant: Any = Int8WeightPerTensorFloat,
        bias_quant: Any = None,
        input_quant: Any = None,
        output_quant: Any = None,
        return_quant_tensor: bool = False,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        nn.Linear.__init__(self, in_features, out_features, bias, device=device, dtype=dtype)
        self._init_wbiol(weight_quant, bias_quant, input_quant, output_quant, return_quant_tensor, kwargs)

    def inner_forward_impl(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        return F.linear(x, weight, bias)

    @property
    def reduction_size(self) -> int:
        """``in_features`` products per output element."""
        return self.in_features

    def _output_channel_shape(self, ndim: int) -> tuple[int, ...]:
        return (self.out_features,)

    def _weight_int_sums(self, int_weight: Tensor) -> Tensor:
        return int_weight.sum(1)
