"""QuantTensor: a quantized tensor in dequantized format, with its metadata.

A :class:`QuantTensor` carries ``value`` (the dequantized tensor, what a float
layer would consume) together with the ``scale``, ``zero_point``,
``bit_width``, ``signed``, ``narrow_range`` and ``training`` flag that produced
it. The integer representation is ``round(value / scale + zero_point)``
(:meth:`QuantTensor.int`).

*Valid* means that ``scale``, ``zero_point``, ``bit_width`` and ``signed`` are
all known; a *non-valid* QuantTensor only wraps a tensor quantized earlier
(e.g. the sum of two QuantTensors with different scales in training mode).

Arithmetic is generalized fixed point, and metadata is only ever kept where it
stays true:

* ``a + b`` needs equal scales and zero-points in inference mode (a
  :class:`~brevitas.errors.QuantTensorError` naming both scales otherwise);
  in training mode different scales give a non-valid result. The bit-width of
  the sum is sized to hold it.
* ``a * b`` multiplies scales and adds bit-widths (zero-points must be zero);
  ``-a``, ``abs(a)``, multiplying or dividing by a Python number update the
  metadata; anything else falls back to a plain tensor.
* torch functions (pooling, ReLU, dropout, nearest interpolation, cat,
  flatten, ...) dispatch to :mod:`brevitas.quant_tensor.torch_handler`, which
  keeps metadata where it stays valid and returns plain tensors otherwise. An
  unhandled function always returns plain tensors, never stale metadata.

Design choice (measured with torch 2.13): ``QuantTensor`` is a plain Python
class with ``__slots__`` implementing the ``__torch_function__`` protocol, not
a ``torch.Tensor`` subclass. Dynamo inlines ``__torch_function__`` on such
objects, so a function that builds QuantTensors, calls ``F.relu`` /
``F.max_pool2d`` / ``torch.flatten`` / ``torch.cat`` / ``+`` on them and
returns ``.value`` compiles with ``torch.compile(fullgraph=True)`` and
``torch._dynamo.explain`` reports zero graph breaks (a test checks it). Every
decision that picks the *kind* of result (valid, non-valid, plain tensor) is
taken from Python-level facts only (flags, shapes, Python numbers), so it
traces. Checks on tensor *data* (equal scales, zero zero-points) run eagerly
with a :class:`~brevitas.errors.QuantTensorError`; while compiling they become
runtime assertions (``torch._assert_async``: a ``RuntimeError`` with a static
message on CPU, a device-side assertion on CUDA) where eager raises, and take the conservative branch where
eager would choose a result by data: under ``torch.compile`` a training-mode
sum or concatenation is non-valid even when the scales happen to be equal,
and a product whose zero-points are not zero fails the assertion where eager
falls back to a plain tensor.

Example:
    >>> import torch
    >>> from brevitas.quant_tensor import QuantTensor
    >>> s = torch.tensor(0.5)
    >>> x = QuantTensor(torch.tensor([-1.0, 0.5, 1.5]), s, torch.tensor(0.0), torch.tensor(4.0), signed=True)
    >>> x.int().tolist()
    [-2, 1, 3]
    >>> y = x + x
    >>> (y.int().tolist(), int(y.bit_width))
    ([-4, 2, 6], 5)
    >>> z = x * x
    >>> (float(z.scale), int(z.bit_width))
    (0.25, 8)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from brevitas.errors import QuantTensorError
from brevitas.function.ops import int_bounds

__all__ = ["QuantTensor", "to_tensor"]

_Meta = Tensor | float | int | None


# --------------------------------------------------------------------------- helpers


def _describe(t: Tensor | None) -> str:
    """Short human description of a metadata tensor for error messages (eager only)."""
    if t is None:
        return "None"
    d = t.detach()
    if d.numel() <= 8:
        values = [f"{float(v):.7g}" for v in d.flatten().tolist()]
        shown = values[0] if d.dim() == 0 else "[" + ", ".join(values) + "]"
        return f"{shown} (shape {tuple(d.shape)})"
    return f"tensor of shape {tuple(d.shape)} with min {float(d.min()):.6g} and max {float(d.max()):.6g}"


def _check_data(cond: Tensor, make_error: Callable[[], QuantTensorError], compiled_message: str) -> None:
    """Check a condition on tensor *data*.

    Eager: raise ``make_error()`` (whose message may show tensor values) when
    ``cond`` is false. While compiling: a runtime assertion carrying
    ``compiled_message`` (static text: values cannot be formatted inside a
    graph), so the graph does not break.
    """
    if torch.compiler.is_compiling():
        torch._assert_async(cond, compiled_message)
    elif not bool(cond):
        raise make_error()


def _data_holds(cond: Tensor) -> bool | None:
    """Evaluate a data condition eagerly; ``None`` while compiling (unknown)."""
    if torch.compiler.is_compiling():
        return None
    return bool(cond)


def _or_training(*flags: bool | None) -> bool | None:
    known = [f for f in flags if f is not None]
    if not known:
        return None
    return any(known)


def _padded_shape(t: Tensor, ndim: int) -> tuple[int, ...] | None:
    """Shape of ``t`` left-padded with ones to ``ndim`` dims (broadcast view); None if ``t`` has more dims."""
    if t.dim() > ndim:
        return None
    return (1,) * (ndim - t.dim()) + tuple(t.shape)


def _padded(t: Tensor, ndim: int) -> Tensor:
    shape = _padded_shape(t, ndim)
    assert shape is not None
    return t.reshape(shape)


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _to_plain(obj: Any) -> Any:
    """Replace every QuantTensor in a (nested) argument structure by its value."""
    if isinstance(obj, QuantTensor):
        return obj.value
    if isinstance(obj, (list, tuple)):
        mapped = [_to_plain(o) for o in obj]
        return mapped if isinstance(obj, list) else tuple(mapped)
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def _int_bounds(signed: bool, narrow_range: bool, bit_width: Tensor) -> tuple[Tensor, Tensor]:
    """Smallest and largest integer of a ``bit_width``-bit range, as tensors (1-bit signed: binary ``[-1, 1]``)."""
    return int_bounds(signed, narrow_range, bit_width)


def _widened(bit_width: Tensor, signed: bool, out_signed: bool) -> Tensor:
    """Bits needed to hold a ``bit_width`` range once the result is ``out_signed``."""
    return bit_width + 1 if (out_signed and not signed) else bit_width


# --------------------------------------------------------------------------- the class


class QuantTensor:
    """A quantized tensor in dequantized format with its quantization metadata.

    Args:
        value: the dequantized tensor ``scale * (int - zero_point)``.
        scale: scale factor, broadcastable against ``value`` (scalar per
            tensor, e.g. ``(1, C, 1, 1)`` per channel). ``None`` when unknown.
        zero_point: zero-point in the integer domain, broadcastable like ``scale``.
        bit_width: number of bits of the integer representation (scalar tensor).
        signed: whether the integer range is signed (a Python bool).
        narrow_range: whether the most negative (signed) or the largest
            (unsigned) code is excluded.
        training: the mode of the layer that produced it; ``None`` when
            unknown (then checks are enforced as in inference mode).

    Python numbers given for ``scale``, ``zero_point`` or ``bit_width`` become
    tensors on ``value``'s device. Construction is cheap and does not check
    the grid: call :meth:`check_is_valid` for that.

    Raises:
        QuantTensorError: ``value`` is not a tensor, or a flag is not a Python bool.

    Example:
        >>> import torch
        >>> q = QuantTensor(torch.tensor([0.0, 0.25]), 0.25, 0.0, 8, signed=False)
        >>> q.is_valid, q.int().tolist()
        (True, [0, 1])
        >>> QuantTensor(torch.ones(2)).is_valid
        False
    """

    __slots__ = ("value", "scale", "zero_point", "bit_width", "signed", "narrow_range", "training")

    value: Tensor
    scale: Tensor | None
    zero_point: Tensor | None
    bit_width: Tensor | None
    signed: bool | None
    narrow_range: bool
    training: bool | None

    def __init__(
        self,
        value: Tensor,
        scale: _Meta = None,
        zero_point: _Meta = None,
        bit_width: _Meta = None,
        signed: bool | None = None,
        narrow_range: bool = False,
        training: bool | None = None,
    ) -> None:
        if not isinstance(value, Tensor):
            raise QuantTensorError(
                f"QuantTensor value must be a torch.Tensor, got {type(value).__name__}; "
                "wrap it first, e.g. QuantTensor(torch.as_tensor(x), ...)."
            )
        for name, flag, allow_none in (
            ("signed", signed, True),
            ("narrow_range", narrow_range, False),
            ("training", training, True),
        ):
            if not (isinstance(flag, bool) or (allow_none and flag is None)):
                accepted = "True, False or None" if allow_none else "True or False"
                raise QuantTensorError(
                    f"QuantTensor {name} must be a Python bool ({accepted}), got {type(flag).__name__}; "
                    f"write {name}=bool(...) when it comes from a tensor."
                )
        self.value = value
        self.scale = self._as_meta(value, scale)
        self.zero_point = self._as_meta(value, zero_point)
        self.bit_width = self._as_meta(value, bit_width)
        self.signed = signed
        self.narrow_range = narrow_range
        self.training = training

    @staticmethod
    def _as_meta(value: Tensor, x: _Meta) -> Tensor | None:
        if x is None or isinstance(x, Tensor):
            return x
        if _is_number(x):
            return value.new_tensor(float(x))
        raise QuantTensorError(
            f"QuantTensor scale, zero_point and bit_width must be tensors, Python numbers or None, "
            f"got {type(x).__name__}."
        )

    # ----------------------------------------------------------------- construction helpers

    @classmethod
    def from_tuple(
        cls,
        value: Tensor,
        scale: _Meta,
        zero_point: _Meta,
        bit_width: _Meta,
        signed: bool | None,
        narrow_range: bool = False,
        training: bool | None = None,
    ) -> QuantTensor:
        """Build from a quantizer's ``(value, scale, zero_point, bit_width)`` plus the flags.

        Example:
            >>> import torch
            >>> out = (torch.tensor([1.0]), torch.tensor(1.0), torch.tensor(0.0), torch.tensor(8.0))
            >>> QuantTensor.from_tuple(*out, signed=True, training=False).int().tolist()
            [1]
        """
        return cls(value, scale, zero_point, bit_width, signed, narrow_range, training)

    def replace(self, **changes: Any) -> QuantTensor:
        """A copy with some fields replaced (like ``dataclasses.replace``).

        Example:
            >>> import torch
            >>> QuantTensor(torch.ones(1), 1.0, 0.0, 8, True).replace(training=True).training
            True
        """
        fields = {name: getattr(self, name) for name in self.__slots__}
        unknown = set(changes) - set(fields)
        if unknown:
            raise QuantTensorError(
                f"QuantTensor.replace got unknown field(s) {sorted(unknown)}; the fields are {list(self.__slots__)}."
            )
        fields.update(changes)
        return QuantTensor(**fields)

    def _with_value(self, value: Tensor) -> QuantTensor:
        """Same metadata, new value (the caller guarantees it stays true)."""
        return QuantTensor(
            value, self.scale, self.zero_point, self.bit_width, self.signed, self.narrow_range, self.training
        )

    def _non_valid(self, value: Tensor, training: bool | None = None) -> QuantTensor:
        """A non-valid QuantTensor (no metadata) in this one's training mode."""
        return QuantTensor(value, training=self.training if training is None else training)

    # ----------------------------------------------------------------- validity and integers

    @property
    def is_valid(self) -> bool:
        """Scale, zero-point, bit-width and signedness are all known."""
        return (
            self.scale is not None
            and self.zero_point is not None
            and self.bit_width is not None
            and self.signed is not None
        )

    @property
    def is_not_none(self) -> bool:
        """Alias of :attr:`is_valid` (the original Brevitas name)."""
        return self.is_valid

    @property
    def tensor(self) -> Tensor:
        """The dequantized value (alias of ``value``)."""
        return self.value

    def _missing(self) -> list[str]:
        return [n for n in ("scale", "zero_point", "bit_width", "signed") if getattr(self, n) is None]

    def _require_valid(self, what: str) -> None:
        if not self.is_valid:
            raise QuantTensorError(
                f"{what} needs a valid QuantTensor, but this one has no {', '.join(self._missing())}. "
                "A non-valid QuantTensor only wraps an already quantized tensor: use .value for the float data, "
                "or requantize it with a quantizer that returns a QuantTensor."
            )

    def _pre_round_int(self) -> Tensor:
        assert self.scale is not None and self.zero_point is not None
        return self.value / self.scale + self.zero_point

    def int(self, float_datatype: bool = False) -> Tensor:
        """The integer representation ``round(value / scale + zero_point)``.

        Rounding only removes floating-point noise: on grid values the result
        is exact. Returned as ``torch.int64`` (enough for any bit-width that
        the float value represents exactly), or in the value's float dtype
        with ``float_datatype=True``.

        Raises:
            QuantTensorError: the QuantTensor is not valid.

        Example:
            >>> import torch
            >>> q = QuantTensor(torch.tensor([-0.3, 0.6]), 0.1, 2.0, 8, signed=True)
            >>> q.int().tolist()
            [-1, 8]
        """
        self._require_valid("QuantTensor.int()")
        ints = torch.round(self._pre_round_int())
        return ints if float_datatype else ints.to(torch.int64)

    def check_is_valid(self) -> QuantTensor:
        """Verify that the metadata is complete and true; return ``self``.

        Checks: every metadata field is set; scales are positive; the
        bit-width is a positive integer; zero-points are integers inside the
        integer range (so zero is representable); every element is on the
        grid (``value / scale + zero_point`` is an integer up to float noise)
        and inside ``[min_int, max_int]`` for ``bit_width``, ``signed`` and
        ``narrow_range`` (a 1-bit signed range is binary ``[-1, 1]``, see
        :func:`brevitas.function.ops.int_bounds`). Meant for tests and debugging (it synchronizes).

        Raises:
            QuantTensorError: naming the first violated property.

        Example:
            >>> import torch
            >>> _ = QuantTensor(torch.tensor([0.5]), 0.5, 0.0, 2, signed=False).check_is_valid()
            >>> QuantTensor(torch.tensor([2.0]), 0.5, 0.0, 2, signed=False).check_is_valid()
            Traceback (most recent call last):
            ...
            brevitas.errors.QuantTensorError: 1 of 1 elements are outside the 2-bit unsigned range [0, 3]: ...
        """
        self._require_valid("QuantTensor.check_is_valid()")
        assert self.scale is not None and self.zero_point is not None and self.bit_width is not None
        assert self.signed is not None
        scale, zp, bw = self.scale.detach(), self.zero_point.detach(), self.bit_width.detach()
        if not bool((scale > 0).all()):
            raise QuantTensorError(f"QuantTensor scale must be positive everywhere, got {_describe(scale)}.")
        if not bool((bw == torch.round(bw)).all() and (bw >= 1).all()):
            raise QuantTensorError(f"QuantTensor bit_width must be a positive integer, got {_describe(bw)}.")
        low, high = _int_bounds(self.signed, self.narrow_range, bw)
        kind = ("signed" if self.signed else "unsigned") + (" narrow" if self.narrow_range else "")
        range_text = f"{int(bw.max())}-bit {kind} range [{int(low.min())}, {int(high.max())}]"
        if not bool((zp == torch.round(zp)).all()):
            raise QuantTensorError(f"QuantTensor zero_point must hold integers, got {_describe(zp)}.")
        if not bool(((zp >= low) & (zp <= high)).all()):
            raise QuantTensorError(
                f"QuantTensor zero_point {_describe(zp)} is outside the {range_text}, so zero is not representable."
            )
        pre = self._pre_round_int().detach()
        rounded = torch.round(pre)
        # Float noise grows with the magnitudes involved (value / scale and zero_point cancel).
        tol = 1e-3 + 16 * torch.finfo(pre.dtype).eps * ((self.value / scale).abs().detach() + zp.abs())
        off_grid = (pre - rounded).abs() > tol
        if bool(off_grid.any()):
            idx = tuple(int(i) for i in off_grid.nonzero()[0])
            raise QuantTensorError(
                f"{int(off_grid.sum())} of {pre.numel()} elements are off the grid of scale {_describe(scale)} and "
                f"zero_point {_describe(zp)}: value {float(self.value[idx]):.8g} at index {idx} gives "
                f"value / scale + zero_point = {float(pre[idx]):.8g}, not an integer."
            )
        outside = (rounded < low) | (rounded > high)
        if bool(outside.any()):
            idx = tuple(int(i) for i in outside.nonzero()[0])
            raise QuantTensorError(
                f"{int(outside.sum())} of {pre.numel()} elements are outside the {range_text}: "
                f"integer {int(rounded[idx])} at index {idx}."
            )
        return self

    # ----------------------------------------------------------------- tensor-like attributes

    @property
    def shape(self) -> torch.Size:
        return self.value.shape

    @property
    def ndim(self) -> int:
        return self.value.dim()

    @property
    def device(self) -> torch.device:
        return self.value.device

    @property
    def dtype(self) -> torch.dtype:
        return self.value.dtype

    @property
    def requires_grad(self) -> bool:
        return self.value.requires_grad

    def size(self, dim: int | None = None) -> Any:
        """``value.size(dim)``."""
        return self.value.size() if dim is None else self.value.size(dim)

    def dim(self) -> int:
        return self.value.dim()

    def numel(self) -> int:
        return self.value.numel()

    def __len__(self) -> int:
        return len(self.value)

    def __getattr__(self, name: str) -> Any:
        """Other tensor attributes come from ``value`` and give plain tensors (no metadata).

        In-place methods (``add_``, ``mul_``, ...) are refused: they would
        change the value under its metadata.
        """
        if name.startswith("_") or name in QuantTensor.__slots__:
            raise AttributeError(f"'QuantTensor' object has no attribute {name!r}")
        if name.endswith("_"):
            raise AttributeError(
                f"QuantTensor has no in-place {name}(): it would change the value under its scale. Use the "
                f"out-of-place form (a plain tensor), or call x.value.{name}(...) on the plain tensor."
            )
        return getattr(self.value, name)

    def __repr__(self) -> str:
        return (
            f"QuantTensor(value={self.value!r}, scale={self.scale!r}, zero_point={self.zero_point!r}, "
            f"bit_width={self.bit_width!r}, signed={self.signed}, narrow_range={self.narrow_range}, "
            f"training={self.training})"
        )

    # ----------------------------------------------------------------- device / autograd

    def _map_tensors(self, fn: Callable[[Tensor], Tensor]) -> QuantTensor:
        def opt(t: Tensor | None) -> Tensor | None:
            return None if t is None else fn(t)

        return QuantTensor(
            fn(self.value),
            opt(self.scale),
            opt(self.zero_point),
            opt(self.bit_width),
            self.signed,
            self.narrow_range,
            self.training,
        )

    def detach(self) -> QuantTensor:
        """Detach value and metadata from the autograd graph."""
        return self._map_tensors(lambda t: t.detach())

    def to(self, *args: Any, **kwargs: Any) -> QuantTensor | Tensor:
        """``value.to(...)``; metadata follows to the same device (and float dtype).

        Converting to a non-floating dtype returns the plain converted value,
        since a dequantized integer tensor has no scale to carry.
        """
        value = self.value.to(*args, **kwargs)
        if not value.is_floating_point():
            return value

        def move(t: Tensor | None, dtype: torch.dtype | None) -> Tensor | None:
            if t is None:
                return None
            return t.to(device=value.device, dtype=dtype if t.is_floating_point() else None)

        return QuantTensor(
            value,
            move(self.scale, value.dtype),
            move(self.zero_point, value.dtype),
            move(self.bit_width, None),
            self.signed,
            self.narrow_range,
            self.training,
        )

    def cpu(self) -> QuantTensor:
        return self._map_tensors(lambda t: t.cpu())

    def contiguous(self) -> QuantTensor:
        return self._with_value(self.value.contiguous())

    def clone(self) -> QuantTensor:
        return self._map_tensors(lambda t: t.clone())

    # ----------------------------------------------------------------- shape operations

    @property
    def is_per_tensor(self) -> bool:
        """Scale and zero-point are single numbers (valid QuantTensors only)."""
        return (
            self.scale is not None
            and self.zero_point is not None
            and self.scale.numel() == 1
            and self.zero_point.numel() == 1
        )

    def _keep_if_per_tensor(self, value: Tensor) -> QuantTensor | Tensor:
        """Metadata survives any rearrangement of elements when it is per tensor.

        A non-valid input gives a non-valid result; per-channel metadata a plain tensor.
        """
        if not self.is_valid:
            return self._non_valid(value)
        if self.is_per_tensor:
            return self._with_value(value)
        return value

    def __getitem__(self, index: Any) -> QuantTensor | Tensor:
        """Index the value; metadata is kept when per tensor, else a plain tensor."""
        return self._keep_if_per_tensor(self.value[_to_plain(index)])

    def view(self, *shape: Any) -> QuantTensor | Tensor:
        """``value.view(...)``; metadata kept when per tensor, else a plain tensor."""
        return self._keep_if_per_tensor(self.value.view(*shape))

    def reshape(self, *shape: Any) -> QuantTensor | Tensor:
        """``value.reshape(...)``; metadata kept when per tensor, else a plain tensor."""
        return self._keep_if_per_tensor(self.value.reshape(*shape))

    def squeeze(self, *dim: Any) -> QuantTensor | Tensor:
        return self._keep_if_per_tensor(self.value.squeeze(*dim))

    def unsqueeze(self, dim: int) -> QuantTensor | Tensor:
        return self._keep_if_per_tensor(self.value.unsqueeze(dim))

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> QuantTensor | Tensor:
        """``value.flatten(...)``.

        Metadata is kept when per tensor, or when per-channel metadata is
        either constant over all the flattened dims or varies over all of them
        (it is then flattened alongside); otherwise a plain tensor. A
        non-valid input gives a non-valid result.

        Example:
            >>> import torch
            >>> q = QuantTensor(torch.zeros(2, 3, 4), torch.full((1, 3, 1), 0.1), 0.0, 8, True)
            >>> type(q.flatten(2)).__name__, type(q.flatten(1)).__name__
            ('QuantTensor', 'Tensor')
        """
        value = self.value.flatten(start_dim, end_dim)
        if not self.is_valid:
            return self._non_valid(value)
        if self.is_per_tensor:
            return self._with_value(value)
        assert self.scale is not None and self.zero_point is not None
        ndim = self.value.dim()
        if ndim == 0:
            return value
        start, end = start_dim % ndim, end_dim % ndim
        dims = range(start, end + 1)
        metas = []
        for t in (self.scale, self.zero_point):
            shape = _padded_shape(t, ndim)
            if shape is None:
                return value
            constant = all(shape[d] == 1 for d in dims)
            full = all(shape[d] == self.value.shape[d] for d in dims)
            if not (constant or full):
                return value
            metas.append(_padded(t, ndim).flatten(start, end))
        return QuantTensor(value, metas[0], metas[1], self.bit_width, self.signed, self.narrow_range, self.training)

    def permute(self, *dims: Any) -> QuantTensor | Tensor:
        """``value.permute(...)``; per-channel metadata is permuted alongside."""
        order = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else tuple(dims)
        value = self.value.permute(order)
        if not self.is_valid:
            return self._non_valid(value)
        if self.is_per_tensor:
            return self._with_value(value)
        assert self.scale is not None and self.zero_point is not None
        ndim = self.value.dim()
        if _padded_shape(self.scale, ndim) is None or _padded_shape(self.zero_point, ndim) is None:
            return value
        return QuantTensor(
            value,
            _padded(self.scale, ndim).permute(order),
            _padded(self.zero_point, ndim).permute(order),
            self.bit_width,
            self.signed,
            self.narrow_range,
            self.training,
        )

    def transpose(self, dim0: int, dim1: int) -> QuantTensor | Tensor:
        """``value.transpose(...)``; per-channel metadata is transposed alongside."""
        ndim = self.value.dim()
        if ndim < 2:
            return self._keep_if_per_tensor(self.value.transpose(dim0, dim1))
        order = list(range(ndim))
        a, b = dim0 % ndim, dim1 % ndim
        order[a], order[b] = order[b], order[a]
        return self.permute(order)

    # ----------------------------------------------------------------- arithmetic

    def __neg__(self) -> QuantTensor:
        """``-x``: zero-point negated; one more bit unless the range is signed and narrow.

        The negated range never uses the most negative code, so the result is
        signed and narrow.
        """
        if not self.is_valid:
            return self._non_valid(-self.value)
        assert self.zero_point is not None and self.bit_width is not None
        keep_bits = bool(self.signed) and self.narrow_range
        return QuantTensor(
            -self.value,
            self.scale,
            -self.zero_point,
            self.bit_width if keep_bits else self.bit_width + 1,
            True,
            True,
            self.training,
        )

    def __abs__(self) -> QuantTensor:
        """``abs(x)``: unsigned, same bit-width, zero-point 0 (``|int - zero_point|`` fits)."""
        if not self.is_valid:
            return self._non_valid(self.value.abs())
        assert self.zero_point is not None
        return QuantTensor(
            self.value.abs(),
            self.scale,
            torch.zeros_like(self.zero_point),
            self.bit_width,
            False,
            False,
            self.training,
        )

    def abs(self) -> QuantTensor:
        return self.__abs__()

    def __add__(self, other: Any) -> QuantTensor | Tensor:
        """Sum. See the module docstring for the rules.

        Raises:
            QuantTensorError: in inference mode, when both operands are valid
                and their scales or zero-points differ.
        """
        if not isinstance(other, QuantTensor):
            return self.value + _to_plain(other)
        value = self.value + other.value
        training = _or_training(self.training, other.training)
        if not (self.is_valid and other.is_valid):
            return self._non_valid(value, training)
        assert self.scale is not None and other.scale is not None
        assert self.zero_point is not None and other.zero_point is not None
        assert self.bit_width is not None and other.bit_width is not None
        assert self.signed is not None and other.signed is not None
        # The same tensor objects (e.g. x + relu(x)) are equal without looking at data.
        identical_scale = self.scale is other.scale
        identical_zero_point = identical_scale and self.zero_point is other.zero_point
        if training:
            if not identical_scale and _data_holds(torch.isclose(self.scale, other.scale).all()) is not True:
                return self._non_valid(value, training)
        elif not identical_zero_point:
            _check_data(
                torch.isclose(self.scale, other.scale).all() & (self.zero_point == other.zero_point).all(),
                lambda: QuantTensorError(
                    "Adding QuantTensors in inference mode needs equal scales and zero-points, got "
                    f"scale {_describe(self.scale)} and zero_point {_describe(self.zero_point)} on the left, "
                    f"scale {_describe(other.scale)} and zero_point {_describe(other.zero_point)} on the right. "
                    "Requantize both operands with one shared quantizer (e.g. the same QuantIdentity), "
                    "or add the plain tensors a.value + b.value."
                ),
                "Adding QuantTensors in inference mode needs equal scales and zero-points, and they differ "
                f"(scale shapes {tuple(self.scale.shape)} and {tuple(other.scale.shape)}); run eagerly to see the "
                "values. Requantize both operands with one shared quantizer, or add a.value + b.value.",
            )
        signed = self.signed or other.signed
        bit_width = (
            torch.maximum(
                _widened(self.bit_width, self.signed, signed), _widened(other.bit_width, other.signed, signed)
            )
            + 1
        )
        return QuantTensor(value, self.scale, self.zero_point + other.zero_point, bit_width, signed, False, training)

    def __radd__(self, other: Any) -> QuantTensor | Tensor:
        if isinstance(other, QuantTensor):
            return other.__add__(self)
        return _to_plain(other) + self.value

    def __sub__(self, other: Any) -> QuantTensor | Tensor:
        if isinstance(other, QuantTensor):
            return self.__add__(-other)
        return self.value - _to_plain(other)

    def __rsub__(self, other: Any) -> QuantTensor | Tensor:
        if isinstance(other, QuantTensor):
            return other.__sub__(self)
        return _to_plain(other) - self.value

    def _scaled_by_number(self, factor: float, divide: bool) -> QuantTensor | Tensor:
        """Multiply or divide by a Python number: the scale follows, the integers do not change."""
        value = self.value / factor if divide else self.value * factor
        if factor == 0:
            return value
        if not self.is_valid:
            return self._non_valid(value)
        base = self if factor > 0 else -self
        assert base.scale is not None
        magnitude = abs(factor)
        scale = base.scale / magnitude if divide else base.scale * magnitude
        return QuantTensor(value, scale, base.zero_point, base.bit_width, base.signed, base.narrow_range, base.training)

    def __mul__(self, other: Any) -> QuantTensor | Tensor:
        """Product. Two valid QuantTensors: scales multiply, bit-widths add.

        Both zero-points must be zero; when they are not, the eager result is
        a plain tensor (under ``torch.compile``, a runtime assertion fails).
        A positive Python number scales the scale; any other operand gives a
        plain tensor.
        """
        if _is_number(other):
            return self._scaled_by_number(other, divide=False)
        if not isinstance(other, QuantTensor):
            return self.value * _to_plain(other)
        value = self.value * other.value
        training = _or_training(self.training, other.training)
        if not (self.is_valid and other.is_valid):
            return self._non_valid(value, training)
        assert self.scale is not None and other.scale is not None
        assert self.zero_point is not None and other.zero_point is not None
        assert self.bit_width is not None and other.bit_width is not None
        zero_zero_points = (self.zero_point == 0).all() & (other.zero_point == 0).all()
        if torch.compiler.is_compiling():
            torch._assert_async(
                zero_zero_points,
                "Multiplying QuantTensors inside a compiled graph needs zero zero-points on both operands "
                "(eager mode falls back to a plain tensor); multiply a.value * b.value instead.",
            )
        elif not bool(zero_zero_points):
            return value
        return QuantTensor(
            value,
            self.scale * other.scale,
            self.zero_point * other.zero_point,
            self.bit_width + other.bit_width,
            bool(self.signed or other.signed),
            False,
            training,
        )

    def __rmul__(self, other: Any) -> QuantTensor | Tensor:
        if _is_number(other):
            return self._scaled_by_number(other, divide=False)
        if isinstance(other, QuantTensor):
            return other.__mul__(self)
        return _to_plain(other) * self.value

    def __truediv__(self, other: Any) -> QuantTensor | Tensor:
        """Division. By a Python number the scale follows; anything else gives a plain tensor.

        The quotient of two grids is not a grid, so ``a / b`` with a tensor or
        a QuantTensor ``b`` returns ``a.value / b.value``.
        """
        if _is_number(other):
            return self._scaled_by_number(other, divide=True)
        return self.value / _to_plain(other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _to_plain(other) / self.value

    def __pow__(self, other: Any) -> Tensor:
        return self.value ** _to_plain(other)

    def __lt__(self, other: Any) -> Tensor:
        return self.value < _to_plain(other)

    def __le__(self, other: Any) -> Tensor:
        return self.value <= _to_plain(other)

    def __gt__(self, other: Any) -> Tensor:
        return self.value > _to_plain(other)

    def __ge__(self, other: Any) -> Tensor:
        return self.value >= _to_plain(other)

    # ----------------------------------------------------------------- torch functions

    @classmethod
    def __torch_function__(
        cls,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = {} if kwargs is None else kwargs
        handler = torch_handler.QUANT_TENSOR_FN_HANDLER.get(func)
        if handler is None:
            return func(*_to_plain(tuple(args)), **_to_plain(kwargs))
        return handler(func, *args, **kwargs)

    @staticmethod
    def cat(tensors: Sequence[QuantTensor], dim: int = 0) -> QuantTensor | Tensor:
        """``torch.cat`` on QuantTensors (see :func:`brevitas.quant_tensor.torch_handler.cat_handler`)."""
        return torch.cat(list(tensors), dim=dim)


# --------------------------------------------------------------------------- module functions


def to_tensor(x: QuantTensor | Tensor) -> Tensor:
    """The plain tensor behind ``x``: ``x.value`` for a QuantTensor, ``x`` otherwise.

    Example:
        >>> import torch
        >>> to_tensor(QuantTensor(torch.ones(1))).tolist(), to_tensor(torch.zeros(1)).tolist()
        ([1.0], [0.0])
    """
    return x.value if isinstance(x, QuantTensor) else x


_unpack = to_tensor

# Imported last: the handlers build QuantTensors, so they need the class above.
from brevitas.quant_tensor import torch_handler  # noqa: E402
