"""The float operators of the ONNX translation: ``torch.nn`` layers, functions and tensor methods.

:class:`FloatOps` is a mixin of
:class:`~brevitas_export_onnx.translate.OnnxTranslator`: it holds how every
float operation a quantized model contains becomes ONNX (convolutions,
linear, pooling, activations, reshapes, arithmetic ...), plus the function and
tensor-method tables. It relies on the translator for the graph under
construction (``self.g``), the traced model (``self.traced``), values
(``name_of``, ``example``, ``python``), naming (``hint``), failures
(``fail``) and ``value_op`` (which quantized dialects override to run
reshapes and max pooling on integers).
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from brevitas.export.trace import tensor_value
from brevitas_export_onnx.values import Const, Ref

__all__ = ["FloatOps"]


def _np_dtype(t: Tensor) -> Any:
    return {
        torch.float32: np.float32,
        torch.float64: np.float64,
        torch.float16: np.float16,
        torch.int64: np.int64,
        torch.int32: np.int32,
        torch.bool: np.bool_,
        torch.int8: np.int8,
        torch.uint8: np.uint8,
    }[t.dtype]


def _tuple(v: Any, n: int) -> tuple[Any, ...]:
    if isinstance(v, (tuple, list)):
        return tuple(v) if len(v) == n else tuple(v) * n if len(v) == 1 else tuple(v)
    return (v,) * n


class FloatOps:
    """Translations of the float operations (a mixin of ``OnnxTranslator``; see the module doc)."""

    g: Any
    traced: Any
    opset: int
    dynamic_batch: bool

    def conv(self, module: nn.Module, x: Ref, w: str, b: str | None) -> str:
        n = len(module.kernel_size)
        xin = x.name
        pads = self.conv_pads(module, x)
        if module.padding_mode != "zeros":
            mode = {"reflect": "reflect", "replicate": "edge"}.get(module.padding_mode)
            if mode is None:
                raise self.fail(
                    f"padding_mode={module.padding_mode!r} has no ONNX form", "use 'zeros', 'reflect' or 'replicate'"
                )
            full = [0, 0, *pads[:n], 0, 0, *pads[n:]]
            xin = self.g.node("Pad", [xin, self.g.const(np.array(full, np.int64), "pads")], self.hint(), mode=mode)
            pads = [0] * (2 * n)
        inputs = [xin, w] + ([b] if b is not None else [])
        return self.g.node(
            "Conv",
            inputs,
            self.hint(),
            kernel_shape=list(module.kernel_size),
            strides=list(_tuple(module.stride, n)),
            dilations=list(_tuple(module.dilation, n)),
            pads=pads,
            group=int(module.groups),
        )

    def conv_pads(self, module: nn.Module, x: Ref) -> list[int]:
        """ONNX ``pads`` (begins then ends) of a convolution."""
        n = len(module.kernel_size)
        padding = module.padding
        if isinstance(padding, str):
            if padding == "valid":
                return [0] * (2 * n)
            dil = _tuple(module.dilation, n)
            total = [d * (k - 1) for d, k in zip(dil, module.kernel_size)]
            begins = [t // 2 for t in total]
            return begins + [t - bb for t, bb in zip(total, begins)]
        p = list(_tuple(padding, n))
        return p + p

    def conv_transpose(self, module: nn.Module, x: Ref, w: str, b: str | None) -> str:
        n = len(module.kernel_size)
        if module.padding_mode != "zeros":
            raise self.fail("transposed convolutions support padding_mode='zeros' only", "use padding_mode='zeros'")
        p = list(_tuple(module.padding, n))
        inputs = [x.name, w] + ([b] if b is not None else [])
        return self.g.node(
            "ConvTranspose",
            inputs,
            self.hint(),
            kernel_shape=list(module.kernel_size),
            strides=list(_tuple(module.stride, n)),
            dilations=list(_tuple(module.dilation, n)),
            pads=p + p,
            output_padding=list(_tuple(module.output_padding, n)),
            group=int(module.groups),
        )

    def linear(self, x: Ref, w: str, b: str | None, out_features: int) -> str:
        """``x @ w.T + b``: ``Gemm`` for 2-D inputs, ``MatMul`` + ``Add`` otherwise."""
        if x.rank == 2:
            return self.g.node("Gemm", [x.name, w] + ([b] if b is not None else []), self.hint(), transB=1)
        wt = self.g.node("Transpose", [w], self.hint(), perm=[1, 0])
        y = self.g.node("MatMul", [x.name, wt], self.hint())
        if b is not None:
            y = self.g.node("Add", [y, b], self.hint())
        return y

    def reshape_to(self, x: Any, out_shape: Sequence[int]) -> str:
        """Reshape keeping the batch symbolic: ``0`` when dimension 0 is kept, ``-1`` when it is merged."""
        in_shape = self.example(x).shape
        target = [int(s) for s in out_shape]
        if target and in_shape and len(in_shape) > 0:
            if target[0] == in_shape[0]:
                target[0] = 0
            elif self.dynamic_batch:
                target[0] = -1
        shape = self.g.const(np.array(target, dtype=np.int64), "shape")
        return self.value_op(x, lambda n: self.g.node("Reshape", [n, shape], self.hint()), keeps_axes=False)

    def pool(
        self,
        kind: str,
        x: Any,
        n: int,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        dilation: Any = 1,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: Any = None,
    ) -> str:
        if divisor_override is not None:
            raise self.fail("average pooling with divisor_override has no ONNX form", "remove divisor_override")
        k = list(_tuple(kernel_size, n))
        s = list(_tuple(stride if stride not in (None, []) else kernel_size, n))
        p = list(_tuple(padding, n))
        attrs: dict[str, Any] = {"kernel_shape": k, "strides": s, "pads": p + p, "ceil_mode": int(bool(ceil_mode))}
        if kind == "MaxPool":
            d = list(_tuple(dilation, n))
            if any(v != 1 for v in d):
                attrs["dilations"] = d
        else:
            attrs["count_include_pad"] = int(bool(count_include_pad))
        if kind == "MaxPool":  # selects values: runs on integers as well
            return self.value_op(x, lambda n: self.g.node(kind, [n], self.hint(), **attrs), keeps_axes=True)
        return self.g.node(kind, [self.name_of(x)], self.hint(), **attrs)

    def adaptive_pool(self, kind: str, x: Any, n: int, output_size: Any) -> str:
        in_sizes = tuple(self.example(x).shape[-n:])
        outs = tuple(i if o is None else int(o) for i, o in zip(in_sizes, _tuple(output_size, n)))
        if all(o == 1 for o in outs):
            return self.g.node("Global" + kind, [self.name_of(x)], self.hint())
        if any(o == 0 or i % o for i, o in zip(in_sizes, outs)):
            raise self.fail(
                f"adaptive pooling from {in_sizes} to {outs} has windows of different sizes (no ONNX form)",
                "make each input size a multiple of the output size",
            )
        k = [i // o for i, o in zip(in_sizes, outs)]
        return self.g.node(kind, [self.name_of(x)], self.hint(), kernel_shape=k, strides=k, pads=[0] * (2 * n))

    def clip(self, x: Any, lo: float | None, hi: float | None) -> str:
        ins = [self.name_of(x)]
        ins.append(self.g.const(np.float32(lo), "clip_min") if lo is not None else "")
        if hi is not None:
            ins.append(self.g.const(np.float32(hi), "clip_max"))
        while ins and ins[-1] == "":
            ins.pop()
        return self.g.node("Clip", ins, self.hint())

    # ------------------------------------------------------------------ torch.nn modules
    def mod_conv(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        w = self.g.const(module.weight.detach().float().cpu().numpy(), f"{self.hint()}.weight")
        b = None if module.bias is None else self.g.const(module.bias.detach().float().cpu().numpy(), "bias")
        return self.weight_op(node, module, x if isinstance(x, Ref) else Ref(self.name_of(x), self.example(x)), w, b)

    mod_linear = mod_conv

    def mod_batch_norm(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        if module.running_mean is None:
            raise self.fail(
                "batch norm without running statistics uses batch statistics at inference", "track_running_stats=True"
            )
        c = module.num_features
        w = module.weight.detach() if module.weight is not None else torch.ones(c)
        b = module.bias.detach() if module.bias is not None else torch.zeros(c)
        hint = self.hint()
        ins = [
            self.name_of(x),
            self.g.const(w.float().cpu().numpy(), f"{hint}.weight"),
            self.g.const(b.float().cpu().numpy(), f"{hint}.bias"),
            self.g.const(module.running_mean.detach().float().cpu().numpy(), f"{hint}.running_mean"),
            self.g.const(module.running_var.detach().float().cpu().numpy(), f"{hint}.running_var"),
        ]
        return self.g.node("BatchNormalization", ins, hint, epsilon=float(module.eps))

    def mod_identity(self, node: torch.fx.Node, module: nn.Module, x: Any, *rest: Any) -> Any:
        return x if isinstance(x, Ref) else self.name_of(x)

    def mod_relu(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.g.node("Relu", [self.name_of(x)], self.hint())

    def mod_relu6(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.clip(x, 0.0, 6.0)

    def mod_hardtanh(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.clip(x, float(module.min_val), float(module.max_val))

    def mod_sigmoid(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.g.node("Sigmoid", [self.name_of(x)], self.hint())

    def mod_tanh(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.g.node("Tanh", [self.name_of(x)], self.hint())

    def mod_leaky_relu(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.g.node("LeakyRelu", [self.name_of(x)], self.hint(), alpha=float(module.negative_slope))

    def mod_softmax(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        dim = module.dim if module.dim is not None else -1
        return self.g.node("Softmax", [self.name_of(x)], self.hint(), axis=int(dim))

    def mod_max_pool(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        if module.return_indices:
            raise self.fail("max pooling with return_indices=True has no translation", "set return_indices=False")
        n = self.example(x).dim() - 2
        return self.pool(
            "MaxPool", x, n, module.kernel_size, module.stride, module.padding, module.dilation, module.ceil_mode
        )

    def mod_avg_pool(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        n = self.example(x).dim() - 2
        return self.pool(
            "AveragePool",
            x,
            n,
            module.kernel_size,
            module.stride,
            module.padding,
            1,
            module.ceil_mode,
            module.count_include_pad,
            getattr(module, "divisor_override", None),
        )

    def mod_adaptive_avg_pool(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.adaptive_pool("AveragePool", x, self.example(x).dim() - 2, module.output_size)

    def mod_adaptive_max_pool(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        if module.return_indices:
            raise self.fail("max pooling with return_indices=True has no translation", "set return_indices=False")
        return self.adaptive_pool("MaxPool", x, self.example(x).dim() - 2, module.output_size)

    def mod_flatten(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.flatten(node, x, module.start_dim, module.end_dim)

    def mod_upsample(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        return self.resize(node, x, module.mode, module.align_corners)

    def resize(self, node: torch.fx.Node, x: Any, mode: str, align_corners: bool | None) -> str:
        out_shape = tensor_value(self.traced.values[node]).shape
        in_shape = self.example(x).shape
        scales = np.array([o / i for o, i in zip(out_shape, in_shape)], dtype=np.float32)
        scales[0] = 1.0
        if mode == "nearest":
            attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
        elif mode in ("linear", "bilinear", "trilinear"):
            ctm = "align_corners" if align_corners else "pytorch_half_pixel"
            attrs = {"mode": "linear", "coordinate_transformation_mode": ctm}
        else:
            raise self.fail(f"upsampling mode {mode!r} has no translation", "use 'nearest' or '(bi)linear'")
        ins = [self.name_of(x), "", self.g.const(scales, "scales")]
        return self.g.node("Resize", ins, self.hint(), **attrs)

    # ------------------------------------------------------------------ functions
    def flatten(self, node: torch.fx.Node, x: Any, start_dim: int = 0, end_dim: int = -1) -> str:
        rank = self.example(x).dim()
        start, end = int(start_dim) % rank, int(end_dim) % rank
        if start == 1 and end == rank - 1:
            return self.value_op(x, lambda n: self.g.node("Flatten", [n], self.hint(), axis=1), keeps_axes=False)
        return self.reshape_to(x, tensor_value(self.traced.values[node]).shape)

    def fn_flatten(self, node: torch.fx.Node, x: Any, start_dim: int = 0, end_dim: int = -1) -> str:
        return self.flatten(node, x, start_dim, end_dim)

    def meth_flatten(self, node: torch.fx.Node, x: Any, start_dim: int = 0, end_dim: int = -1) -> str:
        return self.flatten(node, x, start_dim, end_dim)

    def meth_reshape(self, node: torch.fx.Node, x: Any, *shape: Any) -> str:
        return self.reshape_to(x, tensor_value(self.traced.values[node]).shape)

    def fn_reshape(self, node: torch.fx.Node, x: Any, shape: Any) -> str:
        return self.reshape_to(x, tensor_value(self.traced.values[node]).shape)

    def meth_identity(self, node: torch.fx.Node, x: Any, *args: Any, **kwargs: Any) -> Any:
        return x

    def meth_to(self, node: torch.fx.Node, x: Any, *args: Any, **kwargs: Any) -> Any:
        out = tensor_value(self.traced.values[node])
        if out.dtype != self.example(x).dtype:
            raise self.fail(f"casting to {out.dtype} is not supported", "keep the model in float32")
        return x

    def meth_python(self, node: torch.fx.Node, *args: Any, **kwargs: Any) -> Any:
        """Shape queries (``size``, ``dim``, ``.shape``): their example value, as a Python constant."""
        return Const(self.traced.values[node])

    def fn_getattr(self, node: torch.fx.Node, x: Any, attr: str, *default: Any) -> Any:
        if attr == "value":
            return x
        return Const(self.traced.values[node])

    def fn_getitem(self, node: torch.fx.Node, x: Any, index: Any) -> Any:
        if not isinstance(x, Ref):
            return Const(self.traced.values[node])
        return self.slice(node, x, index)

    def slice(self, node: torch.fx.Node, x: Ref, index: Any) -> str:
        """Basic indexing (integers and slices) of a tensor."""
        idx = index if isinstance(index, tuple) else (index,)
        shape = x.shape
        starts, ends, axes, steps, squeeze = [], [], [], [], []
        dim = 0
        for item in idx:
            item = self.python(item)
            if item is Ellipsis:
                dim = len(shape) - (len(idx) - 1 - idx.index(item))
                continue
            if isinstance(item, int):
                starts.append(item)
                ends.append(item + 1 if item != -1 else np.iinfo(np.int64).max)
                axes.append(dim)
                steps.append(1)
                squeeze.append(dim)
            elif isinstance(item, slice):
                if item != slice(None):
                    start = 0 if item.start is None else int(item.start)
                    stop = np.iinfo(np.int64).max if item.stop is None else int(item.stop)
                    starts.append(start)
                    ends.append(stop)
                    axes.append(dim)
                    steps.append(1 if item.step is None else int(item.step))
            else:
                raise self.fail(f"indexing with {type(item).__name__} is not supported", "use integers and slices")
            dim += 1
        if 0 in axes and self.dynamic_batch:
            raise self.fail("indexing the batch dimension is not supported", "index the other dimensions only")
        def build(y: str) -> str:
            if axes:
                ins = [y] + [self.g.const(np.array(v, np.int64), "slice") for v in (starts, ends, axes, steps)]
                y = self.g.node("Slice", ins, self.hint())
            if squeeze:
                y = self.g.node("Squeeze", [y, self.g.const(np.array(squeeze, np.int64), "axes")], self.hint())
            return y

        return self.value_op(x, build, keeps_axes=False)

    def binary(self, op: str, a: Any, b: Any) -> str:
        like = a if isinstance(a, Ref) else b if isinstance(b, Ref) else None
        return self.g.node(op, [self.name_of(a, like=like), self.name_of(b, like=like)], self.hint())

    def fn_add(self, node: torch.fx.Node, a: Any, b: Any, alpha: Any = 1) -> str:
        if alpha != 1:
            b = Ref(self.binary("Mul", b, float(alpha)), self.example(b))
        return self.binary("Add", a, b)

    def fn_sub(self, node: torch.fx.Node, a: Any, b: Any, alpha: Any = 1) -> str:
        if alpha != 1:
            b = Ref(self.binary("Mul", b, float(alpha)), self.example(b))
        return self.binary("Sub", a, b)

    def fn_mul(self, node: torch.fx.Node, a: Any, b: Any) -> str:
        return self.binary("Mul", a, b)

    def fn_div(self, node: torch.fx.Node, a: Any, b: Any, rounding_mode: Any = None) -> str:
        if rounding_mode is not None:
            raise self.fail(f"division with rounding_mode={rounding_mode!r} is not supported", "use plain division")
        return self.binary("Div", a, b)

    def fn_neg(self, node: torch.fx.Node, a: Any) -> str:
        return self.g.node("Neg", [self.name_of(a)], self.hint())

    def fn_cat(self, node: torch.fx.Node, tensors: Any, dim: int = 0) -> str:
        items = list(tensors)
        rank = self.example(items[0]).dim()
        like = next((t for t in items if isinstance(t, Ref)), None)
        return self.g.node("Concat", [self.name_of(t, like=like) for t in items], self.hint(), axis=int(dim) % rank)

    def fn_relu(self, node: torch.fx.Node, x: Any, inplace: bool = False) -> str:
        return self.g.node("Relu", [self.name_of(x)], self.hint())

    def fn_sigmoid(self, node: torch.fx.Node, x: Any) -> str:
        return self.g.node("Sigmoid", [self.name_of(x)], self.hint())

    def fn_tanh(self, node: torch.fx.Node, x: Any) -> str:
        return self.g.node("Tanh", [self.name_of(x)], self.hint())

    def fn_hardtanh(self, node: torch.fx.Node, x: Any, min_val: float = -1.0, max_val: float = 1.0, inplace=False):
        return self.clip(x, float(min_val), float(max_val))

    def fn_relu6(self, node: torch.fx.Node, x: Any, inplace: bool = False) -> str:
        return self.clip(x, 0.0, 6.0)

    def fn_clamp(self, node: torch.fx.Node, x: Any, min: Any = None, max: Any = None) -> str:
        return self.clip(x, None if min is None else float(min), None if max is None else float(max))

    def fn_dropout(self, node: torch.fx.Node, x: Any, *args: Any, **kwargs: Any) -> Any:
        return x

    def fn_max_pool(self, node: torch.fx.Node, x: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
                    dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> str:  # fmt: skip
        if return_indices:
            raise self.fail("max pooling with return_indices=True has no translation", "set return_indices=False")
        n = self.example(x).dim() - 2
        return self.pool("MaxPool", x, n, kernel_size, stride, padding, dilation, ceil_mode)

    def fn_avg_pool(self, node: torch.fx.Node, x: Any, kernel_size: Any, *args: Any, **kwargs: Any) -> str:
        names = ("stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
        params = {"stride": None, "padding": 0, "ceil_mode": False, "count_include_pad": True, "divisor_override": None}
        params.update(dict(zip(names, args)))
        params.update(kwargs)
        n = self.example(x).dim() - 2
        p = params
        return self.pool("AveragePool", x, n, kernel_size, p["stride"], p["padding"], 1, p["ceil_mode"],
                         p["count_include_pad"], p["divisor_override"])  # fmt: skip

    def fn_adaptive_avg_pool(self, node: torch.fx.Node, x: Any, output_size: Any) -> str:
        return self.adaptive_pool("AveragePool", x, self.example(x).dim() - 2, output_size)

    def fn_mean(self, node: torch.fx.Node, x: Any, dim: Any = None, keepdim: bool = False, **kw: Any) -> str:
        return self.reduce("ReduceMean", x, dim, keepdim)

    def fn_sum(self, node: torch.fx.Node, x: Any, dim: Any = None, keepdim: bool = False, **kw: Any) -> str:
        return self.reduce("ReduceSum", x, dim, keepdim)

    def reduce(self, op: str, x: Any, dim: Any, keepdim: bool) -> str:
        rank = self.example(x).dim()
        dims = list(range(rank)) if dim is None else [int(d) % rank for d in _tuple(self.python(dim), 1)]
        if 0 in dims and self.dynamic_batch:
            raise self.fail(f"{op} over the batch dimension is not supported", "reduce over the other dimensions")
        keep = int(bool(keepdim))
        if op == "ReduceSum" or self.opset >= 18:
            axes = self.g.const(np.array(dims, np.int64), "axes")
            return self.g.node(op, [self.name_of(x), axes], self.hint(), keepdims=keep)
        return self.g.node(op, [self.name_of(x)], self.hint(), axes=dims, keepdims=keep)

    def fn_transpose(self, node: torch.fx.Node, x: Any, dim0: int, dim1: int) -> str:
        rank = self.example(x).dim()
        perm = list(range(rank))
        a, b = int(dim0) % rank, int(dim1) % rank
        perm[a], perm[b] = perm[b], perm[a]
        return self.permute_to(x, perm)

    def meth_permute(self, node: torch.fx.Node, x: Any, *dims: Any) -> str:
        perm = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else list(dims)
        rank = self.example(x).dim()
        return self.permute_to(x, [int(p) % rank for p in perm])

    def permute_to(self, x: Any, perm: list[int]) -> str:
        if perm and perm[0] != 0 and self.dynamic_batch:
            raise self.fail("moving the batch dimension is not supported", "keep dimension 0 in place")
        return self.value_op(x, lambda n: self.g.node("Transpose", [n], self.hint(), perm=perm), keeps_axes=False)

    def fn_squeeze(self, node: torch.fx.Node, x: Any, dim: Any = None) -> str:
        out = tensor_value(self.traced.values[node]).shape
        return self.reshape_to(x, out)

    fn_unsqueeze = fn_squeeze

    def fn_linear(self, node: torch.fx.Node, x: Any, weight: Any, bias: Any = None) -> str:
        w = self.name_of(weight, "weight")
        b = None if bias is None else self.name_of(bias, "bias")
        xr = x if isinstance(x, Ref) else Ref(self.name_of(x), self.example(x))
        return self.linear(xr, w, b, int(self.example(weight).shape[0]))

    def fn_softmax(self, node: torch.fx.Node, x: Any, dim: Any = None, **kw: Any) -> str:
        return self.g.node("Softmax", [self.name_of(x)], self.hint(), axis=int(-1 if dim is None else dim))


_FUNCTIONS: dict[Any, str] = {
    operator.add: "fn_add",
    operator.iadd: "fn_add",
    torch.add: "fn_add",
    operator.sub: "fn_sub",
    torch.sub: "fn_sub",
    operator.mul: "fn_mul",
    operator.imul: "fn_mul",
    torch.mul: "fn_mul",
    operator.truediv: "fn_div",
    torch.div: "fn_div",
    operator.neg: "fn_neg",
    torch.neg: "fn_neg",
    torch.cat: "fn_cat",
    torch.concat: "fn_cat",
    torch.flatten: "fn_flatten",
    torch.reshape: "fn_reshape",
    torch.relu: "fn_relu",
    F.relu: "fn_relu",
    torch.sigmoid: "fn_sigmoid",
    F.sigmoid: "fn_sigmoid",
    torch.tanh: "fn_tanh",
    F.tanh: "fn_tanh",
    F.hardtanh: "fn_hardtanh",
    F.relu6: "fn_relu6",
    torch.clamp: "fn_clamp",
    torch.clip: "fn_clamp",
    F.dropout: "fn_dropout",
    F.max_pool1d: "fn_max_pool",
    F.max_pool2d: "fn_max_pool",
    F.max_pool3d: "fn_max_pool",
    F.avg_pool1d: "fn_avg_pool",
    F.avg_pool2d: "fn_avg_pool",
    F.avg_pool3d: "fn_avg_pool",
    F.adaptive_avg_pool1d: "fn_adaptive_avg_pool",
    F.adaptive_avg_pool2d: "fn_adaptive_avg_pool",
    F.adaptive_avg_pool3d: "fn_adaptive_avg_pool",
    torch.mean: "fn_mean",
    torch.sum: "fn_sum",
    torch.transpose: "fn_transpose",
    torch.squeeze: "fn_squeeze",
    torch.unsqueeze: "fn_unsqueeze",
    F.linear: "fn_linear",
    F.softmax: "fn_softmax",
    torch.softmax: "fn_softmax",
    builtins.getattr: "fn_getattr",
    operator.getitem: "fn_getitem",
}

_METHODS: dict[str, str] = {
    "view": "meth_reshape",
    "reshape": "meth_reshape",
    "flatten": "meth_flatten",
    "permute": "meth_permute",
    "transpose": "fn_transpose",
    "contiguous": "meth_identity",
    "detach": "meth_identity",
    "clone": "meth_identity",
    "float": "meth_to",
    "to": "meth_to",
    "size": "meth_python",
    "dim": "meth_python",
    "relu": "fn_relu",
    "sigmoid": "fn_sigmoid",
    "tanh": "fn_tanh",
    "add": "fn_add",
    "sub": "fn_sub",
    "mul": "fn_mul",
    "div": "fn_div",
    "mean": "fn_mean",
    "sum": "fn_sum",
    "squeeze": "fn_squeeze",
    "unsqueeze": "fn_unsqueeze",
    "clamp": "fn_clamp",
    "softmax": "fn_softmax",
}

