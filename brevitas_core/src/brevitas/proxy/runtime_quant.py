"""Proxies of tensors computed at run time: activations, truncation and clamping of accumulators.

- :class:`ActQuantProxy`: ``forward(x) -> QuantTensor`` for activations and
  for the input / output of a layer. When disabled, a QuantTensor input keeps
  its metadata and a plain tensor comes back wrapped, non-valid.
- :class:`TruncQuantProxy`: re-quantizes a valid QuantTensor to fewer bits by
  dropping least-significant bits (average pooling, accumulators).
- :class:`ClampQuantProxy`: re-quantizes a valid QuantTensor to fewer bits by
  saturating (same scale).

Example:
    >>> import torch
    >>> from brevitas.proxy import ActQuantProxy
    >>> from brevitas.quant.scaled_int import Int8ActPerTensorFloat
    >>> proxy = ActQuantProxy(Int8ActPerTensorFloat)
    >>> q = proxy(torch.randn(2, 3))
    >>> int(q.bit_width), q.signed
    (8, True)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from brevitas.errors import ConfigError
from brevitas.proxy.base import QuantProxy, make_quant_tensor
from brevitas.quant_tensor import QuantTensor

__all__ = ["ActQuantProxy", "ClampQuantProxy", "TruncQuantProxy"]


def _is_quant_tensor(x: Any) -> bool:
    return isinstance(x, QuantTensor)


class ActQuantProxy(QuantProxy):
    """Quantizes an activation (or a layer's input / output).

    Args:
        quant: the activation quantizer class (e.g. ``Uint8ActPerTensorFloat``),
            or ``None`` to disable.
        layer: the layer it belongs to (for per-channel shapes and messages).
        **overrides: quantizer attribute overrides.
    """

    role = "act"
    solver_name = "ActQuantSolver"

    def forward(self, x: Any) -> Any:
        """Quantize ``x`` (a tensor or a QuantTensor, whose metadata is then replaced)."""
        tensor_quant = self._tensor_quant_fn()
        if tensor_quant is None:
            if _is_quant_tensor(x):
                return x
            return make_quant_tensor(x, training=self.training)
        value = x.value if _is_quant_tensor(x) else x
        try:
            y, scale, zero_point, bit_width = tensor_quant(value)
        except Exception as exc:
            self._forward_error(exc)
            raise
        return make_quant_tensor(y, scale, zero_point, bit_width, self._signed, self._narrow_range, self.training)

    def probe(self) -> Any:
        """The quantizer's output metadata in eval mode, without touching its statistics.

        Runs ``tensor_quant`` in eval mode on a zero tensor (shaped like the
        per-channel scale when the quantizer declares
        ``per_channel_broadcastable_shape``) and restores the mode. Scales from
        runtime statistics are those accumulated so far.

        Returns:
            A QuantTensor (non-valid when quantization is disabled).
        """
        tensor_quant = self.tensor_quant
        if tensor_quant is None:
            return make_quant_tensor(torch.zeros(1), training=False)
        reference = next(iter(tensor_quant.parameters()), None)
        if reference is None:
            reference = next(iter(tensor_quant.buffers()), None)
        try:
            injector = self.quant_injector
        except Exception:  # not rebuildable after unpickling: probe per tensor
            injector = None
        shape = _probe_shape(injector)
        x = reference.new_zeros(shape) if reference is not None else torch.zeros(shape)
        modes = [(m, m.training) for m in tensor_quant.modules()]
        try:
            tensor_quant.eval()
            y, scale, zero_point, bit_width = tensor_quant(x)
        finally:
            for m, mode in modes:
                m.training = mode
        return make_quant_tensor(y, scale, zero_point, bit_width, self._signed, self._narrow_range, False)

    def scale(self) -> Tensor | None:
        """Scale in eval mode (see :meth:`probe`); ``None`` when disabled."""
        return self.probe().scale

    def zero_point(self) -> Tensor | None:
        """Zero-point in eval mode (see :meth:`probe`); ``None`` when disabled."""
        return self.probe().zero_point

    def bit_width(self) -> Tensor | None:
        """Bit-width (see :meth:`probe`); ``None`` when disabled."""
        return self.probe().bit_width


def _probe_shape(injector: Any) -> tuple[int, ...]:
    from brevitas.inject import defines

    if injector is not None and defines(injector, "per_channel_broadcastable_shape"):
        try:
            shape = injector.per_channel_broadcastable_shape
        except Exception:
            shape = None
        if shape is not None and bool(getattr(injector, "scaling_per_output_channel", False)):
            return tuple(int(s) for s in shape)
    return (1,)


class _AccQuantProxy(QuantProxy):
    """Shared part of truncation and clamping: ``forward(QuantTensor) -> QuantTensor``."""

    role = "trunc"
    solver_name = "TruncQuantSolver"
    #: whether the output range is narrow (trunc: never; clamp: the quantizer's)
    _output_narrow_from_quant = False

    def forward(self, x: Any) -> Any:
        """Re-quantize the valid QuantTensor ``x``; a disabled proxy returns ``x`` unchanged."""
        tensor_quant = self._tensor_quant_fn()
        if tensor_quant is None:
            return x
        if not _is_quant_tensor(x) or not x.is_valid:
            raise ConfigError(
                f"{self.describe_owner()} re-quantizes an integer tensor and needs a valid QuantTensor input "
                f"(scale, zero-point, bit-width and sign), got {_describe_input(x)}. Quantize what comes before "
                f"it and return a QuantTensor (e.g. QuantIdentity(return_quant_tensor=True)), or disable it "
                f"(trunc_quant=None / clamp_quant=None)"
            )
        try:
            y, scale, zero_point, bit_width = tensor_quant(x.value, x.scale, x.zero_point, x.bit_width)
        except Exception as exc:
            self._forward_error(exc)
            raise
        if self._output_narrow_from_quant:  # clamp: the target range is the quantizer's
            signed = x.signed if self._signed is None else self._signed
            narrow = bool(self._narrow_range)
        else:  # trunc: same sign, full range
            signed, narrow = x.signed, False
        return make_quant_tensor(y, scale, zero_point, bit_width, signed, narrow, self.training)


def _describe_input(x: Any) -> str:
    if _is_quant_tensor(x):
        return "a non-valid QuantTensor"
    return f"a plain {type(x).__name__}"


class TruncQuantProxy(_AccQuantProxy):
    """Drops least-significant bits of a valid QuantTensor (the scale grows, the sign is kept).

    Example:
        >>> import torch
        >>> from brevitas.quant_tensor import QuantTensor
        >>> from brevitas.quant.scaled_int import TruncTo8bit
        >>> from brevitas.proxy import TruncQuantProxy
        >>> x = QuantTensor(torch.tensor([-512.0, 100.0, 511.0]), 1.0, 0.0, 10, signed=True)
        >>> y = TruncQuantProxy(TruncTo8bit)(x)
        >>> int(y.bit_width), float(y.scale)
        (8, 4.0)
    """


class ClampQuantProxy(_AccQuantProxy):
    """Saturates a valid QuantTensor to fewer bits (the scale is kept)."""

    _output_narrow_from_quant = True
