"""Interface of value restrictions (registry kind ``restrict_value``).

A restriction decides the domain a learned or measured value lives in: plain
float, log2 (learned in the log domain), integer, power of two.

Example:
    >>> import torch
    >>> from brevitas.core.restrict_val import RestrictValue
    >>> issubclass(RestrictValue, torch.nn.Module)
    True
"""

from __future__ import annotations

from torch import Tensor

from brevitas.core.base import QuantBlock

__all__ = ["RestrictValue"]


class RestrictValue(QuantBlock):
    """Maps a value between the user domain and the restricted domain.

    - ``restrict_init_tensor(t)``: user domain -> stored domain (e.g. ``log2``),
      used to initialize a parameter or to convert a statistic; no gradient
      tricks needed, it is called on detached tensors and on live statistics.
    - ``forward(p)``: stored domain -> user domain, applied every step
      (e.g. ``2 ** p``, or ``2 ** round_ste(p)`` for powers of two).

    ``forward(restrict_init_tensor(v))`` equals ``v`` up to the restriction.
    """

    kind = "restrict_value"

    def restrict_init_tensor(self, x: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError
