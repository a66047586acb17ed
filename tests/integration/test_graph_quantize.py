"""brevitas.graph: quantize float models, calibrate, correct biases, report, export with every installed exporter."""

from __future__ import annotations

import copy
import json
import operator
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import brevitas.export as bx
import brevitas.nn as qnn
from brevitas.errors import BrevitasError, ConfigError
from brevitas.graph import (
    QuantConfig,
    Rule,
    Site,
    UntraceableModelError,
    bias_correction_mode,
    calibratable_components,
    calibration_mode,
    quantize,
    report,
)
from brevitas.quant.fixed_point import (
    Int8ActPerTensorFixedPoint,
    Int8BiasPerTensorFixedPointInternalScaling,
    Int8WeightPerTensorFixedPoint,
    Uint8ActPerTensorFixedPoint,
)
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Uint8ActPerTensorFloat,
)
from brevitas.quant_tensor import QuantTensor

# ---------------------------------------------------------------------------
# Models (torchvision is not needed)
# ---------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """ResNet basic block: conv-bn-relu, conv-bn, residual addition (``+=``), relu (one module called twice)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class SmallResNet(nn.Module):
    """A ResNet-style network: stem, two stages of basic blocks, global average pooling, classifier."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, stride=2), BasicBlock(16, 16))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(48, 32)
        self.act1 = nn.ReLU()
        self.fc2 = nn.Linear(32, 32)
        self.bn2 = nn.BatchNorm1d(32)
        self.fc3 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.fc1(self.flatten(x)))
        x = F.relu(self.bn2(self.fc2(x)))
        return self.fc3(x)


class Functional(nn.Module):
    """Functions and methods instead of modules: torch.add, x + y, F.relu, x.relu(), torch.cat, flatten, view."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 1)
        self.c = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear(4 * 4 * 4, 6)
        self.fc2 = nn.Linear(4 * 4 * 4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.a(x))
        b = self.b(x).relu()
        s = torch.add(a, b) + x
        y = torch.cat([a, torch.sigmoid(s)], dim=1)
        y = torch.tanh(self.c(y))
        z = self.fc(y.flatten(1)) + self.fc2(y.view(y.size(0), -1))
        return z


def _trained_bn(model: nn.Module, shape: tuple[int, ...], steps: int = 3) -> nn.Module:
    """Give the batch norms non-trivial running statistics, then return the model in eval mode."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(*shape))
    return model.eval()


def _calibrate(model: nn.Module, shape: tuple[int, ...], batches: int = 4) -> None:
    gen = torch.Generator().manual_seed(1)
    with calibration_mode(model):
        for _ in range(batches):
            model(torch.randn(*shape, generator=gen))


def _modules_of(model: nn.Module, cls: type | tuple[type, ...]) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, cls)]


@pytest.fixture(autouse=True)
def _seed() -> None:
    """Every test starts from the same random state (model initializations, inputs)."""
    torch.manual_seed(0)


RESNET_SHAPE = (4, 3, 8, 8)
MLP_SHAPE = (16, 3, 4, 4)


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    return _trained_bn(SmallResNet(), RESNET_SHAPE)


@pytest.fixture(scope="module")
def mlp() -> nn.Module:
    return _trained_bn(MLP(), MLP_SHAPE)


# ---------------------------------------------------------------------------
# quantize: what is replaced, named, shared, folded
# ---------------------------------------------------------------------------


def test_resnet_layers_replaced_and_batch_norms_folded(resnet: nn.Module) -> None:
    q = quantize(resnet)
    assert isinstance(q, torch.fx.GraphModule)
    assert _modules_of(q, nn.modules.batchnorm._BatchNorm) == []
    convs = _modules_of(q, qnn.QuantConv2d)
    float_convs = _modules_of(resnet, nn.Conv2d)
    assert sorted(convs) == sorted(float_convs)  # same qualified names
    assert _modules_of(q, qnn.QuantLinear) == ["fc"]
    adds = _modules_of(q, qnn.QuantEltwiseAdd)
    assert sorted(adds) == ["layer1.0.add", "layer1.1.add", "layer2.0.add", "layer2.1.add"]
    # one nn.ReLU module called twice per block -> two quant layers; the stem's F.relu -> "relu"
    relus = _modules_of(q, qnn.QuantReLU)
    assert "relu" in relus and "layer1.0.relu" in relus and "layer1.0.relu_1" in relus
    assert len(relus) == 1 + 2 * 4
    assert _modules_of(q, qnn.QuantIdentity) == ["input_quant"]
    # nothing float is left for the operations that were to be replaced
    for node in q.graph.nodes:
        assert node.target not in (operator.add, operator.iadd, F.relu, torch.relu), node.format_node()
    # merged biases: every conv now has one (from the batch norm)
    assert all(q.get_submodule(n).bias is not None for n in convs)


def test_float_model_untouched_and_inplace(resnet: nn.Module) -> None:
    before = copy.deepcopy(resnet.state_dict())
    q = quantize(resnet)
    assert q is not resnet
    assert all(torch.equal(before[k], v) for k, v in resnet.state_dict().items())
    assert _modules_of(resnet, nn.BatchNorm2d)  # still there
    model = copy.deepcopy(resnet)
    q2 = quantize(model, inplace=True)
    assert isinstance(model.layer1[0].conv1, qnn.QuantConv2d)
    assert model.layer1[0].conv1 is q2.get_submodule("layer1.0.conv1")
    assert isinstance(model.layer1[0].bn1, nn.Identity)


def test_batch_norm_folding_is_exact_with_quantizers_off(resnet: nn.Module) -> None:
    off = QuantConfig(
        rules=[
            Rule(kind=("conv", "linear"), weight_quant=None, bias_quant=None, input_quant=None),
            Rule(kind=("relu", "add", "input"), quantize=False),
        ]
    )
    q = quantize(resnet, off)
    assert _modules_of(q, nn.modules.batchnorm._BatchNorm) == []
    x = torch.randn(*RESNET_SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(q(x), resnet(x), atol=1e-5, rtol=1e-4)


def test_batch_norm_kept_by_option(resnet: nn.Module) -> None:
    q = quantize(resnet, QuantConfig(merge_bn=False))
    assert len(_modules_of(q, nn.BatchNorm2d)) == len(_modules_of(resnet, nn.BatchNorm2d))
    _calibrate(q, RESNET_SHAPE)
    x = torch.randn(*RESNET_SHAPE)
    with torch.no_grad():
        ref, out = resnet(x), q(x)
    assert (out - ref).abs().mean() < 0.1 * ref.abs().mean()


def test_functions_and_methods_are_quantized() -> None:
    model = Functional().eval()
    q = quantize(model)
    kinds = {name: type(m).__name__ for name, m in q.named_modules() if isinstance(m, qnn.QuantLayerMixin)}
    assert kinds["relu"] == "QuantReLU" and kinds["relu_1"] == "QuantReLU"  # F.relu and x.relu()
    assert kinds["add"] == "QuantEltwiseAdd" and kinds["add_1"] == "QuantEltwiseAdd"  # torch.add and +
    assert kinds["add_2"] == "QuantEltwiseAdd"  # fc(...) + fc2(...)
    assert kinds["cat"] == "QuantCat"
    assert kinds["sigmoid"] == "QuantSigmoid" and kinds["tanh"] == "QuantTanh"
    remaining = {str(n.target) for n in q.graph.nodes if n.op in ("call_function", "call_method")}
    assert remaining <= {"flatten", "view", "size"}, remaining
    _calibrate(q, (64, 4, 4, 4))
    x = torch.randn(8, 4, 4, 4)
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert type(out) is torch.Tensor
    assert (out - ref).abs().mean() < 0.08 * ref.abs().mean()
    # the concatenated operands are non-negative (relu, sigmoid): an unsigned shared quantizer
    assert q.get_submodule("cat").input_quant.is_signed is False
    # the sum of two relu outputs is non-negative, the one with x is not
    assert q.get_submodule("add").input_quant.is_signed is False
    assert q.get_submodule("add_1").input_quant.is_signed is True


class InPlace(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 4)
        self.fc2 = nn.Linear(4, 4)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc1(x)
        y.relu_()  # result unused: later uses of y see the activation
        z = self.fc2(y)
        self.act(z)
        z.add_(y)
        return z


def test_in_place_operations_keep_their_meaning() -> None:
    model = InPlace().eval()
    off = QuantConfig(
        rules=[
            Rule(kind="linear", weight_quant=None, bias_quant=None, input_quant=None),
            Rule(kind=("input", "add", "relu"), quantize=False),
        ]
    )
    x = torch.randn(16, 4)
    with torch.no_grad():
        torch.testing.assert_close(quantize(model, off)(x), model(x))
    q = quantize(model)
    assert sorted(_modules_of(q, qnn.QuantReLU)) == ["act", "relu"]
    assert _modules_of(q, qnn.QuantEltwiseAdd) == ["add"]
    _calibrate(q, (256, 4))
    with torch.no_grad():
        ref, out = model(x), q(x)
    assert (out - ref).abs().mean() < 0.08 * ref.abs().mean()


def test_residual_operands_share_one_quantizer(resnet: nn.Module) -> None:
    q = quantize(resnet)
    _calibrate(q, RESNET_SHAPE)
    add = q.get_submodule("layer1.0.add")
    seen: list[QuantTensor] = []
    handle = add.input_quant.register_forward_hook(lambda m, a, out: seen.append(out))
    add.return_quant_tensor = True
    try:
        with torch.no_grad():
            out = add(torch.randn(2, 8, 4, 4), 3 * torch.randn(2, 8, 4, 4))
    finally:
        handle.remove()
    assert len(seen) == 2 and torch.equal(seen[0].scale, seen[1].scale)
    assert isinstance(out, QuantTensor) and out.is_valid and not out.training
    # the float sum of the operands' quantized values is exactly on the shared grid
    total = seen[0].value + seen[1].value
    codes = total / seen[0].scale
    assert torch.allclose(codes, codes.round(), atol=1e-3)


def test_quant_tensors_flow_to_weight_layers(mlp: nn.Module) -> None:
    q = quantize(mlp)
    # input_quant -> Flatten -> fc1: QuantTensor in, so fc1 needs no input quantizer of its own
    assert q.get_submodule("input_quant").return_quant_tensor
    assert not q.get_submodule("fc1").input_quant.is_quant_enabled
    assert q.get_submodule("act1").return_quant_tensor
    assert not q.get_submodule("fc3").input_quant.is_quant_enabled
    seen: dict[str, Any] = {}
    hooks = [
        q.get_submodule(n).register_forward_hook(lambda m, a, o, n=n: seen.__setitem__(n, a[0])) for n in ("fc1", "fc3")
    ]
    with torch.no_grad():
        out = q.eval()(torch.randn(*MLP_SHAPE))
    for h in hooks:
        h.remove()
    assert all(isinstance(v, QuantTensor) and v.is_valid for v in seen.values())
    assert type(out) is torch.Tensor


def test_output_of_activation_is_a_plain_tensor() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU()).eval()
    q = quantize(model)
    assert type(q(torch.randn(2, 4))) is torch.Tensor
    assert not q.get_submodule("1").return_quant_tensor


def test_weight_layer_after_average_pooling_quantizes_its_input(resnet: nn.Module) -> None:
    q = quantize(resnet)
    fc = q.get_submodule("fc")
    assert fc.input_quant.is_quant_enabled
    assert fc.input_quant.is_signed is True  # the configured act_quant
    assert q.get_submodule("layer2.1.relu_1").return_quant_tensor is False  # feeds a float pooling


def test_function_in_a_module_without_submodules_is_named_inside_it() -> None:
    class Merge(nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.cat([a, b], dim=1) + 1.0  # adding a constant is not a site: stays float

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.merge = Merge()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.merge(self.fc(x), x)

    model = Net().eval()
    q = quantize(model)
    assert isinstance(q.get_submodule("merge.cat"), qnn.QuantCat)
    assert [str(n.target) for n in q.graph.nodes if n.op == "call_function"] == ["<built-in function add>"]
    _calibrate(q, (32, 4))
    x = torch.randn(8, 4)
    with torch.no_grad():
        assert (q(x) - model(x)).abs().mean() < 0.05 * model(x).abs().mean()


def test_shared_weight_module_stays_shared() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.fc(x)))

    q = quantize(Twice().eval())
    assert _modules_of(q, qnn.QuantLinear) == ["fc"]
    assert [n.target for n in q.graph.nodes if n.op == "call_module"].count("fc") == 2


def test_existing_quant_layers_are_kept() -> None:
    model = nn.Sequential(qnn.QuantLinear(4, 4, weight_bit_width=3), nn.ReLU(), nn.Linear(4, 2)).eval()
    q = quantize(model)
    assert int(q.get_submodule("0").quant_weight_bit_width()) == 3
    assert isinstance(q.get_submodule("2"), qnn.QuantLinear)


def test_quantized_model_state_dict_round_trip(mlp: nn.Module) -> None:
    q = quantize(mlp)
    _calibrate(q, MLP_SHAPE)
    with bias_correction_mode(q):
        q(torch.randn(*MLP_SHAPE))
    fresh = quantize(mlp)
    fresh.load_state_dict(q.state_dict())
    x = torch.randn(*MLP_SHAPE)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), q.eval()(x))


def test_device_placement(device: torch.device) -> None:
    model = _trained_bn(SmallResNet(), RESNET_SHAPE).to(device)
    q = quantize(model)
    assert {p.device.type for p in q.parameters()} == {device.type}
    assert {b.device.type for b in q.buffers()} == {device.type}
    with calibration_mode(q):
        q(torch.randn(*RESNET_SHAPE, device=device))
    assert q(torch.randn(2, 3, 16, 16, device=device)).device.type == device.type


# ---------------------------------------------------------------------------
# Config: mixed precision by name pattern, per kind, validation
# ---------------------------------------------------------------------------


def test_mixed_precision_by_name_pattern(resnet: nn.Module) -> None:
    cfg = QuantConfig(
        weight_quant=Int8WeightPerChannelFloat,
        weight_bit_width=4,
        act_bit_width=4,
        rules=[
            Rule(name=["conv1", "fc"], weight_bit_width=8, input_bit_width=8),
            Rule(name="input_quant", act_bit_width=8),
            Rule(name="layer2.*.relu*", act_bit_width=6),
        ],
    )
    q = quantize(resnet, cfg)
    _calibrate(q, RESNET_SHAPE)
    rep = report(q, torch.randn(*RESNET_SHAPE))
    checked = 0
    for lay in rep:
        bits = lay.bit_widths()
        if lay.layer_type == "QuantConv2d" or lay.layer_type == "QuantLinear":
            expected = 8 if lay.name in ("conv1", "fc") else 4
            assert bits["weight_quant"] == expected, lay.name
            assert lay.quantizer("weight_quant").per_channel is True
        elif lay.layer_type == "QuantReLU":
            expected = 6 if lay.name.startswith("layer2.") else 4
            assert bits == {"act_quant": expected}, lay.name
        elif lay.layer_type == "QuantEltwiseAdd":
            assert bits == {"input_quant": 4, "output_quant": 4}, lay.name
        elif lay.name == "input_quant":
            assert bits == {"act_quant": 8}
        else:  # pragma: no cover - every layer kind is listed above
            raise AssertionError(lay)
        checked += 1
    assert checked == len(rep) == 1 + 10 + 9 + 4 + 1  # input, 10 convs, 9 relus, 4 additions, fc


def test_rule_by_kind_class_regex_and_quantize_false(resnet: nn.Module) -> None:
    import re

    cfg = QuantConfig(
        rules=[
            Rule(kind=nn.Linear, weight_quant=Int8WeightPerTensorFloat, weight_bit_width=5),
            Rule(name=re.compile(r"layer1\.\d\.conv2"), weight_bit_width=3),
            Rule(name="layer2.1.add", quantize=False),
            Rule(kind="input", quantize=False),
        ]
    )
    q = quantize(resnet, cfg)
    assert int(q.get_submodule("fc").quant_weight_bit_width()) == 5
    assert int(q.get_submodule("layer1.0.conv2").quant_weight_bit_width()) == 3
    assert int(q.get_submodule("layer1.1.conv2").quant_weight_bit_width()) == 3
    assert int(q.get_submodule("layer2.0.conv2").quant_weight_bit_width()) == 8
    assert "layer2.1.add" not in dict(q.named_modules())
    assert "input_quant" not in dict(q.named_modules())
    # the first conv's input is now unquantized upstream, so it quantizes it itself
    assert q.get_submodule("conv1").input_quant.is_quant_enabled
    _calibrate(q, RESNET_SHAPE)
    q(torch.randn(2, 3, 16, 16))


def test_later_rules_win_and_quant_class_keeps_overrides() -> None:
    cfg = QuantConfig(
        rules=[
            Rule(weight_bit_width=4),
            Rule(name="fc", weight_quant=Int8WeightPerChannelFloat),
            Rule(name="f*", weight_bit_width=6),
        ]
    )
    fc = cfg.resolve(Site("fc", "linear"))
    assert fc.quants["weight"] is Int8WeightPerChannelFloat and fc.overrides["weight"] == {"bit_width": 6}
    other = cfg.resolve(Site("conv", "conv"))
    assert other.quants["weight"] is Int8WeightPerTensorFloat and other.overrides["weight"] == {"bit_width": 4}
    relu = cfg.resolve(Site("relu", "relu"))  # a weight setting is ignored where there is no weight
    assert "weight" not in relu.quants and relu.quants["act"] is Uint8ActPerTensorFloat


def test_config_errors_say_what_to_write() -> None:
    with pytest.raises(ConfigError, match="conv, conv_transpose, linear"):
        Rule(kind="convolution")
    with pytest.raises(ConfigError, match="weight_bit_width=4"):
        Rule(wieght_bit_width=4)
    with pytest.raises(ConfigError, match="quantizer class"):
        Rule(weight_quant="int8")
    with pytest.raises(ConfigError, match="Rule objects"):
        QuantConfig(rules=[{"name": "fc"}])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="int >= 1"):
        QuantConfig(weight_bit_width=0)
    with pytest.raises(ConfigError, match="quantizer class"):
        QuantConfig(act_quant=nn.ReLU)
    with pytest.raises(ConfigError, match="QuantConfig"):
        quantize(nn.Linear(2, 2), {"weight_bit_width": 4})  # type: ignore[arg-type]


def test_bias_needing_input_scale_without_input_quant_is_refused() -> None:
    model = nn.Sequential(nn.AvgPool1d(1), nn.Linear(4, 4)).eval()
    cfg = QuantConfig(rules=[Rule(name="1", input_quant=None)])
    with pytest.raises(ConfigError, match="input_quant=Int8ActPerTensorFloat"):
        quantize(model, cfg)


# ---------------------------------------------------------------------------
# Untraceable models
# ---------------------------------------------------------------------------


class Gate(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:
            return x
        return -x


class Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.head = nn.Sequential(nn.Linear(4, 4), Gate())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc(x)))


def test_untraceable_model_names_module_construct_and_fix() -> None:
    with pytest.raises(UntraceableModelError) as info:
        quantize(Gated().eval())
    err = info.value
    assert isinstance(err, BrevitasError)
    assert err.module == "head.1"
    text = str(err)
    assert "'head.1' (Gate)" in text
    assert "data-dependent control flow" in text and "if x.mean() > 0:" in text
    assert "leaf_modules=['head.1']" in text and "torch.where" in text


def test_leaf_module_makes_it_quantizable_and_stays_float() -> None:
    model = Gated().eval()
    q = quantize(model, QuantConfig(leaf_modules=["head.1"]))
    assert type(q.get_submodule("head.1")) is Gate
    assert isinstance(q.get_submodule("head.0"), qnn.QuantLinear)
    _calibrate(q, (8, 4))
    x = torch.randn(3, 4)
    assert type(q(x)) is torch.Tensor
    # a whole subtree as a leaf, by class: nothing inside it is quantized
    q2 = quantize(model, QuantConfig(leaf_modules=[nn.Sequential]))
    assert type(q2.get_submodule("head")) is nn.Sequential
    assert type(q2.get_submodule("head.0")) is nn.Linear


# ---------------------------------------------------------------------------
# Post-training quantization: calibration and bias correction
# ---------------------------------------------------------------------------


def test_calibration_collects_without_grad_and_freezes(mlp: nn.Module) -> None:
    q = quantize(mlp).train()
    components = calibratable_components(q)
    assert components  # the standard activation quantizers take part in the protocol
    act1 = q.get_submodule("act1").act_quant
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(*MLP_SHAPE, generator=gen) for _ in range(3)]
    thresholds = []

    def record(module: nn.Module, args: Any, out: Any) -> None:
        thresholds.append(torch.quantile(args[0].flatten(), 0.99999).item())

    handle = act1.register_forward_hook(record)
    with calibration_mode(q):
        assert torch.is_grad_enabled() is False
        assert q.get_submodule("fc1").training is False and act1.training is True
        for x in batches:
            q(x)
    handle.remove()
    assert q.training is True and act1.training is True  # modes restored
    assert all(p.grad is None for p in q.parameters())
    # eval uses the average threshold of the calibration batches (Uint8: scale = threshold / 255)
    scale = float(act1.scale().detach())
    assert scale * 255 == pytest.approx(sum(thresholds) / len(thresholds), rel=2e-2)
    # frozen: more eval batches do not move it
    q.eval()
    with torch.no_grad():
        q(torch.randn(*MLP_SHAPE) * 10)
    assert float(act1.scale().detach()) == scale
    # QAT afterwards starts from it: the learned parameter has taken over and gets gradients
    q.train()
    loss = q(batches[0]).square().mean()
    loss.backward()
    learned = [m for m in act1.modules() if hasattr(m, "collect_stats_steps")]
    assert learned and all(int(m.counter) == m.collect_stats_steps for m in learned)
    assert learned[0].value.grad is not None


def test_calibration_warns_about_quantizers_that_saw_nothing() -> None:
    q = quantize(nn.Sequential(nn.Linear(4, 4)).eval())
    q.unused = qnn.QuantReLU()  # registered, never called
    with pytest.warns(UserWarning, match="unused.act_quant"):
        with calibration_mode(q):
            q(torch.randn(4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with calibration_mode(q, enabled=False):
            q(torch.randn(4, 4))


def test_bias_correction_removes_the_mean_output_shift(mlp: nn.Module) -> None:
    q = quantize(mlp, QuantConfig(weight_bit_width=3))
    _calibrate(q, MLP_SHAPE)
    q.eval()
    layer = q.get_submodule("fc2")
    float_bias = layer.bias.detach().clone()
    gen = torch.Generator().manual_seed(3)
    data = [torch.randn(*MLP_SHAPE, generator=gen) for _ in range(4)]
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    handle = layer.register_forward_hook(lambda m, a, o: seen.append((a[0].value, o)))

    def mean_shift() -> float:
        seen.clear()
        with torch.no_grad():
            for x in data:
                q(x)
        diffs = [(F.linear(i, layer.weight, float_bias) - o).mean(0) for i, o in seen]
        return float(torch.stack(diffs).mean(0).abs().max().detach())

    before = mean_shift()
    with bias_correction_mode(q, layers=["fc2"]):
        for x in data:
            q(x)
    after = mean_shift()
    handle.remove()
    # what is left is the rounding of the bias to the accumulator grid (Int32Bias: input scale x weight scale)
    acc_scale = float(q.get_submodule("act1").quant_act_scale().detach() * layer.quant_weight_scale().detach())
    assert before > 20 * acc_scale
    assert after <= acc_scale + 1e-6  # |rounding error of the new bias - that of the old one|
    assert not torch.equal(layer.bias.detach(), float_bias)
    assert torch.equal(q.get_submodule("fc1").bias.detach(), mlp.fc1.bias.detach())  # not in layers=
    assert q.training is False


def test_bias_correction_creates_a_missing_bias_and_can_skip() -> None:
    model = nn.Sequential(nn.Linear(6, 4, bias=False), nn.ReLU()).eval()
    q = quantize(model, QuantConfig(weight_bit_width=2, bias_quant=None))
    _calibrate(q, (16, 6))
    with bias_correction_mode(q, skip_if_no_bias=True):
        q(torch.randn(16, 6))
    assert q.get_submodule("0").bias is None
    with bias_correction_mode(q):
        q(torch.randn(16, 6))
    assert isinstance(q.get_submodule("0").bias, nn.Parameter)
    with pytest.raises(ConfigError, match="no quantized weight layer named nope"):
        with bias_correction_mode(q, layers=["nope"]):
            pass


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def test_report_lists_quantizers_bit_widths_scales(mlp: nn.Module) -> None:
    q = quantize(mlp, QuantConfig(weight_quant=Int8WeightPerChannelFloat))
    _calibrate(q, MLP_SHAPE)
    static = report(q)
    assert [lay.name for lay in static] == ["input_quant", "fc1", "act1", "fc2", "relu", "fc3"]
    fc1 = static.layer("fc1")
    w = fc1.quantizer("weight_quant")
    assert w.enabled and w.quantizer == "Int8WeightPerChannelFloat" and w.bit_width == 8 and w.per_channel
    assert w.scale is not None and w.scale.numel() == 32
    assert fc1.quantizer("input_quant").enabled is False
    assert "input scale" in fc1.quantizer("bias_quant").note  # Int32Bias: needs the input scale
    assert static.layer("act1").quantizer("act_quant").signed is False
    assert static.layer("fc1").exporters is None and "not checked" in str(static)
    x = torch.randn(*MLP_SHAPE)
    full = report(q, x)
    bias = full.layer("fc1").quantizer("bias_quant")
    assert bias.bit_width == 32 and bias.scale is not None
    act_scale = float(full.layer("act1").quantizer("act_quant").scale)
    assert act_scale == pytest.approx(float(q.get_submodule("act1").quant_act_scale().detach()))
    json.dumps(full.to_dict())
    text = str(full)
    assert "fc1" in text and "Int8WeightPerChannelFloat" in text
    with pytest.raises(KeyError, match="fc1"):
        full.layer("fc9")
    # exporter verdicts agree with brevitas.export.check
    for exporter in full.exporters_checked:
        problems = bx.check(q, x, exporter=exporter)
        refused = {p.layer for p in problems}
        for lay in full:
            named = any(r == lay.name or r.startswith(lay.name + ".") for r in refused)
            assert (exporter in (lay.exporters or ())) == (not named and exporter not in full.model_problems)


# ---------------------------------------------------------------------------
# Proof: quantize, calibrate, export with every installed exporter that accepts it, same outputs
# ---------------------------------------------------------------------------

#: the proof's quantization recipes: the default; 8-bit outputs on weight layers (the QOperator form needs
#: them); fixed point (power-of-two scales, 8-bit biases, 8-bit outputs: what FINN and the DPU take)
CONFIGS = {
    "default": QuantConfig(),
    "output_quant": QuantConfig(rules=[Rule(kind=("conv", "linear"), output_quant=Int8ActPerTensorFloat)]),
    "fixed_point": QuantConfig(
        weight_quant=Int8WeightPerTensorFixedPoint,
        bias_quant=Int8BiasPerTensorFixedPointInternalScaling,
        act_quant=Int8ActPerTensorFixedPoint,
        unsigned_act_quant=Uint8ActPerTensorFixedPoint,
        rules=[Rule(kind=("conv", "linear"), output_quant=Int8ActPerTensorFixedPoint)],
    ),
}
MODELS = {"resnet": (SmallResNet, RESNET_SHAPE), "mlp": (MLP, MLP_SHAPE)}
_VERDICTS: dict[tuple[str, str], dict[str, list[str]]] = {}


def _ptq(model: nn.Module, cfg: QuantConfig, shape: tuple[int, ...]) -> nn.Module:
    q = quantize(model, cfg)
    _calibrate(q, shape)
    gen = torch.Generator().manual_seed(2)
    with bias_correction_mode(q):
        for _ in range(2):
            q(torch.randn(*shape, generator=gen))
    return q.eval()


def _output_step(q: torch.fx.GraphModule) -> float:
    """The quantization step of the model's output when its last layer quantizes it (else 0)."""
    out = next(n for n in q.graph.nodes if n.op == "output")
    last = out.args[0]
    if isinstance(last, torch.fx.Node) and last.op == "call_module":
        proxy = getattr(q.get_submodule(str(last.target)), "output_quant", None)
        if proxy is not None and proxy.is_quant_enabled:
            return float(proxy.scale().detach().max())
    return 0.0


def _export_and_compare(q: torch.fx.GraphModule, x: torch.Tensor) -> dict[str, list[str]]:
    """Check and export with every installed exporter; the accepted artifacts must reproduce the model.

    Outputs match to float rounding, or within one step of the output quantizer when the model ends with one
    (a value exactly between two codes may be rounded the other way by the consumer).
    """
    verdicts: dict[str, list[str]] = {}
    with torch.no_grad():
        ref = q(x).numpy()
    atol = 1e-5 + 1e-4 * float(np.abs(ref).max()) + 1.001 * _output_step(q)
    layer_names = {name for name, _ in q.named_modules()}
    for name in sorted(bx.exporters()):
        problems = bx.check(q, x, exporter=name)
        if problems:
            for p in problems:  # each problem names a real layer (or the model) and says what to do
                assert p.layer == "" or p.layer.split(".", 1)[0] in {n.split(".", 1)[0] for n in layer_names}, p
                assert p.constraint
            verdicts[name] = [str(p) for p in problems]
            with pytest.raises(bx.ExportCheckError):
                bx.export(q, x, exporter=name)
            continue
        artifact = bx.export(q, x, exporter=name)
        out = np.asarray(bx.get_exporter(name).run(artifact, x)[0])
        np.testing.assert_allclose(out, ref, atol=atol, rtol=0, err_msg=name)
        verdicts[name] = []
    return verdicts


def _verdicts(which: str, config: str) -> dict[str, list[str]]:
    key = (which, config)
    if key not in _VERDICTS:
        cls, shape = MODELS[which]
        model = _trained_bn(cls(), shape)
        q = _ptq(model, CONFIGS[config], shape)
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(5))
        _VERDICTS[key] = _export_and_compare(q, x)
    return _VERDICTS[key]


needs_exporter = pytest.mark.skipif(not bx.exporters(), reason="no exporter installed")


@needs_exporter
@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("which", sorted(MODELS))
def test_export_with_every_installed_exporter(which: str, config: str) -> None:
    verdicts = _verdicts(which, config)
    accepted = {name for name, problems in verdicts.items() if not problems}
    assert accepted, verdicts
    if config == "output_quant":  # 8-bit outputs everywhere: the standard ONNX forms both accept it
        assert accepted >= {"onnx-qcdq", "onnx-qop"} & set(verdicts), verdicts


@needs_exporter
def test_every_installed_exporter_exports_a_proof_model() -> None:
    accepted: set[str] = set()
    for which in MODELS:
        for config in CONFIGS:
            accepted |= {name for name, problems in _verdicts(which, config).items() if not problems}
    assert accepted == set(bx.exporters()), {k: v for k, v in _VERDICTS.items()}
