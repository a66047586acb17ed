"""Translation of a traced quantized model into PyXIR-flavoured ONNX (domain ``pyxir``) for the DPU.

:class:`DPUv1Translator` subclasses the ONNX machinery's
:class:`~brevitas_export_onnx.translate.OnnxTranslator`; :class:`DPUv2Translator`
adds an explicit ``Pad`` before each padded ``Conv`` (which then uses
``auto_pad='VALID'``).

What a PyXIR file means (the contract, :mod:`brevitas_export_pyxir.contract`):
tensors between nodes hold real values; each DPU node quantizes its input(s)
with ``vai_quant_in = [bit_width, fix_point]``, computes in integers (weights
and biases are integer initializers on ``vai_quant_weights`` /
``vai_quant_biases``) and quantizes its result with ``vai_quant_out``. So the
translation follows, for every tensor of the graph, the fixed-point grid its
PyTorch value lies on:

- a layer's output quantizer (``output_quant``, ``act_quant`` of a
  ``QuantReLU``, the ``trunc_quant`` of an average pool) is its node's
  ``vai_quant_out``; its input quantizer, or the grid its input already lies
  on, is ``vai_quant_in``;
- a quantizer on its own (``QuantIdentity``, an activation proxy called in
  ``forward``) is not a DPU node: it becomes the ``vai_quant_in`` of the nodes
  that read its output, or the ``vai_quant_out`` of the node that produced
  its input when that node has no output quantizer of its own (a
  ``QuantConv2d`` followed by a ``QuantIdentity``);
- ``Flatten`` before a ``Gemm``, dropout and identities pass the grid on.

Everything else is refused, each problem naming the layer, the constraint
and the :mod:`brevitas.quant.fixed_point` quantizer that meets it (see
:mod:`brevitas_export_pyxir.constraints`).

Example:
    >>> import torch
    >>> from brevitas.export.trace import trace
    >>> from brevitas.nn import QuantConv2d, QuantIdentity
    >>> from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint
    >>> model = torch.nn.Sequential(
    ...     QuantIdentity(act_quant=Int8ActPerTensorFixedPoint),
    ...     QuantConv2d(2, 4, 3, bias=False, weight_quant=Int8WeightPerTensorFixedPoint,
    ...                 output_quant=Int8ActPerTensorFixedPoint))
    >>> onnx_model, problems = DPUv1Translator(trace(model, torch.randn(1, 2, 6, 6))).translate()
    >>> [(n.domain, n.op_type) for n in onnx_model.graph.node], problems
    ([('pyxir', 'Conv')], [])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import onnx
import torch
import torch.fx
from onnx import helper
from torch import nn

from brevitas.export.base import Problem
from brevitas.export.description import QuantDescription
from brevitas.export.trace import tensor_value
from brevitas_export_onnx.translate import Const, OnnxTranslator, Ref, Unsupported
from brevitas_export_pyxir.constraints import (
    FIXED_POINT,
    act_problems,
    bias_problems,
    trunc_problems,
    weight_problems,
)
from brevitas_export_pyxir.contract import ACT_BIT_WIDTH, DOMAIN, DOMAIN_VERSION, QUANT_KEYS, fix_point_of

__all__ = ["DPUv1Translator", "DPUv2Translator", "Fixed", "Grid"]

#: the node list quoted in refusals
_DPU_NODES = "PyXIR nodes: Conv, Gemm, Relu, Add, MaxPool, AveragePool, GlobalAveragePool"
_BUILD_FROM = (
    "build the part of the model the DPU runs from QuantConv2d, QuantLinear, QuantReLU, QuantIdentity, "
    f"QuantEltwiseAdd, QuantMaxPool2d and QuantAvgPool2d / QuantAdaptiveAvgPool2d with {FIXED_POINT} quantizers, "
    "and run the rest on the host"
)
_UNSUPPORTED = "__unsupported__"


def _tuple(v: Any, n: int) -> tuple[Any, ...]:
    """``v`` as an ``n``-tuple (a scalar repeated, a 1-element sequence repeated)."""
    if isinstance(v, (tuple, list)):
        return tuple(v) * n if len(v) == 1 else tuple(v)
    return (v,) * n


@dataclass(frozen=True)
class Grid:
    """A fixed-point grid: ``bit_width`` bits, ``scale = 2 ** -fix_point``, signed or not.

    Attributes:
        where: the quantizer that defines it (for messages).
    """

    bit_width: int
    fix_point: int
    signed: bool
    where: str = ""

    @property
    def attr(self) -> list[int]:
        """The ``[bit_width, fix_point]`` attribute value."""
        return [int(self.bit_width), int(self.fix_point)]

    def same(self, other: Grid | None) -> bool:
        """Same bit-width, fix point and sign (re-quantizing from one to the other changes nothing)."""
        return other is not None and (self.bit_width, self.fix_point, self.signed) == (
            other.bit_width,
            other.fix_point,
            other.signed,
        )

    @classmethod
    def of(cls, desc: QuantDescription, where: str) -> Grid:
        """The grid of a per-tensor power-of-two quantizer."""
        return cls(int(desc.bit_width), fix_point_of(float(desc.scale.reshape(-1)[0])), bool(desc.signed), where)


@dataclass(frozen=True)
class Fixed:
    """What one graph tensor holds, as the translation tracks it.

    Attributes:
        name: the ONNX tensor (real values).
        grid: the grid the PyTorch value lies on (``None``: float).
        applied: ``name`` already holds values on ``grid``; when ``False`` the
            nodes reading it quantize it (``vai_quant_in``) first.
        non_negative: the contract's sign analysis says it cannot be negative.
        origin: for a float tensor, the ONNX tensor of the DPU node whose
            output quantization is missing (``""`` for a graph input).
        unknown: produced by a node that could not be translated.
    """

    name: str
    grid: Grid | None
    applied: bool = True
    non_negative: bool = False
    origin: str = ""
    unknown: bool = False


@dataclass
class _OpenOutput:
    node: onnx.NodeProto
    problem: Problem
    closed: Grid | None = None


class _Collect:
    """Run several checks, gathering every :class:`Unsupported` problem."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Unsupported as exc:
            self.problems.extend(exc.problems)
            return None

    def add(self, problems: list[Problem]) -> None:
        self.problems.extend(problems)

    def raise_if_any(self) -> None:
        if self.problems:
            raise Unsupported(*self.problems)


class DPUv1Translator(OnnxTranslator):
    """Translation to PyXIR-flavoured ONNX for the DPUv1 (``pads`` on ``Conv``); see the module doc."""

    dialect: ClassVar[str] = "pyxir"
    #: translation methods of the base tables that the DPU has (everything else is refused)
    SUPPORTED: ClassVar[frozenset[str]] = frozenset(
        {
            "mod_weight_layer",
            "mod_act_layer",
            "mod_eltwise_add",
            "mod_passthrough_layer",
            "mod_proxy",
            "mod_identity",
            "mod_relu",
            "mod_max_pool",
            "mod_avg_pool",
            "mod_adaptive_avg_pool",
            "mod_flatten",
            "fn_add",
            "fn_relu",
            "fn_max_pool",
            "fn_avg_pool",
            "fn_adaptive_avg_pool",
            "fn_flatten",
            "fn_reshape",
            "fn_getattr",
            "fn_getitem",
            "fn_dropout",
            "meth_reshape",
            "meth_flatten",
            "meth_identity",
            "meth_python",
        }
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.g.use_domain(DOMAIN, DOMAIN_VERSION)
        #: alias (the name a Ref carries) -> what the tensor holds
        self.fixed: dict[str, Fixed] = {}
        #: ONNX tensor -> the DPU node producing it whose vai_quant_out is still open
        self.open: dict[str, _OpenOutput] = {}
        self._aliases = 0

    # ------------------------------------------------------------------ dispatch
    def translate_node(self, node: torch.fx.Node) -> Any:
        if node.op in ("call_module", "call_function", "call_method") and self.traced.depends_on_input(node):
            method = self._method_of(node)
            if method not in self.SUPPORTED:
                raise self.not_on_dpu(self._describe_target(node))
        return super().translate_node(node)

    def _method_of(self, node: torch.fx.Node) -> str | None:
        modules, functions, methods = self.tables()
        if node.op == "call_module":
            for klass in type(self.traced.module(node)).__mro__:
                if klass in modules:
                    return modules[klass]
            return None
        if node.op == "call_function":
            return functions.get(node.target)
        return methods.get(str(node.target))

    def _describe_target(self, node: torch.fx.Node) -> str:
        if node.op == "call_module":
            return type(self.traced.module(node)).__name__
        if node.op == "call_function":
            return f"{getattr(node.target, '__name__', str(node.target))}()"
        return f".{node.target}()"

    def not_on_dpu(self, what: str, fix: str = _BUILD_FROM) -> Unsupported:
        """The refusal of a layer or operation the DPU does not have."""
        return self.fail(f"{what} is not a layer the DPU has ({_DPU_NODES})", fix)

    # ------------------------------------------------------------------ tensors and grids
    def fixed_of(self, v: Any) -> Fixed:
        """What the graph tensor ``v`` (a Ref) holds."""
        if isinstance(v, Ref):
            if v.name == _UNSUPPORTED:
                example = v.example
                non_negative = bool(getattr(example, "signed", True) is False)
                return Fixed(_UNSUPPORTED, Grid(8, 0, not non_negative), True, non_negative, unknown=True)
            found = self.fixed.get(v.name)
            return found if found is not None else Fixed(v.name, None)
        kind = "a constant tensor" if isinstance(v, Const) else f"a {type(v).__name__}"
        raise self.fail(
            f"uses {kind} as an operand; DPU layers take the feature maps of the network only",
            "fold constants into a layer's weights or bias, or compute them on the host",
        )

    def register(self, fixed: Fixed, canonical: bool = False) -> str:
        """The name a Ref carries for ``fixed``.

        ``canonical``: ``fixed`` describes the ONNX tensor as the node that
        writes it produced it; it is registered under the tensor's own name.
        Anything else (a quantizer's view of a tensor, a pass-through) gets the
        tensor's name only when it describes the tensor exactly that way, else
        an alias, so that other readers of the tensor still see what it holds.
        """
        if canonical:
            self.fixed[fixed.name] = fixed
            return fixed.name
        if self.fixed.get(fixed.name, Fixed(fixed.name, None)) == fixed:
            return fixed.name
        self._aliases += 1
        alias = f"{fixed.name}#{self._aliases}"
        self.fixed[alias] = fixed
        return alias

    @staticmethod
    def scale_restriction(proxy: nn.Module | None) -> str | None:
        """The ``restrict_scaling_type`` a quantizer declares (lower case), ``None`` when it declares none.

        Bias quantizers on the accumulator grid (``requires_input_scale``) take
        their scale from the layer's input and weight: they declare none.
        """
        from brevitas.inject import defines

        injector = getattr(proxy, "quant_injector", None)
        try:
            if defines(injector, "requires_input_scale") and bool(injector.requires_input_scale):
                return None
            if not defines(injector, "restrict_scaling_type"):
                return None
            value = injector.restrict_scaling_type
        except Exception:  # a quantizer that cannot be read back: judge the scale's value alone
            return None
        return str(getattr(value, "value", value)).lower()

    def act_grid(self, desc: QuantDescription | None, where: str, non_negative: bool, proxy: nn.Module) -> Grid:
        """The grid of the activation quantizer ``proxy``, or every reason the DPU cannot take it."""
        if desc is None:
            raise self.fail(f"{where} did not produce a valid quantized tensor", "check the quantizer configuration")
        problems = act_problems(desc, where, self.where(), non_negative, self.scale_restriction(proxy))
        if problems:
            raise Unsupported(*problems)
        return Grid.of(desc, where)

    def quantize(
        self, x: Fixed, node: torch.fx.Node, proxy: nn.Module, index: int = 0, non_negative: bool | None = None
    ) -> Fixed:
        """``x`` quantized by the ``index``-th call of ``proxy`` in ``node`` (``non_negative``: the contract's sign)."""
        desc = self.describe_call(node, proxy, index)
        where = self.proxy_where(node, proxy)
        sign = x.non_negative if non_negative is None else non_negative
        if x.unknown and desc is not None:
            sign = not desc.signed
        grid = self.act_grid(desc, where, sign, proxy)
        if x.unknown:
            return Fixed(x.name, grid, True, x.non_negative, unknown=True)
        if x.grid is None:
            opened = self.open.get(x.origin or x.name)
            if opened is not None:  # the producing node has no output quantizer: this one becomes its vai_quant_out
                if opened.closed is not None and not opened.closed.same(grid):
                    raise self.fail(
                        f"{where} quantizes the output of '{opened.problem.layer}', which {opened.closed.where} "
                        "quantizes differently; a DPU layer has one output fix point",
                        f"give '{opened.problem.layer}' its own output_quant and re-quantize from there",
                    )
                if opened.closed is None:
                    self.set_quant(opened.node, "vai_quant_out", grid)
                    opened.closed = grid
                return Fixed(x.name, grid, True, x.non_negative)
            return Fixed(x.name, grid, False, x.non_negative, x.origin)
        if not x.applied and not x.grid.same(grid):
            raise self.fail(
                f"{where} re-quantizes the output of {x.grid.where}, which no DPU layer computes (a DPU layer "
                "quantizes its input once)",
                f"remove one of the two quantizers, e.g. let this layer read the output of {x.grid.where} as it is",
            )
        if x.applied and x.grid.same(grid):
            return x
        return Fixed(x.name, grid, False, x.non_negative)

    def need_grid(self, x: Fixed, kind: str) -> Grid:
        """The grid a DPU node reads ``x`` with; refuses float tensors."""
        if x.grid is not None:
            return x.grid
        opened = self.open.get(x.origin or x.name)
        if opened is not None:
            raise Unsupported(opened.problem)
        raise self.fail(
            f"{kind} receives a float input; the DPU takes {ACT_BIT_WIDTH}-bit fixed-point activations",
            f"quantize the model's input first: QuantIdentity(act_quant={FIXED_POINT}.Int8ActPerTensorFixedPoint), "
            f"or input_quant={FIXED_POINT}.Int8ActPerTensorFixedPoint on this layer",
        )

    def layer_input(self, node: torch.fx.Node, proxy: nn.Module | None, x: Fixed, kind: str) -> Fixed:
        """``x`` as a layer with input quantizer ``proxy`` reads it (its grid known)."""
        if proxy is not None and getattr(proxy, "tensor_quant", None) is not None:
            x = self.quantize(x, node, proxy)
        self.need_grid(x, kind)
        return x

    # ------------------------------------------------------------------ nodes
    def set_quant(self, node: onnx.NodeProto, key: str, grid: Grid) -> None:
        """Set ``key`` (one of ``vai_quant_*``) on ``node`` and list it in ``vai_quant``."""
        present = {a.name for a in node.attribute if a.name in QUANT_KEYS} | {key}
        keep = [a for a in node.attribute if a.name not in (key, "vai_quant")]
        del node.attribute[:]
        node.attribute.extend(keep)
        node.attribute.append(helper.make_attribute(key, grid.attr))
        node.attribute.append(helper.make_attribute("vai_quant", [k for k in QUANT_KEYS if k in present]))

    def dpu_node(self, op_type: str, inputs: list[str], quant: dict[str, Grid | None], **attrs: Any) -> str:
        """Add a node of domain ``pyxir`` with the ``vai_quant`` attributes of ``quant`` (``None``: left out)."""
        present = {k: g for k, g in quant.items() if g is not None}
        if present:
            attrs["vai_quant"] = [k for k in QUANT_KEYS if k in present]
            attrs.update({k: g.attr for k, g in present.items()})
        return self.g.node(op_type, inputs, self.hint(), domain=DOMAIN, **attrs)

    def node_output(self, name: str, grid: Grid | None, non_negative: bool, kind: str, fix: str) -> str:
        """Register a DPU node's output: quantized on ``grid``, or open for the next quantizer to close."""
        if grid is not None:
            return self.register(Fixed(name, grid, True, non_negative), canonical=True)
        layer = self.where()
        problem = Problem(
            layer,
            f"the output of {kind} is not quantized; the DPU stores the output of every layer as an 8-bit "
            "fixed-point activation",
            fix,
        )
        self.open[name] = _OpenOutput(self.g.producers[name], problem)
        return self.register(Fixed(name, None, True, non_negative, origin=name), canonical=True)

    def finish(self) -> list[Problem]:
        """Every DPU node whose output no quantizer closed (unless a reader reported it already)."""
        return [o.problem for o in self.open.values() if o.closed is None and o.problem not in self.problems]

    def graph_outputs(self, node: torch.fx.Node) -> None:
        seen: set[torch.fx.Node] = set()

        def visit(a: Any) -> None:
            if isinstance(a, (tuple, list)):
                for item in a:
                    visit(item)
            elif isinstance(a, dict):
                for item in a.values():
                    visit(item)
            elif isinstance(a, torch.fx.Node) and a not in seen:
                seen.add(a)
                ref = self.env.get(a)
                if isinstance(ref, Ref) and ref.name != _UNSUPPORTED:
                    try:
                        name = self.output_name(self.fixed_of(ref))
                    except Unsupported as exc:
                        for problem in exc.problems:
                            self.report(problem)
                        name = _UNSUPPORTED
                    self.env[a] = Ref(name, ref.example)

        self._node = node
        visit(node.args[0])
        super().graph_outputs(node)

    def output_name(self, x: Fixed) -> str:
        """The ONNX name of a model output; refuses outputs no DPU node quantizes."""
        if x.unknown:
            return _UNSUPPORTED
        self.need_grid(x, "the model's output")
        if not x.applied:
            raise self.fail(
                f"the model's output is quantized by {x.grid.where if x.grid else '?'}, which is not a DPU layer",
                f"end the model with a DPU layer that quantizes its output (output_quant={FIXED_POINT}."
                "Int8ActPerTensorFixedPoint on the last QuantConv2d / QuantLinear, or a QuantReLU)",
                layer="",
            )
        return x.name

    # ------------------------------------------------------------------ weight layers
    def mod_weight_layer(self, node: torch.fx.Node, module: nn.Module, x: Any, *rest: Any) -> str:
        """``QuantConv2d`` -> ``Conv``, ``QuantLinear`` -> ``Gemm``, with integer weights and biases."""
        kind = type(module).__name__
        is_conv = isinstance(module, nn.Conv2d)
        if not is_conv and not isinstance(module, nn.Linear):
            fix = f"use QuantConv2d or QuantLinear with {FIXED_POINT} quantizers"
            if isinstance(module, (nn.Conv1d, nn.Conv3d)):
                fix = "use QuantConv2d (the DPU convolves 2-D feature maps)"
            raise self.not_on_dpu(kind, fix)
        if rest:
            raise self.fail(f"{kind} called with {len(rest) + 1} inputs", "call it with one tensor")
        layer = self.where()
        checks = _Collect()
        xin = checks.run(self.layer_input, node, module.input_quant, self.fixed_of(x), kind)
        w_proxy = module.weight_quant
        w_calls = self.traced.calls_of(node, w_proxy) if w_proxy.tensor_quant is not None else []
        w_desc = w_calls[0].description if w_calls else None
        checks.add(
            weight_problems(w_desc, layer, kind, self.proxy_where(node, w_proxy), self.scale_restriction(w_proxy))
        )
        b_calls: list[Any] = []
        if module.bias is not None:
            b_proxy = module.bias_quant
            b_calls = self.traced.calls_of(node, b_proxy) if b_proxy.tensor_quant is not None else []
            b_desc = b_calls[0].description if b_calls else None
            restriction = self.scale_restriction(b_proxy)
            checks.add(bias_problems(b_desc, layer, kind, self.proxy_where(node, b_proxy), restriction))
        out_grid = None
        o_proxy = module.output_quant
        if o_proxy.tensor_quant is not None:
            o_desc = self.describe_call(node, o_proxy)
            out_grid = checks.run(self.act_grid, o_desc, self.proxy_where(node, o_proxy), False, o_proxy)
        if is_conv and module.padding_mode != "zeros":
            checks.add(
                [
                    Problem(
                        layer,
                        f"{kind} pads with {module.padding_mode!r}; the DPU pads with zeros",
                        "use padding_mode='zeros'",
                    )
                ]
            )
        if not is_conv and isinstance(x, Ref) and x.rank != 2:
            checks.add(
                [
                    Problem(
                        layer,
                        f"{kind} reads a {x.rank}-D input; the DPU's Gemm reads (batch, features)",
                        "flatten the input first (torch.flatten(x, 1) or nn.Flatten())",
                    )
                ]
            )
        checks.raise_if_any()
        assert xin is not None and xin.grid is not None and w_desc is not None
        w_where = self.proxy_where(node, w_proxy)
        w_grid = Grid.of(w_desc, w_where)
        w_name = self.int_const(w_desc.to_int(w_calls[0].value), w_desc.signed, f"{layer}.weight")
        b_name, b_grid = None, None
        if b_calls:
            b_desc = b_calls[0].description
            b_where = self.proxy_where(node, module.bias_quant)
            b_grid = Grid.of(b_desc, b_where)
            b_name = self.int_const(b_desc.to_int(b_calls[0].value).reshape(-1), b_desc.signed, f"{layer}.bias")
        quant = {
            "vai_quant_in": xin.grid,
            "vai_quant_out": out_grid,
            "vai_quant_weights": w_grid,
            "vai_quant_biases": b_grid,
        }
        if is_conv:
            y = self.conv_node(module, x, xin, w_name, b_name, quant)
        else:
            y = self.dpu_node("Gemm", [xin.name, w_name] + ([b_name] if b_name else []), quant, transB=1)
        fix = f"set output_quant={FIXED_POINT}.Int8ActPerTensorFixedPoint on '{layer}'"
        return self.node_output(y, out_grid, False, kind, fix)

    def int_const(self, ints: torch.Tensor, signed: bool, hint: str) -> str:
        """An integer initializer: int8 for a signed quantizer, uint8 for an unsigned one."""
        dtype = np.int8 if signed else np.uint8
        info = np.iinfo(dtype)
        lo, hi = int(ints.min()), int(ints.max())
        if lo < info.min or hi > info.max:  # pragma: no cover - excluded by the bit-width check
            raise self.fail(f"integer values {lo}..{hi} do not fit {np.dtype(dtype).name}")
        return self.g.const(ints.cpu().numpy().astype(dtype), hint, share=False)

    def conv_node(
        self, module: nn.Module, x: Any, xin: Fixed, w: str, b: str | None, quant: dict[str, Grid | None]
    ) -> str:
        """The DPUv1 ``Conv``: padding in its ``pads`` attribute."""
        n = len(module.kernel_size)
        pads = self.conv_pads(module, x if isinstance(x, Ref) else Ref(xin.name, None))
        return self.dpu_node(
            "Conv",
            [xin.name, w] + ([b] if b else []),
            quant,
            kernel_shape=list(module.kernel_size),
            strides=list(_tuple(module.stride, n)),
            dilations=list(_tuple(module.dilation, n)),
            pads=pads,
            group=int(module.groups),
        )

    # ------------------------------------------------------------------ activations
    def mod_act_layer(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        """``QuantReLU`` -> ``Relu``; ``QuantIdentity`` -> the grid of the tensor (no node)."""
        from brevitas.nn import QuantIdentity, QuantReLU

        kind = type(module).__name__
        for klass in (QuantIdentity, QuantReLU):
            if isinstance(module, klass) and type(module).act_forward is not klass.act_forward:
                raise self.fail(
                    f"{kind} overrides act_forward(); the exporter cannot know what it computes",
                    "use QuantReLU / QuantIdentity as they are",
                )
        if isinstance(module, QuantIdentity):
            return self.standalone_quant(node, module.act_quant, x)
        if isinstance(module, QuantReLU):
            return self.relu(node, self.fixed_of(x), module.input_quant, module.act_quant, kind)
        raise self.not_on_dpu(
            kind,
            f"replace it with QuantReLU(act_quant={FIXED_POINT}.Uint8ActPerTensorFixedPoint) "
            "if the network allows, or run it on the host",
        )

    def standalone_quant(self, node: torch.fx.Node, proxy: nn.Module, x_ref: Any) -> str:
        """A quantizer that is not part of a DPU layer: it sets the grid of its tensor."""
        if getattr(proxy, "tensor_quant", None) is None:
            return self.same(x_ref)
        return self.register(self.quantize(self.fixed_of(x_ref), node, proxy))

    def relu(
        self, node: torch.fx.Node, x: Fixed, input_quant: nn.Module | None, act_quant: nn.Module | None, kind: str
    ) -> str:
        checks = _Collect()
        xin = checks.run(self.layer_input, node, input_quant, x, kind)
        out_grid = None
        if act_quant is not None and act_quant.tensor_quant is not None:
            desc = self.describe_call(node, act_quant)
            out_grid = checks.run(self.act_grid, desc, self.proxy_where(node, act_quant), True, act_quant)
        checks.raise_if_any()
        assert xin is not None and xin.grid is not None
        out_grid = out_grid or xin.grid
        y = self.dpu_node("Relu", [xin.name], {"vai_quant_in": xin.grid, "vai_quant_out": out_grid})
        return self.register(Fixed(y, out_grid, True, True), canonical=True)

    def mod_relu(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.relu(node, self.fixed_of(x), None, None, type(module).__name__)

    def fn_relu(self, node: torch.fx.Node, x: Any, inplace: bool = False) -> str:
        return self.relu(node, self.fixed_of(x), None, None, "relu()")

    def mod_proxy(self, node: torch.fx.Node, module: nn.Module, x: Any, *rest: Any) -> str:
        from brevitas.proxy import ActQuantProxy

        if not isinstance(module, ActQuantProxy) or rest:
            raise self.not_on_dpu(f"{type(module).__name__} called in forward()")
        return self.standalone_quant(node, module, x)

    # ------------------------------------------------------------------ addition
    def mod_eltwise_add(self, node: torch.fx.Node, module: nn.Module, a: Any, b: Any) -> str:
        """``QuantEltwiseAdd`` -> ``Add``: one input grid for both operands, the output quantizer's out."""
        fa, fb = self.fixed_of(a), self.fixed_of(b)
        non_negative = fa.non_negative and fb.non_negative
        iq, oq = module.input_quant, module.output_quant
        checks = _Collect()
        if iq.tensor_quant is not None:
            fa = checks.run(self.quantize, fa, node, iq, 0, non_negative) or fa
            fb = checks.run(self.quantize, fb, node, iq, 1, non_negative) or fb
        out_grid = None
        if oq.tensor_quant is not None:
            index = 2 if oq is iq else 0
            desc = self.describe_call(node, oq, index)
            out_grid = checks.run(self.act_grid, desc, self.proxy_where(node, oq), non_negative, oq)
        checks.raise_if_any()
        kind = type(module).__name__
        fix = f"set output_quant={FIXED_POINT}.{'Uint8' if non_negative else 'Int8'}ActPerTensorFixedPoint"
        return self.add(fa, fb, out_grid, kind, f"{fix} on '{self.where()}'")

    def add(self, a: Fixed, b: Fixed, out_grid: Grid | None, kind: str, fix: str) -> str:
        checks = _Collect()
        ga = checks.run(self.need_grid, a, kind)
        gb = checks.run(self.need_grid, b, kind)
        checks.raise_if_any()
        if not (a.unknown or b.unknown) and not ga.same(gb):
            raise self.fail(
                f"{kind} adds operands on different fixed-point grids ([{ga.bit_width}, {ga.fix_point}] "
                f"{'signed' if ga.signed else 'unsigned'} from {ga.where or 'the input'} and [{gb.bit_width}, "
                f"{gb.fix_point}] {'signed' if gb.signed else 'unsigned'} from {gb.where or 'the input'}); the DPU's "
                "Add reads both with one vai_quant_in",
                f"add with QuantEltwiseAdd(input_quant={FIXED_POINT}.Int8ActPerTensorFixedPoint, "
                f"output_quant={FIXED_POINT}.Int8ActPerTensorFixedPoint)",
            )
        y = self.dpu_node("Add", [a.name, b.name], {"vai_quant_in": ga, "vai_quant_out": out_grid})
        return self.node_output(y, out_grid, a.non_negative and b.non_negative, kind, fix)

    def fn_add(self, node: torch.fx.Node, a: Any, b: Any, alpha: Any = 1) -> str:
        if alpha != 1:
            raise self.not_on_dpu("add() with alpha", "scale an operand with a layer instead")
        fix = (
            f"add with QuantEltwiseAdd(output_quant={FIXED_POINT}.Int8ActPerTensorFixedPoint), or follow the sum "
            f"with QuantIdentity(act_quant={FIXED_POINT}.Int8ActPerTensorFixedPoint)"
        )
        return self.add(self.fixed_of(a), self.fixed_of(b), None, "add()", fix)

    # ------------------------------------------------------------------ pooling
    def mod_passthrough_layer(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        """``QuantMaxPool2d`` -> ``MaxPool``; ``QuantAvgPool2d`` / ``QuantAdaptiveAvgPool2d`` -> average pooling."""
        from brevitas.nn import QuantAdaptiveAvgPool2d, QuantAvgPool2d, QuantDropout, QuantMaxPool2d

        kind = type(module).__name__
        if isinstance(module, QuantDropout):
            return self.same(x)
        if isinstance(module, QuantMaxPool2d):
            return self.mod_max_pool(node, module, x)
        if isinstance(module, (QuantAvgPool2d, QuantAdaptiveAvgPool2d)):
            if isinstance(module, QuantAvgPool2d):
                y = self.mod_avg_pool(node, module, x)
            else:
                y = self.mod_adaptive_avg_pool(node, module, x)
            trunc = module.trunc_quant
            if trunc.tensor_quant is None:
                return y
            where = self.proxy_where(node, trunc)
            desc = self.describe_call(node, trunc)
            if desc is None:
                raise self.fail(f"{where} did not run on a valid QuantTensor", "feed the layer a QuantTensor")
            problems = trunc_problems(desc, where, self.where())
            if problems:
                raise Unsupported(*problems)
            fixed = self.fixed[y]
            grid = Grid.of(desc, where)
            self.set_quant(self.open[fixed.name].node, "vai_quant_out", grid)
            self.open[fixed.name].closed = grid
            return self.register(Fixed(fixed.name, grid, True, fixed.non_negative), canonical=True)
        raise self.not_on_dpu(kind)

    def max_pool(
        self,
        x: Any,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        ceil_mode: bool,
        return_indices: bool,
        kind: str,
    ) -> str:
        fx = self.fixed_of(x)
        rank = self.example(x).dim() if isinstance(x, Ref) else 0
        if rank != 4:
            raise self.not_on_dpu(f"{kind} on a {rank}-D tensor", "pool 2-D feature maps (batch, channels, H, W)")
        if return_indices or ceil_mode:
            what = "return_indices=True" if return_indices else "ceil_mode=True"
            raise self.fail(f"{kind} with {what}; the DPU's MaxPool has no such mode", f"remove {what}")
        if any(d != 1 for d in _tuple(dilation, 2)):
            raise self.fail(f"{kind} with dilation {dilation}; the DPU's MaxPool is not dilated", "use dilation=1")
        grid = self.need_grid(fx, kind)
        k = list(_tuple(kernel_size, 2))
        s = list(_tuple(stride if stride not in (None, []) else kernel_size, 2))
        p = list(_tuple(padding, 2))
        y = self.dpu_node(
            "MaxPool", [fx.name], {"vai_quant_in": grid, "vai_quant_out": grid}, kernel_shape=k, strides=s, pads=p + p
        )
        return self.register(Fixed(y, grid, True, fx.non_negative), canonical=True)

    def mod_max_pool(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.max_pool(
            x,
            module.kernel_size,
            module.stride,
            module.padding,
            module.dilation,
            module.ceil_mode,
            module.return_indices,
            type(module).__name__,
        )

    def fn_max_pool(
        self,
        node: torch.fx.Node,
        x: Any,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        ceil_mode: bool = False,
        return_indices: bool = False,
    ) -> str:
        return self.max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, "max_pool2d()")

    def avg_pool(
        self, x: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool, divisor_override: Any, kind: str
    ) -> str:
        """``AveragePool`` (unpadded, uniform windows), its output left for a quantizer (``trunc_quant``) to close."""
        fx = self.fixed_of(x)
        rank = self.example(x).dim() if isinstance(x, Ref) else 0
        if rank != 4:
            raise self.not_on_dpu(f"{kind} on a {rank}-D tensor", "pool 2-D feature maps (batch, channels, H, W)")
        if ceil_mode or divisor_override is not None or any(v != 0 for v in _tuple(padding, 2)):
            raise self.fail(
                f"{kind} with padding, ceil_mode or divisor_override; the DPU's AveragePool averages whole, "
                "unpadded windows",
                "use padding=0, ceil_mode=False and no divisor_override",
            )
        grid = self.need_grid(fx, kind)
        k = list(_tuple(kernel_size, 2))
        s = list(_tuple(stride if stride not in (None, []) else kernel_size, 2))
        y = self.dpu_node("AveragePool", [fx.name], {"vai_quant_in": grid}, kernel_shape=k, strides=s, pads=[0] * 4)
        return self.node_output(y, None, fx.non_negative, kind, self._avg_fix())

    def _avg_fix(self) -> str:
        return (
            f"use QuantAvgPool2d / QuantAdaptiveAvgPool2d with float_to_int_impl_type='dpu' (its trunc_quant "
            f"quantizes the average), or follow it with QuantIdentity(act_quant={FIXED_POINT}."
            "Int8ActPerTensorFixedPoint)"
        )

    def adaptive_avg_pool(self, x: Any, output_size: Any, kind: str) -> str:
        fx = self.fixed_of(x)
        rank = self.example(x).dim() if isinstance(x, Ref) else 0
        if rank != 4:
            raise self.not_on_dpu(f"{kind} on a {rank}-D tensor", "pool 2-D feature maps (batch, channels, H, W)")
        in_sizes = tuple(self.example(x).shape[-2:])
        outs = tuple(i if o is None else int(o) for i, o in zip(in_sizes, _tuple(output_size, 2)))
        if any(o == 0 or i % o for i, o in zip(in_sizes, outs)):
            raise self.fail(
                f"{kind} from {in_sizes} to {outs} averages windows of different sizes; the DPU's AveragePool "
                "averages one window size",
                "make each input size a multiple of the output size",
            )
        grid = self.need_grid(fx, kind)
        if all(o == 1 for o in outs):
            y = self.dpu_node("GlobalAveragePool", [fx.name], {"vai_quant_in": grid})
        else:
            k = [i // o for i, o in zip(in_sizes, outs)]
            y = self.dpu_node("AveragePool", [fx.name], {"vai_quant_in": grid}, kernel_shape=k, strides=k, pads=[0] * 4)
        return self.node_output(y, None, fx.non_negative, kind, self._avg_fix())

    def mod_avg_pool(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.avg_pool(
            x,
            module.kernel_size,
            module.stride,
            module.padding,
            module.ceil_mode,
            getattr(module, "divisor_override", None),
            type(module).__name__,
        )

    def fn_avg_pool(self, node: torch.fx.Node, x: Any, kernel_size: Any, *args: Any, **kwargs: Any) -> str:
        names = ("stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
        p = {"stride": None, "padding": 0, "ceil_mode": False, "divisor_override": None}
        p.update(dict(zip(names, args)))
        p.update(kwargs)
        return self.avg_pool(
            x, kernel_size, p["stride"], p["padding"], p["ceil_mode"], p["divisor_override"], "avg_pool2d()"
        )

    def mod_adaptive_avg_pool(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.adaptive_avg_pool(x, module.output_size, type(module).__name__)

    def fn_adaptive_avg_pool(self, node: torch.fx.Node, x: Any, output_size: Any) -> str:
        return self.adaptive_avg_pool(x, output_size, "adaptive_avg_pool2d()")

    # ------------------------------------------------------------------ data movement
    def same(self, x: Any) -> str:
        """``x`` passed on unchanged (a graph tensor, never a constant)."""
        self.fixed_of(x)
        return x.name

    def mod_identity(self, node: torch.fx.Node, module: nn.Module, x: Any, *rest: Any) -> str:
        return self.same(x)

    def meth_identity(self, node: torch.fx.Node, x: Any, *args: Any, **kwargs: Any) -> str:
        return self.same(x)

    def fn_dropout(self, node: torch.fx.Node, x: Any, *args: Any, **kwargs: Any) -> str:
        return self.same(x)

    def to_2d(self, node: torch.fx.Node, x: Any, kind: str) -> str:
        """A standard ``Flatten(axis=1)``: the only reshape between DPU nodes (feature map to ``Gemm`` input)."""
        fx = self.fixed_of(x)
        in_shape = tuple(self.example(x).shape)
        out_shape = tuple(tensor_value(self.traced.values[node]).shape)
        if len(in_shape) < 2 or out_shape != (in_shape[0], int(np.prod(in_shape[1:]))):
            raise self.not_on_dpu(
                f"{kind} from {in_shape} to {out_shape}",
                "reshape only to (batch, features), as torch.flatten(x, 1) does, before a QuantLinear",
            )
        if len(in_shape) == 2:
            return self.same(x)
        y = self.g.node("Flatten", [fx.name], self.hint(), axis=1)
        return self.register(Fixed(y, fx.grid, fx.applied, fx.non_negative, fx.origin), canonical=True)

    def mod_flatten(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.to_2d(node, x, type(module).__name__)

    def fn_flatten(self, node: torch.fx.Node, x: Any, start_dim: int = 0, end_dim: int = -1) -> str:
        return self.to_2d(node, x, "flatten()")

    def meth_flatten(self, node: torch.fx.Node, x: Any, start_dim: int = 0, end_dim: int = -1) -> str:
        return self.to_2d(node, x, ".flatten()")

    def meth_reshape(self, node: torch.fx.Node, x: Any, *shape: Any) -> str:
        return self.to_2d(node, x, f".{node.target}()")

    def fn_reshape(self, node: torch.fx.Node, x: Any, shape: Any) -> str:
        return self.to_2d(node, x, "reshape()")

    def fn_getitem(self, node: torch.fx.Node, x: Any, index: Any) -> Any:
        if isinstance(x, Ref):
            raise self.not_on_dpu("indexing a feature map", "slice on the host, outside the DPU graph")
        return super().fn_getitem(node, x, index)


class DPUv2Translator(DPUv1Translator):
    """Translation for the DPUv2: an explicit ``Pad`` (domain ``pyxir``) before each padded ``Conv``."""

    dialect: ClassVar[str] = "pyxir-dpuv2"

    def conv_node(
        self, module: nn.Module, x: Any, xin: Fixed, w: str, b: str | None, quant: dict[str, Grid | None]
    ) -> str:
        """``Pad`` (same grid in and out) then ``Conv`` with ``auto_pad='VALID'``."""
        n = len(module.kernel_size)
        pads = self.conv_pads(module, x if isinstance(x, Ref) else Ref(xin.name, None))
        source = xin.name
        if any(pads):
            grid = quant["vai_quant_in"]
            source = self.dpu_node("Pad", [source], {"vai_quant_in": grid, "vai_quant_out": grid}, pads=pads)
        return self.dpu_node(
            "Conv",
            [source, w] + ([b] if b else []),
            quant,
            kernel_shape=list(module.kernel_size),
            strides=list(_tuple(module.stride, n)),
            dilations=list(_tuple(module.dilation, n)),
            auto_pad="VALID",
            group=int(module.groups),
        )
