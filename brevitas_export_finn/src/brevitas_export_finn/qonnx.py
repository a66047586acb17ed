"""The ``qonnx`` exporter: QONNX, quantizers as ``Quant``, ``BipolarQuant`` and ``Trunc`` nodes.

QONNX keeps the float graph and adds one node per quantizer, in the domain
``qonnx.custom_op.general``:

- an integer quantizer of any bit-width (1 to 32 bits, signed or unsigned,
  narrow or not, per tensor or per channel, with or without zero-point)
  becomes ``Quant(x, scale, zero_point, bit_width)`` with its ``signed``,
  ``narrow`` and ``rounding_mode`` attributes written out (``ROUND`` is half
  to even, ``ROUND_TO_ZERO`` is written ``DOWN``). qonnx reads a 1-bit
  *signed* ``Quant`` as bipolar, so a 1-bit signed integer quantizer (codes
  -1 and 0) is written as ``-Quant(-x)`` on the unsigned bit, with the
  rounding mirrored;
- a binary quantizer becomes ``BipolarQuant(x, scale)``;
- a ternary quantizer becomes a narrow signed 2-bit ``Quant`` (an activation
  is first multiplied by ``0.5 / threshold`` when the threshold is not half
  the scale);
- weights and biases stay float initializers with a ``Quant`` (or
  ``BipolarQuant``) node on them, which downstream tools fold;
- truncation (average pooling, ``TruncQuantAccumulator``) becomes ``Trunc``,
  version 2: Brevitas' ``TruncIntQuant`` expresses its result on the coarser
  grid ``scale * 2**k``, which is what ``Trunc`` v2 computes (v1 keeps the
  input scale). The domain is then declared at version 2 (``Quant`` and
  ``BipolarQuant`` resolve to their version 1 there); graphs without
  ``Trunc`` declare version 1;
- clamping of accumulators (``ClampQuantAccumulator``) becomes ``Quant`` on
  the same grid with fewer bits.

Example:
    >>> import torch
    >>> import brevitas.export as bx
    >>> from brevitas.nn import QuantIdentity, QuantLinear
    >>> model = torch.nn.Sequential(QuantIdentity(bit_width=4), QuantLinear(4, 2, bias=False, weight_bit_width=3))
    >>> onnx_model = bx.export(model, torch.randn(1, 4), exporter="qonnx")
    >>> [n.op_type for n in onnx_model.graph.node]
    ['Quant', 'Quant', 'Gemm']
    >>> [(a.name, a.i) for a in onnx_model.graph.node[1].attribute if a.name in ("signed", "narrow")]
    [('narrow', 1), ('signed', 1)]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from brevitas.export.description import QuantDescription
from brevitas_export_finn.base import CustomOpTranslator, QonnxRunExporter

__all__ = ["QONNX_ROUNDING", "QONNXExporter", "QONNXTranslator"]

#: Brevitas rounding_mode -> QONNX rounding_mode
QONNX_ROUNDING = {"ROUND": "ROUND", "FLOOR": "FLOOR", "CEIL": "CEIL", "ROUND_TO_ZERO": "DOWN"}
_MIRRORED = {"ROUND": "ROUND", "FLOOR": "CEIL", "CEIL": "FLOOR", "DOWN": "DOWN"}


class QONNXTranslator(CustomOpTranslator):
    """Translation to QONNX (see the module doc)."""

    dialect = "qonnx"
    OPTIONS: ClassVar[dict[str, Any]] = {}

    # ------------------------------------------------------------------ one quantizer
    def rounding(self, desc: QuantDescription, where: str) -> str:
        """The QONNX ``rounding_mode`` of ``desc`` (raises with the fix when there is none)."""
        mode = QONNX_ROUNDING.get(desc.rounding_mode.upper())
        if mode is None:
            raise self.fail(
                f"{where} rounds with {desc.rounding_mode}, for which there is no QONNX rounding_mode (the qonnx "
                "exporter takes round (half to even), floor, ceil and round_to_zero)",
                "use float_to_int_impl_type='round' (or floor / ceil / round_to_zero), or export with finn "
                "(its thresholds reproduce any rounding) or with the exporter of the target that rounds that way "
                "(pyxir for DPU rounding)",
            )
        return mode

    def quant(self, x: str, desc: QuantDescription, where: str, on_grid: bool = False) -> str:
        """The QONNX node(s) quantizing the float tensor ``x`` as ``desc`` does; returns the float output.

        ``on_grid``: ``x`` already holds quantized values (a constant), so a
        ternary quantizer needs no threshold scaling.
        """
        if desc.quant_type == "binary":
            return self.custom("BipolarQuant", [x, self.scale_const(desc, where)], where)
        if desc.quant_type == "ternary":
            threshold = self.ternary_threshold(desc)
            if threshold <= 0:
                raise self.fail(f"{where} is ternary with threshold {threshold}", "use a positive threshold")
            if threshold != 0.5 and not on_grid:
                x = self.g.node("Mul", [x, self.g.const(np.float32(0.5 / threshold), f"{where}.threshold")], where)
            return self.quant_node(x, desc, where, bit_width=2, signed=True, narrow=True, mode="ROUND")
        mode = self.rounding(desc, where)
        if desc.signed and desc.bit_width == 1:
            # qonnx executes a 1-bit signed Quant as bipolar: quantize -x on the unsigned bit instead
            neg = self.g.node("Neg", [x], where)
            mirrored = QuantDescription(
                **{**_fields(desc), "zero_point": -desc.zero_point, "signed": False}
            )
            y = self.quant_node(neg, mirrored, where, bit_width=1, signed=False, narrow=desc.narrow_range,
                                mode=_MIRRORED[mode])  # fmt: skip
            return self.g.node("Neg", [y], where)
        return self.quant_node(x, desc, where, desc.bit_width, desc.signed, desc.narrow_range, mode)

    def quant_node(
        self, x: str, desc: QuantDescription, where: str, bit_width: int, signed: bool, narrow: bool, mode: str
    ) -> str:
        """One ``Quant`` node with every attribute explicit."""
        inputs = [
            x,
            self.scale_const(desc, where),
            self.zero_point_const(desc, where),
            self.g.const(np.float32(bit_width), f"{where}.bit_width"),
        ]
        return self.custom("Quant", inputs, where, signed=int(signed), narrow=int(narrow), rounding_mode=mode)

    # ------------------------------------------------------------------ dialect hooks
    def quantize_act(self, x: str, desc: QuantDescription, where: str) -> str:
        return self.quant(x, desc, where)

    def quantized_const(self, value: Tensor, desc: QuantDescription, where: str) -> str:
        """A float initializer with the quantizer on it.

        The initializer holds the layer's float parameter when the exported
        quantizer reproduces the PyTorch values from it exactly (the usual
        case), otherwise the dequantized values themselves (on which the
        quantizer is the identity).
        """
        source = self.float_parameter(desc)
        value = value.detach().to(torch.float32)
        if source is None or source.shape != value.shape or not torch.equal(_fake_quant(source, desc), value):
            source = value
        init = self.g.const(source.cpu().numpy(), f"{where}.float", share=False)
        return self.quant(init, desc, where, on_grid=source is value)

    def float_parameter(self, desc: QuantDescription) -> Tensor | None:
        """The float weight or bias of the current layer that ``desc`` quantized (``None`` when unknown)."""
        node = self._node
        if node is None or node.op != "call_module" or desc.role not in ("weight", "bias"):
            return None
        param = getattr(self.traced.module(node), desc.role, None)
        if not isinstance(param, Tensor) or desc.quant_type == "ternary":
            return None
        return param.detach().to(torch.float32)

    def requantize(self, x: str, desc: QuantDescription, where: str) -> str:
        """``Trunc`` (v2) for truncation, ``Quant`` on the same grid for clamping."""
        if desc.role != "trunc":
            return self.quant_node(x, desc, where, desc.bit_width, desc.signed, desc.narrow_range, "ROUND")
        inner = desc.input
        if inner is None:
            raise self.fail(f"{where}: the truncated input grid is unknown", "feed the layer a valid QuantTensor")
        mode = self.rounding(desc, where)
        self.domain_version = max(self.domain_version, 2)
        inputs = [
            x,
            self.scale_const(inner, f"{where}.input"),
            self.zero_point_const(inner, f"{where}.input"),
            self.g.const(np.float32(inner.bit_width), f"{where}.input_bit_width"),
            self.scale_const(desc, where),
            self.g.const(np.float32(desc.bit_width), f"{where}.bit_width"),
        ]
        # TruncIntQuant never clamps (its output always fits): narrow=0 keeps Trunc's clamp a no-op
        return self.custom("Trunc", inputs, where, rounding_mode=mode, signed=int(desc.signed), narrow=0)


def _fields(d: QuantDescription) -> dict[str, Any]:
    return {f: getattr(d, f) for f in d.__dataclass_fields__}


def _fake_quant(x: Tensor, desc: QuantDescription) -> Tensor:
    """What the exported ``Quant`` / ``BipolarQuant`` computes from ``x`` (round half to even)."""
    scale = desc.scale.to(torch.float32)
    if desc.quant_type == "binary":
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x)) * scale
    fn = {"ROUND": torch.round, "FLOOR": torch.floor, "CEIL": torch.ceil, "ROUND_TO_ZERO": torch.trunc}.get(
        desc.rounding_mode.upper()
    )
    if fn is None:
        return torch.full_like(x, float("nan"))
    zp = desc.zero_point.to(torch.float32)
    code = torch.clamp(fn(x / scale + zp), desc.int_min, desc.int_max)
    return (code - zp) * scale


class QONNXExporter(QonnxRunExporter):
    """QONNX: Quant / BipolarQuant / Trunc nodes for every integer, binary and ternary quantizer (qonnx, FINN)."""

    name = "qonnx"
    description = "QONNX: Quant / BipolarQuant / Trunc nodes, any bit-width (qonnx execute_onnx; FINN's input)"
    translator = QONNXTranslator
