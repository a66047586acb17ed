"""Quantized average pooling: :class:`QuantAvgPool2d`, :class:`QuantAdaptiveAvgPool2d`.

The average of a quantized input is an accumulator: the sum of the integers,
on the grid ``scale / kernel_size``, with the smallest bit-width that holds
every such sum (:func:`brevitas.function.ops.sum_bit_width`: e.g. 8-bit codes
over a 2x2 window take 10 bits; binary codes ``{-1, +1}`` over a 2x2 window
sum to ``[-4, 4]`` and take 4). ``trunc_quant`` (default ``TruncTo8bit``)
then drops least-significant bits to bring it back to 8 bits. The input must be a valid QuantTensor (the
previous layer returns one with ``return_quant_tensor=True``) unless
``trunc_quant=None``. These layers return QuantTensors by default.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantAvgPool2d, QuantIdentity
    >>> quant_inp = QuantIdentity(return_quant_tensor=True)
    >>> out = QuantAvgPool2d(2)(quant_inp(torch.randn(1, 2, 4, 4)))
    >>> int(out.bit_width), tuple(out.value.shape)
    (8, (1, 2, 2, 2))
"""

from __future__ import annotations

from typing import Any

from torch import nn

from brevitas.nn.quant_layer import QuantLayerMixin, split_quant_kwargs
from brevitas.proxy import TruncQuantProxy
from brevitas.quant.scaled_int import TruncTo8bit
from brevitas.quant_tensor import QuantTensor

__all__ = ["QuantAdaptiveAvgPool2d", "QuantAvgPool2d"]


class _TruncPoolMixin(QuantLayerMixin):
    trunc_quant: TruncQuantProxy

    def _init_trunc(self, trunc_quant: Any, return_quant_tensor: bool, kwargs: dict[str, Any]) -> None:
        self._init_quant_layer(return_quant_tensor)
        routed = split_quant_kwargs(kwargs, ("trunc",), type(self).__name__, default="trunc")
        self._make_proxy("trunc_quant", TruncQuantProxy, trunc_quant, routed.get("trunc", {}))

    @property
    def is_trunc_quant_enabled(self) -> bool:
        """Whether the accumulator is truncated."""
        return self.trunc_quant.is_quant_enabled

    def _pool_and_trunc(self, input: Any) -> Any:
        trunc_quant = self.trunc_quant
        if trunc_quant.tensor_quant is not None and not (isinstance(input, QuantTensor) and input.is_valid):
            return self._pack(trunc_quant(input))  # raises, naming the layer
        out = super().forward(input)  # type: ignore[misc]  # the torch.nn pooling, QuantTensor-aware
        if trunc_quant.tensor_quant is not None:
            out = trunc_quant(out)
        return self._pack(out)


class QuantAvgPool2d(_TruncPoolMixin, nn.AvgPool2d):
    """``torch.nn.AvgPool2d`` whose quantized output is truncated by ``trunc_quant``.

    Example:
        >>> import torch
        >>> pool = QuantAvgPool2d(2, trunc_quant=None, return_quant_tensor=False)
        >>> x = torch.randn(1, 1, 4, 4)
        >>> torch.equal(pool(x), torch.nn.AvgPool2d(2)(x))
        True
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        trunc_quant: Any = TruncTo8bit,
        return_quant_tensor: bool = True,
        **kwargs: Any,
    ) -> None:
        nn.AvgPool2d.__init__(self, kernel_size, stride, padding)
        self._init_trunc(trunc_quant, return_quant_tensor, kwargs)

    def forward(self, input: Any) -> Any:
        """Average, then truncate (a valid QuantTensor input is required when truncating)."""
        return self._pool_and_trunc(input)


class QuantAdaptiveAvgPool2d(_TruncPoolMixin, nn.AdaptiveAvgPool2d):
    """``torch.nn.AdaptiveAvgPool2d`` whose quantized output is truncated by ``trunc_quant``.

    Truncation needs windows of one size: each input size a multiple of the
    output size.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantIdentity
        >>> x = QuantIdentity(return_quant_tensor=True)(torch.randn(1, 3, 4, 4))
        >>> tuple(QuantAdaptiveAvgPool2d(1)(x).value.shape)
        (1, 3, 1, 1)
    """

    def __init__(
        self,
        output_size: int | tuple[int, int],
        trunc_quant: Any = TruncTo8bit,
        return_quant_tensor: bool = True,
        **kwargs: Any,
    ) -> None:
        nn.AdaptiveAvgPool2d.__init__(self, output_size)
        self._init_trunc(trunc_quant, return_quant_tensor, kwargs)

    def forward(self, input: Any) -> Any:
        """Average, then truncate (a valid QuantTensor input is required when truncating)."""
        return self._pool_and_trunc(input)
