"""Entry point of the onnx exporter plugin: registers ``onnx-qcdq`` and ``onnx-qop``."""

from __future__ import annotations

from brevitas.plugins import hookimpl
from brevitas.plugins.registry import Registry

__all__ = ["brevitas_register"]


@hookimpl
def brevitas_register(registry: Registry) -> None:
    """Register the standard ONNX exporters (imported lazily: onnx loads only when one is used)."""
    from brevitas_export_onnx.qcdq import QCDQExporter
    from brevitas_export_onnx.qop import QOpExporter

    registry.add("exporter", "onnx-qcdq", QCDQExporter, description=QCDQExporter.description)
    registry.add("exporter", "onnx-qop", QOpExporter, description=QOpExporter.description)
