"""LSQ: the quantization step is a parameter, initialized from the weights, with a scaled gradient.

Brevitas scaling blocks return the *threshold* (the largest representable
magnitude); the tensor quantizer divides it by the integer range. So this
block learns ``threshold = step * q_max`` and applies LSQ's gradient scale
``1 / sqrt(numel * q_max)`` to it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from brevitas.core.scaling import ScalingImpl
from brevitas.errors import ConfigError

__all__ = ["LsqScaling"]


class LsqScaling(ScalingImpl):
    """Learned step size, per tensor.

    Args:
        tracked_parameter_list: the weights being quantized (set by the proxy).
        bit_width: the quantizer's bit-width (for the initial step and the gradient scale).
        signed: whether the integer range is signed.
    """

    def __init__(self, tracked_parameter_list: list[Tensor], bit_width: int, signed: bool = True) -> None:
        super().__init__()
        if not tracked_parameter_list:
            raise ConfigError("lsq scaling needs the weights it quantizes; use it for weight quantizers")
        weight = torch.cat([t.detach().reshape(-1) for t in tracked_parameter_list])
        q_max = 2 ** (int(bit_width) - 1) - 1 if signed else 2 ** int(bit_width) - 1
        q_max = max(q_max, 1)
        step = 2 * weight.abs().mean() / math.sqrt(q_max)
        self.value = nn.Parameter((step * q_max).clamp_min(1e-8).reshape(()))
        self.grad_scale = 1.0 / math.sqrt(weight.numel() * q_max)

    def forward(self, x: Tensor) -> Tensor:
        scaled = self.value * self.grad_scale
        # forward: value; backward: gradient scaled by grad_scale
        return (self.value - scaled).detach() + scaled
