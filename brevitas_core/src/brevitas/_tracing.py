"""Whether a compiler or tracer is running: the one check every eager-only shortcut uses.

Example:
    >>> from brevitas._tracing import tracing
    >>> tracing()
    False
"""

from __future__ import annotations

import torch

__all__ = ["tracing"]


def tracing() -> bool:
    """``torch.compile`` / ``torch.export``, ``torch.jit.trace`` or ``torch.fx`` symbolic tracing is running."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return True
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing

    return is_fx_symbolic_tracing()
