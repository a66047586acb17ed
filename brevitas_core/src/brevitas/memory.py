"""Train with less memory: quantized tensors recomputed in backward instead of kept.

In quantization-aware training every quantized activation costs two tensors
until backward: the quantizer's input (its learned scale's gradient needs
``x / s - round(x / s)``) and its output, which the next layer (a
convolution, a pooling, a linear layer) keeps for its own gradient. Float
training keeps one. Inside :func:`recompute_quantized`, an output of
:func:`~brevitas.function.ste.fake_quant_ste` that an operation saves for
backward is replaced by its recipe (the input, the scale, the zero-point and
the bounds, which are kept anyway) and recomputed, bit for bit, when backward
needs it. Activation memory then comes close to float training's, for one more
fake quantization per saved use in backward.

It is a context for the forward pass; backward may run outside it:

    with brevitas.memory.recompute_quantized():
        loss = criterion(model(x), y)
    loss.backward()

Nothing changes in values or gradients. A quantizer's input that is changed in
place between forward and backward makes backward fail with an error (as
autograd refuses any saved tensor changed in place). Code compiled with
``torch.compile`` or traced for export is left alone.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantConv2d, QuantReLU
    >>> model = torch.nn.Sequential(QuantConv2d(3, 8, 3), QuantReLU(), QuantConv2d(8, 8, 3))
    >>> x = torch.randn(2, 3, 16, 16)
    >>> with recompute_quantized():
    ...     loss = model(x).square().sum()
    >>> loss.backward()
    >>> model[0].weight.grad.shape
    torch.Size([8, 3, 3, 3])
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import Tensor

from brevitas._tracing import tracing

__all__ = ["copy_recipe", "recompute_quantized", "recomputing", "tag_recipe"]

_ATTR = "_brevitas_recipe"
_state = threading.local()


class _Recipe(NamedTuple):
    """How to recompute a fake-quantized tensor, and the versions it was made from."""

    x: Tensor
    scale: Tensor
    zero_point: Tensor | None
    qmin: Tensor
    qmax: Tensor
    x_version: int
    y_version: int


def recomputing() -> bool:
    """Whether :func:`recompute_quantized` is active here (and no compiler or tracer runs).

    Example:
        >>> recomputing()
        False
    """
    if not getattr(_state, "depth", 0):
        return False
    return not tracing()


def tag_recipe(y: Tensor, x: Tensor, scale: Tensor, zero_point: Tensor | None, qmin: Tensor, qmax: Tensor) -> None:
    """Record on ``y = fake_quant(x, ...)`` how to recompute it (only inside :func:`recompute_quantized`)."""
    if not recomputing():
        return
    zp = None if zero_point is None else zero_point.detach()
    recipe = _Recipe(x.detach(), scale.detach(), zp, qmin.detach(), qmax.detach(), x._version, y._version)
    setattr(y, _ATTR, recipe)


def copy_recipe(source: Tensor, target: Tensor) -> None:
    """Give ``target`` (an alias of ``source``, e.g. ``source.detach()``) the recipe of ``source``."""
    recipe = getattr(source, _ATTR, None)
    if recipe is not None:
        setattr(target, _ATTR, recipe)


def _pack(t: Tensor) -> Any:
    recipe = getattr(t, _ATTR, None)
    if recipe is None or t._version != recipe.y_version:  # changed since it was quantized: keep it as it is
        return t
    return recipe


def _unpack(saved: Any) -> Tensor:
    if not isinstance(saved, _Recipe):
        return saved
    if saved.x._version != saved.x_version:
        raise RuntimeError(
            "brevitas.memory.recompute_quantized: the input of a quantizer was modified in place after the "
            "forward pass, so its quantized output cannot be recomputed for backward. Do not change it in place "
            "before backward, or run this step outside recompute_quantized()"
        )
    from brevitas.function.ste import _fake_quant_values

    with torch.no_grad():
        return _fake_quant_values(saved.x, saved.scale, saved.zero_point, saved.qmin, saved.qmax)


@contextmanager
def recompute_quantized() -> Iterator[None]:
    """Within it, quantized outputs saved for backward are recomputed in backward instead of kept.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantIdentity
        >>> quant = QuantIdentity(return_quant_tensor=False)
        >>> x = torch.randn(4, 8, requires_grad=True)
        >>> with recompute_quantized():
        ...     out = torch.sigmoid(quant(x))
        >>> out.sum().backward()
        >>> x.grad.shape
        torch.Size([4, 8])
    """
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        with torch.autograd.graph.saved_tensors_hooks(_pack, _unpack):
            yield
    finally:
        _state.depth -= 1
