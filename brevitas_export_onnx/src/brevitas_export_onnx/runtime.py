"""Run exported ONNX models with onnxruntime (the consumer that proves ``onnx-qcdq`` and ``onnx-qop``).

Example:
    >>> import numpy as np
    >>> from brevitas_export_onnx.graph import GraphBuilder
    >>> g = GraphBuilder(opset=13)
    >>> x = g.input("x", np.float32, ["batch", 2])
    >>> _ = g.output(g.node("Relu", [x], "act"), np.float32, ["batch", 2])
    >>> run(g.build(), np.array([[-1.0, 2.0]], np.float32))[0].tolist()
    [[0.0, 2.0]]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OPTIMIZATION_LEVELS", "run", "session"]

#: names accepted for ``optimize``
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def _level(optimize: bool | str) -> Any:
    import onnxruntime as ort

    if optimize is True:
        optimize = "all"
    elif optimize is False:
        optimize = "disable"
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimize not in levels:
        raise ValueError(f"optimize={optimize!r}; use True, False or one of {', '.join(OPTIMIZATION_LEVELS)}")
    return levels[optimize]


def session(model: Any, optimize: bool | str = False, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU.

    Args:
        model: an ``onnx.ModelProto``, serialized bytes, or a path.
        optimize: ``False`` (graph optimizations disabled: the exported
            arithmetic runs as written), ``True`` (onnxruntime's default, all
            optimizations, integer kernels fused) or a level name.
        threads: intra-op threads (default: onnxruntime's choice).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = _level(optimize)
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    if isinstance(model, (str, os.PathLike)):
        source: Any = str(Path(model))
    elif isinstance(model, bytes):
        source = model
    else:
        source = model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run(model: Any, *inputs: Any, optimize: bool | str = False, threads: int | None = None) -> list[np.ndarray]:
    """Run ``model`` on ``inputs`` (tensors or arrays, in graph-input order); outputs as numpy arrays."""
    sess = session(model, optimize, threads)
    names = [i.name for i in sess.get_inputs()]
    if len(inputs) != len(names):
        raise ValueError(f"the model takes {len(names)} input(s) ({', '.join(names)}), got {len(inputs)}")
    feed = {}
    for name, x in zip(names, inputs):
        if hasattr(x, "detach"):
            x = getattr(x, "value", x).detach().cpu().numpy()
        feed[name] = np.asarray(x)
    return list(sess.run(None, feed))
