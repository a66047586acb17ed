"""torch functions on QuantTensors: keep the metadata where it stays true.

:meth:`QuantTensor.__torch_function__ <brevitas.quant_tensor.QuantTensor.__torch_function__>`
looks the called function up in :data:`QUANT_TENSOR_FN_HANDLER`. A handler is
called as ``handler(func, *args, **kwargs)`` with the arguments the user
passed; it computes ``func`` on the plain values and decides, from Python-level
facts only (flags, shapes, Python numbers, so ``torch.compile`` traces it), what
the result's metadata is:

* element selection or movement (max pooling, nearest interpolation, ReLU,
  flatten, transpose, indexing-like functions, zero padding) keeps the scale,
  zero-point and bit-width, provided per-channel metadata is constant along
  the dimensions the function mixes;
* average pooling returns the *accumulator*: the value is the average, the
  scale is ``scale / divisor``, the zero-point ``kernel * zero_point``, the
  bit-width the smallest that holds every sum of ``kernel`` codes
  (:func:`~brevitas.function.ops.sum_bit_width`: ``bit_width +
  ceil(log2(kernel))`` for full-range integers, a bit less where a narrow
  range or the kernel leaves room, ``1 + ceil(log2(kernel + 1))`` for
  binary codes, whose sums reach ``+kernel``; a truncating layer such as
  ``QuantAvgPool2d`` then requantizes it); when the divisor is not the same
  for every window (``ceil_mode``, ``count_include_pad=False`` with padding,
  uneven adaptive windows) the result is a plain tensor;
* dropout in training rescales the kept values by ``1 / (1 - p)``, so the
  scale follows; in eval (or ``p == 0``) it is the identity;
* ``torch.cat`` needs equal scales and zero-points in inference mode (a
  :class:`~brevitas.errors.QuantTensorError` otherwise); per-channel metadata
  along the concatenated dimension is concatenated alongside;
* any function without a handler runs on the values and returns plain
  tensors, so no stale metadata ever survives.

A non-valid input gives a non-valid QuantTensor from the functions that would
keep the metadata of a valid one, so the result type does not depend on data
(under ``torch.compile`` a training-mode sum is non-valid where eager may find
it valid; read results through :func:`brevitas.quant_tensor.to_tensor` where
either can arrive).

Example:
    >>> import torch
    >>> import torch.nn.functional as F
    >>> from brevitas.quant_tensor import QuantTensor
    >>> x = QuantTensor(torch.arange(16.0).view(1, 1, 4, 4) * 0.5, 0.5, 0.0, 8, signed=False)
    >>> y = F.avg_pool2d(x, 2)
    >>> y.int().flatten().tolist(), float(y.scale), int(y.bit_width)
    ([10, 18, 42, 50], 0.125, 10)
    >>> type(torch.tanh(x)).__name__
    'Tensor'
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce, wraps
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from brevitas.errors import QuantTensorError
from brevitas.function.ops import sum_bit_width
from brevitas.quant_tensor import (
    QuantTensor,
    _check_data,
    _data_holds,
    _describe,
    _is_number,
    _or_training,
    _padded,
    _padded_shape,
    _to_plain,
    _widened,
)

__all__ = [
    "QUANT_TENSOR_FN_HANDLER",
    "adaptive_avg_pool_handler",
    "avg_pool_handler",
    "cat_handler",
    "dropout_handler",
    "fallback",
    "implements",
    "interpolate_handler",
    "keep_along_spatial_handler",
    "pad_handler",
    "per_tensor_movement_handler",
    "relu_handler",
]

Handler = Callable[..., Any]

#: Maps a torch function to ``handler(func, *args, **kwargs)``.
QUANT_TENSOR_FN_HANDLER: dict[Callable[..., Any], Handler] = {}


def implements(*torch_fns: Callable[..., Any]) -> Callable[[Handler], Handler]:
    """Register the decorated handler for each of ``torch_fns``.

    Example:
        >>> import torch
        >>> from brevitas.quant_tensor.torch_handler import QUANT_TENSOR_FN_HANDLER
        >>> QUANT_TENSOR_FN_HANDLER[torch.flatten].__name__
        'flatten_handler'
    """

    def decorator(handler: Handler) -> Handler:
        for fn in torch_fns:
            QUANT_TENSOR_FN_HANDLER[fn] = handler
        return handler

    return decorator


def fallback(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``func`` on the plain values: the result carries no metadata."""
    return func(*_to_plain(args), **_to_plain(kwargs))


def _on_quant_input(handler: Handler) -> Handler:
    """Run ``handler`` only when the ``input`` argument is a QuantTensor; else :func:`fallback`."""

    @wraps(handler)
    def guarded(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        x = args[0] if args else kwargs.get("input")
        if not isinstance(x, QuantTensor):
            return fallback(func, *args, **kwargs)
        return handler(func, *args, **kwargs)

    return guarded


# --------------------------------------------------------------------------- helpers


def _split_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """``(input, remaining positional args, remaining kwargs)``, ``input`` given either way."""
    if args:
        return args[0], args[1:], kwargs
    rest = dict(kwargs)
    return rest.pop("input"), (), rest


def _wrap_like(out: Any, make: Callable[[Tensor], Any]) -> Any:
    """Apply ``make`` to the output tensor, or to the values of a ``(values, indices)`` pair."""
    if isinstance(out, tuple):
        return (make(out[0]), *out[1:])
    return make(out)


def _constant_along(x: QuantTensor, dims: range | list[int]) -> bool:
    """Per-channel scale and zero-point do not vary along ``dims`` of the value."""
    assert x.scale is not None and x.zero_point is not None
    ndim = x.value.dim()
    for t in (x.scale, x.zero_point):
        shape = _padded_shape(t, ndim)
        if shape is None or any(shape[d % ndim] != 1 for d in dims):
            return False
    return True


def _last_dims(x: QuantTensor, count: int) -> range:
    ndim = x.value.dim()
    return range(max(ndim - count, 0), ndim)


def _ntuple(v: Any, n: int) -> tuple[Any, ...]:
    if isinstance(v, (list, tuple)):
        return tuple(v) * n if len(v) == 1 else tuple(v)
    return (v,) * n


def _prod(values: tuple[int, ...]) -> int:
    return reduce(lambda a, b: a * b, values, 1)


def _accumulator(x: QuantTensor, value: Tensor, kernel: int, divisor: int | float) -> QuantTensor:
    """Average over ``kernel`` elements divided by ``divisor``: integers summed, scale divided.

    The bit-width holds the exact range of the sum of ``kernel`` codes of
    ``x`` (binary and narrow ranges included), see :func:`sum_bit_width`.
    """
    assert x.scale is not None and x.zero_point is not None and x.bit_width is not None
    assert x.signed is not None
    return QuantTensor(
        value,
        x.scale / divisor,
        x.zero_point * kernel,
        sum_bit_width(x.signed, x.narrow_range, x.bit_width, int(kernel)),
        x.signed,
        False,
        x.training,
    )


# --------------------------------------------------------------------------- element selection


def _keep_along_last(func: Callable[..., Any], spatial: int | None, args: Any, kwargs: Any) -> Any:
    x, rest, kw = _split_input(args, kwargs)
    out = func(x.value, *_to_plain(rest), **_to_plain(kw))
    if not x.is_valid:
        return _wrap_like(out, x._non_valid)
    dims = _last_dims(x, x.value.dim() - 2 if spatial is None else spatial)
    if not _constant_along(x, dims):
        return out
    return _wrap_like(out, x._with_value)


_SPATIAL = {
    F.max_pool1d: 1,
    F.max_pool2d: 2,
    F.max_pool3d: 3,
    F.max_pool1d_with_indices: 1,
    F.max_pool2d_with_indices: 2,
    F.max_pool3d_with_indices: 3,
    torch.max_pool1d: 1,
    torch.max_pool2d: 2,
    torch.max_pool3d: 3,
    F.adaptive_max_pool1d: 1,
    F.adaptive_max_pool2d: 2,
    F.adaptive_max_pool3d: 3,
    F.adaptive_max_pool1d_with_indices: 1,
    F.adaptive_max_pool2d_with_indices: 2,
    F.adaptive_max_pool3d_with_indices: 3,
}


@implements(*_SPATIAL)
@_on_quant_input
def keep_along_spatial_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Max pooling picks existing elements: metadata kept (per-channel: constant over the pooled dims)."""
    return _keep_along_last(func, _SPATIAL[func], args, kwargs)


@implements(F.relu, torch.relu)
@_on_quant_input
def relu_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """ReLU maps negatives to zero, which is on the grid: metadata kept as is.

    The signedness and bit-width are not narrowed (a signed input stays
    signed), which is conservative and true.
    """
    x, rest, kw = _split_input(args, kwargs)
    out = func(x.value, *_to_plain(rest), **_to_plain(kw))
    return x._with_value(out) if x.is_valid else x._non_valid(out)


def _interpolate_args(
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: Any = None,
    recompute_scale_factor: Any = None,
    antialias: bool = False,
) -> str:
    return mode


@implements(F.interpolate)
@_on_quant_input
def interpolate_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Nearest(-exact) interpolation copies elements: metadata kept; other modes give a plain tensor."""
    x, rest, kw = _split_input(args, kwargs)
    if _interpolate_args(*rest, **kw) not in ("nearest", "nearest-exact"):
        return fallback(func, *args, **kwargs)
    return _keep_along_last(func, None, args, kwargs)


def _pad_args(pad: Any, mode: str = "constant", value: Any = None) -> tuple[Any, str, Any]:
    return pad, mode, value


@implements(F.pad)
@_on_quant_input
def pad_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Zero padding (constant mode, value 0) adds zeros, which are on the grid: metadata kept."""
    x, rest, kw = _split_input(args, kwargs)
    pad, mode, fill = _pad_args(*rest, **kw)
    out = func(x.value, *_to_plain(rest), **_to_plain(kw))
    zero_fill = fill is None or (_is_number(fill) and fill == 0)
    if not (mode == "constant" and zero_fill):
        return out
    if not x.is_valid:
        return x._non_valid(out)
    if not _constant_along(x, _last_dims(x, len(pad) // 2)):
        return out
    return x._with_value(out)


def _dropout_args(p: Any = 0.5, training: bool = True, inplace: bool = False) -> tuple[Any, bool]:
    return p, training


@implements(F.dropout, F.dropout1d, F.dropout2d, F.dropout3d)
@_on_quant_input
def dropout_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Dropout: identity in eval; in training kept values are scaled by ``1 / (1 - p)``.

    Dropped elements become zero (the zero-point) and kept ones are on the
    grid of ``scale / (1 - p)``, so in training the scale follows. ``p == 1``
    or a tensor ``p`` give a plain tensor.
    """
    x, rest, kw = _split_input(args, kwargs)
    p, training = _dropout_args(*rest, **kw)
    out = func(x.value, *_to_plain(rest), **_to_plain(kw))
    if not _is_number(p) or (training and p >= 1):
        return out
    if not x.is_valid:
        return x._non_valid(out)
    if not training or p == 0:
        return x._with_value(out)
    assert x.scale is not None
    return QuantTensor(out, x.scale / (1.0 - p), x.zero_point, x.bit_width, x.signed, x.narrow_range, x.training)


# --------------------------------------------------------------------------- average pooling

_AVG_SPATIAL = {F.avg_pool1d: 1, F.avg_pool2d: 2, F.avg_pool3d: 3}
_ADAPTIVE_AVG_SPATIAL = {F.adaptive_avg_pool1d: 1, F.adaptive_avg_pool2d: 2, F.adaptive_avg_pool3d: 3}


def _avg_pool_args(
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Any = None,
) -> tuple[Any, Any, bool, bool, Any]:
    return kernel_size, padding, ceil_mode, count_include_pad, divisor_override


@implements(*_AVG_SPATIAL)
@_on_quant_input
def avg_pool_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Average pooling: the accumulator with ``scale / divisor`` (see the module docstring).

    Example:
        >>> import torch
        >>> import torch.nn.functional as F
        >>> from brevitas.quant_tensor import QuantTensor
        >>> x = QuantTensor(torch.ones(1, 1, 2, 2), 1.0, 0.0, 4, signed=False)
        >>> y = F.avg_pool2d(x, 2)
        >>> int(y.int()), float(y.scale), int(y.bit_width)
        (4, 0.25, 6)
    """
    x, rest, kw = _split_input(args, kwargs)
    out = func(x.value, *_to_plain(rest), **_to_plain(kw))
    n = _AVG_SPATIAL[func]
    kernel_size, padding, ceil_mode, count_include_pad, divisor_override = _avg_pool_args(*rest, **kw)
    kernel = _prod(_ntuple(kernel_size, n))
    divisor = kernel
    if divisor_override is not None:
        if not _is_number(divisor_override) or divisor_override == 0:
            return out
        divisor = divisor_override
    elif ceil_mode or (any(p != 0 for p in _ntuple(padding, n)) and not count_include_pad):
        return out  # the divisor differs between windows
    if not x.is_valid:
        return x._non_valid(out)
    if not _constant_along(x, _last_dims(x, n)):
        return out
    return _accumulator(x, out, kernel, divisor)


@implements(*_ADAPTIVE_AVG_SPATIAL)
@_on_quant_input
def adaptive_avg_pool_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Adaptive average pooling: an accumulator when every window has the same size, else a plain tensor.

    Windows are uniform exactly when each input size is a multiple of the
    matching output size.
    """
    x, rest, kw = _split_input(args, kwargs)
    out = func(x.value, *_to_plain(rest), **_to_plain(kw))
    n = _ADAPTIVE_AVG_SPATIAL[func]
    output_size = rest[0] if rest else kw["output_size"]
    in_sizes = tuple(x.value.shape[-n:])
    out_sizes = tuple(i if o is None else o for i, o in zip(in_sizes, _ntuple(output_size, n)))
    if any(o == 0 or i % o != 0 for i, o in zip(in_sizes, out_sizes)):
        return out
    if not x.is_valid:
        return x._non_valid(out)
    if not _constant_along(x, _last_dims(x, n)):
        return out
    kernel = _prod(tuple(i // o for i, o in zip(in_sizes, out_sizes)))
    return _accumulator(x, out, kernel, kernel)


# --------------------------------------------------------------------------- shapes


@implements(torch.flatten)
@_on_quant_input
def flatten_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``torch.flatten``: see :meth:`QuantTensor.flatten`."""
    x, rest, kw = _split_input(args, kwargs)
    return x.flatten(*rest, **kw)


@implements(torch.transpose, torch.swapaxes, torch.swapdims)
@_on_quant_input
def transpose_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``torch.transpose``: per-channel metadata is transposed alongside."""
    x, rest, kw = _split_input(args, kwargs)
    return x.transpose(*rest, **kw)


@implements(torch.permute)
@_on_quant_input
def permute_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``torch.permute``: per-channel metadata is permuted alongside."""
    x, rest, kw = _split_input(args, kwargs)
    return x.permute(*rest, **kw)


@implements(torch.clone)
@_on_quant_input
def clone_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    x, rest, kw = _split_input(args, kwargs)
    out = func(x.value, *_to_plain(rest), **_to_plain(kw))
    return x._with_value(out) if x.is_valid else x._non_valid(out)


@implements(
    torch.reshape,
    torch.squeeze,
    torch.unsqueeze,
    torch.flip,
    torch.roll,
    torch.narrow,
    torch.select,
    torch.index_select,
    torch.gather,
    torch.t,
    torch.movedim,
    torch.chunk,
    torch.split,
    torch.tensor_split,
    torch.unbind,
    F.pixel_shuffle,
    F.pixel_unshuffle,
)
@_on_quant_input
def per_tensor_movement_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Functions that only move or select elements: metadata kept when per tensor, else plain tensors."""
    x, rest, kw = _split_input(args, kwargs)
    out = func(x.value, *_to_plain(rest), **_to_plain(kw))
    if x.is_valid and not x.is_per_tensor:
        return out
    make = x._with_value if x.is_valid else x._non_valid
    if isinstance(out, (list, tuple)):
        return type(out)(make(t) for t in out)
    return make(out)


# --------------------------------------------------------------------------- arithmetic


def _plain_binary(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Two operands and at most ``alpha=1``: the operator form applies."""
    return (
        len(args) == 2
        and set(kwargs) <= {"alpha"}
        and _is_number(kwargs.get("alpha", 1))
        and (kwargs.get("alpha", 1) == 1)
    )


@implements(torch.add)
def add_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``torch.add(a, b)`` is ``a + b``; with ``alpha`` or ``out`` a plain tensor."""
    if _plain_binary(args, kwargs):
        return args[0] + args[1]
    return fallback(func, *args, **kwargs)


@implements(torch.sub, torch.subtract)
def sub_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``torch.sub(a, b)`` is ``a - b``; with ``alpha`` or ``out`` a plain tensor."""
    if _plain_binary(args, kwargs):
        return args[0] - args[1]
    return fallback(func, *args, **kwargs)


@implements(torch.mul, torch.multiply)
def mul_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``torch.mul(a, b)`` is ``a * b``."""
    if len(args) == 2 and not kwargs:
        return args[0] * args[1]
    return fallback(func, *args, **kwargs)


@implements(torch.div, torch.divide, torch.true_divide)
def div_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``torch.div(a, b)`` is ``a / b``; with a rounding mode a plain tensor."""
    if len(args) == 2 and not kwargs:
        return args[0] / args[1]
    return fallback(func, *args, **kwargs)


@implements(torch.neg, torch.negative)
def neg_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if len(args) == 1 and not kwargs and isinstance(args[0], QuantTensor):
        return -args[0]
    return fallback(func, *args, **kwargs)


@implements(torch.abs, torch.absolute)
def abs_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if len(args) == 1 and not kwargs and isinstance(args[0], QuantTensor):
        return abs(args[0])
    return fallback(func, *args, **kwargs)


# --------------------------------------------------------------------------- cat


def _cat_args(tensors: Any, dim: int = 0, axis: int | None = None, out: Any = None) -> tuple[Any, int, Any]:
    return tensors, dim if axis is None else axis, out


@implements(torch.cat, torch.concat, torch.concatenate)
def cat_handler(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Concatenate QuantTensors.

    * Metadata constant along ``dim`` (per tensor, or per channel on another
      dim): scales and zero-points must be equal. In inference mode a
      difference raises; in training mode it gives a non-valid QuantTensor
      (always non-valid under ``torch.compile``, which cannot look at data).
    * Per-channel metadata along ``dim``: concatenated alongside the values.

    The bit-width is the widest operand's (one more bit for an unsigned
    operand joined with a signed one). A plain tensor among the operands, or
    ``out=``, gives a plain tensor.

    Raises:
        QuantTensorError: inference mode and different scales or zero-points.
    """
    tensors, dim, out = _cat_args(*args, **kwargs)
    values = [_to_plain(t) for t in tensors]
    if out is not None:
        return func(values, dim, out=out)
    result = func(values, dim)
    if not all(isinstance(t, QuantTensor) for t in tensors):
        return result
    qts: list[QuantTensor] = list(tensors)
    training = _or_training(*(q.training for q in qts))
    if not all(q.is_valid for q in qts):
        return QuantTensor(result, training=training)
    ndim = result.dim()
    d = dim % ndim
    scales: list[Tensor] = []
    zero_points: list[Tensor] = []
    for q in qts:
        assert q.scale is not None and q.zero_point is not None
        if _padded_shape(q.scale, ndim) is None or _padded_shape(q.zero_point, ndim) is None:
            return result
        scales.append(_padded(q.scale, ndim))
        zero_points.append(_padded(q.zero_point, ndim))
    signed = any(bool(q.signed) for q in qts)
    widths = [_widened(q.bit_width, bool(q.signed), signed) for q in qts if q.bit_width is not None]
    bit_width = reduce(torch.maximum, widths)
    narrow = all(q.narrow_range for q in qts) and len({q.signed for q in qts}) == 1
    along = any(t.shape[d] != 1 for t in scales + zero_points)
    if along:
        scale = _cat_metadata(scales, values, d)
        zero_point = _cat_metadata(zero_points, values, d)
        if scale is None or zero_point is None:
            return result
        return QuantTensor(result, scale, zero_point, bit_width, signed, narrow, training)
    first = qts[0]
    if all(q.scale is first.scale and q.zero_point is first.zero_point for q in qts):
        # The same tensor objects (e.g. cat([x, relu(x)])) are equal without looking at data.
        return QuantTensor(result, first.scale, first.zero_point, bit_width, signed, narrow, training)
    same = torch.stack(
        [torch.isclose(s, first.scale).all() & (z == first.zero_point).all() for s, z in zip(scales, zero_points)]
    ).all()
    if training:
        if _data_holds(same) is not True:
            return QuantTensor(result, training=training)
    else:
        _check_data(
            same,
            lambda: QuantTensorError(
                "Concatenating QuantTensors in inference mode needs equal scales and zero-points, got scales "
                + ", ".join(_describe(q.scale) for q in qts)
                + " and zero-points "
                + ", ".join(_describe(q.zero_point) for q in qts)
                + ". Requantize the operands with one shared quantizer, or concatenate the plain .value tensors."
            ),
            "Concatenating QuantTensors in inference mode needs equal scales and zero-points, and they differ; "
            "run eagerly to see the values. Requantize the operands with one shared quantizer, or concatenate "
            "the plain .value tensors.",
        )
    return QuantTensor(result, first.scale, first.zero_point, bit_width, signed, narrow, training)


def _cat_metadata(metas: list[Tensor], values: list[Tensor], d: int) -> Tensor | None:
    """Concatenate per-channel metadata along ``d``; None when the other dims disagree."""
    others = {tuple(s for i, s in enumerate(t.shape) if i != d) for t in metas}
    if len(others) != 1:
        return None
    expanded = []
    for t, v in zip(metas, values):
        shape = list(t.shape)
        if shape[d] not in (1, v.shape[d]):
            return None
        shape[d] = v.shape[d]
        expanded.append(t.expand(shape))
    return torch.cat(expanded, d)
