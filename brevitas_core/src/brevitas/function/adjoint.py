"""The gradient of an input quantizer's scale through a convolution, without the convolution's input gradient.

A network's first quantizer usually quantizes data: its input ``x`` needs no
gradient, but its learned scale ``s`` does. Autograd gets
``dL/ds = sum(G_in * D)``, with ``D = dy/ds`` per element (see
:class:`~brevitas.function.ste.FakeQuantSteFn`) and ``G_in`` the gradient
of the loss to the convolution's input: a transposed convolution over the
whole input that float training never computes, and a slow one on CPU when
the input has few channels (3 colour planes).

The convolution is linear in its input, so with ``conv`` its bias-free part
and ``G_out`` the gradient to its output,
``sum(G_in * D) = sum(conv_T(G_out) * D) = sum(G_out * conv(D))``: one
forward convolution of ``D`` and a dot product give the same number.

How it runs: :func:`~brevitas.function.ste.fake_quant_ste` tags its output
with what ``D`` is made of (:func:`tag_scale_tangent`) when ``x`` needs no
gradient and the scale is a single learned number; a quantized convolution
that receives the tagged tensor (:func:`scale_tangent`) convolves its
detached value and adds the scale's gradient with :func:`with_input_scale_grad`.
Any other use of the tensor differentiates through the quantizer as usual
(the gradients add up), and so does everything under ``torch.compile``,
tracing or export, where no tag is set. A tensor modified in place after
quantization loses its tag.

Example:
    >>> import torch
    >>> import torch.nn.functional as F
    >>> from brevitas.function.ste import fake_quant_ste
    >>> x = torch.randn(2, 3, 8, 8)
    >>> w = torch.randn(4, 3, 3, 3)
    >>> s = torch.tensor(0.05, requires_grad=True)
    >>> y = fake_quant_ste(x, s, None, -128.0, 127.0)
    >>> F.conv2d(y, w).square().sum().backward()
    >>> reference = s.grad.clone(); s.grad = None
    >>> y = fake_quant_ste(x, s, None, -128.0, 127.0)
    >>> tangent = scale_tangent(y)
    >>> out = with_input_scale_grad(F.conv2d(y.detach(), w), tangent, lambda d: F.conv2d(d, w))
    >>> out.square().sum().backward()
    >>> torch.allclose(s.grad, reference, rtol=1e-4)
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from brevitas._tracing import tracing
from brevitas.memory import recomputing

__all__ = ["ScaleTangent", "scale_derivative", "scale_tangent", "tag_scale_tangent", "with_input_scale_grad"]

_ATTR = "_brevitas_scale_tangent"


class ScaleTangent(NamedTuple):
    """What the derivative of a fake-quantized tensor to its (single) scale is made of."""

    x: Tensor
    scale: Tensor
    zero_point: Tensor | None
    qmin: Tensor
    qmax: Tensor
    version: int


def tag_scale_tangent(
    y: Tensor, x: Tensor, scale: Tensor, zero_point: Tensor | None, qmin: Tensor, qmax: Tensor
) -> None:
    """Tag ``y = fake_quant(x, scale, ...)`` for :func:`scale_tangent` when the shortcut applies.

    It applies in eager autograd when only the scale, a single number, needs a
    gradient (``x``, the zero-point and the bounds do not). Otherwise nothing
    is tagged.
    """
    if (
        x.requires_grad
        or not scale.requires_grad
        or scale.numel() != 1
        or (zero_point is not None and zero_point.requires_grad)
        or qmin.requires_grad
        or qmax.requires_grad
        or tracing()
    ):
        return
    setattr(y, _ATTR, ScaleTangent(x, scale, zero_point, qmin, qmax, y._version))


def scale_tangent(t: Any) -> ScaleTangent | None:
    """The tag :func:`tag_scale_tangent` left on ``t``, if it still holds (``None`` otherwise).

    It holds while gradients are being recorded and ``t`` was not modified in
    place since it was tagged.
    """
    tangent = getattr(t, _ATTR, None)  # checked first: every convolution call asks, few inputs are tagged
    if tangent is None or not torch.is_grad_enabled():
        return None
    if tracing():  # a compiled layer fed by an eager quantizer: ordinary autograd inside the compiled code
        return None
    return tangent if t._version == tangent.version else None


def scale_derivative(
    x: Tensor, scale: Tensor, zero_point: Tensor | None, qmin: Tensor, qmax: Tensor
) -> Tensor:
    """Per element, the derivative of ``fake_quant(x)`` to the scale.

    ``(clamp(round(x/s + z), qmin, qmax) - z) - x/s`` inside the range,
    ``clamp(...) - z`` outside it (``qmin - z`` below, ``qmax - z`` above): the
    same as :class:`~brevitas.function.ste.FakeQuantSteFn` gives.

    Example:
        >>> import torch
        >>> scale_derivative(torch.tensor([0.26, 9.0]), torch.tensor(0.5), None, torch.tensor(-4.0),
        ...                  torch.tensor(3.0))
        tensor([0.4800, 3.0000])
    """
    from brevitas.function.ste import FakeQuantSteFn  # (ste imports this module)

    return FakeQuantSteFn._recompute(x, scale, zero_point, qmin, qmax, want_code=False)[0]


class _InputScaleGradFn(torch.autograd.Function):
    """Identity on a convolution's output; adds the gradient of the input quantizer's scale in backward."""

    @staticmethod
    def forward(
        ctx: Any,
        out: Tensor,
        scale: Tensor,
        tangent: ScaleTangent,
        linear: Callable[[Tensor], Tensor],
        batched: bool,
        *frozen: Tensor,
    ) -> Tensor:
        ctx.mark_dirty(out)  # returned as is, but not as a view (later in-place ops stay allowed)
        # saved, not kept on ctx: autograd then refuses a backward after any of them changed in place
        ctx.save_for_backward(scale, tangent.x, tangent.zero_point, tangent.qmin, tangent.qmax, *frozen)
        ctx.linear = linear
        # inside brevitas.memory.recompute_quantized: backward goes a few samples at a time (small temporaries)
        ctx.rows = _rows_per_chunk(tangent.x) if batched and recomputing() else None
        return out

    @staticmethod
    @once_differentiable  # a second derivative through the shortcut is refused, not silently wrong
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, ...]:
        grad_scale = None
        scale, x, zero_point, qmin, qmax, *frozen = ctx.saved_tensors
        if ctx.needs_input_grad[1]:
            # the whole batch at once, or (batched input, recompute_quantized) a few samples at a time
            pieces = [(x, grad_output)] if ctx.rows is None else [
                (x[i : i + ctx.rows], grad_output[i : i + ctx.rows]) for i in range(0, x.shape[0], ctx.rows)
            ]
            with torch.no_grad():
                total = grad_output.new_zeros((), dtype=torch.float32 if scale.dtype != torch.float64 else scale.dtype)
                for part, g_part in pieces:
                    moved = ctx.linear(scale_derivative(part, scale, zero_point, qmin, qmax))
                    total += torch.dot(g_part.reshape(-1).to(moved.dtype), moved.reshape(-1)).to(total.dtype)
                grad_scale = total.to(scale.dtype).reshape(scale.shape)
        ctx.linear = None
        return (grad_output, grad_scale, None, None, None) + (None,) * len(frozen)


def _rows_per_chunk(x: Tensor) -> int:
    """Samples of ``x`` (first dimension) per chunk: about 64K elements, at least one sample."""
    per_sample = x[0].numel() if x.dim() and x.shape[0] else 1
    return max(1, (1 << 16) // max(per_sample, 1))


def with_input_scale_grad(
    out: Tensor, tangent: ScaleTangent, linear: Callable[[Tensor], Tensor], *frozen: Tensor, batched: bool = True
) -> Tensor:
    """``out`` unchanged, whose backward also gives ``tangent.scale`` its gradient.

    Args:
        out: the output of a layer run on the *detached* quantized input.
        tangent: the input's :func:`scale_tangent`.
        linear: the layer's bias-free map from an input-shaped tensor to an
            output-shaped one, with the weight the layer used (no gradient).
        frozen: the tensors ``linear`` reads (the weight): a backward after
            one of them changed in place is refused, as autograd refuses it
            for any saved tensor.
        batched: the first dimension of the input is a batch (``linear``
            maps samples independently), so inside
            :func:`brevitas.memory.recompute_quantized` backward may go a few
            samples at a time.

    Returns:
        ``out`` itself, now with a gradient path to the scale.
    """
    return _InputScaleGradFn.apply(out, tangent.scale, tangent, linear, batched, *frozen)
