"""Run QONNX / FINN-ONNX files with qonnx's executor (the consumer that proves ``qonnx`` and ``finn``).

qonnx is needed only here (``pip install qonnx``); exporting does not import it.

Example:
    >>> import numpy as np
    >>> from brevitas_export_onnx.graph import GraphBuilder
    >>> g = GraphBuilder(opset=13, domains={"qonnx.custom_op.general": 1})
    >>> x = g.input("x", np.float32, [1, 3])
    >>> s, z, b = g.const(np.float32(0.5)), g.const(np.float32(0.0)), g.const(np.float32(3.0))
    >>> y = g.node("Quant", [x, s, z, b], "q", domain="qonnx.custom_op.general", signed=1, narrow=0,
    ...            rounding_mode="ROUND")
    >>> _ = g.output(y, np.float32, [1, 3])
    >>> run(g.build(), np.array([[0.26, -9.0, 0.75]], np.float32))[0].tolist()
    [[0.5, -2.0, 1.0]]
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from brevitas.errors import ExportError
from brevitas_export_finn.cleanup import infer_shapes, missing_shapes

__all__ = ["as_array", "load", "run"]


def load(model: Any) -> onnx.ModelProto:
    """An ``onnx.ModelProto`` from a model, serialized bytes, a path, or a qonnx ``ModelWrapper``."""
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, bytes):
        return onnx.load_from_string(model)
    if isinstance(model, (str, os.PathLike)):
        return onnx.load(str(Path(model)))
    inner = getattr(model, "model", None)
    if isinstance(inner, onnx.ModelProto):
        return inner
    raise TypeError(f"cannot run a {type(model).__name__}; pass an onnx.ModelProto, bytes or a path")


def as_array(x: Any) -> np.ndarray:
    """A float32 array from a tensor, a QuantTensor (its integer codes) or anything numpy takes."""
    from brevitas.quant_tensor import QuantTensor

    if isinstance(x, QuantTensor):
        from brevitas_export_finn.base import input_codes

        x = input_codes(x)
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float32)


def _with_static_shapes(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy whose symbolic input dimensions are set from ``feeds`` and whose shapes are inferred again."""
    symbolic = any(
        d.HasField("dim_param") or not d.HasField("dim_value")
        for v in list(model.graph.input) + list(model.graph.output)
        for d in v.type.tensor_type.shape.dim
    )
    if not symbolic:
        return model
    fixed = copy.deepcopy(model)
    for v in fixed.graph.input:
        if v.name in feeds:
            dims = v.type.tensor_type.shape.dim
            for d, size in zip(dims, feeds[v.name].shape):
                d.Clear()
                d.dim_value = int(size)
    for v in fixed.graph.output:
        v.type.tensor_type.ClearField("shape")
    del fixed.graph.value_info[:]
    return infer_shapes(fixed, outputs=True)


def run(model: Any, *inputs: Any) -> list[np.ndarray]:
    """Execute ``model`` with ``qonnx.core.onnx_exec.execute_onnx``; outputs in graph-output order.

    Args:
        model: an ``onnx.ModelProto``, bytes, a path or a ``ModelWrapper``.
        inputs: one per graph input (tensors, arrays, or QuantTensors for a
            quantized graph input, fed as their integer codes).
    """
    try:
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.core.onnx_exec import execute_onnx
    except ImportError as exc:  # pragma: no cover - qonnx is installed with the tests
        raise ExportError(
            "running QONNX / FINN-ONNX files needs the qonnx package; install it with `pip install qonnx`"
        ) from exc
    proto = load(model)
    initializers = {t.name for t in proto.graph.initializer}
    names = [v.name for v in proto.graph.input if v.name not in initializers]
    if len(inputs) != len(names):
        raise ValueError(f"the model takes {len(names)} input(s) ({', '.join(names)}), got {len(inputs)}")
    feeds = {name: as_array(x) for name, x in zip(names, inputs)}
    proto = _with_static_shapes(proto, feeds)
    missing = missing_shapes(proto)
    if missing:
        raise ExportError(f"tensors without a shape, which execute_onnx needs: {', '.join(missing[:5])}")
    out = execute_onnx(ModelWrapper(proto), feeds)
    return [np.asarray(out[o.name]) for o in proto.graph.output]
