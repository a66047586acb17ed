"""Straight-through estimators (STE): a forward that quantizes, a backward that does not.

Rounding, sign and clamping have a zero (or undefined) gradient almost
everywhere, which would stop training. A straight-through estimator keeps the
forward value and replaces the backward by the identity (or by a simple
surrogate). Each STE here is a :class:`torch.autograd.Function`, which
``torch.compile`` traces into one graph (``fullgraph=True`` works) and which
needs no compiled extension.

- :func:`make_ste` builds one from any elementwise function;
- ready ones: :func:`round_ste` (half to even, like ``torch.round`` and ONNX),
  :func:`ceil_ste`, :func:`floor_ste`, :func:`round_to_zero_ste`,
  :func:`dpu_round_ste`, :func:`binary_sign_ste`, :func:`ternary_sign_ste`,
  :func:`tensor_clamp_ste`, :func:`scalar_clamp_ste`,
  :func:`scalar_clamp_min_ste`, :func:`abs_binary_sign_grad`;
- :func:`fake_quant_ste`: the whole affine fake-quantization in one op, with
  the gradients of "round is straight-through, clamp is not" worked out
  analytically (to ``x``, the scale, the zero-point and the integer bounds).

Example:
    >>> import torch
    >>> from brevitas.function.ste import round_ste
    >>> x = torch.tensor([0.4, 1.5, 2.5], requires_grad=True)
    >>> y = round_ste(x)
    >>> y
    tensor([0., 2., 2.], grad_fn=<RoundSteFnBackward>)
    >>> y.sum().backward()
    >>> x.grad
    tensor([1., 1., 1.])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from brevitas.errors import ConfigError
from brevitas.function.adjoint import tag_scale_tangent
from brevitas.memory import recomputing, tag_recipe

__all__ = [
    "abs_binary_sign_grad",
    "binary_sign_ste",
    "ceil_ste",
    "dpu_round",
    "dpu_round_ste",
    "fake_quant_ste",
    "floor_ste",
    "make_ste",
    "round_ste",
    "round_to_zero_ste",
    "scalar_clamp_min_ste",
    "scalar_clamp_ste",
    "tensor_clamp_ste",
    "ternary_sign_ste",
]


# ---------------------------------------------------------------------------
# Unary STEs built from a forward function
# ---------------------------------------------------------------------------


def make_ste(fn: Callable[[Tensor], Tensor], name: str) -> Callable[[Tensor], Tensor]:
    """Build a straight-through estimator: forward ``fn(x)``, backward identity.

    Args:
        fn: a function of one tensor returning a tensor of the same shape
            (typically elementwise: rounding, sign, ...).
        name: a Python identifier naming the underlying
            :class:`torch.autograd.Function` (it shows in ``grad_fn`` and in
            compiled graphs), e.g. ``"MyRoundSte"``.

    Returns:
        ``ste(x)``; its autograd function is available as ``ste.function``.

    Raises:
        ConfigError: ``fn`` is not callable or ``name`` is not an identifier.

    Example:
        >>> import torch
        >>> half_ste = make_ste(lambda x: torch.round(2 * x) / 2, "HalfSte")
        >>> x = torch.tensor([0.3, 0.8], requires_grad=True)
        >>> half_ste(x).detach()
        tensor([0.5000, 1.0000])
        >>> half_ste(x).sum().backward(); x.grad
        tensor([1., 1.])
    """
    if not callable(fn):
        raise ConfigError(f"make_ste needs a callable forward function, got {type(fn).__name__} {fn!r}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"make_ste needs a Python identifier as name (e.g. 'MyRoundSte'), got {name!r}")

    def forward(ctx: Any, x: Tensor) -> Tensor:
        return fn(x)

    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        return grad_output

    fn_name = getattr(fn, "__name__", repr(fn))
    function = type(
        name,
        (torch.autograd.Function,),
        {
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"Straight-through estimator: forward {fn_name}(x), backward identity.",
            "forward": staticmethod(forward),
            "backward": staticmethod(backward),
        },
    )

    def ste(x: Tensor) -> Tensor:
        return function.apply(x)

    ste.__name__ = ste.__qualname__ = name
    ste.__doc__ = function.__doc__
    ste.function = function  # type: ignore[attr-defined]
    return ste


def dpu_round(x: Tensor) -> Tensor:
    """Round half up (toward +inf), as the Vitis-AI DPU does: ``floor(x + 0.5)``.

    Computed as "ceil on exact halves, round elsewhere" so that values just
    below a half (``0.49999997`` in float32) are not pushed up by the float
    addition ``x + 0.5``.

    Example:
        >>> import torch
        >>> dpu_round(torch.tensor([-2.5, -1.5, -0.4, 0.5, 2.5]))
        tensor([-2., -1., -0.,  1.,  3.])
    """
    return torch.where(x - torch.floor(x) == 0.5, torch.ceil(x), torch.round(x))


def _binary_sign(x: Tensor) -> Tensor:
    # sign with sign(0) = +1, keeping dtype and device
    return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))


#: ``torch.round(x)`` (half to even, as ONNX ``Round`` and qonnx ``ROUND``), gradient identity.
round_ste = make_ste(torch.round, "RoundSteFn")
#: ``torch.ceil(x)``, gradient identity.
ceil_ste = make_ste(torch.ceil, "CeilSteFn")
#: ``torch.floor(x)``, gradient identity.
floor_ste = make_ste(torch.floor, "FloorSteFn")
#: ``torch.trunc(x)`` (round toward zero), gradient identity.
round_to_zero_ste = make_ste(torch.trunc, "RoundToZeroSteFn")
#: :func:`dpu_round` (half toward +inf), gradient identity.
dpu_round_ste = make_ste(dpu_round, "DPURoundSteFn")
#: ``+1`` where ``x >= 0``, ``-1`` elsewhere (0 maps to +1), gradient identity.
binary_sign_ste = make_ste(_binary_sign, "BinarySignSteFn")
#: ``torch.sign(x)`` (0 maps to 0), gradient identity.
ternary_sign_ste = make_ste(torch.sign, "TernarySignSteFn")


# ---------------------------------------------------------------------------
# Clamps with a straight-through gradient
# ---------------------------------------------------------------------------


class TensorClampSteFn(torch.autograd.Function):
    """Clamp to tensor bounds in forward; identity gradient to ``x``, none to the bounds."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, min_val: Tensor, max_val: Tensor) -> Tensor:
        ctx.x_shape = x.shape
        y = torch.where(x > max_val, max_val, x)
        return torch.where(y < min_val, min_val, y)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        # bounds may broadcast x to a larger shape: fold the gradient back
        return grad_output.sum_to_size(ctx.x_shape), None, None


class ScalarClampSteFn(torch.autograd.Function):
    """Clamp to Python-number bounds in forward; identity gradient."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, min_val: float | None, max_val: float | None) -> Tensor:
        return torch.clamp(x, min=min_val, max=max_val)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        return grad_output, None, None


def tensor_clamp_ste(x: Tensor, min_val: Tensor, max_val: Tensor) -> Tensor:
    """Clamp ``x`` to broadcastable tensor bounds; the gradient passes to ``x`` unchanged.

    Unlike :func:`brevitas.function.ops.tensor_clamp` the gradient is not
    blocked outside the range, and the bounds receive none.

    Example:
        >>> import torch
        >>> x = torch.tensor([-2.0, 0.0, 2.0], requires_grad=True)
        >>> y = tensor_clamp_ste(x, torch.tensor(-1.0), torch.tensor(1.0))
        >>> y.detach()
        tensor([-1.,  0.,  1.])
        >>> y.sum().backward(); x.grad
        tensor([1., 1., 1.])
    """
    return TensorClampSteFn.apply(x, min_val, max_val)


def scalar_clamp_ste(x: Tensor, min_val: float, max_val: float) -> Tensor:
    """Clamp ``x`` to ``[min_val, max_val]`` (Python numbers); identity gradient.

    Example:
        >>> import torch
        >>> scalar_clamp_ste(torch.tensor([-3.0, 3.0]), -1.0, 2.0)
        tensor([-1.,  2.])
    """
    return ScalarClampSteFn.apply(x, min_val, max_val)


def scalar_clamp_min_ste(x: Tensor, min_val: float) -> Tensor:
    """Clamp ``x`` from below to ``min_val`` (a Python number); identity gradient.

    Example:
        >>> import torch
        >>> scalar_clamp_min_ste(torch.tensor([1e-12, 3.0]), 1e-8)
        tensor([1.0000e-08, 3.0000e+00])
    """
    return ScalarClampSteFn.apply(x, min_val, None)


# ---------------------------------------------------------------------------
# abs with a gradient that is never zero
# ---------------------------------------------------------------------------


def abs_binary_sign_grad(x: Tensor) -> Tensor:
    """``abs(x)``, differentiable at 0 with gradient +1 (``torch.abs`` gives 0 there).

    Used for learned offsets initialised at 0 (a learned bit-width starting at
    its minimum), which would otherwise never move.

    Example:
        >>> import torch
        >>> p = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
        >>> abs_binary_sign_grad(p).sum().backward(); p.grad
        tensor([-1.,  1.,  1.])
    """
    if not (x.requires_grad and torch.is_grad_enabled()):
        return torch.abs(x)
    # x times its sign (+1 at 0), the sign a constant: native ops only, so the backward is one native
    # multiply rather than a Python autograd function (this runs once per quantizer per step)
    sign = (x >= 0).to(x.dtype).mul_(2.0).sub_(1.0)
    return x * sign


# ---------------------------------------------------------------------------
# Fused fake quantization
# ---------------------------------------------------------------------------


def _clamp(q: Tensor, qmin: Tensor, qmax: Tensor, *, inplace: bool) -> Tensor:
    """``min(max(q, qmin), qmax)`` as :func:`brevitas.function.ops.tensor_clamp` orders it (upper bound first).

    One-sided clamps with tensor bounds are fast on every backend; in place
    when the bounds cannot grow ``q``'s shape.
    """
    if (
        q.device.type == "cpu"
        and qmin.numel() == 1
        and qmax.numel() == 1
        and max(qmin.dim(), qmax.dim()) <= q.dim()
        and not torch.compiler.is_compiling()
    ):  # per-tensor bounds on the CPU: one pass with number bounds (reading them is no device sync there)
        low, high = qmin.item(), qmax.item()
        return q.clamp_(low, high) if inplace else torch.clamp(q, low, high)
    if inplace and _expands_into(q, qmin, qmax):
        return q.clamp_max_(qmax).clamp_min_(qmin)
    out = torch.clamp_max(q, qmax)
    return out.clamp_min_(qmin) if _expands_into(out, qmin) else torch.clamp_min(out, qmin)


def _expands_into(x: Tensor, *others: Tensor | None) -> bool:
    """Whether each of ``others`` (``None`` skipped) broadcasts to ``x``'s shape without growing it."""
    for t in others:
        if t is None or t.dim() == 0:
            continue
        if t.dim() > x.dim():
            return False
        for a, b in zip(reversed(t.shape), reversed(x.shape)):
            if a != 1 and a != b:
                return False
    return True


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    return t if t.shape == shape else t.sum_to_size(shape)


def _sum_product_to(a: Tensor, b: Tensor, shape: torch.Size) -> Tensor:
    """``(a * b).sum_to_size(shape)``; a single dot product when ``shape`` holds one element."""
    if math.prod(shape) == 1 and a.shape == b.shape and a.dtype == b.dtype:
        return torch.dot(a.reshape(-1), b.reshape(-1)).reshape(shape)
    return _sum_to(a * b, shape)


#: elements per chunk of :meth:`FakeQuantSteFn._backward_chunked` (its temporaries: three such chunks)
_CHUNK = 1 << 16

#: below this many elements, :class:`FakeQuantSteFn` precomputes in forward what backward needs (weights,
#: small activations: per-operation overhead dominates); from it on it keeps a one-byte mask (activations)
_SMALL_NUMEL = 1 << 15


def _fake_quant_values(x: Tensor, scale: Tensor, zero_point: Tensor | None, qmin: Tensor, qmax: Tensor) -> Tensor:
    """The forward values, no gradient: one new buffer, worked in place."""
    q = torch.div(x, scale)
    if zero_point is not None:
        q = q.add_(zero_point) if _expands_into(q, zero_point) else q + zero_point
    q = _clamp(q.round_(), qmin, qmax, inplace=True)
    if zero_point is not None:
        q = q.sub_(zero_point)
    return q.mul_(scale)


def _finite_(t: Tensor) -> Tensor:
    """Bound ``t`` in place to the finite range of its dtype (``inf * 0`` would be NaN; NaN stays NaN)."""
    big = torch.finfo(t.dtype).max
    return t.clamp_(-big, big)


class FakeQuantSteFn(torch.autograd.Function):
    """``(clamp(round(x / s + z), qmin, qmax) - z) * s`` with a straight-through round.

    The backward is the exact gradient of the composition in which ``round``
    has an identity gradient and ``clamp`` the ordinary one. With
    ``r = round(x / s + z)``, "inside" meaning ``qmin <= r <= qmax``:

    - ``dy/dx = 1`` inside, ``0`` outside;
    - ``dy/ds = (r - z) - x / s`` inside (the LSQ gradient), ``qmin - z`` below,
      ``qmax - z`` above;
    - ``dy/dz = 0`` inside, ``-s`` outside;
    - ``dy/dqmin = s`` below, ``dy/dqmax = s`` above, ``0`` elsewhere.

    Each gradient is summed down to the shape of its input (per-channel scales
    get per-channel gradients). ``zero_point`` may be ``None`` (zero: nothing
    is added or subtracted). An infinite ``x`` is outside the range: it
    saturates, and its gradients are those of "outside" (no NaN).

    Cost, by tensor size:

    - tensors of at least :data:`_SMALL_NUMEL` elements (activations): when
      only ``x`` needs a gradient, one byte per element is kept for backward
      (``-1`` below the range, ``0`` inside, ``+1`` above) and the gradient
      is one multiply by that mask; when the scale (zero-point, bounds) needs
      one too, only the input is kept (a ReLU before the quantizer keeps it
      anyway) and backward recomputes ``x / s``, the mask and the scale
      derivative from it, so the forward is the bare fake quantization. The
      output is never kept alive (a caller may still modify it in place,
      ``out += identity``), and every step works in place on the fewest
      buffers;
    - smaller tensors (weights, small activations) are dominated by the
      per-operation overhead, so the forward also computes the mask and the
      per-element scale derivative and the backward is two products.
    """

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, scale: Tensor, zero_point: Tensor | None, qmin: Tensor, qmax: Tensor
    ) -> Tensor:
        needs = ctx.needs_input_grad
        ctx.x_shape = x.shape
        ctx.small = x.numel() < _SMALL_NUMEL
        if not any(needs):
            ctx.save_for_backward(None, None, None, None, None, None, None)
            return _fake_quant_values(x, scale, zero_point, qmin, qmax)
        if ctx.small:
            return FakeQuantSteFn._forward_small(ctx, x, scale, zero_point, qmin, qmax)
        if needs[1] or needs[2] or needs[3] or needs[4]:
            # the scale (zero-point, bounds) needs x / s again in backward: keep x alone and recompute the range
            # mask there too, rather than also computing and keeping it here
            ctx.save_for_backward(None, x, scale, zero_point, qmin, qmax, None)
            # inside brevitas.memory.recompute_quantized, backward works chunk by chunk (small temporaries)
            ctx.chunked = (
                recomputing()
                and not (needs[2] or needs[3] or needs[4])
                and scale.numel() == 1
                and (zero_point is None or zero_point.numel() == 1)
                and qmin.numel() == 1
                and qmax.numel() == 1
            )
            return _fake_quant_values(x, scale, zero_point, qmin, qmax)
        q = torch.div(x, scale)
        if zero_point is not None:
            q = q.add_(zero_point) if _expands_into(q, zero_point) else q + zero_point
        q = q.round_()
        out = _clamp(q, qmin, qmax, inplace=False)
        # round(x/s + z) minus its clamp: 0 inside the range, negative below, positive above
        diff = q.sub_(out) if q.shape == out.shape else q - out
        code = diff.clamp_(-1.0, 1.0).to(torch.int8)
        ctx.save_for_backward(code, None, scale, zero_point, qmin, qmax, None)
        if zero_point is not None:
            out = out.sub_(zero_point)
        return out.mul_(scale)

    @staticmethod
    def _forward_small(
        ctx: Any, x: Tensor, scale: Tensor, zero_point: Tensor | None, qmin: Tensor, qmax: Tensor
    ) -> Tensor:
        need_scale, need_bounds = ctx.needs_input_grad[1], ctx.needs_input_grad[3] or ctx.needs_input_grad[4]
        x_over_s = torch.div(x, scale)
        r = torch.round(x_over_s + zero_point if zero_point is not None else x_over_s)
        out = _clamp(r, qmin, qmax, inplace=False)
        diff = r.sub_(out) if r.shape == out.shape else r - out  # 0 inside, < 0 below, > 0 above
        code = torch.sign(diff).to(torch.int8) if need_bounds else None
        inside = diff.abs_().clamp_max_(1.0).neg_().add_(1.0)  # 1 inside, 0 outside
        if zero_point is not None:
            out = out.sub_(zero_point)
        d = None
        if need_scale:  # per element: (clamp(round(x/s + z)) - z) - x/s inside, clamp(...) - z outside
            masked = _finite_(x_over_s)
            masked = masked.mul_(inside) if _expands_into(masked, inside) else masked * inside
            d = out - masked
        ctx.save_for_backward(code, None, scale, zero_point, qmin, qmax, inside, d)
        return out.mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        need_x, need_scale, need_zp, need_qmin, need_qmax = ctx.needs_input_grad
        code, x, scale, zero_point, qmin, qmax, inside, *rest = ctx.saved_tensors
        g = grad_output
        grad_x = grad_scale = grad_zp = grad_qmin = grad_qmax = None
        if ctx.small:
            if need_scale:
                grad_scale = _sum_product_to(g, rest[0], scale.shape)
        elif code is None and getattr(ctx, "chunked", False) and g.shape == x.shape:
            grad_x, grad_scale = FakeQuantSteFn._backward_chunked(g, x, scale, zero_point, qmin, qmax, need_x)
            return grad_x, grad_scale, None, None, None
        elif code is None:  # kept x only: recompute the rounding, the range mask and (if needed) the code
            d, inside, code = FakeQuantSteFn._recompute(x, scale, zero_point, qmin, qmax, need_qmin or need_qmax)
            inside = inside.to(g.dtype)
            if need_scale:
                grad_scale = _sum_product_to(g, d, scale.shape)
            del d
            if need_x and not need_zp and inside.shape == g.shape:
                # the mask is this call's own buffer: it becomes the gradient (one large allocation fewer)
                grad_x = _sum_to(inside.mul_(g), ctx.x_shape)
                need_x = False
        else:  # kept the code: the mask, 1 inside the range and 0 outside, in g's dtype (mixed dtypes are slower)
            inside = torch.abs(code).neg_().add_(1).to(g.dtype)
        if need_x or need_zp:
            masked = g * inside
            if need_x:
                grad_x = _sum_to(masked, ctx.x_shape)
            if need_zp:
                grad_zp = _sum_to((g - masked).mul_(scale).neg_(), zero_point.shape)
        if need_qmin:
            grad_qmin = _sum_to(g * torch.clamp(code, max=0).neg_() * scale, qmin.shape)
        if need_qmax:
            grad_qmax = _sum_to(g * torch.clamp(code, min=0) * scale, qmax.shape)
        return grad_x, grad_scale, grad_zp, grad_qmin, grad_qmax

    @staticmethod
    def _backward_chunked(
        g: Tensor, x: Tensor, scale: Tensor, zero_point: Tensor | None, qmin: Tensor, qmax: Tensor, need_x: bool
    ) -> tuple[Tensor | None, Tensor]:
        """Gradients to ``x`` and to a per-tensor scale, recomputed :data:`_CHUNK` elements at a time."""
        flat_x, flat_g = x.reshape(-1), g.reshape(-1)
        grad_x = torch.empty_like(flat_g) if need_x else None
        grad_scale = flat_g.new_zeros(())
        for start in range(0, flat_x.numel(), _CHUNK):
            end = start + _CHUNK
            d, inside, _ = FakeQuantSteFn._recompute(flat_x[start:end], scale, zero_point, qmin, qmax, False)
            g_part = flat_g[start:end]
            grad_scale += torch.dot(g_part, d.to(g_part.dtype))
            if grad_x is not None:
                torch.mul(inside.to(g_part.dtype), g_part, out=grad_x[start:end])
        grad_x = None if grad_x is None else grad_x.reshape(g.shape)
        return grad_x, grad_scale.to(scale.dtype).reshape(scale.shape)

    @staticmethod
    def _recompute(
        x: Tensor, scale: Tensor, zero_point: Tensor | None, qmin: Tensor, qmax: Tensor, want_code: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """From the kept ``x``: the per-element scale derivative, the range mask and (if wanted) the code.

        ``d = (clamp(round(x/s + z)) - z) - (x/s) * inside``, ``inside`` 1 where
        ``round(x/s + z)`` lies in the range and 0 elsewhere, ``code`` its sign
        outside (``-1`` below, ``+1`` above, ``0`` inside).
        """
        # three buffers in all (large allocations cost page faults on CPU): x/s, the rounding (which becomes
        # the mask) and its clamp (which becomes d)
        x_over_s = torch.div(x, scale)
        r = torch.add(x_over_s, zero_point).round_() if zero_point is not None else torch.round(x_over_s)
        clamped = _clamp(r, qmin, qmax, inplace=False)
        diff = r.sub_(clamped) if r.shape == clamped.shape else r - clamped  # 0 inside, < 0 below, > 0 above
        code = torch.sign(diff) if want_code else None
        inside = diff.abs_().clamp_max_(1.0).neg_().add_(1.0)
        if zero_point is not None:
            clamped = clamped.sub_(zero_point)
        x_over_s = _finite_(x_over_s)
        if _expands_into(clamped, x_over_s, inside):
            return clamped.addcmul_(x_over_s, inside, value=-1), inside, code
        return clamped - x_over_s * inside, inside, code


def fake_quant_ste(
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor | float | None,
    qmin: Tensor | float,
    qmax: Tensor | float,
) -> Tensor:
    """Affine fake quantization in one op: ``(clamp(round(x/scale + zp), qmin, qmax) - zp) * scale``.

    ``round`` is half to even (``torch.round``, as ONNX consumers round) with a
    straight-through gradient; ``clamp`` blocks the gradient to ``x`` outside
    ``[qmin, qmax]``. See :class:`FakeQuantSteFn` for the gradients, which
    equal those of the unfused composition
    ``(tensor_clamp(round_ste(x / scale + zp), qmin, qmax) - zp) * scale``
    while keeping only a one-byte mask per element for backward.

    Args:
        x: tensor to quantize.
        scale: positive scale, broadcastable against ``x`` (``()`` per tensor,
            ``(C, 1, ...)`` per channel).
        zero_point: integer-valued zero-point (tensor broadcastable like
            ``scale``, or a number); ``None`` or ``0`` for none.
        qmin: smallest integer (see :func:`brevitas.function.ops.min_int`).
        qmax: largest integer (see :func:`brevitas.function.ops.max_int`).

    Returns:
        The fake-quantized tensor: ``y / scale + zero_point`` holds integers in
        ``[qmin, qmax]``.

    Example:
        >>> import torch
        >>> x = torch.tensor([-3.0, 0.26, 0.74, 5.0], requires_grad=True)
        >>> s = torch.tensor(0.5, requires_grad=True)
        >>> y = fake_quant_ste(x, s, 0.0, -4.0, 3.0)
        >>> y.detach()
        tensor([-2.0000,  0.5000,  0.5000,  1.5000])
        >>> y.sum().backward()
        >>> x.grad
        tensor([0., 1., 1., 0.])
    """
    if zero_point is not None and not isinstance(zero_point, Tensor):
        zero_point = None if zero_point == 0 else x.new_tensor(zero_point)
    if not isinstance(qmin, Tensor):
        qmin = x.new_tensor(qmin)
    if not isinstance(qmax, Tensor):
        qmax = x.new_tensor(qmax)
    if torch.is_grad_enabled() and (
        x.requires_grad
        or scale.requires_grad
        or (zero_point is not None and zero_point.requires_grad)
        or qmin.requires_grad
        or qmax.requires_grad
    ):
        y = FakeQuantSteFn.apply(x, scale, zero_point, qmin, qmax)
        tag_scale_tangent(y, x, scale, zero_point, qmin, qmax)  # a shortcut for a convolution that follows
    else:
        y = _fake_quant_values(x, scale, zero_point, qmin, qmax)  # nothing to differentiate: no autograd node
    if torch.is_grad_enabled():
        tag_recipe(y, x, scale, zero_point, qmin, qmax)  # brevitas.memory.recompute_quantized
    return y
