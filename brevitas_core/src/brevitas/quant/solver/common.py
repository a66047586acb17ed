"""Solver mixins shared by every tensor role: enums and names to registered components.

Each mixin is a small :class:`~brevitas.inject.ExtendedInjector` with ``@value``
functions that turn a name (an enum member of :mod:`brevitas.inject.enum`, or a
plain string: ``"stats"``, ``"PARAMETER_FROM_STATS"``, or any name a plugin
registered, such as ``"lsq"``) into the component registered for it, looked up
through :func:`resolve` at injection time. Each attribute has one fixed
registry kind (``scaling_impl_type`` -> ``scaling``, ``quant_type`` ->
``tensor_quant``, ...), so a string needs no enum at all.

A quantizer may always name a component directly instead: a class attribute
(``scaling_impl = MyScaling``, ``tensor_quant = BinaryQuant``) wins over the
``@value`` here, because the solvers come last in the bases of every
prebuilt quantizer. A class given where a name is expected
(``scaling_impl_type = MyScaling``) is used as is too.

Besides the registry kinds of ``docs/engine.md``, the solver looks up
collaborators no enum names under *auxiliary kinds* the standard plugin
fills: ``int_quant`` (``int``), ``int_scaling`` (``int``, ``power_of_two``),
``tensor_clamp`` (``clamp``, ``clamp_ste``) and ``stats_view``
(``over_tensor``, ``over_output_channels``, ``over_batch_over_output_channels``).

Example:
    >>> from brevitas.quant.solver.common import resolve
    >>> resolve("scaling", None) is None
    True
    >>> class MyScaling: ...
    >>> resolve("scaling", MyScaling) is MyScaling
    True
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from brevitas.errors import ConfigError, UnknownNameError
from brevitas.inject import ExtendedInjector, value
from brevitas.inject.enum import (
    FloatToIntImplType,
    NameEnum,
    QuantType,
    RestrictValueType,
    StatsOp,
    ZeroPointImplType,
)
from brevitas.plugins import get_registry
from brevitas.plugins.registry import ByRole

__all__ = [
    "ROLES",
    "SolveBitWidthImplFromEnum",
    "SolveFloatToIntFromEnum",
    "SolveRestrictScalingFromEnum",
    "SolveScalingFromEnum",
    "SolveScalingShape",
    "SolveStatsOpFromEnum",
    "SolveStatsViewAndReduceDim",
    "SolveTensorQuantFromEnum",
    "SolveZeroPointFromEnum",
    "output_channel_axis",
    "resolve",
    "show_name",
]

#: the tensor roles a quantizer is solved for (its ``quant_role``)
ROLES = ("weight", "bias", "act", "trunc")

#: auxiliary registry kinds (collaborators no enum names)
INT_QUANT_KIND = "int_quant"
INT_SCALING_KIND = "int_scaling"
TENSOR_CLAMP_KIND = "tensor_clamp"
STATS_VIEW_KIND = "stats_view"


def _is_no_quant(name: Any) -> bool:
    return isinstance(name, str) and name.strip().lower() == QuantType.FP.value


def show_name(name: Any) -> str:
    """How a name appears in messages: ``ScalingImplType.STATS`` for members, ``'stats'`` for strings.

    Example:
        >>> from brevitas.inject.enum import StatsOp
        >>> show_name(StatsOp.MAX), show_name("lsq")
        ('StatsOp.MAX', "'lsq'")
    """
    if isinstance(name, NameEnum):
        return f"{type(name).__name__}.{name.name}"
    return repr(name)


def resolve(kind: str, name: Any, role: str | None = None, *, attribute: str | None = None) -> Any:
    """The component registered as ``(kind, name)``, solved for ``role``.

    Args:
        kind: the registry kind (``scaling``, ``bit_width``, ...).
        name: an enum member or a string (compared case-insensitively), a
            class or module named directly (returned as is), or ``None``
            (returns ``None``).
        role: the tensor role (``weight``, ``bias``, ``act``, ``trunc``),
            used when the registered entry is a :class:`~brevitas.plugins.registry.ByRole`.
        attribute: the quantizer attribute that held ``name``, for messages.

    Returns:
        What is registered (usually a class, which the injector then builds
        with its constructor arguments resolved by name), or ``None``.

    Raises:
        UnknownNameError: nothing is registered as ``(kind, name)``; the
            message lists the registered names and the closest one.
        ConfigError: ``name`` is an enum member of another kind, or neither
            a name nor a component.

    Example:
        >>> from brevitas.quant.solver.common import resolve
        >>> resolve("tensor_quant", "fp") is None  # no quantization
        True
    """
    if name is None:
        return None
    where = f"{attribute}={show_name(name)}" if attribute else show_name(name)
    if isinstance(name, NameEnum):
        if name.kind and name.kind != kind:
            raise ConfigError(
                f"{where} is a {type(name).__name__} (registry kind {name.kind!r}), but a {kind} name is "
                f"expected here; write one of the names `brevitas plugins` lists for kind {kind!r}"
            )
    elif not isinstance(name, str):
        if inspect.isclass(name) or isinstance(name, nn.Module) or callable(name):
            return name  # a component named directly wins over any name
        raise ConfigError(
            f"{where}: expected a {kind} name (an enum member or a string such as those `brevitas plugins` "
            f"lists for kind {kind!r}) or a component class, got {type(name).__name__}"
        )
    if kind == "tensor_quant" and _is_no_quant(name):
        return None
    try:
        impl = get_registry().get(kind, name)
    except UnknownNameError as exc:
        hint = (
            " A name registered by a third-party plugin is accepted wherever an enum member is, once the plugin "
            "is installed (or registered in code with brevitas.plugins.register); `brevitas plugins` lists them."
        )
        if attribute is None:
            raise UnknownNameError(f"{exc}{hint}") from None
        raise UnknownNameError(f"{attribute}={show_name(name)}: {exc}{hint}") from None
    if isinstance(impl, ByRole):
        impl = impl.resolve(role)
    return impl


def _channel_axis_of_module(module: Any, role: str) -> int:
    if role == "bias":
        return 0
    axis = getattr(module, "output_channel_dim", None)
    if isinstance(axis, int) and not isinstance(axis, bool):
        return axis
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return 1
    return 0


def output_channel_axis(module: Any, role: str = "weight") -> int:
    """The output-channel axis of ``module``'s weight (``role='weight'``) or bias.

    ``module.output_channel_dim`` when the layer declares it; 1 for transposed
    convolutions (weight ``(C_in, C_out / groups, *k)``); 0 otherwise (conv,
    linear: ``(C_out, ...)``) and for biases.

    Example:
        >>> import torch
        >>> output_channel_axis(torch.nn.Conv2d(3, 8, 3)), output_channel_axis(torch.nn.ConvTranspose2d(3, 8, 3))
        (0, 1)
    """
    return _channel_axis_of_module(module, role)


def _tracked_tensor(module: Any, tracked_parameter_list: Any, role: str) -> Tensor | None:
    if isinstance(tracked_parameter_list, Tensor):
        return tracked_parameter_list
    if tracked_parameter_list:
        first = list(tracked_parameter_list)[0]
        if isinstance(first, Tensor):
            return first
    if module is not None:
        t = getattr(module, "bias" if role == "bias" else "weight", None)
        if isinstance(t, Tensor):
            return t
    return None


# ---------------------------------------------------------------------------
# Mixins
# ---------------------------------------------------------------------------


class SolveTensorQuantFromEnum(ExtendedInjector):
    """``tensor_quant`` from ``quant_type`` (kind ``tensor_quant``) and ``quant_role``.

    ``QuantType.FP`` (``"fp"``) solves to ``None``: no quantization. Also
    provides the collaborators of an integer quantizer: ``int_quant`` and
    ``tensor_clamp_impl`` (from ``tensor_clamp_impl_type``, default
    ``"clamp"``, gradient blocked outside the range; ``"clamp_ste"`` passes it),
    and the default ternary ``threshold`` (0.5, a fraction of the scale).
    """

    tensor_clamp_impl_type = "clamp"
    threshold = 0.5

    @value
    def tensor_quant(quant_type, quant_role=None):
        return resolve("tensor_quant", quant_type, quant_role, attribute="quant_type")

    @value
    def int_quant():
        return resolve(INT_QUANT_KIND, "int")

    @value
    def tensor_clamp_impl(tensor_clamp_impl_type):
        return resolve(TENSOR_CLAMP_KIND, tensor_clamp_impl_type, attribute="tensor_clamp_impl_type")


class SolveScalingFromEnum(ExtendedInjector):
    """``scaling_impl`` from ``scaling_impl_type`` (kind ``scaling``) and ``quant_role``, and its defaults.

    ``scaling_init`` (the constant or initial threshold of ``const`` and
    ``parameter`` scaling) is solved, unless set, from ``scaling_const`` (the
    older name), else ``max(|min_val|, |max_val|)``, else the max ``|w|`` of
    the tracked tensors (per channel when the scaling is).
    """

    scaling_min_val = 1e-8
    collect_stats_steps = 30

    @value
    def scaling_impl(scaling_impl_type, quant_role=None):
        return resolve("scaling", scaling_impl_type, quant_role, attribute="scaling_impl_type")

    @value
    def scaling_init(
        scaling_impl_type=None,
        scaling_const=None,
        min_val=None,
        max_val=None,
        tracked_parameter_list=None,
        scaling_shape=(),
    ):
        if scaling_const is not None:
            return scaling_const
        if min_val is not None or max_val is not None:
            bounds = [abs(float(v)) for v in (min_val, max_val) if v is not None]
            threshold = max(bounds)
            if threshold <= 0:
                raise ConfigError(
                    f"min_val={min_val!r} and max_val={max_val!r} give an empty range; the threshold "
                    f"max(|min_val|, |max_val|) must be > 0, e.g. min_val=-1.0, max_val=1.0"
                )
            return threshold
        tensors = [t for t in (tracked_parameter_list or []) if isinstance(t, Tensor)]
        if tensors:
            with torch.no_grad():
                shape = tuple(scaling_shape or ())
                if not shape:
                    return torch.stack([t.detach().abs().max() for t in tensors]).max()
                axis = next((i for i, s in enumerate(shape) if s != 1), 0)
                per_tensor = [t.detach().abs().movedim(axis, 0).reshape(t.shape[axis], -1).amax(1) for t in tensors]
                return torch.stack(per_tensor).amax(0).reshape(shape)
        raise ConfigError(
            f"scaling_impl_type={show_name(scaling_impl_type)} needs an initial threshold: set scaling_init=... "
            f"(e.g. the expected max |x|), or min_val=... / max_val=... for activations"
        )


class SolveBitWidthImplFromEnum(ExtendedInjector):
    """``bit_width_impl`` from ``bit_width_impl_type`` (kind ``bit_width``).

    The chosen block validates ``bit_width`` (an integer in 1..32) and
    raises :class:`~brevitas.errors.ConfigError`, which the injector prefixes
    with the quantizer's name.
    """

    @value
    def bit_width_impl(bit_width_impl_type):
        return resolve("bit_width", bit_width_impl_type, attribute="bit_width_impl_type")


class SolveRestrictScalingFromEnum(ExtendedInjector):
    """``restrict_scaling_impl`` from ``restrict_scaling_type`` (kind ``restrict_value``), and ``int_scaling_impl``.

    ``int_scaling_impl`` (the integer a threshold is divided by) is the
    ``int_scaling`` entry named like the restriction when there is one
    (``power_of_two``: a power of two, so fixed-point scales stay powers of
    two), else ``int``. A power-of-two scale with a zero-point other than 0
    is refused: fixed-point formats (FINN, PyXIR) have no zero-point, so the
    two requests contradict each other.

    ``restrict_value_float_to_int_impl`` (how a power-of-two exponent is
    rounded) comes from ``restrict_value_float_to_int_impl_type`` (kind
    ``float_to_int``; unset rounds to the nearest power of two).
    """

    restrict_scaling_type = RestrictValueType.FP

    @value
    def restrict_scaling_impl(restrict_scaling_type):
        return resolve("restrict_value", restrict_scaling_type, attribute="restrict_scaling_type")

    @value
    def restrict_value_float_to_int_impl(restrict_value_float_to_int_impl_type=None):
        return resolve(
            "float_to_int", restrict_value_float_to_int_impl_type, attribute="restrict_value_float_to_int_impl_type"
        )

    @value
    def int_scaling_impl(restrict_scaling_impl, zero_point_impl=None):
        name = str(getattr(restrict_scaling_impl, "restrict_value_type", "") or "").lower()
        if name == RestrictValueType.POWER_OF_TWO.value and zero_point_impl is not None:
            from brevitas.core.zero_point import ZeroZeroPoint

            if not isinstance(zero_point_impl, ZeroZeroPoint):
                raise ConfigError(
                    f"restrict_scaling_type=POWER_OF_TWO (a fixed-point scale) cannot be combined with the "
                    f"zero-point {type(zero_point_impl).__name__}: fixed-point formats (FINN, PyXIR) have no "
                    f"zero-point, so a power-of-two scale with a shifted range is contradictory. Keep the "
                    f"zero-point at 0 (zero_point_impl_type='zero', e.g. IntQuant / UintQuant from "
                    f"brevitas.quant.base) or use restrict_scaling_type='fp' (e.g. ShiftedUint8ActPerTensorFloat)"
                )
        registry = get_registry()
        if not name or (INT_SCALING_KIND, name) not in registry:
            name = "int"
        return registry.get(INT_SCALING_KIND, name)


class SolveStatsOpFromEnum(ExtendedInjector):
    """``scaling_stats_impl`` from ``scaling_stats_op`` (kind ``stats_op``).

    The statistic's own parameters come by name: ``stats_reduce_dim``,
    ``high_percentile_q``, ``low_percentile_q``, ``scaling_stats_sigma``.
    """

    @value
    def scaling_stats_impl(scaling_stats_op):
        return resolve("stats_op", scaling_stats_op, attribute="scaling_stats_op")


class SolveFloatToIntFromEnum(ExtendedInjector):
    """``float_to_int_impl`` from ``float_to_int_impl_type`` (kind ``float_to_int``, default ROUND)."""

    float_to_int_impl_type = FloatToIntImplType.ROUND

    @value
    def float_to_int_impl(float_to_int_impl_type):
        return resolve("float_to_int", float_to_int_impl_type, attribute="float_to_int_impl_type")


class SolveZeroPointFromEnum(ExtendedInjector):
    """``zero_point_impl`` from ``zero_point_impl_type`` (kind ``zero_point``, default ZERO) and ``quant_role``."""

    zero_point_impl_type = ZeroPointImplType.ZERO

    @value
    def zero_point_impl(zero_point_impl_type, quant_role=None):
        return resolve("zero_point", zero_point_impl_type, quant_role, attribute="zero_point_impl_type")


def _per_channel(scaling_per_output_channel: Any) -> bool:
    if not isinstance(scaling_per_output_channel, bool):
        raise ConfigError(f"scaling_per_output_channel must be True or False, got {scaling_per_output_channel!r}")
    return scaling_per_output_channel


class SolveScalingShape(ExtendedInjector):
    """``scaling_shape``: ``()`` per tensor, one value per output channel otherwise.

    Per-channel weights and biases take the channel count from the tracked
    tensor (``tracked_parameter_list[0]``, else ``module.weight`` /
    ``module.bias``) at :func:`output_channel_axis`: ``(C, 1, 1, 1)`` for a
    ``Conv2d``, ``(1, C, 1, 1)`` for a ``ConvTranspose2d``. Activations use
    ``per_channel_broadcastable_shape`` (e.g. ``(1, C, 1, 1)``), which any role
    may set to override.

    ``permute_dims`` (for the statistics' input view) puts the channel axis
    first: solved from the layer for weights, ``scaling_stats_permute_dims``
    for activations.
    """

    scaling_per_output_channel = False

    @value
    def scaling_shape(
        scaling_per_output_channel,
        quant_role=None,
        module=None,
        tracked_parameter_list=None,
        per_channel_broadcastable_shape=None,
    ):
        if not _per_channel(scaling_per_output_channel):
            return ()
        if per_channel_broadcastable_shape is not None:
            return tuple(int(s) for s in per_channel_broadcastable_shape)
        if quant_role in ("weight", "bias"):
            tensor = _tracked_tensor(module, tracked_parameter_list, quant_role)
            if tensor is not None and tensor.dim() > 0:
                axis = _channel_axis_of_module(module, quant_role)
                shape = [1] * tensor.dim()
                shape[axis] = tensor.shape[axis]
                return tuple(shape)
        what = {
            "weight": "the layer it quantizes (the proxy sets module and tracked_parameter_list; outside a layer "
            "write quant.let(module=layer, tracked_parameter_list=[layer.weight]))",
            "bias": "the layer whose bias it quantizes (quant.let(module=layer, tracked_parameter_list=[layer.bias]))",
        }.get(
            str(quant_role),
            "per_channel_broadcastable_shape=(1, C, 1, 1) for C channels (as a layer keyword: "
            "input_per_channel_broadcastable_shape / per_channel_broadcastable_shape)",
        )
        raise ConfigError(
            f"per-channel scaling (scaling_per_output_channel=True) needs the number of channels, and none is known "
            f"for this {quant_role or 'tensor'} quantizer: give it {what}, set "
            f"per_channel_broadcastable_shape explicitly, or use scaling_per_output_channel=False"
        )

    @value
    def permute_dims(quant_role=None, module=None, tracked_parameter_list=None, scaling_stats_permute_dims=None):
        if scaling_stats_permute_dims is not None:
            return tuple(scaling_stats_permute_dims)
        if quant_role == "weight":
            tensor = _tracked_tensor(module, tracked_parameter_list, quant_role)
            axis = _channel_axis_of_module(module, quant_role)
            if tensor is not None and axis != 0 and tensor.dim() > axis:
                return (axis, *[d for d in range(tensor.dim()) if d != axis])
        return None


class SolveStatsViewAndReduceDim(ExtendedInjector):
    """How statistics see the tensor: ``scaling_stats_input_view_shape_impl`` and ``stats_reduce_dim``.

    Per tensor: the ``over_tensor`` view (flatten) and ``stats_reduce_dim =
    None``. Per channel (or ``StatsOp.MAX_AVE``, a mean of per-channel
    maxima): ``over_output_channels`` for weights and biases (``(C, -1)``),
    ``over_batch_over_output_channels`` for activations, and
    ``stats_reduce_dim = 1``. The views are looked up under kind ``stats_view``.
    """

    @value
    def stats_reduce_dim(scaling_per_output_channel, scaling_stats_op=None):
        if _per_channel(scaling_per_output_channel) or scaling_stats_op == StatsOp.MAX_AVE:
            return 1
        return None

    @value
    def scaling_stats_input_view_shape_impl(scaling_per_output_channel, quant_role=None, scaling_stats_op=None):
        if not (_per_channel(scaling_per_output_channel) or scaling_stats_op == StatsOp.MAX_AVE):
            name = "over_tensor"
        elif quant_role in ("act", "trunc"):
            name = "over_batch_over_output_channels"
        else:
            name = "over_output_channels"
        return resolve(STATS_VIEW_KIND, name)
