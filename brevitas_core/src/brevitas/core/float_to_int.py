"""Interface of float-to-int blocks (registry kind ``float_to_int``).

Example:
    >>> from brevitas.core.float_to_int import FloatToInt
    >>> FloatToInt.kind
    'float_to_int'
"""

from __future__ import annotations

from torch import Tensor

from brevitas.core.base import QuantBlock

__all__ = ["FloatToInt"]


class FloatToInt(QuantBlock):
    """``forward(x) -> integer-valued x`` with a straight-through gradient.

    ``rounding_mode`` names the rounding for exporters: one of ``ROUND``
    (half to even), ``CEIL``, ``FLOOR``, ``ROUND_TO_ZERO``, ``DPU``.
    """

    kind = "float_to_int"
    rounding_mode: str = "ROUND"

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError
