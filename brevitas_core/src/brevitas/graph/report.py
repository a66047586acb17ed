"""Per-layer introspection of a quantized model: quantizers, bit-widths, scales, accepting exporters.

:func:`report` walks every ``brevitas.nn`` layer of a model and describes
each of its quantizers (``weight_quant``, ``bias_quant``, ``input_quant``,
``output_quant``, ``act_quant``, ``trunc_quant`` ...): the quantizer class,
whether it is enabled, and, in eval mode, its bit-width, sign, scale and
zero-point. Given example inputs it runs the model once to describe exactly
what each quantizer did (biases on the accumulator grid included), and asks
every installed exporter (:func:`brevitas.export.check`) which layers it
would accept.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantLinear, QuantReLU
    >>> model = torch.nn.Sequential(QuantLinear(4, 4, weight_bit_width=4), QuantReLU())
    >>> rep = report(model)
    >>> rep.layer("0").quantizer("weight_quant").bit_width, rep.layer("1").quantizer("act_quant").signed
    (4, False)
    >>> print(str(rep).splitlines()[0].split())
    ['layer', 'type', 'quantizer', 'class', 'bits', 'signed', 'granularity', 'scale', 'zero_point']
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from brevitas.errors import BrevitasError

__all__ = ["LayerReport", "ModelReport", "QuantizerReport", "report"]


@dataclass(frozen=True)
class QuantizerReport:
    """One quantizer of a layer.

    Attributes:
        attr: the layer attribute holding it (``"weight_quant"``).
        role: ``weight``, ``bias``, ``act``, ``trunc``.
        quantizer: the quantizer class name (``""`` when disabled).
        enabled: whether it quantizes.
        bit_width: bit-width, ``None`` when unknown (disabled, or a bias
            scale that depends on the input with no example input given).
        signed: signed integer range (``None`` when unknown).
        narrow_range: narrow integer range (``None`` when unknown).
        per_channel: whether the scale varies per channel (``None`` when unknown).
        scale: detached scale in eval mode (``None`` when unknown).
        zero_point: detached zero-point in eval mode (``None`` when unknown).
        note: why something is unknown, or a remark.
    """

    attr: str
    role: str
    quantizer: str
    enabled: bool
    bit_width: int | None = None
    signed: bool | None = None
    narrow_range: bool | None = None
    per_channel: bool | None = None
    scale: Tensor | None = field(default=None, repr=False)
    zero_point: Tensor | None = field(default=None, repr=False)
    note: str = ""

    def scale_text(self) -> str:
        """The scale as text: one number, or ``min..max (C values)`` per channel."""
        return _tensor_text(self.scale)

    def zero_point_text(self) -> str:
        """The zero-point as text (like :meth:`scale_text`)."""
        return _tensor_text(self.zero_point)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (scales as lists)."""
        return {
            "attr": self.attr,
            "role": self.role,
            "quantizer": self.quantizer,
            "enabled": self.enabled,
            "bit_width": self.bit_width,
            "signed": self.signed,
            "narrow_range": self.narrow_range,
            "per_channel": self.per_channel,
            "scale": None if self.scale is None else self.scale.flatten().tolist(),
            "zero_point": None if self.zero_point is None else self.zero_point.flatten().tolist(),
            "note": self.note,
        }


@dataclass(frozen=True)
class LayerReport:
    """One quant layer: its quantizers and the exporters that accept it.

    Attributes:
        name: qualified name in the model.
        layer_type: class name (``"QuantConv2d"``).
        quantizers: one entry per quantizer attribute.
        exporters: names of the installed exporters whose check found no
            problem with this layer, ``None`` when not checked (no example input).
        problems: ``{exporter: [problem text, ...]}`` for the exporters that refuse it.
    """

    name: str
    layer_type: str
    quantizers: tuple[QuantizerReport, ...]
    exporters: tuple[str, ...] | None = None
    problems: dict[str, list[str]] = field(default_factory=dict)

    def quantizer(self, attr: str) -> QuantizerReport:
        """The entry for ``attr`` (``"weight_quant"``, ``"act_quant"`` ...).

        Raises:
            KeyError: naming the attributes this layer has.
        """
        for q in self.quantizers:
            if q.attr == attr:
                return q
        raise KeyError(f"{self.name} has no {attr}; it has {', '.join(q.attr for q in self.quantizers)}")

    def bit_widths(self) -> dict[str, int | None]:
        """``{attr: bit-width}`` of the enabled quantizers."""
        return {q.attr: q.bit_width for q in self.quantizers if q.enabled}

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values."""
        return {
            "name": self.name,
            "layer_type": self.layer_type,
            "quantizers": [q.to_dict() for q in self.quantizers],
            "exporters": None if self.exporters is None else list(self.exporters),
            "problems": {k: list(v) for k, v in self.problems.items()},
        }


@dataclass(frozen=True)
class ModelReport:
    """Every quant layer of a model (see :func:`report`).

    Attributes:
        layers: in the order of ``model.named_modules()``.
        exporters_checked: the exporters that were asked (empty without example inputs).
        model_problems: ``{exporter: [problem text]}`` for problems not tied to one layer.
    """

    layers: tuple[LayerReport, ...]
    exporters_checked: tuple[str, ...] = ()
    model_problems: dict[str, list[str]] = field(default_factory=dict)

    def __iter__(self) -> Iterator[LayerReport]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def layer(self, name: str) -> LayerReport:
        """The report of the layer called ``name``.

        Raises:
            KeyError: listing the layer names there are.
        """
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(f"no quant layer named {name!r}; layers: {', '.join(lay.name for lay in self.layers)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (e.g. for ``json.dumps``)."""
        return {
            "layers": [lay.to_dict() for lay in self.layers],
            "exporters_checked": list(self.exporters_checked),
            "model_problems": {k: list(v) for k, v in self.model_problems.items()},
        }

    def __str__(self) -> str:
        header = ("layer", "type", "quantizer", "class", "bits", "signed", "granularity", "scale", "zero_point")
        rows: list[tuple[str, ...]] = []
        for lay in self.layers:
            first = True
            for q in lay.quantizers:
                if not q.enabled:
                    continue
                rows.append(
                    (
                        lay.name if first else "",
                        lay.layer_type if first else "",
                        q.attr,
                        q.quantizer,
                        "?" if q.bit_width is None else str(q.bit_width),
                        "?" if q.signed is None else ("yes" if q.signed else "no"),
                        "?" if q.per_channel is None else ("per-channel" if q.per_channel else "per-tensor"),
                        q.scale_text() or (q.note or "?"),
                        q.zero_point_text() or "?",
                    )
                )
                first = False
            if first:
                rows.append((lay.name, lay.layer_type, "(no quantizer enabled)", "", "", "", "", "", ""))
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
        if self.exporters_checked:
            lines.append("")
            lines.append("exporters: " + ", ".join(self.exporters_checked))
            for lay in self.layers:
                accepted = ", ".join(lay.exporters or ()) or "none"
                lines.append(f"  {lay.name}: {accepted}")
            for exporter, problems in self.model_problems.items():
                for text in problems:
                    lines.append(f"  {exporter} (model): {text}")
        else:
            lines.append("")
            lines.append("exporters: not checked (pass example inputs: report(model, args))")
        return "\n".join(lines)


def _tensor_text(t: Tensor | None) -> str:
    if t is None:
        return ""
    flat = t.detach().flatten().to(torch.float64)
    if flat.numel() == 1:
        return f"{float(flat[0]):.6g}"
    return f"{float(flat.min()):.4g}..{float(flat.max()):.4g} ({flat.numel()} values)"


def _quant_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    from brevitas.nn.quant_layer import QuantLayerMixin

    return [(name, m) for name, m in model.named_modules() if isinstance(m, QuantLayerMixin)]


def _proxy_children(layer: nn.Module) -> list[tuple[str, nn.Module]]:
    from brevitas.proxy import QuantProxy

    return [(attr, child) for attr, child in layer.named_children() if isinstance(child, QuantProxy)]


def _from_quant_tensor(attr: str, proxy: nn.Module, qt: Any, note: str = "") -> QuantizerReport:
    from brevitas.export.description import describe

    quantizer = getattr(getattr(proxy, "quant", None), "__qualname__", "")
    desc = None
    try:
        desc = describe(proxy, qt)
    except BrevitasError as err:
        note = note or str(err)
    if desc is None:
        return QuantizerReport(attr, _role(proxy), quantizer, True, note=note or "no valid quantized output")
    return QuantizerReport(
        attr,
        desc.role,
        quantizer,
        True,
        bit_width=desc.bit_width,
        signed=desc.signed,
        narrow_range=desc.narrow_range,
        per_channel=not desc.is_per_tensor,
        scale=desc.scale,
        zero_point=desc.zero_point,
        note=note,
    )


def _role(proxy: nn.Module) -> str:
    return str(getattr(proxy, "role", "") or "act")


def _static_quantizer(layer: nn.Module, attr: str, proxy: nn.Module) -> QuantizerReport:
    """Describe a quantizer without running the model (eval-mode probes)."""
    from brevitas.proxy import ActQuantProxy, BiasQuantProxy, WeightQuantProxy

    quantizer = getattr(getattr(proxy, "quant", None), "__qualname__", "")
    if not getattr(proxy, "is_quant_enabled", False):
        return QuantizerReport(attr, _role(proxy), quantizer, False)
    try:
        if isinstance(proxy, WeightQuantProxy) and isinstance(getattr(layer, "weight", None), Tensor):
            return _from_quant_tensor(attr, proxy, proxy(layer.weight))  # type: ignore[arg-type]
        if isinstance(proxy, BiasQuantProxy):
            if getattr(layer, "bias", None) is None:
                return QuantizerReport(attr, "bias", quantizer, True, note="no bias")
            return _from_quant_tensor(attr, proxy, layer.quant_bias())  # type: ignore[operator]
        if isinstance(proxy, ActQuantProxy):
            return _from_quant_tensor(attr, proxy, proxy.probe())
    except BrevitasError as err:
        note = str(err).splitlines()[0]
        if isinstance(proxy, BiasQuantProxy):
            note = "scaled by the input scale x the weight scale (pass example inputs to see it)"
        return QuantizerReport(attr, _role(proxy), quantizer, True, note=note)
    return QuantizerReport(attr, _role(proxy), quantizer, True, note="described when run (pass example inputs)")


def _captured_quantizer(attr: str, proxy: nn.Module, desc: Any) -> QuantizerReport:
    quantizer = getattr(getattr(proxy, "quant", None), "__qualname__", "")
    if desc is None:
        return QuantizerReport(attr, _role(proxy), quantizer, True, note="did not run on the example inputs")
    return QuantizerReport(
        attr,
        desc.role,
        quantizer,
        True,
        bit_width=desc.bit_width,
        signed=desc.signed,
        narrow_range=desc.narrow_range,
        per_channel=not desc.is_per_tensor,
        scale=desc.scale,
        zero_point=desc.zero_point,
    )


def _exporter_problems(model: nn.Module, args: Any, names: Sequence[str]) -> dict[str, list[Any]]:
    from brevitas.export import check

    out: dict[str, list[Any]] = {}
    for name in names:
        try:
            out[name] = list(check(model, args, exporter=name))
        except BrevitasError as err:
            from brevitas.export.base import Problem

            out[name] = [Problem("", f"check failed: {err}")]
    return out


def _names_layer(problem_layer: str, layer: str) -> bool:
    return problem_layer == layer or problem_layer.startswith(layer + ".")


def report(
    model: nn.Module,
    args: Any = None,
    exporters: Iterable[str] | None = None,
) -> ModelReport:
    """Describe every quant layer of ``model``: quantizers, bit-widths, scales, accepting exporters.

    Args:
        model: a model with ``brevitas.nn`` layers (e.g. from
            :func:`brevitas.graph.quantize`). Its modes are restored afterwards.
        args: example input (or tuple of inputs). With it, the model runs once
            in eval mode and each quantizer is described by what it did, and
            each exporter is asked which layers it accepts. Without it, the
            quantizers are probed in eval mode (a bias scaled by the input
            scale stays unknown) and exporters are not checked.
        exporters: the exporters to ask (default: every installed one,
            :func:`brevitas.export.exporters`); only used with ``args``.

    Returns:
        A :class:`ModelReport`; ``str()`` of it is a table.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantConv2d
        >>> conv = QuantConv2d(2, 4, 3, weight_bit_width=6)
        >>> report(conv, torch.randn(1, 2, 5, 5)).layer("").bit_widths()
        {'weight_quant': 6}
    """
    layers = _quant_layers(model)
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        descs: dict[str, Any] | None = None
        if args is not None:
            from brevitas.export.description import capture

            descs = capture(model, args)
        reports: list[tuple[str, str, list[QuantizerReport]]] = []
        with torch.no_grad():
            for name, layer in layers:
                entries = []
                for attr, proxy in _proxy_children(layer):
                    if descs is not None and getattr(proxy, "is_quant_enabled", False):
                        key = f"{name}.{attr}" if name else attr
                        entries.append(_captured_quantizer(attr, proxy, _lookup(descs, key, model, proxy)))
                    else:
                        entries.append(_static_quantizer(layer, attr, proxy))
                reports.append((name, type(layer).__name__, entries))
        checked: tuple[str, ...] = ()
        problems: dict[str, list[Any]] = {}
        if args is not None:
            from brevitas.export import exporters as installed

            checked = tuple(exporters) if exporters is not None else tuple(sorted(installed()))
            problems = _exporter_problems(model, args, checked)
    finally:
        for m, mode in modes:
            m.training = mode

    out_layers = []
    layer_names = [name for name, _ in layers]
    model_problems: dict[str, list[str]] = {}
    for exporter, probs in problems.items():
        unowned = [p for p in probs if not any(_names_layer(str(p.layer), n) for n in layer_names if n)]
        if unowned:
            model_problems[exporter] = [str(p) for p in unowned]
    for name, layer_type, entries in reports:
        accepted: tuple[str, ...] | None = None
        layer_problems: dict[str, list[str]] = {}
        if args is not None:
            ok = []
            for exporter in checked:
                mine = [str(p) for p in problems.get(exporter, []) if name and _names_layer(str(p.layer), name)]
                if mine:
                    layer_problems[exporter] = mine
                elif exporter not in model_problems:
                    ok.append(exporter)
            accepted = tuple(ok)
        out_layers.append(LayerReport(name, layer_type, tuple(entries), accepted, layer_problems))
    return ModelReport(tuple(out_layers), checked, model_problems)


def _lookup(descs: dict[str, Any], key: str, model: nn.Module, proxy: nn.Module) -> Any:
    if key in descs:
        return descs[key]
    for name, module in model.named_modules():  # a shared proxy is captured under its first name
        if module is proxy and name in descs:
            return descs[name]
    return None
