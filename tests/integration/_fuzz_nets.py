"""Hypothesis strategies drawing small quantized networks (shared by the fuzz tests; not a test module).

A drawn :class:`NetSpec` names a layer kind (or a short stack of them) and the
quantizers of every role: weight quantizer class and overrides (bit-width,
learned bit-width, scaling implementation, statistic, restriction, per
channel), activation quantizer and overrides (bit-width, statistics phase
length, running or collect-then-learn statistics, per channel, zero point),
and bias quantizer. :func:`build` turns it into an ``nn.Module`` and an
example input; the same spec and seed always give the same model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

import brevitas.nn as qnn
from brevitas.quant import fixed_point, scaled_int, shifted_scaled_int
from brevitas.quant.binary import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst
from brevitas.quant.ternary import SignedTernaryActPerTensorConst, SignedTernaryWeightPerTensorConst

__all__ = ["ALL_KINDS", "STACKABLE_KINDS", "NetSpec", "QuantSpec", "build", "net_specs", "quant_specs"]

C = 4  # channels everywhere

#: integer weight quantizers (bit-width and scaling overrides apply)
INT_WEIGHTS = [
    scaled_int.Int8WeightPerTensorFloat,
    scaled_int.Int8WeightPerChannelFloat,
    shifted_scaled_int.ShiftedUint8WeightPerTensorFloat,
    shifted_scaled_int.ShiftedUint8WeightPerChannelFloat,
    fixed_point.Int8WeightPerTensorFixedPoint,
]
OTHER_WEIGHTS = [SignedBinaryWeightPerTensorConst, SignedTernaryWeightPerTensorConst]

INT_ACTS = [
    scaled_int.Int8ActPerTensorFloat,
    scaled_int.Uint8ActPerTensorFloat,
    shifted_scaled_int.ShiftedUint8ActPerTensorFloat,
    fixed_point.Int8ActPerTensorFixedPoint,
    fixed_point.Uint8ActPerTensorFixedPoint,
    scaled_int.Int8ActPerTensorFloatMinMaxInit,
    scaled_int.Uint8ActPerTensorFloatMaxInit,
]
OTHER_ACTS = [SignedBinaryActPerTensorConst, SignedTernaryActPerTensorConst]

BIASES = [None, scaled_int.Int8Bias, scaled_int.Int16Bias, scaled_int.Int32Bias,
          scaled_int.Int8BiasPerTensorFloatInternalScaling]  # fmt: skip


@dataclass(frozen=True)
class QuantSpec:
    """The quantizers of one network: classes and un-prefixed overrides."""

    weight: Any
    weight_kw: dict[str, Any] = field(default_factory=dict, hash=False)
    act: Any = None
    act_kw: dict[str, Any] = field(default_factory=dict, hash=False)
    act_per_channel: bool = False
    bias: Any = None
    #: layers return QuantTensors (what integer exporters need between layers)
    return_quant_tensor: bool = False
    #: the quantizer of ReLU layers (default: ``act``); unsigned for targets that want it
    relu_act: Any = None
    #: weight layers also quantize their input and output with ``act`` (the QOperator form)
    layer_io: bool = False

    def weight_kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"weight_quant": self.weight, "bias_quant": self.bias}
        if self.return_quant_tensor:
            out["return_quant_tensor"] = True
        if self.layer_io:  # per-tensor activation overrides only (the channel count differs per layer)
            for role in ("input", "output"):
                out[f"{role}_quant"] = self.act
                out.update({f"{role}_{k}": v for k, v in self.act_kw.items()})
        out.update({f"weight_{k}": v for k, v in self.weight_kw.items()})
        return out

    def act_kwargs(self, ndim: int, prefix: str = "", channels: int = C) -> dict[str, Any]:
        """Keywords of an activation quantizer for inputs of ``ndim`` dimensions and ``channels`` channels."""
        out = {f"{prefix}{k}": v for k, v in self.act_kw.items()}
        if self.return_quant_tensor and not prefix:
            out["return_quant_tensor"] = True
        if self.act_per_channel and ndim >= 2:
            out[f"{prefix}scaling_per_output_channel"] = True
            out[f"{prefix}per_channel_broadcastable_shape"] = (1, channels) + (1,) * (ndim - 2)
            out[f"{prefix}scaling_stats_permute_dims"] = (1, 0, *range(2, ndim))
        return out

    def describe(self) -> str:
        def name(q: Any) -> str:
            return getattr(q, "__name__", str(q))

        return (
            f"weight={name(self.weight)}{self.weight_kw} act={name(self.act)}{self.act_kw}"
            f"{' per-channel' if self.act_per_channel else ''} bias={name(self.bias)}"
        )


@st.composite
def quant_specs(draw: st.DrawFn) -> QuantSpec:
    """Quantizer choices: classes, bit-widths, learned parameters, per-channel, zero-points."""
    weight = draw(st.sampled_from(INT_WEIGHTS + OTHER_WEIGHTS))
    weight_kw: dict[str, Any] = {}
    if weight in INT_WEIGHTS:
        weight_kw["bit_width"] = draw(st.integers(2, 8))
        if draw(st.booleans()):
            weight_kw["bit_width_impl_type"] = "parameter"
        scaling = draw(st.sampled_from(["stats", "stats", "parameter_from_stats", "parameter"]))
        weight_kw["scaling_impl_type"] = scaling
        if scaling != "parameter":
            weight_kw["scaling_stats_op"] = draw(st.sampled_from(["max", "ave", "mean_sigma_std", "percentile"]))
            if weight_kw["scaling_stats_op"] == "percentile":
                weight_kw["high_percentile_q"] = 99.0
    act = draw(st.sampled_from(INT_ACTS + OTHER_ACTS))
    act_kw: dict[str, Any] = {}
    per_channel = False
    if act in INT_ACTS:
        act_kw["bit_width"] = draw(st.integers(2, 8))
        if act in (scaled_int.Int8ActPerTensorFloatMinMaxInit, scaled_int.Uint8ActPerTensorFloatMaxInit):
            act_kw.update({"min_val": -2.0, "max_val": 2.0})
        else:
            act_kw["collect_stats_steps"] = draw(st.integers(1, 4))
            if draw(st.booleans()):
                act_kw["scaling_impl_type"] = "stats"  # running statistics every step
                act_kw["scaling_stats_momentum"] = draw(st.sampled_from([None, 0.5]))
            act_kw["scaling_stats_op"] = draw(st.sampled_from(["percentile", "max", "ave"]))
            per_channel = draw(st.booleans()) and act is not shifted_scaled_int.ShiftedUint8ActPerTensorFloat
    bias = draw(st.sampled_from(BIASES))
    return QuantSpec(weight, weight_kw, act, act_kw, per_channel, bias)


# ---------------------------------------------------------------------------
# Layer kinds: builder(q) -> (module taking the quantized input, input shape)
# ---------------------------------------------------------------------------


class _Binary(nn.Module):
    """Feeds a two-input layer (add, cat) with ``x`` twice (an exportable graph)."""

    def __init__(self, op: nn.Module, cat: bool) -> None:
        super().__init__()
        self.op = op
        self.cat = cat

    def forward(self, x: Any) -> Any:
        return self.op([x, x], dim=1) if self.cat else self.op(x, x)


def _act(q: QuantSpec, ndim: int) -> dict[str, Any]:
    return {"act_quant": q.act, **q.act_kwargs(ndim)}


BUILDERS: dict[str, Any] = {
    "conv1d": (lambda q: qnn.QuantConv1d(C, 3, 3, padding=1, **q.weight_kwargs()), (2, C, 6)),
    "conv2d": (lambda q: qnn.QuantConv2d(C, 3, 3, padding=1, **q.weight_kwargs()), (2, C, 5, 5)),
    "conv3d": (lambda q: qnn.QuantConv3d(C, 3, 2, **q.weight_kwargs()), (2, C, 3, 3, 3)),
    "convtranspose1d": (lambda q: qnn.QuantConvTranspose1d(C, 3, 2, stride=2, **q.weight_kwargs()), (2, C, 4)),
    "convtranspose2d": (lambda q: qnn.QuantConvTranspose2d(C, 3, 3, stride=2, **q.weight_kwargs()), (2, C, 3, 3)),
    "convtranspose3d": (lambda q: qnn.QuantConvTranspose3d(C, 2, 2, **q.weight_kwargs()), (2, C, 2, 2, 2)),
    "linear": (lambda q: qnn.QuantLinear(C, 3, **q.weight_kwargs()), (3, C)),
    "relu": (lambda q: qnn.QuantReLU(**{**_act(q, 4), "act_quant": q.relu_act or q.act}), (2, C, 3, 3)),
    "identity": (lambda q: qnn.QuantIdentity(**_act(q, 4)), (2, C, 3, 3)),
    "hardtanh": (lambda q: qnn.QuantHardTanh(**{"min_val": -1.0, "max_val": 1.0, **_act(q, 4)}), (2, C, 3, 3)),
    "sigmoid": (lambda q: qnn.QuantSigmoid(**_act(q, 4)), (2, C, 3, 3)),
    "tanh": (lambda q: qnn.QuantTanh(**_act(q, 4)), (2, C, 3, 3)),
    "avgpool": (lambda q: qnn.QuantAvgPool2d(2), (2, C, 4, 4)),
    "adaptive-avgpool": (lambda q: qnn.QuantAdaptiveAvgPool2d(2), (2, C, 4, 4)),
    "maxpool": (lambda q: qnn.QuantMaxPool2d(2), (2, C, 4, 4)),
    "eltwise-add": (lambda q: _Binary(qnn.QuantEltwiseAdd(input_quant=q.act, output_quant=q.act,
                                                          return_quant_tensor=q.return_quant_tensor,
                                                          **q.act_kwargs(4, "input_"), **q.act_kwargs(4, "output_")),
                                      cat=False), (2, C, 3, 3)),  # fmt: skip
    "cat": (lambda q: _Binary(qnn.QuantCat(input_quant=q.act, output_quant=q.act,
                                           return_quant_tensor=q.return_quant_tensor, **q.act_kwargs(4, "input_"),
                                           **q.act_kwargs(4, "output_", 2 * C)), cat=True), (2, C, 3, 3)),  # fmt: skip
    "scale-bias": (lambda q: qnn.QuantScaleBias(C, True, **q.weight_kwargs()), (2, C, 3, 3)),
    "bn-scale-bias": (lambda q: qnn.BatchNorm2dToQuantScaleBias(C, **q.weight_kwargs()), (2, C, 3, 3)),
    "trunc-accumulator": (lambda q: nn.Sequential(
        qnn.QuantConv2d(C, 3, 3, padding=1, bias=False, return_quant_tensor=True, **q.weight_kwargs()),
        qnn.TruncQuantAccumulator()), (2, C, 4, 4)),  # fmt: skip
    "hadamard": (lambda q: qnn.HadamardClassifier(C, 3), (3, C)),
    "upsample": (lambda q: qnn.QuantUpsample(scale_factor=2), (2, C, 2, 2)),
    "dropout": (lambda q: qnn.QuantDropout(p=0.3), (2, C, 3, 3)),
}

ALL_KINDS = sorted(BUILDERS)
#: kinds that map (N, C, H, W) to (N, C', H', W') and may follow one another
STACKABLE_KINDS = ["conv2d", "relu", "identity", "hardtanh", "sigmoid", "tanh", "avgpool", "maxpool",
                   "eltwise-add", "scale-bias", "bn-scale-bias", "convtranspose2d"]  # fmt: skip


@dataclass(frozen=True)
class NetSpec:
    """A network: an input quantizer, then ``kinds`` in sequence, all with the quantizers of ``quant``."""

    kinds: tuple[str, ...]
    quant: QuantSpec

    def describe(self) -> str:
        return f"{' -> '.join(self.kinds)} [{self.quant.describe()}]"


def net_specs(kinds: list[str] | None = None, max_layers: int = 1) -> st.SearchStrategy[NetSpec]:
    """Networks of 1..``max_layers`` layers drawn from ``kinds`` (stacking uses :data:`STACKABLE_KINDS`)."""
    pool = kinds or (ALL_KINDS if max_layers == 1 else STACKABLE_KINDS)
    if max_layers == 1:
        layers = st.tuples(st.sampled_from(pool))
    else:
        layers = st.lists(st.sampled_from(pool), min_size=1, max_size=max_layers).map(tuple)
    return st.builds(NetSpec, layers, quant_specs())


class _Net(nn.Module):
    def __init__(self, layers: list[nn.Module], ndim: int, quant: QuantSpec, out_quant: Any = None) -> None:
        super().__init__()
        kwargs = {**quant.act_kwargs(ndim), "return_quant_tensor": True}
        self.quant_inp = qnn.QuantIdentity(act_quant=quant.act, **kwargs)
        self.layers = nn.Sequential(*layers)
        #: an output quantizer makes the model return a QuantTensor (its scale is the output step)
        self.quant_out = None if out_quant is None else qnn.QuantIdentity(act_quant=out_quant, return_quant_tensor=True)

    def forward(self, x: torch.Tensor) -> Any:
        out = self.layers(self.quant_inp(x))
        if self.quant_out is not None:
            return self.quant_out(out)
        return out.value if hasattr(out, "value") else out


def _channels_after(kind: str) -> int:
    return {"conv2d": 3, "convtranspose2d": 3, "cat": 2 * C}.get(kind, C)


def build(spec: NetSpec, seed: int = 0, out_quant: Any = None) -> tuple[nn.Module, torch.Tensor]:
    """The model (initialized from ``seed``) and an example input for it.

    With ``out_quant`` (a quantizer) the model ends with that output
    quantizer and returns a QuantTensor.

    Raises:
        BrevitasError: the drawn combination is refused (e.g. a power-of-two
            scale with a zero point); the message says why.
    """
    torch.manual_seed(seed)
    shape = BUILDERS[spec.kinds[0]][1] if len(spec.kinds) == 1 else (2, C, 8, 8)
    layers = []
    channels = C
    for kind in spec.kinds:
        if channels != C:  # stacking after a layer that changed the channel count: bring it back
            layers.append(qnn.QuantConv2d(channels, C, 1, **spec.quant.weight_kwargs()))
        builder, _ = BUILDERS[kind]
        layers.append(builder(spec.quant))
        channels = _channels_after(kind)
    model = _Net(layers, len(shape), spec.quant, out_quant)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed + 1)) * 2
    return model, x
