"""Entry point of the standard plugin: registers every standard component."""

from __future__ import annotations

import importlib

from brevitas.plugins import hookimpl
from brevitas.plugins.registry import Registry

__all__ = ["brevitas_register"]

#: modules of this package exposing ``register(registry)``, in order
_MODULES = (
    "brevitas_plugins.core.float_to_int",
    "brevitas_plugins.core.bit_width",
    "brevitas_plugins.core.restrict_val",
    "brevitas_plugins.core.stats",
    "brevitas_plugins.core.scaling",
    "brevitas_plugins.core.zero_point",
    "brevitas_plugins.core.quant",
    "brevitas_plugins.core.bias",
    "brevitas_plugins.core.solver_parts",
    "brevitas_plugins.export.torch_quantized",
)


@hookimpl
def brevitas_register(registry: Registry) -> None:
    """Register the standard scaling, bit-width, zero-point, rounding and quantizers."""
    for name in _MODULES:
        importlib.import_module(name).register(registry)
