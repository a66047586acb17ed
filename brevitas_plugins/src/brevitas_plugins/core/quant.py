"""Tensor quantizers: integer, binary, ternary, and re-quantization of integers.

Registry kind ``tensor_quant`` (``QuantType``):

- ``int``: ``ByRole(default=RescalingIntQuant, trunc=TruncIntQuant)``;
- ``binary``: ``ByRole(default=BinaryQuant, act=ClampedBinaryQuant)``;
- ``ternary``: :class:`TernaryQuant`;
- ``fp``: the Python ``None``: no quantization (the solver sets
  ``tensor_quant = None`` and the proxy passes the tensor through).

Unregistered: :class:`IntQuant` (the integer core every ``int`` quantizer
uses, solved as ``int_quant``) and :class:`ClampQuant` (saturating
re-quantization of an accumulator, the counterpart of :class:`TruncIntQuant`
that keeps the scale).

Example:
    >>> import torch
    >>> from brevitas.core.bit_width import BitWidthConst
    >>> from brevitas.core.scaling import ConstScaling
    >>> from brevitas.core.zero_point import ZeroZeroPoint
    >>> from brevitas_plugins.core.bit_width import IntScaling
    >>> from brevitas_plugins.core.float_to_int import RoundSte, TensorClamp
    >>> q = RescalingIntQuant(
    ...     int_quant=IntQuant(RoundSte(), TensorClamp(), signed=True, narrow_range=True),
    ...     scaling_impl=ConstScaling(1.0),
    ...     int_scaling_impl=IntScaling(signed=True, narrow_range=True),
    ...     zero_point_impl=ZeroZeroPoint(),
    ...     bit_width_impl=BitWidthConst(2),
    ... )
    >>> y, scale, zero_point, bit_width = q(torch.tensor([-2.0, -0.2, 0.7, 3.0]))
    >>> y, scale, bit_width
    (tensor([-1., -0.,  1.,  1.]), tensor(1.), tensor(2.))
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from brevitas.core.base import QuantBlock
from brevitas.core.bit_width import BitWidthConst
from brevitas.core.quant import TensorQuant, TruncQuant
from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.errors import ConfigError
from brevitas.function.ops import max_int, min_int
from brevitas.function.ste import binary_sign_ste, fake_quant_ste, round_ste, ternary_sign_ste
from brevitas.plugins.registry import ByRole, Registry
from brevitas_plugins.core.bit_width import IntScaling
from brevitas_plugins.core.float_to_int import RoundSte, TensorClamp

__all__ = [
    "BinaryQuant",
    "ClampQuant",
    "ClampedBinaryQuant",
    "IntQuant",
    "RescalingIntQuant",
    "TernaryQuant",
    "TruncIntQuant",
    "register",
]


def _check_int_range(bit_width_impl: nn.Module, signed: bool, narrow_range: bool, owner: str) -> None:
    """Refuse a narrow 1-bit integer range: it holds only the value 0 (and has no scale)."""
    if not narrow_range:
        return
    if isinstance(bit_width_impl, BitWidthConst):
        lowest = int(bit_width_impl.bit_width.item())
    else:
        lowest = getattr(bit_width_impl, "min_overall_bit_width", None)
    if lowest == 1:
        kind = "signed" if signed else "unsigned"
        raise ConfigError(
            f"{owner}: a 1-bit {kind} narrow-range integer has only the value 0; "
            f"use QuantType.BINARY, or bit_width >= 2 (min_overall_bit_width >= 2 when learned), "
            f"or narrow_range=False"
        )


class IntQuant(QuantBlock):
    """The integer core: ``forward(scale, zero_point, bit_width, x) -> y``.

    ``y = (clamp(float_to_int(x / scale + zero_point), min_int, max_int) - zero_point) * scale``
    with ``min_int`` / ``max_int`` of ``(signed, narrow_range, bit_width)``.
    ``y / scale + zero_point`` holds integers in ``[min_int, max_int]``.

    With the standard ``RoundSte`` and ``TensorClamp`` it runs the fused
    :func:`~brevitas.function.ste.fake_quant_ste` (same values and gradients,
    one autograd node); any other rounding or clamp runs the composition.

    Args:
        float_to_int_impl: rounding block (:class:`brevitas.core.float_to_int.FloatToInt`).
        tensor_clamp_impl: ``forward(x, min_val, max_val)`` clamp block.
        signed: signed integer range.
        narrow_range: narrow integer range (symmetric when signed).

    Example:
        >>> import torch
        >>> from brevitas_plugins.core.float_to_int import RoundSte, TensorClamp
        >>> iq = IntQuant(RoundSte(), TensorClamp(), signed=False, narrow_range=False)
        >>> iq(torch.tensor(0.5), torch.tensor(0.0), torch.tensor(2.0), torch.tensor([-1.0, 0.7, 9.0]))
        tensor([0.0000, 0.5000, 1.5000])
    """

    def __init__(
        self, float_to_int_impl: nn.Module, tensor_clamp_impl: nn.Module, signed: bool, narrow_range: bool
    ) -> None:
        super().__init__()
        self.float_to_int_impl = float_to_int_impl
        self.tensor_clamp_impl = tensor_clamp_impl
        self.signed = bool(signed)
        self.narrow_range = bool(narrow_range)

    @property
    def rounding_mode(self) -> str:
        """The rounding of ``float_to_int_impl`` (``ROUND``, ``FLOOR`` ...), for exporters."""
        return getattr(self.float_to_int_impl, "rounding_mode", "ROUND")

    def min_int(self, bit_width: Tensor) -> Tensor:
        """Smallest integer of the range at ``bit_width``."""
        return min_int(self.signed, self.narrow_range, bit_width)

    def max_int(self, bit_width: Tensor) -> Tensor:
        """Largest integer of the range at ``bit_width``."""
        return max_int(self.signed, self.narrow_range, bit_width)

    def to_int(self, scale: Tensor, zero_point: Tensor, bit_width: Tensor, x: Tensor) -> Tensor:
        """The integer representation ``clamp(float_to_int(x / scale + zero_point))`` (a float tensor)."""
        y = self.float_to_int_impl(x / scale + zero_point)
        return self.tensor_clamp_impl(y, self.min_int(bit_width), self.max_int(bit_width))

    @property
    def is_fused(self) -> bool:
        """Whether ``forward`` runs :func:`~brevitas.function.ste.fake_quant_ste` (standard rounding and clamp)."""
        return type(self.float_to_int_impl) is RoundSte and type(self.tensor_clamp_impl) is TensorClamp

    def forward(self, scale: Tensor, zero_point: Tensor, bit_width: Tensor, x: Tensor) -> Tensor:
        if self.is_fused:
            return fake_quant_ste(x, scale, zero_point, self.min_int(bit_width), self.max_int(bit_width))
        # an infinite x becomes a value one step beyond the range: the same output, and the gradient of
        # x / scale to the scale is no longer inf * 0 = NaN (the fused path masks it instead)
        low = (self.min_int(bit_width) - 1 - zero_point) * scale
        high = (self.max_int(bit_width) + 1 - zero_point) * scale
        x = torch.where(torch.isinf(x), torch.where(x > 0, high, low), x)
        return (self.to_int(scale, zero_point, bit_width, x) - zero_point) * scale

    def extra_repr(self) -> str:
        return f"signed={self.signed}, narrow_range={self.narrow_range}"


class RescalingIntQuant(TensorQuant):
    """Integer quantizer with a threshold-derived scale.

    ``forward(x) -> (y, scale, zero_point, bit_width)`` with
    ``bit_width = bit_width_impl()``,
    ``scale = scaling_impl(x) / int_scaling_impl(bit_width)``,
    ``zero_point = zero_point_impl(x, scale, bit_width)`` and
    ``y = int_quant(scale, zero_point, bit_width, x)``.

    Args:
        int_quant: an :class:`IntQuant`.
        scaling_impl: threshold block (kind ``scaling``).
        int_scaling_impl: ``forward(bit_width)`` -> divisor
            (:class:`~brevitas_plugins.core.bit_width.IntScaling`).
        zero_point_impl: zero-point block (kind ``zero_point``).
        bit_width_impl: bit-width block (kind ``bit_width``).

    Raises:
        ConfigError: the integer range is narrow and 1 bit wide (only the
            value 0), for a constant bit-width or a learned one whose minimum
            is 1.
    """

    def __init__(
        self,
        int_quant: nn.Module,
        scaling_impl: nn.Module,
        int_scaling_impl: nn.Module,
        zero_point_impl: nn.Module,
        bit_width_impl: nn.Module,
    ) -> None:
        super().__init__()
        _check_int_range(
            bit_width_impl,
            bool(getattr(int_quant, "signed", True)),
            bool(getattr(int_quant, "narrow_range", False)),
            type(self).__name__,
        )
        self.int_quant = int_quant
        self.scaling_impl = scaling_impl
        self.int_scaling_impl = int_scaling_impl
        self.zero_point_impl = zero_point_impl
        self.bit_width_impl = bit_width_impl
        self._range_cache: tuple[Tensor, int, tuple[Tensor, Tensor, Tensor]] | None = None
        _int_scalings()  # resolved now, not inside a compiled forward (a global changing there recompiles)

    def _is_fast(self) -> bool:
        """Standard integer core and integer scaling: ``forward`` may fuse them (same values and gradients)."""
        int_quant = self.int_quant
        return type(int_quant) is IntQuant and int_quant.is_fused and type(self.int_scaling_impl) in _int_scalings()

    def _int_range(self, bit_width: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(int_scaling_impl(b), min_int(b), max_int(b))``, computed once while ``b`` is a constant.

        A constant bit-width (a buffer without gradient) gives the same three
        tensors at every call, so eager calls reuse them until the buffer is
        replaced or modified in place (``load_state_dict``, ``.to()``). Compiled
        code and learned bit-widths compute them every time.
        """
        compiling = torch.compiler.is_compiling()
        if not compiling:
            cache = getattr(self, "_range_cache", None)
            if cache is not None and cache[0] is bit_width and cache[1] == bit_width._version:
                return cache[2]
        out = (self.int_scaling_impl(bit_width), self.int_quant.min_int(bit_width), self.int_quant.max_int(bit_width))
        if not (compiling or bit_width.requires_grad or torch.is_inference_mode_enabled() or bit_width.is_inference()):
            self._range_cache = (bit_width, bit_width._version, out)
        return out

    def _apply(self, *args: Any, **kwargs: Any) -> RescalingIntQuant:
        self._range_cache = None
        return super()._apply(*args, **kwargs)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        bit_width = self.bit_width_impl()
        threshold = self.scaling_impl(x)
        if self._is_fast():
            int_scale, qmin, qmax = self._int_range(bit_width)
            scale = threshold / int_scale
            if type(self.zero_point_impl) is ZeroZeroPoint:
                zero_point = scale.new_zeros(())
                return fake_quant_ste(x, scale, None, qmin, qmax), scale, zero_point, bit_width
            zero_point = self.zero_point_impl(x, scale, bit_width)
            return fake_quant_ste(x, scale, zero_point, qmin, qmax), scale, zero_point, bit_width
        scale = threshold / self.int_scaling_impl(bit_width)
        zero_point = self.zero_point_impl(x, scale, bit_width)
        y = self.int_quant(scale, zero_point, bit_width, x)
        return y, scale, zero_point, bit_width


def _int_scalings() -> tuple[type, ...]:
    """The integer scalings whose output depends on the bit-width alone (imported late: no cycle)."""
    global _INT_SCALINGS
    if _INT_SCALINGS is None:
        from brevitas_plugins.core.solver_parts import PowerOfTwoIntScaling

        _INT_SCALINGS = (IntScaling, PowerOfTwoIntScaling)
    return _INT_SCALINGS


_INT_SCALINGS: tuple[type, ...] | None = None


class BinaryQuant(TensorQuant):
    """``y = sign(x) * scale`` with ``sign(0) = +1``; bit-width 1, zero-point 0.

    The gradient to ``x`` is straight-through everywhere (weights); see
    :class:`ClampedBinaryQuant` for activations.

    Args:
        scaling_impl: threshold block; its output is the scale.

    Example:
        >>> import torch
        >>> from brevitas.core.scaling import ConstScaling
        >>> y, s, z, b = BinaryQuant(ConstScaling(0.5))(torch.tensor([-3.0, 0.0, 0.1]))
        >>> y, b
        (tensor([-0.5000,  0.5000,  0.5000]), tensor(1.))
    """

    def __init__(self, scaling_impl: nn.Module) -> None:
        super().__init__()
        self.scaling_impl = scaling_impl

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        scale = self.scaling_impl(x)
        y = binary_sign_ste(x) * scale
        return y, scale, scale.new_zeros(()), scale.new_ones(())


class ClampedBinaryQuant(TensorQuant):
    """Binary quantizer whose gradient is blocked outside ``[-scale, scale]``.

    ``y = sign(clamp(x, -scale, scale)) * scale`` (``sign(0) = +1``), bit-width
    1, zero-point 0.

    Args:
        scaling_impl: threshold block; its output is the scale.
        tensor_clamp_impl: ``forward(x, min_val, max_val)`` clamp block
            (``TensorClamp`` blocks the gradient outside the range).

    Example:
        >>> import torch
        >>> from brevitas.core.scaling import ConstScaling
        >>> from brevitas_plugins.core.float_to_int import TensorClamp
        >>> x = torch.tensor([-3.0, 0.2], requires_grad=True)
        >>> y, s, z, b = ClampedBinaryQuant(ConstScaling(1.0), TensorClamp())(x)
        >>> y.sum().backward(); x.grad
        tensor([0., 1.])
    """

    def __init__(self, scaling_impl: nn.Module, tensor_clamp_impl: nn.Module) -> None:
        super().__init__()
        self.scaling_impl = scaling_impl
        self.tensor_clamp_impl = tensor_clamp_impl

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        scale = self.scaling_impl(x)
        y = self.tensor_clamp_impl(x, -scale, scale)
        y = binary_sign_ste(y) * scale
        return y, scale, scale.new_zeros(()), scale.new_ones(())


class TernaryQuant(TensorQuant):
    """``y = scale * (x > t) - scale * (x < -t)`` with ``t = threshold * scale``; bit-width 2.

    The gradient to ``x`` is straight-through where ``|x| > t`` and zero in the
    dead zone.

    Args:
        scaling_impl: threshold block; its output is the scale.
        threshold: the dead zone's half-width as a fraction of the scale, a
            number ``>= 0`` (commonly 0.5).

    Raises:
        ConfigError: ``threshold`` is not a finite number ``>= 0``.

    Example:
        >>> import torch
        >>> from brevitas.core.scaling import ConstScaling
        >>> y, s, z, b = TernaryQuant(ConstScaling(2.0), threshold=0.5)(torch.tensor([-1.5, 0.9, 1.1]))
        >>> y, b
        (tensor([-2.,  0.,  2.]), tensor(2.))
    """

    def __init__(self, scaling_impl: nn.Module, threshold: float) -> None:
        super().__init__()
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not math.isfinite(threshold)
            or threshold < 0
        ):
            raise ConfigError(
                f"threshold must be a finite number >= 0 (a fraction of the scale), got {threshold!r}; "
                f"write e.g. threshold=0.5"
            )
        self.scaling_impl = scaling_impl
        self.threshold = float(threshold)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        scale = self.scaling_impl(x)
        mask = torch.abs(x) > self.threshold * scale
        y = ternary_sign_ste(x) * mask.to(x.dtype) * scale
        return y, scale, scale.new_zeros(()), 2.0 * scale.new_ones(())

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"


class TruncIntQuant(TruncQuant):
    """Drop least-significant bits of an integer tensor: ``forward(x, scale, zero_point, input_bit_width)``.

    With ``b = bit_width_impl()`` the output bit-width is
    ``min(input_bit_width, b)`` and ``k = input_bit_width - output_bit_width``
    bits are dropped: the integer code ``c = round(x / scale + zero_point)``
    becomes ``float_to_int(c / 2**k)`` (``FloorSte`` for a true truncation),
    and the result is expressed on the coarser grid
    ``output_scale = scale * 2**k``, ``output_zero_point = zero_point / 2**k``
    (as the QONNX ``Trunc`` operator, version 2). With a zero zero-point the
    value stays an approximation of ``x``; no bits are added when the input
    is already narrower than ``b``.

    Returns ``(y, output_scale, output_zero_point, output_bit_width)``.

    Args:
        float_to_int_impl: rounding of the shifted integer (kind
            ``float_to_int``; floor drops the bits).
        bit_width_impl: the target bit-width block.

    Example:
        >>> import torch
        >>> from brevitas.core.bit_width import BitWidthConst
        >>> from brevitas_plugins.core.float_to_int import FloorSte
        >>> t = TruncIntQuant(FloorSte(), BitWidthConst(4))
        >>> x = torch.tensor([-128.0, -1.0, 17.0, 127.0])  # 8-bit signed codes, scale 1
        >>> y, s, z, b = t(x, torch.tensor(1.0), torch.tensor(0.0), torch.tensor(8.0))
        >>> y, s, b
        (tensor([-128.,  -16.,   16.,  112.]), tensor(16.), tensor(4.))
    """

    def __init__(self, float_to_int_impl: nn.Module, bit_width_impl: nn.Module) -> None:
        super().__init__()
        self.float_to_int_impl = float_to_int_impl
        self.bit_width_impl = bit_width_impl

    @property
    def rounding_mode(self) -> str:
        """The rounding of ``float_to_int_impl`` (``FLOOR`` for a true truncation), for exporters."""
        return getattr(self.float_to_int_impl, "rounding_mode", "FLOOR")

    def forward(
        self, x: Tensor, scale: Tensor, zero_point: Tensor, input_bit_width: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        code = round_ste(x / scale + zero_point)  # removes the float error of the dequantized input
        output_bit_width = torch.minimum(self.bit_width_impl(), input_bit_width)
        trunc_scale = 2.0 ** (input_bit_width - output_bit_width)
        code = self.float_to_int_impl(code / trunc_scale)
        output_scale = scale * trunc_scale
        output_zero_point = zero_point / trunc_scale
        y = (code - output_zero_point) * output_scale
        return y, output_scale, output_zero_point, output_bit_width


class ClampQuant(TruncQuant):
    """Saturate an integer tensor to fewer bits, keeping its scale.

    ``forward(x, scale, zero_point, input_bit_width) -> (y, scale, zero_point, bit_width)``
    with ``y = (clamp(round(x / scale + zero_point), min_int, max_int) - zero_point) * scale``,
    the range being that of ``(signed, narrow_range, bit_width_impl())``.
    Where :class:`TruncIntQuant` drops least-significant bits (coarser scale),
    this drops most-significant ones by saturating (same scale). The output
    bit-width is the target one.

    Args:
        bit_width_impl: the target bit-width block.
        tensor_clamp_impl: ``forward(x, min_val, max_val)`` clamp block.
        signed: signed target range.
        narrow_range: narrow target range.

    Raises:
        ConfigError: the target range is narrow and 1 bit wide (only 0).

    Example:
        >>> import torch
        >>> from brevitas.core.bit_width import BitWidthConst
        >>> from brevitas_plugins.core.float_to_int import TensorClamp
        >>> c = ClampQuant(BitWidthConst(4), TensorClamp(), signed=True, narrow_range=False)
        >>> y, s, z, b = c(torch.tensor([-20.0, 3.0, 20.0]), torch.tensor(1.0), torch.tensor(0.0), torch.tensor(8.0))
        >>> y, b
        (tensor([-8.,  3.,  7.]), tensor(4.))
    """

    def __init__(
        self, bit_width_impl: nn.Module, tensor_clamp_impl: nn.Module, signed: bool, narrow_range: bool
    ) -> None:
        super().__init__()
        _check_int_range(bit_width_impl, bool(signed), bool(narrow_range), type(self).__name__)
        self.bit_width_impl = bit_width_impl
        self.tensor_clamp_impl = tensor_clamp_impl
        self.signed = bool(signed)
        self.narrow_range = bool(narrow_range)

    def forward(
        self, x: Tensor, scale: Tensor, zero_point: Tensor, input_bit_width: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        bit_width = self.bit_width_impl()
        code = round_ste(x / scale + zero_point)
        code = self.tensor_clamp_impl(
            code,
            min_int(self.signed, self.narrow_range, bit_width),
            max_int(self.signed, self.narrow_range, bit_width),
        )
        y = (code - zero_point) * scale
        return y, scale, zero_point, bit_width

    def extra_repr(self) -> str:
        return f"signed={self.signed}, narrow_range={self.narrow_range}"


def register(registry: Registry) -> None:
    """Add the ``tensor_quant`` names: ``int``, ``binary``, ``ternary``, and ``fp`` (``None``: no quantization)."""
    registry.add(
        "tensor_quant",
        "int",
        ByRole(default=RescalingIntQuant, trunc=TruncIntQuant),
        description="uniform affine integer quantization",
    )
    registry.add(
        "tensor_quant",
        "binary",
        ByRole(default=BinaryQuant, act=ClampedBinaryQuant),
        description="sign times scale (1 bit)",
    )
    registry.add("tensor_quant", "ternary", TernaryQuant, description="-scale, 0, +scale (2 bits)")
    registry.add("tensor_quant", "fp", None, description="no quantization (tensor_quant is None)")
