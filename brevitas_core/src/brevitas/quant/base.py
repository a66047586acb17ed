"""The small mixins prebuilt quantizers are composed of.

Each mixin sets a few attributes of one concern: the integer range
(:class:`IntQuant`, :class:`NarrowIntQuant`, :class:`UintQuant`,
:class:`ShiftedMinUintQuant`), where the scale comes from
(:class:`MaxStatsScaling`, :class:`ParamFromRuntimePercentileScaling`, ...)
and its granularity, restriction and bit-width
(:class:`PerTensorFloatScaling8bit`, :class:`PerTensorPoTScaling8bit`, ...).
They name enums, never components; a solver of
:mod:`brevitas.quant.solver`, last in the bases, turns the enums into
components. Compose your own the same way::

    class MyQuant(NarrowIntQuant, MaxStatsScaling, PerTensorFloatScaling8bit, WeightQuantSolver):
        bit_width = 4

Defaults worth knowing (as in the original Brevitas):
``ParamFromRuntimePercentileScaling`` collects the 99.999th percentile of
``|x|`` for 300 training steps, then learns the threshold from there.

Example:
    >>> from brevitas.quant.base import NarrowIntQuant
    >>> NarrowIntQuant.narrow_range, NarrowIntQuant.signed, str(NarrowIntQuant.quant_type)
    (True, True, 'int')
"""

from __future__ import annotations

from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.inject import BaseInjector as Injector
from brevitas.inject.enum import (
    BitWidthImplType,
    FloatToIntImplType,
    QuantType,
    RestrictValueType,
    ScalingImplType,
    StatsOp,
    ZeroPointImplType,
)

__all__ = [
    "IntQuant",
    "IntTrunc",
    "MaxStatsScaling",
    "MinMaxStatsScaling",
    "NarrowIntQuant",
    "ParamFromRuntimeMinMaxScaling",
    "ParamFromRuntimePercentileScaling",
    "ParamMinMaxInitScaling",
    "PerChannelFloatScaling8bit",
    "PerChannelPoTScaling8bit",
    "PerTensorConstScaling2bit",
    "PerTensorFloatScaling8bit",
    "PerTensorPoTScaling8bit",
    "ShiftedMinUintQuant",
    "ShiftedParamFromRuntimeUintQuant",
    "SignedBinaryClampedConst",
    "UintQuant",
]


# ---------------------------------------------------------------------------
# Integer range
# ---------------------------------------------------------------------------


class NarrowIntQuant(Injector):
    """Signed narrow-range integers (``[-(2**(b-1) - 1), 2**(b-1) - 1]``), zero-point 0."""

    quant_type = QuantType.INT
    bit_width_impl_type = BitWidthImplType.CONST
    narrow_range = True
    signed = True
    zero_point_impl = ZeroZeroPoint


class IntQuant(Injector):
    """Signed integers (``[-2**(b-1), 2**(b-1) - 1]``), zero-point 0."""

    quant_type = QuantType.INT
    bit_width_impl_type = BitWidthImplType.CONST
    narrow_range = False
    signed = True
    zero_point_impl = ZeroZeroPoint


class UintQuant(Injector):
    """Unsigned integers (``[0, 2**b - 1]``), zero-point 0."""

    quant_type = QuantType.INT
    bit_width_impl_type = BitWidthImplType.CONST
    narrow_range = False
    signed = False
    zero_point_impl = ZeroZeroPoint


class ShiftedMinUintQuant(Injector):
    """Unsigned integers shifted by a zero-point from the statistic ``-min(x)`` (every step).

    Pair it with :class:`MinMaxStatsScaling`, so the integer range covers
    ``[min(x), max(x)]`` and holds 0 exactly.
    """

    quant_type = QuantType.INT
    bit_width_impl_type = BitWidthImplType.CONST
    narrow_range = False
    signed = False
    zero_point_impl_type = ZeroPointImplType.STATS


class ShiftedParamFromRuntimeUintQuant(Injector):
    """Unsigned integers shifted by a learned zero-point, initialized from runtime ``-min(x)`` statistics.

    The zero-point collects statistics for ``collect_stats_steps`` training
    steps, like :class:`ParamFromRuntimeMinMaxScaling` (pair them).
    """

    quant_type = QuantType.INT
    bit_width_impl_type = BitWidthImplType.CONST
    narrow_range = False
    signed = False
    zero_point_impl_type = ZeroPointImplType.PARAMETER_FROM_STATS


class IntTrunc(Injector):
    """Truncation of integers: drop least-significant bits (round down)."""

    quant_type = QuantType.INT
    bit_width_impl_type = BitWidthImplType.CONST
    float_to_int_impl_type = FloatToIntImplType.FLOOR


# ---------------------------------------------------------------------------
# Where the threshold comes from
# ---------------------------------------------------------------------------


class MaxStatsScaling(Injector):
    """Threshold = ``max |x|`` of the tracked tensor (weights) or of each batch (activations)."""

    scaling_impl_type = ScalingImplType.STATS
    scaling_stats_op = StatsOp.MAX


class MinMaxStatsScaling(Injector):
    """Threshold = ``max(x, 0) - min(x, 0)``, the width of the range (for shifted quantizers)."""

    scaling_impl_type = ScalingImplType.STATS
    scaling_stats_op = StatsOp.MIN_MAX


class ParamFromRuntimePercentileScaling(Injector):
    """Learned threshold, initialized from the 99.999th percentile of ``|x|`` over 300 training steps."""

    scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS
    scaling_stats_op = StatsOp.PERCENTILE
    high_percentile_q = 99.999
    collect_stats_steps = 300


class ParamFromRuntimeMinMaxScaling(Injector):
    """Learned threshold, initialized from the range width ``max(x, 0) - min(x, 0)`` over 300 steps."""

    scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS
    scaling_stats_op = StatsOp.MIN_MAX
    collect_stats_steps = 300


class ParamMinMaxInitScaling(Injector):
    """Learned threshold, initialized from ``max(|min_val|, |max_val|)`` (e.g. ``QuantHardTanh``'s range)."""

    scaling_impl_type = ScalingImplType.PARAMETER


# ---------------------------------------------------------------------------
# Granularity, restriction, bit-width
# ---------------------------------------------------------------------------


class PerTensorFloatScaling8bit(Injector):
    """One floating-point scale per tensor, 8 bits."""

    scaling_per_output_channel = False
    restrict_scaling_type = RestrictValueType.FP
    bit_width = 8


class PerChannelFloatScaling8bit(Injector):
    """One floating-point scale per output channel, 8 bits."""

    scaling_per_output_channel = True
    restrict_scaling_type = RestrictValueType.FP
    bit_width = 8


class PerTensorPoTScaling8bit(Injector):
    """One power-of-two scale per tensor (fixed point), 8 bits.

    The exponent of the threshold is rounded up (``ceil``), so the range never
    shrinks below the statistic it comes from.
    """

    scaling_per_output_channel = False
    restrict_scaling_type = RestrictValueType.POWER_OF_TWO
    bit_width = 8
    restrict_value_float_to_int_impl_type = FloatToIntImplType.CEIL


class PerChannelPoTScaling8bit(Injector):
    """One power-of-two scale per output channel (fixed point), 8 bits; the exponent is rounded up."""

    scaling_per_output_channel = True
    restrict_scaling_type = RestrictValueType.POWER_OF_TWO
    bit_width = 8
    restrict_value_float_to_int_impl_type = FloatToIntImplType.CEIL


class PerTensorConstScaling2bit(Injector):
    """A constant floating-point scale per tensor, 2 bits (ternary as a narrow 2-bit integer)."""

    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    scaling_per_output_channel = False
    bit_width = 2


# ---------------------------------------------------------------------------
# Binary
# ---------------------------------------------------------------------------


class SignedBinaryClampedConst(Injector):
    """Signed binary values ``{-s, +s}`` with a constant scale ``s`` (clamped for activations)."""

    quant_type = QuantType.BINARY
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    scaling_per_output_channel = False
    bit_width = 1
    narrow_range = True
    signed = True
