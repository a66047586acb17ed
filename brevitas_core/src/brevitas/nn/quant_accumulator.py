"""Re-quantization of accumulators: :class:`TruncQuantAccumulator`, :class:`ClampQuantAccumulator`.

Both take a valid QuantTensor (typically the output of a weight layer with
``return_quant_tensor=True``) and bring it to fewer bits: truncation drops
least-significant bits (the scale grows), clamping saturates (the scale is
kept). They return QuantTensors by default.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantIdentity, QuantLinear, TruncQuantAccumulator
    >>> fc = QuantLinear(8, 4, bias=False, input_quant=None, return_quant_tensor=True)
    >>> acc = fc(QuantIdentity(return_quant_tensor=True)(torch.randn(2, 8)))
    >>> int(acc.bit_width) > 8, int(TruncQuantAccumulator()(acc).bit_width)
    (True, 8)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from brevitas.nn.quant_layer import QuantLayerMixin, split_quant_kwargs
from brevitas.proxy import ClampQuantProxy, TruncQuantProxy
from brevitas.quant.scaled_int import TruncTo8bit

__all__ = ["ClampQuantAccumulator", "TruncQuantAccumulator"]


class TruncQuantAccumulator(QuantLayerMixin, nn.Module):
    """Drops least-significant bits of a valid QuantTensor with ``trunc_quant`` (default ``TruncTo8bit``).

    Keywords without a prefix (or with ``trunc_``) override the quantizer
    (``TruncQuantAccumulator(bit_width=4)``).
    """

    def __init__(self, trunc_quant: Any = TruncTo8bit, return_quant_tensor: bool = True, **kwargs: Any) -> None:
        nn.Module.__init__(self)
        self._init_quant_layer(return_quant_tensor)
        routed = split_quant_kwargs(kwargs, ("trunc",), type(self).__name__, default="trunc")
        self._make_proxy("trunc_quant", TruncQuantProxy, trunc_quant, routed.get("trunc", {}))

    @property
    def is_trunc_quant_enabled(self) -> bool:
        """Whether the accumulator is truncated."""
        return self.trunc_quant.is_quant_enabled

    def forward(self, input: Any) -> Any:
        """Truncate ``input`` (a valid QuantTensor; anything passes through when disabled)."""
        return self._pack(self.trunc_quant(input))


class ClampQuantAccumulator(QuantLayerMixin, nn.Module):
    """Saturates a valid QuantTensor to fewer bits with ``clamp_quant`` (same scale).

    Disabled by default (``clamp_quant=None``), as in the original Brevitas;
    give it a quantizer whose ``tensor_quant`` re-quantizes
    ``(x, scale, zero_point, input_bit_width)``, such as one built on
    ``brevitas_plugins.core.quant.ClampQuant``.
    """

    def __init__(self, clamp_quant: Any = None, return_quant_tensor: bool = True, **kwargs: Any) -> None:
        nn.Module.__init__(self)
        self._init_quant_layer(return_quant_tensor)
        routed = split_quant_kwargs(kwargs, ("clamp",), type(self).__name__, default="clamp")
        self._make_proxy("clamp_quant", ClampQuantProxy, clamp_quant, routed.get("clamp", {}))

    @property
    def is_clamp_quant_enabled(self) -> bool:
        """Whether the accumulator is clamped."""
        return self.clamp_quant.is_quant_enabled

    def forward(self, input: Any) -> Any:
        """Clamp ``input`` (a valid QuantTensor; anything passes through when disabled)."""
        return self._pack(self.clamp_quant(input))
