"""Small quantized models for the export tests: one layer kind x one quantizer configuration.

Shared by the ONNX matrix and the torch-quantized tests (not a test module).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
from torch import nn

from brevitas.nn import (
    QuantAdaptiveAvgPool2d,
    QuantAvgPool2d,
    QuantCat,
    QuantConv1d,
    QuantConv2d,
    QuantConv3d,
    QuantConvTranspose1d,
    QuantConvTranspose2d,
    QuantEltwiseAdd,
    QuantHardTanh,
    QuantIdentity,
    QuantLinear,
    QuantMaxPool1d,
    QuantMaxPool2d,
    QuantReLU,
    QuantSigmoid,
    QuantTanh,
)
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloat,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Int32Bias,
    Uint8ActPerTensorFloat,
)
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat, ShiftedUint8WeightPerChannelFloat

__all__ = ["CASES_BY_LAYER", "CONFIGS", "LAYERS", "QuantConfig", "build", "cases", "output_step"]


@dataclass(frozen=True)
class QuantConfig:
    """Activation and weight quantizers of one matrix column."""

    name: str
    act: Any
    act_bits: int
    weight: Any
    weight_bits: int
    act_narrow: bool = False

    @property
    def all_8_bit(self) -> bool:
        return self.act_bits == 8 and self.weight_bits == 8

    @property
    def weight_zero_point(self) -> bool:
        return self.weight is ShiftedUint8WeightPerChannelFloat

    def act_kwargs(self, prefix: str = "") -> dict[str, Any]:
        out = {f"{prefix}bit_width": self.act_bits}
        if self.act_narrow:
            out[f"{prefix}narrow_range"] = True
        return out


CONFIGS = {
    c.name: c
    for c in (
        QuantConfig("int8-pertensor", Int8ActPerTensorFloat, 8, Int8WeightPerTensorFloat, 8),
        QuantConfig("uint8-perchannel", Uint8ActPerTensorFloat, 8, Int8WeightPerChannelFloat, 8),
        QuantConfig("zeropoint-uint8", ShiftedUint8ActPerTensorFloat, 8, Int8WeightPerChannelFloat, 8),
        QuantConfig("int8-narrow", Int8ActPerTensorFloat, 8, Int8WeightPerTensorFloat, 8, act_narrow=True),
        QuantConfig("int4-perchannel", Int8ActPerTensorFloat, 4, Int8WeightPerChannelFloat, 4),
        QuantConfig("uint3-w2", Uint8ActPerTensorFloat, 3, Int8WeightPerTensorFloat, 2),
        QuantConfig("int6-w5-perchannel", Int8ActPerTensorFloat, 6, Int8WeightPerChannelFloat, 5),
        QuantConfig("uint7-w7", Uint8ActPerTensorFloat, 7, Int8WeightPerTensorFloat, 7),
        QuantConfig("int2-w3", Int8ActPerTensorFloat, 2, Int8WeightPerTensorFloat, 3),
        QuantConfig("zeropoint-weights", ShiftedUint8ActPerTensorFloat, 5, ShiftedUint8WeightPerChannelFloat, 8),
    )
}


def _input_quant(cfg: QuantConfig) -> nn.Module:
    return QuantIdentity(act_quant=cfg.act, return_quant_tensor=True, **cfg.act_kwargs())


def _wbiol(cls: Any, *args: Any, cfg: QuantConfig, **kwargs: Any) -> nn.Module:
    return cls(
        *args,
        weight_quant=cfg.weight,
        weight_bit_width=cfg.weight_bits,
        input_quant=cfg.act,
        output_quant=cfg.act,
        bias_quant=Int32Bias,
        return_quant_tensor=True,
        **cfg.act_kwargs("input_"),
        **cfg.act_kwargs("output_"),
        **kwargs,
    )


class _Chain(nn.Module):
    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Any) -> Any:
        return self.layers(x)


class _Binary(nn.Module):
    """A two-input layer (eltwise add, cat) on two float inputs: a multi-input model."""

    def __init__(self, layer: nn.Module, cat: bool) -> None:
        super().__init__()
        self.layer, self.cat = layer, cat

    def forward(self, a: Any, b: Any) -> Any:
        return self.layer([a, b], 1) if self.cat else self.layer(a, b)


def _act(cls: Any, cfg: QuantConfig, **kwargs: Any) -> nn.Module:
    return _Chain(cls(act_quant=cfg.act, return_quant_tensor=True, **cfg.act_kwargs(), **kwargs))


#: layer kind -> (builder, example input shapes)
LAYERS: dict[str, tuple[Any, tuple[tuple[int, ...], ...]]] = {
    "conv1d": (lambda c: _Chain(_wbiol(QuantConv1d, 3, 4, 3, padding=1, cfg=c)), ((2, 3, 9),)),
    "conv2d": (lambda c: _Chain(_wbiol(QuantConv2d, 3, 4, 3, stride=2, cfg=c)), ((2, 3, 9, 9),)),
    "conv3d": (lambda c: _Chain(_wbiol(QuantConv3d, 2, 3, 2, cfg=c)), ((2, 2, 4, 4, 4),)),
    "convtranspose1d": (
        lambda c: _Chain(_wbiol(QuantConvTranspose1d, 3, 4, 3, stride=2, cfg=c)),
        ((2, 3, 6),),
    ),
    "convtranspose2d": (
        lambda c: _Chain(_wbiol(QuantConvTranspose2d, 3, 2, 2, stride=2, padding=1, cfg=c)),
        ((2, 3, 5, 5),),
    ),
    "linear": (lambda c: _Chain(_wbiol(QuantLinear, 12, 6, cfg=c)), ((2, 12),)),
    "relu": (lambda c: _act(QuantReLU, c), ((2, 5, 6),)),
    "identity": (lambda c: _act(QuantIdentity, c), ((2, 5, 6),)),
    "hardtanh": (lambda c: _act(QuantHardTanh, c, min_val=-0.75, max_val=0.5), ((2, 5, 6),)),
    "sigmoid": (lambda c: _act(QuantSigmoid, c), ((2, 5, 6),)),
    "tanh": (lambda c: _act(QuantTanh, c), ((2, 5, 6),)),
    "eltwise-add": (
        lambda c: _Binary(QuantEltwiseAdd(input_quant=c.act, output_quant=c.act, return_quant_tensor=True,
                                             **c.act_kwargs("input_"), **c.act_kwargs("output_")), cat=False),
        ((2, 4, 5), (2, 4, 5)),
    ),  # fmt: skip
    "cat": (
        lambda c: _Binary(QuantCat(input_quant=c.act, output_quant=c.act, return_quant_tensor=True,
                                      **c.act_kwargs("input_"), **c.act_kwargs("output_")), cat=True),
        ((2, 3, 5), (2, 2, 5)),
    ),
    "avgpool2d": (lambda c: _Chain(_input_quant(c), QuantAvgPool2d(2)), ((2, 3, 6, 6),)),
    "adaptiveavgpool2d": (lambda c: _Chain(_input_quant(c), QuantAdaptiveAvgPool2d((2, 1))), ((2, 3, 4, 6),)),
    "maxpool1d": (lambda c: _Chain(_input_quant(c), QuantMaxPool1d(2)), ((2, 3, 8),)),
    "maxpool2d": (lambda c: _Chain(_input_quant(c), QuantMaxPool2d(3, stride=2, padding=1)), ((2, 3, 7, 7),)),
}

#: the layers every configuration runs with; the others take a rotating share of the configurations
_FULL = ("conv2d", "linear", "relu")


def cases() -> list[tuple[str, str]]:
    """(layer, configuration) pairs of the matrix: every configuration meets several layers of each family."""
    names = list(CONFIGS)
    out = []
    for i, layer in enumerate(LAYERS):
        if layer in _FULL:
            chosen = names
        else:  # four configurations per layer, rotating; always one that onnx-qop accepts
            chosen = [names[(i + k) % len(names)] for k in (0, 3, 6)]
            if not any(CONFIGS[n].all_8_bit and not CONFIGS[n].weight_zero_point for n in chosen):
                chosen.append("int8-pertensor")
            else:
                chosen.append(names[(i + 8) % len(names)])
        out += [(layer, name) for name in dict.fromkeys(chosen)]
    return out


def _calibrate(model: nn.Module, shapes: tuple[tuple[int, ...], ...], gen: torch.Generator) -> None:
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(*[torch.randn(4, *s[1:], generator=gen) for s in shapes])
    model.eval()


@cache
def build(layer: str, config: str) -> tuple[nn.Module, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The calibrated model (eval mode), example inputs (batch 2) and other inputs (batch 3)."""
    seed = zlib.crc32(f"{layer}/{config}".encode())
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    make, shapes = LAYERS[layer]
    model = make(CONFIGS[config])
    _calibrate(model, shapes, gen)
    example = tuple(torch.randn(*s, generator=gen) for s in shapes)
    other = tuple(torch.randn(3, *s[1:], generator=gen) for s in shapes)
    return model, example, other


def output_step(out: Any) -> float:
    """The largest quantization step of a model output (a QuantTensor)."""
    scale = getattr(out, "scale", None)
    assert scale is not None, "matrix models end with a quantizer"
    return float(torch.as_tensor(scale).max())


def CASES_BY_LAYER() -> list[tuple[str, str]]:
    """One (layer, configuration) pair per layer kind: the first configuration the matrix gives it."""
    out: dict[str, str] = {}
    for layer, config in cases():
        out.setdefault(layer, config)
    return list(out.items())
