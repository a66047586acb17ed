"""Entry point of the finn exporter plugin: registers ``qonnx`` and ``finn``."""

from __future__ import annotations

from brevitas.plugins import hookimpl
from brevitas.plugins.registry import Registry

__all__ = ["brevitas_register"]


@hookimpl
def brevitas_register(registry: Registry) -> None:
    """Register the QONNX and FINN-ONNX exporters (imported lazily: onnx loads only when one is used)."""
    from brevitas_export_finn.finn import FINNExporter
    from brevitas_export_finn.qonnx import QONNXExporter

    registry.add("exporter", "qonnx", QONNXExporter, description=QONNXExporter.description)
    registry.add("exporter", "finn", FINNExporter, description=FINNExporter.description)
