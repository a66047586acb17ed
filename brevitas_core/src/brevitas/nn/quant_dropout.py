"""Dropout on QuantTensors: :class:`QuantDropout`.

In training, kept values are multiplied by ``1 / (1 - p)``: they stay on a
grid whose scale is ``scale / (1 - p)`` (dropped ones are the zero-point), so
a QuantTensor stays valid. In eval mode it is the identity.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantDropout, QuantIdentity
    >>> x = QuantIdentity(return_quant_tensor=True)(torch.randn(4, 4))
    >>> QuantDropout(0.5).eval()(x).is_valid
    True
"""

from __future__ import annotations

from typing import Any

from torch import nn

from brevitas.nn.quant_layer import QuantLayerMixin

__all__ = ["QuantDropout"]


class QuantDropout(QuantLayerMixin, nn.Dropout):
    """``torch.nn.Dropout`` passing QuantTensor metadata through (the scale follows ``1 / (1 - p)``).

    Example:
        >>> import torch
        >>> torch.equal(QuantDropout(0.3, return_quant_tensor=False).eval()(torch.ones(3)), torch.ones(3))
        True
    """

    def __init__(self, p: float = 0.5, return_quant_tensor: bool = True) -> None:
        nn.Dropout.__init__(self, p)
        self._init_quant_layer(return_quant_tensor)

    def forward(self, input: Any) -> Any:
        """Dropout of the value, with the metadata updated."""
        return self._pack(nn.Dropout.forward(self, input))
