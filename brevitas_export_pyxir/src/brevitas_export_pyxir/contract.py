"""The PyXIR / DPU attribute contract, in one place: names, node set, limits, and the sign rule.

What the exporter writes and what :mod:`brevitas_export_pyxir.executor`
reads (see ``FORMATS.md``, section PyXIR):

- every DPU node is in the operator domain :data:`DOMAIN` (opset import
  version :data:`DOMAIN_VERSION`); the node types are :data:`NODE_TYPES`
  (``Pad`` only in DPUv2 files, before a ``Conv``). A standard ``Flatten``
  (default domain, ``axis=1``) may reshape a feature map for a ``Gemm``: it
  moves data and quantizes nothing;
- attribute ``vai_quant`` lists, in the order of :data:`QUANT_KEYS`, which of
  ``vai_quant_in``, ``vai_quant_out``, ``vai_quant_weights``,
  ``vai_quant_biases`` the node carries; each is ``[bit_width, fix_point]``
  with ``scale = 2 ** -fix_point``;
- weights and biases are integer initializers (int8, or uint8 for an
  unsigned quantizer);
- activations are 8-bit (:data:`ACT_BIT_WIDTH`), weights and biases at most
  8 bits (:data:`MAX_PARAM_BIT_WIDTH`).

``[bit_width, fix_point]`` carries no sign, while Vitis-AI's ``fix`` clamps
to the signed or the unsigned range. The sign is therefore read from the
graph (:data:`NON_NEGATIVE_OUTPUT`, :func:`non_negative`): a tensor that
cannot be negative is quantized with the unsigned range. Graph inputs and
the outputs of ``Conv`` and ``Gemm`` may be negative; the output of ``Relu``
cannot; ``MaxPool``, ``AveragePool``, ``GlobalAveragePool``, ``Pad`` and
``Flatten`` keep the sign of their input; ``Add`` cannot be negative when no
input can. ``vai_quant_in`` quantizes every data input of a node with the
unsigned range exactly when none of them can be negative.

Example:
    >>> fix_point_of(0.0078125), int_range(8, signed=False)
    (7, (0, 255))
    >>> non_negative("Relu", [False]), non_negative("Add", [True, False])
    (True, False)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "ACT_BIT_WIDTH",
    "DOMAIN",
    "DOMAIN_VERSION",
    "LAYOUT_NODE_TYPES",
    "MAX_PARAM_BIT_WIDTH",
    "NODE_TYPES",
    "NON_NEGATIVE_OUTPUT",
    "QUANT_KEYS",
    "dpu_round",
    "fix_point_of",
    "int_range",
    "non_negative",
]

#: operator domain of every DPU node
DOMAIN = "pyxir"
#: its opset import version
DOMAIN_VERSION = 1
#: the DPU node types (``Pad``: DPUv2 files only, before ``Conv``)
NODE_TYPES = ("Conv", "Gemm", "Relu", "Add", "MaxPool", "AveragePool", "GlobalAveragePool", "Pad")
#: standard ONNX nodes allowed between DPU nodes (data movement only)
LAYOUT_NODE_TYPES = ("Flatten",)
#: the quantization attributes, in the order ``vai_quant`` lists them
QUANT_KEYS = ("vai_quant_in", "vai_quant_out", "vai_quant_weights", "vai_quant_biases")
#: bit-width of every activation (``vai_quant_in`` / ``vai_quant_out``)
ACT_BIT_WIDTH = 8
#: largest bit-width of weights and biases
MAX_PARAM_BIT_WIDTH = 8

#: how a node's output sign follows from its inputs': ``True`` never negative,
#: ``False`` may be negative, ``"input"`` like its input(s) (all non-negative)
NON_NEGATIVE_OUTPUT: dict[str, bool | str] = {
    "Conv": False,
    "Gemm": False,
    "Relu": True,
    "Add": "input",
    "MaxPool": "input",
    "AveragePool": "input",
    "GlobalAveragePool": "input",
    "Pad": "input",
    "Flatten": "input",
}


def non_negative(op_type: str, inputs_non_negative: Sequence[bool]) -> bool:
    """Whether the output of an ``op_type`` node cannot be negative, given which inputs cannot.

    Example:
        >>> non_negative("MaxPool", [True]), non_negative("Conv", [True])
        (True, False)
    """
    rule = NON_NEGATIVE_OUTPUT[op_type]
    if rule == "input":
        return bool(inputs_non_negative) and all(inputs_non_negative)
    return bool(rule)


def fix_point_of(scale: float) -> int:
    """``-log2(scale)`` of a power-of-two scale.

    Raises:
        ValueError: ``scale`` is not a positive power of two.

    Example:
        >>> fix_point_of(4.0)
        -2
    """
    scale = float(scale)
    if not scale > 0.0:
        raise ValueError(f"scale {scale!r} is not positive")
    mantissa, exponent = math.frexp(scale)
    if mantissa != 0.5:
        raise ValueError(f"scale {scale!r} is not a power of two")
    return -(exponent - 1)


def int_range(bit_width: int, signed: bool) -> tuple[int, int]:
    """The full integer range of ``bit_width`` bits (the DPU's ``fix`` is never narrow).

    Example:
        >>> int_range(8, signed=True)
        (-128, 127)
    """
    if signed:
        return -(2 ** (bit_width - 1)), 2 ** (bit_width - 1) - 1
    return 0, 2**bit_width - 1


def dpu_round(numerator: int, denominator: int) -> int:
    """``round(numerator / denominator)`` with ties toward +infinity (the DPU's rounding), exactly.

    Example:
        >>> dpu_round(-5, 2), dpu_round(5, 2), dpu_round(-7, 4)
        (-2, 3, -2)
    """
    return (2 * numerator + denominator) // (2 * denominator)
