"""The one description of a quantizer that every exporter reads.

Exporters never import a plugin's classes (DESIGN.md section 6). They read
what a quantizer *did* to a tensor: the QuantTensor a proxy returned (scale,
zero-point, bit-width, sign, narrow range) plus a few read-only facts the
proxy exposes (``rounding_mode``, the quantizer's ``quant_type``). Both are
collected here into a :class:`QuantDescription`, so a model quantized with a
third-party scaling plugin exports with no change to any exporter.

Getting descriptions:

- :func:`describe` turns one proxy call (the proxy and the QuantTensor it
  returned) into a description;
- :func:`capture` runs a model once in eval mode with forward hooks on every
  proxy and returns ``{qualified proxy name: description}``;
- :class:`ProxyRecorder` is the hook machinery itself, for exporters that
  want every call in order (shared proxies, a proxy called twice).

Example:
    >>> import torch
    >>> from brevitas.nn import QuantReLU
    >>> from brevitas.export.description import capture
    >>> descs = capture(QuantReLU(bit_width=4), torch.randn(2, 8))
    >>> d = descs["act_quant"]
    >>> d.role, d.bit_width, d.signed, d.int_min, d.int_max, d.per_channel_axis
    ('act', 4, False, 0, 15, None)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from brevitas.errors import ExportError

__all__ = [
    "ProxyCall",
    "ProxyRecorder",
    "QuantDescription",
    "capture",
    "describe",
    "describe_quant_tensor",
]

#: quant types an exporter may meet
QUANT_TYPES = ("int", "binary", "ternary")


@dataclass(frozen=True, eq=False)
class QuantDescription:
    """What a quantizer did to one tensor, in the terms every export format uses.

    Attributes:
        role: ``weight``, ``bias``, ``act`` (activations, layer inputs and
            outputs), ``trunc`` (least-significant bits dropped) or ``clamp``
            (saturated to fewer bits).
        quant_type: ``int``, ``binary`` or ``ternary``.
        scale: detached float tensor broadcastable against the quantized
            tensor (shape ``()`` per tensor, e.g. ``(C, 1, 1, 1)`` per channel).
        zero_point: detached, integer-valued float tensor, broadcastable like ``scale``.
        bit_width: the bit-width.
        signed: signed integer range.
        narrow_range: narrow integer range (``-127..127`` at 8 bits signed).
        rounding_mode: ``ROUND`` (half to even), ``FLOOR``, ``CEIL``,
            ``ROUND_TO_ZERO``, ``DPU`` ...
        scale_is_power_of_two: every scale value is an exact power of two.
        per_channel_axis: the axis of the quantized tensor the scale (or the
            zero-point) varies along, ``None`` per tensor.
        quantizer: the quantizer class name (for messages).
        shape: shape of the quantized tensor as seen when captured.
        input: for ``trunc`` and ``clamp``: the description of the integer
            tensor that was re-quantized.

    Example:
        >>> import torch
        >>> d = QuantDescription("act", "int", torch.tensor(0.5), torch.tensor(0.0), 4, True, True)
        >>> d.int_min, d.int_max, d.is_per_tensor
        (-7, 7, True)
    """

    role: str
    quant_type: str
    scale: Tensor
    zero_point: Tensor
    bit_width: int
    signed: bool
    narrow_range: bool
    rounding_mode: str = "ROUND"
    scale_is_power_of_two: bool = False
    per_channel_axis: int | None = None
    quantizer: str = ""
    shape: tuple[int, ...] = ()
    input: QuantDescription | None = field(default=None, repr=False)

    @property
    def int_min(self) -> int:
        """Smallest integer code (``-1`` for binary and ternary)."""
        if self.quant_type in ("binary", "ternary"):
            return -1
        b = self.bit_width
        if self.signed:
            return -(2 ** (b - 1)) + (1 if self.narrow_range else 0)
        return 0

    @property
    def int_max(self) -> int:
        """Largest integer code (``1`` for binary and ternary)."""
        if self.quant_type in ("binary", "ternary"):
            return 1
        b = self.bit_width
        if self.signed:
            return 2 ** (b - 1) - 1
        return 2**b - (2 if self.narrow_range else 1)

    @property
    def is_per_tensor(self) -> bool:
        """One scale and one zero-point for the whole tensor."""
        return self.per_channel_axis is None

    @property
    def has_zero_zero_point(self) -> bool:
        """Whether every zero-point value is 0."""
        return bool((self.zero_point == 0).all())

    def flat_scale(self) -> Tensor:
        """The scale as a scalar (per tensor) or 1-D along :attr:`per_channel_axis` (float32)."""
        return _flat(self.scale, self.per_channel_axis).to(torch.float32)

    def flat_zero_point(self) -> Tensor:
        """The zero-point shaped like :meth:`flat_scale` (float32, integer-valued)."""
        zp = _flat(self.zero_point, self.per_channel_axis)
        if self.per_channel_axis is not None and zp.dim() == 0:
            zp = zp.expand(self.flat_scale().shape)
        return zp.to(torch.float32)

    def to_int(self, value: Tensor) -> Tensor:
        """The integer codes of ``value`` (on this grid): ``round(value / scale + zero_point)``, as int64."""
        return torch.round(value.detach() / self.scale + self.zero_point).to(torch.int64)

    def same_grid(self, other: QuantDescription) -> bool:
        """Same integer range, scale and zero-point values (requantizing from one to the other is exact)."""
        return (
            self.int_min == other.int_min
            and self.int_max == other.int_max
            and self.flat_scale().shape == other.flat_scale().shape
            and bool(torch.equal(self.flat_scale(), other.flat_scale()))
            and bool(torch.equal(self.flat_zero_point(), other.flat_zero_point()))
        )

    def describe(self) -> str:
        """A short human summary, e.g. ``"4-bit unsigned per-tensor (Uint8ActPerTensorFloat)"``."""
        kind = self.quant_type if self.quant_type != "int" else f"{self.bit_width}-bit"
        sign = "signed" if self.signed else "unsigned"
        narrow = " narrow" if self.narrow_range and self.quant_type == "int" else ""
        where = "per-tensor" if self.per_channel_axis is None else f"per-channel (axis {self.per_channel_axis})"
        zp = "" if self.has_zero_zero_point else " with zero-point"
        quant = f" ({self.quantizer})" if self.quantizer else ""
        return f"{kind} {sign}{narrow} {where}{zp}{quant}"


def _flat(t: Tensor, axis: int | None) -> Tensor:
    if axis is None or t.numel() == 1:
        return t.reshape(()) if t.numel() == 1 else t
    return t.reshape(-1)


def _channel_axis(scale: Tensor, zero_point: Tensor, value_shape: tuple[int, ...]) -> int | None:
    """The single axis along which scale or zero-point vary (aligned to the right of ``value_shape``)."""
    axes: set[int] = set()
    rank = len(value_shape)
    for t in (scale, zero_point):
        if t.numel() <= 1:
            continue
        shape = tuple(t.shape)
        offset = rank - len(shape)
        varying = [offset + i for i, s in enumerate(shape) if s > 1]
        if len(varying) != 1:
            raise ExportError(
                f"scale or zero-point of shape {shape} varies along {len(varying)} axes of a tensor of shape "
                f"{value_shape}; exporters support per-tensor or per-channel (one axis) quantization"
            )
        axes.add(varying[0])
    if not axes:
        return None
    if len(axes) > 1:
        raise ExportError(f"scale and zero-point vary along different axes {sorted(axes)}")
    return axes.pop()


def _is_power_of_two(scale: Tensor) -> bool:
    # frexp on the CPU: exact everywhere (a device's log2 may be off by an ulp at exact powers of two)
    s = scale.detach().to("cpu", torch.float64)
    if not bool((s > 0).all()):
        return False
    mantissa, _ = torch.frexp(s)
    return bool((mantissa == 0.5).all())


def _quant_type(proxy: nn.Module | None, bit_width: int, signed: bool) -> str:
    from brevitas.inject import defines

    injector = None
    try:
        injector = getattr(proxy, "quant_injector", None)
    except Exception:  # a quantizer that cannot be rebuilt: fall back to the numbers
        injector = None
    if injector is not None and defines(injector, "quant_type"):
        try:
            name = str(getattr(injector.quant_type, "value", injector.quant_type)).lower()
        except Exception:
            name = ""
        if name in QUANT_TYPES:
            return name
    return _type_from_numbers(bit_width, signed)


def _type_from_numbers(bit_width: int, signed: bool) -> str:
    """A signed 1-bit tensor is binary (codes -1, +1); an unsigned one is an ordinary integer (0, 1)."""
    return "binary" if bit_width == 1 and signed else "int"


def _role(proxy: nn.Module | None) -> str:
    from brevitas.proxy import ClampQuantProxy

    if isinstance(proxy, ClampQuantProxy):
        return "clamp"
    return str(getattr(proxy, "role", "") or "act")


def _rounding_mode(proxy: nn.Module | None, role: str) -> str:
    mode = None
    try:
        mode = getattr(proxy, "rounding_mode", None)
    except Exception:
        mode = None
    if not mode:
        return "FLOOR" if role == "trunc" else "ROUND"
    return str(mode).upper()


def _quantizer_name(proxy: nn.Module | None) -> str:
    quant = getattr(proxy, "quant", None)
    return getattr(quant, "__qualname__", "") if quant is not None else ""


def describe_quant_tensor(
    qt: Any,
    role: str = "act",
    quant_type: str | None = None,
    rounding_mode: str = "ROUND",
    quantizer: str = "",
) -> QuantDescription | None:
    """Describe a valid QuantTensor (``None`` when it is not valid).

    Example:
        >>> import torch
        >>> from brevitas.quant_tensor import QuantTensor
        >>> qt = QuantTensor(torch.tensor([0.5, 1.0]), torch.tensor(0.5), torch.tensor(0.0), torch.tensor(3.0), True)
        >>> describe_quant_tensor(qt).describe()
        '3-bit signed per-tensor'
    """
    if qt is None or not getattr(qt, "is_valid", False):
        return None
    value = qt.value
    scale = torch.as_tensor(qt.scale).detach().clone().to(torch.float32)
    zero_point = torch.as_tensor(qt.zero_point).detach().clone().to(torch.float32)
    bit_width = int(round(float(torch.as_tensor(qt.bit_width).detach().reshape(-1)[0])))
    shape = tuple(value.shape)
    return QuantDescription(
        role=role,
        quant_type=quant_type or _type_from_numbers(bit_width, bool(qt.signed)),
        scale=scale,
        zero_point=zero_point,
        bit_width=bit_width,
        signed=bool(qt.signed),
        narrow_range=bool(qt.narrow_range),
        rounding_mode=rounding_mode,
        scale_is_power_of_two=_is_power_of_two(scale),
        per_channel_axis=_channel_axis(scale, zero_point, shape),
        quantizer=quantizer,
        shape=shape,
    )


def describe(proxy: nn.Module, output: Any, input: Any = None) -> QuantDescription | None:
    """Describe one call of ``proxy`` that returned the QuantTensor ``output``.

    Args:
        proxy: a :class:`brevitas.proxy.QuantProxy`.
        output: what it returned.
        input: what it received (recorded for ``trunc`` / ``clamp``, whose
            input grid the exporters need).

    Returns:
        The description, or ``None`` when the proxy is disabled or its output
        is not a valid QuantTensor.
    """
    if getattr(proxy, "tensor_quant", None) is None:
        return None
    role = _role(proxy)
    bit_width_t = getattr(output, "bit_width", None)
    if bit_width_t is None:
        return None
    bit_width = int(round(float(torch.as_tensor(bit_width_t).detach().reshape(-1)[0])))
    desc = describe_quant_tensor(
        output,
        role=role,
        quant_type=_quant_type(proxy, bit_width, bool(getattr(output, "signed", False))),
        rounding_mode=_rounding_mode(proxy, role),
        quantizer=_quantizer_name(proxy),
    )
    if desc is None:
        return None
    if role in ("trunc", "clamp"):
        inner = describe_quant_tensor(input, role="act")
        desc = QuantDescription(**{**_fields(desc), "input": inner})
    return desc


def _fields(d: QuantDescription) -> dict[str, Any]:
    return {f: getattr(d, f) for f in d.__dataclass_fields__}


@dataclass(frozen=True, eq=False)
class ProxyCall:
    """One call of a proxy during a recorded run.

    Attributes:
        proxy: the proxy that ran.
        description: what it did (``None`` when disabled or not valid).
        value: the quantized tensor it returned, kept for weights and biases
            (constants exporters store); ``None`` for activations.
    """

    proxy: nn.Module
    description: QuantDescription | None
    value: Tensor | None = None


class ProxyRecorder:
    """Forward hooks on every proxy of a model; each call is handed to ``sink``.

    Use as a context manager; hooks are removed on exit.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantIdentity
        >>> calls = []
        >>> model = QuantIdentity()
        >>> with ProxyRecorder(model, calls.append):
        ...     _ = model(torch.randn(3))
        >>> [c.description.bit_width for c in calls]
        [8]
    """

    def __init__(self, model: nn.Module, sink: Callable[[ProxyCall], None]) -> None:
        self.model = model
        self.sink = sink
        self._handles: list[Any] = []

    def _hook(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        first = args[0] if args else next(iter(kwargs.values()), None)
        desc = describe(module, output, first)
        value = None
        if desc is not None and desc.role in ("weight", "bias"):
            value = output.value.detach()
        self.sink(ProxyCall(module, desc, value))

    def __enter__(self) -> ProxyRecorder:
        from brevitas.proxy import QuantProxy

        seen: set[int] = set()
        for module in self.model.modules():
            if isinstance(module, QuantProxy) and id(module) not in seen:
                seen.add(id(module))
                self._handles.append(module.register_forward_hook(self._hook, with_kwargs=True))
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []


@contextmanager
def _eval_no_grad(model: nn.Module) -> Iterator[None]:
    from brevitas.export import eval_mode

    with eval_mode(model), torch.no_grad():
        yield


def capture(model: nn.Module, args: Any) -> dict[str, QuantDescription]:
    """Run ``model`` once in eval mode and describe every enabled proxy that ran.

    Args:
        model: the quantized model (its training mode is restored afterwards).
        args: an example input, or a tuple of inputs.

    Returns:
        ``{qualified proxy name: description of its first call}``; proxies
        that are disabled or did not run are absent.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantConv2d
        >>> from brevitas.quant.scaled_int import Int8WeightPerChannelFloat
        >>> conv = QuantConv2d(2, 3, 1, weight_quant=Int8WeightPerChannelFloat)
        >>> d = capture(conv, torch.randn(1, 2, 4, 4))["weight_quant"]
        >>> d.per_channel_axis, tuple(d.flat_scale().shape), d.narrow_range
        (0, (3,), True)
    """
    names: dict[int, str] = {}
    for name, module in model.named_modules():
        names.setdefault(id(module), name)
    out: dict[str, QuantDescription] = {}

    def sink(call: ProxyCall) -> None:
        name = names.get(id(call.proxy), "")
        if call.description is not None and name not in out:
            out[name] = call.description

    inputs = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    with _eval_no_grad(model), ProxyRecorder(model, sink):
        model(*inputs)
    return out
