"""The ``torch-quantized`` exporter: a PyTorch program with integer weights, saved with ``torch.export``.

The model is traced (:func:`brevitas.export.trace.trace`) and every quant
layer is replaced by a plain module of :mod:`brevitas_plugins.export.modules`
that stores its weights as integers with their scales and zero-points and
computes in quantize-clamp-dequantize form with the same operations as the
Brevitas quantizers. The result is exported with ``torch.export.export``
(batch dimension dynamic) to an ``ExportedProgram``, saved with
``torch.export.save`` and reloaded with ``torch.export.load``: no Brevitas is
needed to run it, and no deprecated quantized tensor type is involved.

The program reproduces the Brevitas model in eval mode exactly (same
operations, same order).

Example:
    >>> import torch
    >>> import brevitas.export as bx
    >>> from brevitas.nn import QuantIdentity, QuantLinear
    >>> model = torch.nn.Sequential(QuantIdentity(), QuantLinear(4, 2)).eval()
    >>> x = torch.randn(3, 4)
    >>> program = bx.export(model, x, exporter="torch-quantized")
    >>> torch.equal(program.module()(x), model(x))
    True
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.fx
from torch import Tensor, nn

from brevitas.export.base import ExportCheckError, Exporter, Problem
from brevitas.export.description import QuantDescription
from brevitas.export.trace import TracedModel, is_quant_layer, is_tensor_like, quant_layer_kinds, tensor_value, trace
from brevitas.plugins.registry import Registry
from brevitas_plugins.export.modules import (
    FakeQuant,
    IntegerConstant,
    QuantizedCat,
    QuantizedEltwiseAdd,
    QuantizedWeightLayer,
    Requantize,
)

__all__ = ["TorchQuantizedConverter", "TorchQuantizedExporter", "register"]

#: QuantTensor methods whose meaning differs from the torch.Tensor method of the same name
_QUANT_TENSOR_METHODS = frozenset({"int", "uint"})


class _Unsupported(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parts = path.split(".")
    parent = root
    for part in parts[:-1]:
        child = getattr(parent, part, None)
        if not isinstance(child, nn.Module):
            child = nn.Module()
            parent.add_module(part, child)
        parent = child
    parent.add_module(parts[-1], module)


def _float_twin(module: nn.Module) -> nn.Module | None:
    """A plain instance of the ``torch.nn`` class a quant layer inherits, with its hyper-parameters."""
    base = next((c for c in type(module).__mro__ if c.__module__.startswith("torch.nn.modules")), None)
    if base is None or base is nn.Module:
        return None
    twin = base.__new__(base)
    nn.Module.__init__(twin)
    for key, value in module.__dict__.items():
        if not key.startswith("_") and key != "training":
            twin.__dict__[key] = value
    twin.eval()
    return twin


class TorchQuantizedConverter:
    """Rewrite a traced Brevitas model into a plain ``torch.fx.GraphModule`` (see the module doc).

    ``MODULES`` maps quant layer classes (searched along the MRO) to the
    method building their replacement.
    """

    #: additions and overrides of this class (merged with the defaults along the MRO by :meth:`table`)
    MODULES: ClassVar[dict[type, str]] = {}

    @classmethod
    def table(cls) -> dict[type, str]:
        """The module table in use, built on first use (it imports ``brevitas.nn``)."""
        cached = cls.__dict__.get("_table")
        if cached is not None:
            return cached
        table: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            if klass is TorchQuantizedConverter:
                table.update(_default_modules())
            table.update(klass.__dict__.get("MODULES", {}))
        cls._table = table
        return table

    def __init__(self, traced: TracedModel) -> None:
        self.traced = traced
        self.problems: list[Problem] = []
        self._node: torch.fx.Node | None = None

    # ------------------------------------------------------------------ driving
    def convert(self) -> tuple[torch.fx.GraphModule | None, list[Problem]]:
        """The plain graph module (``None`` when there are problems) and the problems."""
        if self.traced.problems:
            return None, list(self.traced.problems)
        root = nn.Module()
        graph = torch.fx.Graph()
        env: dict[torch.fx.Node, Any] = {}
        n_consts = 0
        for node in self.traced.graph.nodes:
            self._node = node
            try:
                if node.op == "placeholder":
                    env[node] = graph.placeholder(str(node.target), default_value=node.args[0] if node.args else
                                                  torch.fx.node.inspect.Signature.empty)  # fmt: skip
                elif node.op == "output":
                    graph.output(torch.fx.node.map_arg(node.args[0], env.__getitem__))
                elif not self.traced.depends_on_input(node):
                    value = self.traced.values.get(node)
                    if is_tensor_like(value):
                        name = f"_const_{n_consts}"
                        n_consts += 1
                        root.register_buffer(name, tensor_value(value).detach().clone())
                        env[node] = graph.get_attr(name)
                    else:
                        env[node] = value
                elif node.op == "call_module":
                    env[node] = self.call_module(node, root, graph, env)
                elif node.op == "call_function" and node.target is getattr:
                    env[node] = self.getattr_node(node, root, graph, env)
                else:
                    if node.op == "call_method" and node.target in _QUANT_TENSOR_METHODS:
                        raise self.fail(f"QuantTensor.{node.target}() has no plain-tensor equivalent",
                                        "use the dequantized value in forward()")  # fmt: skip
                    env[node] = graph.node_copy(node, lambda n: env[n])
            except _Unsupported as exc:
                if exc.problem not in self.problems:
                    self.problems.append(exc.problem)
                env[node] = None
        self._node = None
        if self.problems:
            return None, self.problems
        gm = torch.fx.GraphModule(root, graph, f"{type(self.traced.model).__name__}Quantized")
        return gm.eval(), []

    def where(self) -> str:
        return self.traced.qualname(self._node) if self._node is not None else ""

    def fail(self, constraint: str, fix: str = "") -> _Unsupported:
        return _Unsupported(Problem(self.where(), constraint, fix))

    def getattr_node(self, node: torch.fx.Node, root: nn.Module, graph: torch.fx.Graph, env: dict) -> Any:
        source, attr = node.args[0], node.args[1]
        if attr == "value":
            return env[source]
        value = self.traced.values.get(node)
        if is_tensor_like(value):
            name = f"_meta_{node.name}"
            root.register_buffer(name, tensor_value(value).detach().clone())
            return graph.get_attr(name)
        return value

    def call_module(self, node: torch.fx.Node, root: nn.Module, graph: torch.fx.Graph, env: dict) -> Any:
        module = self.traced.module(node)
        if is_quant_layer(module):
            method = self._lookup(module)
            replacement = getattr(self, method)(node, module)
        else:
            replacement = copy.deepcopy(module)
        target = str(node.target)
        _set_submodule(root, target, replacement)
        args = torch.fx.node.map_arg(node.args, env.__getitem__)
        kwargs = torch.fx.node.map_arg(node.kwargs, env.__getitem__)
        return graph.call_module(target, args, kwargs)

    def _lookup(self, module: nn.Module) -> str:
        cls = type(module)
        table = self.table()
        for klass in cls.__mro__:
            method = table.get(klass)
            if method is None:
                continue
            if getattr(cls, "forward", None) is not getattr(klass, "forward", None):
                break
            return method
        raise self.fail(
            f"quant layer {cls.__qualname__} has no torch-quantized translation",
            "build it from brevitas.nn and torch.nn layers, or add an entry to TorchQuantizedConverter.MODULES",
        )

    # ------------------------------------------------------------------ quantizers
    def description(self, node: torch.fx.Node, proxy: nn.Module | None, index: int = 0) -> QuantDescription | None:
        if proxy is None or getattr(proxy, "tensor_quant", None) is None:
            return None
        desc = self.traced.description(node, proxy, index)
        if desc is None:
            raise self.fail(f"{self.traced.proxy_name(node, proxy)} did not produce a valid quantized tensor")
        return desc

    def fake_quant(self, node: torch.fx.Node, proxy: nn.Module | None, index: int = 0) -> nn.Module | None:
        """The :class:`FakeQuant` for ``proxy``'s ``index``-th call in ``node`` (``None`` when disabled)."""
        desc = self.description(node, proxy, index)
        if desc is None:
            return None
        if desc.quant_type == "ternary":
            raise self.fail(
                f"{self.traced.proxy_name(node, proxy)} is a ternary activation quantizer (no torch-quantized form)",
                "use an integer or binary activation quantizer",
            )
        return FakeQuant(desc.scale, desc.zero_point, desc.int_min, desc.int_max, desc.rounding_mode,
                         binary=desc.quant_type == "binary")  # fmt: skip

    def constant(self, node: torch.fx.Node, proxy: nn.Module, tensor: Tensor | None) -> nn.Module | Tensor | None:
        """An :class:`IntegerConstant` for a quantized weight / bias, or the float tensor."""
        if tensor is None:
            return None
        calls = self.traced.calls_of(node, proxy)
        if getattr(proxy, "tensor_quant", None) is None or not calls or calls[0].description is None:
            return tensor.detach().to(torch.float32)
        desc, value = calls[0].description, calls[0].value
        assert value is not None
        value = value.to(torch.float32)
        codes = torch.round(value / desc.scale + desc.zero_point)  # integers, as floats
        if not torch.equal((codes - desc.zero_point) * desc.scale, value):
            raise self.fail(
                f"{self.traced.proxy_name(node, proxy)}: quantized values are not integer multiples of the scale",
                "use an integer, binary or ternary quantizer",
            )
        return IntegerConstant(codes, desc.scale, desc.zero_point)

    # ------------------------------------------------------------------ layers
    def weight_layer(self, node: torch.fx.Node, module: nn.Module) -> nn.Module:
        from brevitas.nn.quant_scale_bias import ScaleBias

        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            n = len(module.kernel_size)
            op = f"conv_transpose{n}d"
            args = {"stride": module.stride, "padding": module.padding, "output_padding": module.output_padding,
                    "groups": module.groups, "dilation": module.dilation}  # fmt: skip
        elif isinstance(module, nn.modules.conv._ConvNd):
            op = f"conv{len(module.kernel_size)}d"
            args = {"stride": module.stride, "padding": module.padding, "dilation": module.dilation,
                    "groups": module.groups, "padding_mode": module.padding_mode,
                    "reversed_padding": tuple(module._reversed_padding_repeated_twice)}  # fmt: skip
        elif isinstance(module, nn.Linear):
            op, args = "linear", {}
        elif isinstance(module, ScaleBias):
            op, args = "scale_bias", {"runtime_shape": tuple(module.runtime_shape)}
        else:
            raise self.fail(f"weight layer {type(module).__qualname__} has no torch-quantized translation")
        weight = self.constant(node, module.weight_quant, module.weight)
        bias = self.constant(node, module.bias_quant, module.bias)
        input_quant = self.fake_quant(node, module.input_quant)
        output_quant = self.fake_quant(node, module.output_quant)
        return QuantizedWeightLayer(op, args, weight, bias, input_quant, output_quant)

    def act_layer(self, node: torch.fx.Node, module: nn.Module) -> nn.Module:
        act_forward = getattr(type(module), "act_forward", None)
        if act_forward is not None and not act_forward.__module__.startswith("brevitas.nn"):
            raise self.fail(
                f"{type(module).__qualname__} overrides act_forward(); the exporter cannot know what it computes",
                "use a brevitas.nn activation layer",
            )
        twin = _float_twin(module)
        parts = [self.fake_quant(node, getattr(module, "input_quant", None)), twin,
                 self.fake_quant(node, getattr(module, "act_quant", None))]  # fmt: skip
        return nn.Sequential(*[p for p in parts if p is not None])

    def passthrough_layer(self, node: torch.fx.Node, module: nn.Module) -> nn.Module:
        if getattr(module, "return_indices", False):
            raise self.fail("max pooling with return_indices=True is not supported", "set return_indices=False")
        parts: list[nn.Module] = []
        twin = _float_twin(module)
        if twin is not None:
            parts.append(twin)
        for attr in ("trunc_quant", "clamp_quant"):
            desc = self.description(node, getattr(module, attr, None))
            if desc is None:
                continue
            inner = desc.input
            if inner is None:
                raise self.fail(f"{self.traced.proxy_name(node, getattr(module, attr))}: input grid unknown")
            shift = 2.0 ** (inner.bit_width - desc.bit_width) if inner.bit_width > desc.bit_width else 1.0
            parts.append(Requantize(desc.role, inner.scale, inner.zero_point, desc.scale, desc.zero_point,
                                    shift, desc.int_min, desc.int_max, desc.rounding_mode))  # fmt: skip
        return nn.Sequential(*parts) if parts else nn.Identity()

    def eltwise_add(self, node: torch.fx.Node, module: nn.Module) -> nn.Module:
        tied = module.output_quant is module.input_quant
        return QuantizedEltwiseAdd(
            self.fake_quant(node, module.input_quant, 0),
            self.fake_quant(node, module.input_quant, 1),
            self.fake_quant(node, module.output_quant, 2 if tied else 0),
        )

    def cat(self, node: torch.fx.Node, module: nn.Module) -> nn.Module:
        tensors = node.args[0] if node.args else node.kwargs["tensor_list"]
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 1)
        if isinstance(dim, torch.fx.Node):
            dim = self.traced.values[dim]
        count = len(tensors) if isinstance(tensors, (list, tuple)) else len(self.traced.values[tensors])
        tied = module.output_quant is module.input_quant
        quants = [self.fake_quant(node, module.input_quant, i) for i in range(count)]
        output_quant = self.fake_quant(node, module.output_quant, count if tied else 0)
        return QuantizedCat(quants, int(dim), output_quant)

    def proxy(self, node: torch.fx.Node, module: nn.Module) -> nn.Module:
        from brevitas.proxy import ActQuantProxy

        if not isinstance(module, ActQuantProxy):
            raise self.fail(f"{type(module).__name__} called directly in forward()", "call activation proxies only")
        fq = self.fake_quant(node, module)
        return fq if fq is not None else nn.Identity()


def _default_modules() -> dict[type, str]:
    return quant_layer_kinds()


def _export_inputs(args: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """Example inputs for ``torch.export`` (batch of at least 2, so it stays dynamic) and their dynamic shapes."""
    from torch.export import Dim

    inputs, shapes = [], []
    for a in args:
        t = tensor_value(a) if is_tensor_like(a) else a
        if isinstance(t, Tensor) and t.dim() >= 1:
            if t.shape[0] == 1:
                t = t.expand(2, *t.shape[1:]).contiguous()
            inputs.append(t)
            shapes.append({0: Dim.AUTO})
        else:
            inputs.append(t)
            shapes.append(None)
    return tuple(inputs), tuple(shapes)


class TorchQuantizedExporter(Exporter):
    """PyTorch program with integer weights and quantize-clamp-dequantize compute (``torch.export``)."""

    name = "torch-quantized"
    suffix = ".pt2"
    consumer = "torch.export.load"
    description = "PyTorch program with integer weights, quantize-clamp-dequantize (torch.export .pt2)"

    OPTIONS: ClassVar[dict[str, Any]] = {"dynamic_batch": True}

    def __init__(self) -> None:
        self._pending: tuple[Any, tuple[torch.fx.GraphModule | None, list[Problem]]] | None = None

    @staticmethod
    def _key(model: nn.Module, args: tuple[Any, ...]) -> Any:
        return (id(model), tuple(id(a) for a in args))

    def convert(self, model: nn.Module, args: tuple[Any, ...]) -> tuple[torch.fx.GraphModule | None, list[Problem]]:
        """The plain graph module (before ``torch.export``) and the problems found."""
        return TorchQuantizedConverter(trace(model, args)).convert()

    def check(self, model: nn.Module, args: tuple[Any, ...], **options: Any) -> list[Problem]:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            return [Problem("", f"unknown option(s) {', '.join(unknown)} for torch-quantized",
                            "accepted: " + ", ".join(self.OPTIONS))]  # fmt: skip
        result = self.convert(model, args)
        self._pending = (self._key(model, args), result)  # export() right after check() reuses it
        return list(result[1])

    def export(self, model: nn.Module, args: tuple[Any, ...], **options: Any) -> Any:
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == self._key(model, args):
            gm, problems = pending[1]
        else:
            gm, problems = self.convert(model, args)
        if problems or gm is None:
            raise ExportCheckError(self.name, problems)
        if options.get("dynamic_batch", True):
            inputs, shapes = _export_inputs(args)
            return torch.export.export(gm, inputs, dynamic_shapes=shapes)
        return torch.export.export(gm, tuple(tensor_value(a) if is_tensor_like(a) else a for a in args))

    def save(self, artifact: Any, path: Path) -> None:
        with open(path, "wb") as f:
            torch.export.save(artifact, f)

    def run(self, artifact: Any, *inputs: Any) -> list[Any]:
        """Run an ``ExportedProgram`` (or load one from a path first); outputs as numpy arrays."""
        if isinstance(artifact, (str, Path)):
            artifact = torch.export.load(str(artifact))
        with torch.no_grad():
            out = artifact.module()(*[tensor_value(i) if is_tensor_like(i) else i for i in inputs])
        flat = list(out) if isinstance(out, (tuple, list)) else [out]
        return [o.detach().cpu().numpy() for o in flat]


def register(registry: Registry) -> None:
    """Add the ``torch-quantized`` exporter."""
    registry.add("exporter", "torch-quantized", TorchQuantizedExporter, description=TorchQuantizedExporter.description)
