"""Binary and 2-bit networks in the style of FINN's classic examples, on digits.

    python examples/finn_style.py [--epochs N] [--net tfc|cnv] [--bits 1/1|1/2|2/2|4/4] [--output DIR]

TFC: an MLP with three hidden layers of 64 units; CNV: a small CNN. Weights
and activations use ``W/A`` bits (1 = binary, bipolar +-1). BatchNorm sits
between each layer and its activation, as in FINN's networks. The trained
network is exported with every installed FINN exporter (``qonnx``,
``finn``) and run in qonnx's executor; a refusal by an exporter is printed
with its reason.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import brevitas.export
from brevitas.demo.data import load_digits_split
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.scaled_int import Int8WeightPerTensorFloat


def weight_kwargs(bits: int) -> dict:
    if bits == 1:
        return {"weight_quant": SignedBinaryWeightPerTensorConst, "bias": False}
    return {"weight_quant": Int8WeightPerTensorFloat, "weight_bit_width": bits, "bias": False}


def act(bits: int) -> QuantIdentity:
    if bits == 1:
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
    return QuantIdentity(bit_width=bits, return_quant_tensor=True)


class TFC(nn.Module):
    """MLP: 64 inputs, three hidden layers of 64 units, 10 outputs."""

    def __init__(self, wbits: int, abits: int, hidden: int = 64) -> None:
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        layers: list[nn.Module] = []
        width = 64
        for _ in range(3):
            layers += [QuantLinear(width, hidden, **weight_kwargs(wbits)), nn.BatchNorm1d(hidden), act(abits)]
            width = hidden
        self.features = nn.Sequential(*layers)
        self.classifier = QuantLinear(width, 10, **weight_kwargs(wbits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inp(x.flatten(1))
        return self.classifier(self.features(out))


class CNV(nn.Module):
    """Small CNN: two 3x3 conv stages (32, 64 channels) with max-pooling, two linear layers."""

    def __init__(self, wbits: int, abits: int) -> None:
        super().__init__()
        self.inp = QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.conv1 = QuantConv2d(1, 32, 3, padding=1, **weight_kwargs(wbits))
        self.bn1 = nn.BatchNorm2d(32)
        self.act1 = act(abits)
        self.conv2 = QuantConv2d(32, 64, 3, padding=1, **weight_kwargs(wbits))
        self.bn2 = nn.BatchNorm2d(64)
        self.act2 = act(abits)
        self.fc1 = QuantLinear(64 * 2 * 2, 64, **weight_kwargs(wbits))
        self.bn3 = nn.BatchNorm1d(64)
        self.act3 = act(abits)
        self.fc2 = QuantLinear(64, 10, **weight_kwargs(wbits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inp(x)
        out = F.max_pool2d(self.act1(self.bn1(self.conv1(out))), 2)
        out = F.max_pool2d(self.act2(self.bn2(self.conv2(out))), 2)
        out = self.act3(self.bn3(self.fc1(out.flatten(1))))
        return self.fc2(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--net", choices=["tfc", "cnv"], default="tfc")
    parser.add_argument("--bits", default="1/1", help="weight/activation bits, e.g. 1/1, 1/2, 2/2, 4/4")
    parser.add_argument("--output", type=Path, default=Path("brevitas-demo"))
    args = parser.parse_args()
    wbits, abits = (int(b) for b in args.bits.split("/"))
    torch.manual_seed(0)
    data = load_digits_split()
    model = (TFC if args.net == "tfc" else CNV)(wbits, abits)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(data.y_train))
        for i in range(0, len(order), 64):
            idx = order[i : i + 64]
            optimizer.zero_grad()
            F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        logits = model(data.x_test)
    acc = (logits.argmax(1) == data.y_test).float().mean().item() * 100
    print(f"{args.net.upper()} W{wbits}A{abits}: test accuracy {acc:.2f}%")

    for name in ("qonnx", "finn"):
        if name not in brevitas.export.exporters():
            print(f"{name}: not installed (pip install brevitas-export-finn)")
            continue
        problems = brevitas.export.check(model, data.x_test[:1], exporter=name)
        if problems:
            print(f"{name}: refused:")
            for p in problems:
                print(f"  - {p}")
            continue
        path = args.output / f"{args.net}_w{wbits}a{abits}_{name}.onnx"
        brevitas.export.export(model, data.x_test[:1], exporter=name, path=path, dynamic_batch=True)
        out = brevitas.export.get_exporter(name).run(str(path), data.x_test[:64])[0]
        diff = (torch.as_tensor(out) - logits[:64]).abs().max().item()
        print(f"{name}: exported {path}; qonnx executor vs PyTorch max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
