"""The original Brevitas README's code, verbatim but for ``...`` filled in, checked for what it promises.

Each snippet is copied as the README writes it (the ``...`` of a layer's
positional arguments replaced by concrete ones) and then checked: integer
grids, bit-widths, scale shapes, gradients reaching weights and learned
scales, training lowering the loss.
"""

# ruff: noqa: I001 - the README's imports are kept in the README's order

from __future__ import annotations

import torch

# ---------------------------------------------------------------------------
# Getting started: the 4-bit weights, 8-bit activations LeNet (verbatim)
# ---------------------------------------------------------------------------
from torch.nn import Module
import torch.nn.functional as F
from brevitas.nn import QuantIdentity, QuantConv2d, QuantReLU, QuantLinear


class QuantLeNet(Module):
    def __init__(self):
        super(QuantLeNet, self).__init__()  # noqa: UP008 - verbatim
        self.quant_inp = QuantIdentity(bit_width=8)
        self.conv1 = QuantConv2d(3, 6, 5, weight_bit_width=4)
        self.relu1 = QuantReLU(bit_width=8)
        self.conv2 = QuantConv2d(6, 16, 5, weight_bit_width=4)
        self.relu2 = QuantReLU(bit_width=8)
        self.fc1   = QuantLinear(16*5*5, 120, bias=True, weight_bit_width=4)  # fmt: skip
        self.relu3 = QuantReLU(bit_width=8)
        self.fc2   = QuantLinear(120, 84, bias=True, weight_bit_width=4)  # fmt: skip
        self.relu4 = QuantReLU(bit_width=8)
        self.fc3   = QuantLinear(84, 10, bias=False, weight_bit_width=4)  # fmt: skip

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


def _is_integer(t: torch.Tensor, atol: float = 1e-3) -> bool:
    return bool(torch.all(torch.abs(t - torch.round(t)) <= atol))


def test_lenet_weights_are_4_bit_integers() -> None:
    torch.manual_seed(0)
    model = QuantLeNet()
    for layer in (model.conv1, model.conv2, model.fc1, model.fc2, model.fc3):
        assert int(layer.quant_weight_bit_width()) == 4
        w_int = layer.int_weight()
        assert int(w_int.abs().max()) == 7  # narrow signed 4-bit: max |w| maps to 7
        assert int(w_int.min()) >= -7
        assert layer.quant_weight_scale().numel() == 1  # per tensor by default
        # the dequantized weight is the integer times the scale
        qw = layer.quant_weight()
        assert torch.allclose(qw.value, w_int.float() * qw.scale)


def test_lenet_activations_are_8_bit() -> None:
    torch.manual_seed(0)
    model = QuantLeNet()
    x = torch.randn(4, 3, 32, 32)
    model.train()
    model(x)  # one step of runtime statistics
    model.eval()
    out = model.quant_inp(x)
    scale = model.quant_inp.quant_act_scale()
    codes = out / scale
    assert _is_integer(codes)
    assert int(codes.min()) >= -128 and int(codes.max()) <= 127
    assert int(model.quant_inp.quant_act_bit_width()) == 8
    relu_out = model.relu1(model.conv1(out))
    relu_codes = relu_out / model.relu1.quant_act_scale()
    assert _is_integer(relu_codes)
    assert int(relu_codes.min()) >= 0 and int(relu_codes.max()) <= 255
    assert model(x).shape == (4, 10)


def test_lenet_training_lowers_loss_and_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    model = QuantLeNet()
    x = torch.randn(32, 3, 32, 32)
    y = torch.randint(0, 10, (32,))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss.item())
        optimizer.step()
    assert losses[-1] < losses[0] - 0.1
    for name, p in model.named_parameters():
        if name.endswith(("weight", "bias")):
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    # the activations' learned scales exist and receive gradients once statistics are collected
    learned = [n for n, p in model.named_parameters() if "act_quant" in n]
    assert learned


# ---------------------------------------------------------------------------
# Basic usage
# ---------------------------------------------------------------------------


def test_bias_input_output_quantizers() -> None:
    from brevitas.nn import QuantConv2d
    from brevitas.quant.scaled_int import Int8WeightPerTensorFloat  # noqa: F401 - verbatim
    from brevitas.quant.scaled_int import Int8Bias, Int8ActPerTensorFloat

    conv = QuantConv2d(
        3, 8, 3,
        bias_quant=Int8Bias,
        input_quant=Int8ActPerTensorFloat,
        output_quant=Int8ActPerTensorFloat)  # fmt: skip

    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    conv.train()
    conv(x)
    conv.eval()
    out = conv(x)
    assert out.shape == (2, 8, 6, 6)
    # output on the 8-bit signed grid of the output quantizer
    codes = out / conv.quant_output_scale()
    assert _is_integer(codes) and int(codes.abs().max()) <= 128
    # bias on the accumulator grid: scale = input scale x weight scale, 8-bit integers
    bias_scale = conv.quant_bias_scale()
    assert torch.allclose(bias_scale, conv.quant_input_scale() * conv.quant_weight_scale())
    assert int(conv.quant_bias_bit_width()) == 8
    b_int = conv.int_bias()
    assert int(b_int.min()) >= -128 and int(b_int.max()) <= 127
    # default weight quantizer kept: 8-bit
    assert int(conv.quant_weight_bit_width()) == 8


def test_per_channel_4_bit_weights() -> None:
    from brevitas.nn import QuantConv2d
    from brevitas.quant.scaled_int import Int8WeightPerTensorFloat  # noqa: F401 - verbatim
    from brevitas.quant.scaled_int import Int8Bias, Int8ActPerTensorFloat

    conv = QuantConv2d(
        3, 8, 3,
        weight_bit_width=4,
        weight_scaling_per_output_channel=True,
        bias_quant=Int8Bias,
        input_quant=Int8ActPerTensorFloat,
        output_quant=Int8ActPerTensorFloat)  # fmt: skip

    assert int(conv.quant_weight_bit_width()) == 4
    scale = conv.quant_weight_scale()
    assert tuple(scale.shape) == (8, 1, 1, 1)
    w_int = conv.int_weight()
    # every output channel reaches the top of its own 4-bit range
    assert torch.equal(w_int.abs().amax(dim=(1, 2, 3)), torch.full((8,), 7, dtype=w_int.dtype))
    expected = conv.weight.detach().abs().amax(dim=(1, 2, 3), keepdim=True) / 7
    assert torch.allclose(scale, expected)
    # per-channel bias scale follows the per-channel weight scale
    out = conv(torch.randn(1, 3, 5, 5))
    assert out.shape == (1, 8, 3, 3)
    assert tuple(conv.quant_bias_scale().shape) == (8,)


def test_my_weight_quant_subclass() -> None:
    from brevitas.nn import QuantConv2d
    from brevitas.quant.scaled_int import Int8WeightPerTensorFloat
    from brevitas.quant.scaled_int import Int8Bias, Int8ActPerTensorFloat  # noqa: F401 - verbatim

    class MyWeightQuant(Int8WeightPerTensorFloat):
        bit_width = 4
        scaling_per_output_channel = True

    conv1 = QuantConv2d(3, 8, 3, weight_quant=MyWeightQuant)
    conv2 = QuantConv2d(8, 4, 1, weight_quant=MyWeightQuant)

    for conv, channels in ((conv1, 8), (conv2, 4)):
        assert int(conv.quant_weight_bit_width()) == 4
        assert tuple(conv.quant_weight_scale().shape) == (channels, 1, 1, 1)
        assert int(conv.int_weight().abs().max()) == 7
    # one quantizer class, two independent proxies
    assert conv1.weight_quant is not conv2.weight_quant
    assert conv2(conv1(torch.randn(1, 3, 6, 6))).shape == (1, 4, 4, 4)


def test_int8_weight_per_tensor_float_is_composed_as_documented() -> None:
    from brevitas.inject.enum import QuantType, BitWidthImplType, ScalingImplType
    from brevitas.inject.enum import RestrictValueType, StatsOp
    from brevitas.core.zero_point import ZeroZeroPoint
    from brevitas.quant.base import NarrowIntQuant, MaxStatsScaling, PerTensorFloatScaling8bit
    from brevitas.quant.scaled_int import Int8WeightPerTensorFloat as Prebuilt

    # the README's definition, verbatim: usable as a weight quantizer as it stands
    # fmt: off
    class Int8WeightPerTensorFloat(
        NarrowIntQuant, MaxStatsScaling, PerTensorFloatScaling8bit):
        pass
    # fmt: on

    q = Int8WeightPerTensorFloat
    assert q.quant_type == QuantType.INT and q.bit_width_impl_type == BitWidthImplType.CONST
    assert q.narrow_range is True and q.signed is True and isinstance(q.zero_point_impl, ZeroZeroPoint)
    assert q.scaling_impl_type == ScalingImplType.STATS and q.scaling_stats_op == StatsOp.MAX
    assert q.scaling_per_output_channel is False and q.restrict_scaling_type == RestrictValueType.FP
    assert q.bit_width == 8

    torch.manual_seed(0)
    mine = QuantConv2d(3, 4, 3, weight_quant=Int8WeightPerTensorFloat)
    prebuilt = QuantConv2d(3, 4, 3, weight_quant=Prebuilt)
    prebuilt.load_state_dict(mine.state_dict())
    assert torch.equal(mine.quant_weight().value, prebuilt.quant_weight().value)
    assert int(mine.int_weight().abs().max()) == 127


def _check_learned_bit_width_and_log_scale(conv: QuantConv2d) -> None:
    assert int(conv.quant_weight_bit_width()) == 4
    params = dict(conv.weight_quant.named_parameters())
    assert len(params) == 2  # a learned bit-width and a learned (log-domain) threshold
    torch.manual_seed(0)
    out = conv(torch.randn(2, 3, 6, 6))
    out.square().sum().backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    for name, p in params.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_learned_bit_width_and_log_scale_quantizer() -> None:
    from brevitas.inject import BaseInjector as Injector
    from brevitas.inject.enum import QuantType, BitWidthImplType, ScalingImplType
    from brevitas.inject.enum import RestrictValueType, StatsOp
    from brevitas.core.zero_point import ZeroZeroPoint
    from brevitas.nn import QuantConv2d

    class MyLearnedWeightQuant(Injector):
        quant_type = QuantType.INT
        bit_width_impl_type = BitWidthImplType.PARAMETER  # previously was BitWidthImplType.CONST
        narrow_range = True
        signed = True
        zero_point_impl = ZeroZeroPoint
        scaling_impl_type = ScalingImplType.PARAMETER_FROM_STATS  # previously was ScalingImplType.STATS
        scaling_stats_op = StatsOp.MAX
        scaling_per_output_channel = False
        restrict_scaling_type = RestrictValueType.LOG_FP  # previously was RestrictValueType.FP
        bit_width = 4

    conv = QuantConv2d(3, 4, 3, weight_quant=MyLearnedWeightQuant)

    # no solver in the declaration: the weight proxy solves the enums for the weight role
    _check_learned_bit_width_and_log_scale(conv)


def test_string_enum_keywords() -> None:
    from brevitas.nn import QuantConv2d

    conv = QuantConv2d(
        3, 4, 3,
        weight_bit_width=4,
        weight_bit_width_impl_type='parameter',
        weight_scaling_impl_type='parameter_from_stats',
        weight_restrict_scaling_type='log_fp')  # fmt: skip

    _check_learned_bit_width_and_log_scale(conv)
    # the learned threshold starts from the weight statistics: max |w| reproduces the top code
    assert int(conv.int_weight().abs().max()) == 7


def test_quant_relu_4_bit() -> None:
    from brevitas.nn import QuantReLU

    act = QuantReLU(bit_width=4)

    torch.manual_seed(0)
    x = torch.randn(8, 16)
    act.train()
    y = act(x)
    assert torch.all(y >= 0)
    act.eval()
    y = act(x)
    codes = y / act.quant_act_scale()
    assert _is_integer(codes)
    assert int(codes.min()) >= 0 and int(codes.max()) <= 15
    assert int(act.quant_act_bit_width()) == 4
    assert act.act_quant.is_signed is False
