"""The documented 4-bit-weight / 8-bit-activation LeNet, trained on digits and exported.

    python examples/lenet_digits.py [--epochs N] [--output DIR]

The network is written exactly as in the documentation (with kernels sized for
the 8x8 digits); it is trained with plain PyTorch and exported to standard
ONNX (QuantizeLinear / Clip / DequantizeLinear), then run in onnxruntime.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn import Module

import brevitas.export
from brevitas.demo.data import load_digits_split
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU


class QuantLeNet(Module):
    def __init__(self):
        super().__init__()
        self.quant_inp = QuantIdentity(bit_width=8)
        self.conv1 = QuantConv2d(1, 6, 3, padding=1, weight_bit_width=4)
        self.relu1 = QuantReLU(bit_width=8)
        self.conv2 = QuantConv2d(6, 16, 3, padding=1, weight_bit_width=4)
        self.relu2 = QuantReLU(bit_width=8)
        self.fc1 = QuantLinear(16 * 2 * 2, 120, bias=True, weight_bit_width=4)
        self.relu3 = QuantReLU(bit_width=8)
        self.fc2 = QuantLinear(120, 84, bias=True, weight_bit_width=4)
        self.relu4 = QuantReLU(bit_width=8)
        self.fc3 = QuantLinear(84, 10, bias=False, weight_bit_width=4)

    def forward(self, x):
        out = self.quant_inp(x)
        out = self.relu1(self.conv1(out))
        out = F.max_pool2d(out, 2)
        out = self.relu2(self.conv2(out))
        out = F.max_pool2d(out, 2)
        out = out.view(out.size(0), -1)
        out = self.relu3(self.fc1(out))
        out = self.relu4(self.fc2(out))
        out = self.fc3(out)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--output", type=Path, default=Path("brevitas-demo"))
    args = parser.parse_args()
    torch.manual_seed(0)
    data = load_digits_split()
    model = QuantLeNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for epoch in range(args.epochs):
        order = torch.randperm(len(data.y_train))
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}")
    model.eval()
    with torch.no_grad():
        logits = model(data.x_test)
    acc = (logits.argmax(1) == data.y_test).float().mean().item() * 100
    print(f"test accuracy: {acc:.2f}%")

    path = args.output / "lenet_digits_qcdq.onnx"
    brevitas.export.export(model, data.x_test[:1], exporter="onnx-qcdq", path=path)
    onnx_logits = brevitas.export.get_exporter("onnx-qcdq").run(str(path), data.x_test)[0]
    diff = (torch.as_tensor(onnx_logits) - logits).abs().max().item()
    print(f"exported {path}; onnxruntime vs PyTorch max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
