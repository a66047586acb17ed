"""brevitas.memory.recompute_quantized: same values and gradients, fewer tensors kept for backward."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import brevitas.memory as memory
from brevitas.inject.enum import ScalingImplType
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU

W4 = {"weight_bit_width": 4, "weight_scaling_impl_type": ScalingImplType.PARAMETER_FROM_STATS}


class Net(nn.Module):
    """Input quantizer, two conv blocks with max-pooling (which keeps its quantized input), a classifier."""

    def __init__(self, collect_stats_steps: int) -> None:
        super().__init__()
        act = {"bit_width": 8, "collect_stats_steps": collect_stats_steps}
        self.quant_inp = QuantIdentity(**act)
        self.conv1, self.relu1 = QuantConv2d(3, 8, 3, padding=1, **W4), QuantReLU(**act)
        self.conv2, self.relu2 = QuantConv2d(8, 16, 3, padding=1, **W4), QuantReLU(**act)
        self.fc = QuantLinear(16 * 8 * 8, 10, bias=True, **W4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.max_pool2d(self.relu1(self.conv1(self.quant_inp(x))), 2)
        out = F.max_pool2d(self.relu2(self.conv2(out)), 2)
        return self.fc(out.reshape(out.shape[0], -1))


def _step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recompute: bool) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    if recompute:
        with memory.recompute_quantized():
            out = model(x)
            loss = F.cross_entropy(out, y)
    else:
        out = model(x)
        loss = F.cross_entropy(out, y)
    loss.backward()  # outside the context: the recipes were recorded when the tensors were saved
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("phase", ["collect", "learned"])
def test_same_outputs_and_gradients(phase: str, device) -> None:
    torch.manual_seed(0)
    model = Net(collect_stats_steps=1000 if phase == "collect" else 2).to(device)
    x, y = torch.randn(16, 3, 32, 32, device=device), torch.randint(0, 10, (16,), device=device)
    if phase == "learned":
        for _ in range(3):
            model(x)
        model.train()
    twin = copy.deepcopy(model)
    for _ in range(2):  # two steps: the second starts from the (identical) state the first left
        out, grads = _step(model, x, y, recompute=True)
        ref_out, ref_grads = _step(twin, x, y, recompute=False)
        assert torch.equal(out, ref_out)
        assert grads.keys() == ref_grads.keys() and grads
        for name, g in grads.items():
            # weights and inputs are recomputed bit for bit; scale gradients are summed in chunks
            torch.testing.assert_close(g, ref_grads[name], rtol=1e-5, atol=1e-6 * float(ref_grads[name].abs().max()))
        for p, q in zip(model.parameters(), twin.parameters()):
            if p.grad is not None:
                with torch.no_grad():
                    p.sub_(0.01 * p.grad)
                    q.sub_(0.01 * q.grad)


def _learned_net(seed: int, batch: int = 8) -> tuple[Net, torch.Tensor, torch.Tensor]:
    """A Net past its statistics phase (learned scales), with a batch."""
    torch.manual_seed(seed)
    model = Net(collect_stats_steps=2)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    for _ in range(3):
        model(x)
    return model.train(), x, y


def test_quantized_outputs_are_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x, y = _learned_net(1)
    packed: list[tuple[int, ...]] = []
    real_pack = memory._pack

    def counting_pack(t: torch.Tensor):
        out = real_pack(t)
        if isinstance(out, memory._Recipe):
            packed.append(tuple(t.shape))
        return out

    monkeypatch.setattr(memory, "_pack", counting_pack)
    _step(model, x, y, recompute=True)
    # the input quantizer's output (kept by conv1), both ReLU quantizers' outputs (kept by max-pooling)
    assert (8, 3, 32, 32) in packed and (8, 8, 32, 32) in packed and (8, 16, 16, 16) in packed
    packed.clear()
    _step(model, x, y, recompute=False)
    assert not packed


def _peak_growth(model: nn.Module, x: torch.Tensor, y: torch.Tensor, recompute: bool) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        _step(model, x, y, recompute)
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def test_peak_memory_of_a_step_drops() -> None:
    torch.manual_seed(2)
    model = Net(collect_stats_steps=2)
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    for _ in range(3):
        _step(model, x, y, recompute=False)
    plain = _peak_growth(model, x, y, recompute=False)
    lean = _peak_growth(model, x, y, recompute=True)
    assert lean < 0.85 * plain, (lean, plain)


def test_a_quantizer_input_changed_before_backward_is_refused() -> None:
    quant = QuantIdentity(return_quant_tensor=False)
    x = torch.randn(4, 8, requires_grad=True)
    base = x * 2  # the quantizer's input, changed in place below
    with memory.recompute_quantized():
        out = quant(base) ** 2  # pow keeps its input: the quantized tensor, recomputed in backward
    with torch.no_grad():
        base.add_(1.0)
    with pytest.raises(RuntimeError, match="modified in place"):
        out.sum().backward()


def test_inactive_outside_and_under_compile() -> None:
    assert not memory.recomputing()
    with memory.recompute_quantized():
        assert memory.recomputing()
        with memory.recompute_quantized():
            assert memory.recomputing()
        assert memory.recomputing()
    assert not memory.recomputing()

    seen: list[bool] = []

    def probe(t: torch.Tensor) -> torch.Tensor:
        seen.append(memory.recomputing())
        return t * 2

    compiled = torch.compile(probe, backend="eager")
    with memory.recompute_quantized():
        compiled(torch.ones(2))
    assert seen == [False]


def test_compiled_model_inside_the_context_matches_eager() -> None:
    model, x, y = _learned_net(4)
    twin = copy.deepcopy(model)
    compiled = torch.compile(twin, backend="aot_eager")
    out, grads = _step(compiled, x, y, recompute=True)
    ref_out, ref_grads = _step(model, x, y, recompute=False)
    torch.testing.assert_close(out, ref_out)
    for name, g in ref_grads.items():
        got = grads.get(name) if name in grads else grads.get(f"_orig_mod.{name}")
        torch.testing.assert_close(got, g, rtol=1e-4, atol=1e-6 * float(g.abs().max()))
