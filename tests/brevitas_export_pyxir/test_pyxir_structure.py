"""Structure of exported files: domains, vai_quant attributes, integer initializers, onnx.checker, registration."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from pyxir_nets import calibrate, small_cnn

import brevitas.export as bx
from brevitas_export_pyxir.exporter import PyXIRDPUv2Exporter, PyXIRExporter

KEYS = ("vai_quant_in", "vai_quant_out", "vai_quant_weights", "vai_quant_biases")
DPU_NODES = {"Conv", "Gemm", "Relu", "Add", "MaxPool", "AveragePool", "GlobalAveragePool", "Pad"}


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _fix_point(scale: torch.Tensor) -> int:
    fix_point = -math.log2(float(scale.detach()))
    assert fix_point == int(fix_point)
    return int(fix_point)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return calibrate(small_cnn(), (2, 4, 8, 8))


@pytest.fixture(scope="module", params=["pyxir", "pyxir-dpuv2"])
def exported(request, model, tmp_path_factory):
    path = tmp_path_factory.mktemp("pyxir") / "model.onnx"
    artifact = bx.export(model, torch.randn(2, 4, 8, 8), exporter=request.param, path=path)
    return request.param, artifact, path


def test_exporters_are_registered_with_the_dpuv1_alias():
    installed = bx.exporters()
    assert {"pyxir", "pyxir-dpuv1", "pyxir-dpuv2"} <= set(installed)
    assert type(bx.get_exporter("pyxir")) is type(bx.get_exporter("pyxir-dpuv1")) is PyXIRExporter
    assert type(bx.get_exporter("pyxir-dpuv2")) is PyXIRDPUv2Exporter
    assert "contract executor" in bx.get_exporter("pyxir").consumer


def test_every_node_is_a_dpu_node_in_domain_pyxir_or_a_standard_flatten(exported):
    _, artifact, _ = exported
    for node in artifact.graph.node:
        if node.op_type == "Flatten":
            assert node.domain == "" and _attrs(node) == {"axis": 1}
        else:
            assert node.domain == "pyxir" and node.op_type in DPU_NODES, node


def test_vai_quant_lists_exactly_the_bit_width_fix_point_pairs_present(exported):
    _, artifact, _ = exported
    for node in artifact.graph.node:
        if node.domain != "pyxir":
            continue
        attrs = _attrs(node)
        listed = [s.decode() for s in attrs["vai_quant"]]
        assert listed == [k for k in KEYS if k in attrs]
        assert listed[:2] == ["vai_quant_in", "vai_quant_out"]
        for key in listed:
            bit_width, fix_point = attrs[key]
            assert isinstance(bit_width, int) and isinstance(fix_point, int)
            assert bit_width == 8 if key in ("vai_quant_in", "vai_quant_out") else 1 <= bit_width <= 8
        if node.op_type in ("Conv", "Gemm"):
            assert "vai_quant_weights" in listed and ("vai_quant_biases" in listed) == (len(node.input) == 3)


def test_initializers_are_integers_holding_the_quantized_parameters(exported, model):
    _, artifact, _ = exported
    inits = {t.name: numpy_helper.to_array(t) for t in artifact.graph.initializer}
    assert inits and all(a.dtype == np.int8 for a in inits.values())
    conv = next(n for n in artifact.graph.node if n.op_type == "Conv")
    layer = model[1]
    attrs = _attrs(conv)
    assert attrs["vai_quant_weights"] == [8, _fix_point(layer.quant_weight().scale)]
    np.testing.assert_array_equal(inits[conv.input[1]], layer.int_weight().numpy())
    b = layer.quant_bias()
    assert attrs["vai_quant_biases"] == [8, _fix_point(b.scale)]
    np.testing.assert_array_equal(inits[conv.input[2]], b.int().numpy())
    assert attrs["vai_quant_out"] == [8, _fix_point(layer.output_quant.scale())]
    assert attrs["vai_quant_in"] == [8, _fix_point(model[0].act_quant.scale())]  # the QuantIdentity before it


def test_onnx_checker_full_check_passes_on_the_file(exported):
    _, artifact, path = exported
    onnx.checker.check_model(str(path), full_check=True)
    assert {(o.domain, o.version) for o in onnx.load(str(path)).opset_import} >= {("pyxir", 1)}
    without = onnx.ModelProto()
    without.CopyFrom(artifact)
    del without.opset_import[:]
    without.opset_import.extend([helper.make_opsetid("", 17)])
    with pytest.raises(onnx.checker.ValidationError, match="pyxir"):
        onnx.checker.check_model(without)


def test_dpuv1_pads_in_conv_dpuv2_pads_with_an_explicit_pad(exported):
    name, artifact, _ = exported
    nodes = list(artifact.graph.node)
    convs = [n for n in nodes if n.op_type == "Conv"]
    if name == "pyxir":
        assert not any(n.op_type == "Pad" for n in nodes)
        assert all(_attrs(c)["pads"] == [1, 1, 1, 1] and "auto_pad" not in _attrs(c) for c in convs)
        return
    producers = {o: n for n in nodes for o in n.output}
    for conv in convs:
        attrs = _attrs(conv)
        assert attrs["auto_pad"] == b"VALID" and "pads" not in attrs
        pad = producers[conv.input[0]]
        assert pad.op_type == "Pad" and pad.domain == "pyxir"
        pad_attrs = _attrs(pad)
        assert pad_attrs["pads"] == [1, 1, 1, 1]
        assert pad_attrs["vai_quant_in"] == pad_attrs["vai_quant_out"] == attrs["vai_quant_in"]


def test_dpuv2_unpadded_conv_has_no_pad():
    model = calibrate(small_cnn(padding=0), (2, 4, 10, 10))
    artifact = bx.export(model, torch.randn(2, 4, 10, 10), exporter="pyxir-dpuv2")
    ops = [n.op_type for n in artifact.graph.node]
    assert ops[:2] == ["Conv", "Relu"] and ops.count("Pad") == 1  # only the second, padded conv


def test_batch_stays_symbolic_and_run_takes_another_batch(exported, model):
    name, artifact, path = exported
    assert artifact.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    x = torch.randn(5, 4, 8, 8)
    out = bx.get_exporter(name).run(path, x)[0]
    assert out.shape == (5, 5)
    with torch.no_grad():
        np.testing.assert_array_equal(out, model(x).value.numpy())
