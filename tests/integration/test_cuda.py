"""The library on a device: training, inference, checkpoints, compilation, export and quantizers.

Every test takes the ``device`` fixture (CPU always, CUDA too when a GPU is
present) and compares what runs there with the same model on the CPU.

Why the comparisons can be tight: the network here restricts every scale to a
power of two (4-bit weights learned from their statistics, 8-bit activations
collected for two steps, then learned) and has no float biases. Its
activations and weights are then integers times powers of two, so every
product and every partial sum of a convolution or a matrix product is exact
in float32 whatever the summation order: the CPU and a GPU produce the same
forward values, and a single quantization step flipped by a rounding
difference anywhere in the network would show far above the tolerance
(``1e-5`` of the largest output). Gradients are sums in a kernel-dependent
order, so they are compared to a relative ``1e-4``. On CUDA these tests turn
TF32 off and leave cuDNN out (``exact_kernels``): TF32 rounds the operands,
and cuDNN's FFT or Winograd convolutions are not exact on integer grids.
The individual quantizers (float scales included) are compared elementwise.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_compile import W4, _finish_collection, _step
from torch import nn

import brevitas.export as bx
from brevitas.inject.enum import RestrictValueType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU
from brevitas.quant.binary import SignedBinaryActPerTensorFloat, SignedBinaryWeightPerTensorFloat
from brevitas.quant.fixed_point import Int8WeightPerTensorFixedPoint
from brevitas.quant.scaled_int import Int8ActPerTensorFloatMinMaxInit, Int8WeightPerChannelFloat, Uint8ActPerTensorFloat
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat
from brevitas.quant.ternary import SignedTernaryActPerTensorFloat, SignedTernaryWeightPerTensorFloat
from brevitas.quant_tensor import QuantTensor

POT = RestrictValueType.POWER_OF_TWO
SHAPE = (8, 3, 16, 16)
STEPS = 5
COLLECT_STEPS = 2


class PotLeNet(nn.Module):
    """A small LeNet: 4-bit weights (learned from stats), 8-bit activations, power-of-two scales, no biases."""

    def __init__(self, collect_stats_steps: int = COLLECT_STEPS) -> None:
        super().__init__()
        act = {"bit_width": 8, "collect_stats_steps": collect_stats_steps, "restrict_scaling_type": POT}
        weight = {**W4, "weight_restrict_scaling_type": POT, "bias": False}
        self.quant_inp = QuantIdentity(**act)
        self.conv1, self.relu1 = QuantConv2d(3, 6, 3, **weight), QuantReLU(**act)
        self.conv2, self.relu2 = QuantConv2d(6, 12, 3, **weight), QuantReLU(**act)
        self.fc1, self.relu3 = QuantLinear(12 * 2 * 2, 32, **weight), QuantReLU(**act)
        self.fc2 = QuantLinear(32, 10, **weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.quant_inp(x)
        out = F.max_pool2d(self.relu1(self.conv1(out)), 2)
        out = F.max_pool2d(self.relu2(self.conv2(out)), 2)
        out = self.relu3(self.fc1(out.reshape(out.shape[0], -1)))
        return self.fc2(out)


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def exact_kernels() -> Iterator[None]:
    """Full float32 matrix products and no cuDNN (exact on integer grids); no effect on the CPU."""
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        with torch.backends.cudnn.flags(enabled=False):
            yield
    finally:
        torch.set_float32_matmul_precision(precision)


def _data(seed: int, shape: tuple[int, ...] = SHAPE, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch made on the CPU (the same numbers for every device)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen), torch.randint(0, classes, (shape[0],), generator=gen)


def _assert_near(got: torch.Tensor, want: torch.Tensor, rel: float, msg: str = "") -> None:
    """``got`` (any device) equals ``want`` to ``rel`` of ``want``'s largest magnitude, and relatively."""
    got, want = got.detach().cpu(), want.detach().cpu()
    atol = rel * float(want.abs().max()) + 1e-12
    torch.testing.assert_close(got, want, rtol=rel, atol=atol, msg=lambda m: f"{msg}: {m}")


def _assert_on(model: nn.Module, device: torch.device) -> None:
    """Every parameter, gradient and buffer of ``model`` lives on ``device``."""
    for name, p in model.named_parameters():
        assert p.device.type == device.type, name
        assert p.grad is None or p.grad.device.type == device.type, f"{name}.grad"
    for name, b in model.named_buffers():
        assert b.device.type == device.type, name


def _learned_scales(model: nn.Module) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if n.endswith("scaling_impl.value")}


def _on_grid(q: QuantTensor, low: float, high: float) -> None:
    """``q`` is integer codes times its scale, within ``[low, high]`` codes."""
    codes = (q.value / q.scale + q.zero_point).detach().cpu()
    torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-4)
    assert float(codes.min()) >= low - 1e-4 and float(codes.max()) <= high + 1e-4


# --------------------------------------------------------------------------- (a) training


def test_training_on_the_device_follows_the_cpu_step_by_step(device: torch.device, exact_kernels: None) -> None:
    torch.manual_seed(0)
    model = PotLeNet()
    reference = copy.deepcopy(model)  # the CPU twin, identical weights
    initial = copy.deepcopy(reference.state_dict())
    model.to(device)
    _assert_on(model, device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.05)
    model.train()
    reference.train()
    learned_scale_grads = []
    for step in range(STEPS):
        x, target = _data(step)
        out = model(x.to(device))
        ref_out = reference(x)
        assert out.device.type == device.type
        _assert_near(out, ref_out, 1e-5, f"step {step} output")
        loss = F.cross_entropy(out, target.to(device))
        ref_loss = F.cross_entropy(ref_out, target)
        assert torch.isfinite(loss), step
        _assert_near(loss, ref_loss, 1e-5, f"step {step} loss")
        opt.zero_grad(set_to_none=True)
        ref_opt.zero_grad(set_to_none=True)
        loss.backward()
        ref_loss.backward()
        ref_params = dict(reference.named_parameters())
        for name, p in model.named_parameters():
            ref_grad = ref_params[name].grad
            assert (p.grad is None) == (ref_grad is None), f"step {step} {name}.grad"
            if p.grad is not None:
                _assert_near(p.grad, ref_grad, 1e-4, f"step {step} {name}.grad")
        learned_scale_grads.append(
            {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in _learned_scales(model).items()}
        )
        opt.step()
        ref_opt.step()
        _assert_on(model, device)
        ref_state = reference.state_dict()
        for name, got in model.state_dict().items():
            _assert_near(got, ref_state[name], 1e-5, f"step {step} state {name}")
    # activation statistics were collected for two steps (learned scales unused), then learned;
    # the weight scales start from the weights' statistics and learn from the first step
    act_scales = [n for n in learned_scale_grads[0] if ".act_quant." in n]
    weight_scales = [n for n in learned_scale_grads[0] if ".weight_quant." in n]
    assert len(act_scales) == 4 and len(weight_scales) == 4
    for step, grads in enumerate(learned_scale_grads):
        assert all(grads[n] for n in weight_scales), step
        assert [grads[n] for n in act_scales] == [step >= COLLECT_STEPS] * 4, step
    # the network did train: every weight and every learned scale moved
    for name, p in model.named_parameters():
        assert not torch.equal(p.detach().cpu(), initial[name]), name


def _trained_on(device: torch.device) -> PotLeNet:
    """A PotLeNet past its statistics collection (three training steps on ``device``)."""
    torch.manual_seed(0)
    model = PotLeNet().to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(COLLECT_STEPS + 1):
        x, target = _data(step)
        opt.zero_grad()
        F.cross_entropy(model(x.to(device)), target.to(device)).backward()
        opt.step()
    model.train()
    return model


# --------------------------------------------------------------------------- (b) inference


def test_eval_forward_on_the_device_equals_the_cpu(device: torch.device, exact_kernels: None) -> None:
    model = _trained_on(device)
    reference = copy.deepcopy(model).cpu()
    model.eval()
    reference.eval()
    x, _ = _data(100)
    with torch.no_grad():
        out = model(x.to(device))
        want = reference(x)
    assert out.device.type == device.type
    _assert_near(out, want, 1e-5, "eval output")
    # what makes the tolerance tight: the forward is exact, float64 gives the float32 numbers bit for bit
    with torch.no_grad():
        assert torch.equal(copy.deepcopy(reference).double()(x.double()), want.double())
    # eval is stateless: a second pass gives the same numbers, and nothing moved off the device
    with torch.no_grad():
        assert torch.equal(model(x.to(device)), out)
    _assert_on(model, device)


# --------------------------------------------------------------------------- (c) checkpoints


def test_a_state_dict_saved_on_the_device_loads_on_the_cpu(device: torch.device, exact_kernels: None) -> None:
    model = _trained_on(device).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, map_location="cpu", weights_only=True)
    assert all(t.device.type == "cpu" for t in state.values())
    restored = PotLeNet()
    restored.load_state_dict(state)
    restored.eval()
    x, _ = _data(101)
    with torch.no_grad():
        _assert_near(model(x.to(device)), restored(x), 1e-5, "restored eval output")
    # and the restored model is past its collection too: training mode uses the learned scales
    restored.train()
    restored(x).sum().backward()
    assert all(p.grad is not None for p in _learned_scales(restored).values())


# --------------------------------------------------------------------------- (d) torch.compile


def _compile_backend(device: torch.device) -> str:
    """Inductor on a GPU (Triton kernels); on the CPU the graph capture only (test_compile runs inductor there)."""
    return "inductor" if device.type == "cuda" else "aot_eager"


def _can_compile(device: torch.device) -> bool:
    if not hasattr(torch, "compile") or not torch._dynamo.is_dynamo_supported():
        return False
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    return True


def test_compiled_training_step_on_the_device_matches_eager(device: torch.device, exact_kernels: None) -> None:
    if not _can_compile(device):
        pytest.skip(f"torch.compile is not available for {device.type}")
    torch.manual_seed(0)
    eager = PotLeNet().to(device)
    x, target = (t.to(device) for t in _data(7))
    _finish_collection(eager, x)
    twin = copy.deepcopy(eager)
    torch._dynamo.reset()
    compiled = torch.compile(twin, backend=_compile_backend(device), fullgraph=True)
    eager.train()
    twin.train()
    out, grads = _step(compiled, twin, x, target)
    want_out, want_grads = _step(eager, eager, x, target)
    assert out.device.type == device.type
    _assert_near(out, want_out, 1e-5, "compiled train output")
    assert grads.keys() == want_grads.keys()
    assert all(bool(g.abs().sum() > 0) for g in want_grads.values())
    for name, grad in grads.items():
        assert grad.device.type == device.type, name
        _assert_near(grad, want_grads[name], 1e-4, f"{name}.grad")
    eager.eval()
    twin.eval()
    with torch.no_grad():
        _assert_near(compiled(x), eager(x), 1e-5, "compiled eval output")
    _assert_on(twin, device)
    torch._dynamo.reset()


# --------------------------------------------------------------------------- (e) export


def test_a_model_on_the_device_exports_to_onnx_qcdq(device: torch.device, exact_kernels: None, tmp_path: Path) -> None:
    model = _trained_on(device)  # left in training mode: export runs it as in eval and restores the mode
    x, _ = _data(102, (2, *SHAPE[1:]))
    path = tmp_path / "lenet.onnx"
    artifact = bx.export(model, x.to(device), exporter="onnx-qcdq", path=path)
    assert path.is_file() and path.stat().st_size > 0
    assert model.training and all(m.training for m in model.modules())
    _assert_on(model, device)
    ops = {n.op_type for n in artifact.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops, ops
    other, _ = _data(103, (3, *SHAPE[1:]))  # another batch size: the batch dimension is dynamic
    model.eval()
    with torch.no_grad():
        want = model(other.to(device)).cpu().numpy()
    got = bx.get_exporter("onnx-qcdq").run(str(path), other.to(device), optimize=False)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


# --------------------------------------------------------------------------- (f) quantizers

WEIGHT_QUANTS: list[tuple[type, float, float]] = [  # quantizer, lowest and highest code
    (SignedBinaryWeightPerTensorFloat, -1, 1),
    (SignedTernaryWeightPerTensorFloat, -1, 1),
    (Int8WeightPerTensorFixedPoint, -127, 127),
    (Int8WeightPerChannelFloat, -127, 127),
]
ACT_QUANTS: list[tuple[type, dict[str, Any], float, float, int | None]] = [
    # quantizer, options, lowest and highest code, first training step whose scale learns (None: never)
    (SignedBinaryActPerTensorFloat, {}, -1, 1, 0),
    (SignedTernaryActPerTensorFloat, {}, -1, 1, 0),
    (Int8ActPerTensorFloatMinMaxInit, {"min_val": -1.5, "max_val": 1.5}, -128, 127, 0),
    (Uint8ActPerTensorFloat, {"collect_stats_steps": 1}, 0, 255, 1),  # one step of statistics, then learned
    (ShiftedUint8ActPerTensorFloat, {}, 0, 255, None),  # with a zero point; still collecting statistics
]


def _twins(make: Callable[[], nn.Module], device: torch.device) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    reference = make()
    return copy.deepcopy(reference).to(device), reference


@pytest.mark.parametrize(("quant", "low", "high"), WEIGHT_QUANTS, ids=[q[0].__name__ for q in WEIGHT_QUANTS])
def test_weight_quantizers_on_the_device(
    device: torch.device, exact_kernels: None, quant: type, low: float, high: float
) -> None:
    layer, reference = _twins(lambda: QuantLinear(16, 6, bias=True, weight_quant=quant), device)
    x, _ = _data(5, (4, 16))
    q, ref_q = layer.quant_weight(), reference.quant_weight()
    assert q.value.device.type == device.type and q.scale.device.type == device.type
    _on_grid(q, low, high)
    _assert_near(q.value, ref_q.value, 1e-6, "quantized weight")
    _assert_near(q.scale, ref_q.scale, 1e-6, "scale")
    out, ref_out = layer(x.to(device)), reference(x)
    _assert_near(out, ref_out, 1e-5, "output")
    out.square().sum().backward()
    ref_out.square().sum().backward()
    _assert_on(layer, device)
    ref_params = dict(reference.named_parameters())
    for name, p in layer.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        _assert_near(p.grad, ref_params[name].grad, 1e-4, f"{name}.grad")


@pytest.mark.parametrize(
    ("quant", "kwargs", "low", "high", "learns_from"), ACT_QUANTS, ids=[q[0].__name__ for q in ACT_QUANTS]
)  # fmt: skip
def test_act_quantizers_on_the_device(
    device: torch.device,
    exact_kernels: None,
    quant: type,
    kwargs: dict[str, Any],
    low: float,
    high: float,
    learns_from: int | None,
) -> None:
    layer, reference = _twins(lambda: QuantIdentity(act_quant=quant, return_quant_tensor=True, **kwargs), device)
    weights = torch.linspace(-1.0, 2.0, 64).reshape(4, 16)
    for step in range(2):
        x, _ = _data(10 + step, (4, 16))
        x_dev = x.to(device).requires_grad_(True)
        x.requires_grad_(True)
        q, ref_q = layer(x_dev), reference(x)
        assert isinstance(q, QuantTensor) and q.value.device.type == device.type
        _on_grid(q, low, high)
        _assert_near(q.value, ref_q.value, 1e-6, f"step {step} value")
        _assert_near(q.scale, ref_q.scale, 1e-6, f"step {step} scale")
        (q.value * weights.to(device)).sum().backward()
        (ref_q.value * weights).sum().backward()
        assert x_dev.grad is not None and x_dev.grad.device.type == device.type
        _assert_near(x_dev.grad, x.grad, 1e-6, f"step {step} input grad")
        ref_params = dict(reference.named_parameters())
        for name, p in layer.named_parameters():
            assert (p.grad is None) == (ref_params[name].grad is None), name
            if p.grad is not None:
                _assert_near(p.grad, ref_params[name].grad, 1e-4, f"step {step} {name}.grad")
        learned = [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in _learned_scales(layer).values()]
        assert learned == [learns_from is not None and step >= learns_from], f"step {step}: learned scale grads"
        _assert_on(layer, device)
        layer.zero_grad(set_to_none=True)
        reference.zero_grad(set_to_none=True)


def test_power_of_two_scales_are_exact_on_the_device(device: torch.device) -> None:
    """Fixed-point quantizers must give exact powers of two on every device (the DPU exporter checks it)."""
    from brevitas.export.description import _is_power_of_two
    from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint

    exponents = torch.arange(-24.0, 25.0, device=device)
    for name, values in (("exp2", torch.exp2(exponents)), ("pow", 2.0**exponents)):
        mantissa, exponent = torch.frexp(values.cpu().double())
        assert bool((mantissa == 0.5).all()), f"{name} of integers is not exact on {device}: {values.tolist()}"
        assert torch.equal(exponent - 1, exponents.cpu().to(exponent.dtype))
    for bits in (4, 8):
        act = QuantIdentity(Int8ActPerTensorFixedPoint, bit_width=bits, return_quant_tensor=True).to(device)
        for scale_in in (0.01, 0.3, 7.0):
            out = act(scale_in * torch.randn(64, device=device))
            assert _is_power_of_two(out.scale), (bits, scale_in, out.scale.item())
    assert _is_power_of_two(torch.tensor(0.015625, device=device, dtype=torch.float32))
    assert not _is_power_of_two(torch.tensor(0.015625 * (1 + 2**-20), device=device))
