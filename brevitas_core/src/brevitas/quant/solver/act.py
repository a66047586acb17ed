"""The activation solver: every enum of an activation quantizer to its component.

Example:
    >>> import torch
    >>> from brevitas.quant.scaled_int import Int8ActPerTensorFloatMinMaxInit
    >>> q = Int8ActPerTensorFloatMinMaxInit.let(min_val=-1.0, max_val=1.0)
    >>> y, scale, zero_point, bit_width = q.tensor_quant(torch.tensor([-2.0, 0.5]))
    >>> round(float(scale.detach()) * 128, 4)
    1.0
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

__all__ = ["ActQuantSolver"]


class ActQuantSolver(
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
    """Translate the enums of an activation quantizer into components (``quant_role = 'act'``).

    Statistics are taken at run time over the activations. A constant or
    learned threshold starts at ``scaling_init``, or ``max(|min_val|,
    |max_val|)`` (``QuantHardTanh``'s range). Per-channel scaling needs
    ``per_channel_broadcastable_shape`` (e.g. ``(1, C, 1, 1)``) and, when the
    channel axis is not axis 1, ``scaling_stats_permute_dims``.
    """

    quant_role = "act"
