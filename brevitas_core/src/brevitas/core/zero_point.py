"""Interface of zero-point blocks (registry kind ``zero_point``) and ``ZeroZeroPoint``.

Example:
    >>> import torch
    >>> from brevitas.core.zero_point import ZeroZeroPoint
    >>> ZeroZeroPoint()(torch.randn(3), torch.tensor(0.5), torch.tensor(4.0))
    tensor(0.)
"""

from __future__ import annotations

from torch import Tensor

from brevitas.core.base import QuantBlock

__all__ = ["ZeroPointImpl", "ZeroZeroPoint"]


class ZeroPointImpl(QuantBlock):
    """``forward(x, scale, bit_width) -> zero_point`` in the integer domain.

    The result broadcasts against ``x`` like ``scale`` does and holds integer
    values (it is rounded with a straight-through estimator when learned).
    """

    kind = "zero_point"

    def forward(self, x: Tensor, scale: Tensor, bit_width: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class ZeroZeroPoint(ZeroPointImpl):
    """Symmetric quantization: the zero-point is always 0."""

    def forward(self, x: Tensor, scale: Tensor, bit_width: Tensor) -> Tensor:
        return scale.new_zeros(())
