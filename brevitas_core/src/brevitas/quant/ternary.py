"""Ternary quantizers: ``{-s, 0, +s}``, as a narrow 2-bit signed integer (codes -1, 0, 1).

A value becomes 0 when ``|x| <= s / 2`` (rounding to the nearest code), the
same as the ``ternary`` tensor quantizer with ``threshold = 0.5``; being an
ordinary integer quantizer, it exports like any 2-bit integer.
``...Const``: a constant scale; ``...Float``: a learned float scale.

Example:
    >>> import torch
    >>> from brevitas.quant.ternary import SignedTernaryActPerTensorConst
    >>> y, scale, zero_point, bit_width = SignedTernaryActPerTensorConst.tensor_quant(torch.tensor([-0.7, 0.2, 3.0]))
    >>> y.tolist(), int(bit_width)
    ([-1.0, 0.0, 1.0], 2)
"""

from __future__ import annotations

from brevitas.inject.enum import ScalingImplType, StatsOp
from brevitas.quant.base import NarrowIntQuant, PerTensorConstScaling2bit
from brevitas.quant.solver.act import ActQuantSolver
from brevitas.quant.solver.weight import WeightQuantSolver

__all__ = [
    "SignedTernaryActPerTensorConst",
    "SignedTernaryActPerTensorFloat",
    "SignedTernaryWeightPerTensorConst",
    "SignedTernaryWeightPerTensorFloat",
]


class SignedTernaryWeightPerTensorConst(NarrowIntQuant, PerTensorConstScaling2bit, WeightQuantSolver):
    """Ternary weights ``{-0.1, 0, +0.1}``: a constant scale (``scaling_init``, default 0.1).

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=False, weight_quant=SignedTernaryWeightPerTensorConst)
    """

    scaling_init = 0.1


class SignedTernaryActPerTensorConst(NarrowIntQuant, PerTensorConstScaling2bit, ActQuantSolver):
    """Ternary activations ``{-1, 0, +1}``: a constant scale ``max(|min_val|, |max_val|)`` (default 1).

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> act = QuantIdentity(act_quant=SignedTernaryActPerTensorConst)
    """

    min_val = -1.0
    max_val = 1.0


class SignedTernaryWeightPerTensorFloat(NarrowIntQuant, PerTensorConstScaling2bit, WeightQuantSolver):
    """Ternary weights with a learned float scale, initialized from the weights' mean ``|w|``.

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=False, weight_quant=SignedTernaryWeightPerTensorFloat)
    """

    scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS
    scaling_stats_op = StatsOp.AVE


class SignedTernaryActPerTensorFloat(NarrowIntQuant, PerTensorConstScaling2bit, ActQuantSolver):
    """Ternary activations with a learned float scale, initialized from ``max(|min_val|, |max_val|)`` (default 1).

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> act = QuantIdentity(act_quant=SignedTernaryActPerTensorFloat)
    """

    scaling_impl_type = ScalingImplType.PARAMETER
    min_val = -1.0
    max_val = 1.0
