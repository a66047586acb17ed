"""The weight solver: every enum of a weight quantizer to its component.

Example:
    >>> import torch
    >>> from brevitas.quant.scaled_int import Int8WeightPerChannelFloat
    >>> conv = torch.nn.Conv2d(3, 8, 3)
    >>> q = Int8WeightPerChannelFloat.let(module=conv, tracked_parameter_list=[conv.weight])
    >>> y, scale, zero_point, bit_width = q.tensor_quant(conv.weight)
    >>> tuple(scale.shape), int(bit_width)
    ((8, 1, 1, 1), 8)
"""

from __future__ import annotations

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
)

__all__ = ["WeightQuantSolver"]


class WeightQuantSolver(
    SolveTensorQuantFromEnum,
    SolveScalingFromEnum,
    SolveBitWidthImplFromEnum,
    SolveRestrictScalingFromEnum,
    SolveStatsOpFromEnum,
    SolveFloatToIntFromEnum,
    SolveZeroPointFromEnum,
    SolveScalingShape,
    SolveStatsViewAndReduceDim,
):
    """Translate the enums of a weight quantizer into components (``quant_role = 'weight'``).

    Put it last in a quantizer's bases, so that the quantizer's own
    attributes (and any component it names directly) win. Statistics are
    taken over ``tracked_parameter_list`` (set by the proxy); per-channel
    shapes come from ``module`` (see :class:`~brevitas.quant.solver.common.SolveScalingShape`).
    """

    quant_role = "weight"
