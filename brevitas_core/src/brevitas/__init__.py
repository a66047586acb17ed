"""Brevitas: quantization-aware training for PyTorch.

``import brevitas`` is cheap: it loads no plugin and imports no submodule
beyond the settings and errors. Submodules (``brevitas.nn``,
``brevitas.quant``, ``brevitas.export`` ...) load on first use, and plugins
load on the first registry lookup.

Example:
    >>> import brevitas
    >>> isinstance(brevitas.__version__, str)
    True
"""

from __future__ import annotations

from typing import Any

from brevitas.errors import BrevitasError

__all__ = ["BrevitasError", "__version__", "describe"]

__version__ = "0.3.0"


def __getattr__(name: str) -> Any:
    if name == "describe":
        from brevitas.quantizer_info import describe

        return describe
    raise AttributeError(f"module 'brevitas' has no attribute {name!r}")
