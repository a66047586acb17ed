"""``torch.compile`` on quantized networks: no graph breaks, and the same numbers as eager.

- ``torch._dynamo.explain`` over the README's QuantLeNet and a six-convolution
  CNN, in training and in eval mode, in the statistics-collection phase and
  after it, and over a network holding every layer kind and quantizer family
  (per-channel, shifted, fixed-point, binary, ternary, accumulator-grid
  biases, truncation, QuantTensor chains): zero graph breaks (one graph).
- A compiled training step (forward and backward) and a compiled eval
  forward give the outputs and gradients of eager mode. (While statistics
  are collected, eager mode leaves the learned scales out of the graph, so
  their gradient is ``None``; compiled code selects with ``torch.where``, so
  it is zero: both are compared as zero.)
- ``BREVITAS_JIT=1`` (each proxy's ``tensor_quant`` compiled) gives the
  outputs and gradients of eager mode.

Compilation is slow on two cores, so the compiled comparisons use a small
network and the graph-break checks trace without compiling.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from brevitas import nn as qnn
from brevitas.inject.enum import ScalingImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant import binary, fixed_point, scaled_int, shifted_scaled_int, ternary

W4 = {"weight_bit_width": 4, "weight_scaling_impl_type": ScalingImplType.PARAMETER_FROM_STATS}


class QuantLeNet(nn.Module):
    """The README's LeNet (4-bit weights, 8-bit activations), with learned weight scales."""

    def __init__(self, collect_stats_steps: int = 300) -> None:
        super().__init__()
        act = {"bit_width": 8, "collect_stats_steps": collect_stats_steps}
        self.quant_inp = QuantIdentity(**act)
        self.conv1, self.relu1 = QuantConv2d(3, 6, 5, **W4), QuantReLU(**act)
        self.conv2, self.relu2 = QuantConv2d(6, 16, 5, **W4), QuantReLU(**act)
        self.fc1, self.relu3 = QuantLinear(16 * 5 * 5, 120, bias=True, **W4), QuantReLU(**act)
        self.fc2, self.relu4 = QuantLinear(120, 84, bias=True, **W4), QuantReLU(**act)
        self.fc3 = QuantLinear(84, 10, bias=False, **W4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.quant_inp(x)
        out = F.max_pool2d(self.relu1(self.conv1(out)), 2)
        out = F.max_pool2d(self.relu2(self.conv2(out)), 2)
        out = out.reshape(out.shape[0], -1)
        out = self.relu3(self.fc1(out))
        out = self.relu4(self.fc2(out))
        return self.fc3(out)


class QuantCNN(nn.Module):
    """Six 3x3 convolutions (32 to 64 channels) with 8-bit ReLUs, pooling after every second."""

    def __init__(self, collect_stats_steps: int = 300) -> None:
        super().__init__()
        act = {"bit_width": 8, "collect_stats_steps": collect_stats_steps}
        self.quant_inp = QuantIdentity(**act)
        channels, c_in, layers = (32, 32, 64, 64, 64, 64), 3, []
        for c_out in channels:
            layers += [QuantConv2d(c_in, c_out, 3, padding=1, **W4), QuantReLU(**act)]
            c_in = c_out
        self.layers = nn.ModuleList(layers)
        self.fc = QuantLinear(64 * 4 * 4, 10, bias=True, **W4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.quant_inp(x)
        for i in range(0, len(self.layers), 2):
            out = self.layers[i + 1](self.layers[i](out))
            if i % 4 == 2:
                out = F.max_pool2d(out, 2)
        return self.fc(out.reshape(out.shape[0], -1))


class SmallNet(nn.Module):
    """Every kind of quantizer of the two networks, small enough to compile quickly."""

    def __init__(self, collect_stats_steps: int = 300) -> None:
        super().__init__()
        act = {"bit_width": 8, "collect_stats_steps": collect_stats_steps}
        self.quant_inp = QuantIdentity(**act)
        self.conv, self.relu = QuantConv2d(2, 3, 3, **W4), QuantReLU(**act)
        self.fc = QuantLinear(3 * 4 * 4, 5, bias=True, **W4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.conv(self.quant_inp(x)))
        return self.fc(out.reshape(out.shape[0], -1))


def _finish_collection(model: nn.Module, x: torch.Tensor) -> None:
    """Train through a (short) statistics collection so that the learned scales take over."""
    model.train()
    for _ in range(3):
        model(x).sum().backward()
    model.zero_grad(set_to_none=True)
    model.train()  # refresh the collection flags as a training loop's train() call does


# --------------------------------------------------------------------------- graph breaks


@pytest.mark.parametrize("make", [QuantLeNet, QuantCNN], ids=["lenet", "cnn"])
@pytest.mark.parametrize("phase", ["collect", "learned"])
def test_networks_trace_into_one_graph_in_train_and_eval(make: Callable[..., nn.Module], phase: str) -> None:
    torch.manual_seed(0)
    model = make(collect_stats_steps=300 if phase == "collect" else 2)
    x = torch.randn(2, 3, 32, 32)
    if phase == "learned":
        _finish_collection(model, x)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(model)(x)
        reasons = [b.reason for b in explanation.break_reasons]
        assert explanation.graph_break_count == 0, f"{mode}: {reasons}"
        assert explanation.graph_count == 1, mode


class EveryLayer(nn.Module):
    """One of each layer kind, with quantizers of every family, passing QuantTensors where it can."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=scaled_int.Int8ActPerTensorFloat, return_quant_tensor=True)
        self.conv = qnn.QuantConv2d(
            3, 8, 3, padding=1, weight_quant=scaled_int.Int8WeightPerChannelFloat, bias_quant=scaled_int.Int8Bias,
            return_quant_tensor=True,
        )  # fmt: skip
        self.bn = qnn.BatchNorm2dToQuantScaleBias(8, return_quant_tensor=True)
        self.relu = qnn.QuantReLU(act_quant=scaled_int.Uint8ActPerTensorFloat, return_quant_tensor=True)
        self.max_pool = qnn.QuantMaxPool2d(2, return_quant_tensor=True)
        self.conv_fixed = qnn.QuantConv2d(
            8, 8, 3, padding=1, weight_quant=fixed_point.Int8WeightPerTensorFixedPoint,
            input_quant=fixed_point.Int8ActPerTensorFixedPoint, output_quant=fixed_point.Int8ActPerTensorFixedPoint,
            return_quant_tensor=True,
        )  # fmt: skip
        self.add = qnn.QuantEltwiseAdd(
            input_quant=scaled_int.Int8ActPerTensorFloat, output_quant=scaled_int.Int8ActPerTensorFloat,
            return_quant_tensor=True,
        )  # fmt: skip
        shifted_weight = shifted_scaled_int.ShiftedUint8WeightPerTensorFloat
        self.deconv = qnn.QuantConvTranspose2d(8, 4, 2, stride=2, weight_quant=shifted_weight)
        min_max = scaled_int.Int8ActPerTensorFloatMinMaxInit
        self.hardtanh = qnn.QuantHardTanh(act_quant=min_max, min_val=-1.0, max_val=1.0)
        self.sigmoid, self.tanh = qnn.QuantSigmoid(bit_width=4), qnn.QuantTanh(bit_width=4)
        self.shifted = qnn.QuantIdentity(act_quant=shifted_scaled_int.ShiftedUint8ActPerTensorFloat)
        self.binary = qnn.QuantIdentity(act_quant=binary.SignedBinaryActPerTensorFloat)
        self.ternary = qnn.QuantIdentity(act_quant=ternary.SignedTernaryActPerTensorFloat)
        self.pre_pool = qnn.QuantIdentity(return_quant_tensor=True)
        self.avg_pool = qnn.QuantAvgPool2d(2, trunc_quant=scaled_int.TruncTo8bit, return_quant_tensor=True)
        self.upsample = qnn.QuantUpsample(scale_factor=2, return_quant_tensor=True)
        self.dropout = qnn.QuantDropout(0.1, return_quant_tensor=True)
        self.adaptive = qnn.QuantAdaptiveAvgPool2d((4, 4), return_quant_tensor=True)
        self.cat = qnn.QuantCat(return_quant_tensor=True)
        self.conv1d = qnn.QuantConv1d(8, 4, 3)
        self.fc_binary = qnn.QuantLinear(4 * 14, 6, weight_quant=binary.SignedBinaryWeightPerTensorFloat)
        self.fc_ternary = qnn.QuantLinear(
            6, 3, weight_quant=ternary.SignedTernaryWeightPerTensorFloat,
            bias_quant=scaled_int.Int8BiasPerTensorFloatInternalScaling,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = self.inp(x)
        y = self.max_pool(self.relu(self.bn(self.conv(q))))
        y = self.add(y, self.conv_fixed(y))
        t = self.deconv(y)
        t = self.hardtanh(t) + self.sigmoid(t) + self.tanh(t)
        t = self.shifted(t) + self.binary(t) + self.ternary(t)
        t = self.adaptive(self.dropout(self.upsample(self.avg_pool(self.pre_pool(t)))))
        t = self.cat([t, t], dim=1)
        t = self.conv1d(t.value.reshape(t.value.shape[0], 8, 16))
        return self.fc_ternary(self.fc_binary(t.reshape(t.shape[0], -1)))


def test_every_layer_kind_and_quantizer_family_traces_into_one_graph() -> None:
    torch.manual_seed(0)
    model = EveryLayer()
    x = torch.randn(2, 3, 16, 16)
    model(x)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(model)(x)
        reasons = [b.reason for b in explanation.break_reasons]
        assert explanation.graph_break_count == 0, f"{mode}: {reasons}"
        assert explanation.graph_count == 1, mode


# --------------------------------------------------------------------------- compiled == eager


def _step(
    fn: Callable[[torch.Tensor], torch.Tensor], model: nn.Module, x: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and parameter gradients of one training step (no gradient: zeros)."""
    out = fn(x)
    F.cross_entropy(out, target).backward()
    grads = {
        n: torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()
    }
    model.zero_grad(set_to_none=True)
    return out.detach(), grads


def _assert_same(got: tuple, want: tuple) -> None:
    out, grads = got
    want_out, want_grads = want
    torch.testing.assert_close(out, want_out, rtol=1e-5, atol=1e-6)
    assert grads.keys() == want_grads.keys()
    assert any(bool(g.abs().sum() > 0) for g in grads.values())
    for name in grads:
        torch.testing.assert_close(grads[name], want_grads[name], rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("phase", ["collect", "learned"])
def test_compiled_training_step_and_eval_match_eager(phase: str) -> None:
    torch.manual_seed(0)
    eager = SmallNet(collect_stats_steps=300 if phase == "collect" else 2)
    x, target = torch.randn(4, 2, 6, 6), torch.randint(0, 5, (4,))
    if phase == "learned":
        _finish_collection(eager, x)
    twin = copy.deepcopy(eager)
    torch._dynamo.reset()
    compiled = torch.compile(twin, fullgraph=True)

    eager.train()
    twin.train()
    _assert_same(_step(compiled, twin, x, target), _step(eager, eager, x, target))
    # the statistics and counters moved the same way
    for (name, a), b in zip(eager.state_dict().items(), twin.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)

    eager.eval()
    twin.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), eager(x), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- BREVITAS_JIT=1


def test_brevitas_jit_gives_the_outputs_and_gradients_of_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    eager = SmallNet(collect_stats_steps=2)
    x, target = torch.randn(4, 2, 6, 6), torch.randint(0, 5, (4,))
    _finish_collection(eager, x)
    jit = copy.deepcopy(eager)
    torch._dynamo.reset()

    monkeypatch.setenv("BREVITAS_JIT", "1")
    got = _step(jit, jit, x, target)
    compiled = [name for name, m in jit.named_modules() if "_jit_tensor_quant" in m.__dict__]
    assert compiled  # the proxies did run their compiled tensor_quant
    monkeypatch.delenv("BREVITAS_JIT")
    want = _step(eager, eager, x, target)
    _assert_same(got, want)
    # the values are identical; so are the gradients of weights and biases (elementwise). A learned
    # scale's gradient is a sum over the tensor, which compiled code may add up in another order
    assert torch.equal(got[0], want[0])
    for name, grad in got[1].items():
        if not name.endswith("scaling_impl.value"):
            assert torch.equal(grad, want[1][name]), name
    assert jit.state_dict().keys() == eager.state_dict().keys()  # compilation left the module tree alone
