"""Value restrictions (registry kind ``restrict_value``): the domain a scale lives in.

A restriction maps a value between the *user domain* (the threshold a scaling
block returns) and the *stored domain* (what a learned parameter holds, or
what a statistic is converted to before being restricted):

==================  =====================  ==============================
name                ``restrict_init_tensor``  ``forward``
==================  =====================  ==============================
``fp``              identity               identity
``log_fp``          ``log2(v)``            ``2 ** p``
``int``             identity               ``round_ste(p)``
``power_of_two``    ``log2(v)``            ``2 ** round_ste(p)``
==================  =====================  ==============================

``forward(restrict_init_tensor(v))`` equals ``v`` up to the restriction: a
power-of-two restriction rounds in the log domain, so ``v`` goes to the
nearest power of two in ratio (``3`` -> ``4``, ``2.8`` -> ``2``), which is
what the original Brevitas does by default (its ``ceil`` variant, which never
shrinks a threshold, is available by passing
``restrict_value_float_to_int_impl``).

Example:
    >>> import torch
    >>> from brevitas_plugins.core.restrict_val import PowerOfTwoRestrictValue
    >>> r = PowerOfTwoRestrictValue()
    >>> r(r.restrict_init_tensor(torch.tensor([0.3, 3.0, 5.0])))
    tensor([0.2500, 4.0000, 4.0000])
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from brevitas.core.restrict_val import RestrictValue
from brevitas.errors import ConfigError
from brevitas.function.ste import round_ste
from brevitas.plugins.registry import Registry

__all__ = [
    "FloatRestrictValue",
    "IntRestrictValue",
    "LogFloatRestrictValue",
    "PowerOfTwoRestrictValue",
    "register",
]


class FloatRestrictValue(RestrictValue):
    """No restriction: the value is a plain float in both domains.

    Example:
        >>> import torch
        >>> r = FloatRestrictValue()
        >>> r(r.restrict_init_tensor(torch.tensor(0.3)))
        tensor(0.3000)
    """

    #: the registry name, read by exporters and ``describe``
    restrict_value_type = "fp"

    def restrict_init_tensor(self, x: Tensor) -> Tensor:
        """Identity."""
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Identity."""
        return x


class LogFloatRestrictValue(RestrictValue):
    """Stored as ``log2`` of the value, so a learned scale stays positive.

    Example:
        >>> import torch
        >>> r = LogFloatRestrictValue()
        >>> r.restrict_init_tensor(torch.tensor(8.0))
        tensor(3.)
        >>> r(torch.tensor(-1.0))
        tensor(0.5000)
    """

    restrict_value_type = "log_fp"

    def restrict_init_tensor(self, x: Tensor) -> Tensor:
        """``log2(x)``."""
        return torch.log2(x)

    def forward(self, x: Tensor) -> Tensor:
        """``2 ** x``."""
        return torch.exp2(x)


class IntRestrictValue(RestrictValue):
    """Integer values: stored as is, rounded (straight-through) on the way out.

    Example:
        >>> import torch
        >>> IntRestrictValue()(torch.tensor([0.4, 2.6]))
        tensor([0., 3.])
    """

    restrict_value_type = "int"

    def restrict_init_tensor(self, x: Tensor) -> Tensor:
        """Identity."""
        return x

    def forward(self, x: Tensor) -> Tensor:
        """``round_ste(x)`` (half to even, identity gradient)."""
        return round_ste(x)


class PowerOfTwoRestrictValue(RestrictValue):
    """Exact powers of two: stored as ``log2``, the exponent rounded on the way out.

    Args:
        restrict_value_float_to_int_impl: how the exponent is made an integer:
            ``None`` (the default) rounds half to even with a straight-through
            gradient, i.e. the nearest power of two in ratio. Pass a
            straight-through ceil (a ``float_to_int`` module such as the
            standard ``CeilSte``, or :func:`brevitas.function.ste.ceil_ste`)
            to never shrink the value, as fixed-point formats with saturation
            prefer.

    Raises:
        ConfigError: ``restrict_value_float_to_int_impl`` is not callable.

    Example:
        >>> import torch
        >>> from brevitas.function.ste import ceil_ste
        >>> r = PowerOfTwoRestrictValue(restrict_value_float_to_int_impl=ceil_ste)
        >>> r(r.restrict_init_tensor(torch.tensor(2.1)))
        tensor(4.)
    """

    restrict_value_type = "power_of_two"

    def __init__(self, restrict_value_float_to_int_impl: Callable[[Tensor], Tensor] | None = None) -> None:
        super().__init__()
        if restrict_value_float_to_int_impl is not None and not callable(restrict_value_float_to_int_impl):
            raise ConfigError(
                "restrict_value_float_to_int_impl must be a module or function rounding a tensor with a "
                f"straight-through gradient, got {type(restrict_value_float_to_int_impl).__name__}; "
                "leave it unset to round, or pass brevitas.function.ste.ceil_ste"
            )
        if isinstance(restrict_value_float_to_int_impl, nn.Module):
            self.float_to_int_impl: nn.Module | None = restrict_value_float_to_int_impl
            self._round_fn = None
        else:
            self.float_to_int_impl = None
            self._round_fn = restrict_value_float_to_int_impl

    def restrict_init_tensor(self, x: Tensor) -> Tensor:
        """``log2(x)``."""
        return torch.log2(x)

    def forward(self, x: Tensor) -> Tensor:
        """``2 ** round(x)``, rounding with a straight-through gradient."""
        if self.float_to_int_impl is not None:
            exponent = self.float_to_int_impl(x)
        elif self._round_fn is not None:
            exponent = self._round_fn(x)
        else:
            exponent = round_ste(x)
        return torch.exp2(exponent)


def register(registry: Registry) -> None:
    """Add the ``restrict_value`` names ``fp``, ``log_fp``, ``int``, ``power_of_two``."""
    registry.add("restrict_value", "fp", FloatRestrictValue, description="no restriction (plain float)")
    registry.add("restrict_value", "log_fp", LogFloatRestrictValue, description="learned in the log2 domain")
    registry.add("restrict_value", "int", IntRestrictValue, description="integer values (round, STE)")
    registry.add(
        "restrict_value", "power_of_two", PowerOfTwoRestrictValue, description="exact powers of two (log2, round)"
    )
