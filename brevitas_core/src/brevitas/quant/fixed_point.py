"""Fixed-point quantizers: integers with a power-of-two scale (a radix point), as FINN and PyXIR want.

The threshold is restricted to a power of two (exponent rounded up) and
divided by a power of two (``2**(b-1)`` signed, ``2**b`` unsigned), so every
scale is an exact power of two. A zero-point other than 0 is refused with a
power-of-two scale.

Example:
    >>> import torch
    >>> from brevitas.quant.fixed_point import Int8WeightPerTensorFixedPoint
    >>> w = torch.nn.Parameter(torch.tensor([0.3, -0.7]))
    >>> quant = Int8WeightPerTensorFixedPoint.let(tracked_parameter_list=[w])
    >>> y, scale, zero_point, bit_width = quant.tensor_quant(w)
    >>> float(torch.log2(scale.detach()))  # 1.0 / 128
    -7.0
"""

from __future__ import annotations

from brevitas.quant.base import (
    IntQuant,
    MaxStatsScaling,
    NarrowIntQuant,
    ParamFromRuntimePercentileScaling,
    ParamMinMaxInitScaling,
    PerTensorPoTScaling8bit,
    UintQuant,
)
from brevitas.quant.solver.act import ActQuantSolver
from brevitas.quant.solver.bias import BiasQuantSolver
from brevitas.quant.solver.weight import WeightQuantSolver

__all__ = [
    "Int8ActPerTensorFixedPoint",
    "Int8BiasPerTensorFixedPointInternalScaling",
    "Int8WeightPerTensorFixedPoint",
    "Uint8ActPerTensorFixedPoint",
    "Uint8ActPerTensorFixedPointMaxInit",
]


class Int8WeightPerTensorFixedPoint(NarrowIntQuant, MaxStatsScaling, PerTensorPoTScaling8bit, WeightQuantSolver):
    """8-bit narrow signed fixed-point weights; the radix point from ``max |w|``.

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=False, weight_quant=Int8WeightPerTensorFixedPoint)
    """


class Int8ActPerTensorFixedPoint(IntQuant, ParamFromRuntimePercentileScaling, PerTensorPoTScaling8bit, ActQuantSolver):
    """8-bit signed fixed-point activations; learned radix point initialized from runtime statistics.

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> act = QuantIdentity(act_quant=Int8ActPerTensorFixedPoint)
    """


class Uint8ActPerTensorFixedPoint(
    UintQuant, ParamFromRuntimePercentileScaling, PerTensorPoTScaling8bit, ActQuantSolver
):
    """8-bit unsigned fixed-point activations; learned radix point initialized from runtime statistics.

    Example:
        >>> from brevitas.nn import QuantReLU
        >>> act = QuantReLU(act_quant=Uint8ActPerTensorFixedPoint)
    """


class Uint8ActPerTensorFixedPointMaxInit(UintQuant, ParamMinMaxInitScaling, PerTensorPoTScaling8bit, ActQuantSolver):
    """8-bit unsigned fixed-point activations; learned radix point initialized from ``max_val``.

    Example:
        >>> from brevitas.nn import QuantHardTanh
        >>> act = QuantHardTanh(act_quant=Uint8ActPerTensorFixedPointMaxInit, max_val=0.5)
    """

    min_val = 0.0


class Int8BiasPerTensorFixedPointInternalScaling(IntQuant, MaxStatsScaling, PerTensorPoTScaling8bit, BiasQuantSolver):
    """8-bit signed fixed-point bias with its own radix point from ``max |b|``.

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=True, bias_quant=Int8BiasPerTensorFixedPointInternalScaling)
    """

    requires_input_scale = False
    requires_input_bit_width = False
