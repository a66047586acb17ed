"""The input-scale shortcut of quantized convolutions (brevitas.function.adjoint) gives autograd's gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import brevitas.function.ste as ste
from brevitas.function.adjoint import scale_derivative, scale_tangent, with_input_scale_grad
from brevitas.function.ste import fake_quant_ste
from brevitas.nn import QuantConv1d, QuantConv2d, QuantConv3d, QuantIdentity


@pytest.fixture
def no_shortcut(monkeypatch: pytest.MonkeyPatch):
    """A context in which fake_quant_ste tags nothing (the plain autograd path)."""

    class _Off:
        def __enter__(self) -> None:
            monkeypatch.setattr(ste, "tag_scale_tangent", lambda *args: None)

        def __exit__(self, *exc: object) -> None:
            monkeypatch.undo()

    return _Off


def _grads(
    model: nn.Module, x: torch.Tensor, inplace_relu: bool = False
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(x)
    if inplace_relu:
        out = F.relu(out, inplace=True)
    (out * torch.linspace(-1, 2, out.numel(), device=out.device).reshape(out.shape)).square().sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


CONVS = [
    (QuantConv1d, {"kernel_size": 3}, (4, 3, 20)),
    (QuantConv2d, {"kernel_size": 5}, (4, 3, 16, 16)),
    (QuantConv2d, {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 1}, (2, 4, 15, 15)),
    (QuantConv2d, {"kernel_size": 3, "padding": 2, "dilation": 2, "groups": 2}, (2, 4, 12, 12)),
    (QuantConv2d, {"kernel_size": 3, "padding": 1, "padding_mode": "reflect"}, (2, 3, 9, 9)),
    (QuantConv2d, {"kernel_size": 3, "padding": 1, "padding_mode": "circular", "bias": False}, (2, 3, 9, 9)),
    (QuantConv3d, {"kernel_size": 2}, (2, 2, 5, 5, 5)),
]


@pytest.mark.parametrize("conv_cls, conv_kwargs, shape", CONVS)
def test_conv_after_input_quantizer_matches_autograd(conv_cls, conv_kwargs, shape, device, no_shortcut) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        QuantIdentity(bit_width=4, collect_stats_steps=1),
        conv_cls(shape[1], 6, weight_bit_width=4, **conv_kwargs),
    ).to(device)
    x = 3 * torch.randn(shape, device=device)  # 4 bits: many values saturate (the "outside" derivative)
    model(x)  # statistics collected: the scale is a learned parameter from now on
    out, grads = _grads(model, x)
    with no_shortcut():
        ref_out, ref_grads = _grads(model, x)
    assert torch.equal(out, ref_out)
    assert grads.keys() == ref_grads.keys()
    scale_name = next(n for n in grads if n.startswith("0."))
    assert grads[scale_name].abs().item() > 0
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-5 * ref_grads[name].abs().max().item())


def test_shortcut_is_taken_and_skips_the_input_gradient(device) -> None:
    quant, conv = QuantIdentity(bit_width=8, collect_stats_steps=1).to(device), QuantConv2d(3, 4, 3).to(device)
    x = torch.randn(2, 3, 8, 8, device=device)
    quant(x)
    y = quant(x)
    assert scale_tangent(y) is not None
    out = conv(y)
    assert type(out.grad_fn).__name__ == "_InputScaleGradFnBackward"
    conv_node = out.grad_fn.next_functions[0][0]
    assert type(conv_node).__name__ == "ConvolutionBackward0"
    assert conv_node.next_functions[0][0] is None  # no gradient to the convolution's input is computed


def test_other_uses_of_the_quantized_input_add_up(device, no_shortcut) -> None:
    torch.manual_seed(1)
    quant = QuantIdentity(bit_width=6, collect_stats_steps=1).to(device)
    conv = QuantConv2d(3, 3, 3, padding=1).to(device)
    x = 2 * torch.randn(2, 3, 7, 7, device=device)
    quant(x)

    def run() -> torch.Tensor:
        quant.zero_grad(set_to_none=True)
        y = quant(x)
        loss = (conv(y) * y).square().sum()  # y also used directly: two gradient paths to the scale
        loss.backward()
        return next(quant.parameters()).grad.clone()

    got = run()
    with no_shortcut():
        ref = run()
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=0)


def test_in_place_change_after_quantization_falls_back(device, no_shortcut) -> None:
    quant, conv = QuantIdentity(bit_width=8, collect_stats_steps=1).to(device), QuantConv2d(3, 2, 3).to(device)
    x = torch.randn(2, 3, 6, 6, device=device)
    quant(x)

    def run() -> torch.Tensor:
        quant.zero_grad(set_to_none=True)
        y = quant(x)
        y.mul_(3.0).relu_()  # changes the derivative to the scale: the tag must not be used
        assert scale_tangent(y) is None
        conv(y).sum().backward()
        return next(quant.parameters()).grad.clone()

    got = run()
    with no_shortcut():
        ref = run()
    torch.testing.assert_close(got, ref)


def test_in_place_ops_after_the_conv_stay_allowed(device, no_shortcut) -> None:
    torch.manual_seed(2)
    model = nn.Sequential(QuantIdentity(bit_width=8, collect_stats_steps=1), QuantConv2d(3, 5, 3)).to(device)
    x = torch.randn(3, 3, 8, 8, device=device)
    model(x)
    out, grads = _grads(model, x, inplace_relu=True)
    with no_shortcut():
        ref_out, ref_grads = _grads(model, x, inplace_relu=True)
    assert torch.equal(out, ref_out)
    for name, g in grads.items():
        torch.testing.assert_close(g, ref_grads[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("case", ["x_needs_grad", "per_channel", "no_grad", "scale_fixed", "learned_zero_point"])
def test_not_tagged_when_it_does_not_apply(case: str, device) -> None:
    x = torch.randn(2, 3, 4, 4, device=device)
    scale = torch.tensor(0.1, device=device, requires_grad=True)
    zero_point = None
    if case == "x_needs_grad":
        x.requires_grad_()
    elif case == "per_channel":
        scale = torch.full((1, 3, 1, 1), 0.1, device=device, requires_grad=True)
    elif case == "scale_fixed":
        scale = scale.detach()
        x.requires_grad_()
    elif case == "learned_zero_point":
        zero_point = torch.tensor(2.0, device=device, requires_grad=True)
    with torch.set_grad_enabled(case != "no_grad"):
        y = fake_quant_ste(x, scale, zero_point, -128.0, 127.0)
        assert scale_tangent(y) is None


def test_scale_derivative_matches_the_fused_op(device) -> None:
    x = torch.tensor([-9.0, -0.26, 0.0, 0.74, 1.25, 3.9, float("inf"), float("-inf")], device=device)
    for zero_point in (None, torch.tensor(1.0, device=device)):
        scale = torch.tensor(0.5, device=device, requires_grad=True)
        qmin, qmax = torch.tensor(-4.0, device=device), torch.tensor(3.0, device=device)
        y = ste.FakeQuantSteFn.apply(x, scale, zero_point, qmin, qmax)
        weights = torch.arange(1.0, x.numel() + 1, device=device)
        (y * weights).sum().backward()
        d = scale_derivative(x, scale.detach(), zero_point, qmin, qmax)
        torch.testing.assert_close((d * weights).sum(), scale.grad)
        z = 0.0 if zero_point is None else 1.0
        assert d[0].item() == -4.0 - z and d[-2].item() == 3.0 - z and d[-1].item() == -4.0 - z


def test_with_input_scale_grad_by_hand(device) -> None:
    x = torch.randn(2, 3, 6, 6, device=device)
    w = torch.randn(4, 3, 3, 3, device=device)
    s = torch.tensor(0.05, device=device, requires_grad=True)
    F.conv2d(fake_quant_ste(x, s, None, -8.0, 7.0), w).sum().backward()
    ref = s.grad.clone()
    s.grad = None
    y = fake_quant_ste(x, s, None, -8.0, 7.0)
    out = with_input_scale_grad(F.conv2d(y.detach(), w), scale_tangent(y), lambda d: F.conv2d(d, w))
    out.sum().backward()
    torch.testing.assert_close(s.grad, ref, rtol=1e-4, atol=1e-6)


def test_a_second_derivative_through_the_shortcut_is_refused(device) -> None:
    quant, conv = QuantIdentity(bit_width=8, collect_stats_steps=1).to(device), QuantConv2d(3, 2, 3).to(device)
    x = torch.randn(2, 3, 6, 6, device=device)
    quant(x)
    scale = next(quant.parameters())
    (grad,) = torch.autograd.grad(conv(quant(x)).square().sum(), scale, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        grad.sum().backward()


def test_a_backward_after_the_quantized_data_changed_in_place_is_refused(device) -> None:
    quant, conv = QuantIdentity(bit_width=8, collect_stats_steps=1).to(device), QuantConv2d(3, 2, 3).to(device)
    x = torch.randn(2, 3, 6, 6, device=device)
    quant(x)
    out = conv(quant(x))
    x.mul_(2.0)  # e.g. an input buffer refilled before backward: the saved input is stale
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        out.sum().backward()


def test_a_compiled_convolution_fed_by_an_eager_quantizer(device, no_shortcut) -> None:
    torch.manual_seed(3)
    quant, conv = QuantIdentity(bit_width=8, collect_stats_steps=1).to(device), QuantConv2d(3, 4, 3).to(device)
    x = torch.randn(2, 3, 8, 8, device=device)
    quant(x)
    compiled = torch.compile(conv, backend="aot_eager", fullgraph=True)

    def run(layer: nn.Module) -> torch.Tensor:
        quant.zero_grad(set_to_none=True)
        layer(quant(x)).square().sum().backward()
        return next(quant.parameters()).grad.clone()

    got = run(compiled)
    with no_shortcut():
        ref = run(conv)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)
