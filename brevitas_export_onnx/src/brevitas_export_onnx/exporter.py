"""The base of every ONNX exporter: trace, translate with a dialect, check, save, run.

A concrete exporter names its translator class; everything else is shared::

    class QCDQExporter(OnnxExporter):
        name = "onnx-qcdq"
        translator = QCDQTranslator

The FINN and PyXIR exporters reuse it the same way, with their own
translators and, where their consumer is not onnxruntime, their own ``run``.

Options given to :func:`brevitas.export.export` reach the translator:
``opset_version``, ``dynamic_batch`` and the dialect's own (see each
translator's ``OPTIONS``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import onnx
from torch import nn

from brevitas.export.base import ExportCheckError, Exporter, Problem
from brevitas.export.trace import trace
from brevitas_export_onnx.translate import OnnxTranslator

__all__ = ["OnnxExporter"]


class OnnxExporter(Exporter):
    """Shared machinery of the ONNX exporters (subclasses set ``name`` and ``translator``).

    Example:
        >>> import torch
        >>> exporter = OnnxExporter()
        >>> model = exporter.export(torch.nn.Sequential(torch.nn.Linear(3, 2)), (torch.randn(1, 3),))
        >>> [n.op_type for n in model.graph.node]
        ['Gemm']
    """

    name = "onnx"
    suffix = ".onnx"
    consumer = "onnxruntime"
    translator: ClassVar[type[OnnxTranslator]] = OnnxTranslator

    def __init__(self) -> None:
        self._pending: tuple[Any, tuple[onnx.ModelProto | None, list[Problem]]] | None = None

    def _key(self, model: nn.Module, args: tuple[Any, ...], options: dict[str, Any]) -> Any:
        return (id(model), tuple(id(a) for a in args), repr(sorted(options.items())))

    def translate(self, model: nn.Module, args: tuple[Any, ...], **options: Any) -> tuple[Any, list[Problem]]:
        """Trace and translate: the ONNX model (or ``None``) and the problems found."""
        traced = trace(model, args)
        return self.translator(traced, **options).translate()

    def check(self, model: nn.Module, args: tuple[Any, ...], **options: Any) -> list[Problem]:
        result = self.translate(model, args, **options)
        self._pending = (self._key(model, args, options), result)
        return list(result[1])

    def export(self, model: nn.Module, args: tuple[Any, ...], **options: Any) -> onnx.ModelProto:
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == self._key(model, args, options):
            onnx_model, problems = pending[1]
        else:
            onnx_model, problems = self.translate(model, args, **options)
        if problems or onnx_model is None:
            raise ExportCheckError(self.name, problems)
        return onnx_model

    def save(self, artifact: Any, path: Path) -> None:
        onnx.save(artifact, str(path))

    def run(self, artifact: Any, *inputs: Any, optimize: bool | str = False) -> list[Any]:
        """Run with onnxruntime; ``optimize=False`` disables graph optimizations (see :mod:`.runtime`)."""
        from brevitas_export_onnx.runtime import run

        return run(artifact, *inputs, optimize=optimize)
