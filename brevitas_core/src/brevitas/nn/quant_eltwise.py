"""Quantized element-wise addition and concatenation: :class:`QuantEltwiseAdd`, :class:`QuantCat`.

Both quantize every operand with one shared quantizer, so that in inference
mode the operands have the same scale and the result stays on a grid.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantEltwiseAdd
    >>> add = QuantEltwiseAdd(return_quant_tensor=True).eval()
    >>> out = add(torch.randn(2, 3), torch.randn(2, 3))
    >>> int(out.bit_width)
    8
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from brevitas.errors import ConfigError
from brevitas.nn.quant_layer import QuantLayerMixin, _InputOutputAccessors, split_quant_kwargs
from brevitas.proxy import ActQuantProxy
from brevitas.quant.scaled_int import Int8ActPerTensorFloat
from brevitas.quant_tensor import QuantTensor

__all__ = ["QuantCat", "QuantEltwiseAdd"]


class _QuantInputOutputLayer(QuantLayerMixin, _InputOutputAccessors, nn.Module):
    """One ``input_quant`` shared by every operand, and an ``output_quant``."""

    def __init__(
        self,
        input_quant: Any,
        output_quant: Any,
        tie_input_output_quant: bool,
        return_quant_tensor: bool,
        kwargs: dict[str, Any],
    ) -> None:
        nn.Module.__init__(self)
        self._init_quant_layer(return_quant_tensor)
        routed = split_quant_kwargs(kwargs, ("input", "output"), type(self).__name__)
        self._make_proxy("input_quant", ActQuantProxy, input_quant, routed.get("input", {}))
        if tie_input_output_quant:
            if routed.get("output"):
                raise ConfigError(
                    f"{type(self).__name__}: tie_input_output_quant=True uses the input quantizer for the output, "
                    f"so output_* keywords ({', '.join('output_' + k for k in routed['output'])}) have no effect; "
                    f"remove them or set tie_input_output_quant=False"
                )
            self.output_quant = self.input_quant
        else:
            self._make_proxy("output_quant", ActQuantProxy, output_quant, routed.get("output", {}))

    def _quant_output(self, out: Any) -> Any:
        output_quant = self.output_quant
        if output_quant.tensor_quant is not None:
            out = output_quant(out)
        return self._pack(out)


class QuantEltwiseAdd(_QuantInputOutputLayer):
    """``output_quant(input_quant(a) + input_quant(b))``.

    Args:
        input_quant: quantizer of both operands (default ``Int8ActPerTensorFloat``).
        output_quant: quantizer of the sum (default ``Int8ActPerTensorFloat``).
        tie_input_output_quant: use the input proxy for the output too.
        return_quant_tensor: return a QuantTensor.
        **kwargs: ``input_*`` / ``output_*`` quantizer overrides.

    Example:
        >>> import torch
        >>> add = QuantEltwiseAdd(input_quant=None, output_quant=None)
        >>> a, b = torch.randn(3), torch.randn(3)
        >>> torch.equal(add(a, b), a + b)
        True
    """

    def __init__(
        self,
        input_quant: Any = Int8ActPerTensorFloat,
        output_quant: Any = Int8ActPerTensorFloat,
        tie_input_output_quant: bool = False,
        return_quant_tensor: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(input_quant, output_quant, tie_input_output_quant, return_quant_tensor, kwargs)

    def forward(self, input: Any, other: Any) -> Any:
        """Sum of the quantized operands, quantized."""
        input_quant = self.input_quant
        if input_quant.tensor_quant is not None:
            input = input_quant(input)
            other = input_quant(other)
        return self._quant_output(input + other)


class QuantCat(_QuantInputOutputLayer):
    """``output_quant(torch.cat([input_quant(t) for t in tensors], dim))``.

    Every input goes through the same ``input_quant``, so in inference mode
    they share one grid and the concatenation stays on it.

    Args:
        input_quant: quantizer of the inputs (default ``Int8ActPerTensorFloat``).
        output_quant: quantizer of the result (default ``Int8ActPerTensorFloat``).
        tie_input_output_quant: use the input proxy for the output too.
        return_quant_tensor: return a QuantTensor.
        **kwargs: ``input_*`` / ``output_*`` quantizer overrides.

    Example:
        >>> import torch
        >>> cat = QuantCat(return_quant_tensor=True).eval()
        >>> out = cat([torch.randn(1, 2), torch.randn(1, 3)], dim=1)
        >>> tuple(out.value.shape), out.is_valid
        ((1, 5), True)
    """

    def __init__(
        self,
        input_quant: Any = Int8ActPerTensorFloat,
        output_quant: Any = Int8ActPerTensorFloat,
        tie_input_output_quant: bool = False,
        return_quant_tensor: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(input_quant, output_quant, tie_input_output_quant, return_quant_tensor, kwargs)

    def forward(self, tensor_list: Sequence[Any], dim: int = 1) -> Any:
        """Concatenation along ``dim`` of the quantized tensors, quantized."""
        input_quant = self.input_quant
        if input_quant.tensor_quant is not None:
            tensor_list = [input_quant(t) for t in tensor_list]
        if not all(isinstance(t, QuantTensor) for t in tensor_list):
            tensor_list = [t.value if isinstance(t, QuantTensor) else t for t in tensor_list]
        return self._quant_output(torch.cat(list(tensor_list), dim=dim))
