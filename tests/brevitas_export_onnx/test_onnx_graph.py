"""The ONNX graph builder and the onnxruntime runner."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from brevitas_export_onnx.graph import BATCH, GraphBuilder
from brevitas_export_onnx.runtime import run


def test_names_are_unique_and_readable() -> None:
    g = GraphBuilder()
    a = g.unique("features.0/Conv")
    b = g.unique("features.0/Conv")
    assert a == "features.0/Conv" and b == "features.0/Conv_1"
    assert g.unique("bad name!") == "bad_name"


def test_small_constants_are_shared_and_large_ones_are_not_merged_by_mistake() -> None:
    g = GraphBuilder()
    a = g.const(np.float32(0.5), "s")
    b = g.const(np.float32(0.5), "other")
    c = g.const(np.int8(0), "z")
    assert a == b and c != a
    big = np.arange(100, dtype=np.float32)
    assert g.const(big, "w") != g.const(big, "w")
    assert g.const(big, "w", share=False) not in (a, c)


def test_int4_constants_and_output_renaming() -> None:
    g = GraphBuilder(opset=21)
    q = g.const(np.array([-8, 7, 0], dtype=np.int64), "w", dtype="int4")
    init = next(t for t in g.initializers if t.name == q)
    assert init.data_type == TensorProto.INT4
    x = g.input("x", np.float32, [BATCH, 3])
    y = g.node("Relu", [x], "act")
    assert g.output(y, np.float32, [BATCH, 3], rename="output") == "output"
    model = g.build()
    assert [n.output[0] for n in model.graph.node] == ["output"]
    assert model.ir_version == 10  # the lowest IR of opset 21


def test_an_input_returned_as_output_goes_through_identity() -> None:
    g = GraphBuilder(opset=13)
    x = g.input("x", np.float32, [BATCH, 2])
    g.output(x, np.float32, [BATCH, 2])
    model = g.build()
    assert [n.op_type for n in model.graph.node] == ["Identity"]
    out = run(model, np.ones((3, 2), np.float32))[0]
    assert out.shape == (3, 2)


def test_dead_nodes_and_unused_initializers_are_dropped() -> None:
    g = GraphBuilder(opset=13)
    x = g.input("x", np.float32, [BATCH, 2])
    g.node("Neg", [x], "dead")
    g.const(np.zeros(3, np.float32), "unused")
    y = g.node("Relu", [x], "live")
    g.output(y, np.float32, [BATCH, 2])
    model = g.build()
    assert [n.op_type for n in model.graph.node] == ["Relu"]
    assert len(model.graph.initializer) == 0
    assert model.ir_version == 7 and model.opset_import[0].version == 13


def test_build_runs_the_full_checker() -> None:
    g = GraphBuilder(opset=13)
    x = g.input("x", np.float32, [BATCH, 2])
    y = g.node("Add", [x, "missing"], "bad")
    g.output(y, np.float32, [BATCH, 2])
    with pytest.raises(onnx.checker.ValidationError):
        g.build()


def test_domains_and_runner_options() -> None:
    g = GraphBuilder(opset=13, domains={"qonnx.custom_op.general": 1})
    g.use_domain("qonnx.custom_op.general", 1)
    with pytest.raises(ValueError):
        g.use_domain("qonnx.custom_op.general", 2)
    assert {o.domain: o.version for o in g.opset_imports()} == {"": 13, "qonnx.custom_op.general": 1}
    h = GraphBuilder(opset=13)
    x = h.input("x", np.float32, [BATCH, 2])
    h.output(h.node("Relu", [x], "r"), np.float32, [BATCH, 2])
    model = h.build()
    for level in (False, True, "basic", "extended", "all"):
        assert run(model, np.array([[-1, 1]], np.float32), optimize=level)[0].tolist() == [[0.0, 1.0]]
    with pytest.raises(ValueError, match="optimize"):
        run(model, np.zeros((1, 2), np.float32), optimize="fast")
    with pytest.raises(ValueError, match="takes 1 input"):
        run(model)
