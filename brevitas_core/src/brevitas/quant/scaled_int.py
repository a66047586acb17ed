"""Integer quantizers with a floating-point scale (uniform, symmetric).

Weights: :class:`Int8WeightPerTensorFloat`, :class:`Int8WeightPerChannelFloat`
(scale = ``max |w|`` of the weights, every step). Activations:
:class:`Int8ActPerTensorFloat`, :class:`Uint8ActPerTensorFloat` (learned
scale initialized from the 99.999th percentile of ``|x|`` over 300 training
steps), :class:`Int8ActPerTensorFloatMinMaxInit`,
:class:`Uint8ActPerTensorFloatMaxInit` (learned scale initialized from
``min_val`` / ``max_val``). Biases: :class:`Int8Bias` (on the accumulator's
grid: scale = input scale x weight scale), :class:`Int8BiasPerTensorFloatInternalScaling`.
Truncation: :class:`TruncTo8bit`.

Example:
    >>> import torch
    >>> from brevitas.quant.scaled_int import Int8WeightPerTensorFloat
    >>> w = torch.nn.Parameter(torch.tensor([0.5, -1.27, 0.01]))
    >>> y, scale, zero_point, bit_width = Int8WeightPerTensorFloat.let(tracked_parameter_list=[w]).tensor_quant(w)
    >>> (y / scale).round().tolist(), round(float(scale.detach()) * 127, 4)
    ([50.0, -127.0, 1.0], 1.27)
"""

from __future__ import annotations

from brevitas.quant.base import (
    IntQuant,
    IntTrunc,
    MaxStatsScaling,
    NarrowIntQuant,
    ParamFromRuntimePercentileScaling,
    ParamMinMaxInitScaling,
    PerChannelFloatScaling8bit,
    PerTensorFloatScaling8bit,
    UintQuant,
)
from brevitas.quant.solver.act import ActQuantSolver
from brevitas.quant.solver.bias import BiasQuantSolver
from brevitas.quant.solver.trunc import TruncQuantSolver
from brevitas.quant.solver.weight import WeightQuantSolver

__all__ = [
    "Int8ActPerTensorFloat",
    "Int8ActPerTensorFloatMinMaxInit",
    "Int8Bias",
    "Int8BiasPerTensorFloatInternalScaling",
    "Int8WeightPerChannelFloat",
    "Int8WeightPerTensorFloat",
    "Int16Bias",
    "Int32Bias",
    "IntBias",
    "TruncTo8bit",
    "Uint8ActPerTensorFloat",
    "Uint8ActPerTensorFloatMaxInit",
]


class Int8WeightPerTensorFloat(NarrowIntQuant, MaxStatsScaling, PerTensorFloatScaling8bit, WeightQuantSolver):
    """8-bit narrow signed weights, one float scale per tensor from ``max |w|``.

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=False, weight_quant=Int8WeightPerTensorFloat)
    """


class Int8WeightPerChannelFloat(NarrowIntQuant, MaxStatsScaling, PerChannelFloatScaling8bit, WeightQuantSolver):
    """8-bit narrow signed weights, one float scale per output channel from its ``max |w|``.

    Example:
        >>> from brevitas.nn import QuantConv2d
        >>> conv = QuantConv2d(3, 8, 3, weight_quant=Int8WeightPerChannelFloat)
    """


class Int8ActPerTensorFloat(IntQuant, ParamFromRuntimePercentileScaling, PerTensorFloatScaling8bit, ActQuantSolver):
    """8-bit signed activations; learned float scale initialized from runtime percentile statistics.

    The 99.999th percentile of ``|x|`` is averaged over the first 300 training
    steps, then the threshold is a learned parameter. The default of
    ``QuantIdentity``.

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> act = QuantIdentity(act_quant=Int8ActPerTensorFloat)
    """


class Uint8ActPerTensorFloat(UintQuant, ParamFromRuntimePercentileScaling, PerTensorFloatScaling8bit, ActQuantSolver):
    """8-bit unsigned activations; learned float scale initialized from runtime percentile statistics.

    The default of ``QuantReLU``.

    Example:
        >>> from brevitas.nn import QuantReLU
        >>> act = QuantReLU(act_quant=Uint8ActPerTensorFloat)
    """


class Int8ActPerTensorFloatMinMaxInit(IntQuant, ParamMinMaxInitScaling, PerTensorFloatScaling8bit, ActQuantSolver):
    """8-bit signed activations; learned float scale initialized from ``max(|min_val|, |max_val|)``.

    ``min_val`` / ``max_val`` are given by the layer (``QuantHardTanh(min_val=-1.0, max_val=1.0)``,
    its default) or as quantizer attributes.

    Example:
        >>> from brevitas.nn import QuantHardTanh
        >>> act = QuantHardTanh(act_quant=Int8ActPerTensorFloatMinMaxInit, min_val=-0.5, max_val=0.5)
    """


class Uint8ActPerTensorFloatMaxInit(UintQuant, ParamMinMaxInitScaling, PerTensorFloatScaling8bit, ActQuantSolver):
    """8-bit unsigned activations; learned float scale initialized from ``max_val``.

    Example:
        >>> from brevitas.nn import QuantHardTanh
        >>> act = QuantHardTanh(act_quant=Uint8ActPerTensorFloatMaxInit, max_val=6.0)
    """

    min_val = 0.0


class IntBias(IntQuant, BiasQuantSolver):
    """Signed integer bias on the accumulator's grid: its scale and bit-width are the accumulator's.

    The layer passes the input scale x weight scale and the accumulator's
    bit-width at call time.

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=True, bias_quant=IntBias)
    """

    requires_input_scale = True
    requires_input_bit_width = True


class Int8Bias(IntBias):
    """8-bit signed bias on the accumulator's grid: scale = input scale x weight scale.

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=True, bias_quant=Int8Bias)
    """

    bit_width = 8
    requires_input_bit_width = False


class Int16Bias(IntBias):
    """16-bit signed bias on the accumulator's grid."""

    bit_width = 16
    requires_input_bit_width = False


class Int32Bias(IntBias):
    """32-bit signed bias on the accumulator's grid."""

    bit_width = 32
    requires_input_bit_width = False


class Int8BiasPerTensorFloatInternalScaling(IntQuant, MaxStatsScaling, PerTensorFloatScaling8bit, BiasQuantSolver):
    """8-bit signed bias with its own float scale from ``max |b|`` (no input scale needed).

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=True, bias_quant=Int8BiasPerTensorFloatInternalScaling)
    """

    requires_input_scale = False
    requires_input_bit_width = False


class TruncTo8bit(IntTrunc, TruncQuantSolver):
    """Truncate an integer tensor to 8 bits, dropping least-significant bits (average pooling, accumulators).

    ``tensor_quant(x, scale, zero_point, input_bit_width)`` returns the
    value on the coarser grid, its scale, zero-point and bit-width 8.

    Example:
        >>> import torch
        >>> x = torch.tensor([1020.0, -9.0])  # 10-bit integers at scale 1
        >>> y, scale, zero_point, bit_width = TruncTo8bit.tensor_quant(
        ...     x, torch.tensor(1.0), torch.tensor(0.0), torch.tensor(10.0))
        >>> y.tolist(), float(scale), int(bit_width)
        ([1020.0, -12.0], 4.0, 8)
    """

    bit_width = 8
