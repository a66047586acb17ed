"""Bit-width regularizers weighted by size or by operations (see :mod:`brevitas.loss`)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from brevitas.errors import ConfigError
from brevitas.quant_tensor import QuantTensor

__all__ = [
    "ActivationBitWidthWeightedBySize",
    "BitWidthWeighted",
    "QuantLayerOutputBitWidthWeightedByOps",
    "WeightBitWidthWeightedBySize",
]


class BitWidthWeighted:
    """Accumulates ``weight * bit_width`` terms from forward hooks; base of the regularizers.

    Args:
        model: the model to watch.
        learned_only: count only bit-widths that require a gradient (learned
            ones); constant bit-widths add nothing to minimize.

    Subclasses implement :meth:`register_hooks`.
    """

    def __init__(self, model: nn.Module, learned_only: bool = True) -> None:
        self.model = model
        self.learned_only = learned_only
        self.weighted_bit_width_list: list[Tensor] = []
        self.tot_num_elements: float = 0.0
        self._handles: list[Any] = []
        self.register_hooks()

    def register_hooks(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _accumulate(self, bit_width: Tensor | None, weight: float) -> None:
        if bit_width is None or weight == 0:
            return
        if self.learned_only and not bit_width.requires_grad:
            return
        self.weighted_bit_width_list.append(bit_width * weight)
        self.tot_num_elements += weight

    @property
    def num_hooks(self) -> int:
        """How many modules are watched."""
        return len(self._handles)

    def zero_accumulated_values(self) -> None:
        """Forget what was accumulated (call after each optimizer step)."""
        self.weighted_bit_width_list = []
        self.tot_num_elements = 0.0

    def retrieve(self, as_average: bool = True) -> Tensor | list[Tensor]:
        """The accumulated bit-widths: their weighted average, or each term divided by the total weight.

        Raises:
            ConfigError: nothing was accumulated since the last reset.
        """
        if not self.weighted_bit_width_list or self.tot_num_elements == 0:
            raise ConfigError(
                f"{type(self).__name__}: nothing accumulated; run a forward pass of the model first (and, with "
                f"learned_only=True, give its quantizers learned bit-widths: bit_width_impl_type='parameter')"
            )
        if as_average:
            return torch.stack([t.reshape(()) for t in self.weighted_bit_width_list]).sum() / self.tot_num_elements
        return [t / self.tot_num_elements for t in self.weighted_bit_width_list]

    def log(self) -> Tensor:
        """The weighted average, detached (for logging)."""
        value = self.retrieve(as_average=True)
        assert isinstance(value, Tensor)
        return value.detach().clone()

    def remove_hooks(self) -> None:
        """Stop watching the model."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _per_sample_numel(t: Tensor) -> int:
    return math.prod(t.shape[1:]) if t.dim() > 1 else t.numel()


class WeightBitWidthWeightedBySize(BitWidthWeighted):
    """Average weight bit-width, each weighted by the number of weights it quantizes.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantLinear
        >>> model = torch.nn.Sequential(QuantLinear(2, 2, bias=False, weight_bit_width=4))
        >>> reg = WeightBitWidthWeightedBySize(model, learned_only=False)
        >>> _ = model(torch.randn(1, 2))
        >>> float(reg.retrieve())
        4.0
    """

    def register_hooks(self) -> None:
        from brevitas.proxy import WeightQuantProxy

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, QuantTensor):
                self._accumulate(output.bit_width, output.value.numel())

        for module in self.model.modules():
            if isinstance(module, WeightQuantProxy) and module.is_quant_enabled:
                self._handles.append(module.register_forward_hook(hook))


class ActivationBitWidthWeightedBySize(BitWidthWeighted):
    """Average activation bit-width, each weighted by the activations per sample it quantizes.

    Watches every activation proxy (``act_quant``, ``input_quant``, ``output_quant``).

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantReLU
        >>> model = torch.nn.Sequential(QuantReLU(bit_width=4))
        >>> reg = ActivationBitWidthWeightedBySize(model, learned_only=False)
        >>> _ = model(torch.randn(3, 5))
        >>> float(reg.retrieve()), reg.tot_num_elements
        (4.0, 5.0)
    """

    def register_hooks(self) -> None:
        from brevitas.proxy import ActQuantProxy

        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if isinstance(output, QuantTensor):
                self._accumulate(output.bit_width, float(_per_sample_numel(output.value)))

        for module in self.model.modules():
            if isinstance(module, ActQuantProxy) and module.is_quant_enabled:
                self._handles.append(module.register_forward_hook(hook))


class QuantLayerOutputBitWidthWeightedByOps(BitWidthWeighted):
    """Average accumulator bit-width of weight layers, weighted by multiply-accumulates per sample.

    The accumulator of a weight layer is known when its input is a valid
    QuantTensor (an ``input_quant``, or a previous layer with
    ``return_quant_tensor=True``) and its weight is quantized; layers whose
    accumulator is unknown in a forward pass add nothing.

    Args:
        model: the model to watch.
        layer_types: the layers to watch (default: every weight layer).
        learned_only: as in :class:`BitWidthWeighted`.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantIdentity, QuantLinear
        >>> model = torch.nn.Sequential(QuantIdentity(return_quant_tensor=True), QuantLinear(4, 2, bias=False))
        >>> reg = QuantLayerOutputBitWidthWeightedByOps(model, learned_only=False)
        >>> _ = model(torch.randn(1, 4))
        >>> int(reg.retrieve())  # 8-bit inputs times 8-bit weights, 4 terms: 17 bits
        17
    """

    def __init__(
        self, model: nn.Module, layer_types: tuple[type, ...] | None = None, learned_only: bool = True
    ) -> None:
        from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer

        self.layer_types = layer_types if layer_types is not None else (QuantWeightBiasInputOutputLayer,)
        super().__init__(model, learned_only)

    def register_hooks(self) -> None:
        from brevitas.nn.quant_layer import QuantWeightBiasInputOutputLayer

        def hook(layer: nn.Module, acc: QuantTensor) -> None:
            if acc.is_valid:
                ops = _per_sample_numel(acc.value) * layer.reduction_size  # type: ignore[attr-defined]
                self._accumulate(acc.bit_width, float(ops))

        for module in self.model.modules():
            if isinstance(module, self.layer_types) and isinstance(module, QuantWeightBiasInputOutputLayer):
                module._acc_hooks.append(hook)
                self._handles.append(_AccHookHandle(module, hook))


class _AccHookHandle:
    """Removes an accumulator hook from a layer (like a torch hook handle)."""

    def __init__(self, layer: Any, hook: Any) -> None:
        self.layer = layer
        self.hook = hook

    def remove(self) -> None:
        hooks = self.layer._acc_hooks
        if self.hook in hooks:
            hooks.remove(self.hook)
