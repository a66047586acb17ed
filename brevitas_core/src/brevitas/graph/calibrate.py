"""Post-training quantization: collect activation statistics, then correct the bias shift.

Two context managers, used on a model quantized by
:func:`brevitas.graph.quantize` (or built by hand from ``brevitas.nn``):

- :class:`calibration_mode`: while inside, every activation quantizer
  (``act_quant``, ``input_quant``, ``output_quant`` proxies) gathers
  statistics of what it sees, with no gradient, while the rest of the model
  runs in eval mode (batch norms and dropout frozen). On exit the average
  statistic over every calibration batch becomes the scale eval uses, and the
  initial value of a learned scale if the model is then fine-tuned (QAT).
- :class:`bias_correction_mode`: while inside, each layer with a weight
  accumulates the mean difference, per output channel, between its float
  output (float weights and bias, on the same quantized input) and its
  quantized output; on exit that mean is added to its bias.

**The calibration protocol.** The core imports no plugin class. A component
(a module inside a quantizer's ``tensor_quant``) that gathers runtime
statistics takes part by defining ``calibrate(mode: bool) -> None``:

- ``calibrate(True)``: forget the statistics gathered so far and, from now on
  while in training mode, accumulate the plain average of every batch, however
  many come (a learned parameter does not take over meanwhile);
- ``calibrate(False)``: stop; what eval uses (and a learned parameter's
  value) becomes that average. If no batch came, the component returns to the
  state it had before ``calibrate(True)``.

The standard plugin's running-statistics and collect-then-learn scales and
zero-points implement it. Statistics are taken over the global batch of all
``torch.distributed`` ranks by the components themselves, so every rank ends with the same scales.

Example:
    >>> import torch
    >>> from brevitas.graph import quantize
    >>> model = quantize(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()).eval())
    >>> with calibration_mode(model):
    ...     for _ in range(3):
    ...         _ = model(torch.randn(16, 4))
    >>> with bias_correction_mode(model):
    ...     _ = model(torch.randn(16, 4))
    >>> model(torch.randn(2, 4)).shape
    torch.Size([2, 4])
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = ["Calibratable", "bias_correction_mode", "calibration_mode", "calibratable_components"]


@runtime_checkable
class Calibratable(Protocol):
    """A component that gathers runtime statistics and takes part in :class:`calibration_mode`."""

    def calibrate(self, mode: bool = True) -> None:
        """Start (``True``) or finish (``False``) a calibration; see the module docstring."""


def _act_proxies(model: nn.Module) -> list[nn.Module]:
    from brevitas.proxy import ActQuantProxy

    out, seen = [], set()
    for module in model.modules():
        if isinstance(module, ActQuantProxy) and module.tensor_quant is not None and id(module) not in seen:
            seen.add(id(module))
            out.append(module)
    return out


def calibratable_components(model: nn.Module) -> list[nn.Module]:
    """The modules inside ``model``'s activation quantizers that define ``calibrate(mode)``.

    Example:
        >>> from brevitas.nn import QuantReLU
        >>> [type(m).__name__ for m in calibratable_components(QuantReLU())]
        ['ParameterFromRuntimeStatsScaling']
    """
    out, seen = [], set()
    for proxy in _act_proxies(model):
        for module in proxy.modules():
            if module is proxy or id(module) in seen:
                continue
            if callable(getattr(module, "calibrate", None)):
                seen.add(id(module))
                out.append(module)
    return out


def _proxy_names(model: nn.Module) -> dict[int, str]:
    return {id(m): name for name, m in model.named_modules()}


class _ModeKeeper:
    """Remembers every module's training flag and restores it."""

    def __init__(self, model: nn.Module) -> None:
        self.modes = [(m, m.training) for m in model.modules()]

    def restore(self) -> None:
        for module, mode in self.modes:
            module.training = mode


class calibration_mode:
    """Collect activation statistics over the batches run inside; freeze them as scales on exit.

    Inside: gradients are off; the model is in eval mode except its
    activation quantizers, which are in training mode (so their QuantTensors
    are training ones and each batch updates the statistics); every
    :class:`Calibratable` component restarts its statistics. On exit: the
    components freeze the average over the calibration batches, every
    module's training flag is restored, and a warning names the activation
    quantizers that saw no data (their state is unchanged).

    Args:
        model: the quantized model.
        enabled: ``False`` makes the context do nothing (handy in loops).

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantIdentity
        >>> q = QuantIdentity()
        >>> with calibration_mode(q):
        ...     _ = q(torch.full((4,), 2.0))
        ...     _ = q(torch.full((4,), 4.0))
        >>> float(q.quant_act_scale().detach()) * 128  # threshold: the average of 2 and 4 (scale = threshold / 2**7)
        3.0
    """

    def __init__(self, model: nn.Module, enabled: bool = True) -> None:
        self.model = model
        self.enabled = enabled
        self._modes: _ModeKeeper | None = None
        self._grad: Any = None
        self._components: list[nn.Module] = []
        self._calls: dict[int, int] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> calibration_mode:
        if not self.enabled:
            return self
        self._modes = _ModeKeeper(self.model)
        self.model.eval()
        proxies = _act_proxies(self.model)
        for proxy in proxies:
            proxy.train(True)
            self._calls[id(proxy)] = 0
            self._handles.append(proxy.register_forward_hook(self._count))
        self._components = calibratable_components(self.model)
        for component in self._components:
            component.calibrate(True)
        self._grad = torch.no_grad()
        self._grad.__enter__()
        return self

    def _count(self, module: nn.Module, args: Any, output: Any) -> None:
        self._calls[id(module)] = self._calls.get(id(module), 0) + 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.enabled:
            return
        assert self._modes is not None
        try:
            self._grad.__exit__(exc_type, exc, tb)
            for component in self._components:
                component.calibrate(False)
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles = []
            self._modes.restore()
        if exc_type is None:
            idle = [i for i, n in self._calls.items() if n == 0]
            if idle:
                names = _proxy_names(self.model)
                listed = ", ".join(sorted(names.get(i, "?") for i in idle))
                warnings.warn(
                    f"calibration_mode: {len(idle)} activation quantizer(s) saw no data ({listed}); their scales "
                    f"are unchanged. Run batches that reach them inside the calibration block",
                    stacklevel=2,
                )


def _weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer

    out = []
    seen: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, QuantWeightBiasInputOutputLayer) and id(module) not in seen:
            seen.add(id(module))
            if module.weight_quant.is_quant_enabled or module.bias_quant.is_quant_enabled:
                out.append((name, module))
    return out


def _channel_axis(layer: nn.Module, ndim: int) -> int:
    """The axis of the output holding the output channels (the one ``_output_channel_shape`` varies along)."""
    shape = tuple(layer._output_channel_shape(ndim))  # type: ignore[operator]
    offset = ndim - len(shape)
    for i, size in enumerate(shape):
        if size != 1:
            return offset + i
    return offset + len(shape) - 1


def _plain(x: Any) -> Tensor:
    from brevitas.quant_tensor import to_tensor

    return to_tensor(x)


class bias_correction_mode:
    """Measure each weight layer's mean output shift caused by quantization; add it to the bias on exit.

    For every ``brevitas.nn`` layer with a weight (convolutions, linear ...)
    and every batch run inside (eval mode, no gradient), it compares

    - the float output: ``layer``'s operation with the float weight and
      float bias on the input the layer actually quantized, and
    - the layer's output (quantized weight, quantized bias, output quantizer),

    and accumulates their difference averaged over every axis but the output
    channels. On exit the average over all batches is added to the bias (a
    layer without bias gets one, unless ``skip_if_no_bias``). Every layer is
    measured in the same pass, so the measurement of a layer includes the
    quantization of the layers before it.

    Args:
        model: the quantized (and calibrated) model.
        layers: qualified names of the layers to correct (default: all).
        skip_if_no_bias: leave layers without a bias as they are.
        enabled: ``False`` makes the context do nothing.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantLinear
        >>> _ = torch.manual_seed(0)
        >>> layer = QuantLinear(8, 2, weight_bit_width=2)
        >>> x = torch.randn(256, 8)
        >>> float_out = torch.nn.functional.linear(x, layer.weight, layer.bias).detach()
        >>> def shift():
        ...     return float((float_out - layer(x).detach()).mean(0).abs().max())
        >>> shift() > 1e-3
        True
        >>> with bias_correction_mode(layer):
        ...     _ = layer(x)
        >>> shift() < 1e-5
        True
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Iterable[str] | None = None,
        skip_if_no_bias: bool = False,
        enabled: bool = True,
    ) -> None:
        self.model = model
        self.layers = None if layers is None else set(layers)
        self.skip_if_no_bias = skip_if_no_bias
        self.enabled = enabled
        self._modes: _ModeKeeper | None = None
        self._grad: Any = None
        self._handles: list[Any] = []
        self._sums: dict[int, Tensor] = {}
        self._counts: dict[int, int] = {}
        self._targets: list[tuple[str, nn.Module]] = []

    def __enter__(self) -> bias_correction_mode:
        if not self.enabled:
            return self
        targets = _weight_layers(self.model)
        if self.layers is not None:
            known = {name for name, _ in targets}
            unknown = sorted(self.layers - known)
            if unknown:
                from brevitas.errors import ConfigError

                raise ConfigError(
                    f"bias_correction_mode: no quantized weight layer named {', '.join(unknown)}; layers that can be "
                    f"corrected: {', '.join(sorted(known)) or '(none)'}"
                )
            targets = [(n, m) for n, m in targets if n in self.layers]
        if self.skip_if_no_bias:
            targets = [(n, m) for n, m in targets if m.bias is not None]  # type: ignore[union-attr]
        self._targets = targets
        self._modes = _ModeKeeper(self.model)
        self.model.eval()
        for _, layer in targets:
            self._handles.append(layer.register_forward_hook(self._measure))
        self._grad = torch.no_grad()
        self._grad.__enter__()
        return self

    def _measure(self, layer: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not args:
            return
        x = args[0]
        if layer.input_quant.is_quant_enabled:  # type: ignore[union-attr]
            x = layer.input_quant(x)  # type: ignore[operator]
        x_val = _plain(x)
        reference = layer.inner_forward_impl(x_val, layer.weight, layer.bias, *args[1:])  # type: ignore[operator]
        out = _plain(output)
        diff = (reference - out).detach()
        axis = _channel_axis(layer, diff.dim())
        dims = [d for d in range(diff.dim()) if d != axis]
        mean = diff.mean(dim=dims) if dims else diff
        key = id(layer)
        if key in self._sums:
            self._sums[key] = self._sums[key] + mean
            self._counts[key] += 1
        else:
            self._sums[key] = mean
            self._counts[key] = 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.enabled:
            return
        assert self._modes is not None
        try:
            self._grad.__exit__(exc_type, exc, tb)
            for handle in self._handles:
                handle.remove()
            self._handles = []
            if exc_type is None:
                self._apply()
        finally:
            self._modes.restore()

    def _apply(self) -> None:
        for _, layer in self._targets:
            key = id(layer)
            if key not in self._sums:
                continue
            shift = self._sums[key] / self._counts[key]
            with torch.no_grad():
                if layer.bias is None:
                    layer.bias = nn.Parameter(shift.to(layer.weight.dtype).clone())  # type: ignore[union-attr]
                    layer.bias_quant.init_tensor_quant()  # type: ignore[union-attr, operator]
                else:
                    layer.bias.add_(shift.to(layer.bias.dtype))  # type: ignore[union-attr, operator]
        self._sums, self._counts = {}, {}
