"""Post-training quantization of a trained float CNN on scikit-learn's digits (8x8 images, 10 classes).

The float model is trained here (fixed seeds, 80/20 split), then

- 8-bit PTQ (``quantize`` + ``calibration_mode`` + ``bias_correction_mode``)
  must stay within 0.5 point of the float accuracy;
- 4-bit weights (first and last layer kept at 8 bits, by name pattern) after
  PTQ, then after a short QAT fine-tune, must stay close to float; the
  numbers are printed (``pytest -s``) for the README.

Runs in well under a minute on two CPU cores.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brevitas.graph import QuantConfig, Rule, bias_correction_mode, calibration_mode, quantize, report
from brevitas.quant.scaled_int import Int8WeightPerChannelFloat

sklearn_datasets = pytest.importorskip("sklearn.datasets")

SEED = 0
BATCH = 64
FLOAT_EPOCHS = 10
QAT_EPOCHS = 1
CALIBRATION_SAMPLES = 512


class DigitsNet(nn.Module):
    """conv-bn-relu x2, max pooling, a residual conv block, two linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        x = F.relu(self.bn3(self.conv3(x)) + x)
        x = torch.flatten(x, 1)
        return self.fc2(F.relu(self.fc1(x)))


@dataclass
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _load() -> Data:
    digits = sklearn_datasets.load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED))
    n_train = int(0.8 * len(x))
    train, test = perm[:n_train], perm[n_train:]
    return Data(x[train], y[train], x[test], y[test])


def _accuracy(model: nn.Module, data: Data) -> float:
    model.eval()
    with torch.no_grad():
        return 100.0 * float((model(data.x_test).argmax(1) == data.y_test).float().mean())


def _train(model: nn.Module, data: Data, epochs: int, lr: float, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * ((len(data.x_train) + BATCH - 1) // BATCH))
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(data.x_train), generator=gen)
        for i in range(0, len(order), BATCH):
            idx = order[i : i + BATCH]
            opt.zero_grad()
            F.cross_entropy(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
            sched.step()


def _ptq(model: nn.Module, config: QuantConfig, data: Data) -> nn.Module:
    q = quantize(model.eval(), config)
    calibration = data.x_train[:CALIBRATION_SAMPLES]
    with calibration_mode(q):
        for i in range(0, len(calibration), BATCH):
            q(calibration[i : i + BATCH])
    with bias_correction_mode(q):
        for i in range(0, len(calibration), BATCH):
            q(calibration[i : i + BATCH])
    return q


#: 4-bit per-channel weights everywhere but the first and the last layer (8 bits), by name pattern
MIXED_4BIT = QuantConfig(
    weight_quant=Int8WeightPerChannelFloat,
    weight_bit_width=4,
    rules=[Rule(name=["conv1", "fc2"], weight_bit_width=8)],
)


@pytest.fixture(scope="module")
def results() -> dict[str, float]:
    torch.manual_seed(SEED)
    data = _load()
    model = DigitsNet()
    _train(model, data, FLOAT_EPOCHS, 3e-3, SEED)
    out = {"float": _accuracy(model, data)}

    q8 = _ptq(model, QuantConfig(), data)
    out["ptq8"] = _accuracy(q8, data)

    q4 = _ptq(model, MIXED_4BIT, data)
    out["ptq4"] = _accuracy(q4, data)
    bits = {lay.name: lay.bit_widths().get("weight_quant") for lay in report(q4)}
    out["bits_conv1"], out["bits_conv2"], out["bits_fc2"] = bits["conv1"], bits["conv2"], bits["fc2"]

    _train(q4, data, QAT_EPOCHS, 5e-4, SEED + 1)
    out["qat4"] = _accuracy(q4, data)
    print(
        f"\ndigits test accuracy (360 images): float {out['float']:.2f}%, 8-bit PTQ {out['ptq8']:.2f}%, "
        f"4-bit weights PTQ {out['ptq4']:.2f}%, after {QAT_EPOCHS} QAT epoch(s) {out['qat4']:.2f}%"
    )
    return out


def test_float_model_learns(results: dict[str, float]) -> None:
    assert results["float"] >= 95.0


def test_8bit_ptq_within_half_a_point_of_float(results: dict[str, float]) -> None:
    assert results["ptq8"] >= results["float"] - 0.5, results


def test_4bit_weights_after_ptq_and_qat(results: dict[str, float]) -> None:
    assert (results["bits_conv1"], results["bits_conv2"], results["bits_fc2"]) == (8, 4, 8)
    assert results["ptq4"] >= results["float"] - 3.0, results
    assert results["qat4"] >= results["float"] - 1.5, results
