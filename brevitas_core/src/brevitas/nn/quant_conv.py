"""Quantized convolutions: :class:`QuantConv1d`, :class:`QuantConv2d`, :class:`QuantConv3d`.

Each is its ``torch.nn`` convolution plus weight, bias, input and output
quantizers. By default only the weight is quantized
(``Int8WeightPerTensorFloat``); with every quantizer ``None`` the layer
computes exactly what the ``torch.nn`` one does.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantConv2d
    >>> conv = QuantConv2d(3, 8, 3, weight_bit_width=4, weight_scaling_per_output_channel=True)
    >>> conv(torch.randn(1, 3, 8, 8)).shape
    torch.Size([1, 8, 6, 6])
    >>> tuple(conv.quant_weight_scale().shape)
    (8, 1, 1, 1)
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import Tensor, nn

from brevitas.function.adjoint import scale_tangent, with_input_scale_grad
from brevitas.memory import copy_recipe
from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer
from brevitas.quant.scaled_int import Int8WeightPerTensorFloat

__all__ = ["QuantConv1d", "QuantConv2d", "QuantConv3d"]


class _QuantConvNd(QuantWeightBiasInputOutputLayer):
    """What the quantized convolutions share (weight layout ``(C_out, C_in / groups, *kernel)``)."""

    in_channels: int
    out_channels: int
    groups: int
    kernel_size: tuple[int, ...]
    _torch_conv: ClassVar[type[nn.Module]]  # the torch.nn convolution, initialized first

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] | str = 0,
        dilation: int | tuple[int, ...] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        weight_quant: Any = Int8WeightPerTensorFloat,
        bias_quant: Any = None,
        input_quant: Any = None,
        output_quant: Any = None,
        return_quant_tensor: bool = False,
        device: Any = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        self._torch_conv.__init__(
            self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
            device=device, dtype=dtype,
        )  # fmt: skip
        self._init_wbiol(weight_quant, bias_quant, input_quant, output_quant, return_quant_tensor, kwargs)

    def inner_forward_impl(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        tangent = scale_tangent(x)
        if tangent is None:
            return self._conv_forward(x, weight, bias)  # type: ignore[attr-defined]
        # x quantizes data with a learned scale: the scale's gradient needs no input gradient here
        # (brevitas.function.adjoint), which float training never computes either
        detached = x.detach()
        copy_recipe(x, detached)  # brevitas.memory.recompute_quantized: the convolution keeps this alias
        out = self._conv_forward(detached, weight, bias)  # type: ignore[attr-defined]
        frozen = weight.detach()
        batched = x.dim() == len(self.kernel_size) + 2
        linear = lambda d: self._conv_forward(d, frozen, None)  # noqa: E731  # type: ignore[attr-defined]
        return with_input_scale_grad(out, tangent, linear, frozen, batched=batched)

    @property
    def reduction_size(self) -> int:
        """``in_channels / groups * prod(kernel_size)`` products per output element."""
        return (self.in_channels // self.groups) * math.prod(self.kernel_size)

    def _output_channel_shape(self, ndim: int) -> tuple[int, ...]:
        spatial = len(self.kernel_size)
        if ndim == spatial + 1:  # unbatched input
            return (self.out_channels,) + (1,) * spatial
        return (1, self.out_channels) + (1,) * spatial

    def _weight_int_sums(self, int_weight: Tensor) -> Tensor:
        return int_weight.reshape(int_weight.shape[0], -1).sum(1)


class QuantConv1d(_QuantConvNd, nn.Conv1d):
    """``torch.nn.Conv1d`` with quantizers (see :mod:`brevitas.nn.quant_layer` for the keywords).

    Example:
        >>> import torch
        >>> QuantConv1d(2, 4, 3)(torch.randn(1, 2, 10)).shape
        torch.Size([1, 4, 8])
    """

    _torch_conv = nn.Conv1d


class QuantConv2d(_QuantConvNd, nn.Conv2d):
    """``torch.nn.Conv2d`` with quantizers (see :mod:`brevitas.nn.quant_layer` for the keywords).

    Example:
        >>> import torch
        >>> from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8Bias
        >>> conv = QuantConv2d(3, 4, 3, bias_quant=Int8Bias, input_quant=Int8ActPerTensorFloat,
        ...                    output_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
        >>> out = conv(torch.randn(1, 3, 5, 5))
        >>> int(out.bit_width)
        8
    """

    _torch_conv = nn.Conv2d


class QuantConv3d(_QuantConvNd, nn.Conv3d):
    """``torch.nn.Conv3d`` with quantizers (see :mod:`brevitas.nn.quant_layer` for the keywords).

    Example:
        >>> import torch
        >>> QuantConv3d(2, 4, 3)(torch.randn(1, 2, 4, 4, 4)).shape
        torch.Size([1, 4, 2, 2, 2])
    """

    _torch_conv = nn.Conv3d
