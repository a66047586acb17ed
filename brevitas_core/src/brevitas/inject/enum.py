"""Enums are names: ``str`` enums the solver resolves through the registry.

Each member is equal to its lower-case name, compared case-insensitively, so a
quantizer may write ``ScalingImplType.STATS``, ``"stats"`` or ``"STATS"``, and
a name a third-party plugin registered (``"lsq"``) wherever a member is
accepted. Each enum names the registry kind its members live in (``kind``).

Example:
    >>> from brevitas.inject.enum import ScalingImplType
    >>> ScalingImplType.STATS == "stats" == ScalingImplType("Stats")
    True
    >>> ScalingImplType.kind
    'scaling'
    >>> str(ScalingImplType.PARAMETER_FROM_STATS)
    'parameter_from_stats'
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Any

from brevitas.errors import ConfigError

__all__ = [
    "ATTRIBUTE_ENUMS",
    "ENUMS_BY_KIND",
    "BitWidthImplType",
    "FloatToIntImplType",
    "NameEnum",
    "QuantType",
    "RestrictValueType",
    "ScalingImplType",
    "StatsOp",
    "ZeroPointImplType",
]


class _Kind:
    """A class-level constant; a descriptor, so ``Enum`` does not turn it into a member."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __get__(self, obj: object, owner: type | None = None) -> str:
        return self.kind


class NameEnum(str, Enum):
    """Base of Brevitas enums: a ``str`` equal to its lower-case name, in any case.

    - ``member == "stats"``, ``== "STATS"``, ``== "Stats"`` are all true;
    - ``hash(member) == hash("stats")``, so a dict keyed by members is found
      with the lower-case string and the other way round (other spellings
      compare equal but do not hash alike: normalise with ``.lower()`` first);
    - ``Enum("STATS")`` returns the member; an unknown name raises
      :class:`~brevitas.errors.ConfigError` listing the members;
    - ``str(member)`` and ``f"{member}"`` give the lower-case name.

    Subclasses set ``kind = _Kind("<registry kind>")``.
    """

    kind = _Kind("")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return str.__eq__(self, other.lower())
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, str):
            return not str.__eq__(self, other.lower())
        return NotImplemented

    def __hash__(self) -> int:
        return str.__hash__(self)

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, format_spec: str) -> str:
        return str.__format__(str(self), format_spec)

    @classmethod
    def _missing_(cls, name: Any) -> NameEnum:
        if isinstance(name, str):
            member = cls._value2member_map_.get(name.strip().lower())
            if member is not None:
                return member  # type: ignore[return-value]
        members = [m.value for m in cls]
        msg = f"{name!r} is not a {cls.__name__}. Members: {', '.join(members)}."
        if isinstance(name, str):
            close = difflib.get_close_matches(name.strip().lower(), members, n=1)
            if close:
                msg += f" Did you mean {close[0]!r}?"
            if cls.kind:
                msg += (
                    f" A name registered by a plugin for kind {cls.kind!r} is accepted as a plain string "
                    f"wherever a {cls.__name__} is (see `brevitas plugins`)."
                )
        raise ConfigError(msg)


class QuantType(NameEnum):
    """Which tensor quantizer (registry kind ``tensor_quant``); ``FP`` means none."""

    kind = _Kind("tensor_quant")
    INT = "int"
    BINARY = "binary"
    TERNARY = "ternary"
    FP = "fp"


class ScalingImplType(NameEnum):
    """Where the scale factor comes from (registry kind ``scaling``)."""

    kind = _Kind("scaling")
    CONST = "const"
    STATS = "stats"
    AFFINE_STATS = "affine_stats"
    PARAMETER = "parameter"
    PARAMETER_FROM_STATS = "parameter_from_stats"
    HE = "he"


class StatsOp(NameEnum):
    """The statistic a statistics-based scaling takes (registry kind ``stats_op``)."""

    kind = _Kind("stats_op")
    MAX = "max"
    AVE = "ave"
    MAX_AVE = "max_ave"
    MEAN_SIGMA_STD = "mean_sigma_std"
    MEAN_LEARN_SIGMA_STD = "mean_learn_sigma_std"
    PERCENTILE = "percentile"
    MIN_MAX = "min_max"


class BitWidthImplType(NameEnum):
    """Constant or learned bit-width (registry kind ``bit_width``)."""

    kind = _Kind("bit_width")
    CONST = "const"
    PARAMETER = "parameter"


class RestrictValueType(NameEnum):
    """The domain a scale lives in (registry kind ``restrict_value``)."""

    kind = _Kind("restrict_value")
    FP = "fp"
    LOG_FP = "log_fp"
    INT = "int"
    POWER_OF_TWO = "power_of_two"


class FloatToIntImplType(NameEnum):
    """Rounding with its straight-through estimator (registry kind ``float_to_int``)."""

    kind = _Kind("float_to_int")
    ROUND = "round"
    CEIL = "ceil"
    FLOOR = "floor"
    ROUND_TO_ZERO = "round_to_zero"
    DPU = "dpu"


class ZeroPointImplType(NameEnum):
    """Where the zero-point comes from (registry kind ``zero_point``)."""

    kind = _Kind("zero_point")
    ZERO = "zero"
    STATS = "stats"
    PARAMETER = "parameter"
    PARAMETER_FROM_STATS = "parameter_from_stats"
    RUNTIME_STATS = "runtime_stats"


#: registry kind -> the enum naming its standard members
ENUMS_BY_KIND: Mapping[str, type[NameEnum]] = MappingProxyType(
    {
        e.kind: e
        for e in (
            QuantType,
            ScalingImplType,
            StatsOp,
            BitWidthImplType,
            RestrictValueType,
            FloatToIntImplType,
            ZeroPointImplType,
        )
    }
)

#: quantizer attribute (docs/engine.md) -> the enum its value names; a plain
#: string there is a registry name of that enum's kind
ATTRIBUTE_ENUMS: Mapping[str, type[NameEnum]] = MappingProxyType(
    {
        "quant_type": QuantType,
        "scaling_impl_type": ScalingImplType,
        "scaling_stats_op": StatsOp,
        "bit_width_impl_type": BitWidthImplType,
        "restrict_scaling_type": RestrictValueType,
        "float_to_int_impl_type": FloatToIntImplType,
        "zero_point_impl_type": ZeroPointImplType,
    }
)
