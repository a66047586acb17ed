"""From a traced quantized model to an ONNX graph, node by node, with per-dialect translation tables.

:class:`OnnxTranslator` walks the ``torch.fx`` graph that
:func:`brevitas.export.trace.trace` produced and emits ONNX nodes through a
:class:`~brevitas_export_onnx.graph.GraphBuilder`. What to emit is looked up
in three tables:

- ``MODULES``: module class -> method name, searched along the module's MRO
  (so ``QuantConv2d`` finds the entry of ``QuantWeightBiasInputOutputLayer``
  before the one of ``torch.nn.Conv2d``);
- ``FUNCTIONS``: function (``torch.cat``, ``operator.add`` ...) -> method name;
- ``METHODS``: tensor method name (``"view"``, ``"flatten"`` ...) -> method name.

The float part of every layer is translated once, in
:class:`~brevitas_export_onnx.float_ops.FloatOps` (a mixin of the translator). What differs between
dialects is how a quantizer becomes ONNX: :meth:`OnnxTranslator.quantize_act`
(an activation, input or output quantizer), :meth:`OnnxTranslator.quantized_const`
(weights and biases) and :meth:`OnnxTranslator.requantize` (truncation and
clamping of accumulators). A dialect subclasses the translator, overrides
those and adds entries to its own tables (``MODULES = {QuantFoo: "mod_foo"}``, merged along the MRO);
the QCDQ, QOperator, QONNX / FINN and PyXIR exporters all do.

Nothing raises while translating: each node that cannot be translated adds a
:class:`~brevitas.export.base.Problem` naming its layer, the reason and the
fix, and translation goes on so that one check reports every problem.

The graph keeps the batch dimension symbolic (``"batch"``): inputs and
outputs declare it, and reshapes are emitted with ``0`` / ``-1`` so it is
never baked in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import onnx
import torch
import torch.fx
from torch import Tensor, nn

from brevitas.export.base import Problem
from brevitas.export.description import QuantDescription
from brevitas.export.trace import TracedModel, is_quant_layer, is_tensor_like, quant_layer_kinds, tensor_value
from brevitas_export_onnx.float_ops import _FUNCTIONS, _METHODS, FloatOps, _np_dtype
from brevitas_export_onnx.graph import BATCH, GraphBuilder
from brevitas_export_onnx.values import Const, Ref, Unsupported

__all__ = ["Const", "OnnxTranslator", "Ref", "Unsupported"]


def _torch_nn_classes(module: nn.Module) -> list[type]:
    return [c for c in type(module).__mro__ if c.__module__.startswith("torch.nn")]


class OnnxTranslator(FloatOps):
    """Translate a :class:`~brevitas.export.trace.TracedModel` into ONNX (the float parts; see the module doc).

    Args:
        traced: the traced model.
        opset_version: version of the default ONNX domain.
        dynamic_batch: make dimension 0 of inputs and outputs symbolic.
        options: dialect options (unknown ones are reported by :meth:`check_options`).

    Example:
        >>> import torch
        >>> from brevitas.export.trace import trace
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU())
        >>> onnx_model, problems = OnnxTranslator(trace(model, torch.randn(1, 4))).translate()
        >>> [n.op_type for n in onnx_model.graph.node], problems
        (['Gemm', 'Relu'], [])
    """

    #: dialect name used in messages
    dialect: ClassVar[str] = "onnx"
    #: options this dialect accepts (name -> default)
    OPTIONS: ClassVar[dict[str, Any]] = {}
    #: lowest default-domain opset the dialect emits
    MIN_OPSET: ClassVar[int] = 13
    DEFAULT_OPSET: ClassVar[int] = 17

    #: additions and overrides of this class; the tables in use merge the MRO (see :meth:`tables`)
    MODULES: ClassVar[dict[type, str]] = {}
    FUNCTIONS: ClassVar[dict[Any, str]] = {}
    METHODS: ClassVar[dict[str, str]] = {}

    @classmethod
    def tables(cls) -> tuple[dict[type, str], dict[Any, str], dict[str, str]]:
        """The module, function and method tables in use: every class's entries, derived classes winning.

        Built on first use (the default module table imports ``brevitas.nn``).
        """
        cached = cls.__dict__.get("_tables")
        if cached is not None:
            return cached
        modules: dict[type, str] = {}
        functions: dict[Any, str] = {}
        methods: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            if klass is OnnxTranslator:
                modules.update(_default_module_table())
                functions.update(_FUNCTIONS)
                methods.update(_METHODS)
            modules.update(klass.__dict__.get("MODULES", {}))
            functions.update(klass.__dict__.get("FUNCTIONS", {}))
            methods.update(klass.__dict__.get("METHODS", {}))
        cls._tables = (modules, functions, methods)
        return cls._tables

    def __init__(
        self,
        traced: TracedModel,
        opset_version: int | None = None,
        dynamic_batch: bool = True,
        **options: Any,
    ) -> None:
        self.traced = traced
        self.opset = int(opset_version if opset_version is not None else self.DEFAULT_OPSET)
        self.dynamic_batch = bool(dynamic_batch)
        self.options = {**self.OPTIONS, **options}
        self.unknown_options = sorted(set(options) - set(self.OPTIONS))
        self.g = GraphBuilder(opset=self.opset, name=type(traced.model).__name__)
        self.env: dict[torch.fx.Node, Any] = {}
        self.problems: list[Problem] = []
        self._node: torch.fx.Node | None = None

    # ------------------------------------------------------------------ driving
    def check_options(self) -> list[Problem]:
        """Problems with the options themselves (unknown names, opset out of range)."""
        out = []
        for name in self.unknown_options:
            accepted = ", ".join(["opset_version", "dynamic_batch", *self.OPTIONS]) or "none"
            what = f"unknown option {name!r} for the {self.dialect} exporter"
            out.append(Problem("", what, f"use one of {accepted}"))
        if self.opset < self.MIN_OPSET:
            out.append(
                Problem(
                    "",
                    f"opset_version={self.opset} is too old for {self.dialect} (needs {self.MIN_OPSET} or later)",
                    f"pass opset_version={max(self.MIN_OPSET, self.DEFAULT_OPSET)}",
                )
            )
        return out

    def translate(self) -> tuple[onnx.ModelProto | None, list[Problem]]:
        """The ONNX model (``None`` when there are problems) and every problem found."""
        if self.traced.problems:
            return None, list(self.traced.problems)
        self.problems = self.check_options()
        if self.problems:
            return None, self.problems
        for node in self.traced.graph.nodes:
            self._node = node
            try:
                self.env[node] = self.translate_node(node)
            except Unsupported as exc:
                for problem in exc.problems:
                    self.report(problem)
                self.env[node] = Ref("__unsupported__", self.traced.values.get(node))
        self._node = None
        self.problems.extend(self.finish())
        if self.problems:
            return None, self.problems
        try:
            model = self.g.build(producer=f"brevitas ({self.dialect})")
        except Exception as exc:  # a translation bug: report it rather than write a broken file
            return None, [
                Problem(
                    "",
                    f"the {self.dialect} graph failed onnx.checker: {type(exc).__name__}: {exc}",
                    "report this with the model as a bug of the exporter",
                )
            ]
        return model, []

    def finish(self) -> list[Problem]:
        """Hook for dialects: last checks or rewrites after every node (problems to add)."""
        return []

    def report(self, problem: Problem) -> None:
        """Record a problem (once)."""
        if not any(p == problem for p in self.problems):
            self.problems.append(problem)

    def where(self, node: torch.fx.Node | None = None) -> str:
        """Qualified name of the layer responsible for ``node`` (the current node by default)."""
        node = node if node is not None else self._node
        return self.traced.qualname(node) if node is not None else ""

    def fail(self, constraint: str, fix: str = "", layer: str | None = None) -> Unsupported:
        """An :class:`Unsupported` to raise for the current node."""
        return Unsupported(Problem(self.where() if layer is None else layer, constraint, fix))

    def hint(self, suffix: str = "") -> str:
        """Name hint for nodes of the current layer."""
        base = self.where() or (self._node.name if self._node is not None else "")
        return f"{base}/{suffix}" if suffix else base

    # ------------------------------------------------------------------ node dispatch
    def translate_node(self, node: torch.fx.Node) -> Any:
        op = node.op
        if op == "placeholder":
            return self.graph_input(node)
        if op == "output":
            self.graph_outputs(node)
            return None
        if not self.traced.depends_on_input(node):
            return Const(self.traced.values.get(node))
        args = torch.fx.node.map_arg(node.args, self.env.__getitem__)
        kwargs = torch.fx.node.map_arg(node.kwargs, self.env.__getitem__)
        if op == "get_attr":
            return Const(self.traced.values.get(node))
        if op == "call_module":
            module = self.traced.module(node)
            method = self._lookup_module(module)
            return self._wrap(node, getattr(self, method)(node, module, *args, **kwargs))
        if op == "call_function":
            method = self.tables()[1].get(node.target)
            if method is None:
                name = getattr(node.target, "__name__", str(node.target))
                raise self.fail(
                    f"function {name}() has no {self.dialect} translation",
                    "use an equivalent torch.nn layer or one of the supported functions, or export with another "
                    "exporter (brevitas.export.exporters() lists them)",
                )
            return self._wrap(node, getattr(self, method)(node, *args, **kwargs))
        if op == "call_method":
            method = self.tables()[2].get(str(node.target))
            if method is None:
                raise self.fail(
                    f"tensor method .{node.target}() has no {self.dialect} translation",
                    "use a supported equivalent (view / reshape / flatten / permute ...)",
                )
            return self._wrap(node, getattr(self, method)(node, *args, **kwargs))
        raise self.fail(f"unexpected graph node {op}")  # pragma: no cover

    def _lookup_module(self, module: nn.Module) -> str:
        cls = type(module)
        table = self.tables()[0]
        for klass in cls.__mro__:
            method = table.get(klass)
            if method is None:
                continue
            # a subclass that overrides forward() computes something the entry does not know
            if getattr(cls, "forward", None) is not getattr(klass, "forward", None):
                break
            return method
        kind = "quant layer" if is_quant_layer(module) else "module"
        raise self.fail(
            f"{kind} {cls.__qualname__} has no {self.dialect} translation",
            "build it from brevitas.nn and torch.nn layers the exporters know, or add a translation to a subclass "
            f"of {type(self).__qualname__} (its MODULES table)",
        )

    def _wrap(self, node: torch.fx.Node, out: Any) -> Any:
        if isinstance(out, str):
            return Ref(out, self.traced.values.get(node))
        return out

    # ------------------------------------------------------------------ values
    def name_of(self, v: Any, hint: str = "const", like: Ref | None = None) -> str:
        """The ONNX name of ``v``: a :class:`Ref`, or a constant stored as an initializer."""
        if isinstance(v, Ref):
            return v.name
        if isinstance(v, Const):
            v = v.value
        if is_tensor_like(v):
            t = tensor_value(v).detach()
            if t.is_floating_point():
                t = t.to(torch.float32)
            return self.g.const(t.cpu().numpy(), hint)
        if isinstance(v, (bool, int, float)):
            dtype = np.float32 if like is None or like.value.is_floating_point() else _np_dtype(like.value)
            return self.g.const(np.array(v, dtype=dtype), hint)
        raise self.fail(f"cannot use a {type(v).__name__} as a tensor in ONNX")

    def example(self, v: Any) -> Tensor:
        """The plain example tensor of a :class:`Ref` or constant."""
        if isinstance(v, Ref):
            return v.value
        if isinstance(v, Const):
            v = v.value
        if is_tensor_like(v):
            return tensor_value(v)
        return torch.as_tensor(v)

    def python(self, v: Any) -> Any:
        """A Python value (constant folded); fails for graph tensors."""
        if isinstance(v, Const):
            return v.value
        if isinstance(v, Ref):
            raise self.fail("a tensor computed from the inputs is used where a Python value is needed")
        return v

    def dims(self, shape: Sequence[int]) -> list[int | str]:
        """Shape with dimension 0 symbolic when the batch is dynamic."""
        out: list[int | str] = [int(s) for s in shape]
        if self.dynamic_batch and out:
            out[0] = BATCH
        return out

    def graph_input(self, node: torch.fx.Node) -> Any:
        value = self.traced.values.get(node)
        if not is_tensor_like(value):
            return Const(value)
        t = tensor_value(value)
        name = self.g.input(str(node.target), _np_dtype(t), self.dims(t.shape))
        return Ref(name, value)

    def graph_outputs(self, node: torch.fx.Node) -> None:
        flat: list[Any] = []

        def collect(a: Any) -> None:
            if isinstance(a, (tuple, list)):
                for x in a:
                    collect(x)
            elif isinstance(a, dict):
                for x in a.values():
                    collect(x)
            else:
                flat.append(a)

        collect(node.args[0])
        for i, a in enumerate(flat):
            v = self.env[a] if isinstance(a, torch.fx.Node) else a
            if isinstance(v, Const) and is_tensor_like(v.value):
                v = Ref(self.name_of(v, "output_const"), v.value)
            if not isinstance(v, Ref):
                self.report(
                    Problem("", f"output {i} is a {type(v).__name__}, not a tensor", "return tensors from forward()")
                )
                continue
            if v.name == "__unsupported__":
                continue
            t = v.value
            self.g.output(v.name, _np_dtype(t), self.dims(t.shape), rename=f"output_{i}" if len(flat) > 1 else "output")

    # ------------------------------------------------------------------ dialect hooks
    def quantize_act(self, x: str, desc: QuantDescription, where: str) -> str:
        """Emit the quantization of a float tensor ``x`` by an activation quantizer; returns the float output.

        The base translator knows no quantized form: it reports a problem.
        """
        raise self.fail(
            f"{where} quantizes ({desc.describe()}) and the plain onnx translator has no quantized form",
            "export with a quantized exporter (onnx-qcdq, onnx-qop, qonnx ...)",
            layer=where.rsplit(".", 1)[0] if "." in where else where,
        )

    def quantized_const(self, value: Tensor, desc: QuantDescription, where: str) -> str:
        """Emit a quantized constant (weight, bias) whose dequantized value is ``value``; returns its float name."""
        raise self.fail(
            f"{where} quantizes ({desc.describe()}) and the plain onnx translator has no quantized form",
            "export with a quantized exporter (onnx-qcdq, onnx-qop, qonnx ...)",
        )

    def requantize(self, x: str, desc: QuantDescription, where: str) -> str:
        """Truncate or clamp an integer tensor ``x`` (``desc.role`` is ``trunc`` or ``clamp``) with float ops.

        ``code = round(x / s_in + z_in)``; trunc: ``code = float_to_int(code / 2**k)``;
        clamp: ``code = clip(code, min, max)``; ``y = (code - z_out) * s_out``:
        the operations of the PyTorch quantizers, in the same order.
        """
        inner = desc.input
        if inner is None:
            raise self.fail(f"{where}: the re-quantized input grid is unknown", "feed it a valid QuantTensor")
        if not inner.is_per_tensor or not desc.is_per_tensor:
            raise self.fail(f"{where}: per-channel truncation is not supported", "use a per-tensor scale before it")
        hint = where
        s_in = self.g.const(np.float32(inner.scale.reshape(()).item()), f"{hint}.input_scale")
        z_in = self.g.const(np.float32(inner.zero_point.reshape(()).item()), f"{hint}.input_zero_point")
        code = self.g.node("Div", [x, s_in], hint)
        code = self.g.node("Add", [code, z_in], hint)
        code = self.g.node("Round", [code], hint)
        if desc.role == "trunc":
            shift = 2.0 ** (inner.bit_width - desc.bit_width) if inner.bit_width > desc.bit_width else 1.0
            code = self.g.node("Div", [code, self.g.const(np.float32(shift), f"{hint}.trunc_scale")], hint)
            code = self.emit_rounding(code, desc.rounding_mode, where)
        else:
            lo = self.g.const(np.float32(desc.int_min), f"{hint}.min_int")
            hi = self.g.const(np.float32(desc.int_max), f"{hint}.max_int")
            code = self.g.node("Clip", [code, lo, hi], hint)
        s_out = self.g.const(np.float32(desc.scale.reshape(()).item()), f"{hint}.scale")
        z_out = self.g.const(np.float32(desc.zero_point.reshape(()).item()), f"{hint}.zero_point")
        y = self.g.node("Sub", [code, z_out], hint)
        return self.g.node("Mul", [y, s_out], hint)

    def emit_rounding(self, x: str, mode: str, where: str) -> str:
        """Round ``x`` to integers the way ``mode`` says (float in, float out)."""
        mode = mode.upper()
        if mode == "ROUND":
            return self.g.node("Round", [x], where)
        if mode == "FLOOR":
            return self.g.node("Floor", [x], where)
        if mode == "CEIL":
            return self.g.node("Ceil", [x], where)
        if mode == "ROUND_TO_ZERO":
            sign = self.g.node("Sign", [x], where)
            mag = self.g.node("Floor", [self.g.node("Abs", [x], where)], where)
            return self.g.node("Mul", [sign, mag], where)
        raise self.fail(f"{where} rounds with {mode}, which has no standard ONNX form", "use ROUND, FLOOR or CEIL")

    def value_op(self, x: Any, build: Any, keeps_axes: bool) -> str:
        """Apply an operation that moves or selects values without changing them (reshape, max pool ...).

        ``build(name) -> name`` emits it. Quantized dialects override this to
        run it on the integers when ``x`` is a dequantized integer tensor
        (``keeps_axes``: the axes stay where they are, so a per-channel grid
        survives it).
        """
        return build(self.name_of(x))

    # ------------------------------------------------------------------ quant layer helpers
    def describe_call(self, node: torch.fx.Node, proxy: nn.Module, index: int = 0) -> QuantDescription | None:
        """The description of ``proxy``'s ``index``-th call within ``node`` (``None`` when it did not quantize)."""
        return self.traced.description(node, proxy, index)

    def proxy_where(self, node: torch.fx.Node, proxy: nn.Module) -> str:
        """Qualified name of ``proxy`` as used by ``node``."""
        return self.traced.proxy_name(node, proxy)

    def apply_act_proxy(self, node: torch.fx.Node, proxy: nn.Module | None, x: str, index: int = 0) -> str:
        """``quantize_act`` for ``proxy``'s call within ``node`` (``x`` unchanged when disabled)."""
        if proxy is None or getattr(proxy, "tensor_quant", None) is None:
            return x
        desc = self.describe_call(node, proxy, index)
        where = self.proxy_where(node, proxy)
        if desc is None:
            raise self.fail(f"{where} did not produce a valid quantized tensor", "check the quantizer configuration")
        return self.quantize_act(x, desc, where)

    def weight_and_bias(self, node: torch.fx.Node, module: nn.Module) -> tuple[str, str | None]:
        """ONNX names of a weight layer's (dequantized) weight and bias."""
        w_proxy = module.weight_quant
        weight = module.weight
        w_calls = self.traced.calls_of(node, w_proxy)
        if w_proxy.tensor_quant is not None and w_calls and w_calls[0].description is not None:
            w = self.quantized_const(w_calls[0].value, w_calls[0].description, self.proxy_where(node, w_proxy))
        else:
            w = self.g.const(weight.detach().to(torch.float32).cpu().numpy(), f"{self.hint()}.weight")
        bias = getattr(module, "bias", None)
        if bias is None:
            return w, None
        b_proxy = module.bias_quant
        b_calls = self.traced.calls_of(node, b_proxy)
        if b_proxy.tensor_quant is not None and b_calls and b_calls[0].description is not None:
            b = self.quantized_const(b_calls[0].value, b_calls[0].description, self.proxy_where(node, b_proxy))
        else:
            b = self.g.const(bias.detach().to(torch.float32).cpu().numpy(), f"{self.hint()}.bias")
        return w, b

    def float_module(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        """Apply the ``torch.nn`` operation a quant layer inherits (ReLU, MaxPool2d ...) to ``x``."""
        table = self.tables()[0]
        for klass in _torch_nn_classes(module):
            method = table.get(klass)
            if method is not None:
                out = getattr(self, method)(node, module, x)
                return out if isinstance(out, str) else self.name_of(out)
        if isinstance(x, Ref):
            return x.name
        return self.name_of(x)

    # ------------------------------------------------------------------ quant layers
    def mod_weight_layer(self, node: torch.fx.Node, module: nn.Module, x: Any, *rest: Any) -> str:
        """Conv / transposed conv / linear / scale-bias with input, weight, bias and output quantizers."""
        if rest:
            raise self.fail(f"{type(module).__name__} called with {len(rest) + 1} inputs", "call it with one tensor")
        xin = self.apply_act_proxy(node, module.input_quant, self.name_of(x))
        w, b = self.weight_and_bias(node, module)
        y = self.weight_op(node, module, Ref(xin, self.example(x)), w, b)
        return self.apply_act_proxy(node, module.output_quant, y)

    def weight_op(self, node: torch.fx.Node, module: nn.Module, x: Ref, w: str, b: str | None) -> str:
        """The float operation of a weight layer with given weight and bias names."""
        from brevitas.nn.quant_scale_bias import ScaleBias

        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            return self.conv_transpose(module, x, w, b)
        if isinstance(module, nn.modules.conv._ConvNd):
            return self.conv(module, x, w, b)
        if isinstance(module, nn.Linear):
            return self.linear(x, w, b, module.out_features)
        if isinstance(module, ScaleBias):
            shape = self.g.const(np.array(module.runtime_shape, dtype=np.int64), f"{self.hint()}.runtime_shape")
            y = self.g.node("Mul", [x.name, self.g.node("Reshape", [w, shape], self.hint())], self.hint())
            if b is not None:
                y = self.g.node("Add", [y, self.g.node("Reshape", [b, shape], self.hint())], self.hint())
            return y
        raise self.fail(f"weight layer {type(module).__qualname__} has no {self.dialect} translation")

    def mod_act_layer(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        """Activation layers: input quantizer, the ``torch.nn`` activation, ``act_quant``."""
        act_forward = getattr(type(module), "act_forward", None)
        if act_forward is not None and not act_forward.__module__.startswith("brevitas.nn"):
            raise self.fail(
                f"{type(module).__qualname__} overrides act_forward(); the exporter cannot know what it computes",
                "use a brevitas.nn activation layer, or add a translation to the exporter's MODULES table",
            )
        xin = self.apply_act_proxy(node, getattr(module, "input_quant", None), self.name_of(x))
        y = self.float_module(node, module, Ref(xin, self.example(x)))
        return self.apply_act_proxy(node, getattr(module, "act_quant", None), y)

    def mod_passthrough_layer(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        """Quant layers that quantize nothing themselves (max pool, upsample, dropout), then trunc / clamp."""
        y = self.float_module(node, module, x)
        for attr in ("trunc_quant", "clamp_quant"):
            proxy = getattr(module, attr, None)
            if proxy is None or proxy.tensor_quant is None:
                continue
            desc = self.describe_call(node, proxy)
            where = self.proxy_where(node, proxy)
            if desc is None:
                raise self.fail(f"{where} did not run on a valid QuantTensor", "feed the layer a QuantTensor")
            y = self.requantize(y, desc, where)
        return y

    def mod_eltwise_add(self, node: torch.fx.Node, module: nn.Module, a: Any, b: Any) -> str:
        """``output_quant(input_quant(a) + input_quant(b))``."""
        qa = self.apply_act_proxy(node, module.input_quant, self.name_of(a), 0)
        qb = self.apply_act_proxy(node, module.input_quant, self.name_of(b), 1)
        y = self.g.node("Add", [qa, qb], self.hint())
        return self.apply_act_proxy(node, module.output_quant, y, 2 if module.output_quant is module.input_quant else 0)

    def mod_cat(self, node: torch.fx.Node, module: nn.Module, tensors: Any, dim: Any = 1) -> str:
        """``output_quant(torch.cat([input_quant(t) for t in tensors], dim))``."""
        dim = int(self.python(dim))
        items = list(tensors)
        names = [self.apply_act_proxy(node, module.input_quant, self.name_of(t), i) for i, t in enumerate(items)]
        rank = self.example(items[0]).dim()
        y = self.g.node("Concat", names, self.hint(), axis=dim % rank)
        tied = module.output_quant is module.input_quant
        return self.apply_act_proxy(node, module.output_quant, y, len(items) if tied else 0)

    def mod_proxy(self, node: torch.fx.Node, module: nn.Module, x: Any, *rest: Any) -> str:
        """A proxy called directly from user code (an activation proxy)."""
        from brevitas.proxy import ActQuantProxy

        if not isinstance(module, ActQuantProxy) or rest:
            raise self.fail(
                f"{type(module).__name__} called directly in forward()",
                "call activation proxies only, or wrap the quantizer in a brevitas.nn layer",
            )
        return self.apply_act_proxy(node, module, self.name_of(x))


def _default_module_table() -> dict[type, str]:
    return {
        # brevitas.nn
        **{cls: f"mod_{kind}" for cls, kind in quant_layer_kinds().items()},
        # torch.nn
        nn.Conv1d: "mod_conv",
        nn.Conv2d: "mod_conv",
        nn.Conv3d: "mod_conv",
        nn.ConvTranspose1d: "mod_conv",
        nn.ConvTranspose2d: "mod_conv",
        nn.ConvTranspose3d: "mod_conv",
        nn.Linear: "mod_linear",
        nn.BatchNorm1d: "mod_batch_norm",
        nn.BatchNorm2d: "mod_batch_norm",
        nn.BatchNorm3d: "mod_batch_norm",
        nn.Identity: "mod_identity",
        nn.Dropout: "mod_identity",
        nn.Dropout1d: "mod_identity",
        nn.Dropout2d: "mod_identity",
        nn.Dropout3d: "mod_identity",
        nn.ReLU: "mod_relu",
        nn.ReLU6: "mod_relu6",
        nn.Hardtanh: "mod_hardtanh",
        nn.Sigmoid: "mod_sigmoid",
        nn.Tanh: "mod_tanh",
        nn.LeakyReLU: "mod_leaky_relu",
        nn.Softmax: "mod_softmax",
        nn.MaxPool1d: "mod_max_pool",
        nn.MaxPool2d: "mod_max_pool",
        nn.MaxPool3d: "mod_max_pool",
        nn.AvgPool1d: "mod_avg_pool",
        nn.AvgPool2d: "mod_avg_pool",
        nn.AvgPool3d: "mod_avg_pool",
        nn.AdaptiveAvgPool1d: "mod_adaptive_avg_pool",
        nn.AdaptiveAvgPool2d: "mod_adaptive_avg_pool",
        nn.AdaptiveAvgPool3d: "mod_adaptive_avg_pool",
        nn.AdaptiveMaxPool1d: "mod_adaptive_max_pool",
        nn.AdaptiveMaxPool2d: "mod_adaptive_max_pool",
        nn.Flatten: "mod_flatten",
        nn.Upsample: "mod_upsample",
    }
