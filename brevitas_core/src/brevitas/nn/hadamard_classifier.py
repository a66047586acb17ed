"""A classifier with a fixed Hadamard projection: :class:`HadamardClassifier`.

``out = -scale * F.linear(x / ||x||, H)`` with ``H`` the first
``out_channels`` rows and ``in_channels`` columns of a Sylvester Hadamard
matrix (entries +-1) and ``scale`` learned (or fixed). There is no weight to
store or quantize: the projection is a buffer.

With a valid per-tensor QuantTensor input the output is valid too: its
integers are ``-H @ int(x)`` and its scale ``scale * input_scale / ||x||``,
one per sample.

Example:
    >>> import torch
    >>> from brevitas.nn import HadamardClassifier
    >>> clf = HadamardClassifier(6, 3)
    >>> clf(torch.randn(2, 6)).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brevitas.nn.quant_layer import QuantLayerMixin, acc_bit_width, max_abs_int
from brevitas.proxy.base import make_quant_tensor
from brevitas.quant_tensor import QuantTensor

__all__ = ["HadamardClassifier", "hadamard_matrix"]


def hadamard_matrix(n: int) -> Tensor:
    """The ``n x n`` Sylvester Hadamard matrix (``n`` a power of two), entries +-1.

    Example:
        >>> hadamard_matrix(2).tolist()
        [[1.0, 1.0], [1.0, -1.0]]
    """
    if n < 1 or n & (n - 1):
        raise ValueError(f"the Sylvester Hadamard matrix needs a power of two, got {n}")
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


class HadamardClassifier(QuantLayerMixin, nn.Module):
    """Fixed +-1 projection of the L2-normalized input, times a learned scale.

    Args:
        in_channels: input features.
        out_channels: classes.
        fixed_scale: keep ``scale`` constant (a buffer) instead of learning it.
        return_quant_tensor: return a QuantTensor.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        fixed_scale: bool = False,
        return_quant_tensor: bool = False,
    ) -> None:
        nn.Module.__init__(self)
        self._init_quant_layer(return_quant_tensor)
        self.in_channels = in_channels
        self.out_channels = out_channels
        size = 1 << max(0, math.ceil(math.log2(max(in_channels, out_channels))))
        self.register_buffer("proj", hadamard_matrix(size)[:out_channels, :in_channels].contiguous())
        init_scale = torch.tensor(1.0 / math.sqrt(out_channels))
        if fixed_scale:
            self.register_buffer("scale", init_scale)
        else:
            self.scale = nn.Parameter(init_scale)
        self.eps = 1e-8

    def forward(self, input: Any) -> Any:
        x = input.value if isinstance(input, QuantTensor) else input
        norm = x.norm(p=2, dim=-1, keepdim=True) + self.eps
        out = -self.scale * F.linear(x / norm, self.proj)
        if not self.return_quant_tensor:
            return out
        if not (isinstance(input, QuantTensor) and input.is_valid and input.is_per_tensor):
            return make_quant_tensor(out, training=self.training)
        assert input.scale is not None and input.zero_point is not None and input.bit_width is not None
        scale = self.scale * input.scale.reshape(()) / norm
        # out / scale = -H (q - zp) = -H q + zp * rowsum(H): integers -H q with zero-point -zp * rowsum(H)
        zero_point = -input.zero_point.reshape(()) * self.proj.sum(1)
        bit_width = acc_bit_width(max_abs_int(input.bit_width, input.signed) * self.in_channels, True)
        return make_quant_tensor(out, scale, zero_point, bit_width, True, False, self.training)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, fixed_scale={'scale' in self._buffers}"
