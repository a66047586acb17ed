"""Unsigned integer quantizers with a float scale and an integer zero-point (asymmetric).

The scale covers the width of the range ``max(x, 0) - min(x, 0)`` over
``2**8 - 1`` steps and the zero-point shifts the grid so it starts at
``min(x, 0)``, holding 0 exactly.

Example:
    >>> import torch
    >>> from brevitas.quant.shifted_scaled_int import ShiftedUint8WeightPerTensorFloat
    >>> w = torch.nn.Parameter(torch.tensor([-1.0, 0.0, 1.55]))
    >>> quant = ShiftedUint8WeightPerTensorFloat.let(tracked_parameter_list=[w])
    >>> y, scale, zero_point, bit_width = quant.tensor_quant(w)
    >>> int(zero_point), round(float(scale.detach()) * 255, 4)
    (100, 2.55)
"""

from __future__ import annotations

from brevitas.quant.base import (
    MinMaxStatsScaling,
    ParamFromRuntimeMinMaxScaling,
    PerChannelFloatScaling8bit,
    PerTensorFloatScaling8bit,
    ShiftedMinUintQuant,
    ShiftedParamFromRuntimeUintQuant,
)
from brevitas.quant.solver.act import ActQuantSolver
from brevitas.quant.solver.weight import WeightQuantSolver

__all__ = [
    "ShiftedUint8ActPerTensorFloat",
    "ShiftedUint8WeightPerChannelFloat",
    "ShiftedUint8WeightPerTensorFloat",
]


class ShiftedUint8ActPerTensorFloat(
    ShiftedParamFromRuntimeUintQuant, ParamFromRuntimeMinMaxScaling, PerTensorFloatScaling8bit, ActQuantSolver
):
    """8-bit unsigned activations with a zero-point; scale and zero-point learned from runtime statistics.

    Both collect statistics (range width and ``-min(x)``) for 300 training
    steps, then become learned parameters.

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> act = QuantIdentity(act_quant=ShiftedUint8ActPerTensorFloat)
    """


class ShiftedUint8WeightPerTensorFloat(
    ShiftedMinUintQuant, MinMaxStatsScaling, PerTensorFloatScaling8bit, WeightQuantSolver
):
    """8-bit unsigned weights with a zero-point; scale and zero-point from the weights' min and max.

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=False, weight_quant=ShiftedUint8WeightPerTensorFloat)
    """


class ShiftedUint8WeightPerChannelFloat(
    ShiftedMinUintQuant, MinMaxStatsScaling, PerChannelFloatScaling8bit, WeightQuantSolver
):
    """Like :class:`ShiftedUint8WeightPerTensorFloat`, one scale and zero-point per output channel.

    Example:
        >>> from brevitas.nn import QuantConv2d
        >>> conv = QuantConv2d(3, 8, 3, weight_quant=ShiftedUint8WeightPerChannelFloat)
    """
