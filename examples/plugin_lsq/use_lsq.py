"""Train a small quantized network whose weights use the 'lsq' scaling plugin, by name.

pip install ./examples/plugin_lsq && python examples/plugin_lsq/use_lsq.py
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from brevitas.demo.data import load_digits_split
from brevitas.demo.train import accuracy
from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU


def build() -> torch.nn.Sequential:
    lsq = {"weight_bit_width": 4, "weight_scaling_impl_type": "lsq"}
    return torch.nn.Sequential(
        QuantIdentity(bit_width=8, return_quant_tensor=True),
        torch.nn.Flatten(),
        QuantLinear(64, 64, bias=True, **lsq),
        QuantReLU(bit_width=4),
        QuantLinear(64, 10, bias=True, **lsq),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    split = load_digits_split()
    model = build()
    scale_before = model[2].weight_quant.tensor_quant.scaling_impl.value.detach().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(args.epochs):
        for i in range(0, len(split.y_train), 64):
            optimizer.zero_grad()
            F.cross_entropy(model(split.x_train[i : i + 64]), split.y_train[i : i + 64]).backward()
            optimizer.step()
    scaling = model[2].weight_quant.tensor_quant.scaling_impl
    print(f"scaling component: {type(scaling).__module__}.{type(scaling).__name__}")
    print(f"learned threshold: {scale_before.item():.4f} -> {scaling.value.item():.4f}")
    print(f"test accuracy (4-bit LSQ weights, 4-bit activations): {accuracy(model, split.x_test, split.y_test):.2f}%")


if __name__ == "__main__":
    main()
