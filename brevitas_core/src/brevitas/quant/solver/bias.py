"""The bias solver: a bias quantized on the accumulator's grid, or with its own scale.

A bias quantizer with ``requires_input_scale = True`` (``Int8Bias``) takes
its scale at call time: the proxy passes the scale of the product input x
weight, and ``tensor_quant.forward(x, scale, input_bit_width=None)`` returns
``(y, scale, zero_point, bit_width)``. Its ``tensor_quant`` is the
``tensor_quant`` registered as ``prescaled_int``. With
``requires_input_bit_width = True`` the bit-width is taken from the
accumulator too (``input_bit_width``) instead of ``bit_width``.
Otherwise (``Int8BiasPerTensorFloatInternalScaling``) it is solved like a
weight quantizer over ``tracked_parameter_list = [layer.bias]``.

Example:
    >>> import torch
    >>> from brevitas.quant.scaled_int import Int8Bias
    >>> y, scale, zero_point, bit_width = Int8Bias.tensor_quant(torch.tensor([0.3, -0.2]), torch.tensor(0.01))
    >>> (y / scale).round().tolist(), int(bit_width)
    ([30.0, -20.0], 8)
"""

from __future__ import annotations

from brevitas.errors import ConfigError
from brevitas.inject import value
from brevitas.inject.enum import QuantType
from brevitas.quant.solver.common import (
    SolveBitWidthImplFromEnum,
    SolveFloatToIntFromEnum,
    SolveRestrictScalingFromEnum,
    SolveScalingFromEnum,
    SolveScalingShape,
    SolveStatsOpFromEnum,
    SolveStatsViewAndReduceDim,
    SolveTensorQuantFromEnum,
    SolveZeroPointFromEnum,
    resolve,
)

__all__ = ["BiasQuantSolver", "PRESCALED_INT"]

#: the ``tensor_quant`` name of an integer quantizer whose scale is given at call time
PRESCALED_INT = "prescaled_int"


class SolveBiasTensorQuantFromEnum(SolveTensorQuantFromEnum):
    """``tensor_quant`` of a bias: ``prescaled_int`` when the scale comes from the accumulator."""

    requires_input_scale = False
    requires_input_bit_width = False

    @value
    def tensor_quant(quant_type, quant_role=None, requires_input_scale=False):
        if not requires_input_scale:
            return resolve("tensor_quant", quant_type, quant_role, attribute="quant_type")
        if resolve("tensor_quant", quant_type, quant_role, attribute="quant_type") is None:
            return None  # QuantType.FP: no quantization
        if QuantType.INT != quant_type:
            raise ConfigError(
                f"requires_input_scale=True quantizes the bias on the accumulator's integer grid, so it needs "
                f"quant_type=INT, got {quant_type!r}; set requires_input_scale=False and a scaling "
                f"(e.g. scaling_impl_type='stats') for a {quant_type} bias"
            )
        return resolve("tensor_quant", PRESCALED_INT, quant_role)

    @value
    def bit_width_impl(bit_width_impl_type, requires_input_bit_width=False):
        if requires_input_bit_width:
            return None  # the accumulator's bit-width is passed at call time
        return resolve("bit_width", bit_width_impl_type, attribute="bit_width_impl_type")


class BiasQuantSolver(
    SolveBiasTensorQuantFromEnum,
    SolveScalingFromEnum,
    SolveBitWidthImplFromEnum,
    SolveRestrictScalingFromEnum,
    SolveStatsOpFromEnum,
    SolveFloatToIntFromEnum,
    SolveZeroPointFromEnum,
    SolveScalingShape,
    SolveStatsViewAndReduceDim,
):
    """Translate the enums of a bias quantizer into components (``quant_role = 'bias'``).

    ``requires_input_scale`` (default ``False``) and
    ``requires_input_bit_width`` (default ``False``) tell the proxy what to
    pass at call time; see the module docstring.
    """

    quant_role = "bias"
