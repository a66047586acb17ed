"""A DPU-ready network: fixed-point quantizers, a few training steps, PyXIR export, run by the contract executor.

    python examples/dpu_fixed_point.py [--steps N] [--output DIR]

The Vitis-AI DPU runs 8-bit fixed-point networks: every scale is a power of
two (``scale = 2 ** -fix_point``), activations are 8-bit, weights and biases
at most 8 bits. The quantizers of ``brevitas.quant.fixed_point`` give exactly
that; here they round as the DPU does (half toward +infinity), so the
exported file computes bit for bit what the PyTorch model computes:

- every QuantConv2d / QuantLinear has an 8-bit fixed-point weight, bias and
  output quantizer (the DPU stores each layer's output in 8 bits);
- every ReLU output is quantized unsigned (QuantReLU with
  ``Uint8ActPerTensorFixedPoint``), every other activation signed;
- the residual sum is a QuantEltwiseAdd, the global average pool a
  QuantAdaptiveAvgPool2d whose truncation rounds as the DPU.

The model is trained for a few steps on the 8x8 digits, exported for DPUv1
(``pyxir``) and DPUv2 (``pyxir-dpuv2``, explicit Pad nodes), and each file is
run on the test set by the exporter's consumer, the PyXIR contract executor.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import brevitas.export as bx
from brevitas.demo.data import load_digits_split
from brevitas.nn import (
    QuantAdaptiveAvgPool2d,
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


class DpuInt8Act(Int8ActPerTensorFixedPoint):
    """8-bit signed fixed-point activations, rounding half toward +infinity as the DPU."""

    float_to_int_impl_type = "dpu"


class DpuUint8Act(Uint8ActPerTensorFixedPoint):
    """8-bit unsigned fixed-point activations (ReLU outputs), rounding as the DPU."""

    float_to_int_impl_type = "dpu"


def dpu_layer(**extra: Any) -> dict[str, Any]:
    """Quantizers of a DPU-ready QuantConv2d / QuantLinear."""
    return {
        "weight_quant": Int8WeightPerTensorFixedPoint,
        "bias_quant": Int8BiasPerTensorFixedPointInternalScaling,
        "output_quant": DpuInt8Act,
        "return_quant_tensor": True,
        **extra,
    }


class DpuNet(nn.Module):
    """conv - relu - max pool - conv - relu - residual 1x1 conv + add - relu - global average - linear."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.quant_inp = QuantIdentity(act_quant=DpuInt8Act, return_quant_tensor=True)
        self.conv1 = QuantConv2d(1, 16, 3, padding=1, **dpu_layer())
        self.relu1 = QuantReLU(act_quant=DpuUint8Act, return_quant_tensor=True)
        self.pool1 = QuantMaxPool2d(2)
        self.conv2 = QuantConv2d(16, 32, 3, padding=1, **dpu_layer())
        self.relu2 = QuantReLU(act_quant=DpuUint8Act, return_quant_tensor=True)
        self.conv3 = QuantConv2d(32, 32, 1, **dpu_layer())
        self.add = QuantEltwiseAdd(input_quant=DpuInt8Act, output_quant=DpuInt8Act, return_quant_tensor=True)
        self.relu3 = QuantReLU(act_quant=DpuUint8Act, return_quant_tensor=True)
        self.pool2 = QuantAdaptiveAvgPool2d(1, float_to_int_impl_type="dpu")
        self.fc = QuantLinear(32, num_classes, **dpu_layer())

    def forward(self, x: Tensor) -> Tensor:
        out = self.pool1(self.relu1(self.conv1(self.quant_inp(x))))
        out = self.relu2(self.conv2(out))
        out = self.relu3(self.add(out, self.conv3(out)))
        out = torch.flatten(self.pool2(out), 1)
        return self.fc(out).value


def train(model: nn.Module, x: Tensor, y: Tensor, steps: int, batch_size: int = 64, seed: int = 0) -> None:
    """A few steps of Adam on (x, y)."""
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch_size,), generator=gen)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()


def main(steps: int = 200, output: Path = Path("brevitas-demo"), echo: Any = print) -> dict[str, Any]:
    """Train, export to ``pyxir`` and ``pyxir-dpuv2``, run each file; returns what was measured."""
    torch.manual_seed(0)
    data = load_digits_split()
    model = DpuNet()
    train(model, data.x_train, data.y_train, steps)
    with torch.no_grad():
        reference = model(data.x_test)
    accuracy = float((reference.argmax(1) == data.y_test).float().mean() * 100)
    echo(f"test accuracy: {accuracy:.2f}% (PyTorch, eval mode, after {steps} training steps)")
    result: dict[str, Any] = {"accuracy": accuracy, "exports": {}}
    output.mkdir(parents=True, exist_ok=True)
    for name in ("pyxir", "pyxir-dpuv2"):
        path = output / f"dpu_fixed_point_{name}.onnx"
        artifact = bx.export(model, data.x_test[:1], exporter=name, path=path)
        exporter = bx.get_exporter(name)
        produced = torch.from_numpy(exporter.run(path, data.x_test)[0])
        diff = float((produced - reference).abs().max())
        consumer_accuracy = float((produced.argmax(1) == data.y_test).float().mean() * 100)
        nodes = [n.op_type for n in artifact.graph.node]
        echo(f"{name}: {path} ({len(nodes)} nodes: {' '.join(nodes)})")
        echo(f"{name}: {exporter.consumer}: max |diff| {diff:g}, test accuracy {consumer_accuracy:.2f}%")
        result["exports"][name] = {"path": path, "max_abs_diff": diff, "accuracy": consumer_accuracy, "nodes": nodes}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--output", type=Path, default=Path("brevitas-demo"))
    args = parser.parse_args()
    main(args.steps, args.output)
