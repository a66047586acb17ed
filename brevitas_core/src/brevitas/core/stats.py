"""Interface of statistics over a tensor (registry kind ``stats_op``).

Example:
    >>> from brevitas.core.stats import StatsOp
    >>> StatsOp.kind
    'stats_op'
"""

from __future__ import annotations

from torch import Tensor

from brevitas.core.base import QuantBlock

__all__ = ["StatsOp"]


class StatsOp(QuantBlock):
    """``forward(x) -> statistic``.

    ``x`` arrives already viewed by the scaling block: flattened to 1-D for
    per-tensor statistics, ``(C, N)`` for per-channel ones (reduce over
    ``stats_reduce_dim``, keep ``C``).
    """

    kind = "stats_op"

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError
