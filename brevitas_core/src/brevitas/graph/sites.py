"""Where :func:`brevitas.graph.quantize` acts: the sites of a float graph and how values flow between them.

A *site* (:class:`SiteNode`) is a node of the traced float graph that
quantization replaces: a convolution, transposed convolution or linear
layer, an activation (module, function or method), an addition of two
tensors, a concatenation, or a model input. This module finds them
(:func:`find_sites`), names the quant modules that replace them
(:func:`assign_names`), and decides how quantized values flow
(:func:`decide_quant_tensor_flow`):

- an activation-like site (activation, addition, concatenation, input)
  returns a QuantTensor when every consumer accepts one: a quant layer, or
  an operation that keeps a QuantTensor's metadata (max pooling, dropout,
  identity; flatten / view / reshape for per-tensor scales) whose own
  consumers accept one, or one that only reads a property (``x.size()``);
- a weight layer whose input arrives as such a QuantTensor needs no input
  quantizer (its bias is scaled with the input scale); any other gets the
  configuration's fallback input quantizer.

Example:
    >>> import torch
    >>> from brevitas.graph.tracer import trace
    >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU()))
    >>> [(s.kind, s.node.op, str(s.node.target)) for s in find_sites(gm, GraphFacts(gm))]
    [('input', 'placeholder', 'input'), ('linear', 'call_module', '0'), ('relu', 'call_module', '1')]
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from brevitas.errors import ConfigError
from brevitas.graph.config import ResolvedSite
from brevitas.graph.tracer import enclosing_module, is_quant_module

__all__ = [
    "WEIGHT_KINDS",
    "GraphFacts",
    "SiteNode",
    "assign_names",
    "decide_quant_tensor_flow",
    "find_sites",
    "is_node",
    "module_of",
    "site_nonneg",
]

# --------------------------------------------------------------------------- what is a site

WEIGHT_KINDS = {
    nn.Conv1d: "conv",
    nn.Conv2d: "conv",
    nn.Conv3d: "conv",
    nn.ConvTranspose1d: "conv_transpose",
    nn.ConvTranspose2d: "conv_transpose",
    nn.ConvTranspose3d: "conv_transpose",
    nn.Linear: "linear",
}

_ACT_MODULE_KINDS = {
    nn.ReLU: "relu",
    nn.Sigmoid: "sigmoid",
    nn.Tanh: "tanh",
    nn.Hardtanh: "hardtanh",
    nn.ReLU6: "hardtanh",
}

_ACT_FUNCTIONS: dict[Any, tuple[str, type]] = {
    F.relu: ("relu", nn.ReLU),
    torch.relu: ("relu", nn.ReLU),
    torch.relu_: ("relu", nn.ReLU),
    F.relu_: ("relu", nn.ReLU),
    torch.sigmoid: ("sigmoid", nn.Sigmoid),
    F.sigmoid: ("sigmoid", nn.Sigmoid),
    torch.tanh: ("tanh", nn.Tanh),
    F.tanh: ("tanh", nn.Tanh),
    F.hardtanh: ("hardtanh", nn.Hardtanh),
    F.relu6: ("hardtanh", nn.ReLU6),
}

_ACT_METHODS: dict[str, tuple[str, type]] = {
    "relu": ("relu", nn.ReLU),
    "relu_": ("relu", nn.ReLU),
    "sigmoid": ("sigmoid", nn.Sigmoid),
    "sigmoid_": ("sigmoid", nn.Sigmoid),
    "tanh": ("tanh", nn.Tanh),
    "tanh_": ("tanh", nn.Tanh),
}

_INPLACE_FUNCTIONS = (torch.relu_, F.relu_)

_ADD_FUNCTIONS = (operator.add, operator.iadd, torch.add)
_ADD_METHODS = ("add", "add_")
_CAT_FUNCTIONS = (torch.cat, torch.concat, torch.concatenate)

#: modules / functions / methods that keep a QuantTensor's metadata (per-tensor metadata at least)
_KEEP_MODULES: tuple[type, ...] = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.Identity,
)
_KEEP_FUNCTIONS: tuple[Any, ...] = (
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.adaptive_max_pool1d,
    F.adaptive_max_pool2d,
    F.adaptive_max_pool3d,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
)
#: these keep per-tensor metadata only (a per-channel scale may not survive a reshape)
_RESHAPE_MODULES: tuple[type, ...] = (nn.Flatten,)
_RESHAPE_FUNCTIONS: tuple[Any, ...] = (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze)
_KEEP_METHODS = ("contiguous",)
_RESHAPE_METHODS = ("view", "reshape", "flatten", "squeeze", "unsqueeze")
#: users that read a tensor's properties only (a QuantTensor answers them the same)
_PROPERTY_METHODS = ("size", "dim", "numel")
_NON_TENSOR_METHODS = ("size", "dim", "numel", "item", "tolist", "__len__", "nelement", "element_size", "stride")

#: non-negative outputs: modules and functions
_NONNEG_MODULES: tuple[type, ...] = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Softmax)
_NONNEG_FUNCTIONS: tuple[Any, ...] = (F.relu, torch.relu, torch.relu_, F.relu_, F.relu6, torch.sigmoid, F.sigmoid)
_NONNEG_PRESERVING_MODULES: tuple[type, ...] = (
    *_KEEP_MODULES,
    *_RESHAPE_MODULES,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)
_NONNEG_PRESERVING_FUNCTIONS: tuple[Any, ...] = (
    *_KEEP_FUNCTIONS,
    *_RESHAPE_FUNCTIONS,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool1d,
    F.adaptive_avg_pool2d,
    F.adaptive_avg_pool3d,
)


@dataclass
class SiteNode:
    """A node of the float graph that quantization replaces.

    Attributes:
        node: the graph node (a placeholder for a model input).
        kind: the site kind (:data:`brevitas.graph.config.KINDS`).
        float_type: the ``torch.nn`` class it corresponds to (``None`` for
            additions, concatenations, inputs).
        module: the float module of a ``call_module`` site.
        name: qualified name of the quant module that replaces it.
        resolved: the settings :meth:`QuantConfig.resolve` gave it.
        returns_quant_tensor: whether its quant module returns QuantTensors.
        inplace: the float operation modifies its input in place (``x.relu_()``,
            ``F.relu(x, inplace=True)``, ``nn.ReLU(inplace=True)``): later uses of
            the input must see the result.
    """

    node: torch.fx.Node
    kind: str
    float_type: type | None
    module: nn.Module | None = None
    name: str = ""
    resolved: ResolvedSite | None = None
    returns_quant_tensor: bool = False
    inplace: bool = False


def module_of(gm: torch.fx.GraphModule, node: torch.fx.Node) -> nn.Module:
    """The module a ``call_module`` node calls."""
    return gm.get_submodule(str(node.target))


def is_node(x: Any) -> bool:
    """Whether ``x`` (a node argument) is a graph node rather than a constant."""
    return isinstance(x, torch.fx.Node)


class GraphFacts:
    """Facts about the float graph used while rewriting it: tensor-valued nodes, non-negative nodes."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        self.gm = gm
        self.tensor: dict[torch.fx.Node, bool] = {}
        self.nonneg: dict[torch.fx.Node, bool] = {}
        for node in gm.graph.nodes:
            self.tensor[node] = self._is_tensor(node)
            self.nonneg[node] = self._is_nonneg(node)

    def _is_tensor(self, node: torch.fx.Node) -> bool:
        if node.op in ("placeholder", "get_attr", "call_module"):
            return True
        if node.op == "call_method":
            if node.target in _NON_TENSOR_METHODS:
                return False
            return bool(node.args) and is_node(node.args[0]) and self.tensor.get(node.args[0], False)
        if node.op == "call_function":
            if node.target in (getattr, len):
                return False
            if node.target is operator.getitem:
                return is_node(node.args[0]) and self.tensor.get(node.args[0], False)
            if getattr(node.target, "__module__", None) == "_operator":
                return any(self.tensor.get(a, False) for a in node.all_input_nodes)
            return True
        return False

    def _is_nonneg(self, node: torch.fx.Node) -> bool:
        first = node.args[0] if node.args else None
        first_nonneg = is_node(first) and self.nonneg.get(first, False)
        if node.op == "call_module":
            module = module_of(self.gm, node)
            if type(module) in _NONNEG_MODULES:
                return True
            if isinstance(module, _NONNEG_PRESERVING_MODULES):
                return first_nonneg
            return False
        if node.op == "call_function":
            if node.target in _NONNEG_FUNCTIONS:
                return True
            if node.target in _NONNEG_PRESERVING_FUNCTIONS:
                return first_nonneg
            if node.target in _CAT_FUNCTIONS and isinstance(first, (list, tuple)):
                return all(is_node(a) and self.nonneg.get(a, False) for a in first)
            if node.target in _ADD_FUNCTIONS:
                return len(node.args) == 2 and all(is_node(a) and self.nonneg.get(a, False) for a in node.args)
            return False
        if node.op == "call_method":
            if node.target in ("relu", "relu_", "sigmoid", "sigmoid_"):
                return True
            if node.target in _KEEP_METHODS + _RESHAPE_METHODS:
                return first_nonneg
        return False


# --------------------------------------------------------------------------- finding sites


def site_of(gm: torch.fx.GraphModule, facts: GraphFacts, node: torch.fx.Node) -> SiteNode | None:
    if node.op == "call_module":
        module = module_of(gm, node)
        if is_quant_module(module):
            return None
        kind = WEIGHT_KINDS.get(type(module)) or _ACT_MODULE_KINDS.get(type(module))
        if kind is None:
            return None
        return SiteNode(node, kind, type(module), module, inplace=bool(getattr(module, "inplace", False)))
    if node.op == "call_function":
        if node.target in _ACT_FUNCTIONS:
            kind, cls = _ACT_FUNCTIONS[node.target]
            if not (node.args and is_node(node.args[0])):
                return None
            inplace = node.target in _INPLACE_FUNCTIONS or bool(node.kwargs.get("inplace", False))
            if node.target in (F.relu, F.relu6) and len(node.args) > 1:
                inplace = inplace or bool(node.args[1])
            return SiteNode(node, kind, cls, inplace=inplace)
        if node.target in _ADD_FUNCTIONS and _is_tensor_pair(facts, node):
            return SiteNode(node, "add", None)
        if node.target in _CAT_FUNCTIONS:
            tensors = node.args[0] if node.args else node.kwargs.get("tensors")
            if (
                isinstance(tensors, (list, tuple))
                and tensors
                and all(is_node(t) and facts.tensor.get(t, False) for t in tensors)
            ):
                return SiteNode(node, "cat", None)
        return None
    if node.op == "call_method":
        if node.target in _ACT_METHODS and len(node.args) == 1 and not node.kwargs:
            kind, cls = _ACT_METHODS[node.target]
            return SiteNode(node, kind, cls, inplace=str(node.target).endswith("_"))
        if node.target in _ADD_METHODS and _is_tensor_pair(facts, node):
            return SiteNode(node, "add", None, inplace=str(node.target).endswith("_"))
    return None


def _is_tensor_pair(facts: GraphFacts, node: torch.fx.Node) -> bool:
    """``a + b`` of two tensors, with no ``alpha`` / ``out``."""
    if len(node.args) != 2:
        return False
    if node.kwargs and set(node.kwargs) - {"alpha"}:
        return False
    if node.kwargs.get("alpha", 1) != 1:
        return False
    a, b = node.args
    return is_node(a) and is_node(b) and facts.tensor.get(a, False) and facts.tensor.get(b, False)


class _Namer:
    """Unique attribute names for new modules inside their parent module."""

    def __init__(self, root: nn.Module) -> None:
        self.root = root
        self.taken: set[str] = set()

    def name(self, parent: str, base: str) -> str:
        try:
            module: nn.Module | None = self.root.get_submodule(parent) if parent else self.root
        except AttributeError:  # a module with no submodule of its own: not in the graph module yet
            module = None
        i = 0
        candidate = base
        while True:
            full = f"{parent}.{candidate}" if parent else candidate
            if full not in self.taken and (module is None or not hasattr(module, candidate)):
                self.taken.add(full)
                return full
            i += 1
            candidate = f"{base}_{i}"

    def reserve(self, full: str) -> None:
        self.taken.add(full)


def assign_names(gm: torch.fx.GraphModule, sites: list[SiteNode]) -> None:
    namer = _Namer(gm)
    seen_modules: dict[int, str] = {}
    for info in sites:  # existing module names first, so new names never shadow them
        if info.module is not None:
            namer.reserve(str(info.node.target))
    for info in sites:
        node = info.node
        if info.module is not None:
            target = str(node.target)
            first = seen_modules.get(id(info.module))
            if first is None:
                seen_modules[id(info.module)] = target
                info.name = target
            elif info.kind in ("conv", "conv_transpose", "linear"):
                info.name = first  # shared weights stay shared
            else:
                parent, _, base = target.rpartition(".")
                info.name = namer.name(parent, base)
        elif info.kind == "input":
            info.name = namer.name("", "input_quant")
        else:
            info.name = namer.name(enclosing_module(node), info.kind)


# --------------------------------------------------------------------------- QuantTensor flow


def _keeps_quant_tensor(gm: torch.fx.GraphModule, node: torch.fx.Node, per_tensor: bool) -> bool:
    """Whether ``node`` passes a QuantTensor arriving as its first argument on, metadata intact."""
    first = node.args[0] if node.args else None
    if not is_node(first):
        return False
    if node.op == "call_module":
        module = module_of(gm, node)
        if isinstance(module, _KEEP_MODULES):
            return True
        return per_tensor and isinstance(module, _RESHAPE_MODULES)
    if node.op == "call_function":
        if node.target in _KEEP_FUNCTIONS:
            return True
        return per_tensor and node.target in _RESHAPE_FUNCTIONS
    if node.op == "call_method":
        if node.target in _KEEP_METHODS:
            return True
        return per_tensor and node.target in _RESHAPE_METHODS
    return False


def _only_reads_properties(node: torch.fx.Node) -> bool:
    if node.op == "call_method":
        return node.target in _PROPERTY_METHODS
    return node.op == "call_function" and node.target is getattr


def _is_per_tensor(quant: Any, overrides: dict[str, Any]) -> bool:
    if "scaling_per_output_channel" in overrides:
        return not bool(overrides["scaling_per_output_channel"])
    from brevitas.inject import defines

    if quant is not None and defines(quant, "scaling_per_output_channel"):
        try:
            return not bool(quant.scaling_per_output_channel)
        except Exception:
            return False
    return True


def _output_role(kind: str) -> str:
    return {"add": "output", "cat": "output", "input": "act"}.get(kind, "act")


def site_nonneg(info: SiteNode, facts: GraphFacts) -> bool:
    node = info.node
    if info.kind == "cat":
        tensors = node.args[0] if node.args else node.kwargs.get("tensors", ())
        return all(facts.nonneg.get(t, False) for t in tensors)
    if info.kind == "add":
        return all(facts.nonneg.get(a, False) for a in node.args[:2])
    return False


def decide_quant_tensor_flow(gm: torch.fx.GraphModule, by_node: dict[torch.fx.Node, SiteNode]) -> None:
    """Set which activation-like sites return QuantTensors and which weight layers quantize their own input.

    Args:
        gm: the traced float graph module.
        by_node: the sites that are quantized (with their resolved settings).

    Raises:
        ConfigError: a weight layer whose bias quantizer needs the input
            scale ends up with no quantized input.
    """

    def accepts_quant_tensor(user: torch.fx.Node) -> bool:
        if user in by_node:
            return True
        return user.op == "call_module" and is_quant_module(module_of(gm, user))

    def all_consumers_accept(node: torch.fx.Node, per_tensor: bool, depth: int = 0) -> bool:
        if depth > 64:
            return False
        for user in node.users:
            if accepts_quant_tensor(user) or _only_reads_properties(user):
                continue
            if user.args and user.args[0] is node and _keeps_quant_tensor(gm, user, per_tensor):
                if all_consumers_accept(user, per_tensor, depth + 1):
                    continue
            return False
        return True

    producers: dict[torch.fx.Node, SiteNode] = {}
    for node, info in by_node.items():
        if info.kind in ("conv", "conv_transpose", "linear"):
            continue
        resolved = info.resolved
        assert resolved is not None
        role = _output_role(info.kind)
        quant = resolved.quants.get(role)
        if quant is None:  # (an addition without output quantizer is on a grid only once scales are learned)
            continue
        per_tensor = _is_per_tensor(quant, resolved.overrides.get(role, {}))
        info.returns_quant_tensor = all_consumers_accept(node, per_tensor)
        if info.returns_quant_tensor:
            producers[node] = info

    for node, info in by_node.items():
        if info.kind not in ("conv", "conv_transpose", "linear"):
            continue
        resolved = info.resolved
        assert resolved is not None
        source = node.args[0] if node.args else None
        while is_node(source) and source not in producers and source.op != "placeholder":
            if not _keeps_quant_tensor(gm, source, per_tensor=True):
                break
            source = source.args[0]
        quantized_upstream = is_node(source) and source in producers
        if quantized_upstream and is_node(source):
            upstream = producers[source]
            role = _output_role(upstream.kind)
            upstream_resolved = upstream.resolved
            assert upstream_resolved is not None
            if not _is_per_tensor(upstream_resolved.quants.get(role), upstream_resolved.overrides.get(role, {})):
                quantized_upstream = _passes_through_keep_only(gm, node.args[0], source)
        if "input" not in resolved.explicit and not quantized_upstream:
            resolved.quants["input"] = resolved.fallback.get("input")
        bias_quant = resolved.quants.get("bias")
        needs_scale = bias_quant is not None and bool(getattr(bias_quant, "requires_input_scale", False))
        has_bias = info.module is not None and info.module.bias is not None
        if needs_scale and has_bias and resolved.quants.get("input") is None and not quantized_upstream:
            raise ConfigError(
                f"quantize: {info.name} ({info.kind}) has bias quantizer {bias_quant.__name__}, which needs the "
                f"input scale, but its input is not quantized (a rule set input_quant=None and nothing upstream "
                f"quantizes it). Give it an input quantizer (input_quant=Int8ActPerTensorFloat), or a bias "
                f"quantizer with its own scale (bias_quant=Int8BiasPerTensorFloatInternalScaling), or bias_quant=None"
            )


def _passes_through_keep_only(gm: torch.fx.GraphModule, start: Any, stop: torch.fx.Node) -> bool:
    node = start
    while is_node(node) and node is not stop:
        if not _keeps_quant_tensor(gm, node, per_tensor=False):
            return False
        node = node.args[0]
    return node is stop


def find_sites(gm: torch.fx.GraphModule, facts: GraphFacts) -> list[SiteNode]:
    """Every site of ``gm``'s graph, in graph order (model inputs that are used included)."""
    sites: list[SiteNode] = []
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if node.users:
                sites.append(SiteNode(node, "input", None))
            continue
        info = site_of(gm, facts, node)
        if info is not None:
            sites.append(info)
    return sites
