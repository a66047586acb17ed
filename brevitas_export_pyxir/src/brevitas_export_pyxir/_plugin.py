"""Entry point of the pyxir exporter plugin: registers ``pyxir`` (alias ``pyxir-dpuv1``) and ``pyxir-dpuv2``."""

from __future__ import annotations

from brevitas.plugins import hookimpl
from brevitas.plugins.registry import Registry

__all__ = ["brevitas_register"]


@hookimpl
def brevitas_register(registry: Registry) -> None:
    """Register the PyXIR exporters (imported here; onnx loads only when one is used)."""
    from brevitas_export_pyxir.exporter import PyXIRDPUv2Exporter, PyXIRExporter

    registry.add("exporter", "pyxir", PyXIRExporter, description=PyXIRExporter.description)
    registry.add("exporter", "pyxir-dpuv1", PyXIRExporter, description=f"alias of pyxir: {PyXIRExporter.description}")
    registry.add("exporter", "pyxir-dpuv2", PyXIRDPUv2Exporter, description=PyXIRDPUv2Exporter.description)
