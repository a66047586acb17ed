"""The ``pyxir`` (alias ``pyxir-dpuv1``) and ``pyxir-dpuv2`` exporters: PyXIR-flavoured ONNX for the Vitis-AI DPU.

Both trace the model, check it against the DPU's constraints (every problem
names the layer and a :mod:`brevitas.quant.fixed_point` quantizer that meets
the constraint), and write ONNX whose DPU nodes are in domain ``pyxir``
(opset import version 1), checked by ``onnx.checker`` (full check). ``run``
executes a file with :mod:`brevitas_export_pyxir.executor`, the executor of
the PyXIR contract (no runtime for the format is published).

Example:
    >>> import torch
    >>> import brevitas.export as bx
    >>> from brevitas.nn import QuantIdentity, QuantLinear
    >>> from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint
    >>> model = torch.nn.Sequential(
    ...     QuantIdentity(act_quant=Int8ActPerTensorFixedPoint),
    ...     QuantLinear(4, 2, bias=False, weight_quant=Int8WeightPerTensorFixedPoint,
    ...                 output_quant=Int8ActPerTensorFixedPoint))
    >>> x = torch.randn(3, 4)
    >>> onnx_model = bx.export(model, x, exporter="pyxir")
    >>> gemm = onnx_model.graph.node[0]
    >>> gemm.domain, gemm.op_type, [a.strings for a in gemm.attribute if a.name == "vai_quant"][0]
    ('pyxir', 'Gemm', [b'vai_quant_in', b'vai_quant_out', b'vai_quant_weights'])
    >>> out = bx.get_exporter("pyxir").run(onnx_model, x)[0]
    >>> bool((torch.from_numpy(out) == model.eval()(x)).all())
    True
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np

from brevitas_export_onnx.exporter import OnnxExporter
from brevitas_export_onnx.translate import OnnxTranslator
from brevitas_export_pyxir.translate import DPUv1Translator, DPUv2Translator

__all__ = ["PyXIRDPUv2Exporter", "PyXIRExporter"]


class PyXIRExporter(OnnxExporter):
    """PyXIR-flavoured ONNX for the Vitis-AI DPUv1 (domain pyxir, vai_quant fix-point attributes)."""

    name = "pyxir"
    description = "PyXIR-flavoured ONNX for the Vitis-AI DPUv1 (domain pyxir, vai_quant fix points; contract executor)"
    consumer = "PyXIR contract executor (brevitas_export_pyxir.executor)"
    translator: ClassVar[type[OnnxTranslator]] = DPUv1Translator

    def run(self, artifact: Any, *inputs: Any) -> list[np.ndarray]:
        """Execute ``artifact`` (a ``ModelProto``, bytes or a path) with the PyXIR contract executor."""
        from brevitas_export_pyxir.executor import run

        if isinstance(artifact, os.PathLike):
            artifact = os.fspath(artifact)
        return run(artifact, *inputs)


class PyXIRDPUv2Exporter(PyXIRExporter):
    """PyXIR-flavoured ONNX for the Vitis-AI DPUv2: as ``pyxir``, with an explicit Pad before each padded Conv."""

    name = "pyxir-dpuv2"
    description = "PyXIR-flavoured ONNX for the Vitis-AI DPUv2 (explicit Pad before Conv; contract executor)"
    translator: ClassVar[type[OnnxTranslator]] = DPUv2Translator
