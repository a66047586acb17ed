"""The solver: quantizer enums and names to registered components, at injection time.

Put one solver last in a quantizer's bases: :class:`WeightQuantSolver`,
:class:`BiasQuantSolver`, :class:`ActQuantSolver` or :class:`TruncQuantSolver`.
Each is a composition of the small mixins of :mod:`brevitas.quant.solver.common`.

Example:
    >>> from brevitas.quant.solver import ActQuantSolver
    >>> class FloatAct(ActQuantSolver):
    ...     quant_type = "fp"
    >>> FloatAct.tensor_quant is None
    True
"""

from brevitas.quant.solver.act import ActQuantSolver
from brevitas.quant.solver.bias import BiasQuantSolver
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
    output_channel_axis,
    resolve,
)
from brevitas.quant.solver.trunc import TruncQuantSolver
from brevitas.quant.solver.weight import WeightQuantSolver

__all__ = [
    "ActQuantSolver",
    "BiasQuantSolver",
    "SolveBitWidthImplFromEnum",
    "SolveFloatToIntFromEnum",
    "SolveRestrictScalingFromEnum",
    "SolveScalingFromEnum",
    "SolveScalingShape",
    "SolveStatsOpFromEnum",
    "SolveStatsViewAndReduceDim",
    "SolveTensorQuantFromEnum",
    "SolveZeroPointFromEnum",
    "TruncQuantSolver",
    "WeightQuantSolver",
    "output_channel_axis",
    "resolve",
]
