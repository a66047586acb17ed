"""An executor of the PyXIR / DPU contract: runs exported files in integer arithmetic.

No runtime for PyXIR-flavoured ONNX is published, so this module is the
consumer :meth:`brevitas_export_pyxir.exporter.PyXIRExporter.run` uses. It
reads only the file and the contract (:mod:`brevitas_export_pyxir.contract`),
never the model that was exported:

- ``fix(x, [b, f])``: the integer code ``round(x * 2**f)`` clamped to the
  ``b``-bit range, signed or unsigned by the contract's sign analysis,
  rounding half toward +infinity (the DPU's rounding); its real value is
  ``code * 2**-f``;
- ``Conv`` / ``Gemm``: integer input codes (``vai_quant_in``) times integer
  weights (fix point ``f_w``) accumulate exactly at fix point ``f_in + f_w``;
  the integer bias (fix point ``f_b``) is added exactly at the finer of the
  two fix points; the sum is rounded to ``vai_quant_out``;
- ``Relu``, ``MaxPool``, ``Pad`` (zeros) on the input codes, then re-rounded to
  ``vai_quant_out``; ``Add`` adds the codes of both inputs; ``AveragePool`` /
  ``GlobalAveragePool`` round ``sum / window`` to ``vai_quant_out`` exactly;
- ``Flatten`` (default domain) reshapes.

Every value between nodes is real (``float32``, exact: codes times powers of
two), so a file runs on real inputs and returns real outputs, which compare
directly with the PyTorch model in eval mode.

Example:
    >>> import numpy as np
    >>> from onnx import TensorProto, helper
    >>> node = helper.make_node("Relu", ["x"], ["y"], domain="pyxir", vai_quant=["vai_quant_in", "vai_quant_out"],
    ...                         vai_quant_in=[8, 2], vai_quant_out=[8, 1])
    >>> graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
    ...                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    >>> model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("pyxir", 1)])
    >>> run(model, np.array([-1.0, 0.3, 0.75], np.float32))[0].tolist()
    [0.0, 0.5, 1.0]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from brevitas.errors import ExportError
from brevitas_export_pyxir.contract import (
    ACT_BIT_WIDTH,
    DOMAIN,
    LAYOUT_NODE_TYPES,
    MAX_PARAM_BIT_WIDTH,
    NODE_TYPES,
    QUANT_KEYS,
    int_range,
    non_negative,
)

__all__ = ["ContractError", "ContractExecutor", "fix", "requantize", "run"]


class ContractError(ExportError, ValueError):
    """A file breaks the PyXIR contract, so the executor cannot run it."""


def fix(x: np.ndarray, bit_width: int, fix_point: int, signed: bool) -> np.ndarray:
    """Integer codes (int64) of the real values ``x`` on the grid ``[bit_width, fix_point]``.

    Example:
        >>> fix(np.array([-0.25, 0.25, 0.3, 100.0]), 8, 1, True).tolist()
        [0, 1, 1, 127]
    """
    scaled = np.asarray(x, dtype=np.float64) * np.float64(2.0) ** fix_point  # exact: a power of two
    codes = np.floor(scaled + 0.5)
    lo, hi = int_range(bit_width, signed)
    return np.clip(codes, lo, hi).astype(np.int64)


def requantize(
    codes: np.ndarray, fix_point: int, bit_width: int, out_fix_point: int, signed: bool, divisor: int = 1
) -> np.ndarray:
    """Integer ``codes`` at ``fix_point`` divided by ``divisor``, rounded (half up) to ``out_fix_point``, clamped.

    Exact integer arithmetic: ``round(codes * 2**(out_fix_point - fix_point) / divisor)``.

    Example:
        >>> requantize(np.array([-3, -2, 5, 6]), 2, 8, 0, True).tolist()  # -0.75, -0.5, 1.25, 1.5
        [-1, 0, 1, 2]
    """
    codes = np.asarray(codes)
    shift = int(out_fix_point) - int(fix_point)
    num = _as_big(codes, abs(shift) + 2 + int(divisor).bit_length())
    den = int(divisor)
    if shift >= 0:
        num = num * (1 << shift)
    else:
        den = den * (1 << -shift)
    out = (2 * num + den) // (2 * den)
    lo, hi = int_range(bit_width, signed)
    return np.clip(out, lo, hi).astype(np.int64)


def _as_big(codes: np.ndarray, extra_bits: int) -> np.ndarray:
    """``codes`` as int64 when ``extra_bits`` more bits cannot overflow, else as Python integers."""
    peak = int(np.abs(codes).max()) if codes.size else 0
    if peak.bit_length() + extra_bits < 62:
        return codes.astype(np.int64)
    return codes.astype(object)


def _align(codes: np.ndarray, from_fix_point: int, to_fix_point: int) -> np.ndarray:
    """Exact integer codes at the finer ``to_fix_point`` (``>= from_fix_point``)."""
    shift = to_fix_point - from_fix_point
    return _as_big(codes, shift + 1) * (1 << shift)


def _windows(x: np.ndarray, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int]) -> np.ndarray:
    """``(N, C, Ho, Wo, kh, kw)`` windows of a padded ``(N, C, H, W)`` array."""
    kh, kw = kernel
    dh, dw = dilations
    span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    win = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))
    win = win[:, :, :: strides[0], :: strides[1]]
    return win[..., ::dh, ::dw]


class ContractExecutor:
    """Runs one PyXIR file (a ``ModelProto``, serialized bytes or a path) on real inputs.

    Raises:
        ContractError: at construction, when the file breaks the contract
            (an unknown node, a missing ``vai_quant_*`` attribute, a float
            weight ...).
    """

    def __init__(self, model: onnx.ModelProto | bytes | str | os.PathLike[str]) -> None:
        if isinstance(model, (str, os.PathLike)):
            model = onnx.load(str(Path(model)))
        elif isinstance(model, bytes):
            model = onnx.load_from_string(model)
        self.model = model
        graph = model.graph
        self.params = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.inputs = [v.name for v in graph.input if v.name not in self.params]
        self.outputs = [v.name for v in graph.output]
        imports = {o.domain: o.version for o in model.opset_import}
        if any(n.domain == DOMAIN for n in graph.node) and DOMAIN not in imports:
            raise ContractError(f"the file uses domain {DOMAIN!r} without importing it")
        self.nodes = list(graph.node)
        for node in self.nodes:
            self._validate(node)

    # -------------------------------------------------------------- validation
    def _validate(self, node: onnx.NodeProto) -> None:
        where = f"node {node.name or node.op_type!r} ({node.op_type})"
        if node.domain in ("", "ai.onnx") and node.op_type in LAYOUT_NODE_TYPES:
            return
        if node.domain != DOMAIN or node.op_type not in NODE_TYPES:
            raise ContractError(f"{where}: domain {node.domain!r} op {node.op_type!r} is not part of the contract")
        attrs = _attributes(node)
        listed = [k.decode() if isinstance(k, bytes) else k for k in attrs.get("vai_quant", [])]
        present = [k for k in QUANT_KEYS if k in attrs]
        if listed != present:
            raise ContractError(f"{where}: vai_quant lists {listed} but the node carries {present}")
        for key in ("vai_quant_in", "vai_quant_out"):
            if key not in attrs:
                raise ContractError(f"{where}: {key} is missing")
            if len(attrs[key]) != 2 or attrs[key][0] != ACT_BIT_WIDTH:
                raise ContractError(f"{where}: {key}={attrs[key]} is not [{ACT_BIT_WIDTH}, fix_point]")
        for key, index in (("vai_quant_weights", 1), ("vai_quant_biases", 2)):
            if node.op_type not in ("Conv", "Gemm") or (index == 2 and (len(node.input) <= 2 or not node.input[2])):
                continue
            if key not in attrs or len(attrs[key]) != 2 or not 1 <= attrs[key][0] <= MAX_PARAM_BIT_WIDTH:
                raise ContractError(f"{where}: {key} must be [bit_width <= {MAX_PARAM_BIT_WIDTH}, fix_point]")
            value = self.params.get(node.input[index])
            if value is None or value.dtype.kind not in "iu":
                raise ContractError(f"{where}: input {node.input[index]!r} must be an integer initializer")

    # -------------------------------------------------------------- running
    def __call__(self, *inputs: Any) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            names = ", ".join(self.inputs)
            raise ValueError(f"the file takes {len(self.inputs)} input(s) ({names}), got {len(inputs)}")
        values: dict[str, np.ndarray] = {}
        nonneg: dict[str, bool] = {}
        for name, x in zip(self.inputs, inputs):
            if hasattr(x, "detach"):
                x = getattr(x, "value", x).detach().cpu().numpy()
            values[name] = np.asarray(x, dtype=np.float32)
            nonneg[name] = False
        for node in self.nodes:
            data = [i for i in node.input[:1]] if node.op_type != "Add" else list(node.input[:2])
            in_nonneg = [nonneg[i] for i in data]
            out_nonneg = non_negative(node.op_type, in_nonneg)
            if node.op_type == "Flatten":
                x = values[node.input[0]]
                values[node.output[0]] = x.reshape(x.shape[0], -1)
            else:
                values[node.output[0]] = self._dpu(node, [values[i] for i in data], all(in_nonneg), out_nonneg)
            nonneg[node.output[0]] = out_nonneg
        return [values[name] for name in self.outputs]

    def _dpu(self, node: onnx.NodeProto, data: list[np.ndarray], in_nonneg: bool, out_nonneg: bool) -> np.ndarray:
        attrs = _attributes(node)
        bw_in, f_in = attrs["vai_quant_in"]
        bw_out, f_out = attrs["vai_quant_out"]
        codes = [fix(x, bw_in, f_in, not in_nonneg) for x in data]
        op = node.op_type
        divisor = 1
        if op in ("Conv", "Gemm"):
            acc, f_acc = self._linear(node, attrs, codes[0], f_in)
        elif op == "Relu":
            acc, f_acc = np.maximum(codes[0], 0), f_in
        elif op == "Add":
            acc, f_acc = codes[0] + codes[1], f_in
        elif op == "Pad":
            t, left, b, r = attrs["pads"]
            acc, f_acc = np.pad(codes[0], ((0, 0), (0, 0), (t, b), (left, r))), f_in
        elif op == "MaxPool":
            acc, f_acc = self._max_pool(attrs, codes[0]), f_in
        elif op == "AveragePool":
            kh, kw = attrs["kernel_shape"]
            win = _windows(codes[0], (kh, kw), attrs.get("strides", [1, 1]), (1, 1))
            acc, f_acc, divisor = win.sum(axis=(-1, -2)), f_in, kh * kw
        else:  # GlobalAveragePool
            acc, f_acc = codes[0].sum(axis=(2, 3), keepdims=True), f_in
            divisor = int(codes[0].shape[2] * codes[0].shape[3])
        out = requantize(acc, f_acc, bw_out, f_out, not out_nonneg, divisor)
        return (out.astype(np.float64) * np.float64(2.0) ** -f_out).astype(np.float32)

    def _linear(self, node: onnx.NodeProto, attrs: dict[str, Any], x: np.ndarray, f_in: int) -> tuple[np.ndarray, int]:
        w = self.params[node.input[1]].astype(np.int64)
        f_w = attrs["vai_quant_weights"][1]
        if node.op_type == "Gemm":
            if attrs.get("transB", 0) != 1:
                raise ContractError(f"Gemm {node.name!r} must have transB=1")
            acc = x @ w.T
        else:
            acc = self._conv(attrs, x, w)
        f_acc = f_in + f_w
        if len(node.input) > 2 and node.input[2]:
            bias = self.params[node.input[2]].astype(np.int64).reshape(-1)
            f_b = attrs["vai_quant_biases"][1]
            f = max(f_acc, f_b)
            shape = (1, -1) + (1,) * (acc.ndim - 2)
            acc = _align(acc, f_acc, f) + _align(bias, f_b, f).reshape(shape)
            f_acc = f
        return acc, f_acc

    @staticmethod
    def _conv(attrs: dict[str, Any], x: np.ndarray, w: np.ndarray) -> np.ndarray:
        kernel = list(attrs.get("kernel_shape", w.shape[2:]))
        strides = list(attrs.get("strides", [1, 1]))
        dilations = list(attrs.get("dilations", [1, 1]))
        group = int(attrs.get("group", 1))
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        pads = [0, 0, 0, 0] if auto_pad == "VALID" else list(attrs.get("pads", [0, 0, 0, 0]))
        t, left, b, r = pads
        x = np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)))
        win = _windows(x, kernel, strides, dilations)  # N, C, Ho, Wo, kh, kw
        cin = x.shape[1] // group
        cout = w.shape[0] // group
        parts = []
        for gi in range(group):
            xs = win[:, gi * cin : (gi + 1) * cin]
            ws = w[gi * cout : (gi + 1) * cout]
            parts.append(np.einsum("nchwij,ocij->nohw", xs, ws, optimize=True))
        return np.concatenate(parts, axis=1)

    @staticmethod
    def _max_pool(attrs: dict[str, Any], x: np.ndarray) -> np.ndarray:
        kernel = list(attrs["kernel_shape"])
        t, left, b, r = list(attrs.get("pads", [0, 0, 0, 0]))
        low = np.iinfo(np.int64).min
        x = np.pad(x, ((0, 0), (0, 0), (t, b), (left, r)), constant_values=low)
        win = _windows(x, kernel, list(attrs.get("strides", [1, 1])), list(attrs.get("dilations", [1, 1])))
        return win.max(axis=(-1, -2))


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def run(model: onnx.ModelProto | bytes | str | os.PathLike[str], *inputs: Any) -> list[np.ndarray]:
    """Run a PyXIR file on ``inputs`` (tensors or arrays, in graph-input order); outputs as numpy arrays."""
    return ContractExecutor(model)(*inputs)
