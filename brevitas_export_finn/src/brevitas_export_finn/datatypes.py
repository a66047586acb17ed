"""FINN / QONNX datatype names and the ``finn_datatype`` tensor annotations of an ONNX graph.

A datatype name says which integers a tensor holds: ``BIPOLAR`` (-1, +1),
``TERNARY`` (-1, 0, +1), ``BINARY`` (0, 1), ``INTn`` and ``UINTn``. They are
stored in ``graph.quantization_annotation`` as entries
``TensorAnnotation(tensor_name, [{key: "finn_datatype", value: NAME}])``,
which is where qonnx's ``ModelWrapper.get_tensor_datatype`` reads them.

Example:
    >>> import torch
    >>> from brevitas.export.description import QuantDescription
    >>> finn_datatype(QuantDescription("act", "int", torch.tensor(0.1), torch.tensor(0.0), 4, False, False))
    'UINT4'
    >>> finn_datatype(QuantDescription("weight", "binary", torch.tensor(0.1), torch.tensor(0.0), 1, True, True))
    'BIPOLAR'
"""

from __future__ import annotations

from collections.abc import Mapping

import onnx

from brevitas.export.description import QuantDescription

__all__ = ["ANNOTATION_KEY", "annotate", "annotations", "datatype_range", "finn_datatype", "int_datatype"]

#: key of the datatype entry of a tensor annotation
ANNOTATION_KEY = "finn_datatype"


def int_datatype(bit_width: int, signed: bool) -> str:
    """The datatype of ``bit_width``-bit integers (``BINARY`` for one unsigned bit).

    Example:
        >>> int_datatype(8, True), int_datatype(1, False), int_datatype(3, False)
        ('INT8', 'BINARY', 'UINT3')
    """
    b = int(bit_width)
    if b < 1:
        raise ValueError(f"bit_width={bit_width}; a datatype needs at least one bit")
    if signed:
        return f"INT{b}"
    return "BINARY" if b == 1 else f"UINT{b}"


def finn_datatype(desc: QuantDescription) -> str:
    """The datatype of the integer codes of a quantizer, as it declares them.

    ``BIPOLAR`` for binary quantizers, ``TERNARY`` for ternary ones
    (``quant_type="ternary"``), otherwise the integers of its bit-width and
    sign (a narrow range is a subset of the same type, as FINN reads it).
    """
    if desc.quant_type == "binary":
        return "BIPOLAR"
    if desc.quant_type == "ternary":
        return "TERNARY"
    return int_datatype(desc.bit_width, desc.signed)


def datatype_range(name: str) -> tuple[int, int]:
    """The smallest and largest integer of a datatype name.

    Example:
        >>> datatype_range("INT4"), datatype_range("BIPOLAR"), datatype_range("UINT2")
        ((-8, 7), (-1, 1), (0, 3))
    """
    fixed = {"BIPOLAR": (-1, 1), "TERNARY": (-1, 1), "BINARY": (0, 1)}
    if name in fixed:
        return fixed[name]
    if name.startswith("UINT"):
        return 0, 2 ** int(name[4:]) - 1
    if name.startswith("INT"):
        b = int(name[3:])
        return -(2 ** (b - 1)), 2 ** (b - 1) - 1
    raise ValueError(f"{name!r} is not an integer datatype name (BIPOLAR, TERNARY, BINARY, INTn, UINTn)")


def annotate(model: onnx.ModelProto, datatypes: Mapping[str, str]) -> None:
    """Set the ``finn_datatype`` annotation of each tensor named in ``datatypes`` (replacing an older one).

    Example:
        >>> from onnx import helper
        >>> m = helper.make_model(helper.make_graph([], "g", [], []))
        >>> annotate(m, {"w": "INT4"})
        >>> annotations(m)
        {'w': 'INT4'}
    """
    graph = model.graph
    keep = [a for a in graph.quantization_annotation if a.tensor_name not in datatypes]
    del graph.quantization_annotation[:]
    graph.quantization_annotation.extend(keep)
    for name, dtype in datatypes.items():
        entry = onnx.TensorAnnotation()
        entry.tensor_name = name
        kv = entry.quant_parameter_tensor_names.add()
        kv.key = ANNOTATION_KEY
        kv.value = dtype
        graph.quantization_annotation.append(entry)


def annotations(model: onnx.ModelProto) -> dict[str, str]:
    """Tensor name -> ``finn_datatype`` of every annotated tensor."""
    out = {}
    for entry in model.graph.quantization_annotation:
        for kv in entry.quant_parameter_tensor_names:
            if kv.key == ANNOTATION_KEY:
                out[entry.tensor_name] = kv.value
    return out
