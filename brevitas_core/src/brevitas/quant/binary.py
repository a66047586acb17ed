"""Binary quantizers: ``{-s, +s}`` (sign times a scale, ``sign(0) = +1``), 1 bit.

Weights use a sign with a straight-through gradient; activations clamp to
``[-s, s]`` first, so the gradient stops outside the range. ``...Const``:
a constant scale; ``...Float``: a learned float scale.

Example:
    >>> import torch
    >>> from brevitas.quant.binary import SignedBinaryActPerTensorConst
    >>> y, scale, zero_point, bit_width = SignedBinaryActPerTensorConst.tensor_quant(torch.tensor([-0.3, 0.0, 2.0]))
    >>> y.tolist(), int(bit_width)
    ([-1.0, 1.0, 1.0], 1)
"""

from __future__ import annotations

from brevitas.inject.enum import ScalingImplType, StatsOp
from brevitas.quant.base import SignedBinaryClampedConst
from brevitas.quant.solver.act import ActQuantSolver
from brevitas.quant.solver.weight import WeightQuantSolver

__all__ = [
    "SignedBinaryActPerTensorConst",
    "SignedBinaryActPerTensorFloat",
    "SignedBinaryWeightPerTensorConst",
    "SignedBinaryWeightPerTensorFloat",
]


class SignedBinaryWeightPerTensorConst(SignedBinaryClampedConst, WeightQuantSolver):
    """Binary weights ``{-0.1, +0.1}``: a constant scale (``scaling_init``, default 0.1).

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=False, weight_quant=SignedBinaryWeightPerTensorConst)
    """

    scaling_init = 0.1


class SignedBinaryActPerTensorConst(SignedBinaryClampedConst, ActQuantSolver):
    """Binary activations ``{-1, +1}``: a constant scale ``max(|min_val|, |max_val|)`` (default 1).

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> act = QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
    """

    min_val = -1.0
    max_val = 1.0


class SignedBinaryWeightPerTensorFloat(SignedBinaryClampedConst, WeightQuantSolver):
    """Binary weights with a learned float scale, initialized from the weights' mean ``|w|``.

    The mean of ``|w|`` is the scale minimizing the binarization error (XNOR-Net).

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> fc = QuantLinear(10, 5, bias=False, weight_quant=SignedBinaryWeightPerTensorFloat)
    """

    scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS
    scaling_stats_op = StatsOp.AVE


class SignedBinaryActPerTensorFloat(SignedBinaryClampedConst, ActQuantSolver):
    """Binary activations with a learned float scale, initialized from ``max(|min_val|, |max_val|)`` (default 1).

    Example:
        >>> from brevitas.nn import QuantIdentity
        >>> act = QuantIdentity(act_quant=SignedBinaryActPerTensorFloat)
    """

    scaling_impl_type = ScalingImplType.PARAMETER
    min_val = -1.0
    max_val = 1.0
