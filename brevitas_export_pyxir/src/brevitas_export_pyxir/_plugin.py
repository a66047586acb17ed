"""Entry point of the pyxir exporter plugin."""

from __future__ import annotations

from brevitas.plugins import hookimpl
from brevitas.plugins.registry import Registry

__all__ = ["brevitas_register"]


@hookimpl
def brevitas_register(registry: Registry) -> None:
    """Register this distribution's exporters (added as they are built)."""
