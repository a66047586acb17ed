"""Zero-point blocks (registry kind ``zero_point``) for affine (shifted) quantizers.

``forward(x, scale, bit_width)`` returns an integer-valued zero point that
broadcasts against ``x`` like ``scale`` does. Every block here derives it from
an *offset*: a non-negative value in the units of ``x`` (by default
``-min(x)`` where the min is negative, else 0: :class:`NegativeMinOrZero`),

    zero_point = clamp(round_ste(offset / scale) + min_int, min_int, max_int)

with the integer range of ``signed`` / ``narrow_range`` (unsigned by default,
``min_int = 0``, ``max_int = 2**b - 1``). With the range-width statistic of
the scaling (``min_max``: ``scale = (max - min) / (2**b - 1)``) the integer
grid ``(q - zero_point) * scale`` for ``q`` in ``[0, 2**b - 1]`` then covers
``[min, max]`` and holds 0 exactly.

=========================  =========================================================================
registry name              blocks (``ByRole``: weights/biases, activations)
=========================  =========================================================================
``zero``                   :class:`brevitas.core.zero_point.ZeroZeroPoint`
``stats``                  :class:`StatsFromParameterZeroPoint`, :class:`RuntimeStatsZeroPoint`
``parameter``              :class:`ParameterZeroPoint`
``parameter_from_stats``   :class:`ParameterFromStatsZeroPoint`, :class:`ParameterFromRuntimeStatsZeroPoint`
``runtime_stats``          :class:`RuntimeStatsZeroPoint`
=========================  =========================================================================

Learned zero points learn the offset (float units, like the original
Brevitas), not the integer: the integer follows when the scale or the
bit-width changes.

Example:
    >>> import torch
    >>> w = torch.tensor([-1.0, 0.0, 3.0])
    >>> scale = torch.tensor(4.0 / 255)
    >>> StatsFromParameterZeroPoint(tracked_parameter_list=[w])(w, scale, torch.tensor(8.0))
    tensor(64.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from brevitas.core.zero_point import ZeroPointImpl, ZeroZeroPoint
from brevitas.function.ops import max_int, min_int, tensor_clamp
from brevitas.function.ste import abs_binary_sign_grad, round_ste
from brevitas.plugins.registry import ByRole, Registry
from brevitas_plugins.core.scaling import _check_init_value, _ForgetMissingKeysMixin, _LearnedFromTrackedStatsMixin
from brevitas_plugins.core.stats import (
    CollectThenLearnMixin,
    NegativeMinOrZero,
    OverTensorView,
    RunningStatsMixin,
    TrackedParametersMixin,
    as_shape,
    check_momentum,
    stats_output_shape,
)

__all__ = [
    "ParameterFromRuntimeStatsZeroPoint",
    "ParameterFromStatsZeroPoint",
    "ParameterZeroPoint",
    "RuntimeStatsZeroPoint",
    "StatsFromParameterZeroPoint",
    "register",
    "zero_point_from_offset",
]


def zero_point_from_offset(
    offset: Tensor, scale: Tensor, bit_width: Tensor, signed: bool = False, narrow_range: bool = False
) -> Tensor:
    """``clamp(round_ste(offset / scale) + min_int, min_int, max_int)``: the integer zero point.

    Args:
        offset: non-negative offset in the units of ``x`` (e.g. ``-min(x)``).
        scale: the quantizer's scale, broadcastable against ``offset``.
        bit_width: the bit-width, a scalar tensor.
        signed: integer range of the quantizer (``False`` for shifted quantizers).
        narrow_range: integer range of the quantizer.

    Returns:
        Integer values; the gradient passes the rounding straight through and
        stops outside the range.

    Example:
        >>> import torch
        >>> zero_point_from_offset(torch.tensor([0.26, 9.0]), torch.tensor(0.1), torch.tensor(4.0))
        tensor([ 3., 15.])
    """
    lo = min_int(signed, narrow_range, bit_width)
    hi = max_int(signed, narrow_range, bit_width)
    return tensor_clamp(round_ste(offset / scale) + lo, lo, hi)


def _check_offset_init(zero_point_init: object, shape: tuple[int, ...]) -> Tensor:
    return _check_init_value(
        zero_point_init,
        shape,
        name="zero_point_init",
        shape_name="zero_point_shape",
        allow_zero=True,
        type_msg="zero_point_init must be a number or tensor >= 0, got",
        range_msg="zero_point_init must be >= 0: it is the offset -min(x) in the units of x (0 for a range starting "
        "at 0), not the integer zero point; got",
    )


class _OffsetZeroPoint(_ForgetMissingKeysMixin, ZeroPointImpl):
    """Integer range and the offset-to-integer conversion shared by the blocks here."""

    def __init__(self, signed: bool, narrow_range: bool) -> None:
        super().__init__()
        self.signed = bool(signed)
        self.narrow_range = bool(narrow_range)

    def _zero_point(self, offset: Tensor, scale: Tensor, bit_width: Tensor) -> Tensor:
        return zero_point_from_offset(offset, scale, bit_width, self.signed, self.narrow_range)

    # conversions used by CollectThenLearnMixin: offsets are stored as they are
    def _to_stored(self, offset: Tensor) -> Tensor:
        return offset

    def _from_stat(self, offset: Tensor) -> Tensor:
        return offset

    def _from_stored(self, value: Tensor) -> Tensor:
        return abs_binary_sign_grad(value)

    def extra_repr(self) -> str:
        return f"signed={self.signed}, narrow_range={self.narrow_range}"


class _StatsZeroPoint(_OffsetZeroPoint):
    """Sets ``stats_impl``, ``stats_input_view_shape_impl`` and ``zero_point_shape`` with their fallbacks."""

    def __init__(
        self,
        zero_point_stats_impl: nn.Module | None,
        zero_point_stats_input_view_shape_impl: nn.Module | None,
        zero_point_shape: Sequence[int] | None,
        signed: bool,
        narrow_range: bool,
        scaling_shape: Sequence[int] | None,
        scaling_stats_input_view_shape_impl: nn.Module | None,
        stats_reduce_dim: int | None,
    ) -> None:
        super().__init__(signed, narrow_range)
        if zero_point_stats_impl is None:
            zero_point_stats_impl = NegativeMinOrZero(stats_reduce_dim)
        if zero_point_stats_input_view_shape_impl is None:
            zero_point_stats_input_view_shape_impl = scaling_stats_input_view_shape_impl
        if zero_point_stats_input_view_shape_impl is None:
            zero_point_stats_input_view_shape_impl = OverTensorView()
        self.stats_impl = zero_point_stats_impl
        self.stats_input_view_shape_impl = zero_point_stats_input_view_shape_impl
        shape = zero_point_shape if zero_point_shape is not None else scaling_shape
        self.zero_point_shape = stats_output_shape(
            self.stats_impl, self.stats_input_view_shape_impl, shape, name="zero_point_shape"
        )


class StatsFromParameterZeroPoint(TrackedParametersMixin, _StatsZeroPoint):
    """Zero point from a statistic of the tracked parameters, every step (registry name ``stats``, weights).

    ``forward(x, scale, bit_width)`` ignores ``x``: the offset is
    ``zero_point_stats_impl`` of the viewed, concatenated tracked tensors.

    Args:
        zero_point_stats_impl: the offset statistic (default
            ``NegativeMinOrZero(stats_reduce_dim)``).
        zero_point_stats_input_view_shape_impl: the view (default
            ``scaling_stats_input_view_shape_impl``, else ``OverTensorView``).
        tracked_parameter_list: the tensors the statistic covers.
        zero_point_shape: shape of the zero point (default ``scaling_shape``, else ``()``).
        signed: integer range (default unsigned).
        narrow_range: integer range.
        scaling_shape: fallback of ``zero_point_shape``.
        scaling_stats_input_view_shape_impl: fallback of the view.
        stats_reduce_dim: for the default statistic: ``None`` per tensor, ``1`` per channel.

    Raises:
        ConfigError: no tracked tensor; a per-channel statistic without a
            shape, or with one that holds a different number of values.

    Example:
        >>> import torch
        >>> from brevitas_plugins.core.stats import OverOutputChannelView
        >>> w = torch.tensor([[-1.0, 1.0], [0.5, 2.0]])
        >>> zp = StatsFromParameterZeroPoint(
        ...     tracked_parameter_list=[w], zero_point_shape=(2, 1),
        ...     scaling_stats_input_view_shape_impl=OverOutputChannelView(), stats_reduce_dim=1)
        >>> zp(w, torch.tensor([[0.2], [0.2]]), torch.tensor(4.0))
        tensor([[5.],
                [0.]])
    """

    def __init__(
        self,
        zero_point_stats_impl: nn.Module | None = None,
        zero_point_stats_input_view_shape_impl: nn.Module | None = None,
        tracked_parameter_list: Sequence[Tensor] | None = None,
        zero_point_shape: Sequence[int] | None = None,
        signed: bool = False,
        narrow_range: bool = False,
        scaling_shape: Sequence[int] | None = None,
        scaling_stats_input_view_shape_impl: nn.Module | None = None,
        stats_reduce_dim: int | None = None,
    ) -> None:
        super().__init__(
            zero_point_stats_impl,
            zero_point_stats_input_view_shape_impl,
            zero_point_shape,
            signed,
            narrow_range,
            scaling_shape,
            scaling_stats_input_view_shape_impl,
            stats_reduce_dim,
        )
        self._init_tracked(tracked_parameter_list, self.zero_point_shape, shape_name="zero_point_shape")
        self._init_extra()

    def _init_extra(self) -> None:
        """What a subclass adds at the end of the constructor (same arguments, no constructor of its own)."""

    def forward(self, x: Tensor, scale: Tensor, bit_width: Tensor) -> Tensor:
        return self._zero_point(self.parameter_list_stats(), scale, bit_width)


class ParameterZeroPoint(_OffsetZeroPoint):
    """A learned zero point (registry name ``parameter``).

    The parameter ``value`` is the offset in the units of ``x`` (``|value|``
    is used, with a gradient that is never 0); the output is
    ``clamp(round_ste(|value| / scale) + min_int, min_int, max_int)``.

    Args:
        zero_point_init: initial offset, >= 0 (a number, or one per channel).
        zero_point_shape: shape (default ``scaling_shape``, else ``()``).
        signed: integer range (default unsigned).
        narrow_range: integer range.
        scaling_shape: fallback of ``zero_point_shape``.

    Raises:
        ConfigError: ``zero_point_init`` is negative or does not fit the shape.

    Example:
        >>> import torch
        >>> zp = ParameterZeroPoint(zero_point_init=0.5)
        >>> out = zp(torch.zeros(1), torch.tensor(0.1, requires_grad=True), torch.tensor(8.0))
        >>> out.backward(); out.detach(), zp.value.grad
        (tensor(5.), tensor(10.))
    """

    def __init__(
        self,
        zero_point_init: float | Tensor = 0.0,
        zero_point_shape: Sequence[int] | None = None,
        signed: bool = False,
        narrow_range: bool = False,
        scaling_shape: Sequence[int] | None = None,
    ) -> None:
        super().__init__(signed, narrow_range)
        shape = zero_point_shape if zero_point_shape is not None else scaling_shape
        self.zero_point_shape = () if shape is None else as_shape(shape, name="zero_point_shape")
        self.value = nn.Parameter(_check_offset_init(zero_point_init, self.zero_point_shape))

    def forward(self, x: Tensor, scale: Tensor, bit_width: Tensor) -> Tensor:
        return self._zero_point(self._from_stored(self.value), scale, bit_width)


class ParameterFromStatsZeroPoint(_LearnedFromTrackedStatsMixin, StatsFromParameterZeroPoint):
    """A learned zero point initialized from the statistic of the tracked parameters.

    Registry name ``parameter_from_stats`` (weights). The parameter ``value``
    (the offset, see :class:`ParameterZeroPoint`) starts at the statistic;
    :meth:`reinit` re-derives it from the current tracked tensors (the proxy
    calls it when a float ``state_dict`` has loaded its weights). Loading a
    ``state_dict`` that holds ``value`` uses it; one that lacks it keeps the
    current value (with ``BREVITAS_IGNORE_MISSING_KEYS=1`` the key is not
    reported missing), as
    :class:`brevitas_plugins.core.scaling.ParameterFromStatsFromParameterScaling`
    does. Same arguments as :class:`StatsFromParameterZeroPoint`.

    Example:
        >>> import torch
        >>> w = torch.tensor([-0.5, 1.0])
        >>> zp = ParameterFromStatsZeroPoint(tracked_parameter_list=[w])
        >>> zp(w, torch.tensor(0.1), torch.tensor(8.0))
        tensor(5., grad_fn=<WhereBackward0>)
    """

    def _init_extra(self) -> None:
        self._init_value_from_stats()

    def forward(self, x: Tensor, scale: Tensor, bit_width: Tensor) -> Tensor:
        return self._zero_point(self._from_stored(self.value), scale, bit_width)


class RuntimeStatsZeroPoint(RunningStatsMixin, _StatsZeroPoint):
    """Zero point from a running statistic of the input (registry names ``runtime_stats``; ``stats`` for acts).

    Training: the offset statistic of the current batch (over every rank's
    batch); its detached value updates the buffer ``running_stats`` (starting
    at 0) with ``scaling_stats_momentum`` (``None``: plain average). Eval:
    ``running_stats``. The same momentum as the scaling keeps the two ends of
    the range in step.

    Args:
        zero_point_stats_impl: the offset statistic (default
            ``NegativeMinOrZero(stats_reduce_dim)``).
        zero_point_stats_input_view_shape_impl: the view (default
            ``scaling_stats_input_view_shape_impl``, else ``OverTensorView``).
        zero_point_shape: shape (default ``scaling_shape``, else ``()``).
        scaling_stats_momentum: in ``(0, 1]``, or ``None``.
        signed: integer range (default unsigned).
        narrow_range: integer range.
        scaling_shape: fallback of ``zero_point_shape``.
        scaling_stats_input_view_shape_impl: fallback of the view.
        stats_reduce_dim: for the default statistic.

    Raises:
        ConfigError: a per-channel statistic without a shape; a bad momentum.

    Example:
        >>> import torch
        >>> zp = RuntimeStatsZeroPoint(scaling_stats_momentum=None)
        >>> s, b = torch.tensor(0.5), torch.tensor(8.0)
        >>> zp(torch.tensor([-1.0, 2.0]), s, b), zp(torch.tensor([-2.0, 2.0]), s, b)
        (tensor(2.), tensor(4.))
        >>> zp.eval()(torch.zeros(1), s, b)
        tensor(3.)
    """

    def __init__(
        self,
        zero_point_stats_impl: nn.Module | None = None,
        zero_point_stats_input_view_shape_impl: nn.Module | None = None,
        zero_point_shape: Sequence[int] | None = None,
        scaling_stats_momentum: float | None = 0.1,
        signed: bool = False,
        narrow_range: bool = False,
        scaling_shape: Sequence[int] | None = None,
        scaling_stats_input_view_shape_impl: nn.Module | None = None,
        stats_reduce_dim: int | None = None,
    ) -> None:
        super().__init__(
            zero_point_stats_impl,
            zero_point_stats_input_view_shape_impl,
            zero_point_shape,
            signed,
            narrow_range,
            scaling_shape,
            scaling_stats_input_view_shape_impl,
            stats_reduce_dim,
        )
        self._init_running_stats(self.zero_point_shape, check_momentum(scaling_stats_momentum), init=0.0)

    def forward(self, x: Tensor, scale: Tensor, bit_width: Tensor) -> Tensor:
        return self._zero_point(self.running_statistic(x), scale, bit_width)


class ParameterFromRuntimeStatsZeroPoint(CollectThenLearnMixin, _StatsZeroPoint):
    """Offset statistics for ``collect_stats_steps`` steps, then a learned offset.

    Registry name ``parameter_from_stats`` (activations). Buffers ``buffer``
    (accumulated offset, starting at 0) and ``counter``; parameter ``value``
    (the offset). Works like
    :class:`brevitas_plugins.core.scaling.ParameterFromRuntimeStatsScaling`
    (see :class:`brevitas_plugins.core.stats.CollectThenLearnMixin`), the
    result turned into an integer zero point.

    Args:
        collect_stats_steps: training steps of statistics, an int >= 1.
        zero_point_stats_impl: the offset statistic (default ``NegativeMinOrZero``).
        zero_point_stats_input_view_shape_impl: the view (default
            ``scaling_stats_input_view_shape_impl``, else ``OverTensorView``).
        zero_point_shape: shape (default ``scaling_shape``, else ``()``).
        scaling_stats_momentum: ``None`` (plain average) or in ``(0, 1]``.
        signed: integer range (default unsigned).
        narrow_range: integer range.
        scaling_shape: fallback of ``zero_point_shape``.
        scaling_stats_input_view_shape_impl: fallback of the view.
        stats_reduce_dim: for the default statistic.

    Raises:
        ConfigError: ``collect_stats_steps < 1``; a bad momentum; a per-channel
            statistic without a shape.

    Example:
        >>> import torch
        >>> zp = ParameterFromRuntimeStatsZeroPoint(collect_stats_steps=1)
        >>> s, b = torch.tensor(0.5), torch.tensor(8.0)
        >>> zp(torch.tensor([-1.0, 2.0]), s, b).detach(), zp.value.data
        (tensor(2.), tensor(1.))
    """

    def __init__(
        self,
        collect_stats_steps: int,
        zero_point_stats_impl: nn.Module | None = None,
        zero_point_stats_input_view_shape_impl: nn.Module | None = None,
        zero_point_shape: Sequence[int] | None = None,
        scaling_stats_momentum: float | None = None,
        signed: bool = False,
        narrow_range: bool = False,
        scaling_shape: Sequence[int] | None = None,
        scaling_stats_input_view_shape_impl: nn.Module | None = None,
        stats_reduce_dim: int | None = None,
    ) -> None:
        super().__init__(
            zero_point_stats_impl,
            zero_point_stats_input_view_shape_impl,
            zero_point_shape,
            signed,
            narrow_range,
            scaling_shape,
            scaling_stats_input_view_shape_impl,
            stats_reduce_dim,
        )
        shape = self.zero_point_shape
        momentum = check_momentum(scaling_stats_momentum)
        self._init_collect(shape, collect_stats_steps, momentum, torch.zeros(shape), buffer_init=0.0)

    def forward(self, x: Tensor, scale: Tensor, bit_width: Tensor) -> Tensor:
        return self._zero_point(self.collected_statistic(x), scale, bit_width)


def register(registry: Registry) -> None:
    """Add the ``zero_point`` names of ``brevitas.inject.enum.ZeroPointImplType``."""
    blocks: tuple[tuple[str, Any, str], ...] = (
        ("zero", ZeroZeroPoint, "always 0 (symmetric quantization)"),
        (
            "stats",
            ByRole(default=StatsFromParameterZeroPoint, act=RuntimeStatsZeroPoint),
            "-min of the weights every step / running -min of the activations",
        ),
        ("parameter", ParameterZeroPoint, "learned offset (zero_point_init)"),
        (
            "parameter_from_stats",
            ByRole(default=ParameterFromStatsZeroPoint, act=ParameterFromRuntimeStatsZeroPoint),
            "learned offset initialized from statistics (weights) / collected for collect_stats_steps",
        ),
        ("runtime_stats", RuntimeStatsZeroPoint, "running -min of the input"),
    )
    for name, block, description in blocks:
        registry.add("zero_point", name, block, description=description)
