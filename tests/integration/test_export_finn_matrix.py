"""The ``qonnx`` and ``finn`` exporters over a matrix of layers and quantizers, proved by qonnx's execute_onnx.

Two matrices:

- the shared export matrix (``_export_models``: every layer family of the
  ONNX exporters, with 8-bit down to 2-bit, per-tensor and per-channel,
  narrow and zero-point quantizers): QONNX takes every case; FINN-ONNX takes
  the cases FINN can (signed activation quantizers off a ReLU) and refuses
  the others with the reason;
- a low-bit matrix of place-aware quantizers (1-bit and 2-bit, binary,
  ternary, unsigned after ReLU, signed elsewhere), which both take.

Outputs equal the PyTorch eval-mode output to float rounding: elementwise
within float32 rounding, except that a value sitting on a rounding boundary
may land one quantization step away (the float operations before a
quantizer run in another order); at most 1% of the outputs may do so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch
from _export_models import CONFIGS, build, cases, output_step
from qonnx.core.datatype import DataType
from qonnx.core.modelwrapper import ModelWrapper
from torch import nn

import brevitas.export as bx
from brevitas.export.base import ExportCheckError
from brevitas.nn import (
    QuantAvgPool2d,
    QuantCat,
    QuantConv1d,
    QuantConv2d,
    QuantEltwiseAdd,
    QuantHardTanh,
    QuantIdentity,
    QuantLinear,
    QuantMaxPool2d,
    QuantReLU,
)
from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Uint8ActPerTensorFloat,
)
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat
from brevitas.quant.ternary import SignedTernaryActPerTensorConst, SignedTernaryWeightPerTensorConst
from brevitas_export_finn.runtime import run

EXPORTERS = ("qonnx", "finn")


def assert_matches(out: np.ndarray, expected: np.ndarray, step: float) -> None:
    """Equal to float rounding; a boundary value may land one step away (at most 1% of the outputs)."""
    assert out.shape == expected.shape and out.dtype == np.float32
    diff = np.abs(out.astype(np.float64) - expected.astype(np.float64))
    tol = 1e-5 * np.maximum(1.0, np.abs(expected))
    off = diff > tol
    assert (diff[off] <= step * (1 + 1e-4) + tol[off]).all(), f"max difference {diff.max()} > one step {step}"
    assert off.sum() <= max(1, off.size // 100), f"{off.sum()} of {off.size} outputs off by one step"


def _outputs(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[np.ndarray, float]:
    model.eval()
    with torch.no_grad():
        out = model(*inputs)
    scale = getattr(out, "scale", None)
    step = float(torch.as_tensor(scale).max()) if scale is not None else 0.0
    return getattr(out, "value", out).numpy(), step


# ------------------------------------------------------------------------------------------- shared matrix
def _finn_refusal_is_justified(problem: Any, layer: str, config: str) -> bool:
    """Whether a FINN refusal names a reason the configuration really has."""
    signed = CONFIGS[config].act is Int8ActPerTensorFloat
    if "non-zero zero-point" in problem.constraint:
        return CONFIGS[config].act is ShiftedUint8ActPerTensorFloat or CONFIGS[config].weight_zero_point
    if "is unsigned" in problem.constraint:
        return not signed
    if "but quantizes the output of a ReLU" in problem.constraint:
        return signed
    return False


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("layer, config", cases())
def test_shared_matrix(layer: str, config: str, exporter: str) -> None:
    model, example, _ = build(layer, config)
    expected, step = _outputs(model, example)
    try:
        exported = bx.export(model, example, exporter=exporter)
    except ExportCheckError as exc:
        # QONNX takes every case; FINN takes signed activation quantizers off a ReLU
        assert exporter == "finn" and not (CONFIGS[config].act is Int8ActPerTensorFloat and layer != "relu"), str(exc)
        for problem in exc.problems:
            assert _finn_refusal_is_justified(problem, layer, config), str(problem)
            assert problem.layer and problem.fix
        return
    assert_matches(run(exported, *example)[0], expected, output_step_or(step, model, example))
    assert ModelWrapper(exported).check_all_tensor_shapes_specified()


def output_step_or(step: float, model: nn.Module, example: tuple[torch.Tensor, ...]) -> float:
    if step:
        return step
    with torch.no_grad():
        return output_step(model(*example))


# ------------------------------------------------------------------------------------------- low-bit matrix
@dataclass(frozen=True)
class LowBit:
    """Quantizers of one low-bit column: weights, signed activations, activations after a ReLU."""

    name: str
    weight: dict[str, Any]
    act: dict[str, Any]
    relu: dict[str, Any]
    #: datatypes the FINN file declares
    datatypes: frozenset[str] = field(default_factory=frozenset)


LOW_BIT = {
    c.name: c
    for c in (
        LowBit(
            "w1a1",
            {"weight_quant": SignedBinaryWeightPerTensorConst},
            {"act_quant": SignedBinaryActPerTensorConst},
            {"act_quant": Uint8ActPerTensorFloat, "bit_width": 1},
            frozenset({"BIPOLAR", "BINARY"}),
        ),
        LowBit(
            "w1a2",
            {"weight_quant": SignedBinaryWeightPerTensorConst},
            {"act_quant": Int8ActPerTensorFloat, "bit_width": 2},
            {"act_quant": Uint8ActPerTensorFloat, "bit_width": 2},
            frozenset({"BIPOLAR", "INT2", "UINT2"}),
        ),
        LowBit(
            "w2a2",
            {"weight_quant": Int8WeightPerTensorFloat, "bit_width": 2},
            {"act_quant": Int8ActPerTensorFloat, "bit_width": 2},
            {"act_quant": Uint8ActPerTensorFloat, "bit_width": 2},
            frozenset({"INT2", "UINT2"}),
        ),
        LowBit(
            "ternary",
            {"weight_quant": SignedTernaryWeightPerTensorConst, "quant_type": "ternary"},
            {"act_quant": SignedTernaryActPerTensorConst},
            {"act_quant": Uint8ActPerTensorFloat, "bit_width": 2},
            frozenset({"TERNARY", "INT2", "UINT2"}),
        ),
        LowBit(
            "w2-perchannel-a1bit-int",
            {"weight_quant": Int8WeightPerChannelFloat, "bit_width": 2},
            {"act_quant": Int8ActPerTensorFloat, "bit_width": 1},
            {"act_quant": Uint8ActPerTensorFloat, "bit_width": 1},
            frozenset({"INT2", "INT1", "BINARY"}),
        ),
    )
}


def _prefixed(kwargs: dict[str, Any], prefix: str) -> dict[str, Any]:
    out = {}
    for key, value in kwargs.items():
        if key == "act_quant" or key == "weight_quant":
            out[f"{prefix}quant"] = value
        else:
            out[f"{prefix}{key}"] = value
    return out


class _TwoInputs(nn.Module):
    def __init__(self, c: LowBit, layer: nn.Module, cat: bool) -> None:
        super().__init__()
        self.qa, self.qb = QuantIdentity(**c.act), QuantIdentity(**c.act)
        self.layer, self.cat = layer, cat

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> Any:
        a, b = self.qa(a), self.qb(b)
        return self.layer([a, b], 1) if self.cat else self.layer(a, b)


def _weights(c: LowBit) -> dict[str, Any]:
    return _prefixed(c.weight, "weight_")


LOW_BIT_LAYERS: dict[str, tuple[Any, tuple[tuple[int, ...], ...]]] = {
    "linear": (
        lambda c: nn.Sequential(QuantIdentity(**c.act), QuantLinear(12, 6, bias=True, **_weights(c)),
                                nn.BatchNorm1d(6), QuantIdentity(**c.act)),
        ((3, 12),),
    ),  # fmt: skip
    "linear-relu": (
        lambda c: nn.Sequential(QuantIdentity(**c.act), QuantLinear(12, 6, bias=False, **_weights(c)),
                                QuantReLU(**c.relu)),
        ((3, 12),),
    ),  # fmt: skip
    "conv2d-relu": (
        lambda c: nn.Sequential(QuantIdentity(**c.act), QuantConv2d(3, 4, 3, stride=2, **_weights(c)),
                                nn.BatchNorm2d(4), QuantReLU(**c.relu)),
        ((2, 3, 9, 9),),
    ),  # fmt: skip
    "conv1d-input-quant": (
        lambda c: nn.Sequential(QuantConv1d(3, 4, 3, padding=1, **_weights(c), **_prefixed(c.act, "input_"),
                                            **_prefixed(c.act, "output_"))),
        ((2, 3, 9),),
    ),  # fmt: skip
    "hardtanh": (lambda c: nn.Sequential(QuantHardTanh(**c.act, min_val=-1.0, max_val=1.0)), ((2, 5, 6),)),
    "maxpool-avgpool": (
        lambda c: nn.Sequential(QuantReLU(**c.relu), QuantMaxPool2d(2),
                                QuantConv2d(3, 3, 1, bias=False, **_weights(c)),
                                QuantIdentity(bit_width=5, return_quant_tensor=True), QuantAvgPool2d(2, bit_width=4)),
        ((2, 3, 8, 8),),
    ),  # fmt: skip
    "eltwise-add": (
        lambda c: _TwoInputs(c, QuantEltwiseAdd(**_prefixed(c.act, "input_"), **_prefixed(c.act, "output_")), False),
        ((2, 4, 5), (2, 4, 5)),
    ),
    "cat": (
        lambda c: _TwoInputs(c, QuantCat(**_prefixed(c.act, "input_"), **_prefixed(c.act, "output_")), True),
        ((2, 3, 5), (2, 2, 5)),
    ),
}


@cache
def _low_bit(layer: str, config: str) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    seed = sorted(LOW_BIT_LAYERS).index(layer) * 100 + sorted(LOW_BIT).index(config)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    make, shapes = LOW_BIT_LAYERS[layer]
    model = make(LOW_BIT[config])
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(*[torch.randn(8, *s[1:], generator=gen) for s in shapes])
    model.eval()
    return model, tuple(torch.randn(*s, generator=gen) for s in shapes)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("config", sorted(LOW_BIT))
@pytest.mark.parametrize("layer", sorted(LOW_BIT_LAYERS))
def test_low_bit_matrix(layer: str, config: str, exporter: str) -> None:
    model, example = _low_bit(layer, config)
    expected, step = _outputs(model, example)
    exported = bx.export(model, example, exporter=exporter)
    out = run(exported, *example)[0]
    assert_matches(out, expected, step or float(np.abs(expected).max()))
    wrapper = ModelWrapper(exported)
    if exporter == "finn":
        declared = {a.tensor_name: a.quant_parameter_tensor_names[0].value
                    for a in exported.graph.quantization_annotation}  # fmt: skip
        assert declared, "a FINN-ONNX file declares the datatypes of its integer tensors"
        extra = {"INT5", "INT4"} if layer == "maxpool-avgpool" else set()
        assert set(declared.values()) <= LOW_BIT[config].datatypes | extra
        for name, dtype in declared.items():
            assert wrapper.get_tensor_datatype(name) == DataType[dtype]
    else:
        assert {n.op_type for n in exported.graph.node} & {"Quant", "BipolarQuant"}
