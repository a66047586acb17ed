"""The ``onnx-qop`` exporter: QOperator form (QLinearConv, QLinearMatMul) for 8-bit layers.

A convolution or linear layer whose input, weight and output are all 8-bit
integer quantized becomes one integer operator:

- ``QuantizeLinear(x) -> QLinearConv(x_q, w_q, bias_int32) -> DequantizeLinear``;
- ``QLinearMatMul`` for a linear layer without bias; with a bias (which
  QLinearMatMul cannot add before requantizing) ``MatMulInteger`` + the int32
  bias, rescaled by ``input scale x weight scale`` and quantized to the output.

Consecutive layers hand integers to each other: a ``QuantizeLinear`` whose
input is the ``DequantizeLinear`` of the same grid is skipped, and max
pooling runs on the integers. Activation quantizers are ``QuantizeLinear`` /
``DequantizeLinear`` pairs (``Clip`` for narrow ranges); float operators in
between run on dequantized values, as in the QCDQ form.

What the QOperator form needs, and the check reports for each layer that
lacks it: an input quantizer (or a QuantTensor input) and an output
quantizer, 8-bit per-tensor activations rounding half to even, 8-bit weights
with a zero zero-point (per tensor or per output channel), and a bias that
is either absent or quantized on the accumulator grid (``Int32Bias``,
``Int8Bias``...: scale = input scale x weight scale).

Example:
    >>> import torch
    >>> import brevitas.export as bx
    >>> from brevitas.nn import QuantConv2d
    >>> from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int32Bias
    >>> conv = QuantConv2d(3, 4, 3, input_quant=Int8ActPerTensorFloat, output_quant=Int8ActPerTensorFloat,
    ...                    bias_quant=Int32Bias)
    >>> onnx_model = bx.export(conv, torch.randn(1, 3, 8, 8), exporter="onnx-qop")
    >>> [n.op_type for n in onnx_model.graph.node]
    ['QuantizeLinear', 'QLinearConv', 'DequantizeLinear']
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.fx
from torch import nn

from brevitas.export.base import Problem
from brevitas.export.description import QuantDescription, describe_quant_tensor
from brevitas_export_onnx.exporter import OnnxExporter
from brevitas_export_onnx.float_ops import _tuple
from brevitas_export_onnx.qcdq import IntTensor, QCDQTranslator, np_storage, storage_range
from brevitas_export_onnx.translate import Ref, Unsupported

__all__ = ["QOpExporter", "QOpTranslator"]


class QOpTranslator(QCDQTranslator):
    """Translation to the QOperator form (see the module doc)."""

    dialect = "onnx-qop"
    OPTIONS: ClassVar[dict[str, Any]] = {}

    # ------------------------------------------------------------------ 8 bits everywhere
    def eight_bit_problems(self, desc: QuantDescription | None, where: str, what: str, fix: str) -> list[Problem]:
        """Why ``desc`` is not an 8-bit integer quantizer QOperator kernels take (empty when it is)."""
        layer = self.where()
        if desc is None:
            return []
        out = []
        if desc.quant_type != "int" or desc.bit_width != 8:
            kind = f"{desc.bit_width}-bit" if desc.quant_type == "int" else desc.quant_type
            out.append(
                Problem(layer, f"{where} is {kind}; the QOperator form takes 8-bit {what} only", fix)
            )
        if desc.rounding_mode != "ROUND":
            out.append(
                Problem(layer, f"{where} rounds with {desc.rounding_mode}; QuantizeLinear rounds half to even",
                        "use float_to_int_impl_type='round'")  # fmt: skip
            )
        return out

    def check_act(self, desc: QuantDescription, where: str) -> None:
        problems = self.eight_bit_problems(
            desc, where, "activations", "use an 8-bit activation quantizer (bit_width=8), or export with onnx-qcdq"
        )
        if problems:
            raise Unsupported(*problems)
        super().check_act(desc, where)

    # ------------------------------------------------------------------ weight layers
    def input_description(self, node: torch.fx.Node, module: nn.Module, x: Any) -> QuantDescription | None:
        """The grid of the layer's input: its input quantizer, or the QuantTensor it receives."""
        proxy = module.input_quant
        if proxy.tensor_quant is not None:
            return self.describe_call(node, proxy)
        if isinstance(x, Ref):
            return describe_quant_tensor(x.example)
        return None

    def mod_weight_layer(self, node: torch.fx.Node, module: nn.Module, x: Any, *rest: Any) -> str:
        layer = self.where()
        in_desc = self.input_description(node, module, x)
        out_proxy = module.output_quant
        out_desc = self.describe_call(node, out_proxy) if out_proxy.tensor_quant is not None else None
        w_proxy, b_proxy = module.weight_quant, module.bias_quant
        w_calls = self.traced.calls_of(node, w_proxy)
        w_desc = w_calls[0].description if w_calls else None
        b_calls = self.traced.calls_of(node, b_proxy)
        b_desc = b_calls[0].description if (b_calls and module.bias is not None) else None
        kind = type(module).__name__
        problems: list[Problem] = []
        if in_desc is None:
            problems.append(
                Problem(
                    layer,
                    f"{kind} has no input quantizer; the QOperator form takes a quantized 8-bit input",
                    "add input_quant=Int8ActPerTensorFloat to the layer (or feed it the QuantTensor of an 8-bit "
                    "quantizer with return_quant_tensor=True)",
                )
            )
        if out_desc is None:
            problems.append(
                Problem(
                    layer,
                    f"{kind} has no output quantizer; QLinearConv / QLinearMatMul produce a quantized 8-bit output",
                    "add output_quant=Int8ActPerTensorFloat to the layer",
                )
            )
        if w_desc is None:
            problems.append(
                Problem(layer, f"{kind} has a float weight; the QOperator form takes 8-bit integer weights",
                        "set weight_quant=Int8WeightPerTensorFloat (or Int8WeightPerChannelFloat)")  # fmt: skip
            )
        act_fix = "use an 8-bit activation quantizer (bit_width=8), or export with onnx-qcdq"
        in_name = f"{layer}.input_quant" if module.input_quant.tensor_quant is not None else (
            f"the QuantTensor input of {layer}")  # fmt: skip
        for desc, what in ((in_desc, in_name), (out_desc, f"{layer}.output_quant")):
            problems += self.eight_bit_problems(desc, what, "activations", act_fix)
            if desc is not None and not desc.is_per_tensor:
                problems.append(
                    Problem(layer, f"{what} is per-channel; QLinearConv / QLinearMatMul take a per-tensor "
                            "activation scale", "use a per-tensor activation quantizer")  # fmt: skip
                )
        problems += self.eight_bit_problems(
            w_desc, f"{layer}.weight_quant", "weights", "use weight_bit_width=8 (e.g. Int8WeightPerTensorFloat)"
        )
        if w_desc is not None and not w_desc.has_zero_zero_point:
            problems.append(
                Problem(layer, f"{layer}.weight_quant has a zero-point; integer kernels need symmetric weights",
                        "use a symmetric weight quantizer such as Int8WeightPerTensorFloat")  # fmt: skip
            )
        qlinear = isinstance(module, nn.Linear) or (
            isinstance(module, nn.modules.conv._ConvNd) and not isinstance(module, nn.modules.conv._ConvTransposeNd)
        )
        if module.bias is not None and qlinear:  # the others are quantized around a float op: any bias works
            problems += self.bias_problems(layer, in_desc, w_desc, b_desc, b_proxy)
        if problems:
            raise Unsupported(*problems)
        assert in_desc is not None and out_desc is not None and w_desc is not None
        if qlinear and not isinstance(module, nn.Linear):
            return self.qlinear_conv(node, module, x, in_desc, w_calls[0].value, w_desc, b_calls, out_desc)
        if isinstance(module, nn.Linear):
            return self.qlinear_matmul(node, module, x, in_desc, w_calls[0].value, w_desc, b_calls, out_desc)
        # no standard QLinear operator (transposed convolution, scale-bias): quantize around the float op
        return self.qdq_weight_layer(node, module, x, in_desc, out_desc)

    def bias_problems(
        self,
        layer: str,
        in_desc: QuantDescription | None,
        w_desc: QuantDescription | None,
        b_desc: QuantDescription | None,
        b_proxy: nn.Module,
    ) -> list[Problem]:
        """Why the bias cannot be added in the int32 accumulator (empty when it can)."""
        fix = "use bias_quant=Int32Bias (scale = input scale x weight scale)"
        if b_desc is None:
            return [Problem(layer, "the bias is float; QLinearConv adds an int32 bias in the accumulator", fix)]
        if b_desc.quant_type != "int" or b_desc.bit_width > 32 or not b_desc.has_zero_zero_point:
            return [Problem(layer, f"{layer}.bias_quant is {b_desc.describe()}; the accumulator bias is int32", fix)]
        if in_desc is None or w_desc is None:
            return []
        expected = (in_desc.scale.reshape(()) * w_desc.flat_scale()).reshape(-1)
        got = b_desc.flat_scale().reshape(-1)
        if got.numel() == 1 and expected.numel() > 1:
            got = got.expand_as(expected)
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-6, atol=0.0):
            return [
                Problem(layer, f"{layer}.bias_quant has its own scale; the accumulator needs scale = input scale x "
                        "weight scale", fix)  # fmt: skip
            ]
        return []

    def weight_int(self, value: torch.Tensor, desc: QuantDescription, where: str, transpose: bool = False) -> tuple:
        """Integer weight (int8) initializer and its scale / zero-point names (1-D per output channel)."""
        ints = desc.to_int(value)
        if transpose:
            ints = ints.t()
        dtype = "int8" if desc.signed else "uint8"
        lo, hi = storage_range(dtype)
        if int(ints.min()) < lo or int(ints.max()) > hi:
            dtype = "int8" if int(ints.min()) < 0 else "uint8"
        q = self.g.const(ints.cpu().numpy(), f"{where}.int", dtype=np_storage(dtype), share=False)
        s, z = self.scale_zero_point(desc, dtype, where)
        return q, s, z

    def bias_int(self, b_calls: list[Any], where: str) -> str | None:
        if not b_calls or b_calls[0].description is None:
            return None
        desc = b_calls[0].description
        ints = desc.to_int(b_calls[0].value).reshape(-1)
        return self.g.const(ints.cpu().numpy(), f"{where}.int", dtype=np.int32, share=False)

    def input_int(self, x: Any, in_desc: QuantDescription, out_dtype: str, where: str) -> tuple[str, str, str]:
        """The layer input as integers of the output's type (QLinearConv / QLinearMatMul take x and y alike).

        An int8 input feeding a uint8 output (or the reverse) is re-expressed
        on the same grid with the zero-point shifted by 128: exact, since the
        values are already on the grid.
        """
        xq, xs, xz, dtype = self.quantize_to_int(self.name_of(x), in_desc, where)
        if dtype == out_dtype:
            return xq, xs, xz
        xf = self.g.node("DequantizeLinear", [xq, xs, xz], where)
        shift = 128 if out_dtype == "uint8" else -128
        zp = torch.round(in_desc.flat_zero_point()).cpu().numpy().astype(np.int64) + shift
        z2 = self.g.const(zp, f"{where}.zero_point_{out_dtype}", dtype=np_storage(out_dtype))
        return self.g.node("QuantizeLinear", [xf, xs, z2], where), xs, z2

    def qlinear_conv(
        self,
        node: torch.fx.Node,
        module: nn.Module,
        x: Any,
        in_desc: QuantDescription,
        w_value: torch.Tensor,
        w_desc: QuantDescription,
        b_calls: list[Any],
        out_desc: QuantDescription,
    ) -> str:
        layer = self.where()
        if module.padding_mode != "zeros":
            raise self.fail("QLinearConv pads with zeros only", "use padding_mode='zeros'")
        ys_dtype = "int8" if out_desc.signed else "uint8"
        xq, xs, xz = self.input_int(x, in_desc, ys_dtype, f"{layer}.input_quant")
        wq, ws, wz = self.weight_int(w_value, w_desc, f"{layer}.weight_quant")
        ys, yz = self.scale_zero_point(out_desc, ys_dtype, f"{layer}.output_quant")
        b = self.bias_int(b_calls, f"{layer}.bias_quant") if module.bias is not None else None
        n = len(module.kernel_size)
        pads = self.conv_pads(module, Ref(self.name_of(x), self.example(x)))
        inputs = [xq, xs, xz, wq, ws, wz, ys, yz] + ([b] if b is not None else [])
        yq = self.g.node(
            "QLinearConv",
            inputs,
            layer,
            kernel_shape=list(module.kernel_size),
            strides=list(_tuple(module.stride, n)),
            dilations=list(_tuple(module.dilation, n)),
            pads=pads,
            group=int(module.groups),
        )
        return self.finish_output(yq, ys, yz, ys_dtype, out_desc, f"{layer}.output_quant")

    def finish_output(self, yq: str, ys: str, yz: str, dtype: str, desc: QuantDescription, where: str) -> str:
        lo, hi = storage_range(dtype)
        if (desc.int_min, desc.int_max) != (lo, hi):
            lo_c = self.g.const(np.array(desc.int_min), f"{where}.min_int", dtype=np_storage(dtype))
            hi_c = self.g.const(np.array(desc.int_max), f"{where}.max_int", dtype=np_storage(dtype))
            yq = self.g.node("Clip", [yq, lo_c, hi_c], where)
        return self.dequantize(IntTensor(yq, ys, yz, dtype, desc), where)

    def qlinear_matmul(
        self,
        node: torch.fx.Node,
        module: nn.Module,
        x: Any,
        in_desc: QuantDescription,
        w_value: torch.Tensor,
        w_desc: QuantDescription,
        b_calls: list[Any],
        out_desc: QuantDescription,
    ) -> str:
        layer = self.where()
        y_dtype = "int8" if out_desc.signed else "uint8"
        if module.bias is None:
            xq, xs, xz = self.input_int(x, in_desc, y_dtype, f"{layer}.input_quant")
        else:  # MatMulInteger takes any pair of 8-bit types
            xq, xs, xz, _ = self.quantize_to_int(self.name_of(x), in_desc, f"{layer}.input_quant")
        wq, ws, wz = self.weight_int(w_value, w_desc, f"{layer}.weight_quant", transpose=True)
        ys, yz = self.scale_zero_point(out_desc, y_dtype, f"{layer}.output_quant")
        if module.bias is None:
            yq = self.g.node("QLinearMatMul", [xq, xs, xz, wq, ws, wz, ys, yz], layer)
            return self.finish_output(yq, ys, yz, y_dtype, out_desc, f"{layer}.output_quant")
        b = self.bias_int(b_calls, f"{layer}.bias_quant")
        if self.example(x).dim() == 2:
            # QLinearMatMul cannot add a bias before requantizing: a 1x1 QLinearConv can
            xq, xs, xz = self.input_int(x, in_desc, y_dtype, f"{layer}.input_quant")
            wq4, _, _ = self.weight_int(w_value.reshape(*w_value.shape, 1, 1), _spatial(w_desc, 2), f"{layer}.weight")
            nchw = self.g.const(np.array([0, -1, 1, 1], np.int64), "shape")
            x4 = self.g.node("Reshape", [xq, nchw], layer)
            yq = self.g.node("QLinearConv", [x4, xs, xz, wq4, ws, wz, ys, yz, b], layer, kernel_shape=[1, 1])
            yq = self.g.node("Reshape", [yq, self.g.const(np.array([0, -1], np.int64), "shape")], layer)
            return self.finish_output(yq, ys, yz, y_dtype, out_desc, f"{layer}.output_quant")
        acc = self.g.node("MatMulInteger", [xq, wq, xz, wz], layer)
        acc = self.g.node("Add", [acc, b], layer)
        acc_scale = (in_desc.scale.reshape(()) * w_desc.flat_scale()).to(torch.float32).cpu().numpy()
        y = self.g.node("Cast", [acc], layer, to=onnx_float())
        y = self.g.node("Mul", [y, self.g.const(acc_scale, f"{layer}.acc_scale")], layer)
        yq = self.g.node("QuantizeLinear", [y, ys, yz], layer)
        return self.finish_output(yq, ys, yz, y_dtype, out_desc, f"{layer}.output_quant")

    def qdq_weight_layer(
        self, node: torch.fx.Node, module: nn.Module, x: Any, in_desc: QuantDescription, out_desc: QuantDescription
    ) -> str:
        layer = self.where()
        xin = self.quantize_act(self.name_of(x), in_desc, f"{layer}.input_quant")
        w, b = self.weight_and_bias(node, module)
        y = self.weight_op(node, module, Ref(xin, self.example(x)), w, b)
        return self.quantize_act(y, out_desc, f"{layer}.output_quant")


def _spatial(desc: QuantDescription, n: int) -> QuantDescription:
    """``desc`` for a weight given ``n`` trailing unit dimensions (1x1 convolution kernel)."""
    fields = {f: getattr(desc, f) for f in desc.__dataclass_fields__}
    fields["scale"] = desc.scale.reshape(*desc.scale.shape, *([1] * n)) if desc.scale.dim() else desc.scale
    fields["zero_point"] = desc.zero_point.reshape(*desc.zero_point.shape, *([1] * n)) if desc.zero_point.dim() else (
        desc.zero_point)  # fmt: skip
    fields["shape"] = (*desc.shape, *([1] * n))
    return QuantDescription(**fields)


def onnx_float() -> int:
    """``TensorProto.FLOAT``."""
    from onnx import TensorProto

    return int(TensorProto.FLOAT)


class QOpExporter(OnnxExporter):
    """Standard ONNX QOperator form: QLinearConv / QLinearMatMul for 8-bit layers (onnxruntime)."""

    name = "onnx-qop"
    description = "standard ONNX QOperator form, QLinearConv / QLinearMatMul (8-bit; onnxruntime)"
    translator = QOpTranslator
