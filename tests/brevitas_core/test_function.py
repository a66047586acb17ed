"""Tests of brevitas.function: integer ranges, clamps and straight-through estimators."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from brevitas.errors import ConfigError
from brevitas.function import (
    abs_binary_sign_grad,
    binary_sign_ste,
    ceil_ste,
    dpu_round,
    dpu_round_ste,
    fake_quant_ste,
    floor_ste,
    identity,
    make_ste,
    max_int,
    min_int,
    round_ste,
    round_to_zero_ste,
    scalar_clamp_min_ste,
    scalar_clamp_ste,
    tensor_clamp,
    tensor_clamp_ste,
    ternary_sign_ste,
)
from brevitas.function.ste import _SMALL_NUMEL

SETTINGS = settings(max_examples=60, deadline=None)


# --------------------------------------------------------------------------- ops


@SETTINGS
@given(bit_width=st.integers(1, 16), signed=st.booleans(), narrow=st.booleans())
def test_int_range_matches_twos_complement_table(bit_width: int, signed: bool, narrow: bool) -> None:
    b = torch.tensor(float(bit_width), dtype=torch.float64)
    if signed:
        lo, hi = -(2 ** (bit_width - 1)) + int(narrow), 2 ** (bit_width - 1) - 1
    else:
        lo, hi = 0, 2**bit_width - 1 - int(narrow)
    got_lo, got_hi = min_int(signed, narrow, b), max_int(signed, narrow, b)
    assert got_lo.dtype == torch.float64 and got_hi.dtype == torch.float64
    assert (int(got_lo), int(got_hi)) == (lo, hi)


def test_int_range_keeps_gradient_to_bit_width() -> None:
    b = torch.tensor(4.0, requires_grad=True)
    max_int(True, False, b).backward()
    assert b.grad is not None and float(b.grad) == pytest.approx(8.0 * torch.log(torch.tensor(2.0)).item())


def test_tensor_clamp_blocks_gradient_outside_and_feeds_bounds() -> None:
    x = torch.tensor([-3.0, -1.0, 0.5, 1.0, 4.0], requires_grad=True)
    lo = torch.tensor(-1.0, requires_grad=True)
    hi = torch.tensor(1.0, requires_grad=True)
    y = tensor_clamp(x, lo, hi)
    assert torch.equal(y.detach(), torch.tensor([-1.0, -1.0, 0.5, 1.0, 1.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([0.0, 1.0, 1.0, 1.0, 0.0]))
    assert float(lo.grad) == 1.0 and float(hi.grad) == 1.0


def test_tensor_clamp_broadcasts_per_channel_bounds() -> None:
    x = torch.arange(-3.0, 3.0).reshape(2, 3)
    lo = torch.tensor([[-1.0], [0.0]])
    hi = torch.tensor([[0.0], [1.0]])
    assert torch.equal(tensor_clamp(x, lo, hi), torch.tensor([[-1.0, -1.0, -1.0], [0.0, 1.0, 1.0]]))


def test_identity_returns_input() -> None:
    x = torch.randn(3)
    assert identity(x) is x


# --------------------------------------------------------------------------- unary STEs

UNARY = [
    (round_ste, torch.round),
    (ceil_ste, torch.ceil),
    (floor_ste, torch.floor),
    (round_to_zero_ste, torch.trunc),
    (dpu_round_ste, dpu_round),
    (ternary_sign_ste, torch.sign),
]


@pytest.mark.parametrize(("ste", "reference"), UNARY, ids=lambda v: getattr(v, "__name__", ""))
def test_unary_ste_forward_matches_and_gradient_is_identity(ste, reference) -> None:
    x = (torch.randn(64, dtype=torch.float64) * 4).requires_grad_()
    y = ste(x)
    assert torch.equal(y.detach(), reference(x.detach()))
    g = torch.randn(64, dtype=torch.float64)
    y.backward(g)
    assert torch.equal(x.grad, g)


def test_round_ste_is_half_to_even() -> None:
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5])
    assert torch.equal(round_ste(x), torch.tensor([-2.0, -2.0, -0.0, 0.0, 2.0, 2.0]))


def test_dpu_round_is_half_up_without_float_add_error() -> None:
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -1.4, 1.6])
    assert torch.equal(dpu_round_ste(x), torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -1.0, 2.0]))
    just_below_half = torch.nextafter(torch.tensor(0.5), torch.tensor(0.0))
    assert float(dpu_round(just_below_half)) == 0.0  # floor(x + 0.5) in float32 would give 1


@SETTINGS
@given(seed=st.integers(0, 2**31 - 1))
def test_dpu_round_equals_floor_x_plus_half(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    # halves and random values; float64 makes x + 0.5 exact for these magnitudes
    x = torch.cat([torch.randint(-40, 40, (32,), generator=gen) / 2.0, torch.randn(32, generator=gen) * 10]).double()
    assert torch.equal(dpu_round(x), torch.floor(x + 0.5))


def test_binary_sign_maps_zero_to_plus_one_with_identity_gradient() -> None:
    x = torch.tensor([-2.0, -0.0, 0.0, 3.0], requires_grad=True)
    y = binary_sign_ste(x)
    assert torch.equal(y.detach(), torch.tensor([-1.0, 1.0, 1.0, 1.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(4))


def test_ternary_sign_maps_zero_to_zero() -> None:
    assert torch.equal(ternary_sign_ste(torch.tensor([-2.0, 0.0, 3.0])), torch.tensor([-1.0, 0.0, 1.0]))


def test_make_ste_builds_a_named_autograd_function() -> None:
    half = make_ste(lambda t: torch.round(2 * t) / 2, "HalfStepSte")
    x = torch.tensor([0.2, 0.8, 1.3], requires_grad=True)
    y = half(x)
    assert torch.equal(y.detach(), torch.tensor([0.0, 1.0, 1.5]))
    assert type(y.grad_fn).__name__.startswith("HalfStepSte")
    assert half.__name__ == "HalfStepSte" and issubclass(half.function, torch.autograd.Function)
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))


@pytest.mark.parametrize(("fn", "name"), [(3, "Ok"), (torch.round, "not an identifier"), (torch.round, 5)])
def test_make_ste_rejects_bad_arguments(fn, name) -> None:
    with pytest.raises(ConfigError, match="make_ste"):
        make_ste(fn, name)


# --------------------------------------------------------------------------- clamps and abs


def test_tensor_clamp_ste_passes_gradient_everywhere_and_not_to_bounds() -> None:
    x = torch.tensor([-3.0, 0.5, 4.0], requires_grad=True)
    lo = torch.tensor(-1.0, requires_grad=True)
    hi = torch.tensor(1.0, requires_grad=True)
    y = tensor_clamp_ste(x, lo, hi)
    assert torch.equal(y.detach(), torch.tensor([-1.0, 0.5, 1.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))
    assert lo.grad is None and hi.grad is None


def test_tensor_clamp_ste_folds_gradient_when_bounds_broadcast_x() -> None:
    x = torch.tensor([-3.0, 0.5, 4.0], requires_grad=True)
    y = tensor_clamp_ste(x, torch.tensor([[-1.0], [-2.0]]), torch.tensor([[1.0], [2.0]]))
    assert y.shape == (2, 3)
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 2.0))


def test_scalar_clamps_have_identity_gradient() -> None:
    x = torch.tensor([-3.0, 0.5, 4.0], requires_grad=True)
    y = scalar_clamp_ste(x, -1.0, 1.0) + scalar_clamp_min_ste(x, 0.0)
    assert torch.equal(y.detach(), torch.tensor([-1.0, 1.0, 5.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.full((3,), 2.0))


def test_abs_binary_sign_grad_has_gradient_one_at_zero() -> None:
    x = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    y = abs_binary_sign_grad(x)
    assert torch.equal(y.detach(), torch.tensor([2.0, 0.0, 3.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.tensor([-1.0, 1.0, 1.0]))


# --------------------------------------------------------------------------- fused fake quantization


def _unfused(x, scale, zero_point, qmin, qmax):
    """The composition the fused op must match: STE round, ordinary clamp."""
    return (tensor_clamp(round_ste(x / scale + zero_point), qmin, qmax) - zero_point) * scale


@SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    bit_width=st.integers(1, 16),
    signed=st.booleans(),
    narrow=st.booleans(),
    per_channel=st.booleans(),
    learn_zero_point=st.booleans(),
    learn_bounds=st.booleans(),
    large=st.booleans(),
    learn_x=st.booleans(),
)
def test_fake_quant_ste_matches_unfused_composition(
    seed: int,
    bit_width: int,
    signed: bool,
    narrow: bool,
    per_channel: bool,
    learn_zero_point: bool,
    learn_bounds: bool,
    large: bool,
    learn_x: bool,
) -> None:
    gen = torch.Generator().manual_seed(seed)
    dt = torch.float64
    b = torch.tensor(float(bit_width), dtype=dt)
    qmin, qmax = min_int(signed, narrow, b), max_int(signed, narrow, b)
    shape = (4, 1) if per_channel else ()
    scale = torch.exp(torch.randn(shape, generator=gen, dtype=dt)) / 2 ** (bit_width - 1)
    if signed:
        zero_point = torch.zeros(shape, dtype=dt)
    else:
        zero_point = torch.randint(0, 2 ** (bit_width - 1) + 1, shape, generator=gen).to(dt)
    # spread x over and beyond the range so that both clamps are exercised
    # (large: past _SMALL_NUMEL, where backward recomputes from the kept input instead of precomputing)
    columns = _SMALL_NUMEL // 4 + 1 if large else 16
    x = torch.randn(4, columns, generator=gen, dtype=dt) * 2 ** (bit_width - 1) * scale * 1.5

    values = (x, scale, zero_point, qmin, qmax)
    learned = (learn_x, True, learn_zero_point, learn_bounds, learn_bounds)
    ref_inputs = [t.detach().clone().requires_grad_(r) for t, r in zip(values, learned)]
    fused_inputs = [t.detach().clone().requires_grad_(r) for t, r in zip(values, learned)]

    y_ref = _unfused(*ref_inputs)
    y = fake_quant_ste(*fused_inputs)
    assert torch.equal(y.detach(), y_ref.detach())

    g = torch.randn(y.shape, generator=gen, dtype=dt)
    wrt_ref = [t for t in ref_inputs if t.requires_grad]
    wrt = [t for t in fused_inputs if t.requires_grad]
    grads_ref = torch.autograd.grad(y_ref, wrt_ref, g)
    grads = torch.autograd.grad(y, wrt, g)
    for got, ref, leaf in zip(grads, grads_ref, wrt):
        assert got.shape == leaf.shape
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)


def test_fake_quant_ste_scale_gradient_is_lsq_formula() -> None:
    x = torch.tensor([0.26, 0.74, -5.0, 5.0], dtype=torch.float64)
    s = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    # inside: round(x/s) - x/s; below: qmin; above: qmax
    per_element = [torch.autograd.grad(fake_quant_ste(x, s, 0.0, -4.0, 3.0)[i], s)[0].item() for i in range(4)]
    assert per_element == pytest.approx([1 - 0.52, 1 - 1.48, -4.0, 3.0])


def test_fake_quant_ste_zero_point_gets_no_gradient_unless_it_requires_one() -> None:
    x = torch.randn(8, requires_grad=True)
    zero_point = torch.tensor(3.0)
    y = fake_quant_ste(x, torch.tensor(0.1), zero_point, 0.0, 15.0)
    y.sum().backward()
    assert zero_point.grad is None and x.grad is not None


# --------------------------------------------------------------------------- torch.compile


def test_round_ste_compiles_fullgraph_with_equal_outputs_and_grads() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return round_ste(x * 3.0) * x

    compiled = torch.compile(fn, fullgraph=True)
    x = torch.randn(32)
    x_eager, x_comp = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_eager, y_comp = fn(x_eager), compiled(x_comp)
    assert torch.equal(y_eager, y_comp)
    y_eager.sum().backward()
    y_comp.sum().backward()
    torch.testing.assert_close(x_comp.grad, x_eager.grad)


def test_fake_quant_ste_compiles_fullgraph_with_equal_outputs_and_grads() -> None:
    def fn(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
        return fake_quant_ste(x, scale, zero_point, x.new_tensor(0.0), x.new_tensor(15.0))

    compiled = torch.compile(fn, fullgraph=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 8, generator=gen)
    scale = torch.rand(4, 1, generator=gen) * 0.2 + 0.05
    zero_point = torch.full((4, 1), 7.0)
    eager_in = [t.clone().requires_grad_() for t in (x, scale, zero_point)]
    comp_in = [t.clone().requires_grad_() for t in (x, scale, zero_point)]
    y_eager, y_comp = fn(*eager_in), compiled(*comp_in)
    torch.testing.assert_close(y_comp, y_eager, rtol=0, atol=1e-6)
    g = torch.randn(4, 8, generator=gen)
    for got, ref in zip(torch.autograd.grad(y_comp, comp_in, g), torch.autograd.grad(y_eager, eager_in, g)):
        torch.testing.assert_close(got, ref)
