"""The demo's networks: the documented QuantLeNet, adapted to 1x8x8 digits.

The layer sequence is the one of the original documentation's 4-bit-weight /
8-bit-activation LeNet (input quantizer, two conv + ReLU + max-pool stages,
three fully connected layers); kernels and padding are sized for 8x8 inputs.
:class:`FloatLeNet` is the same network in plain ``torch.nn``, so its
``state_dict`` loads into every quantized variant.

Example:
    >>> import torch
    >>> from brevitas.demo.models import QuantLeNet, FloatLeNet
    >>> QuantLeNet(weight_bit_width=4, act_bit_width=8)(torch.rand(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    >>> sorted(FloatLeNet().state_dict()) == sorted(k for k in QuantLeNet().state_dict() if "quant" not in k)
    True
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU

__all__ = ["CONFIGS", "FloatLeNet", "QuantLeNet", "build_quant_lenet"]


class FloatLeNet(nn.Module):
    """The float baseline."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.fc1 = nn.Linear(32 * 2 * 2, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, num_classes, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.max_pool2d(self.relu1(self.conv1(x)), 2)
        out = F.max_pool2d(self.relu2(self.conv2(out)), 2)
        out = out.view(out.size(0), -1)
        out = self.relu3(self.fc1(out))
        out = self.relu4(self.fc2(out))
        return self.fc3(out)


class QuantLeNet(nn.Module):
    """The documented QuantLeNet on 1x8x8 inputs.

    Args:
        weight_bit_width: bit-width of every weight (1: binary, sign times a scale).
        act_bit_width: bit-width of the input and of every ReLU (1: the ReLUs
            become binary sign activations, and the input stays 8-bit).
        weight_quant / act_quant / input_quant / bias_quant: quantizers to use
            instead of the defaults (``None`` keeps the layer's default).
        layer_kwargs: extra keywords for the conv / linear layers
            (e.g. ``weight_scaling_per_output_channel=True``).
        collect_stats_steps: training steps during which activation scales
            come from statistics before they are learned (quantizer default
            when ``None``).
    """

    def __init__(
        self,
        weight_bit_width: int = 4,
        act_bit_width: int = 8,
        num_classes: int = 10,
        weight_quant: Any = None,
        act_quant: Any = None,
        input_quant: Any = None,
        bias_quant: Any = None,
        collect_stats_steps: int | None = None,
        **layer_kwargs: Any,
    ) -> None:
        super().__init__()
        wkw: dict[str, Any] = {"weight_bit_width": weight_bit_width, **layer_kwargs}
        if weight_quant is None and weight_bit_width == 1:  # binary weights: sign times a constant scale
            from brevitas.quant.binary import SignedBinaryWeightPerTensorConst

            weight_quant = SignedBinaryWeightPerTensorConst
            del wkw["weight_bit_width"]
        if weight_quant is not None:
            wkw["weight_quant"] = weight_quant
        if bias_quant is not None:
            wkw["bias_quant"] = bias_quant
        akw: dict[str, Any] = {"bit_width": act_bit_width}
        if act_quant is not None:
            akw["act_quant"] = act_quant
        ikw: dict[str, Any] = {"bit_width": act_bit_width}
        if input_quant is not None:
            ikw["act_quant"] = input_quant
        if collect_stats_steps is not None:
            akw["collect_stats_steps"] = ikw["collect_stats_steps"] = collect_stats_steps
        if act_bit_width == 1:  # binary activations: a sign (+-1), as in binarized networks
            from brevitas.quant.binary import SignedBinaryActPerTensorConst

            akw = {"act_quant": act_quant or SignedBinaryActPerTensorConst}
            act_layer: Any = QuantIdentity
            ikw = {"bit_width": 8} if input_quant is None else {"act_quant": input_quant}
            if collect_stats_steps is not None:
                ikw["collect_stats_steps"] = collect_stats_steps
        else:
            act_layer = QuantReLU
        self.quant_inp = QuantIdentity(return_quant_tensor=True, **ikw)
        self.conv1 = QuantConv2d(1, 16, 3, padding=1, **wkw)
        self.relu1 = act_layer(return_quant_tensor=True, **akw)
        self.conv2 = QuantConv2d(16, 32, 3, padding=1, **wkw)
        self.relu2 = act_layer(return_quant_tensor=True, **akw)
        self.fc1 = QuantLinear(32 * 2 * 2, 120, bias=True, **wkw)
        self.relu3 = act_layer(return_quant_tensor=True, **akw)
        self.fc2 = QuantLinear(120, 84, bias=True, **wkw)
        self.relu4 = act_layer(return_quant_tensor=True, **akw)
        self.fc3 = QuantLinear(84, num_classes, bias=False, **wkw)

    def forward(self, x: Tensor) -> Tensor:
        out = self.quant_inp(x)
        out = F.max_pool2d(self.relu1(self.conv1(out)), 2)
        out = F.max_pool2d(self.relu2(self.conv2(out)), 2)
        out = out.view(out.size(0), -1)
        out = self.relu3(self.fc1(out))
        out = self.relu4(self.fc2(out))
        return self.fc3(out)


def _int8_kwargs() -> dict[str, Any]:
    from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int32Bias

    return {"output_quant": Int8ActPerTensorFloat, "bias_quant": Int32Bias}


def _fixed_point_kwargs() -> dict[str, Any]:
    from brevitas.quant.fixed_point import (
        Int8ActPerTensorFixedPoint,
        Int8BiasPerTensorFixedPointInternalScaling,
        Int8WeightPerTensorFixedPoint,
        Uint8ActPerTensorFixedPoint,
    )

    return {
        # the DPU takes every layer's output as an 8-bit fixed-point tensor
        "output_quant": Int8ActPerTensorFixedPoint,
        "weight_quant": Int8WeightPerTensorFixedPoint,
        "act_quant": Uint8ActPerTensorFixedPoint,
        "input_quant": Int8ActPerTensorFixedPoint,
        "bias_quant": Int8BiasPerTensorFixedPointInternalScaling,
    }


#: Named configurations: the default one, and those that fit targets the
#: default cannot (8-bit everywhere with quantized outputs and int32 biases for
#: QOperator ONNX, fixed-point for the DPU).
CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "int8": {"weight_bit_width": 8, "act_bit_width": 8, "__int8__": True},
    "fixed-point": {"weight_bit_width": 8, "act_bit_width": 8, "__fixed_point__": True},
}


def build_quant_lenet(config: str = "default", **overrides: Any) -> QuantLeNet:
    """A QuantLeNet from a named :data:`CONFIGS` entry, with keyword overrides."""
    kwargs = dict(CONFIGS[config])
    if kwargs.pop("__int8__", False):
        kwargs.update(_int8_kwargs())
    if kwargs.pop("__fixed_point__", False):
        kwargs.update(_fixed_point_kwargs())
    kwargs.update(overrides)
    return QuantLeNet(**kwargs)
