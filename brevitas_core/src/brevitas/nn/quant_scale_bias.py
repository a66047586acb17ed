"""Per-channel scale and bias: :class:`ScaleBias` (float) and :class:`QuantScaleBias`.

``y = x * weight.view(runtime_shape) + bias.view(runtime_shape)``, the affine
part of a batch norm in inference mode. The quantized variant quantizes the
weight (default ``Int8WeightPerTensorFloat``) and optionally the bias, input
and output like any weight layer.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantScaleBias
    >>> sb = QuantScaleBias(3, bias=True)
    >>> sb(torch.randn(2, 3, 4, 4)).shape
    torch.Size([2, 3, 4, 4])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer
from brevitas.quant.scaled_int import Int8WeightPerTensorFloat

__all__ = ["QuantScaleBias", "ScaleBias"]


class ScaleBias(nn.Module):
    """Float per-channel affine: ``x * weight.view(runtime_shape) + bias.view(runtime_shape)``.

    Args:
        num_features: number of channels.
        bias: whether there is a bias.
        runtime_shape: the view of ``weight`` and ``bias`` that broadcasts
            against the input (``(1, -1, 1, 1)`` for NCHW).

    Example:
        >>> import torch
        >>> sb = ScaleBias(2, bias=True)
        >>> with torch.no_grad():
        ...     _ = sb.weight.copy_(torch.tensor([2.0, 3.0]))
        ...     _ = sb.bias.copy_(torch.tensor([1.0, 0.0]))
        >>> sb(torch.ones(1, 2, 1, 1)).flatten().tolist()
        [3.0, 3.0]
    """

    def __init__(
        self,
        num_features: int,
        bias: bool,
        runtime_shape: tuple[int, ...] = (1, -1, 1, 1),
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.runtime_shape = tuple(runtime_shape)
        self.weight = nn.Parameter(torch.ones(num_features, device=device, dtype=dtype))
        self.bias = nn.Parameter(torch.zeros(num_features, device=device, dtype=dtype)) if bias else None

    def forward(self, input: Tensor) -> Tensor:
        out = input * self.weight.view(self.runtime_shape)
        if self.bias is not None:
            out = out + self.bias.view(self.runtime_shape)
        return out

    def extra_repr(self) -> str:
        return f"{self.num_features}, bias={self.bias is not None}, runtime_shape={self.runtime_shape}"


class QuantScaleBias(QuantWeightBiasInputOutputLayer, ScaleBias):
    """:class:`ScaleBias` with weight, bias, input and output quantizers.

    The weight scale may be per channel (``weight_scaling_per_output_channel=True``):
    each product involves one weight, so the output scale is input scale x
    weight scale per channel, and the accumulator holds a single product.

    Example:
        >>> import torch
        >>> sb = QuantScaleBias(4, bias=False, weight_bit_width=4, weight_scaling_per_output_channel=True)
        >>> tuple(sb.quant_weight_scale().shape)
        (4,)
    """

    def __init__(
        self,
        num_features: int,
        bias: bool,
        weight_quant: Any = Int8WeightPerTensorFloat,
        bias_quant: Any = None,
        input_quant: Any = None,
        output_quant: Any = None,
        return_quant_tensor: bool = False,
        runtime_shape: tuple[int, ...] = (1, -1, 1, 1),
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        ScaleBias.__init__(self, num_features, bias, runtime_shape, device=device, dtype=dtype)
        self._init_wbiol(weight_quant, bias_quant, input_quant, output_quant, return_quant_tensor, kwargs)

    def inner_forward_impl(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        out = x * weight.view(self.runtime_shape)
        if bias is not None:
            out = out + bias.view(self.runtime_shape)
        return out

    @property
    def reduction_size(self) -> int:
        """One product per output element."""
        return 1

    def _output_channel_shape(self, ndim: int) -> tuple[int, ...]:
        return tuple(self.num_features if s == -1 else s for s in self.runtime_shape)

    def _acc_scale(self, input_scale: Tensor, weight_scale: Tensor, ndim: int) -> Tensor | None:
        w = self._to_output_shape(weight_scale, ndim)
        if input_scale.numel() == 1:
            return input_scale.reshape(()) * w
        try:  # a per-channel input scale along the same channel axis also works: one product per element
            return input_scale * w
        except RuntimeError:
            return None

    def _weight_int_sums(self, int_weight: Tensor) -> Tensor:
        return int_weight
