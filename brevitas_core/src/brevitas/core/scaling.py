"""Interface of scale-factor blocks (registry kind ``scaling``) and ``ConstScaling``.

A scaling block returns the *threshold* of the quantizer's range (for example
the max absolute value of a tensor); the tensor quantizer divides it by the
integer range of the current bit-width (``int_scaling_impl``) to get the scale.

Example:
    >>> import torch
    >>> from brevitas.core.scaling import ConstScaling
    >>> ConstScaling(scaling_init=2.0)(torch.randn(4))
    tensor(2.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from brevitas.core.base import QuantBlock

__all__ = ["ConstScaling", "ScalingImpl"]


class ScalingImpl(QuantBlock):
    """``forward(x) -> threshold`` broadcastable against ``x``.

    Blocks that keep statistics do it in buffers; blocks that learn do it in
    ``nn.Parameter``. ``restrict_scaling_impl`` (a
    :class:`brevitas.core.restrict_val.RestrictValue`) decides the domain the
    value lives in (float, log, power of two).
    """

    kind = "scaling"

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class ConstScaling(ScalingImpl):
    """A constant threshold, stored as a buffer (it moves with ``.to(device)``).

    Args:
        scaling_init: the constant threshold, a positive number or tensor.
        restrict_scaling_impl: optional restriction; when given the stored value
            is restricted once at construction (e.g. rounded to a power of two).
    """

    def __init__(self, scaling_init: float | Tensor, restrict_scaling_impl: torch.nn.Module | None = None) -> None:
        super().__init__()
        value = torch.as_tensor(scaling_init, dtype=torch.float32).detach().clone()
        if not torch.all(value > 0):
            from brevitas.errors import ConfigError

            raise ConfigError(f"scaling_init must be > 0, got {scaling_init!r}")
        if restrict_scaling_impl is not None:
            value = restrict_scaling_impl(restrict_scaling_impl.restrict_init_tensor(value)).detach()
        self.register_buffer("value", value)

    def forward(self, x: Tensor) -> Tensor:
        return self.value
