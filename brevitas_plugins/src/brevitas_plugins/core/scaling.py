"""Scale-factor blocks (registry kind ``scaling``): where a quantizer's threshold comes from.

A scaling block returns the *threshold* (e.g. the max absolute value); the
tensor quantizer divides it by the integer range of the bit-width. Every block
here ends the same way, through its ``restrict_scaling_impl``
(:mod:`brevitas_plugins.core.restrict_val`), so a power-of-two restriction
always yields exact powers of two, and ``scaling_min_val`` bounds it from below.

- ``const``: :class:`brevitas.core.scaling.ConstScaling`;
- ``stats``: :class:`StatsFromParameterScaling` (weights, biases),
  :class:`RuntimeStatsScaling` (activations);
- ``affine_stats``: :class:`AffineStatsScaling`, :class:`AffineRuntimeStatsScaling`;
- ``parameter``: :class:`ParameterScaling`;
- ``parameter_from_stats``: :class:`ParameterFromStatsFromParameterScaling`,
  :class:`ParameterFromRuntimeStatsScaling`;
- ``he``: :class:`HeScaling`.

Statistics of parameters are taken over ``tracked_parameter_list`` (several
weights when a quantizer is shared between layers; more can be added with
``add_tracked_parameter``), with gradients flowing to the weights through the
statistic. Statistics of activations are taken over the global batch of all
``torch.distributed`` ranks (:func:`brevitas_plugins.core.stats.distributed_statistic`).

Example:
    >>> import torch
    >>> from brevitas_plugins.core.restrict_val import PowerOfTwoRestrictValue
    >>> from brevitas_plugins.core.stats import AbsMax, OverTensorView
    >>> w = torch.nn.Parameter(torch.tensor([0.1, -0.3, 0.2]))
    >>> s = StatsFromParameterScaling(AbsMax(), OverTensorView(), [w], (), PowerOfTwoRestrictValue())
    >>> s(w)
    tensor(0.2500, grad_fn=<Exp2Backward0>)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from brevitas.core.scaling import ConstScaling, ScalingImpl
from brevitas.errors import ConfigError
from brevitas.function.ste import abs_binary_sign_grad
from brevitas.plugins.registry import ByRole, Registry
from brevitas_plugins.core.restrict_val import FloatRestrictValue
from brevitas_plugins.core.stats import (
    CollectThenLearnMixin,
    RunningStatsMixin,
    TrackedParametersMixin,
    as_shape,
    check_momentum,
    check_tracked_parameter_list,
    forget_missing_keys,
    stats_output_shape,
)

__all__ = [
    "AffineRuntimeStatsScaling",
    "AffineStatsScaling",
    "HeScaling",
    "ParameterFromRuntimeStatsScaling",
    "ParameterFromStatsFromParameterScaling",
    "ParameterScaling",
    "RuntimeStatsScaling",
    "StatsFromParameterScaling",
    "register",
]


# ---------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------


def _check_min_val(scaling_min_val: object) -> float | None:
    if scaling_min_val is None:
        return None
    if (
        isinstance(scaling_min_val, bool)
        or not isinstance(scaling_min_val, (int, float))
        or not math.isfinite(scaling_min_val)
        or scaling_min_val < 0
    ):
        raise ConfigError(
            f"scaling_min_val must be None (no lower bound) or a finite number >= 0 such as 1e-8, "
            f"got {scaling_min_val!r}"
        )
    return float(scaling_min_val)


def _check_init_value(
    value_init: object,
    shape: tuple[int, ...],
    *,
    name: str,
    shape_name: str,
    allow_zero: bool,
    type_msg: str,
    range_msg: str,
    fit_hint: str = "",
) -> Tensor:
    """``value_init`` as a float tensor of ``shape`` (one number is broadcast), checked for sign.

    Shared by the initial threshold here and the initial offset of
    :mod:`brevitas_plugins.core.zero_point`: ``type_msg`` and ``range_msg`` are
    the messages (followed by the value) when it is not a number or tensor and
    when it is not ``> 0`` (``>= 0`` with ``allow_zero``).
    """
    try:
        value = torch.as_tensor(value_init, dtype=torch.float32).detach().clone()
    except (TypeError, ValueError, RuntimeError):
        raise ConfigError(f"{type_msg} {value_init!r}") from None
    in_range = value >= 0 if allow_zero else value > 0
    if value.numel() == 0 or not bool(torch.all(torch.isfinite(value) & in_range)):
        raise ConfigError(f"{range_msg} {value_init!r}")
    if value.numel() == math.prod(shape):
        return value.reshape(shape)
    try:
        return value.expand(shape).clone()
    except RuntimeError:
        raise ConfigError(
            f"{name} has shape {tuple(value.shape)}, which does not fit {shape_name} {shape}{fit_hint}"
        ) from None


def _check_init(scaling_init: object, shape: tuple[int, ...]) -> Tensor:
    return _check_init_value(
        scaling_init,
        shape,
        name="scaling_init",
        shape_name="scaling_shape",
        allow_zero=False,
        type_msg="scaling_init must be a positive number or tensor, got",
        range_msg="scaling_init must be > 0 (it is the initial threshold, e.g. the expected max |x|), got",
        fit_hint=": give one number, or one value per channel",
    )


# ---------------------------------------------------------------------------
# Shared behaviour
# ---------------------------------------------------------------------------


class _ForgetMissingKeysMixin:
    """Loading a ``state_dict`` without this block's own keys is not an error under
    ``BREVITAS_IGNORE_MISSING_KEYS=1`` (:func:`brevitas_plugins.core.stats.forget_missing_keys`).

    Shared by the scaling blocks here and the zero-point blocks of
    :mod:`brevitas_plugins.core.zero_point`; a block without persistent
    tensors of its own is not affected.
    """

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # args: local_metadata, strict, missing_keys, unexpected_keys, error_msgs (torch.nn.Module's order)
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[misc]
        forget_missing_keys(self, prefix, args[2])  # type: ignore[arg-type]


class _LearnedFromTrackedStatsMixin:
    """A parameter ``value`` initialized from (and :meth:`reinit` from) the tracked tensors' statistic.

    For hosts with :class:`brevitas_plugins.core.stats.TrackedParametersMixin`
    and a ``_to_stored`` conversion (the restriction's stored domain here, the
    identity for zero-point offsets).
    """

    value: nn.Parameter

    def _stored_stats(self) -> Tensor:
        return self._to_stored(self.parameter_list_stats())  # type: ignore[attr-defined]

    def _init_value_from_stats(self) -> None:
        with torch.no_grad():
            self.value = nn.Parameter(self._stored_stats().detach().clone())

    def reinit(self) -> None:
        """Set ``value`` from the statistic of the tracked tensors as they are now."""
        with torch.no_grad():
            self.value.copy_(self._stored_stats().to(self.value.dtype))


class _RestrictedScaling(_ForgetMissingKeysMixin, ScalingImpl):
    """Restriction and lower bound shared by every block here.

    - a statistic (user domain) becomes ``restrict(restrict_init(max(stat, min_val)))``;
    - a learned value (stored domain) becomes ``max(|restrict(p)|, min_val)``
      (``abs`` with a gradient that is never 0, so a float parameter that
      crosses 0 keeps learning).
    """

    def __init__(self, restrict_scaling_impl: nn.Module | None, scaling_min_val: float | None) -> None:
        super().__init__()
        self.restrict_scaling_impl = FloatRestrictValue() if restrict_scaling_impl is None else restrict_scaling_impl
        if not hasattr(self.restrict_scaling_impl, "restrict_init_tensor"):
            raise ConfigError(
                "restrict_scaling_impl must be a RestrictValue (with restrict_init_tensor and forward), got "
                f"{type(self.restrict_scaling_impl).__name__}; set restrict_scaling_type instead, e.g. "
                "RestrictValueType.FP"
            )
        self.scaling_min_val = _check_min_val(scaling_min_val)

    def _init_stats(
        self, stats_impl: nn.Module, stats_input_view_shape_impl: nn.Module, scaling_shape: Sequence[int] | None
    ) -> None:
        self.stats_impl = stats_impl
        self.stats_input_view_shape_impl = stats_input_view_shape_impl
        self.scaling_shape = stats_output_shape(stats_impl, stats_input_view_shape_impl, scaling_shape)

    def _clamp(self, x: Tensor) -> Tensor:
        return x if self.scaling_min_val is None else torch.clamp_min(x, self.scaling_min_val)

    def _rescale(self, stat: Tensor) -> Tensor:
        return stat

    def _to_stored(self, stat: Tensor) -> Tensor:
        return self.restrict_scaling_impl.restrict_init_tensor(self._clamp(self._rescale(stat)))

    def _from_stat(self, stat: Tensor) -> Tensor:
        return self.restrict_scaling_impl(self._to_stored(stat))

    def _from_stored(self, value: Tensor) -> Tensor:
        return self._clamp(abs_binary_sign_grad(self.restrict_scaling_impl(value)))

    def extra_repr(self) -> str:
        return f"scaling_min_val={self.scaling_min_val}"


class _AffineRescalingMixin:
    """Adds ``affine_rescaling`` (of ``scaling_shape``) and applies it to the statistic."""

    scaling_shape: tuple[int, ...]

    def _init_extra(self) -> None:
        self.affine_rescaling = _Affine(self.scaling_shape)

    def _rescale(self, stat: Tensor) -> Tensor:
        return self.affine_rescaling(stat)


class _Affine(nn.Module):
    """``|stat * weight + bias|`` with learned ``weight`` (ones) and ``bias`` (zeros)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.affine_weight = nn.Parameter(torch.ones(shape))
        self.affine_bias = nn.Parameter(torch.zeros(shape))

    def forward(self, stat: Tensor) -> Tensor:
        return abs_binary_sign_grad(stat * self.affine_weight + self.affine_bias)


# ---------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------


class ParameterScaling(_RestrictedScaling):
    """A learned threshold, initialized to ``scaling_init`` (registry name ``parameter``).

    The parameter ``value`` holds ``restrict_init_tensor(scaling_init)`` (e.g.
    its log2 under ``log_fp``); the output is ``max(|restrict(value)|, scaling_min_val)``.

    Args:
        scaling_init: initial threshold, > 0: a number, or a tensor with one
            value per channel.
        scaling_shape: shape of the threshold, ``()`` per tensor.
        restrict_scaling_impl: the restriction (default: plain float).
        scaling_min_val: lower bound of the output, or ``None``.

    Raises:
        ConfigError: ``scaling_init`` is not positive or does not fit the shape.

    Example:
        >>> import torch
        >>> s = ParameterScaling(scaling_init=0.5, scaling_shape=(2, 1))
        >>> s(torch.randn(2, 3)).sum().backward()
        >>> s.value.grad.shape
        torch.Size([2, 1])
    """

    def __init__(
        self,
        scaling_init: float | Tensor,
        scaling_shape: Sequence[int] = (),
        restrict_scaling_impl: nn.Module | None = None,
        scaling_min_val: float | None = None,
    ) -> None:
        super().__init__(restrict_scaling_impl, scaling_min_val)
        self.scaling_shape = as_shape(scaling_shape)
        init = _check_init(scaling_init, self.scaling_shape)
        self.value = nn.Parameter(self.restrict_scaling_impl.restrict_init_tensor(init).detach())

    def forward(self, x: Tensor) -> Tensor:
        return self._from_stored(self.value)


class StatsFromParameterScaling(TrackedParametersMixin, _RestrictedScaling):
    """The threshold is a statistic of the tracked parameters, every step (registry name ``stats``, weights).

    ``forward(x)`` ignores ``x``: it views each tracked tensor, concatenates
    the views, takes ``scaling_stats_impl`` of them, reshapes to
    ``scaling_shape``, bounds it by ``scaling_min_val`` and restricts it
    (``restrict(restrict_init(stat))``). Gradients flow to the parameters
    through the statistic (straight-through across a power-of-two rounding).

    Args:
        scaling_stats_impl: a ``stats_op`` block (e.g. ``AbsMax``).
        scaling_stats_input_view_shape_impl: the view taken first (e.g.
            ``OverTensorView`` or ``OverOutputChannelView``).
        tracked_parameter_list: the tensors the statistic covers.
        scaling_shape: ``()`` per tensor, e.g. ``(C, 1, 1, 1)`` per channel.
        restrict_scaling_impl: the restriction (default: plain float).
        scaling_min_val: lower bound, or ``None``.

    Raises:
        ConfigError: no tracked tensor; a per-channel statistic without
            ``scaling_shape`` or with one that holds a different number of
            values; a per-channel statistic over a flattening view.

    Example:
        >>> import torch
        >>> from brevitas_plugins.core.stats import AbsMax, OverOutputChannelView
        >>> w = torch.tensor([[1.0, -2.0], [0.5, 0.25]])
        >>> StatsFromParameterScaling(AbsMax(1), OverOutputChannelView(), [w], (2, 1))(w)
        tensor([[2.0000],
                [0.5000]])
    """

    def __init__(
        self,
        scaling_stats_impl: nn.Module,
        scaling_stats_input_view_shape_impl: nn.Module,
        tracked_parameter_list: Sequence[Tensor],
        scaling_shape: Sequence[int] | None = None,
        restrict_scaling_impl: nn.Module | None = None,
        scaling_min_val: float | None = None,
    ) -> None:
        super().__init__(restrict_scaling_impl, scaling_min_val)
        self._init_stats(scaling_stats_impl, scaling_stats_input_view_shape_impl, scaling_shape)
        self._init_tracked(tracked_parameter_list, self.scaling_shape)
        self._init_extra()

    def _init_extra(self) -> None:
        """What a subclass adds at the end of the constructor (same arguments, no constructor of its own)."""

    def forward(self, x: Tensor) -> Tensor:
        return self._from_stat(self.parameter_list_stats())


class AffineStatsScaling(_AffineRescalingMixin, StatsFromParameterScaling):
    """:class:`StatsFromParameterScaling` times a learned affine (registry name ``affine_stats``, weights).

    The statistic ``s`` becomes ``|s * affine_weight + affine_bias|`` (weight
    initialized to 1, bias to 0, both of ``scaling_shape``) before the lower
    bound and the restriction, so a power-of-two restriction still gives
    powers of two. Same arguments as :class:`StatsFromParameterScaling`.

    Example:
        >>> import torch
        >>> from brevitas_plugins.core.stats import AbsMax, OverTensorView
        >>> w = torch.tensor([1.0, -2.0])
        >>> s = AffineStatsScaling(AbsMax(), OverTensorView(), [w], ())
        >>> s(w).backward()
        >>> s.affine_rescaling.affine_weight.grad
        tensor(2.)
    """


class ParameterFromStatsFromParameterScaling(_LearnedFromTrackedStatsMixin, StatsFromParameterScaling):
    """A learned threshold initialized from the statistic of the tracked parameters.

    Registry name ``parameter_from_stats`` (weights). The parameter ``value``
    (of ``scaling_shape``, in the restriction's stored domain, e.g. log2)
    starts at ``restrict_init(max(stat, scaling_min_val))``; the output is
    ``max(|restrict(value)|, scaling_min_val)``. :meth:`reinit` re-derives it
    from the current tracked tensors: the proxy calls it when a float
    ``state_dict`` has loaded its weights (a module's own tensors load before
    its children's, so by then this block's load is still to come). Loading
    a ``state_dict`` that holds ``value`` uses it; one that lacks it keeps the
    current (re-derived) value, and with ``BREVITAS_IGNORE_MISSING_KEYS=1``
    the key is not reported missing. A missing key never re-derives by
    itself: a partial ``load_state_dict(..., strict=False)`` of other layers
    must not reset learned scales. Same arguments as
    :class:`StatsFromParameterScaling`.

    Example:
        >>> import torch
        >>> from brevitas_plugins.core.stats import AbsMax, OverTensorView
        >>> w = torch.tensor([1.0, -2.0])
        >>> s = ParameterFromStatsFromParameterScaling(AbsMax(), OverTensorView(), [w], ())
        >>> s(w)
        tensor(2., grad_fn=<MulBackward0>)
        >>> _ = w.mul_(3)
        >>> s.reinit()
        >>> s(w).detach()
        tensor(6.)
    """

    def _init_extra(self) -> None:
        self._init_value_from_stats()

    def forward(self, x: Tensor) -> Tensor:
        return self._from_stored(self.value)


class RuntimeStatsScaling(RunningStatsMixin, _RestrictedScaling):
    """The threshold is a statistic of the input, running in eval (registry name ``stats``, activations).

    Training: the statistic of the current batch (over every rank's batch, with
    its gradient to ``x``, as in the original Brevitas), bounded and
    restricted; its detached value updates the buffer ``running_stats``
    (exponential moving average with ``scaling_stats_momentum``, or the plain
    average of every batch when ``None``; the first batch sets it) and
    ``counter``. Eval: ``running_stats``, bounded and restricted (1 before any
    training batch).

    Args:
        scaling_stats_impl: a ``stats_op`` block.
        scaling_stats_input_view_shape_impl: ``OverTensorView`` or
            ``OverBatchOverOutputChannelView``.
        scaling_shape: ``()`` per tensor, e.g. ``(1, C, 1, 1)`` per channel.
        restrict_scaling_impl: the restriction (default: plain float).
        scaling_stats_momentum: in ``(0, 1]``, or ``None``.
        scaling_min_val: lower bound, or ``None``.

    Raises:
        ConfigError: a per-channel statistic without ``scaling_shape``; a bad momentum.

    Example:
        >>> import torch
        >>> from brevitas_plugins.core.stats import AbsMax, OverTensorView
        >>> s = RuntimeStatsScaling(AbsMax(), OverTensorView(), (), scaling_stats_momentum=0.5)
        >>> s(torch.tensor([1.0, -4.0])), s(torch.tensor([2.0]))
        (tensor(4.), tensor(2.))
        >>> s.eval()(torch.zeros(1))
        tensor(3.)
    """

    def __init__(
        self,
        scaling_stats_impl: nn.Module,
        scaling_stats_input_view_shape_impl: nn.Module,
        scaling_shape: Sequence[int] | None = None,
        restrict_scaling_impl: nn.Module | None = None,
        scaling_stats_momentum: float | None = 0.1,
        scaling_min_val: float | None = None,
    ) -> None:
        super().__init__(restrict_scaling_impl, scaling_min_val)
        self._init_stats(scaling_stats_impl, scaling_stats_input_view_shape_impl, scaling_shape)
        self._init_running_stats(self.scaling_shape, check_momentum(scaling_stats_momentum))
        self._init_extra()

    def _init_extra(self) -> None:
        """What a subclass adds at the end of the constructor (same arguments, no constructor of its own)."""

    def forward(self, x: Tensor) -> Tensor:
        return self._from_stat(self.running_statistic(x))


class AffineRuntimeStatsScaling(_AffineRescalingMixin, RuntimeStatsScaling):
    """:class:`RuntimeStatsScaling` times a learned affine (registry name ``affine_stats``, activations).

    The running (or current) statistic ``s`` becomes
    ``|s * affine_weight + affine_bias|`` before the bound and the
    restriction; the buffer keeps the raw statistic. Same arguments as
    :class:`RuntimeStatsScaling`.

    Example:
        >>> import torch
        >>> from brevitas_plugins.core.stats import AbsMax, OverTensorView
        >>> s = AffineRuntimeStatsScaling(AbsMax(), OverTensorView(), ())
        >>> s(torch.tensor([1.0, -4.0])).backward()
        >>> s.affine_rescaling.affine_weight.grad
        tensor(4.)
    """


class ParameterFromRuntimeStatsScaling(CollectThenLearnMixin, _RestrictedScaling):
    """Statistics of the input for ``collect_stats_steps`` steps, then a learned threshold.

    Registry name ``parameter_from_stats`` (activations). Buffers: ``buffer``
    (the accumulated statistic: plain average over the collection steps when
    ``scaling_stats_momentum`` is ``None``, else an exponential moving
    average) and ``counter`` (int64, steps collected; both in ``state_dict``,
    so checkpoints and DDP carry them). Parameter: ``value`` (stored domain of
    the restriction). Training: while collecting, the current batch's
    statistic (over every rank's batch, gradient to ``x``); the step that
    completes the collection copies ``restrict_init(buffer)`` into ``value``;
    afterwards ``max(|restrict(value)|, scaling_min_val)``. Eval: ``buffer``
    until the collection is complete, then ``value``. See
    :class:`brevitas_plugins.core.stats.CollectThenLearnMixin`.

    Args:
        collect_stats_steps: training steps of statistics, an int >= 1.
        scaling_stats_impl: a ``stats_op`` block.
        scaling_stats_input_view_shape_impl: the view taken first.
        scaling_shape: ``()`` per tensor, e.g. ``(1, C, 1, 1)`` per channel.
        restrict_scaling_impl: the restriction (default: plain float).
        scaling_stats_momentum: ``None`` (plain average) or in ``(0, 1]``.
        scaling_min_val: lower bound, or ``None``.

    Raises:
        ConfigError: ``collect_stats_steps < 1``; a bad momentum; a
            per-channel statistic without ``scaling_shape``.

    Example:
        >>> import torch
        >>> from brevitas_plugins.core.stats import AbsMax, OverTensorView
        >>> s = ParameterFromRuntimeStatsScaling(2, AbsMax(), OverTensorView(), ())
        >>> [float(s(torch.tensor([v])).detach()) for v in (1.0, 3.0, 10.0)]
        [1.0, 3.0, 2.0]
        >>> int(s.counter), s.value.data
        (2, tensor(2.))
    """

    def __init__(
        self,
        collect_stats_steps: int,
        scaling_stats_impl: nn.Module,
        scaling_stats_input_view_shape_impl: nn.Module,
        scaling_shape: Sequence[int] | None = None,
        restrict_scaling_impl: nn.Module | None = None,
        scaling_stats_momentum: float | None = None,
        scaling_min_val: float | None = None,
    ) -> None:
        super().__init__(restrict_scaling_impl, scaling_min_val)
        self._init_stats(scaling_stats_impl, scaling_stats_input_view_shape_impl, scaling_shape)
        init = self.restrict_scaling_impl.restrict_init_tensor(torch.ones(self.scaling_shape))
        self._init_collect(self.scaling_shape, collect_stats_steps, check_momentum(scaling_stats_momentum), init)

    def forward(self, x: Tensor) -> Tensor:
        return self.collected_statistic(x)


def _he_threshold(tensors: Iterable[Tensor]) -> Tensor:
    tensors = list(tensors)
    values = [math.sqrt(2.0 / max(t[0].numel(), 1)) if t.dim() > 0 else math.sqrt(2.0) for t in tensors]
    return tensors[0].detach().new_tensor(sum(values) / len(values))


class HeScaling(_RestrictedScaling):
    """He's initialization scale ``sqrt(2 / fan_in)`` as a constant threshold (registry name ``he``).

    ``fan_in = weight[0].numel()`` (input channels times kernel size); with
    several tracked tensors, the mean of their values. Computed from shapes
    only, kept in a non-persistent buffer (recomputed, never loaded), and
    restricted like every other threshold.

    Args:
        tracked_parameter_list: the weights.
        restrict_scaling_impl: the restriction (default: plain float).
        scaling_min_val: lower bound, or ``None``.

    Raises:
        ConfigError: no tracked tensor.

    Example:
        >>> import torch
        >>> HeScaling([torch.zeros(4, 8)])(torch.zeros(1))
        tensor(0.5000)
    """

    def __init__(
        self,
        tracked_parameter_list: Sequence[Tensor],
        restrict_scaling_impl: nn.Module | None = None,
        scaling_min_val: float | None = None,
    ) -> None:
        super().__init__(restrict_scaling_impl, scaling_min_val)
        self.tracked_parameter_list = check_tracked_parameter_list(tracked_parameter_list)
        self.register_buffer("value", _he_threshold(self.tracked_parameter_list), persistent=False)

    def add_tracked_parameter(self, parameter: Tensor) -> None:
        """Also cover ``parameter``; the threshold becomes the mean over every tracked weight."""
        if any(parameter is p for p in self.tracked_parameter_list):
            return
        self.tracked_parameter_list.append(parameter)
        self.reinit()

    def reinit(self) -> None:
        """Recompute the threshold from the tracked tensors' shapes."""
        self.value = _he_threshold(self.tracked_parameter_list).to(self.value.device)

    def forward(self, x: Tensor) -> Tensor:
        return self._from_stat(self.value)


def register(registry: Registry) -> None:
    """Add the ``scaling`` names of ``brevitas.inject.enum.ScalingImplType``."""
    blocks: tuple[tuple[str, Any, str], ...] = (
        ("const", ConstScaling, "constant threshold (scaling_init)"),
        (
            "stats",
            ByRole(default=StatsFromParameterScaling, act=RuntimeStatsScaling),
            "statistic of the weights every step / running statistic of the activations",
        ),
        (
            "affine_stats",
            ByRole(default=AffineStatsScaling, act=AffineRuntimeStatsScaling),
            "statistic times a learned affine",
        ),
        ("parameter", ParameterScaling, "learned threshold from scaling_init"),
        (
            "parameter_from_stats",
            ByRole(default=ParameterFromStatsFromParameterScaling, act=ParameterFromRuntimeStatsScaling),
            "learned threshold initialized from statistics (weights) / collected for collect_stats_steps",
        ),
        ("he", HeScaling, "sqrt(2 / fan_in)"),
    )
    for name, block, description in blocks:
        registry.add("scaling", name, block, description=description)
