"""brevitas.loss: bit-width regularizers weighted by size and by operations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import brevitas.nn as qnn
from brevitas.errors import ConfigError
from brevitas.loss import (
    ActivationBitWidthWeightedBySize,
    QuantLayerOutputBitWidthWeightedByOps,
    WeightBitWidthWeightedBySize,
)

LEARNED = dict(bit_width_impl_type="parameter")


def model_with_learned_bit_widths() -> nn.Sequential:
    return nn.Sequential(
        qnn.QuantIdentity(bit_width=8, return_quant_tensor=True, **LEARNED),
        qnn.QuantConv2d(
            3, 4, 3, bias=False, weight_bit_width=4, weight_bit_width_impl_type="parameter", return_quant_tensor=True
        ),  # fmt: skip
        qnn.QuantReLU(bit_width=6, **LEARNED),
        nn.Flatten(),
        qnn.QuantLinear(4 * 2 * 2, 3, bias=False, weight_bit_width=2, weight_bit_width_impl_type="parameter"),
    )


def bit_width_params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if "bit_width" in n}


def test_weight_bit_width_weighted_by_size() -> None:
    torch.manual_seed(0)
    model = model_with_learned_bit_widths()
    reg = WeightBitWidthWeightedBySize(model)
    assert reg.num_hooks == 2
    model(torch.randn(2, 3, 4, 4))
    conv_n, fc_n = 4 * 3 * 3 * 3, 3 * 16
    expected = (4 * conv_n + 2 * fc_n) / (conv_n + fc_n)
    value = reg.retrieve()
    assert value.item() == pytest.approx(expected)
    value.backward()
    params = bit_width_params(model)
    weight_params = [p for n, p in params.items() if "weight_quant" in n]
    assert len(weight_params) == 2
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in weight_params)
    terms = reg.retrieve(as_average=False)
    assert len(terms) == 2 and sum(t.item() for t in terms) == pytest.approx(expected)
    reg.zero_accumulated_values()
    with pytest.raises(ConfigError, match="nothing accumulated"):
        reg.retrieve()


def test_activation_bit_width_weighted_by_size() -> None:
    torch.manual_seed(0)
    model = model_with_learned_bit_widths()
    reg = ActivationBitWidthWeightedBySize(model)
    model(torch.randn(5, 3, 4, 4))
    # per sample: 3*4*4 inputs at 8 bits, 4*2*2 ReLU outputs at 6 bits (the batch size does not count)
    expected = (8 * 48 + 6 * 16) / (48 + 16)
    assert reg.retrieve().item() == pytest.approx(expected)
    assert reg.tot_num_elements == 64
    assert not reg.log().requires_grad


def test_layer_output_bit_width_weighted_by_ops() -> None:
    torch.manual_seed(0)
    model = model_with_learned_bit_widths()
    reg = QuantLayerOutputBitWidthWeightedByOps(model)
    model(torch.randn(1, 3, 4, 4))
    # only the conv sees a valid QuantTensor (the linear's input is a plain tensor from the ReLU)
    conv = model[1]
    assert conv.reduction_size == 27
    # 8-bit signed inputs (128) x 4-bit narrow weights (7) x 27 terms = 24192: 15 bits + sign
    value = reg.retrieve()
    assert value.item() == pytest.approx(16.0)
    assert reg.tot_num_elements == 4 * 2 * 2 * 27
    value.backward()
    params = bit_width_params(model)
    assert params["1.weight_quant.tensor_quant.bit_width_impl.bit_width_offset"].grad is not None
    reg.remove_hooks()
    assert conv._acc_hooks == []


def test_constant_bit_widths_are_skipped_unless_asked() -> None:
    model = nn.Sequential(qnn.QuantLinear(4, 4, weight_bit_width=4))
    learned_only = WeightBitWidthWeightedBySize(model)
    everything = WeightBitWidthWeightedBySize(model, learned_only=False)
    model(torch.randn(1, 4))
    with pytest.raises(ConfigError):
        learned_only.retrieve()
    assert everything.retrieve().item() == 4.0


def test_regularizer_lowers_learned_bit_widths() -> None:
    torch.manual_seed(0)
    model = model_with_learned_bit_widths()
    reg = WeightBitWidthWeightedBySize(model)
    params = [p for n, p in bit_width_params(model).items() if "weight_quant" in n]
    opt = torch.optim.SGD(params, lr=1.0)
    before = reg_value = None
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(2, 3, 4, 4))
        reg_value = reg.retrieve()
        before = reg_value.item() if before is None else before
        reg_value.backward()
        opt.step()
        reg.zero_accumulated_values()
    model(torch.randn(2, 3, 4, 4))
    assert reg.retrieve().item() < before
