"""The test-side contract executor against values computed by hand from FORMATS.md (it is the proofs' reference)."""

from __future__ import annotations

import numpy as np
import torch
from contract_executor import execute, fix_code, sign_analysis
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("pyxir", 1)])


def _q(**grids):
    attrs = {"vai_quant": [k for k in ("vai_quant_in", "vai_quant_out", "vai_quant_weights", "vai_quant_biases")
                           if k in grids]}  # fmt: skip
    attrs.update(grids)
    return attrs


def test_fix_rounds_half_toward_plus_infinity():
    x = torch.tensor([-0.625, -0.375, 0.375, 0.625])  # x * 4 = -2.5, -1.5, 1.5, 2.5
    assert fix_code(x, 8, 2, True).tolist() == [-2.0, -1.0, 2.0, 3.0]


def test_fix_clamps_to_the_signed_or_unsigned_range():
    x = torch.tensor([-300.0, -3.0, 200.0, 300.0])
    assert fix_code(x, 8, 0, True).tolist() == [-128.0, -3.0, 127.0, 127.0]
    assert fix_code(x, 8, 0, False).tolist() == [0.0, 0.0, 200.0, 255.0]
    assert fix_code(torch.tensor([5.0]), 4, -1, True).tolist() == [3.0]  # 2.5 -> 3, within -8..7


def test_sign_analysis_follows_the_contract():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], domain="pyxir"),
        helper.make_node("Relu", ["c"], ["r"], domain="pyxir"),
        helper.make_node("MaxPool", ["r"], ["m"], domain="pyxir"),
        helper.make_node("Add", ["m", "c"], ["a"], domain="pyxir"),
        helper.make_node("Add", ["m", "m"], ["aa"], domain="pyxir"),
        helper.make_node("GlobalAveragePool", ["aa"], ["g"], domain="pyxir"),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
    ]
    w = numpy_helper.from_array(np.ones((1, 1, 1, 1), np.int8), "w")
    negative = sign_analysis(_model(nodes, ["x"], ["a", "f"], [w]).graph)
    assert negative == {"x": True, "c": True, "r": False, "m": False, "a": True, "aa": False, "g": False, "f": False}


def test_conv_by_hand_with_a_bias_finer_than_the_accumulator():
    # input codes [[2, -1], [4, 3]] at fix point 2; weight code 3 at fix point 1; bias code 1 at fix point 4
    w = numpy_helper.from_array(np.array([[[[3]]]], np.int8), "w")
    b = numpy_helper.from_array(np.array([1], np.int8), "b")
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], domain="pyxir", kernel_shape=[1, 1], pads=[0, 0, 0, 0],
                            **_q(vai_quant_in=[8, 2], vai_quant_out=[8, 2], vai_quant_weights=[8, 1],
                                 vai_quant_biases=[8, 4]))  # fmt: skip
    x = np.array([[[[0.5, -0.25], [1.0, 0.75]]]], np.float32)
    (y,) = execute(_model([conv], ["x"], ["y"], [w, b]), x)
    # accumulator at fix point 4: codes * 3 * 2 + 1 = 13, -5, 25, 19 -> / 16 -> * 4 = 3.25, -1.25, 6.25, 4.75
    assert y.reshape(-1).tolist() == [0.75, -0.25, 1.5, 1.25]


def test_average_pool_by_hand():
    pool = helper.make_node("AveragePool", ["x"], ["y"], domain="pyxir", kernel_shape=[2, 2], strides=[2, 2],
                            pads=[0, 0, 0, 0], **_q(vai_quant_in=[8, 0], vai_quant_out=[8, 1]))  # fmt: skip
    x = np.array([[[[1.0, 2.0], [3.0, 5.0]]]], np.float32)  # mean 2.75 -> 5.5 halves -> 6 -> 3.0
    assert execute(_model([pool], ["x"], ["y"]), x)[0].reshape(-1).tolist() == [3.0]


def test_relu_output_is_quantized_unsigned():
    relu = helper.make_node("Relu", ["x"], ["y"], domain="pyxir", **_q(vai_quant_in=[8, 0], vai_quant_out=[8, 0]))
    x = np.array([-3.0, 127.0, 200.0, 300.0], np.float32)  # the input is signed: 200 saturates at 127
    assert execute(_model([relu], ["x"], ["y"]), x)[0].tolist() == [0.0, 127.0, 127.0, 127.0]
    twice = [relu, helper.make_node("Relu", ["y"], ["z"], domain="pyxir", **_q(vai_quant_in=[8, -1],
                                                                                  vai_quant_out=[8, -1]))]  # fmt: skip
    x = np.array([254.0], np.float32)  # 127 -> at fix point -1 the unsigned grid: 127 / 2 = 63.5 -> 64 -> 128
    assert execute(_model(twice, ["x"], ["z"]), x)[0].tolist() == [128.0]
