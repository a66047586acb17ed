"""Shared base of the building blocks' interfaces.

Example:
    >>> import torch
    >>> from brevitas.core.zero_point import ZeroZeroPoint
    >>> ZeroZeroPoint()(torch.ones(3), torch.tensor(0.1), torch.tensor(8.0))
    tensor(0.)
"""

from __future__ import annotations

from torch import nn

__all__ = ["QuantBlock"]


class QuantBlock(nn.Module):
    """Base of every building block.

    Subclasses declare their collaborators as constructor arguments named like
    the quantizer attributes that provide them (``scaling_impl``,
    ``bit_width``, ``restrict_scaling_impl`` ...): the injector wires them by
    name. Collaborators that are modules are kept as child modules.
    """

    #: the registry kind this block implements, for ``describe`` and checks
    kind: str = ""
