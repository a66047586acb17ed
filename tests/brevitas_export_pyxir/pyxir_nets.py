"""DPU-ready test networks (brevitas.quant.fixed_point quantizers) and the comparison with the contract executor."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
from contract_executor import execute
from torch import nn

import brevitas.export as bx
from brevitas.nn import (
    QuantAdaptiveAvgPool2d,
    QuantAvgPool2d,
    QuantConv2d,
    QuantEltwiseAdd,
    QuantIdentity,
    QuantLinear,
    QuantMaxPool2d,
    QuantReLU,
)
from brevitas.quant.fixed_point import (
    Int8ActPerTensorFixedPoint,
    Int8BiasPerTensorFixedPointInternalScaling,
    Int8WeightPerTensorFixedPoint,
    Uint8ActPerTensorFixedPoint,
)

__all__ = [
    "DpuInt8Act",
    "DpuUint8Act",
    "ResidualNet",
    "calibrate",
    "conv_kwargs",
    "export_and_execute",
    "small_cnn",
]


class DpuInt8Act(Int8ActPerTensorFixedPoint):
    """The fixed-point 8-bit signed activation, rounding as the DPU (half toward +infinity)."""

    float_to_int_impl_type = "dpu"


class DpuUint8Act(Uint8ActPerTensorFixedPoint):
    """The fixed-point 8-bit unsigned activation, rounding as the DPU."""

    float_to_int_impl_type = "dpu"


def conv_kwargs(dpu_rounding: bool = True, **extra: Any) -> dict[str, Any]:
    """Quantizers of a DPU-ready QuantConv2d / QuantLinear with an 8-bit signed output."""
    kw: dict[str, Any] = {
        "weight_quant": Int8WeightPerTensorFixedPoint,
        "bias_quant": Int8BiasPerTensorFixedPointInternalScaling,
        "output_quant": DpuInt8Act if dpu_rounding else Int8ActPerTensorFixedPoint,
        "return_quant_tensor": True,
    }
    kw.update(extra)
    return kw


def _act(signed: bool, dpu_rounding: bool) -> type:
    if dpu_rounding:
        return DpuInt8Act if signed else DpuUint8Act
    return Int8ActPerTensorFixedPoint if signed else Uint8ActPerTensorFixedPoint


def small_cnn(
    dpu_rounding: bool = True,
    padding: int = 1,
    stride: int = 1,
    groups: int = 1,
    dilation: int = 1,
    bias: bool = True,
    pool: str = "max",
) -> nn.Sequential:
    """input quant -> conv -> ReLU -> pool -> conv -> ReLU -> global average -> flatten -> linear."""
    kw = conv_kwargs(dpu_rounding)
    relu = {"act_quant": _act(False, dpu_rounding), "return_quant_tensor": True}
    trunc = {"float_to_int_impl_type": "dpu" if dpu_rounding else "round"}
    pooling: nn.Module = QuantMaxPool2d(2) if pool == "max" else QuantAvgPool2d(2, **trunc)
    return nn.Sequential(
        QuantIdentity(act_quant=_act(True, dpu_rounding), return_quant_tensor=True),
        QuantConv2d(4, 8, 3, padding=padding, stride=stride, dilation=dilation, bias=bias, **kw),
        QuantReLU(**relu),
        pooling,
        QuantConv2d(8, 8, 3, padding=1, groups=groups, bias=bias, **kw),
        QuantReLU(**relu),
        QuantAdaptiveAvgPool2d(1, **trunc),
        nn.Flatten(),
        QuantLinear(8, 5, bias=bias, **kw),
    )


class ResidualNet(nn.Module):
    """A residual block: relu(conv(x)) + conv(x) through QuantEltwiseAdd, then a linear classifier."""

    def __init__(self, dpu_rounding: bool = True) -> None:
        super().__init__()
        act = _act(True, dpu_rounding)
        self.inp = QuantIdentity(act_quant=act, return_quant_tensor=True)
        self.conv1 = QuantConv2d(3, 6, 3, padding=1, **conv_kwargs(dpu_rounding))
        self.relu1 = QuantReLU(act_quant=_act(False, dpu_rounding), return_quant_tensor=True)
        self.conv2 = QuantConv2d(6, 6, 1, **conv_kwargs(dpu_rounding))
        self.add = QuantEltwiseAdd(input_quant=act, output_quant=act, return_quant_tensor=True)
        self.relu2 = QuantReLU(act_quant=_act(False, dpu_rounding), return_quant_tensor=True)
        self.fc = QuantLinear(6 * 4 * 4, 3, **conv_kwargs(dpu_rounding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu1(self.conv1(self.inp(x)))
        y = self.relu2(self.add(y, self.conv2(y)))
        y = torch.flatten(y, 1)
        return self.fc(y)


def calibrate(model: nn.Module, shape: tuple[int, ...], steps: int = 4, seed: int = 0) -> nn.Module:
    """A few training-mode passes (activation statistics), then eval mode."""
    gen = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(shape, generator=gen))
    return model.eval()


def output_step(artifact: onnx.ModelProto) -> float:
    """``2 ** -fix_point`` of the node producing the (first) graph output."""
    out = artifact.graph.output[0].name
    producers = {o: n for n in artifact.graph.node for o in n.output}
    node = producers[out]
    while node.op_type == "Flatten":
        node = producers[node.input[0]]
    attr = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return 2.0 ** -attr["vai_quant_out"][1]


def export_and_execute(
    model: nn.Module, x: torch.Tensor, exporter: str = "pyxir"
) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray, float]:
    """Export, run the test-side contract executor; returns (artifact, executor output, PyTorch output, step)."""
    artifact = bx.export(model, x, exporter=exporter)
    got = execute(artifact, x.numpy())[0]
    with torch.no_grad():
        ref = model.eval()(x)
    ref = getattr(ref, "value", ref).numpy()
    return artifact, got, ref, output_step(artifact)
