"""The ``onnx-qcdq`` exporter: QuantizeLinear -> Clip -> DequantizeLinear in standard ONNX.

Every activation quantizer (layer inputs, outputs, activations) becomes

    QuantizeLinear(x, scale, zero_point) -> Clip(min_int, max_int) -> DequantizeLinear

in int8 / uint8, which expresses any integer quantizer of 2 to 8 bits
(signed or unsigned, narrow range, zero-point, per tensor or per channel,
opset 13 or later). ``Clip`` is left out where the range is the whole
storage type (8-bit, not narrow): the pattern then is the plain QDQ that
onnxruntime fuses into integer kernels. Weights and biases are constants:
they are stored as integers (int8 / uint8, int32 for wider biases such as
``Int32Bias``) followed by ``DequantizeLinear``, exactly the values the
layer computes with. With ``int4=True`` at ``opset_version=21`` or later,
quantizers of up to 4 bits use the native int4 / uint4 types; 9- to 16-bit
activations need opset 21 (int16 / uint16).

Truncation (average pooling) and accumulator clamping are emitted with
standard float operators (Div, Round, Floor, Clip, Mul) that reproduce the
PyTorch arithmetic.

Example:
    >>> import torch
    >>> import brevitas.export as bx
    >>> from brevitas.nn import QuantIdentity, QuantLinear
    >>> model = torch.nn.Sequential(QuantIdentity(bit_width=4), QuantLinear(4, 2, bias=False))
    >>> onnx_model = bx.export(model, torch.randn(1, 4), exporter="onnx-qcdq")
    >>> [n.op_type for n in onnx_model.graph.node]
    ['QuantizeLinear', 'Clip', 'DequantizeLinear', 'DequantizeLinear', 'Gemm']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from brevitas.export.description import QuantDescription
from brevitas_export_onnx.exporter import OnnxExporter
from brevitas_export_onnx.translate import OnnxTranslator, Ref

__all__ = ["IntTensor", "QCDQExporter", "QCDQTranslator", "storage_range"]

_RANGES = {
    "int4": (-8, 7),
    "uint4": (0, 15),
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
}
_NUMPY = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16, "int32": np.int32}


def storage_range(dtype: str) -> tuple[int, int]:
    """The integer range of a storage type name (``"int8"``, ``"uint4"`` ...).

    Example:
        >>> storage_range("uint8")
        (0, 255)
    """
    return _RANGES[dtype]


def np_storage(dtype: str) -> Any:
    """The numpy dtype to build arrays of a storage type with (``"int4"`` is passed through)."""
    return _NUMPY.get(dtype, dtype)


@dataclass(frozen=True)
class IntTensor:
    """An integer tensor of the graph and the grid it is on."""

    name: str
    scale: str
    zero_point: str
    dtype: str
    desc: QuantDescription


class QCDQTranslator(OnnxTranslator):
    """Translation to QuantizeLinear / Clip / DequantizeLinear (see the module doc)."""

    dialect = "onnx-qcdq"
    OPTIONS: ClassVar[dict[str, Any]] = {"int4": False}
    MIN_OPSET = 13
    DEFAULT_OPSET = 17

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: float tensor name -> the integer tensor it dequantizes
        self.int_source: dict[str, IntTensor] = {}

    def check_options(self) -> list[Any]:
        out = super().check_options()
        if self.options.get("int4") and self.opset < 21:
            from brevitas.export.base import Problem

            out.append(
                Problem(
                    "",
                    f"int4=True needs QuantizeLinear / DequantizeLinear of opset 21 (opset_version={self.opset})",
                    "pass opset_version=21 with int4=True",
                )
            )
        return out

    # ------------------------------------------------------------------ storage types
    def act_storage(self, desc: QuantDescription, where: str) -> str:
        """The integer type an activation is quantized to; raises with the fix when none fits."""
        b = desc.bit_width
        prefix = "int" if desc.signed else "uint"
        if b <= 4 and self.options.get("int4") and self.opset >= 21:
            return prefix + "4"
        if b <= 8:
            return prefix + "8"
        if b <= 16:
            if self.opset >= 21:
                return prefix + "16"
            raise self.fail(
                f"{where} is {b}-bit; QuantizeLinear holds at most 8 bits before opset 21",
                "pass opset_version=21 (int16 QuantizeLinear), or quantize to at most 8 bits",
                layer=self.where(),
            )
        raise self.fail(
            f"{where} is {b}-bit; QuantizeLinear holds at most 16 bits",
            "quantize activations to at most 8 bits, or export with qonnx (any bit-width)",
            layer=self.where(),
        )

    def const_storage(self, ints: Tensor, zero_point: Tensor, signed: bool, bit_width: int) -> str:
        """The smallest storage type holding the integer constant ``ints`` and its zero-point."""
        lo = int(min(int(ints.min()) if ints.numel() else 0, int(zero_point.min())))
        hi = int(max(int(ints.max()) if ints.numel() else 0, int(zero_point.max())))
        candidates = []
        if self.options.get("int4") and self.opset >= 21 and bit_width <= 4:
            candidates += ["int4", "uint4"] if signed else ["uint4", "int4"]
        candidates += ["int8", "uint8"] if signed else ["uint8", "int8"]
        for dtype in candidates:
            a, b = _RANGES[dtype]
            if a <= lo and hi <= b:
                return dtype
        return "int32"

    # ------------------------------------------------------------------ checks
    def check_act(self, desc: QuantDescription, where: str) -> None:
        """Raise for activation quantizers QuantizeLinear cannot express."""
        layer = self.where()
        if desc.quant_type != "int":
            raise self.fail(
                f"{where} is a {desc.quant_type} quantizer; QuantizeLinear expresses integer quantizers only",
                "use an integer activation quantizer (e.g. Int8ActPerTensorFloat), or export with qonnx "
                "(BipolarQuant)",
                layer=layer,
            )
        if desc.rounding_mode != "ROUND":
            raise self.fail(
                f"{where} rounds with {desc.rounding_mode}; QuantizeLinear rounds half to even",
                "use float_to_int_impl_type='round' in the quantizer, or export with qonnx (rounding_mode attribute)",
                layer=layer,
            )

    # ------------------------------------------------------------------ emission
    def scale_zero_point(self, desc: QuantDescription, dtype: str, hint: str) -> tuple[str, str]:
        """Initializers of the scale (float32) and zero-point (``dtype``) of ``desc``."""
        scale = desc.flat_scale().cpu().numpy().astype(np.float32)
        zp = torch.round(desc.flat_zero_point()).cpu().numpy()
        if zp.shape != scale.shape:
            zp = np.broadcast_to(zp, scale.shape)
        lo, hi = _RANGES[dtype]
        if zp.size and (zp.min() < lo or zp.max() > hi):
            raise self.fail(
                f"{hint}: zero-point {zp.min():g}..{zp.max():g} does not fit {dtype}",
                "use an unsigned quantizer for asymmetric (shifted) ranges",
                layer=self.where(),
            )
        s = self.g.const(scale, f"{hint}.scale")
        z = self.g.const(zp.astype(np.int64), f"{hint}.zero_point", dtype=np_storage(dtype))
        return s, z

    def axis_of(self, desc: QuantDescription, rank: int | None = None) -> int | None:
        """The ``axis`` attribute for ``desc`` (``None`` per tensor)."""
        if desc.per_channel_axis is None:
            return None
        axis = desc.per_channel_axis
        if rank is not None and desc.shape and len(desc.shape) != rank:
            axis = axis - len(desc.shape) + rank
        return int(axis)

    def quantize_to_int(self, x: str, desc: QuantDescription, where: str) -> tuple[str, str, str, str]:
        """``QuantizeLinear`` (+ ``Clip`` when the range is narrower than the type).

        Returns:
            ``(integer tensor, scale, zero_point, storage type)`` names.
        """
        src = self.int_source.get(x)
        if src is not None and src.desc.same_grid(desc) and src.dtype == self.act_storage(desc, where):
            return src.name, src.scale, src.zero_point, src.dtype  # already on this grid: no new Q / DQ
        self.check_act(desc, where)
        dtype = self.act_storage(desc, where)
        s, z = self.scale_zero_point(desc, dtype, where)
        axis = self.axis_of(desc)
        q = self.g.node("QuantizeLinear", [x, s, z], where, axis=axis)
        lo, hi = _RANGES[dtype]
        if (desc.int_min, desc.int_max) != (lo, hi):
            lo_c = self.g.const(np.array(desc.int_min), f"{where}.min_int", dtype=np_storage(dtype))
            hi_c = self.g.const(np.array(desc.int_max), f"{where}.max_int", dtype=np_storage(dtype))
            q = self.g.node("Clip", [q, lo_c, hi_c], where)
        return q, s, z, dtype

    def quantize_act(self, x: str, desc: QuantDescription, where: str) -> str:
        q, s, z, dtype = self.quantize_to_int(x, desc, where)
        return self.dequantize(IntTensor(q, s, z, dtype, desc), where)

    def dequantize(self, src: IntTensor, where: str) -> str:
        """``DequantizeLinear`` of an integer tensor, remembered so later operators can take the integers."""
        y = self.g.node("DequantizeLinear", [src.name, src.scale, src.zero_point], where, axis=self.axis_of(src.desc))
        self.int_source[y] = src
        return y

    def value_op(self, x: Any, build: Any, keeps_axes: bool) -> str:
        """Reshapes, transposes, slices and max pooling of a dequantized tensor run on its integers (exact)."""
        src = self.int_source.get(x.name) if isinstance(x, Ref) else None
        if src is None or src.dtype not in ("int8", "uint8") or not (keeps_axes or src.desc.is_per_tensor):
            return super().value_op(x, build, keeps_axes)
        y = build(src.name)
        return self.dequantize(IntTensor(y, src.scale, src.zero_point, src.dtype, src.desc), self.hint())

    def integer_const(self, value: Tensor, desc: QuantDescription, where: str) -> tuple[str, str, str, str]:
        """Store a quantized constant as integers: ``(ints, scale, zero_point, storage type)`` names.

        Raises when ``value`` is not on the grid of ``desc``.
        """
        value = value.detach().to(torch.float32)
        ints = desc.to_int(value)
        zp = torch.round(desc.zero_point).to(torch.int64)
        back = (ints.to(torch.float32) - desc.zero_point) * desc.scale
        if not torch.equal(back, value):
            raise self.fail(
                f"{where}: the quantized values are not integer multiples of the scale ({desc.describe()})",
                "use an integer, binary or ternary quantizer",
                layer=self.where(),
            )
        dtype = self.const_storage(ints, zp, desc.signed, desc.bit_width)
        flat_zp = torch.round(desc.flat_zero_point())
        if dtype == "int32" and bool((flat_zp != 0).any()):
            # DequantizeLinear of int32 takes no zero-point: store the shifted integers (same values)
            ints = ints - zp
            desc = _with_zero_zero_point(desc)
        scale = desc.flat_scale().cpu().numpy().astype(np.float32)
        zpa = torch.round(desc.flat_zero_point()).cpu().numpy().astype(np.int64)
        if zpa.shape != scale.shape:
            zpa = np.broadcast_to(zpa, scale.shape)
        q = self.g.const(ints.cpu().numpy(), f"{where}.int", dtype=np_storage(dtype), share=False)
        s = self.g.const(scale, f"{where}.scale")
        z = self.g.const(zpa, f"{where}.zero_point", dtype=np_storage(dtype))
        return q, s, z, dtype

    def quantized_const(self, value: Tensor, desc: QuantDescription, where: str) -> str:
        q, s, z, _ = self.integer_const(value, desc, where)
        return self.g.node("DequantizeLinear", [q, s, z], where, axis=self.axis_of(desc))


def _with_zero_zero_point(desc: QuantDescription) -> QuantDescription:
    fields = {f: getattr(desc, f) for f in desc.__dataclass_fields__}
    fields["zero_point"] = torch.zeros_like(desc.zero_point)
    return QuantDescription(**fields)


class QCDQExporter(OnnxExporter):
    """Standard ONNX with QuantizeLinear -> Clip -> DequantizeLinear (2..8-bit, onnxruntime)."""

    name = "onnx-qcdq"
    description = "standard ONNX, QuantizeLinear -> Clip -> DequantizeLinear (2..8-bit; onnxruntime)"
    translator = QCDQTranslator
