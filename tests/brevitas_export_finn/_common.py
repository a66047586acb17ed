"""Helpers shared by the ``qonnx`` and ``finn`` exporter tests: reference output, export-and-run, graph reading.

Imported as ``_common`` (pytest puts this folder on ``sys.path``, as for ``tests/integration/_fuzz_nets.py``).

Example:
    >>> import torch
    >>> from torch import nn
    >>> reference(nn.Identity(), torch.ones(1, 2)).tolist()
    [[1.0, 1.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

import brevitas.export as bx
from brevitas_export_finn.runtime import run

__all__ = ["DOMAIN", "attrs", "export_and_run", "initializer", "ops", "reference"]

#: The ONNX domain of qonnx's custom operators (Quant, BipolarQuant, Trunc, MultiThreshold).
DOMAIN = "qonnx.custom_op.general"


def reference(model: nn.Module, *inputs: Any) -> np.ndarray:
    """The model's output in eval mode without gradients, as a NumPy array (a QuantTensor's value)."""
    model.eval()
    with torch.no_grad():
        out = model(*inputs)
    return getattr(out, "value", out).numpy()


def export_and_run(
    model: nn.Module, x: Any, exporter: str, **options: Any
) -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """Export ``model`` with ``exporter`` and run it: ``(exported model, its output, PyTorch's output)``."""
    expected = reference(model, x)
    exported = bx.export(model, x, exporter=exporter, **options)
    return exported, run(exported, x)[0], expected


def ops(m: onnx.ModelProto) -> list[str]:
    """The op types of the graph's nodes, in order."""
    return [n.op_type for n in m.graph.node]


def attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def initializer(m: onnx.ModelProto, name: str) -> np.ndarray:
    """The initializer called ``name`` as a NumPy array."""
    return numpy_helper.to_array(next(t for t in m.graph.initializer if t.name == name))
