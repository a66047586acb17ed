"""Trace a quantized model into a graph of layers, with every quantizer call described.

The exporters' common first step. :func:`trace`

1. symbolically traces the model with :class:`QuantTracer` (``torch.fx``):
   quant layers (anything holding a proxy), proxies and ``torch.nn`` layers
   stay whole (leaves); the user's own modules and functions are traced
   through;
2. runs the graph once on the example inputs, in eval mode without
   gradients, recording each node's concrete output (shapes, QuantTensor
   metadata) and, with forward hooks, every proxy call made inside each
   node, described by :func:`brevitas.export.description.describe`.

An exporter then walks :attr:`TracedModel.graph` node by node and translates
each one. Whatever cannot be traced (data-dependent control flow ...) is a
:class:`~brevitas.export.base.Problem` naming the module being traced.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantIdentity, QuantLinear
    >>> model = torch.nn.Sequential(QuantIdentity(), QuantLinear(4, 2, bias=False))
    >>> traced = trace(model, torch.randn(1, 4))
    >>> [(n.op, str(n.target)) for n in traced.graph.nodes]
    [('placeholder', 'input'), ('call_module', '0'), ('call_module', '1'), ('output', 'output')]
    >>> [c.description.role for c in traced.calls_of(traced.node("1"))]
    ['weight']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch import Tensor, nn

from brevitas.export.base import Problem
from brevitas.export.description import ProxyCall, ProxyRecorder, QuantDescription

__all__ = [
    "QuantTracer",
    "TracedModel",
    "is_quant_layer",
    "is_tensor_like",
    "quant_layer_kinds",
    "tensor_value",
    "trace",
]


def quant_layer_kinds() -> dict[type, str]:
    """How exporters group Brevitas modules: class -> kind, looked up along a module's MRO.

    Kinds: ``weight_layer`` (conv / linear with weight, bias, input and output
    quantizers), ``act_layer``, ``eltwise_add``, ``cat``, ``passthrough_layer``
    (pooling, upsampling, dropout, accumulators: a float op between quantizers)
    and ``proxy`` (a quantizer called directly). Each exporter maps a kind to
    its own translation, so a layer added here reaches every exporter.

    Example:
        >>> from brevitas.nn import QuantNonLinearActLayer
        >>> quant_layer_kinds()[QuantNonLinearActLayer]
        'act_layer'
    """
    from brevitas.nn import (
        ClampQuantAccumulator,
        QuantAdaptiveAvgPool2d,
        QuantAvgPool2d,
        QuantCat,
        QuantDropout,
        QuantEltwiseAdd,
        QuantMaxPool1d,
        QuantMaxPool2d,
        QuantNonLinearActLayer,
        QuantUpsample,
        QuantWeightBiasInputOutputLayer,
        TruncQuantAccumulator,
    )
    from brevitas.proxy import QuantProxy

    passthrough = (
        QuantMaxPool1d,
        QuantMaxPool2d,
        QuantAvgPool2d,
        QuantAdaptiveAvgPool2d,
        QuantUpsample,
        QuantDropout,
        TruncQuantAccumulator,
        ClampQuantAccumulator,
    )
    return {
        QuantWeightBiasInputOutputLayer: "weight_layer",
        QuantNonLinearActLayer: "act_layer",
        QuantEltwiseAdd: "eltwise_add",
        QuantCat: "cat",
        **{cls: "passthrough_layer" for cls in passthrough},
        QuantProxy: "proxy",
    }


def is_quant_layer(module: nn.Module) -> bool:
    """A module that owns quantizers: a proxy, a ``brevitas.nn`` layer, or any module with a proxy child.

    Example:
        >>> from brevitas.nn import QuantReLU
        >>> is_quant_layer(QuantReLU()), is_quant_layer(torch.nn.ReLU())
        (True, False)
    """
    from brevitas.nn.quant_layer import QuantLayerMixin
    from brevitas.proxy import QuantProxy

    if isinstance(module, (QuantProxy, QuantLayerMixin)):
        return True
    return any(isinstance(child, QuantProxy) for child in module.children())


class QuantTracer(torch.fx.Tracer):
    """``torch.fx`` tracer keeping quant layers, proxies and ``torch.nn`` layers whole."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if is_quant_layer(m):
            return True
        return super().is_leaf_module(m, module_qualified_name)


@dataclass
class TracedModel:
    """A traced model and what one eval-mode run computed.

    Attributes:
        model: the traced model.
        graph_module: the ``torch.fx`` graph module (``None`` when tracing failed).
        values: node -> its concrete output on the example inputs.
        calls: node -> the proxy calls made while it ran, in order.
        problems: what prevented tracing or running (empty when it worked).
    """

    model: nn.Module
    graph_module: torch.fx.GraphModule | None
    values: dict[torch.fx.Node, Any] = field(default_factory=dict)
    calls: dict[torch.fx.Node, list[ProxyCall]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: set when the model is itself one layer, traced under this attribute name (stripped from names)
    prefix: str = ""

    def _strip(self, name: str) -> str:
        if not self.prefix:
            return name
        if name == self.prefix:
            return ""
        return name[len(self.prefix) + 1 :] if name.startswith(self.prefix + ".") else name

    @property
    def graph(self) -> torch.fx.Graph:
        """The traced graph."""
        assert self.graph_module is not None, "tracing failed; see .problems"
        return self.graph_module.graph

    def node(self, name_or_target: str) -> torch.fx.Node:
        """The node with this name, or the ``call_module`` node of this qualified module name."""
        for n in self.graph.nodes:
            if n.name == name_or_target or (n.op == "call_module" and n.target == name_or_target):
                return n
        raise KeyError(name_or_target)

    def module(self, node: torch.fx.Node) -> nn.Module:
        """The module a ``call_module`` node calls."""
        assert self.graph_module is not None
        return self.graph_module.get_submodule(str(node.target))

    def qualname(self, node: torch.fx.Node) -> str:
        """The qualified name of the module responsible for ``node`` (``""`` at the top level)."""
        if node.op == "call_module":
            return self._strip(str(node.target))
        stack = node.meta.get("nn_module_stack") or {}
        if stack:
            path = list(stack.values())[-1]
            return self._strip(str(path[0] if isinstance(path, tuple) else path))
        return ""

    def calls_of(self, node: torch.fx.Node, proxy: nn.Module | None = None) -> list[ProxyCall]:
        """Proxy calls made by ``node`` (only those of ``proxy`` when given)."""
        calls = self.calls.get(node, [])
        return [c for c in calls if proxy is None or c.proxy is proxy]

    def description(self, node: torch.fx.Node, proxy: nn.Module, index: int = 0) -> QuantDescription | None:
        """The description of the ``index``-th call of ``proxy`` within ``node`` (``None`` if it did not quantize)."""
        calls = self.calls_of(node, proxy)
        return calls[index].description if index < len(calls) else None

    def proxy_name(self, node: torch.fx.Node, proxy: nn.Module) -> str:
        """``"<layer>.<attribute>"``: how messages name a proxy used by ``node``'s module."""
        if node.op == "call_module":
            for attr, child in self.module(node).named_children():
                if child is proxy:
                    return self._strip(f"{node.target}.{attr}")
        for name, module in self.model.named_modules():
            if module is proxy:
                return name
        return type(proxy).__name__

    def depends_on_input(self, node: torch.fx.Node) -> bool:
        """Whether ``node``'s value depends on a graph input (otherwise it is a constant)."""
        return node in self._input_dependent()

    def _input_dependent(self) -> set[torch.fx.Node]:
        cached = getattr(self, "_dependent_cache", None)
        if cached is not None:
            return cached
        dependent: set[torch.fx.Node] = set()
        for n in self.graph.nodes:
            if n.op == "placeholder" or any(a in dependent for a in n.all_input_nodes):
                dependent.add(n)
        self._dependent_cache = dependent
        return dependent


class _RecordingInterpreter(torch.fx.Interpreter):
    def __init__(self, gm: torch.fx.GraphModule, traced: TracedModel) -> None:
        super().__init__(gm, garbage_collect_values=False)
        self.traced = traced
        self.current: list[ProxyCall] = []

    def sink(self, call: ProxyCall) -> None:
        self.current.append(call)

    def run_node(self, n: torch.fx.Node) -> Any:
        self.current = self.traced.calls.setdefault(n, [])
        out = super().run_node(n)
        self.traced.values[n] = out
        return out


def _trace_problem(tracer: QuantTracer, exc: BaseException) -> Problem:
    stack = list(getattr(tracer, "module_stack", {}).keys())
    where = stack[-1] if stack else ""
    where = where if isinstance(where, str) else str(where)
    return Problem(
        where,
        f"cannot be traced ({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''})",
        "exporters trace the model with torch.fx: avoid Python control flow on tensor values in forward(), "
        "or build the layer from brevitas.nn / torch.nn layers",
    )


#: attribute under which a model that is itself one layer is wrapped for tracing
_ROOT = "model"


class _LayerRoot(nn.Module):
    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        setattr(self, _ROOT, layer)


def _single_layer_graph(model: nn.Module, n_inputs: int) -> torch.fx.GraphModule:
    """The graph of a model that is one layer: inputs -> the layer -> output."""
    import inspect

    try:
        params = [p.name for p in inspect.signature(model.forward).parameters.values()]
    except (TypeError, ValueError):
        params = []
    names = [params[i] if i < len(params) else f"input_{i}" for i in range(n_inputs)]
    graph = torch.fx.Graph()
    placeholders = [graph.placeholder(name) for name in names]
    out = graph.call_module(_ROOT, tuple(placeholders))
    graph.output(out)
    return torch.fx.GraphModule(_LayerRoot(model), graph, type(model).__name__)


def trace(model: nn.Module, args: Any) -> TracedModel:
    """Trace ``model`` and run it once on ``args`` (a tensor or a tuple of tensors).

    The model runs in eval mode without gradients; its modes are restored.
    Tracing or running failures do not raise: they are returned as
    :attr:`TracedModel.problems`.
    """
    from brevitas.export import eval_mode

    inputs = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    tracer = QuantTracer()
    if tracer.is_leaf_module(model, ""):
        gm = _single_layer_graph(model, len(inputs))
    else:
        try:
            graph = tracer.trace(model)
        except Exception as exc:
            return TracedModel(model, None, problems=[_trace_problem(tracer, exc)])
        gm = torch.fx.GraphModule(tracer.root, graph, type(model).__name__)
    graph = gm.graph
    traced = TracedModel(model, gm, prefix=_ROOT if gm is not None and hasattr(gm, _ROOT) else "")
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    required = [n for n in placeholders if not n.args]
    if len(inputs) < len(required) or len(inputs) > len(placeholders):
        names = ", ".join(str(n.target) for n in placeholders)
        traced.problems.append(
            Problem(
                "",
                f"forward() takes {len(placeholders)} input(s) ({names}) but {len(inputs)} example input(s) were given",
                "pass one example tensor per input, as a tuple",
            )
        )
        return traced
    interpreter = _RecordingInterpreter(gm, traced)
    with eval_mode(model), torch.no_grad(), ProxyRecorder(model, interpreter.sink):
        try:
            interpreter.run(*inputs)
        except Exception as exc:
            failing = next((n for n in graph.nodes if n not in traced.values), None)
            where = traced.qualname(failing) if failing is not None else ""
            traced.problems.append(
                Problem(
                    where,
                    f"failed while running the traced model: {type(exc).__name__}: {exc}",
                    "check that the example inputs have the shapes the model expects",
                )
            )
    return traced


def is_tensor_like(value: Any) -> bool:
    """A tensor or a QuantTensor."""
    from brevitas.quant_tensor import QuantTensor

    return isinstance(value, (Tensor, QuantTensor))


def tensor_value(value: Any) -> Tensor:
    """The plain tensor of a tensor or QuantTensor."""
    from brevitas.quant_tensor import QuantTensor

    return value.value if isinstance(value, QuantTensor) else value
