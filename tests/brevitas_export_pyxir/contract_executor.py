"""An executor of the PyXIR contract for the tests, written from FORMATS.md (section PyXIR), not from the exporter.

It shares no code with ``brevitas_export_pyxir`` (whose own executor is
numpy integer arithmetic); this one computes with integer-valued float64
tensors in torch, which are exact below 2**53. The two cross-check each
other, and this one is the reference the exported files are proved against.

The contract, as used here:

- ``fix(x, [b, f])``: ``code = floor(x * 2**f + 1/2)`` (the DPU rounds a
  negative .5 toward +infinity), clamped to the b-bit range; value
  ``code * 2**-f``.
- The range is unsigned for a tensor that cannot be negative, signed
  otherwise: graph inputs and Conv / Gemm outputs can be negative, Relu
  outputs cannot, MaxPool / AveragePool / GlobalAveragePool / Pad / Flatten
  outputs can when their input can, an Add output can when either input can.
  vai_quant_in reads the inputs of a node unsigned only when no input can be
  negative.
- Nodes in domain ``pyxir``: Conv (``pads`` or ``auto_pad='VALID'``), Gemm
  (``transB=1``), Relu, Add, MaxPool, AveragePool, GlobalAveragePool, Pad
  (``pads = [top, left, bottom, right]``, zeros); standard Flatten. Each
  quantizes its data inputs with vai_quant_in and its result with
  vai_quant_out; weights / biases are integer initializers at the fix points
  of vai_quant_weights / vai_quant_biases.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper

__all__ = ["execute", "fix_code", "sign_analysis"]

F64 = torch.float64


def fix_code(x: torch.Tensor, bit_width: int, fix_point: int, signed: bool) -> torch.Tensor:
    """The integer codes (float64 holding integers) of ``x`` on ``[bit_width, fix_point]``."""
    lo = -(2 ** (bit_width - 1)) if signed else 0
    hi = 2 ** (bit_width - 1) - 1 if signed else 2**bit_width - 1
    return torch.clamp(torch.floor(x.to(F64) * 2.0**fix_point + 0.5), lo, hi)


def sign_analysis(graph: onnx.GraphProto) -> dict[str, bool]:
    """Tensor name -> whether it can be negative."""
    inits = {t.name for t in graph.initializer}
    negative = {v.name: True for v in graph.input if v.name not in inits}
    for node in graph.node:
        op = node.op_type
        if op in ("Conv", "Gemm"):
            negative[node.output[0]] = True
        elif op == "Relu":
            negative[node.output[0]] = False
        elif op == "Add":
            negative[node.output[0]] = negative[node.input[0]] or negative[node.input[1]]
        else:
            negative[node.output[0]] = negative[node.input[0]]
    return negative


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        out[a.name] = value
    return out


def _requant(acc: torch.Tensor, acc_fix_point: int, out: list[int], signed: bool) -> torch.Tensor:
    """Codes at ``acc_fix_point`` rounded to the grid ``out`` (codes)."""
    bit_width, fix_point = out
    return fix_code(acc * 2.0 ** (-acc_fix_point), bit_width, fix_point, signed)


def _pad4(x: torch.Tensor, pads: list[int], value: float = 0.0) -> torch.Tensor:
    top, left, bottom, right = pads
    return F.pad(x, (left, right, top, bottom), value=value)


def execute(model: onnx.ModelProto, *inputs: np.ndarray) -> list[np.ndarray]:
    """Run ``model`` on real-valued ``inputs``; real-valued outputs."""
    graph = model.graph
    params = {t.name: torch.from_numpy(numpy_helper.to_array(t).astype(np.float64)) for t in graph.initializer}
    for t in graph.initializer:
        assert numpy_helper.to_array(t).dtype.kind in "iu", f"initializer {t.name} is not an integer tensor"
    names = [v.name for v in graph.input if v.name not in params]
    env: dict[str, torch.Tensor] = {n: torch.as_tensor(np.asarray(x), dtype=F64) for n, x in zip(names, inputs)}
    negative = sign_analysis(graph)
    for node in graph.node:
        a = _attrs(node)
        op = node.op_type
        if op == "Flatten":
            assert node.domain == "" and a.get("axis", 1) == 1
            env[node.output[0]] = torch.flatten(env[node.input[0]], 1)
            continue
        assert node.domain == "pyxir", f"{op} in domain {node.domain!r}"
        data = list(node.input[:2]) if op == "Add" else [node.input[0]]
        in_signed = any(negative[n] for n in data)
        out_signed = negative[node.output[0]]
        b_in, f_in = a["vai_quant_in"]
        codes = [fix_code(env[n], b_in, f_in, in_signed) for n in data]
        x = codes[0]
        acc_fp = f_in
        if op in ("Conv", "Gemm"):
            w = params[node.input[1]]
            f_w = a["vai_quant_weights"][1]
            if op == "Conv":
                if a.get("auto_pad", "NOTSET") != "VALID":
                    x = _pad4(x, list(a.get("pads", [0, 0, 0, 0])))
                acc = F.conv2d(x, w, None, a.get("strides", [1, 1]), 0, a.get("dilations", [1, 1]), a.get("group", 1))
            else:
                assert a["transB"] == 1
                acc = x @ w.T
            acc_fp = f_in + f_w
            if len(node.input) > 2 and node.input[2]:
                f_b = a["vai_quant_biases"][1]
                bias = params[node.input[2]].reshape([1, -1] + [1] * (acc.dim() - 2))
                common = max(acc_fp, f_b)
                acc = acc * 2.0 ** (common - acc_fp) + bias * 2.0 ** (common - f_b)
                acc_fp = common
        elif op == "Relu":
            acc = torch.clamp(x, min=0)
        elif op == "Add":
            acc = codes[0] + codes[1]
        elif op == "Pad":
            acc = _pad4(x, a["pads"])
        elif op == "MaxPool":
            padded = _pad4(x, list(a.get("pads", [0, 0, 0, 0])), value=float("-inf"))
            acc = F.max_pool2d(padded, a["kernel_shape"], a.get("strides", [1, 1]), 0, a.get("dilations", [1, 1]))
        elif op == "AveragePool":
            assert not any(a.get("pads", [0, 0, 0, 0]))
            acc = F.avg_pool2d(x, a["kernel_shape"], a.get("strides", [1, 1]))
        elif op == "GlobalAveragePool":
            acc = x.mean(dim=(2, 3), keepdim=True)
        else:
            raise AssertionError(f"{op} is not a PyXIR node of the contract")
        out_codes = _requant(acc, acc_fp, a["vai_quant_out"], out_signed)
        env[node.output[0]] = out_codes * 2.0 ** (-a["vai_quant_out"][1])
    return [env[v.name].to(torch.float32).numpy() for v in graph.output]
