"""Max pooling on QuantTensors: :class:`QuantMaxPool1d`, :class:`QuantMaxPool2d`.

Max pooling picks existing values, so a QuantTensor input keeps its
metadata. These layers quantize nothing and return QuantTensors by default.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantIdentity, QuantMaxPool2d
    >>> x = QuantIdentity(return_quant_tensor=True)(torch.randn(1, 1, 4, 4))
    >>> QuantMaxPool2d(2)(x).is_valid
    True
"""

from __future__ import annotations

from typing import Any

from torch import nn

from brevitas.nn.quant_layer import QuantLayerMixin

__all__ = ["QuantMaxPool1d", "QuantMaxPool2d"]


class _QuantMaxPoolMixin(QuantLayerMixin):
    def forward(self, input: Any) -> Any:
        """Max pooling of the value; a valid QuantTensor keeps its metadata."""
        out = super().forward(input)  # type: ignore[misc]
        if isinstance(out, tuple):  # return_indices=True
            return (self._pack(out[0]), out[1])
        return self._pack(out)


class QuantMaxPool1d(_QuantMaxPoolMixin, nn.MaxPool1d):
    """``torch.nn.MaxPool1d`` passing QuantTensor metadata through.

    Example:
        >>> import torch
        >>> QuantMaxPool1d(2, return_quant_tensor=False)(torch.tensor([[[1.0, 3.0, 2.0, 0.0]]])).tolist()
        [[[3.0, 2.0]]]
    """

    def __init__(
        self,
        kernel_size: int | tuple[int],
        stride: int | tuple[int] | None = None,
        padding: int | tuple[int] = 0,
        dilation: int | tuple[int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        return_quant_tensor: bool = True,
    ) -> None:
        nn.MaxPool1d.__init__(self, kernel_size, stride, padding, dilation, return_indices, ceil_mode)
        self._init_quant_layer(return_quant_tensor)


class QuantMaxPool2d(_QuantMaxPoolMixin, nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` passing QuantTensor metadata through.

    Example:
        >>> import torch
        >>> QuantMaxPool2d(2, return_quant_tensor=False)(torch.arange(4.0).view(1, 1, 2, 2)).flatten().tolist()
        [3.0]
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        return_quant_tensor: bool = True,
    ) -> None:
        nn.MaxPool2d.__init__(self, kernel_size, stride, padding, dilation, return_indices, ceil_mode)
        self._init_quant_layer(return_quant_tensor)
