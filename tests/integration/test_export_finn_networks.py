"""Networks in the style of FINN's classic examples, exported by ``qonnx`` and ``finn`` and run by qonnx.

An MLP like FINN's TFC (three hidden layers of 64 units) and a small CNN like
its CNV (pairs of 3x3 convolutions and max pooling, then fully connected
layers), each with batch norm after every weight layer and quantized
identities as activations, at 1-bit weights / 1-bit activations, 1/2, 2/2
and 4/4. The outputs equal PyTorch's to float rounding, and the datatypes
read back through ``ModelWrapper.get_tensor_datatype`` (FINN-ONNX) or the
``Quant`` nodes' integer datatypes (QONNX) are the ones the quantizers declare.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.custom_op.registry import getCustomOp
from qonnx.transformation.infer_datatypes import InferDataTypes
from torch import nn

import brevitas.export as bx
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear
from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int8WeightPerTensorFloat
from brevitas_export_finn.runtime import run

#: (weight bits, activation bits)
PRECISIONS = {"w1a1": (1, 1), "w1a2": (1, 2), "w2a2": (2, 2), "w4a4": (4, 4)}


def _datatype(bits: int) -> str:
    return "BIPOLAR" if bits == 1 else f"INT{bits}"


def _act(bits: int) -> nn.Module:
    if bits == 1:
        return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)
    return QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=bits)


def _weights(bits: int, per_channel: bool = False) -> dict[str, Any]:
    if bits == 1:
        return {"weight_quant": SignedBinaryWeightPerTensorConst}
    quant = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
    return {"weight_quant": quant, "weight_bit_width": bits}


class TFC(nn.Module):
    """FINN's TFC: input quantizer, three 64-unit hidden layers (linear, batch norm, activation), 10 outputs."""

    def __init__(self, w: int, a: int, in_features: int = 16 * 16) -> None:
        super().__init__()
        layers: list[nn.Module] = [_act(a)]
        width = in_features
        for _ in range(3):
            layers += [QuantLinear(width, 64, bias=False, **_weights(w)), nn.BatchNorm1d(64), _act(a)]
            width = 64
        layers += [QuantLinear(64, 10, bias=False, **_weights(w))]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(2.0 * torch.flatten(x, 1) - 1.0)  # pixels in [0, 1] to [-1, 1], as FINN's TFC


class CNV(nn.Module):
    """A small CNV: 8-bit input quantizer, (conv, BN, act) x2 + max pool, twice, then two linear layers."""

    def __init__(self, w: int, a: int) -> None:
        super().__init__()
        convs: list[nn.Module] = [QuantIdentity(act_quant=Int8ActPerTensorFloat, bit_width=8)]
        channels = 3
        for out, pool in ((16, False), (16, True), (32, False), (32, True)):
            convs += [QuantConv2d(channels, out, 3, bias=False, **_weights(w, per_channel=True)),
                      nn.BatchNorm2d(out), _act(a)]  # fmt: skip
            if pool:
                convs.append(nn.MaxPool2d(2))
            channels = out
        self.features = nn.Sequential(*convs)
        self.classifier = nn.Sequential(
            QuantLinear(32, 32, bias=False, **_weights(w)),
            nn.BatchNorm1d(32),
            _act(a),
            QuantLinear(32, 10, bias=False, **_weights(w)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(2.0 * x - 1.0)
        return self.classifier(torch.flatten(x, 1))


NETWORKS = {"tfc": (TFC, (2, 1, 16, 16)), "cnv": (CNV, (2, 3, 18, 18))}


@cache
def _network(name: str, precision: str) -> tuple[nn.Module, torch.Tensor, np.ndarray]:
    cls, shape = NETWORKS[name]
    torch.manual_seed(sorted(NETWORKS).index(name) * 10 + sorted(PRECISIONS).index(precision))
    model = cls(*PRECISIONS[precision])
    model.train()
    with torch.no_grad():  # batch norm and activation statistics
        for _ in range(4):
            model(torch.rand(16, *shape[1:]))
    model.eval()
    x = torch.rand(*shape)
    with torch.no_grad():
        expected = model(x).numpy()
    return model, x, expected


def _quant_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (QuantLinear, QuantConv2d))]


@pytest.mark.parametrize("exporter", ["qonnx", "finn"])
@pytest.mark.parametrize("precision", sorted(PRECISIONS))
@pytest.mark.parametrize("network", sorted(NETWORKS))
def test_network_exports_run_and_declare_datatypes(network: str, precision: str, exporter: str) -> None:
    model, x, expected = _network(network, precision)
    w_bits, a_bits = PRECISIONS[precision]
    exported = bx.export(model, x, exporter=exporter)
    out = run(exported, x)[0]
    # the float output of the last linear layer: equal to float rounding
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
    wrapper = ModelWrapper(exported)
    assert wrapper.check_all_tensor_shapes_specified()
    n_weights = len(_quant_layers(model))
    n_acts = sum(isinstance(m, QuantIdentity) for m in model.modules())
    if exporter == "finn":
        weights = [n.input[1] for n in exported.graph.node if n.op_type in ("MatMul", "Conv")]
        assert len(weights) == n_weights
        assert {wrapper.get_tensor_datatype(w) for w in weights} == {DataType[_datatype(w_bits)]}
        thresholds = [n for n in exported.graph.node if n.op_type == "MultiThreshold"]
        assert len(thresholds) == n_acts
        act_types = [wrapper.get_tensor_datatype(n.output[0]).name for n in thresholds]
        expected_acts = [_datatype(a_bits)] * n_acts
        if network == "cnv":
            expected_acts[0] = "INT8"  # the 8-bit input quantizer
        assert act_types == expected_acts
        typed = wrapper.transform(InferDataTypes())  # qonnx's own inference agrees
        assert [typed.get_tensor_datatype(n.output[0]).name for n in thresholds] == expected_acts
    else:
        quant = [n for n in exported.graph.node if n.op_type in ("Quant", "BipolarQuant")]
        assert len(quant) == n_weights + n_acts
        declared = sorted(getCustomOp(n).get_integer_datatype(wrapper).name for n in quant)
        expected_types = [_datatype(w_bits)] * n_weights + [_datatype(a_bits)] * n_acts
        if network == "cnv":
            expected_types[-1] = "INT8"
        assert declared == sorted(expected_types)
