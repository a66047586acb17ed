"""Quantized transposed convolutions: :class:`QuantConvTranspose1d`, :class:`QuantConvTranspose2d`,
:class:`QuantConvTranspose3d`.

The weight layout is ``(C_in, C_out / groups, *kernel)``: per-output-channel
weight scales live on axis 1.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantConvTranspose2d
    >>> QuantConvTranspose2d(4, 2, 2, stride=2)(torch.randn(1, 4, 3, 3)).shape
    torch.Size([1, 2, 6, 6])
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from brevitas.nn.quant_conv import _QuantConvNd
from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer
from brevitas.quant.scaled_int import Int8WeightPerTensorFloat

__all__ = ["QuantConvTranspose1d", "QuantConvTranspose2d", "QuantConvTranspose3d"]

_FUNCTIONS = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class _QuantConvTransposeNd(QuantWeightBiasInputOutputLayer):
    """What the quantized transposed convolutions share."""

    in_channels: int
    out_channels: int
    groups: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    _torch_conv: ClassVar[type[nn.Module]]  # the torch.nn transposed convolution, initialized first

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, ...],
        stride: int | tuple[int, ...] = 1,
        padding: int | tuple[int, ...] = 0,
        output_padding: int | tuple[int, ...] = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: int | tuple[int, ...] = 1,
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
            self, in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias, dilation,
            padding_mode, device=device, dtype=dtype,
        )  # fmt: skip
        self._init_wbiol(weight_quant, bias_quant, input_quant, output_quant, return_quant_tensor, kwargs)

    def inner_forward_impl(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, output_size: list[int] | None = None
    ) -> Tensor:
        if self.padding_mode != "zeros":  # type: ignore[attr-defined]
            raise ValueError(f"Only 'zeros' padding mode is supported for {type(self).__name__}")
        spatial = len(self.kernel_size)
        padding = self.padding  # type: ignore[attr-defined]
        output_padding = self._output_padding(  # type: ignore[attr-defined]
            x, output_size, self.stride, padding, self.kernel_size, spatial, self.dilation
        )
        conv = _FUNCTIONS[spatial]
        return conv(x, weight, bias, self.stride, padding, output_padding, self.groups, self.dilation)

    @property
    def reduction_size(self) -> int:
        """Most products summed into one output element: ``in_channels / groups`` times the overlapping taps."""
        taps = 1
        for k, s, d in zip(self.kernel_size, self.stride, self.dilation):
            step = s // math.gcd(s, d)
            taps *= math.ceil(k / step)
        return (self.in_channels // self.groups) * taps

    _output_channel_shape = _QuantConvNd._output_channel_shape

    def _to_output_shape(self, t: Tensor, ndim: int) -> Tensor:
        if t.numel() == 1:
            return t.reshape(())
        flat = t.reshape(-1)
        if flat.numel() != self.out_channels:  # one value per channel of a group: same for every group
            flat = flat.repeat(self.groups)
        return flat.reshape(self._output_channel_shape(ndim))

    def _weight_int_sums(self, int_weight: Tensor) -> Tensor:
        g = self.groups
        per_group = int_weight.reshape(g, self.in_channels // g, self.out_channels // g, -1)
        return per_group.sum(dim=(1, 3)).reshape(-1)


class QuantConvTranspose1d(_QuantConvTransposeNd, nn.ConvTranspose1d):
    """``torch.nn.ConvTranspose1d`` with quantizers; ``forward(input, output_size=None)``.

    Example:
        >>> import torch
        >>> QuantConvTranspose1d(2, 3, 3)(torch.randn(1, 2, 5)).shape
        torch.Size([1, 3, 7])
    """

    _torch_conv = nn.ConvTranspose1d


class QuantConvTranspose2d(_QuantConvTransposeNd, nn.ConvTranspose2d):
    """``torch.nn.ConvTranspose2d`` with quantizers; ``forward(input, output_size=None)``.

    Example:
        >>> import torch
        >>> QuantConvTranspose2d(2, 3, 3, stride=2)(torch.randn(1, 2, 4, 4), output_size=[10, 10]).shape
        torch.Size([1, 3, 10, 10])
    """

    _torch_conv = nn.ConvTranspose2d


class QuantConvTranspose3d(_QuantConvTransposeNd, nn.ConvTranspose3d):
    """``torch.nn.ConvTranspose3d`` with quantizers; ``forward(input, output_size=None)``.

    Example:
        >>> import torch
        >>> QuantConvTranspose3d(2, 3, 2)(torch.randn(1, 2, 3, 3, 3)).shape
        torch.Size([1, 3, 4, 4, 4])
    """

    _torch_conv = nn.ConvTranspose3d
