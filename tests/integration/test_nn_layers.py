"""brevitas.nn layers: float equivalence, keyword routing, output metadata, sharing, helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import brevitas.nn as qnn
from brevitas.errors import ConfigError
from brevitas.inject import ExtendedInjector
from brevitas.nn.utils import merge_bn, name_quant_layers
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloat,
    Int8Bias,
    Int8BiasPerTensorFloatInternalScaling,
    Int8WeightPerTensorFloat,
    Uint8ActPerTensorFloat,
)
from brevitas.quant_tensor import QuantTensor

NONE4 = dict(weight_quant=None, bias_quant=None, input_quant=None, output_quant=None)


def _calibrate(model: nn.Module, *inputs: Any) -> None:
    """One training-mode pass (runtime statistics), then eval."""
    model.train()
    with torch.no_grad():
        model(*inputs)
    model.eval()


def _qt(codes: torch.Tensor, scale: float, zero_point: float, bit_width: int, signed: bool) -> QuantTensor:
    s = torch.tensor(scale)
    z = torch.tensor(zero_point)
    return QuantTensor((codes - z) * s, s, z, torch.tensor(float(bit_width)), signed=signed, training=False)


# ---------------------------------------------------------------------------
# With every quantizer disabled, a layer is its torch.nn counterpart, bit for bit
# ---------------------------------------------------------------------------

FLOAT_EQUIVALENTS: list[tuple[str, Callable[[], nn.Module], Callable[[], nn.Module], tuple[int, ...]]] = [
    ("conv1d", lambda: qnn.QuantConv1d(2, 4, 3, padding=1, **NONE4), lambda: nn.Conv1d(2, 4, 3, padding=1), (2, 2, 9)),
    (
        "conv2d",
        lambda: qnn.QuantConv2d(4, 6, 3, stride=2, padding=1, groups=2, **NONE4),
        lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        (2, 4, 9, 9),
    ),
    (
        "conv2d_reflect",
        lambda: qnn.QuantConv2d(3, 4, 3, padding=1, padding_mode="reflect", **NONE4),
        lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
        (1, 3, 6, 6),
    ),
    ("conv3d", lambda: qnn.QuantConv3d(2, 3, 2, **NONE4), lambda: nn.Conv3d(2, 3, 2), (1, 2, 4, 4, 4)),
    (
        "convtranspose1d",
        lambda: qnn.QuantConvTranspose1d(3, 2, 3, stride=2, **NONE4),
        lambda: nn.ConvTranspose1d(3, 2, 3, stride=2),
        (2, 3, 5),
    ),
    (
        "convtranspose2d",
        lambda: qnn.QuantConvTranspose2d(4, 4, 3, stride=2, output_padding=1, groups=2, **NONE4),
        lambda: nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=1, groups=2),
        (1, 4, 5, 5),
    ),
    (
        "convtranspose3d",
        lambda: qnn.QuantConvTranspose3d(2, 2, 2, **NONE4),
        lambda: nn.ConvTranspose3d(2, 2, 2),
        (1, 2, 3, 3, 3),
    ),
    ("linear", lambda: qnn.QuantLinear(7, 5, bias=True, **NONE4), lambda: nn.Linear(7, 5), (3, 7)),
    ("linear_nobias", lambda: qnn.QuantLinear(7, 5, bias=False, **NONE4), lambda: nn.Linear(7, 5, bias=False), (7,)),
    (
        "scale_bias",
        lambda: qnn.QuantScaleBias(3, bias=True, **NONE4),
        lambda: qnn.ScaleBias(3, bias=True),
        (2, 3, 4, 4),
    ),
    ("relu", lambda: qnn.QuantReLU(act_quant=None), nn.ReLU, (4, 5)),
    ("sigmoid", lambda: qnn.QuantSigmoid(act_quant=None), nn.Sigmoid, (4, 5)),
    ("tanh", lambda: qnn.QuantTanh(act_quant=None), nn.Tanh, (4, 5)),
    (
        "hardtanh",
        lambda: qnn.QuantHardTanh(act_quant=None, min_val=-0.5, max_val=2.0),
        lambda: nn.Hardtanh(-0.5, 2.0),
        (4, 5),
    ),
    ("identity", lambda: qnn.QuantIdentity(act_quant=None), nn.Identity, (4, 5)),
    (
        "avg_pool2d",
        lambda: qnn.QuantAvgPool2d(2, trunc_quant=None, return_quant_tensor=False),
        lambda: nn.AvgPool2d(2),
        (1, 2, 6, 6),
    ),
    (
        "adaptive_avg_pool2d",
        lambda: qnn.QuantAdaptiveAvgPool2d((2, 3), trunc_quant=None, return_quant_tensor=False),
        lambda: nn.AdaptiveAvgPool2d((2, 3)),
        (1, 2, 5, 7),
    ),
    ("max_pool1d", lambda: qnn.QuantMaxPool1d(2, return_quant_tensor=False), lambda: nn.MaxPool1d(2), (1, 2, 8)),
    (
        "max_pool2d",
        lambda: qnn.QuantMaxPool2d(3, 2, return_quant_tensor=False),
        lambda: nn.MaxPool2d(3, 2),
        (1, 2, 7, 7),
    ),
    (
        "upsample",
        lambda: qnn.QuantUpsample(scale_factor=2, mode="bilinear", return_quant_tensor=False),
        lambda: nn.Upsample(scale_factor=2, mode="bilinear"),
        (1, 1, 3, 3),
    ),
]


@pytest.mark.parametrize(
    "make_quant, make_float, shape", [c[1:] for c in FLOAT_EQUIVALENTS], ids=[c[0] for c in FLOAT_EQUIVALENTS]
)
def test_disabled_layer_equals_float_layer(
    make_quant: Callable[[], nn.Module], make_float: Callable[[], nn.Module], shape: tuple[int, ...]
) -> None:
    torch.manual_seed(0)
    quant, ref = make_quant(), make_float()
    assert isinstance(quant, type(ref)) or type(ref) is qnn.ScaleBias
    missing = quant.load_state_dict(ref.state_dict(), strict=False)
    assert not missing.unexpected_keys
    assert all(".tensor_quant." in k or "_quant" in k for k in missing.missing_keys)
    x = torch.randn(shape)
    xq, xr = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    yq, yr = quant(xq), ref(xr)
    assert type(yq) is torch.Tensor
    assert torch.equal(yq, yr)
    g = torch.randn_like(yr)
    yq.backward(g)
    yr.backward(g)
    assert torch.equal(xq.grad, xr.grad)
    for (nq, pq), (nr, pr) in zip(quant.named_parameters(), ref.named_parameters()):
        assert nq == nr and torch.equal(pq.grad, pr.grad)


def test_disabled_transposed_conv_output_size_matches_float() -> None:
    torch.manual_seed(0)
    quant, ref = qnn.QuantConvTranspose2d(2, 3, 3, stride=2, **NONE4), nn.ConvTranspose2d(2, 3, 3, stride=2)
    quant.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(1, 2, 4, 4)
    assert torch.equal(quant(x, output_size=[10, 10]), ref(x, output_size=[10, 10]))


def test_disabled_dropout_eltwise_cat_equal_float() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(4, 6), torch.randn(4, 6)
    drop, ref = qnn.QuantDropout(0.3, return_quant_tensor=False), nn.Dropout(0.3)
    torch.manual_seed(1)
    a = drop(x)
    torch.manual_seed(1)
    assert torch.equal(a, ref(x))
    assert torch.equal(qnn.QuantEltwiseAdd(input_quant=None, output_quant=None)(x, y), x + y)
    assert torch.equal(qnn.QuantCat(input_quant=None, output_quant=None)([x, y], dim=1), torch.cat([x, y], 1))


def test_quant_layers_subclass_their_float_counterparts() -> None:
    pairs = [
        (qnn.QuantConv1d, nn.Conv1d),
        (qnn.QuantConv2d, nn.Conv2d),
        (qnn.QuantConv3d, nn.Conv3d),
        (qnn.QuantConvTranspose1d, nn.ConvTranspose1d),
        (qnn.QuantConvTranspose2d, nn.ConvTranspose2d),
        (qnn.QuantLinear, nn.Linear),
        (qnn.QuantReLU, nn.ReLU),
        (qnn.QuantSigmoid, nn.Sigmoid),
        (qnn.QuantTanh, nn.Tanh),
        (qnn.QuantHardTanh, nn.Hardtanh),
        (qnn.QuantIdentity, nn.Identity),
        (qnn.QuantAvgPool2d, nn.AvgPool2d),
        (qnn.QuantAdaptiveAvgPool2d, nn.AdaptiveAvgPool2d),
        (qnn.QuantMaxPool1d, nn.MaxPool1d),
        (qnn.QuantMaxPool2d, nn.MaxPool2d),
        (qnn.QuantUpsample, nn.Upsample),
        (qnn.QuantDropout, nn.Dropout),
        (qnn.QuantScaleBias, qnn.ScaleBias),
        (qnn.BatchNorm2dToQuantScaleBias, qnn.QuantScaleBias),
    ]
    for quant, ref in pairs:
        assert issubclass(quant, ref), quant


# ---------------------------------------------------------------------------
# Defaults and keyword routing
# ---------------------------------------------------------------------------


def test_original_defaults() -> None:
    conv = qnn.QuantConv2d(2, 2, 1)
    assert conv.weight_quant.quant is Int8WeightPerTensorFloat
    assert not (conv.is_bias_quant_enabled or conv.is_input_quant_enabled or conv.is_output_quant_enabled)
    assert conv.return_quant_tensor is False
    assert qnn.QuantReLU().act_quant.quant is Uint8ActPerTensorFloat
    assert qnn.QuantSigmoid().act_quant.quant is Uint8ActPerTensorFloat
    assert qnn.QuantTanh().act_quant.quant is Int8ActPerTensorFloat
    assert qnn.QuantIdentity().act_quant.quant is Int8ActPerTensorFloat
    for layer in (qnn.QuantEltwiseAdd(), qnn.QuantCat()):
        assert layer.input_quant.quant is Int8ActPerTensorFloat and layer.output_quant.quant is Int8ActPerTensorFloat
        assert layer.return_quant_tensor is False
    assert qnn.QuantAvgPool2d(2).return_quant_tensor is True
    assert qnn.QuantAvgPool2d(2).trunc_quant.is_quant_enabled
    assert qnn.TruncQuantAccumulator().trunc_quant.is_quant_enabled
    assert not qnn.ClampQuantAccumulator().clamp_quant.is_quant_enabled


def test_prefixed_keywords_reach_their_quantizer() -> None:
    conv = qnn.QuantConv2d(
        3, 4, 3,
        weight_bit_width=4,
        bias_quant=Int8Bias, bias_bit_width=16,
        input_quant=Int8ActPerTensorFloat, input_bit_width=6,
        output_quant=Int8ActPerTensorFloat, output_bit_width=5,
    )  # fmt: skip
    assert int(conv.quant_weight_bit_width()) == 4
    assert int(conv.quant_input_bit_width()) == 6
    assert int(conv.quant_output_bit_width()) == 5
    assert int(conv.quant_bias_bit_width()) == 16
    assert conv.weight_quant.overrides == {"bit_width": 4}


def test_keyword_overrides_a_quantizer_attribute() -> None:
    class MyWeightQuant(Int8WeightPerTensorFloat):
        bit_width = 4

    assert int(qnn.QuantLinear(4, 4, weight_quant=MyWeightQuant).quant_weight_bit_width()) == 4
    assert int(qnn.QuantLinear(4, 4, weight_quant=MyWeightQuant, weight_bit_width=3).quant_weight_bit_width()) == 3


def test_activation_keywords_without_prefix_go_to_act_quant() -> None:
    act = qnn.QuantReLU(bit_width=4, input_quant=Int8ActPerTensorFloat, input_bit_width=6)
    assert int(act.quant_act_bit_width()) == 4 and int(act.quant_input_bit_width()) == 6
    assert int(qnn.QuantTanh(act_bit_width=3).quant_act_bit_width()) == 3


def test_unprefixed_keyword_on_weight_layer_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"bit_width.*weight_\*"):
        qnn.QuantConv2d(2, 2, 1, bit_width=4)


def test_none_disables_each_quantizer() -> None:
    conv = qnn.QuantConv2d(2, 2, 1, **NONE4)
    assert not any(
        (conv.is_weight_quant_enabled, conv.is_bias_quant_enabled, conv.is_input_quant_enabled,
         conv.is_output_quant_enabled)
    )  # fmt: skip
    assert conv.quant_weight_scale() is None and conv.quant_input_scale() is None
    assert not qnn.QuantReLU(act_quant=None).is_act_quant_enabled
    assert qnn.QuantReLU(act_quant=None).quant_act_bit_width() is None


def test_bad_quantizer_arguments_are_explained() -> None:
    with pytest.raises(ConfigError, match="quantizer class"):
        qnn.QuantLinear(2, 2, weight_quant="int8")
    with pytest.raises(ConfigError, match="quantizer class"):
        qnn.QuantLinear(2, 2, weight_quant=int)
    conv = qnn.QuantConv2d(2, 2, 1)
    with pytest.raises(ConfigError, match="cannot override"):
        qnn.QuantConv2d(2, 2, 1, weight_quant=conv.weight_quant, weight_bit_width=4)
    with pytest.raises(ConfigError, match="WeightQuantProxy"):
        qnn.QuantConv2d(2, 2, 1, weight_quant=qnn.QuantReLU().act_quant)


def test_incomplete_quantizer_names_the_layer() -> None:
    class Incomplete(ExtendedInjector):
        bit_width = 4

    model = nn.Sequential(qnn.QuantLinear(2, 2))
    name_quant_layers(model)
    with pytest.raises(AttributeError, match=r"weight_quant of QuantLinear.*Incomplete"):
        qnn.QuantLinear(2, 2, weight_quant=Incomplete)


# ---------------------------------------------------------------------------
# Output metadata of weight layers
# ---------------------------------------------------------------------------


def test_linear_output_scale_and_accumulator_bit_width() -> None:
    torch.manual_seed(0)
    fc = qnn.QuantLinear(16, 4, bias=False, input_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)
    x = torch.rand(3, 16)
    _calibrate(fc, x)
    out = fc(x)
    assert out.is_valid and out.signed is True
    assert torch.allclose(out.scale, fc.quant_input_scale() * fc.quant_weight_scale())
    # 8-bit unsigned inputs (<= 255) times 8-bit narrow weights (<= 127), 16 terms: 518160 needs 19 bits + sign
    assert int(out.bit_width) == 20
    in_int = fc.input_quant(x).int()
    w_int = fc.int_weight()
    assert torch.equal(out.int(), in_int @ w_int.t())


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_output_is_the_integer_convolution(groups: int) -> None:
    torch.manual_seed(0)
    conv = qnn.QuantConv2d(
        4, 6, 3, padding=1, groups=groups, bias=True, bias_quant=Int8Bias, input_quant=Int8ActPerTensorFloat,
        weight_scaling_per_output_channel=True, return_quant_tensor=True,
    )  # fmt: skip
    x = torch.randn(2, 4, 5, 5)
    _calibrate(conv, x)
    out = conv(x)
    assert out.is_valid
    assert tuple(out.scale.shape) == (1, 6, 1, 1)
    in_q = conv.input_quant(x)
    w_int = conv.int_weight()
    b_int = conv.int_bias()
    expected = F.conv2d(in_q.int().double(), w_int.double(), b_int.double(), padding=1, groups=groups)
    assert torch.equal(out.int().double(), expected)
    # 8-bit signed inputs (|q| <= 128) and weights (|w| <= 127), 4/groups * 9 terms, plus an 8-bit bias
    terms = (4 // groups) * 9
    bound = 128 * 127 * terms + 128
    assert int(out.bit_width) == (bound + 1 - 1).bit_length() + 1
    assert conv.reduction_size == terms


def test_asymmetric_quant_tensor_input_gives_exact_zero_point() -> None:
    torch.manual_seed(0)
    conv = qnn.QuantConv2d(2, 3, 3, padding=1, bias=False, return_quant_tensor=True)
    codes = torch.randint(0, 256, (1, 2, 4, 4)).float()
    x = _qt(codes, 0.05, 7.0, 8, signed=False)
    out = conv(x)
    assert out.is_valid
    w_int = conv.int_weight().float()
    expected = F.conv2d(F.pad(codes, (1, 1, 1, 1), value=7.0), w_int)
    assert torch.equal(out.int().float(), expected)


def test_transposed_conv_output_is_the_integer_transposed_convolution() -> None:
    torch.manual_seed(0)
    layer = qnn.QuantConvTranspose2d(4, 4, 3, stride=2, groups=2, bias=False, return_quant_tensor=True,
                                     weight_scaling_per_output_channel=True)  # fmt: skip
    codes = torch.randint(-128, 128, (1, 4, 3, 3)).float()
    out = layer(_qt(codes, 0.1, 0.0, 8, signed=True))
    assert out.is_valid and tuple(out.scale.shape) == (1, 4, 1, 1)
    expected = F.conv_transpose2d(codes, layer.int_weight().float(), stride=2, groups=2)
    assert torch.equal(out.int().float(), expected)
    # at most ceil(3 / 2) ** 2 taps of 2 input channels overlap
    assert layer.reduction_size == 2 * 4


def test_output_not_on_a_grid_is_non_valid() -> None:
    x = QuantTensor(torch.randn(2, 4), torch.tensor(0.1), torch.tensor(0.0), torch.tensor(8.0), signed=True)
    float_bias = qnn.QuantLinear(4, 2, bias=True, return_quant_tensor=True)
    assert not float_bias(x).is_valid
    own_scale_bias = qnn.QuantLinear(4, 2, bias=True, bias_quant=Int8BiasPerTensorFloatInternalScaling,
                                     return_quant_tensor=True)  # fmt: skip
    assert not own_scale_bias(x).is_valid
    float_weight = qnn.QuantLinear(4, 2, bias=False, weight_quant=None, return_quant_tensor=True)
    assert not float_weight(x).is_valid
    plain_input = qnn.QuantLinear(4, 2, bias=False, return_quant_tensor=True)
    assert not plain_input(torch.randn(2, 4)).is_valid
    assert qnn.QuantLinear(4, 2, bias=False, return_quant_tensor=True)(x).is_valid


def test_bias_on_accumulator_grid_without_input_scale_is_explained() -> None:
    model = nn.Sequential(qnn.QuantLinear(4, 2, bias=True, bias_quant=Int8Bias))
    name_quant_layers(model)
    with pytest.raises(ConfigError) as info:
        model(torch.randn(1, 4))
    message = str(info.value)
    assert "QuantLinear '0'" in message
    assert "input_quant" in message and "Int8BiasPerTensorFloatInternalScaling" in message
    with pytest.raises(ConfigError, match="input scale"):
        model[0].quant_bias()
    # the accessor accepts the scale explicitly
    q = model[0].quant_bias(input_scale=torch.tensor(0.1))
    assert torch.allclose(q.scale, 0.1 * model[0].quant_weight_scale())
    # an internally scaled bias needs no input scale
    fc = qnn.QuantLinear(4, 2, bias=True, bias_quant=Int8BiasPerTensorFloatInternalScaling)
    assert fc(torch.randn(1, 4)).shape == (1, 2)
    assert int(fc.int_bias().abs().max()) in (127, 128)  # max |b| on the top of the signed 8-bit range


# ---------------------------------------------------------------------------
# Sharing, caching, merge_bn
# ---------------------------------------------------------------------------


def test_shared_weight_proxy_covers_both_layers() -> None:
    torch.manual_seed(0)
    conv1 = qnn.QuantConv2d(2, 2, 1)
    conv2 = qnn.QuantConv2d(2, 2, 1, weight_quant=conv1.weight_quant)
    with torch.no_grad():
        conv1.weight.mul_(0.01)
        conv2.weight.mul_(10.0)
    assert conv2.weight_quant is conv1.weight_quant
    assert set(map(id, conv1.weight_quant.tracked_tensors())) == {id(conv1.weight), id(conv2.weight)}
    top = torch.maximum(conv1.weight.abs().max(), conv2.weight.abs().max())
    assert torch.allclose(conv1.quant_weight_scale(), top / 127)
    assert torch.allclose(conv2.quant_weight_scale(), top / 127)
    assert int(conv2.int_weight().abs().max()) == 127
    assert int(conv1.int_weight().abs().max()) < 127


def test_eval_caches_the_quantized_weight_until_it_changes() -> None:
    conv = qnn.QuantConv2d(2, 2, 1).eval()
    with torch.no_grad():
        a, b = conv.quant_weight(), conv.quant_weight()
        assert a is b
        conv.weight.mul_(2.0)
        c = conv.quant_weight()
    assert c is not a and torch.allclose(c.scale, 2 * a.scale)
    assert conv.quant_weight() is not conv.quant_weight()  # gradients enabled: never cached
    conv.train()
    with torch.no_grad():
        assert conv.quant_weight() is not conv.quant_weight()


@pytest.mark.parametrize(
    "make_layer, make_bn, shape",
    [
        (lambda: qnn.QuantConv2d(3, 4, 3, bias=False), lambda: nn.BatchNorm2d(4), (2, 3, 6, 6)),
        (lambda: qnn.QuantLinear(5, 4, bias=True), lambda: nn.BatchNorm1d(4), (3, 5)),
        (lambda: qnn.QuantConvTranspose2d(3, 4, 2, stride=2), lambda: nn.BatchNorm2d(4), (1, 3, 3, 3)),
    ],
    ids=["conv", "linear", "convtranspose"],
)
def test_merge_bn(make_layer: Callable[[], Any], make_bn: Callable[[], nn.Module], shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    layer, bn = make_layer(), make_bn().eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 3)
        bn.bias.uniform_(-1, 1)
    float_ref = make_layer()
    float_ref.load_state_dict(layer.state_dict())
    for attr in ("weight_quant",):
        setattr(float_ref, attr, type(getattr(float_ref, attr))(None, float_ref))
    x = torch.randn(shape)
    with torch.no_grad():
        expected = bn(float_ref(x))
        weight_id = id(layer.weight)
        merge_bn(layer, bn)
        assert id(layer.weight) == weight_id
        # the statistics-based scale is re-derived from the folded weight
        assert torch.allclose(layer.quant_weight_scale(), layer.weight.abs().max() / 127)
        layer.weight_quant = type(layer.weight_quant)(None, layer)
        assert torch.allclose(layer(x), expected, atol=1e-5)


def test_merge_bn_refuses_mismatched_channels() -> None:
    with pytest.raises(ConfigError, match="output channels"):
        merge_bn(qnn.QuantConv2d(2, 3, 1), nn.BatchNorm2d(4))


# ---------------------------------------------------------------------------
# Layers around QuantTensors
# ---------------------------------------------------------------------------


def test_avg_pool_truncates_the_accumulator_to_8_bits() -> None:
    torch.manual_seed(0)
    quant_inp = qnn.QuantIdentity(return_quant_tensor=True)
    x = torch.randn(1, 2, 4, 4)
    _calibrate(quant_inp, x)
    qx = quant_inp(x)
    pool = qnn.QuantAvgPool2d(2).eval()
    out = pool(qx)
    assert out.is_valid and int(out.bit_width) == 8
    # 8-bit codes summed over 4 values: 10 bits, 2 dropped: the scale is (scale / 4) * 4
    assert torch.allclose(out.scale, qx.scale)
    assert torch.allclose(out.value, F.avg_pool2d(qx.value, 2), atol=float(qx.scale.detach()))
    assert int(out.int().min()) >= -128 and int(out.int().max()) <= 127
    with pytest.raises(ConfigError, match="QuantAvgPool2d"):
        pool(x)


def test_adaptive_avg_pool_truncates() -> None:
    codes = torch.randint(0, 256, (1, 2, 4, 4)).float()
    out = qnn.QuantAdaptiveAvgPool2d(1)(_qt(codes, 0.5, 0.0, 8, signed=False))
    assert out.is_valid and int(out.bit_width) == 8
    # 16 values: 12 bits, 4 dropped: scale (0.5 / 16) * 16
    assert float(out.scale) == 0.5
    assert torch.equal(out.int().flatten(), torch.floor(codes.sum((2, 3)) / 16).flatten().long())


def test_max_pool_upsample_dropout_keep_metadata() -> None:
    codes = torch.randint(-128, 128, (1, 2, 4, 4)).float()
    x = _qt(codes, 0.1, 0.0, 8, signed=True)
    pooled = qnn.QuantMaxPool2d(2)(x)
    assert pooled.is_valid and torch.equal(pooled.int(), F.max_pool2d(codes, 2).long())
    assert torch.equal(qnn.QuantMaxPool1d(2)(_qt(codes[0, :, 0], 0.1, 0.0, 8, True)).int(),
                       F.max_pool1d(codes[0, :, 0].unsqueeze(0), 2).squeeze(0).long())  # fmt: skip
    up = qnn.QuantUpsample(scale_factor=2)(x)
    assert up.is_valid and up.value.shape == (1, 2, 8, 8)
    assert not qnn.QuantUpsample(scale_factor=2, mode="bilinear")(x).is_valid
    drop = qnn.QuantDropout(0.5)
    drop.train()
    dropped = drop(x)
    assert dropped.is_valid and torch.allclose(dropped.scale, x.scale / 0.5)
    kept = dropped.value != 0
    assert torch.equal(dropped.int()[kept], codes.long()[kept])
    drop.eval()
    assert torch.equal(drop(x).value, x.value)


def test_accumulators() -> None:
    from brevitas.core.bit_width import BitWidthConst
    from brevitas_plugins.core.float_to_int import TensorClamp
    from brevitas_plugins.core.quant import ClampQuant

    class ClampTo4bit(ExtendedInjector):
        tensor_quant = ClampQuant
        bit_width_impl = BitWidthConst
        tensor_clamp_impl = TensorClamp
        bit_width = 4
        signed = True
        narrow_range = False

    codes = torch.tensor([-300.0, -5.0, 3.0, 511.0])
    acc = _qt(codes, 0.25, 0.0, 10, signed=True)
    trunc = qnn.TruncQuantAccumulator(bit_width=6)(acc)
    assert int(trunc.bit_width) == 6 and float(trunc.scale) == 0.25 * 16
    clamp = qnn.ClampQuantAccumulator(clamp_quant=ClampTo4bit)(acc)
    assert int(clamp.bit_width) == 4 and float(clamp.scale) == 0.25
    assert clamp.int().tolist() == [-8, -5, 3, 7]
    assert qnn.ClampQuantAccumulator()(acc) is acc
    with pytest.raises(ConfigError, match="TruncQuantAccumulator"):
        qnn.TruncQuantAccumulator()(torch.randn(3))


def test_eltwise_add_and_cat_share_the_input_grid() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(2, 3), 3 * torch.randn(2, 3)
    add = qnn.QuantEltwiseAdd(return_quant_tensor=True)
    _calibrate(add, a, b)
    out = add(a, b)
    assert out.is_valid and int(out.bit_width) == 8
    qa, qb = add.input_quant(a), add.input_quant(b)
    assert torch.equal(qa.scale, qb.scale)
    assert torch.allclose(out.value, qa.value + qb.value, atol=float(add.quant_output_scale().detach()))
    tied = qnn.QuantEltwiseAdd(tie_input_output_quant=True)
    assert tied.output_quant is tied.input_quant
    cat = qnn.QuantCat(return_quant_tensor=True)
    _calibrate(cat, [a, b])
    joined = cat([a, b], dim=1)
    assert joined.is_valid and joined.value.shape == (2, 6) and int(joined.bit_width) == 8
    # without output quantizers the results stay on the shared input grid
    raw_add = qnn.QuantEltwiseAdd(output_quant=None, return_quant_tensor=True)
    raw_cat = qnn.QuantCat(output_quant=None, return_quant_tensor=True)
    for layer in (raw_add, raw_cat):
        _calibrate(layer, *((a, b) if layer is raw_add else ([a, b],)))
    summed, stacked = raw_add(a, b), raw_cat([a, b], dim=0)
    assert summed.is_valid and int(summed.bit_width) == 9
    assert torch.equal(summed.scale, raw_add.input_quant(a).scale)
    assert stacked.is_valid and torch.equal(stacked.int(), torch.cat([raw_cat.input_quant(t).int() for t in (a, b)]))


def test_scale_bias_and_batch_norm_to_scale_bias() -> None:
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    sb = qnn.BatchNorm2dToQuantScaleBias(3, weight_scaling_per_output_channel=True, weight_bit_width=8)
    sb.load_state_dict(bn.state_dict(), strict=False)
    x = torch.randn(2, 3, 4, 4)
    assert tuple(sb.quant_weight_scale().shape) == (3,)
    # per-channel 8-bit weights: each channel's scale is its weight / 127, so the fold is exact up to rounding
    assert torch.allclose(sb(x), bn(x), atol=1e-5)
    sb.return_quant_tensor = True
    out = sb(_qt(torch.randint(-128, 128, (2, 3, 4, 4)).float(), 0.1, 0.0, 8, True))
    assert not out.is_valid  # float bias: off the accumulator grid


def test_scale_bias_metadata() -> None:
    sb = qnn.QuantScaleBias(3, bias=False, weight_scaling_per_output_channel=True, return_quant_tensor=True)
    codes = torch.randint(-128, 128, (2, 3, 2, 2)).float()
    out = sb(_qt(codes, 0.1, 0.0, 8, True))
    assert out.is_valid and tuple(out.scale.shape) == (1, 3, 1, 1)
    assert torch.equal(out.int(), (codes * sb.int_weight().view(1, 3, 1, 1).float()).long())
    assert int(out.bit_width) == (128 * 127).bit_length() + 1


def test_hadamard_classifier() -> None:
    torch.manual_seed(0)
    clf = qnn.HadamardClassifier(6, 3, return_quant_tensor=True)
    codes = torch.randint(-128, 128, (2, 6)).float()
    out = clf(_qt(codes, 0.1, 0.0, 8, True))
    assert out.is_valid and tuple(out.scale.shape) == (2, 1)
    assert torch.equal(out.int(), (-(codes @ clf.proj.t())).long())
    out.value.sum().backward()
    assert clf.scale.grad is not None
    assert "scale" in dict(qnn.HadamardClassifier(4, 2, fixed_scale=True).named_buffers())


def test_quant_tensor_chain_through_a_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),
        qnn.QuantConv2d(3, 4, 3, bias=True, bias_quant=Int8Bias, return_quant_tensor=True),
        qnn.TruncQuantAccumulator(),
        qnn.QuantReLU(return_quant_tensor=True),
        qnn.QuantMaxPool2d(2),
        qnn.QuantAvgPool2d(2),
    )
    x = torch.randn(2, 3, 10, 10)
    _calibrate(model, x)
    out = model(x)
    assert isinstance(out, QuantTensor) and out.is_valid and int(out.bit_width) == 8
    out.value.sum().backward()
    assert model[1].weight.grad is not None


def test_torch_compile_traces_a_quant_model_without_graph_breaks() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        qnn.QuantIdentity(),
        qnn.QuantConv2d(3, 4, 3, weight_bit_width=4),
        qnn.QuantReLU(),
        nn.Flatten(),
        qnn.QuantLinear(4 * 4 * 4, 10, bias=True),
    )
    explanation = torch._dynamo.explain(model)(torch.randn(2, 3, 6, 6))
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_bias_quantizer_of_a_layer_without_bias_is_idle() -> None:
    fc = qnn.QuantLinear(4, 2, bias=False, bias_quant=Int8BiasPerTensorFloatInternalScaling)
    assert not fc.bias_quant.is_quant_enabled and not fc.is_bias_quant_enabled
    assert fc.quant_bias() is None
    merge_bn(fc, nn.BatchNorm1d(2).eval())  # creates the bias: its quantizer comes to life
    assert fc.bias_quant.is_quant_enabled
    assert int(fc.quant_bias_bit_width()) == 8


def test_bias_on_accumulator_grid_needs_a_quantized_weight() -> None:
    conv = qnn.QuantConv2d(2, 2, 1, weight_quant=None, bias_quant=Int8Bias, input_quant=Int8ActPerTensorFloat)
    with pytest.raises(ConfigError, match="weight is not quantized"):
        conv(torch.randn(1, 2, 2, 2))


def test_error_messages_name_the_proxy_slot() -> None:
    model = nn.Sequential(qnn.QuantConv2d(2, 2, 1, input_quant=Int8ActPerTensorFloat))
    name_quant_layers(model)
    assert model[0].input_quant.describe_owner() == "input_quant of QuantConv2d '0'"
    assert model[0].weight_quant.describe_owner() == "weight_quant of QuantConv2d '0'"


def test_deepcopy_rebinds_proxies_to_the_copies() -> None:
    import copy

    torch.manual_seed(0)
    model = nn.Sequential(qnn.QuantConv2d(2, 2, 1), qnn.QuantConv2d(2, 2, 1))
    model[1].weight_quant = model[0].weight_quant
    model[0].weight_quant.add_tracked_module(model[1])
    twin = copy.deepcopy(model)
    x = torch.randn(1, 2, 3, 3)
    assert torch.equal(model(x), twin(x))
    proxy = twin[0].weight_quant
    assert proxy is twin[1].weight_quant and proxy.owners == (twin[0], twin[1])
    assert [id(t) for t in proxy.tracked_tensors()] == [id(twin[0].weight), id(twin[1].weight)]


def test_layers_follow_the_model_device(device: torch.device) -> None:
    from brevitas.checkpoint import load_float_state_dict

    torch.manual_seed(0)
    model = nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),
        qnn.QuantConv2d(
            3, 4, 3, bias_quant=Int8Bias, weight_scaling_impl_type="parameter_from_stats", return_quant_tensor=True
        ),  # fmt: skip
        qnn.TruncQuantAccumulator(),
        qnn.QuantReLU(),
    ).to(device)
    x = torch.randn(2, 3, 6, 6, device=device)
    model(x).sum().backward()
    assert model[1].weight_quant.tensor_quant.scaling_impl.value.grad.device == x.device
    float_ref = nn.Sequential(nn.Identity(), nn.Conv2d(3, 4, 3)).to(device)
    load_float_state_dict(model, float_ref.state_dict())
    assert all(t.device == x.device for t in model.state_dict().values())
    model.eval()
    with torch.no_grad():
        assert model(x).device == x.device


@settings(max_examples=60, deadline=None)
@given(
    in_features=st.integers(1, 40),
    out_features=st.integers(1, 6),
    in_bits=st.integers(2, 8),
    w_bits=st.integers(2, 8),
    signed_input=st.booleans(),
    zero_point=st.integers(0, 3),
    extreme=st.booleans(),
)
def test_linear_accumulator_is_exact_and_fits_its_bit_width(
    in_features: int, out_features: int, in_bits: int, w_bits: int, signed_input: bool, zero_point: int, extreme: bool
) -> None:
    torch.manual_seed(in_features * 31 + out_features)
    fc = qnn.QuantLinear(in_features, out_features, bias=False, weight_bit_width=w_bits, return_quant_tensor=True)
    low, high = (-(2 ** (in_bits - 1)), 2 ** (in_bits - 1) - 1) if signed_input else (0, 2**in_bits - 1)
    zp = 0 if signed_input else min(zero_point, high)
    if extreme:  # the worst case for the accumulator: every product at its largest magnitude
        codes = torch.full((2, in_features), float(low if signed_input else high))
        with torch.no_grad():
            fc.weight.copy_(-torch.ones_like(fc.weight) if signed_input else torch.ones_like(fc.weight))
    else:
        codes = torch.randint(low, high + 1, (2, in_features)).float()
    out = fc(_qt(codes, 0.5, float(zp), in_bits, signed_input))
    assert out.is_valid and out.signed is True
    w_int = fc.int_weight().double()
    exact = codes.double() @ w_int.t()
    assert torch.equal(out.int().double(), exact)
    half = 2 ** (int(out.bit_width) - 1)
    assert bool((exact >= -half).all()) and bool((exact <= half - 1).all())


# ---------------------------------------------------------------------------
# A bias quantized on the accumulator grid cannot follow a per-channel input scale
# ---------------------------------------------------------------------------


def test_int8_bias_after_a_per_channel_input_says_the_input_scale_is_per_channel() -> None:
    fc = qnn.QuantLinear(4, 3, bias=True, bias_quant=Int8Bias)
    scale = torch.tensor([0.1, 0.2, 0.3, 0.4])
    zero = torch.zeros(())
    x = QuantTensor(torch.randint(-8, 8, (2, 4)).float() * scale, scale, zero, torch.tensor(8.0), signed=True)
    with pytest.raises(ConfigError) as err:
        fc(x)
    msg = str(err.value)
    assert "input scale is per-channel" in msg
    assert "unknown" not in msg
    assert "Int8ActPerTensorFloat" in msg and "Int8BiasPerTensorFloatInternalScaling" in msg
    with pytest.raises(ConfigError, match="input scale is per-channel"):
        fc.quant_bias(input_scale=scale)
    with pytest.raises(ConfigError, match="input scale is unknown"):  # no scale at all keeps its own message
        fc(torch.randn(2, 4))
