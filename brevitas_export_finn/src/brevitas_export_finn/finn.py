"""The ``finn`` exporter: FINN-ONNX, integer weights with datatype annotations and ``MultiThreshold`` activations.

FINN-ONNX is the older input of the FINN compiler (and what hardware flows
built on it still read). Every quantized tensor is an integer-valued float32
tensor annotated with its datatype (``graph.quantization_annotation``,
``finn_datatype``), and scales are plain ``Mul`` nodes:

- weights: the integer codes as a float32 initializer, annotated (``INT4``,
  ``BIPOLAR``, ``TERNARY`` ...), feeding ``MatMul`` (linear layers: the
  transposed ``(in, out)`` matrix) / ``Conv`` / ``ConvTranspose``, then
  ``Mul(scale)`` (per tensor or per output channel) and ``Add(bias)``;
- activations: ``MultiThreshold(v, thresholds)`` (domain
  ``qonnx.custom_op.general``) with ``out_dtype``, ``out_bias`` (the smallest
  integer) and ``out_scale`` (1; 2 for bipolar, whose single threshold is 0),
  its output annotated, then ``Mul(scale)``. The thresholds are found on the
  float32 grid from a float64 estimate (:mod:`brevitas_export_finn.thresholds`),
  so the codes are PyTorch's, ties included. A ``Relu`` or ``Clip`` in front
  of an activation quantizer is absorbed when it cannot change a code;
- a quantized graph input (a QuantTensor example input): the graph takes the
  integer codes, annotated with the input quantizer's datatype, then ``Mul(scale)``;
- average pooling with truncation: ``Mul(1 / scale)`` to the integers,
  ``QuantAvgPool2d`` (``ibits``, ``obits``, ``signed``; binary inputs are
  declared ``INT2``), ``Mul(scale)`` where its shift is Brevitas' truncation,
  else ``AveragePool`` and ``MultiThreshold``;
  other truncations and accumulator clamps: ``MultiThreshold``.

The check refuses, naming the layer and the fix, what FINN cannot take:
non-zero zero-points; activations above 8 bits (option
``max_act_bit_width``); per-channel scales where FINN needs one per tensor
(bipolar activations, average pooling) or along an axis other than the
channels; weight scales per anything but the output channel; and quantizers
of the wrong signedness for their place: unsigned, not narrow, after a ReLU
(any non-negative input), signed elsewhere.

Example:
    >>> import torch
    >>> import brevitas.export as bx
    >>> from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
    >>> model = torch.nn.Sequential(QuantIdentity(bit_width=2), QuantLinear(4, 3, bias=False, weight_bit_width=2),
    ...                             QuantReLU(bit_width=2))
    >>> onnx_model = bx.export(model, torch.randn(1, 4), exporter="finn")
    >>> [n.op_type for n in onnx_model.graph.node]
    ['MultiThreshold', 'Mul', 'MatMul', 'Mul', 'MultiThreshold', 'Mul']
    >>> from brevitas_export_finn.datatypes import annotations
    >>> sorted(set(annotations(onnx_model).values()))
    ['INT2', 'UINT2']
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.fx
from torch import Tensor, nn

from brevitas.export.base import Problem
from brevitas.export.description import QuantDescription, describe_quant_tensor
from brevitas.export.trace import tensor_value
from brevitas.nn import QuantAdaptiveAvgPool2d, QuantAvgPool2d
from brevitas.nn.quant_scale_bias import ScaleBias
from brevitas.quant_tensor import QuantTensor
from brevitas_export_finn.base import CustomOpTranslator, QonnxRunExporter
from brevitas_export_finn.datatypes import finn_datatype, int_datatype
from brevitas_export_finn.thresholds import (
    ROUNDING,
    CodeFn,
    binary_code,
    int_code,
    search,
    ternary_code,
    trunc_code,
)
from brevitas_export_onnx.translate import Ref, Unsupported

__all__ = ["FINNExporter", "FINNTranslator"]

_LAYOUTS = {2: "NC", 3: "NCW", 4: "NCHW", 5: "NCDHW"}


def _pair(v: Any) -> tuple[Any, Any]:
    return (v[0], v[1]) if isinstance(v, (tuple, list)) else (v, v)

_ZERO_POINT_FIX = (
    "use a quantizer without zero-point (Uint8ActPerTensorFloat after a ReLU, Int8ActPerTensorFloat elsewhere, "
    "Int8WeightPerTensorFloat for weights), or export with qonnx"
)


class FINNTranslator(CustomOpTranslator):
    """Translation to FINN-ONNX (see the module doc).

    Options:
        max_act_bit_width: widest activation accepted (default 8, FINN's default).
    """

    dialect = "finn"
    OPTIONS: ClassVar[dict[str, Any]] = {"max_act_bit_width": 8}
    MODULES: ClassVar[dict[type, str]] = {
        QuantAvgPool2d: "mod_finn_avg_pool",
        QuantAdaptiveAvgPool2d: "mod_finn_avg_pool",
    }

    # ------------------------------------------------------------------ checks
    def zero_point_problem(self, desc: QuantDescription, where: str) -> Problem | None:
        """FINN takes zero-point 0 only."""
        if desc.has_zero_zero_point:
            return None
        return Problem(
            self.where(),
            f"{where} has a non-zero zero-point ({desc.describe()}); FINN takes zero-point 0 only",
            _ZERO_POINT_FIX,
        )

    def width_problem(self, desc: QuantDescription, where: str) -> Problem | None:
        """FINN takes integer activations of at most ``max_act_bit_width`` bits."""
        limit = int(self.options["max_act_bit_width"])
        if desc.quant_type != "int" or desc.bit_width <= limit:
            return None
        return Problem(
            self.where(),
            f"{where} is a {desc.bit_width}-bit activation; FINN takes activations of at most {limit} bits",
            f"quantize activations to at most {limit} bits (bit_width={limit}), pass max_act_bit_width="
            f"{desc.bit_width} if your FINN flow takes wider ones, or export with qonnx",
        )

    def channel_problem(
        self, desc: QuantDescription, where: str, rank: int, per_tensor_only: str = ""
    ) -> Problem | None:
        """Per-channel scales: never where ``per_tensor_only`` names a use, else along axis 1 only."""
        if desc.is_per_tensor:
            return None
        if per_tensor_only:
            return Problem(
                self.where(),
                f"{where} has per-channel scales ({desc.describe()}); FINN needs a per-tensor scale for "
                f"{per_tensor_only}",
                "use a per-tensor quantizer there (scaling_per_output_channel=False)",
            )
        axis = desc.per_channel_axis
        if axis is not None and rank >= 2 and axis % rank != 1:
            return Problem(
                self.where(),
                f"{where} has per-channel scales along axis {axis}; FINN thresholds per channel along axis 1 only",
                "quantize per tensor, or per channel along axis 1 (per_channel_broadcastable_shape=(1, C, 1, 1))",
            )
        return None

    def rounding_problem(self, mode: str, where: str) -> Problem | None:
        """Thresholds are computed for the roundings :data:`~brevitas_export_finn.thresholds.ROUNDING` knows."""
        if mode.upper() in ROUNDING:
            return None
        return Problem(
            self.where(),
            f"{where} rounds with {mode}, which the exporter cannot express as thresholds",
            f"use one of {', '.join(sorted(ROUNDING)).lower()} (float_to_int_impl_type=...)",
        )

    def signedness_problem(self, desc: QuantDescription, where: str, non_negative: bool) -> Problem | None:
        """Unsigned, non-narrow quantizers after a ReLU (a non-negative input), signed ones elsewhere."""
        if desc.quant_type != "int":
            return None
        if non_negative and (desc.signed or desc.narrow_range):
            what = "signed" if desc.signed else "narrow-range"
            return Problem(
                self.where(),
                f"{where} is {what} ({desc.describe()}) but quantizes the output of a ReLU; FINN takes unsigned, "
                "non-narrow quantizers after a ReLU",
                "use an unsigned quantizer (Uint8ActPerTensorFloat, or signed=False, narrow_range=False), as "
                "QuantReLU's default",
            )
        if not non_negative and not desc.signed:
            return Problem(
                self.where(),
                f"{where} is unsigned ({desc.describe()}) but its input is not a ReLU output; FINN takes signed "
                "quantizers there",
                "use a signed quantizer (Int8ActPerTensorFloat, or signed=True), or put a QuantReLU there if the "
                "values must be non-negative",
            )
        return None

    @staticmethod
    def raise_problems(problems: list[Problem | None]) -> None:
        """Raise every problem found at once (``None`` entries are no problem)."""
        found = [p for p in problems if p is not None]
        if found:
            raise Unsupported(*found)

    def dequantize_input(self, name: str, desc: QuantDescription, hint: str) -> str:
        self.raise_problems([self.zero_point_problem(desc, f"the quantized input {hint!r}")])
        return super().dequantize_input(name, desc, hint)

    # ------------------------------------------------------------------ MultiThreshold
    def activation_source(self, x: str) -> tuple[str, float | None, float | None]:
        """The input of a ``Relu`` / ``Clip`` producing ``x`` and its bounds (``x, None, None`` otherwise)."""
        node = self.g.producers.get(x)
        if node is None:
            return x, None, None
        if node.op_type == "Relu":
            return node.input[0], 0.0, None
        if node.op_type == "Clip":
            bounds: list[float | None] = []
            for i in (1, 2):
                name = node.input[i] if len(node.input) > i else ""
                value = self.g.const_value(name) if name else None
                if name and value is None:
                    return x, None, None
                bounds.append(None if value is None else float(np.asarray(value).reshape(())))
            return node.input[0], bounds[0], bounds[1]
        return x, None, None

    def multithreshold(
        self, v: str, code: CodeFn, channels: int, int_min: int, int_max: int, dtype: str, where: str, rank: int,
        bipolar: bool = False,
    ) -> str:  # fmt: skip
        """``MultiThreshold`` giving ``code(v)``, its output annotated with ``dtype``."""
        if bipolar:
            targets = np.ones((channels, 1))
            out_scale, out_bias = 2.0, -1.0
        else:
            steps = np.arange(int_min + 1, int_max + 1, dtype=np.float64)
            targets = np.broadcast_to(steps, (channels, steps.size))
            out_scale, out_bias = 1.0, float(int_min)
        thresholds = search(code, targets)
        if not np.isfinite(thresholds).all():
            raise self.fail(
                f"{where}: some codes are never (or always) reached; no finite thresholds exist",
                "check the quantizer's scale and range",
            )
        t = self.g.const(thresholds.astype(np.float32), f"{where}.thresholds", share=False)
        y = self.custom(
            "MultiThreshold",
            [v, t],
            where,
            out_dtype=dtype,
            out_scale=out_scale,
            out_bias=out_bias,
            data_layout=_LAYOUTS.get(rank),
        )
        return self.annotate(y, dtype)

    def rescale(self, y: str, desc: QuantDescription, where: str) -> str:
        """``Mul(scale)`` after an integer tensor (left out when the scale is 1)."""
        if bool((desc.scale == 1).all()):
            return y
        return self.g.node("Mul", [y, self.scale_const(desc, where)], where)

    def channels(self, desc: QuantDescription) -> int:
        """Rows of the thresholds: 1 per tensor, else the number of channels."""
        return 1 if desc.is_per_tensor else int(desc.flat_scale().numel())

    # ------------------------------------------------------------------ dialect hooks
    def quantize_act(self, x: str, desc: QuantDescription, where: str) -> str:
        rank = len(desc.shape) if desc.shape else 2
        source, lo, hi = self.activation_source(x)
        non_negative = lo is not None and lo >= 0
        binary = desc.quant_type == "binary"
        self.raise_problems(
            [
                self.zero_point_problem(desc, where),
                self.width_problem(desc, where),
                self.channel_problem(desc, where, rank, "bipolar activations" if binary else ""),
                self.signedness_problem(desc, where, non_negative),
                None if binary or desc.quant_type == "ternary" else self.rounding_problem(desc.rounding_mode, where),
            ]
        )
        if binary:
            code = binary_code()
        elif desc.quant_type == "ternary":
            code = ternary_code(desc.flat_scale().cpu().numpy(), self.ternary_threshold(desc))
        else:
            scale, zero_point = desc.flat_scale().cpu().numpy(), desc.flat_zero_point().cpu().numpy()
            code = int_code(scale, zero_point, desc.int_min, desc.int_max, desc.rounding_mode.upper())
        v = x
        if source != x:
            # absorb the Relu / Clip when it cannot change a code: codes at its bounds are the extremes
            lo_ok = lo is None or bool((code(np.full((1, 1), lo, np.float32)) == desc.int_min).all())
            hi_ok = hi is None or bool((code(np.full((1, 1), hi, np.float32)) == desc.int_max).all())
            if lo_ok and hi_ok:
                v = source
        dtype = finn_datatype(desc)
        y = self.multithreshold(
            v, code, self.channels(desc), desc.int_min, desc.int_max, dtype, where, rank, bipolar=binary
        )
        return self.rescale(y, desc, where)

    def requantize(self, x: str, desc: QuantDescription, where: str) -> str:
        """Truncation and clamping of an accumulator as one ``MultiThreshold``."""
        inner = desc.input
        if inner is None:
            raise self.fail(f"{where}: the re-quantized input grid is unknown", "feed the layer a valid QuantTensor")
        rank = len(desc.shape) if desc.shape else 2
        self.raise_problems(
            [
                self.zero_point_problem(inner, where) or self.zero_point_problem(desc, where),
                self.width_problem(desc, where),
                self.channel_problem(desc, where, rank) or self.channel_problem(inner, where, rank),
                self.rounding_problem(desc.rounding_mode, where),
            ]
        )
        if desc.role == "trunc":
            shift = max(inner.bit_width - desc.bit_width, 0)
            s_in, z_in = inner.flat_scale().cpu().numpy(), inner.flat_zero_point().cpu().numpy()
            code = trunc_code(s_in, z_in, shift, desc.int_min, desc.int_max, desc.rounding_mode.upper())
        else:
            s_out, z_out = desc.flat_scale().cpu().numpy(), desc.flat_zero_point().cpu().numpy()
            code = int_code(s_out, z_out, desc.int_min, desc.int_max, "ROUND")
        channels = max(self.channels(desc), self.channels(inner))
        dtype = int_datatype(desc.bit_width, desc.signed)
        y = self.multithreshold(x, code, channels, desc.int_min, desc.int_max, dtype, where, rank)
        return self.rescale(y, desc, where)

    def integer_weights(self, value: Tensor, desc: QuantDescription, where: str) -> np.ndarray:
        """The integer codes of a quantized constant (float32), checked to be on the grid."""
        problem = self.zero_point_problem(desc, where)
        if problem is not None:
            raise Unsupported(problem)
        value = value.detach().to(torch.float32)
        ints = desc.to_int(value).to(torch.float32)
        if not torch.equal(ints * desc.scale, value):
            raise self.fail(
                f"{where}: the quantized values are not integer multiples of the scale ({desc.describe()})",
                "use an integer, binary or ternary quantizer",
            )
        return ints.cpu().numpy()

    def quantized_const(self, value: Tensor, desc: QuantDescription, where: str) -> str:
        """A quantized constant outside a weight layer: annotated integers times the scale."""
        ints = self.integer_weights(value, desc, where)
        w = self.annotate(self.g.const(ints, f"{where}.int", share=False), finn_datatype(desc))
        return self.rescale(w, desc, where)

    # ------------------------------------------------------------------ weight layers
    def mod_weight_layer(self, node: torch.fx.Node, module: nn.Module, x: Any, *rest: Any) -> str:
        """Input quantizer, the float op on integer weights, ``Mul(scale)``, ``Add(bias)``, output quantizer."""
        if rest:
            raise self.fail(f"{type(module).__name__} called with {len(rest) + 1} inputs", "call it with one tensor")
        xin = Ref(self.apply_act_proxy(node, module.input_quant, self.name_of(x)), self.example(x))
        out_rank = tensor_value(self.traced.values[node]).dim()
        ints, desc, where = self.weight_codes(node, module)
        hint = self.hint()
        transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
        if isinstance(module, nn.Linear):
            layout = ints.T
        elif isinstance(module, ScaleBias):
            layout = ints.reshape(tuple(module.runtime_shape))
        else:
            layout = ints
        if desc is not None:
            w = self.annotate(self.g.const(np.ascontiguousarray(layout), f"{where}.int", share=False),
                              finn_datatype(desc))  # fmt: skip
        else:
            w = self.g.const(np.ascontiguousarray(layout), f"{hint}.weight", share=False)
        if isinstance(module, nn.Linear):
            y = self.g.node("MatMul", [xin.name, w], hint)
        elif isinstance(module, ScaleBias):
            y = self.g.node("Mul", [xin.name, w], hint)
        elif transposed:
            y = self.conv_transpose(module, xin, w, None)
        elif isinstance(module, nn.modules.conv._ConvNd):
            y = self.conv(module, xin, w, None)
        else:
            raise self.fail(f"weight layer {type(module).__qualname__} has no finn translation")
        if desc is not None and not bool((desc.scale == 1).all()):
            scale = desc.flat_scale().cpu().numpy().astype(np.float32)
            if transposed and scale.size > 1:
                scale = np.tile(scale, int(module.groups))
            scale = self.channel_layout(module, scale, out_rank)
            y = self.g.node("Mul", [y, self.g.const(scale, f"{where}.scale")], hint)
        bias = self.bias_value(node, module)
        if bias is not None:
            b = self.channel_layout(module, bias.cpu().numpy().astype(np.float32), out_rank)
            y = self.g.node("Add", [y, self.g.const(b, f"{hint}.bias", share=False)], hint)
        return self.apply_act_proxy(node, module.output_quant, y)

    def channel_layout(self, module: nn.Module, flat: np.ndarray, out_rank: int) -> np.ndarray:
        """A per-output-channel vector shaped to broadcast against the layer's output (scalars stay scalars)."""
        if flat.size == 1:
            return flat.reshape(())
        if isinstance(module, nn.Linear):
            return flat.reshape(-1)
        if isinstance(module, ScaleBias):
            return flat.reshape(tuple(module.runtime_shape))
        return flat.reshape((1, -1) + (1,) * (out_rank - 2))

    def weight_codes(self, node: torch.fx.Node, module: nn.Module) -> tuple[np.ndarray, QuantDescription | None, str]:
        """The weight's integer codes and description (the float weight and ``None`` when not quantized)."""
        proxy = module.weight_quant
        calls = self.traced.calls_of(node, proxy)
        where = self.proxy_where(node, proxy)
        if proxy.tensor_quant is None or not calls or calls[0].description is None or calls[0].value is None:
            return module.weight.detach().to(torch.float32).cpu().numpy(), None, where
        desc = calls[0].description
        out_axis = 1 if isinstance(module, nn.modules.conv._ConvTransposeNd) else 0
        problems = [self.zero_point_problem(desc, where)]
        if desc.per_channel_axis is not None and desc.per_channel_axis != out_axis:
            problems.append(
                Problem(
                    self.where(),
                    f"{where} has scales along weight axis {desc.per_channel_axis}; FINN takes per-tensor or "
                    "per-output-channel weight scales",
                    "use a per-tensor or per-output-channel weight quantizer (Int8WeightPerChannelFloat)",
                )
            )
        self.raise_problems(problems)
        return self.integer_weights(calls[0].value, desc, where), desc, where

    def bias_value(self, node: torch.fx.Node, module: nn.Module) -> Tensor | None:
        """The bias the layer adds (its dequantized value when quantized)."""
        bias = getattr(module, "bias", None)
        if bias is None:
            return None
        calls = self.traced.calls_of(node, module.bias_quant)
        if module.bias_quant.tensor_quant is not None and calls and calls[0].value is not None:
            return calls[0].value.detach().to(torch.float32)
        return bias.detach().to(torch.float32)

    # ------------------------------------------------------------------ average pooling
    def mod_finn_avg_pool(self, node: torch.fx.Node, module: nn.Module, x: Any) -> str:
        """``Mul(1 / scale)``, ``QuantAvgPool2d``, ``Mul(scale)``; other windows: AveragePool + MultiThreshold."""
        proxy = module.trunc_quant
        if proxy.tensor_quant is None:
            return self.mod_passthrough_layer(node, module, x)
        desc = self.describe_call(node, proxy)
        where = self.proxy_where(node, proxy)
        value = x.example if isinstance(x, Ref) else None
        x_desc = describe_quant_tensor(value) if isinstance(value, QuantTensor) else None
        if desc is None or x_desc is None:
            raise self.fail(f"{where} did not run on a valid QuantTensor", "feed the layer a QuantTensor")
        self.raise_problems(
            [
                self.zero_point_problem(x_desc, f"the input of {where}"),
                self.channel_problem(x_desc, f"the input of {where}", 4, "average pooling"),
            ]
        )
        geometry = self.square_window(node, module, x)
        if geometry is None or desc.rounding_mode.upper() != "FLOOR" or desc.bit_width < 2:
            return self.mod_passthrough_layer(node, module, x)
        kernel, stride = geometry
        inner = desc.input
        shift = max(inner.bit_width - desc.bit_width, 0) if inner is not None else -1
        # QuantAvgPool2d reads its input as INT<ibits> / UINT<ibits>; INT1 is {-1, 0}, so binary codes
        # {-1, +1} are declared INT2, which holds them.
        ibits = 2 if x_desc.signed and x_desc.bit_width == 1 else x_desc.bit_width
        # QuantAvgPool2d's own accumulator (qonnx / FINN): bit_length((2**ibits - 1) * kernel**2) bits, shifted
        # right down to obits; where that shift differs from the truncation Brevitas computed, the exact
        # AveragePool + MultiThreshold form is used instead.
        accumulator = int((2**ibits - 1) * kernel * kernel).bit_length()
        if shift != max(accumulator - desc.bit_width, 0):
            return self.mod_passthrough_layer(node, module, x)
        inv = self.g.const(np.float32(1.0 / float(x_desc.scale.reshape(()))), f"{where}.input_inverse_scale")
        ints = self.g.node("Mul", [self.name_of(x), inv], where)
        pooled = self.custom(
            "QuantAvgPool2d",
            [ints],
            where,
            stride=stride,
            kernel=kernel,
            ibits=int(ibits),
            obits=int(desc.bit_width),
            signed=int(x_desc.signed),
            data_layout="NCHW",
        )
        self.annotate(pooled, int_datatype(desc.bit_width, desc.signed))
        return self.rescale(pooled, desc, where)

    def square_window(self, node: torch.fx.Node, module: nn.Module, x: Any) -> tuple[int, int] | None:
        """``(kernel, stride)`` when the pooling has square, unpadded windows QuantAvgPool2d computes."""
        shape = tuple(self.example(x).shape)
        if len(shape) != 4:
            return None
        if isinstance(module, nn.AdaptiveAvgPool2d):
            out = tuple(tensor_value(self.traced.values[node]).shape[-2:])
            if shape[2] % out[0] or shape[3] % out[1]:
                return None
            k = (shape[2] // out[0], shape[3] // out[1])
            s = k
        else:
            if module.ceil_mode or getattr(module, "divisor_override", None) is not None:
                return None
            if any(p != 0 for p in _pair(module.padding)):
                return None
            k = _pair(module.kernel_size)
            s = _pair(module.stride if module.stride not in (None, []) else module.kernel_size)
        if k[0] != k[1] or s[0] != s[1]:
            return None
        return int(k[0]), int(s[0])


class FINNExporter(QonnxRunExporter):
    """FINN-ONNX: integer weights with datatype annotations, MultiThreshold activations (qonnx, FINN)."""

    name = "finn"
    description = "FINN-ONNX: integer weights + finn_datatype annotations, MultiThreshold activations (FINN)"
    translator = FINNTranslator
