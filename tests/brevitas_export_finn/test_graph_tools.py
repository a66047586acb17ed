"""Datatype annotations, graph clean-up and the qonnx runner, checked against qonnx's ModelWrapper."""

from __future__ import annotations

import doctest

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper

import brevitas_export_finn
from brevitas.export.description import QuantDescription
from brevitas_export_finn import base, cleanup, datatypes, finn, qonnx, runtime, thresholds
from brevitas_export_finn.cleanup import fold_constants, infer_shapes, missing_shapes, remove_unused
from brevitas_export_finn.datatypes import annotate, annotations, datatype_range, finn_datatype, int_datatype

DOMAIN = "qonnx.custom_op.general"


@pytest.mark.parametrize("module", [base, cleanup, datatypes, finn, qonnx, runtime, thresholds, brevitas_export_finn])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def _desc(quant_type: str, bit_width: int, signed: bool, narrow: bool = False) -> QuantDescription:
    return QuantDescription("act", quant_type, torch.tensor(0.5), torch.tensor(0.0), bit_width, signed, narrow)


@pytest.mark.parametrize(
    "desc, name",
    [
        (_desc("binary", 1, True, True), "BIPOLAR"),
        (_desc("ternary", 2, True, True), "TERNARY"),
        (_desc("int", 1, False), "BINARY"),
        (_desc("int", 1, True), "INT1"),
        (_desc("int", 2, True, True), "INT2"),
        (_desc("int", 4, False, True), "UINT4"),
        (_desc("int", 8, True), "INT8"),
        (_desc("int", 32, False), "UINT32"),
    ],
)
def test_finn_datatype_is_a_qonnx_datatype_holding_the_codes(desc: QuantDescription, name: str) -> None:
    assert finn_datatype(desc) == name
    dt = DataType[name]
    assert dt.allowed(desc.int_min) and dt.allowed(desc.int_max)
    assert datatype_range(name) == (int(dt.min()), int(dt.max()))


def test_int_datatype_refuses_zero_bits() -> None:
    with pytest.raises(ValueError, match="at least one bit"):
        int_datatype(0, True)
    with pytest.raises(ValueError, match="not an integer datatype"):
        datatype_range("FLOAT32")


def _model(nodes, inputs, outputs, inits=(), domains=()) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    imports = [helper.make_opsetid("", 13)] + [helper.make_opsetid(d, 1) for d in domains]
    return helper.make_model(graph, opset_imports=imports)


def test_annotations_are_read_by_model_wrapper() -> None:
    w = numpy_helper.from_array(np.array([[1.0, -1.0]], np.float32), "w")
    m = _model(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [w],
    )
    annotate(m, {"w": "BIPOLAR", "x": "INT4"})
    annotate(m, {"x": "UINT3"})  # replaces, does not duplicate
    assert annotations(m) == {"w": "BIPOLAR", "x": "UINT3"}
    wrapper = ModelWrapper(m)
    assert wrapper.get_tensor_datatype("w") == DataType["BIPOLAR"]
    assert wrapper.get_tensor_datatype("x") == DataType["UINT3"]
    assert wrapper.get_tensor_datatype("y") == DataType["FLOAT32"]


def test_remove_unused_drops_dead_nodes_initializers_and_annotations() -> None:
    inits = [numpy_helper.from_array(np.ones(2, np.float32), n) for n in ("a", "dead_a", "orphan")]
    m = _model(
        [
            helper.make_node("Add", ["x", "a"], ["y"]),
            helper.make_node("Mul", ["x", "dead_a"], ["dead"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        inits,
    )
    m.graph.value_info.append(helper.make_tensor_value_info("dead", TensorProto.FLOAT, [2]))
    annotate(m, {"dead_a": "INT2", "a": "INT2"})
    remove_unused(m)
    assert [n.op_type for n in m.graph.node] == ["Add"]
    assert [t.name for t in m.graph.initializer] == ["a"]
    assert not m.graph.value_info and annotations(m) == {"a": "INT2"}


def test_fold_constants_keeps_custom_nodes_and_carries_annotations() -> None:
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")
    s = numpy_helper.from_array(np.float32(0.5), "s")
    z = numpy_helper.from_array(np.float32(0.0), "z")
    b = numpy_helper.from_array(np.float32(4.0), "b")
    shape = numpy_helper.from_array(np.array([3, 2], np.int64), "shape")
    m = _model(
        [
            helper.make_node("Reshape", ["w", "shape"], ["w_r"]),  # folds, keeps INT4
            helper.make_node("Quant", ["w_r", "s", "z", "b"], ["w_q"], domain=DOMAIN, signed=1, narrow=0,
                             rounding_mode="ROUND"),  # fmt: skip
            helper.make_node("MatMul", ["x", "w_q"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [w, s, z, b, shape],
        [DOMAIN],
    )
    annotate(m, {"w": "INT4"})
    fold_constants(m)
    assert [n.op_type for n in m.graph.node] == ["Quant", "MatMul"]
    assert {t.name for t in m.graph.initializer} == {"w_r", "s", "z", "b"}
    assert numpy_helper.to_array(next(t for t in m.graph.initializer if t.name == "w_r")).shape == (3, 2)
    assert annotations(m) == {"w_r": "INT4"}


def test_infer_shapes_through_custom_nodes() -> None:
    t = numpy_helper.from_array(np.zeros((1, 3), np.float32), "t")
    m = _model(
        [
            helper.make_node("MultiThreshold", ["x", "t"], ["q"], domain=DOMAIN, out_dtype="UINT2"),
            helper.make_node("QuantAvgPool2d", ["q"], ["p"], domain=DOMAIN, kernel=2, stride=2, ibits=2, obits=2,
                             signed=0, data_layout="NCHW"),  # fmt: skip
            helper.make_node("Relu", ["p"], ["r"]),
            helper.make_node("Flatten", ["r"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [t],
        [DOMAIN],
    )
    assert missing_shapes(m) == ["q", "p", "r"]
    infer_shapes(m)
    assert missing_shapes(m) == []
    wrapper = ModelWrapper(m)
    assert wrapper.get_tensor_shape("q") == [1, 2, 4, 4] and wrapper.get_tensor_shape("r") == [1, 2, 2, 2]
    assert wrapper.check_all_tensor_shapes_specified()


def test_run_feeds_quant_tensors_as_codes_and_checks_arity() -> None:
    from brevitas.quant_tensor import QuantTensor

    m = _model(
        [helper.make_node("Mul", ["x", "s"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.float32(0.25), "s")],
    )
    qt = QuantTensor(torch.tensor([0.5, -0.25]), torch.tensor(0.25), torch.tensor(0.0), torch.tensor(4.0), True)
    assert runtime.run(m, qt)[0].tolist() == [0.5, -0.25]
    assert runtime.run(m.SerializeToString(), np.array([4.0, 1.0], np.float32))[0].tolist() == [1.0, 0.25]
    with pytest.raises(ValueError, match="takes 1 input"):
        runtime.run(m)
    with pytest.raises(TypeError, match="cannot run"):
        runtime.run(42)


def test_run_fixes_a_symbolic_batch() -> None:
    t = numpy_helper.from_array(np.array([[0.5]], np.float32), "t")
    m = _model(
        [helper.make_node("MultiThreshold", ["x", "t"], ["y"], domain=DOMAIN, out_dtype="BINARY", data_layout="NC")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [t],
        [DOMAIN],
    )
    out = runtime.run(m, np.array([[0.1, 0.5, 2.0], [1.0, -1.0, 0.49]], np.float32))[0]
    assert out.tolist() == [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]
