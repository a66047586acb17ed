"""The machinery shared by quant layers: keyword routing, mixins, the layer families.

A quant layer inherits from its ``torch.nn`` counterpart and from one of the
bases here, which own the proxies:

- :class:`QuantWeightBiasInputOutputLayer` (alias ``QuantWBIOL``):
  ``weight_quant``, ``bias_quant``, ``input_quant``, ``output_quant``
  (convolutions, linear, scale-bias);
- :class:`QuantNonLinearActLayer` (alias ``QuantNLAL``): ``input_quant`` and
  ``act_quant`` (ReLU, Sigmoid, Tanh, HardTanh, Identity);
- :class:`QuantLayerMixin`: ``return_quant_tensor`` and helpers for the rest.

**Keyword routing.** ``weight_*``, ``bias_*``, ``input_*`` and ``output_*``
keywords go, without their prefix, to the matching quantizer and override any
attribute it declares (``weight_bit_width=4`` sets ``bit_width = 4`` on the
weight quantizer). Activation layers give unprefixed keywords (and ``act_*``)
to ``act_quant``. A ``*_quant`` argument may be a quantizer class, ``None``
(disabled) or another layer's proxy (shared: ``weight_quant=conv1.weight_quant``).

Example:
    >>> from brevitas.nn.quant_layer import split_quant_kwargs
    >>> split_quant_kwargs({"weight_bit_width": 4, "input_bit_width": 8}, ("weight", "input"), "QuantConv2d")
    {'weight': {'bit_width': 4}, 'input': {'bit_width': 8}}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from brevitas.errors import ConfigError
from brevitas.function.ste import floor_ste
from brevitas.proxy import ActQuantProxy, BiasQuantProxy, QuantProxy, WeightQuantProxy
from brevitas.proxy.base import describe_layer, make_quant_tensor
from brevitas.quant_tensor import QuantTensor

__all__ = [
    "QuantLayerMixin",
    "QuantNLAL",
    "QuantNonLinearActLayer",
    "QuantWBIOL",
    "QuantWeightBiasInputOutputLayer",
    "max_abs_int",
    "split_quant_kwargs",
]


def split_quant_kwargs(
    kwargs: Mapping[str, Any],
    prefixes: Iterable[str],
    layer_name: str,
    default: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Route ``prefix_name=value`` keywords to the quantizer of each prefix, without the prefix.

    Args:
        kwargs: the layer's extra keyword arguments.
        prefixes: the quantizer roles the layer has (``"weight"``, ``"input"`` ...).
        layer_name: for the error message.
        default: the role that receives unprefixed keywords (``"act"`` for
            activation layers); ``None`` makes them an error.

    Returns:
        ``{role: {attribute: value}}`` for the roles that received something.

    Raises:
        ConfigError: a keyword has no known prefix and there is no default.

    Example:
        >>> split_quant_kwargs({"bit_width": 4, "input_bit_width": 8}, ("input", "act"), "QuantReLU", default="act")
        {'act': {'bit_width': 4}, 'input': {'bit_width': 8}}
    """
    prefixes = tuple(prefixes)
    out: dict[str, dict[str, Any]] = {}
    unknown = []
    for key, val in kwargs.items():
        for role in prefixes:
            p = role + "_"
            if key.startswith(p) and len(key) > len(p):
                out.setdefault(role, {})[key[len(p) :]] = val
                break
        else:
            if default is None:
                unknown.append(key)
            else:
                out.setdefault(default, {})[key] = val
    if unknown:
        accepted = ", ".join(f"{r}_*" for r in prefixes)
        raise ConfigError(
            f"{layer_name} got unexpected keyword argument(s) {', '.join(sorted(unknown))}. Quantizer options need "
            f"the prefix of the quantizer they configure ({accepted}), e.g. "
            f"{prefixes[0]}_{unknown[0]}={kwargs[unknown[0]]!r}"
        )
    return out


def max_abs_int(bit_width: Tensor, signed: bool | None, narrow_range: bool = False) -> Tensor:
    """Largest magnitude of a ``bit_width``-bit integer range (differentiable in ``bit_width``).

    Example:
        >>> import torch
        >>> int(max_abs_int(torch.tensor(8.0), signed=True)), int(max_abs_int(torch.tensor(8.0), signed=False))
        (128, 255)
    """
    if signed or signed is None:
        top = torch.exp2(bit_width - 1)
        return top - 1 if narrow_range else top
    return torch.exp2(bit_width) - (2 if narrow_range else 1)


def acc_bit_width(max_abs: Tensor, signed: bool) -> Tensor:
    """Bits holding integers of magnitude up to ``max_abs`` (plus a sign bit when ``signed``).

    Computed as ``floor(log2(max_abs)) + 1`` (never short, even where float32
    cannot represent ``max_abs + 1``), with a straight-through floor so a
    learned bit-width upstream gets a gradient.

    Example:
        >>> import torch
        >>> int(acc_bit_width(torch.tensor(255.0), signed=False)), int(acc_bit_width(torch.tensor(256.0), signed=False))
        (8, 9)
        >>> int(acc_bit_width(torch.tensor(2.0**24), signed=True))  # 2**24 itself needs 25 bits, plus a sign
        26
    """
    bits = floor_ste(torch.log2(max_abs)) + 1
    return bits + 1 if signed else bits


class QuantLayerMixin:
    """``return_quant_tensor``, proxy construction and the metadata helpers of every quant layer.

    Not an ``nn.Module`` itself: layers inherit from it and from their
    ``torch.nn`` counterpart.
    """

    return_quant_tensor: bool

    def _init_quant_layer(self, return_quant_tensor: bool) -> None:
        self.return_quant_tensor = bool(return_quant_tensor)
        #: callables ``hook(layer, accumulator_quant_tensor)`` (used by losses); empty by default
        self._acc_hooks: list[Callable[[nn.Module, QuantTensor], None]] = []

    def _make_proxy(self, attr: str, proxy_cls: type[QuantProxy], quant: Any, overrides: Mapping[str, Any]) -> None:
        """Set ``self.<attr>`` to a proxy built from ``quant`` (or to ``quant`` when it is a proxy)."""
        if isinstance(quant, QuantProxy):
            if overrides:
                role = attr[: -len("_quant")]
                given = ", ".join(f"{role}_{k}" for k in overrides)
                raise ConfigError(
                    f"{describe_layer(self)}: {attr} is an existing proxy (shared with another layer), so "
                    f"{given} cannot override it. Pass a "
                    f"quantizer class to get a new proxy, or configure the shared one where it was created"
                )
            if not isinstance(quant, proxy_cls):
                raise ConfigError(
                    f"{describe_layer(self)}: {attr} expects a {proxy_cls.__name__} to share, got a "
                    f"{type(quant).__name__}; share proxies of the same role (e.g. weight_quant=other.weight_quant)"
                )
            setattr(self, attr, quant)
            quant.add_tracked_module(self)  # type: ignore[arg-type]
            return
        setattr(self, attr, proxy_cls(quant, self, **overrides))  # type: ignore[arg-type]

    @staticmethod
    def _value(x: Any) -> Tensor:
        return x.value if isinstance(x, QuantTensor) else x

    def _pack(self, out: Any) -> Any:
        """What the layer returns: a QuantTensor when ``return_quant_tensor``, else a plain tensor."""
        if self.return_quant_tensor:
            if isinstance(out, QuantTensor):
                return out
            return make_quant_tensor(out, training=self.training)  # type: ignore[attr-defined]
        return out.value if isinstance(out, QuantTensor) else out


class _InputOutputAccessors:
    """``quant_input_*`` / ``quant_output_*`` accessors (eval-mode metadata of the quantizers)."""

    input_quant: ActQuantProxy
    output_quant: ActQuantProxy

    @property
    def is_input_quant_enabled(self) -> bool:
        """Whether the layer quantizes its input."""
        return self.input_quant.is_quant_enabled

    @property
    def is_output_quant_enabled(self) -> bool:
        """Whether the layer quantizes its output."""
        return self.output_quant.is_quant_enabled

    def quant_input_scale(self) -> Tensor | None:
        """Scale of the input quantizer in eval mode (``None`` when disabled)."""
        return self.input_quant.scale()

    def quant_input_zero_point(self) -> Tensor | None:
        """Zero-point of the input quantizer in eval mode (``None`` when disabled)."""
        return self.input_quant.zero_point()

    def quant_input_bit_width(self) -> Tensor | None:
        """Bit-width of the input quantizer (``None`` when disabled)."""
        return self.input_quant.bit_width()

    def quant_output_scale(self) -> Tensor | None:
        """Scale of the output quantizer in eval mode (``None`` when disabled)."""
        return self.output_quant.scale()

    def quant_output_zero_point(self) -> Tensor | None:
        """Zero-point of the output quantizer in eval mode (``None`` when disabled)."""
        return self.output_quant.zero_point()

    def quant_output_bit_width(self) -> Tensor | None:
        """Bit-width of the output quantizer (``None`` when disabled)."""
        return self.output_quant.bit_width()


class QuantWeightBiasInputOutputLayer(QuantLayerMixin, _InputOutputAccessors):
    """Base of layers with a weight: convolutions, linear, scale-bias.

    Subclasses call their ``torch.nn`` constructor, then :meth:`_init_wbiol`,
    and implement:

    - ``inner_forward_impl(x, weight, bias)``: the float operation;
    - ``reduction_size``: how many products one output element sums
      (``in_channels / groups * prod(kernel_size)`` for a convolution);
    - ``_output_channel_shape(ndim)``: the shape per-output-channel metadata
      takes to broadcast against the output (``(1, C, 1, 1)`` for a conv,
      ``(C,)`` for linear);
    - ``_weight_int_sums(int_weight)``: the per-output-channel sums of the
      integer weights (for the output zero-point of an asymmetric input).

    Output metadata (with ``return_quant_tensor=True`` and no output
    quantizer): scale = input scale x weight scale, and the bit-width of the
    accumulator, sized from the integer ranges and :attr:`reduction_size`.
    The output is valid when the input is a valid per-tensor QuantTensor, the
    weight is quantized with a zero zero-point, and the bias (if any) is
    quantized on the accumulator grid (``Int8Bias``); otherwise it is
    non-valid.
    """

    weight_quant: WeightQuantProxy
    bias_quant: BiasQuantProxy

    def _init_wbiol(
        self,
        weight_quant: Any,
        bias_quant: Any,
        input_quant: Any,
        output_quant: Any,
        return_quant_tensor: bool,
        kwargs: Mapping[str, Any],
    ) -> None:
        self._init_quant_layer(return_quant_tensor)
        routed = split_quant_kwargs(kwargs, ("weight", "bias", "input", "output"), type(self).__name__)
        self._make_proxy("weight_quant", WeightQuantProxy, weight_quant, routed.get("weight", {}))
        self._make_proxy("bias_quant", BiasQuantProxy, bias_quant, routed.get("bias", {}))
        self._make_proxy("input_quant", ActQuantProxy, input_quant, routed.get("input", {}))
        self._make_proxy("output_quant", ActQuantProxy, output_quant, routed.get("output", {}))

    # -- to implement ------------------------------------------------------
    def inner_forward_impl(
        self, x: Tensor, weight: Tensor, bias: Tensor | None, *args: Any, **kwargs: Any
    ) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    @property
    def reduction_size(self) -> int:  # pragma: no cover
        """Products summed into one output element."""
        raise NotImplementedError

    def _output_channel_shape(self, ndim: int) -> tuple[int, ...]:  # pragma: no cover
        raise NotImplementedError

    def _weight_int_sums(self, int_weight: Tensor) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- metadata ----------------------------------------------------------
    def _to_output_shape(self, t: Tensor, ndim: int) -> Tensor:
        """Per-output-channel metadata (any shape holding C values, or one value) as output-broadcastable."""
        if t.numel() == 1:
            return t.reshape(())
        return t.reshape(self._output_channel_shape(ndim))

    def _acc_scale(self, input_scale: Tensor, weight_scale: Tensor, ndim: int) -> Tensor | None:
        """Scale of the accumulator, shaped to broadcast against the output; None when not representable."""
        if input_scale.numel() != 1:
            return None
        return input_scale.reshape(()) * self._to_output_shape(weight_scale, ndim)

    def _bias_scale(self, acc_scale: Tensor) -> Tensor:
        return acc_scale.reshape(()) if acc_scale.numel() == 1 else acc_scale.reshape(-1)

    def _acc_bit_width(self, in_qt: QuantTensor, qw: QuantTensor, qb: QuantTensor | None) -> tuple[Tensor, bool]:
        assert in_qt.bit_width is not None and qw.bit_width is not None
        max_in = max_abs_int(in_qt.bit_width, in_qt.signed)
        max_w = max_abs_int(qw.bit_width, qw.signed, qw.narrow_range)
        total = max_in * max_w * self.reduction_size
        signed = bool(in_qt.signed) or bool(qw.signed)
        if qb is not None and qb.bit_width is not None:
            total = total + max_abs_int(qb.bit_width, qb.signed, qb.narrow_range)
            signed = signed or bool(qb.signed)
        return acc_bit_width(total, signed), signed

    def _acc_quant_tensor(
        self,
        y: Tensor,
        in_qt: QuantTensor | None,
        qw: QuantTensor | None,
        qb: QuantTensor | None,
        acc_scale: Tensor | None,
        bias_on_grid: bool,
    ) -> QuantTensor:
        """The accumulator as a QuantTensor (non-valid when its grid is unknown)."""
        training = self.training  # type: ignore[attr-defined]
        if (
            acc_scale is None
            or in_qt is None
            or qw is None
            or not bias_on_grid
            or not self.weight_quant.zero_point_is_zero
            or in_qt.zero_point is None
            or in_qt.zero_point.numel() != 1
        ):
            return make_quant_tensor(y, training=training)
        bit_width, signed = self._acc_bit_width(in_qt, qw, qb)
        ndim = y.dim()
        if self.input_quant.is_quant_enabled and self.input_quant.zero_point_is_zero:
            zero_point = torch.zeros_like(acc_scale)
        else:  # an asymmetric input shifts each output channel by zero_point * sum(int weights)
            int_weight = torch.round(qw.value / qw.scale)
            zero_point = in_qt.zero_point.reshape(()) * self._to_output_shape(self._weight_int_sums(int_weight), ndim)
            zero_point = zero_point + torch.zeros_like(acc_scale)
        return make_quant_tensor(y, acc_scale, zero_point, bit_width, signed, False, training)

    # -- forward -------------------------------------------------------------
    def forward(self, input: Any, *args: Any, **kwargs: Any) -> Any:
        """Quantize input, weight and bias as configured, run the float op, quantize the output.

        Extra arguments (``output_size`` of a transposed convolution) go to ``inner_forward_impl``.
        """
        input_quant = self.input_quant
        if input_quant.tensor_quant is not None:
            in_qt = input_quant(input)
        elif isinstance(input, QuantTensor):
            in_qt = input
        else:
            in_qt = None
        x = input if in_qt is None else in_qt.value

        weight_quant = self.weight_quant
        weight = self.weight  # type: ignore[attr-defined]
        if weight_quant.tensor_quant is not None:
            qw = weight_quant(weight)
            w = qw.value
        else:
            qw, w = None, weight

        want_meta = self.return_quant_tensor or bool(self._acc_hooks)
        acc_scale = None
        if qw is not None and in_qt is not None and in_qt.scale is not None and qw.scale is not None:
            acc_scale = self._acc_scale(in_qt.scale, qw.scale, x.dim())

        bias = self.bias  # type: ignore[attr-defined]
        bias_quant = self.bias_quant
        qb = None
        bias_on_grid = bias is None
        if bias is not None and bias_quant.tensor_quant is not None:
            if bias_quant.requires_input_scale:
                if acc_scale is None:
                    per_channel = in_qt is not None and in_qt.scale is not None and in_qt.scale.numel() != 1
                    raise bias_quant.missing_scale_error(weight_quantized=qw is not None, per_channel_input=per_channel)
                acc_bw = None
                if bias_quant.requires_input_bit_width:
                    if in_qt is None or in_qt.bit_width is None:
                        raise bias_quant.missing_scale_error()
                    acc_bw = self._acc_bit_width(in_qt, qw, None)[0]  # type: ignore[arg-type]
                qb = bias_quant(bias, self._bias_scale(acc_scale), acc_bw)
                bias_on_grid = True
            else:
                qb = bias_quant(bias)
            b = qb.value
        else:
            b = bias

        y = self.inner_forward_impl(x, w, b, *args, **kwargs)

        acc = None
        if want_meta and (self._acc_hooks or self.output_quant.tensor_quant is None):
            acc = self._acc_quant_tensor(y, in_qt, qw, qb if bias_on_grid else None, acc_scale, bias_on_grid)
            for hook in self._acc_hooks:
                hook(self, acc)  # type: ignore[arg-type]
        output_quant = self.output_quant
        if output_quant.tensor_quant is not None:
            out = output_quant(y)
        elif acc is not None:
            out = acc
        else:
            out = y
        return self._pack(out)

    # -- accessors -------------------------------------------------------------
    @property
    def is_weight_quant_enabled(self) -> bool:
        """Whether the weight is quantized."""
        return self.weight_quant.is_quant_enabled

    @property
    def is_bias_quant_enabled(self) -> bool:
        """Whether the bias is quantized (``False`` when there is no bias)."""
        return self.bias is not None and self.bias_quant.is_quant_enabled  # type: ignore[attr-defined]

    def quant_weight(self) -> QuantTensor:
        """The quantized weight as a QuantTensor (non-valid when weight quantization is disabled)."""
        return self.weight_quant(self.weight)  # type: ignore[attr-defined]

    def int_weight(self, float_datatype: bool = False) -> Tensor:
        """The integer weight ``round(weight / scale + zero_point)``."""
        return self.quant_weight().int(float_datatype)

    def quant_weight_scale(self) -> Tensor | None:
        """Scale of the quantized weight (``None`` when disabled)."""
        return self.quant_weight().scale

    def quant_weight_zero_point(self) -> Tensor | None:
        """Zero-point of the quantized weight (``None`` when disabled)."""
        return self.quant_weight().zero_point

    def quant_weight_bit_width(self) -> Tensor | None:
        """Bit-width of the quantized weight (``None`` when disabled)."""
        return self.quant_weight().bit_width

    def quant_bias(self, input_scale: Tensor | None = None) -> QuantTensor | None:
        """The quantized bias (``None`` without a bias).

        Args:
            input_scale: the scale of the layer's input, needed by bias
                quantizers on the accumulator grid (``Int8Bias``) when the
                layer has no input quantizer to read it from.

        Raises:
            ConfigError: the bias quantizer needs an input scale that is unknown.
        """
        bias = self.bias  # type: ignore[attr-defined]
        if bias is None:
            return None
        proxy = self.bias_quant
        if proxy.tensor_quant is None:
            return proxy(bias)
        if not proxy.requires_input_scale:
            return proxy(bias)
        if input_scale is None and self.input_quant.is_quant_enabled:
            input_scale = self.input_quant.scale()
        qw = self.quant_weight()
        if qw.scale is None:
            raise proxy.missing_scale_error(weight_quantized=False)
        if input_scale is None or input_scale.numel() != 1:
            raise proxy.missing_scale_error(per_channel_input=input_scale is not None)
        acc_scale = input_scale.reshape(()) * qw.scale
        acc_bw = None
        if proxy.requires_input_bit_width:
            in_bw = self.input_quant.bit_width()
            if in_bw is None:
                raise proxy.missing_scale_error()
            probe = make_quant_tensor(qw.value, input_scale, input_scale * 0, in_bw, self.input_quant.is_signed)
            acc_bw = self._acc_bit_width(probe, qw, None)[0]
        return proxy(bias, self._bias_scale(acc_scale), acc_bw)

    def int_bias(self, float_datatype: bool = False, input_scale: Tensor | None = None) -> Tensor | None:
        """The integer bias (``None`` without a bias)."""
        q = self.quant_bias(input_scale)
        return None if q is None else q.int(float_datatype)

    def quant_bias_scale(self, input_scale: Tensor | None = None) -> Tensor | None:
        """Scale of the quantized bias."""
        q = self.quant_bias(input_scale)
        return None if q is None else q.scale

    def quant_bias_zero_point(self, input_scale: Tensor | None = None) -> Tensor | None:
        """Zero-point of the quantized bias."""
        q = self.quant_bias(input_scale)
        return None if q is None else q.zero_point

    def quant_bias_bit_width(self, input_scale: Tensor | None = None) -> Tensor | None:
        """Bit-width of the quantized bias."""
        q = self.quant_bias(input_scale)
        return None if q is None else q.bit_width


class QuantNonLinearActLayer(QuantLayerMixin, _InputOutputAccessors):
    """Base of activation layers: optional ``input_quant``, the activation, then ``act_quant``.

    Subclasses call their ``torch.nn`` constructor, then :meth:`_init_nlal`,
    and implement ``act_forward(x)`` (the float activation).
    """

    act_quant: ActQuantProxy
    #: whether the activation maps a quantized grid onto itself (ReLU, HardTanh, Identity),
    #: so a QuantTensor input keeps its metadata when act_quant is disabled
    passthrough_act: bool = False

    def _init_nlal(
        self,
        act_quant: Any,
        input_quant: Any,
        return_quant_tensor: bool,
        kwargs: Mapping[str, Any],
    ) -> None:
        self._init_quant_layer(return_quant_tensor)
        routed = split_quant_kwargs(kwargs, ("input", "act"), type(self).__name__, default="act")
        self._make_proxy("act_quant", ActQuantProxy, act_quant, routed.get("act", {}))
        self._make_proxy("input_quant", ActQuantProxy, input_quant, routed.get("input", {}))

    def act_forward(self, x: Tensor) -> Tensor:
        """The float activation."""
        return x

    def forward(self, input: Any) -> Any:
        """``act_quant(activation(input_quant(input)))``; a QuantTensor when ``return_quant_tensor``."""
        x = input
        input_quant = self.input_quant
        if input_quant.tensor_quant is not None:
            x = input_quant(x)
        act_quant = self.act_quant
        if isinstance(x, QuantTensor):
            y = self.act_forward(x.value)
            if act_quant.tensor_quant is None:
                if self.passthrough_act and x.is_valid:
                    return self._pack(x._with_value(y))
                return self._pack(make_quant_tensor(y, training=self.training))  # type: ignore[attr-defined]
        else:
            y = self.act_forward(x)
            if act_quant.tensor_quant is None:
                return self._pack(y)
        return self._pack(act_quant(y))

    @property
    def is_act_quant_enabled(self) -> bool:
        """Whether the activation is quantized."""
        return self.act_quant.is_quant_enabled

    def quant_act_scale(self) -> Tensor | None:
        """Scale of the activation quantizer in eval mode (``None`` when disabled)."""
        return self.act_quant.scale()

    def quant_act_zero_point(self) -> Tensor | None:
        """Zero-point of the activation quantizer in eval mode (``None`` when disabled)."""
        return self.act_quant.zero_point()

    def quant_act_bit_width(self) -> Tensor | None:
        """Bit-width of the activation quantizer (``None`` when disabled)."""
        return self.act_quant.bit_width()


#: short names of the original Brevitas
QuantWBIOL = QuantWeightBiasInputOutputLayer
QuantNLAL = QuantNonLinearActLayer
