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

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from brevitas.errors import ConfigError

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

    def forward(x: Tensor) -> Tensor:
        return fn(x)

    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        pass

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
            "setup_context": staticmethod(setup_context),
            "backward": staticmethod(backward),
            "generate_vmap_rule": True,
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

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, min_val: Tensor, max_val: Tensor) -> Tensor:
        y = torch.where(x > max_val, max_val, x)
        return torch.where(y < min_val, min_val, y)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        x = inputs[0]
        ctx.x_shape = x.shape

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None, None]:
        # bounds may broadcast x to a larger shape: fold the gradient back
        return grad_output.sum_to_size(ctx.x_shape), None, None


class ScalarClampSteFn(torch.autograd.Function):
    """Clamp to Python-number bounds in forward; identity gradient."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, min_val: float | None, max_val: float | None) -> Tensor:
        return torch.clamp(x, min=min_val, max=max_val)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        pass

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


class AbsBinarySignGradFn(torch.autograd.Function):
    """``abs(x)`` whose gradient is ``sign(x)`` with ``sign(0) = +1``."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor) -> Tensor:
        return torch.abs(x)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return torch.where(x >= 0, grad_output, -grad_output)


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
    return AbsBinarySignGradFn.apply(x)


# ---------------------------------------------------------------------------
# Fused fake quantization
# ---------------------------------------------------------------------------


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
    get per-channel gradients).
    """

    @staticmethod
    def forward(x: Tensor, scale: Tensor, zero_point: Tensor, qmin: Tensor, qmax: Tensor) -> Tensor:
        return (torch.clamp(torch.round(x / scale + zero_point), qmin, qmax) - zero_point) * scale

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.save_for_backward(*inputs)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        x, scale, zero_point, qmin, qmax = ctx.saved_tensors
        need_x, need_scale, need_zp, need_qmin, need_qmax = ctx.needs_input_grad
        x_over_s = x / scale
        r = torch.round(x_over_s + zero_point)
        below = r < qmin
        above = r > qmax
        inside = torch.logical_not(torch.logical_or(below, above))
        zero = torch.zeros_like(grad_output)

        grad_x = grad_scale = grad_zp = grad_qmin = grad_qmax = None
        if need_x:
            grad_x = torch.where(inside, grad_output, zero).sum_to_size(x.shape)
        if need_scale:
            q = torch.where(below, qmin, torch.where(above, qmax, r))
            d_scale = (q - zero_point) - torch.where(inside, x_over_s, torch.zeros_like(x_over_s))
            grad_scale = (grad_output * d_scale).sum_to_size(scale.shape)
        if need_zp:
            grad_zp = torch.where(inside, zero, -grad_output * scale).sum_to_size(zero_point.shape)
        if need_qmin:
            grad_qmin = torch.where(below, grad_output * scale, zero).sum_to_size(qmin.shape)
        if need_qmax:
            grad_qmax = torch.where(above, grad_output * scale, zero).sum_to_size(qmax.shape)
        return grad_x, grad_scale, grad_zp, grad_qmin, grad_qmax


def fake_quant_ste(
    x: Tensor,
    scale: Tensor,
    zero_point: Tensor | float,
    qmin: Tensor | float,
    qmax: Tensor | float,
) -> Tensor:
    """Affine fake quantization in one op: ``(clamp(round(x/scale + zp), qmin, qmax) - zp) * scale``.

    ``round`` is half to even (``torch.round``, as ONNX consumers round) with a
    straight-through gradient; ``clamp`` blocks the gradient to ``x`` outside
    ``[qmin, qmax]``. See :class:`FakeQuantSteFn` for the gradients, which
    equal those of the unfused composition
    ``(tensor_clamp(round_ste(x / scale + zp), qmin, qmax) - zp) * scale``
    while saving only the inputs for backward.

    Args:
        x: tensor to quantize.
        scale: positive scale, broadcastable against ``x`` (``()`` per tensor,
            ``(C, 1, ...)`` per channel).
        zero_point: integer-valued zero-point (tensor broadcastable like
            ``scale``, or a number).
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
    if not isinstance(zero_point, Tensor):
        zero_point = x.new_tensor(zero_point)
    if not isinstance(qmin, Tensor):
        qmin = x.new_tensor(qmin)
    if not isinstance(qmax, Tensor):
        qmax = x.new_tensor(qmax)
    return FakeQuantSteFn.apply(x, scale, zero_point, qmin, qmax)
