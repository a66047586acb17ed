"""The shipped executor (brevitas_export_pyxir.executor) against the independent test-side one, and its refusals."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from contract_executor import execute
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from brevitas_export_pyxir.executor import ContractError, ContractExecutor, fix, requantize, run

KEYS = ("vai_quant_in", "vai_quant_out", "vai_quant_weights", "vai_quant_biases")


def _model(nodes, outputs, initializers=()):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializer=list(initializers),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("pyxir", 1)])


def _node(op, inputs, output, **attrs):
    attrs["vai_quant"] = [k for k in KEYS if k in attrs]
    return helper.make_node(op, inputs, [output], domain="pyxir", **attrs)


def test_fix_ties_and_clamps():
    assert fix(np.array([-2.5, -0.5, 0.5, 2.5, 1e9, -1e9]), 8, 0, True).tolist() == [-2, 0, 1, 3, 127, -128]
    assert fix(np.array([-1.0, 0.74, 1e9]), 8, 2, False).tolist() == [0, 3, 255]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=8),
    st.integers(-6, 6),
    st.integers(-6, 6),
    st.integers(1, 16),
    st.booleans(),
)
def test_requantize_is_exact_half_up_rounding(codes, f_in, f_out, divisor, signed):
    got = requantize(np.array(codes, np.int64), f_in, 8, f_out, signed, divisor).tolist()
    lo, hi = (-128, 127) if signed else (0, 255)
    for c, g in zip(codes, got):
        exact = Fraction(c) * Fraction(2) ** (f_out - f_in) / divisor
        want = int((exact + Fraction(1, 2)).__floor__())
        assert g == min(max(want, lo), hi)


def test_requantize_survives_int64_overflow():
    # a bias 60 fix points finer than the accumulator: Python integers take over
    big = requantize(np.array([3 << 60], dtype=object), 61, 8, 0, True)
    assert big.tolist() == [2]  # 1.5 -> 2


def _grid(draw, lo=-3, hi=9):
    return [8, draw(st.integers(lo, hi))]


@st.composite
def random_graphs(draw):
    """One DPU node (optionally behind a Relu, for unsigned inputs), random fix points and operands with ties."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    op = draw(st.sampled_from(["Conv", "Conv", "Gemm", "Relu", "Add", "MaxPool", "AveragePool", "GlobalAveragePool",
                               "Pad"]))  # fmt: skip
    unsigned_input = draw(st.booleans())
    g_in, g_out = _grid(draw), _grid(draw)
    nodes, inits = [], []
    source = "x"
    if unsigned_input:
        nodes.append(_node("Relu", ["x"], "r", vai_quant_in=g_in, vai_quant_out=g_in))
        source = "r"
    channels = 4
    shape = (2, channels, 5, 6) if op != "Gemm" else (3, 7)
    # values near and on the grid's half-steps, and a few far out of range
    step = 2.0 ** -(g_in[1] + 1)
    x = rng.integers(-300, 300, size=shape) * step
    x.flat[0] = 1e4
    attrs = {"vai_quant_in": g_in, "vai_quant_out": g_out}
    inputs = [source]
    if op in ("Conv", "Gemm"):
        w_bits = draw(st.integers(2, 8))
        attrs["vai_quant_weights"] = [w_bits, draw(st.integers(0, 9))]
        lim = 2 ** (w_bits - 1)
        if op == "Conv":
            group = draw(st.sampled_from([1, 2]))
            k = draw(st.integers(1, 3))
            w = rng.integers(-lim, lim, size=(6, channels // group, k, k))
            attrs.update(kernel_shape=[k, k], strides=[draw(st.integers(1, 2))] * 2, group=group,
                         dilations=[draw(st.integers(1, 2))] * 2)  # fmt: skip
            if draw(st.booleans()):
                attrs["pads"] = [int(v) for v in rng.integers(0, 2, size=4)]
            else:
                attrs["auto_pad"] = "VALID"
        else:
            w = rng.integers(-lim, lim, size=(5, 7))
            attrs["transB"] = 1
        inits.append(numpy_helper.from_array(w.astype(np.int8), "w"))
        inputs.append("w")
        if draw(st.booleans()):
            b_bits = draw(st.integers(2, 8))
            attrs["vai_quant_biases"] = [b_bits, draw(st.integers(-2, 14))]
            lim = 2 ** (b_bits - 1)
            inits.append(numpy_helper.from_array(rng.integers(-lim, lim, size=w.shape[0]).astype(np.int8), "b"))
            inputs.append("b")
    elif op == "Add":
        nodes.append(_node("Relu", [source], "s", vai_quant_in=g_in, vai_quant_out=_grid(draw)))
        inputs.append("s" if draw(st.booleans()) else source)
    elif op in ("MaxPool", "AveragePool"):
        k = draw(st.integers(1, 3))
        attrs.update(kernel_shape=[k, k], strides=[draw(st.integers(1, 2))] * 2, pads=[0, 0, 0, 0])
        if op == "MaxPool" and draw(st.booleans()):
            attrs["pads"] = [min(int(v), k - 1) for v in rng.integers(0, 2, size=4)]
    elif op == "Pad":
        attrs["pads"] = [int(v) for v in rng.integers(0, 3, size=4)]
    nodes.append(_node(op, inputs, "y", **attrs))
    return _model(nodes, ["y"], inits), x.astype(np.float32)


@settings(max_examples=80, deadline=None)
@given(random_graphs())
def test_shipped_executor_equals_the_test_executor(case):
    model, x = case
    got = run(model, x)[0]
    want = execute(model, x)[0]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_the_executor_takes_a_path_and_bytes(tmp_path):
    relu = _node("Relu", ["x"], "y", vai_quant_in=[8, 1], vai_quant_out=[8, 1])
    model = _model([relu], ["y"])
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    x = np.array([-1.0, 0.25, 0.75], np.float32)
    assert run(path, x)[0].tolist() == run(model.SerializeToString(), x)[0].tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize(
    ("nodes", "inits", "message"),
    [
        ([helper.make_node("Sigmoid", ["x"], ["y"])], [], "not part of the contract"),
        ([helper.make_node("Relu", ["x"], ["y"], domain="pyxir", vai_quant=["vai_quant_in"], vai_quant_in=[8, 1])],
         [], "vai_quant_out is missing"),
        ([helper.make_node("Relu", ["x"], ["y"], domain="pyxir", vai_quant=["vai_quant_in"], vai_quant_in=[8, 1],
                           vai_quant_out=[8, 1])], [], "vai_quant lists"),
        ([_node("Relu", ["x"], "y", vai_quant_in=[4, 1], vai_quant_out=[8, 1])], [], "is not [8, fix_point]"),
        ([_node("Gemm", ["x", "w"], "y", vai_quant_in=[8, 1], vai_quant_out=[8, 1], vai_quant_weights=[8, 1],
                transB=1)], [numpy_helper.from_array(np.ones((2, 2), np.float32), "w")], "integer initializer"),
        ([_node("Gemm", ["x", "w"], "y", vai_quant_in=[8, 1], vai_quant_out=[8, 1], vai_quant_weights=[16, 1],
                transB=1)], [numpy_helper.from_array(np.ones((2, 2), np.int8), "w")], "bit_width <= 8"),
    ],
)  # fmt: skip
def test_files_breaking_the_contract_are_refused(nodes, inits, message):
    with pytest.raises(ContractError, match=message.replace("[", r"\[")):
        ContractExecutor(_model(nodes, ["y"], inits))
