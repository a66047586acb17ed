"""Upsampling on QuantTensors: :class:`QuantUpsample`.

Nearest-neighbour upsampling copies values, so a QuantTensor keeps its
metadata; other modes interpolate off the grid and give a non-valid result.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantIdentity, QuantUpsample
    >>> x = QuantIdentity(return_quant_tensor=True)(torch.randn(1, 1, 2, 2))
    >>> out = QuantUpsample(scale_factor=2)(x)
    >>> tuple(out.value.shape), out.is_valid
    ((1, 1, 4, 4), True)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from brevitas.nn.quant_layer import QuantLayerMixin
from brevitas.quant_tensor import QuantTensor

__all__ = ["QuantUpsample"]


class QuantUpsample(QuantLayerMixin, nn.Upsample):
    """``torch.nn.Upsample`` passing QuantTensor metadata through where it stays true.

    Example:
        >>> import torch
        >>> QuantUpsample(scale_factor=2, return_quant_tensor=False)(torch.ones(1, 1, 1)).tolist()
        [[[1.0, 1.0]]]
    """

    def __init__(
        self,
        size: Any = None,
        scale_factor: Any = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        return_quant_tensor: bool = True,
    ) -> None:
        nn.Upsample.__init__(self, size, scale_factor, mode, align_corners)
        self._init_quant_layer(return_quant_tensor)

    def forward(self, input: Any) -> Any:
        """Upsample the value; metadata kept for nearest modes."""
        out = nn.Upsample.forward(self, input)
        if isinstance(input, QuantTensor) and not isinstance(out, QuantTensor):
            out = QuantTensor(out, training=input.training)
        return self._pack(out)
