"""Proxies of parameters: weights and biases.

:class:`WeightQuantProxy` quantizes a layer's weight. Its statistics track the
``weight`` of every layer that uses it, so sharing one proxy between layers
(``QuantConv2d(..., weight_quant=other.weight_quant)``) gives them one scale
computed over all their weights. In eval mode with gradients disabled the
quantized weight is cached until the weight (or the quantizer's state)
changes.

:class:`BiasQuantProxy` quantizes a bias. Quantizers such as ``Int8Bias``
take the scale from outside (input scale times weight scale), which the layer
passes in; others (``Int8BiasPerTensorFloatInternalScaling``) scale the bias
themselves.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantLinear
    >>> layer = QuantLinear(4, 2, bias=False, weight_bit_width=4)
    >>> qw = layer.weight_quant(layer.weight)
    >>> int(qw.bit_width), bool((qw.int().abs() <= 7).all())
    (4, True)
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import Tensor, nn

from brevitas.errors import ConfigError
from brevitas.proxy.base import QuantProxy, make_quant_tensor

__all__ = ["BiasQuantProxy", "WeightQuantProxy"]


def _version_key(tensors: Any) -> tuple[Any, ...] | None:
    """Versions and storage of ``tensors``; ``None`` when one has no version (inference tensors)."""
    out = []
    try:
        for t in tensors:
            out.append((t._version, t.data_ptr()))
    except RuntimeError:
        return None
    return tuple(out)


class WeightQuantProxy(QuantProxy):
    """Quantizes a layer's weight: ``forward(weight) -> QuantTensor``.

    Args:
        quant: the weight quantizer class (e.g. ``Int8WeightPerTensorFloat``),
            or ``None`` to disable.
        layer: the layer whose ``weight`` the statistics track.
        **overrides: quantizer attribute overrides.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantConv2d
        >>> conv1 = QuantConv2d(2, 2, 1, weight_bit_width=4)
        >>> conv2 = QuantConv2d(2, 2, 1, weight_quant=conv1.weight_quant)
        >>> conv1.weight_quant is conv2.weight_quant, len(conv1.weight_quant.tracked_tensors())
        (True, 2)
    """

    role = "weight"
    tracked_attr = "weight"
    solver_name = "WeightQuantSolver"

    def __init__(self, quant: Any, layer: nn.Module | None = None, **overrides: Any) -> None:
        self._cache: dict[int, tuple[Any, Any, Any]] = {}
        super().__init__(quant, layer, **overrides)

    def _on_rebuilt(self) -> None:
        self._cache = {}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_cache"] = {}  # eval-mode cache: weak references do not pickle, and it is rebuilt on demand
        return state

    def train(self, mode: bool = True) -> WeightQuantProxy:
        if mode:
            self._cache = {}
        return super().train(mode)

    def _apply(self, *args: Any, **kwargs: Any) -> WeightQuantProxy:
        self._cache = {}
        return super()._apply(*args, **kwargs)

    def _cache_key(self, x: Tensor) -> tuple[Any, ...] | None:
        assert self.tensor_quant is not None
        state = _version_key(
            [x, *self.tracked_tensors(), *self.tensor_quant.parameters(), *self.tensor_quant.buffers()]
        )
        if state is None:
            return None
        return (torch.is_inference_mode_enabled(), x.dtype, state)

    def _quantize(self, x: Tensor) -> Any:
        try:
            value, scale, zero_point, bit_width = self._tensor_quant_fn()(x)
        except Exception as exc:
            self._forward_error(exc)
            raise
        return make_quant_tensor(value, scale, zero_point, bit_width, self._signed, self._narrow_range, self.training)

    def forward(self, x: Tensor) -> Any:
        """Quantize ``x`` (the weight): a valid QuantTensor, or a non-valid one wrapping ``x`` when disabled."""
        if self.tensor_quant is None:
            return make_quant_tensor(x, training=self.training)
        if self.training or torch.is_grad_enabled() or torch.compiler.is_compiling():
            return self._quantize(x)
        key = self._cache_key(x)
        if key is None:
            return self._quantize(x)
        hit = self._cache.get(id(x))
        if hit is not None and hit[0] == key and hit[2]() is x:
            return hit[1]
        out = self._quantize(x)
        self._cache[id(x)] = (key, out, weakref.ref(x))
        return out

    def _first_tracked(self) -> Tensor:
        tracked = self.tracked_tensors()
        if not tracked:
            raise ConfigError(
                f"{self.describe_owner()} tracks no weight yet; call it with the weight: proxy(layer.weight)"
            )
        return tracked[0]

    def quant_output(self) -> Any:
        """The quantized weight of the first layer using this proxy."""
        return self(self._first_tracked())

    def scale(self) -> Tensor | None:
        """Scale of the quantized weight (``None`` when disabled)."""
        return self.quant_output().scale

    def zero_point(self) -> Tensor | None:
        """Zero-point of the quantized weight (``None`` when disabled)."""
        return self.quant_output().zero_point

    def bit_width(self) -> Tensor | None:
        """Bit-width of the quantized weight (``None`` when disabled)."""
        return self.quant_output().bit_width


class BiasQuantProxy(QuantProxy):
    """Quantizes a layer's bias: ``forward(bias, input_scale=None, input_bit_width=None) -> QuantTensor``.

    ``requires_input_scale`` (declared by the quantizer, e.g. ``Int8Bias``)
    means the bias is quantized on the accumulator's grid: ``input_scale``
    must be the scale of the product input x weight, shaped like the bias
    (one value, or one per output channel).

    Raises:
        ConfigError: ``input_scale`` (or ``input_bit_width``) is required and
            missing; the message names the layer and the ways to fix it.

    Example:
        >>> import torch
        >>> from brevitas.proxy import BiasQuantProxy
        >>> from brevitas.quant.scaled_int import Int8Bias
        >>> proxy = BiasQuantProxy(Int8Bias)
        >>> q = proxy(torch.tensor([0.3, -0.2]), input_scale=torch.tensor(0.01))
        >>> q.int().tolist()
        [30, -20]
    """

    role = "bias"
    tracked_attr = "bias"
    solver_name = "BiasQuantSolver"

    def init_tensor_quant(self) -> None:
        super().init_tensor_quant()
        injector = self._injector
        self.requires_input_scale = bool(_declared(injector, "requires_input_scale", False))
        self.requires_input_bit_width = bool(_declared(injector, "requires_input_bit_width", False))

    def missing_scale_error(self, weight_quantized: bool = True, per_channel_input: bool = False) -> ConfigError:
        """The error raised when the input scale (or the weight scale) is needed and unusable.

        Args:
            weight_quantized: False when the weight has no scale (weight_quant=None).
            per_channel_input: True when the input scale is known but holds one value
                per channel, which has no single accumulator grid for the bias.
        """
        quant = getattr(self.quant, "__qualname__", "the bias quantizer")
        if weight_quantized and per_channel_input:
            return ConfigError(
                f"{self.describe_owner()}: bias quantizer {quant} scales the bias with input scale x weight scale, "
                f"but the input scale is per-channel (one value per input channel), and the channels are summed "
                f"together, so the accumulator has no single scale. Quantize the input per tensor "
                f"(input_quant=Int8ActPerTensorFloat, or a per-tensor act_quant on the layer before), or use a bias "
                f"quantizer with its own scale (bias_quant=Int8BiasPerTensorFloatInternalScaling)"
            )
        if not weight_quantized:
            return ConfigError(
                f"{self.describe_owner()}: bias quantizer {quant} scales the bias with input scale x weight scale, "
                f"but the weight is not quantized (weight_quant=None), so it has no scale. Quantize the weight, or "
                f"use a bias quantizer with its own scale (bias_quant=Int8BiasPerTensorFloatInternalScaling)"
            )
        return ConfigError(
            f"{self.describe_owner()}: bias quantizer {quant} scales the bias with input scale x weight scale, "
            f"but the input scale is unknown. Add an input quantizer to the layer (input_quant=Int8ActPerTensorFloat), "
            f"feed it a QuantTensor (return_quant_tensor=True on the layer before), or use a bias quantizer with its "
            f"own scale (bias_quant=Int8BiasPerTensorFloatInternalScaling)"
        )

    def forward(self, x: Tensor, input_scale: Tensor | None = None, input_bit_width: Tensor | None = None) -> Any:
        """Quantize the bias ``x``; see the class docstring for ``input_scale`` / ``input_bit_width``."""
        tensor_quant = self._tensor_quant_fn()
        if tensor_quant is None:
            return make_quant_tensor(x, training=self.training)
        if self.requires_input_scale:
            if input_scale is None:
                raise self.missing_scale_error()
            if self.requires_input_bit_width and input_bit_width is None:
                raise ConfigError(
                    f"{self.describe_owner()}: the bias quantizer takes its bit-width from the accumulator, "
                    f"which is unknown; feed the layer a QuantTensor with a bit-width or add an input_quant"
                )
        try:
            if not self.requires_input_scale:
                out = tensor_quant(x)
            elif self.requires_input_bit_width:
                out = tensor_quant(x, input_scale, input_bit_width)
            else:
                out = tensor_quant(x, input_scale)
        except Exception as exc:
            self._forward_error(exc)
            raise
        value, scale, zero_point, bit_width = out
        signed = True if self._signed is None else self._signed
        return make_quant_tensor(value, scale, zero_point, bit_width, signed, self._narrow_range, self.training)


def _declared(injector: Any, name: str, default: Any) -> Any:
    from brevitas.inject import defines

    if injector is None or not defines(injector, name):
        return default
    return getattr(injector, name)
