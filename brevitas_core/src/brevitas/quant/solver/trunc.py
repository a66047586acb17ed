"""The truncation solver: re-quantizing an integer tensor (average pooling, accumulators) to fewer bits.

``tensor_quant`` is the ``int`` tensor quantizer solved for role ``trunc``
(``TruncIntQuant`` in the standard plugin):
``forward(x, scale, zero_point, input_bit_width) -> (y, scale, zero_point, bit_width)``,
dropping ``input_bit_width - bit_width`` least-significant bits with
``float_to_int_impl_type`` (FLOOR by default: a true truncation).

Example:
    >>> import torch
    >>> from brevitas.quant.scaled_int import TruncTo8bit
    >>> y, scale, zero_point, bit_width = TruncTo8bit.tensor_quant(
    ...     torch.tensor([1000.0, -7.0]), torch.tensor(1.0), torch.tensor(0.0), torch.tensor(10.0))
    >>> y.tolist(), float(scale), int(bit_width)
    ([1000.0, -8.0], 4.0, 8)
"""

from __future__ import annotations

from brevitas.inject.enum import FloatToIntImplType
from brevitas.quant.solver.common import (
    SolveBitWidthImplFromEnum,
    SolveFloatToIntFromEnum,
    SolveTensorQuantFromEnum,
)

__all__ = ["TruncQuantSolver"]


class TruncQuantSolver(SolveTensorQuantFromEnum, SolveBitWidthImplFromEnum, SolveFloatToIntFromEnum):
    """Translate the enums of a truncation quantizer into components (``quant_role = 'trunc'``)."""

    quant_role = "trunc"
    float_to_int_impl_type = FloatToIntImplType.FLOOR
