"""Graph clean-up for QONNX and FINN-ONNX files: dead code out, constants folded, every tensor shaped.

qonnx's executor and FINN's transformations expect a tidy graph: no node
whose result nobody reads, no initializer nobody uses, shape computations on
constants already folded, and a shape (``value_info``) for every tensor
(``execute_onnx`` refuses a graph where one is missing). :func:`cleanup`
does all of it with plain ``onnx``, so the exporters need no qonnx at export
time:

- :func:`remove_unused`: nodes not contributing to a graph output, unused
  initializers, stale ``value_info`` and annotations;
- :func:`fold_constants`: standard-domain nodes whose inputs are all
  initializers are evaluated (``onnx.reference``) and replaced by
  initializers; custom nodes (``Quant`` on float weights) are kept, as
  downstream tools fold those themselves;
- :func:`initializers_last`: constant inputs of commutative nodes (``Add``,
  ``Mul`` ...) after the computed ones, the order FINN's transformations assume;
- :func:`unique_parameters`: an initializer read by several nodes is copied,
  one per reader, so that a transformation rewriting one node's parameter in
  place (as FINN's streamlining does) cannot change another's;
- :func:`infer_shapes`: ONNX shape inference, with each custom node of the
  ``qonnx.custom_op.general`` domain standing in as the standard node of the
  same shape (``Identity``; ``AveragePool`` for ``QuantAvgPool2d``).

Tensor names stay the exporters' readable ones (``features.0/Conv``,
``features.0.weight_quant.int`` ...). The result is a fixed point of qonnx's
own ``ModelWrapper.cleanup()``: it changes nothing in a cleaned-up file.

Example:
    >>> import numpy as np
    >>> from onnx import helper, numpy_helper, TensorProto
    >>> w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    >>> unused = numpy_helper.from_array(np.zeros(1, np.float32), "unused")
    >>> nodes = [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
    ...          helper.make_node("MatMul", ["x", "wt"], ["y"])]
    >>> g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
    ...                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w, unused])
    >>> m = cleanup(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]))
    >>> [n.op_type for n in m.graph.node], sorted(i.name for i in m.graph.initializer)
    (['MatMul'], ['wt'])
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = [
    "CUSTOM_DOMAINS",
    "cleanup",
    "fold_constants",
    "infer_shapes",
    "initializers_last",
    "missing_shapes",
    "remove_unused",
    "unique_parameters",
]

#: domains of the custom operators qonnx executes
CUSTOM_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas")

#: standard ops that only move data: a folded result keeps the datatype annotation of the input
_LAYOUT_OPS = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity"}
#: standard ops never folded (random or stateful)
_NO_FOLD = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
#: commutative ops whose initializer inputs go last (the set qonnx sorts)
_COMMUTATIVE = {"Add", "Mul", "And", "Or", "Xor", "Sum"}


def _is_standard(node: onnx.NodeProto) -> bool:
    return node.domain in ("", "ai.onnx")


def remove_unused(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove nodes no graph output depends on, and unused initializers, ``value_info`` and annotations (in place)."""
    graph = model.graph
    live = {o.name for o in graph.output}
    keep: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if any(o in live for o in node.output if o):
            keep.append(node)
            live.update(i for i in node.input if i)
    keep.reverse()
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)
    inits = [t for t in graph.initializer if t.name in live]
    if len(inits) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(inits)
    produced = {o for n in graph.node for o in n.output}
    vis = [v for v in graph.value_info if v.name in produced]
    if len(vis) != len(graph.value_info):
        del graph.value_info[:]
        graph.value_info.extend(vis)
    present = produced | {t.name for t in graph.initializer} | {i.name for i in graph.input}
    notes = [a for a in graph.quantization_annotation if a.tensor_name in present]
    if len(notes) != len(graph.quantization_annotation):
        del graph.quantization_annotation[:]
        graph.quantization_annotation.extend(notes)
    return model


def _default_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return 13


def _evaluate(node: onnx.NodeProto, feeds: dict[str, np.ndarray], opset: int) -> list[np.ndarray] | None:
    from onnx.reference import ReferenceEvaluator

    try:
        evaluator = ReferenceEvaluator(
            helper.make_model(
                helper.make_graph(
                    [node],
                    "fold",
                    [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                     for n, a in feeds.items()],  # fmt: skip
                    [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output],
                ),
                opset_imports=[helper.make_opsetid("", opset)],
            )
        )
        return list(evaluator.run(None, feeds))
    except Exception:  # anything the reference cannot evaluate stays a node
        return None


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace standard-domain nodes whose inputs are all initializers by initializers (in place)."""
    graph = model.graph
    opset = _default_opset(model)
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    notes = {a.tensor_name: a for a in graph.quantization_annotation}
    keep: list[onnx.NodeProto] = []
    folded_any = False
    for node in graph.node:
        inputs = [i for i in node.input if i]
        foldable = (
            _is_standard(node)
            and node.op_type not in _NO_FOLD
            and node.op_type != "Constant"
            and inputs
            and all(i in values for i in inputs)
            and not any(o in outputs for o in node.output)
        )
        results = _evaluate(node, {i: values[i] for i in inputs}, opset) if foldable else None
        if results is None:
            keep.append(node)
            continue
        folded_any = True
        for name, array in zip(node.output, results):
            array = np.asarray(array)
            values[name] = array
            graph.initializer.append(numpy_helper.from_array(array, name))
            source = notes.get(node.input[0])
            if node.op_type in _LAYOUT_OPS and source is not None:
                note = copy.deepcopy(source)
                note.tensor_name = name
                graph.quantization_annotation.append(note)
    if folded_any:
        del graph.node[:]
        graph.node.extend(keep)
        remove_unused(model)
    return model


def initializers_last(model: onnx.ModelProto) -> onnx.ModelProto:
    """Put the initializer inputs of commutative nodes after the computed ones (in place)."""
    inits = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in _COMMUTATIVE and _is_standard(node):
            names = list(node.input)
            ordered = [n for n in names if n not in inits] + [n for n in names if n in inits]
            if ordered != names:
                del node.input[:]
                node.input.extend(ordered)
    return model


def unique_parameters(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node its own copy of an initializer several nodes read (in place).

    The first reader keeps the name; each other gets a copy named after itself
    (``<layer>.<parameter>``), with the original's datatype annotation.
    """
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    notes = {a.tensor_name: a for a in graph.quantization_annotation}
    taken = set(inits) | {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    seen: set[str] = set()
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name not in inits:
                continue
            if name not in seen:
                seen.add(name)
                continue
            base = f"{node.name.rsplit('/', 1)[0] or node.op_type}.{name.rsplit('.', 1)[-1]}"
            new, k = base, 0
            while new in taken:
                k += 1
                new = f"{base}_{k}"
            taken.add(new)
            seen.add(new)
            copied = copy.deepcopy(inits[name])
            copied.name = new
            graph.initializer.append(copied)
            if name in notes:
                note = copy.deepcopy(notes[name])
                note.tensor_name = new
                graph.quantization_annotation.append(note)
            node.input[i] = new
    return model


def _shape_stand_in(node: onnx.NodeProto) -> onnx.NodeProto | None:
    """A standard node computing the output shape of a custom node (``None`` when unknown)."""
    if node.domain not in CUSTOM_DOMAINS:
        return None
    if node.op_type == "QuantAvgPool2d":
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        layout = attrs.get("data_layout", b"NCHW")
        if (layout.decode() if isinstance(layout, bytes) else layout) != "NCHW":
            return None
        k, s = int(attrs["kernel"]), int(attrs["stride"])
        return helper.make_node("AveragePool", [node.input[0]], [node.output[0]], kernel_shape=[k, k], strides=[s, s])
    if len(node.output) == 1:
        return helper.make_node("Identity", [node.input[0]], [node.output[0]])
    return None


def infer_shapes(model: onnx.ModelProto, outputs: bool = False) -> onnx.ModelProto:
    """Give every intermediate tensor a ``value_info`` (type and shape), custom nodes included (in place).

    With ``outputs=True`` the graph outputs' types and shapes are replaced by the inferred ones too.
    """
    stand_in = copy.deepcopy(model)
    graph = stand_in.graph
    nodes = []
    for node in graph.node:
        nodes.append(_shape_stand_in(node) or node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(stand_in, strict_mode=False, data_prop=True)
    ends = {v.name for v in model.graph.input} | {v.name for v in model.graph.output}
    produced = {o for n in model.graph.node for o in n.output}
    found = {v.name: v for v in inferred.graph.value_info if v.name in produced and v.name not in ends}
    old = {v.name: v for v in model.graph.value_info}
    merged = {**old, **found}
    del model.graph.value_info[:]
    model.graph.value_info.extend(merged[n] for n in sorted(merged))
    if outputs:
        shaped = {v.name: v for v in inferred.graph.output}
        for v in model.graph.output:
            if v.name in shaped and shaped[v.name].type.tensor_type.HasField("shape"):
                v.CopyFrom(shaped[v.name])
    return model


def missing_shapes(model: onnx.ModelProto) -> list[str]:
    """Names of tensors produced by nodes that have no complete type and shape."""
    known = {v.name: v for v in list(model.graph.value_info) + list(model.graph.output)}
    out = []
    for node in model.graph.node:
        for name in node.output:
            v = known.get(name)
            if v is None or not v.type.tensor_type.HasField("shape"):
                out.append(name)
    return out


def cleanup(model: onnx.ModelProto) -> onnx.ModelProto:
    """All of the clean-up above, in order (in place; returns ``model``)."""
    remove_unused(model)
    fold_constants(model)
    initializers_last(model)
    unique_parameters(model)
    infer_shapes(model)
    return model
