"""Fuzzed exports: random small networks through every installed exporter.

Hypothesis draws small networks (1-3 layers among convolutions, transposed
convolutions, activations, pooling, element-wise adds and scale-bias layers)
and their quantizers (integer, fixed-point, binary, ternary; bit-widths 2-8;
per-tensor or per-channel; with or without zero-points; learned or
statistics-based scales and bit-widths), trains each a few steps (so some
stop in the middle of their statistics phase) and hands each to every
exporter ``brevitas.export.exporters()`` lists. For each pair, exactly one of:

- the exporter's ``check`` refuses it, every problem naming a layer and a
  constraint, and ``export`` then refuses it too, writing nothing; or
- the export succeeds, and the artifact, run by the exporter's real consumer
  (``Exporter.run``: onnxruntime, qonnx's ``execute_onnx``, the PyXIR contract
  executor, PyTorch), matches the PyTorch model in eval mode within the
  exporter's tolerance.

Anything else (a crash, an error after the check passed, a mismatch) fails.
The default run covers at least 200 (network, exporter) pairs; ``--slow``
covers many more.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _fuzz_nets import STACKABLE_KINDS, NetSpec, QuantSpec, build, quant_specs
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import brevitas.export as bx
from brevitas.errors import BrevitasError
from brevitas.quant import fixed_point, scaled_int

#: max |consumer - PyTorch| in steps of the output quantizer. One step: a consumer may compute an
#: intermediate in another order and land on the other side of a rounding tie, which moves the
#: output by one step at most; anything more is a wrong export.
DEFAULT_TOLERANCE_STEPS = 1.0
#: how many (network, exporter) pairs the default run covers, at least
MIN_PAIRS = 200
#: layers every target has (drawn with the target-friendly quantizers, so that strict exporters accept some)
FRIENDLY_KINDS = ["conv2d", "relu", "maxpool", "eltwise-add", "identity"]


def _exporters() -> list[str]:
    return sorted(bx.exporters())


def _tolerance(exporter: str) -> float:
    backend = bx.get_exporter(exporter)
    return float(getattr(backend, "tolerance_steps", DEFAULT_TOLERANCE_STEPS))


@st.composite
def _target_friendly(draw: st.DrawFn) -> tuple[QuantSpec, Any]:
    """Configurations strict targets accept: 8-bit fixed point (DPU), the QOperator form, unsigned ReLUs (FINN)."""
    steps = {"collect_stats_steps": draw(st.integers(1, 3))}
    if draw(st.booleans()):
        # the DPU rounds half up: with "dpu" rounding PyTorch computes what it computes, tie for tie
        steps["float_to_int_impl_type"] = "dpu"
        spec = QuantSpec(fixed_point.Int8WeightPerTensorFixedPoint, {}, fixed_point.Int8ActPerTensorFixedPoint, steps,
                         bias=fixed_point.Int8BiasPerTensorFixedPointInternalScaling, return_quant_tensor=True,
                         relu_act=fixed_point.Uint8ActPerTensorFixedPoint, layer_io=True)  # fmt: skip
        return spec, fixed_point.Int8ActPerTensorFixedPoint
    weight = draw(st.sampled_from([scaled_int.Int8WeightPerTensorFloat, scaled_int.Int8WeightPerChannelFloat]))
    spec = QuantSpec(weight, {}, scaled_int.Int8ActPerTensorFloat, steps,
                     bias=draw(st.sampled_from([None, scaled_int.Int32Bias])), return_quant_tensor=True,
                     relu_act=scaled_int.Uint8ActPerTensorFloat, layer_io=draw(st.booleans()))  # fmt: skip
    return spec, scaled_int.Int8ActPerTensorFloat


@st.composite
def export_nets(draw: st.DrawFn, max_layers: int = 3) -> tuple[NetSpec, Any]:
    """A network and its output quantizer."""
    if draw(st.booleans()):
        quant, out_quant = draw(_target_friendly())
        pool = FRIENDLY_KINDS
    else:
        pool = STACKABLE_KINDS
        quant, out_quant = draw(quant_specs()), scaled_int.Int8ActPerTensorFloat
        if draw(st.booleans()):
            quant = dataclasses.replace(quant, return_quant_tensor=True)
    kinds = tuple(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=max_layers)))
    if kinds[-1] == "relu" and out_quant is fixed_point.Int8ActPerTensorFixedPoint:
        out_quant = fixed_point.Uint8ActPerTensorFixedPoint  # what the DPU wants after a ReLU
    return NetSpec(kinds, quant), out_quant


def _train(model: torch.nn.Module, x: torch.Tensor, steps: int) -> None:
    params = list(model.parameters())
    opt = torch.optim.SGD(params, lr=0.01) if params else None
    model.train()
    for i in range(steps):
        out = model(x * (1 + 0.3 * i))
        loss = out.value.float().pow(2).mean()
        if opt is not None and loss.requires_grad:
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()


def _reference(model: torch.nn.Module, x: torch.Tensor) -> tuple[np.ndarray, float]:
    with torch.no_grad():
        out = model(x)
    return out.value.numpy(), float(torch.as_tensor(out.scale).max())


def _check_one(model: torch.nn.Module, x: torch.Tensor, exporter: str, ref: np.ndarray, step: float) -> str:
    """Refused with reasons, or matching within tolerance; returns what happened (for the statistics)."""
    problems = bx.check(model, x, exporter=exporter)
    if problems:
        for problem in problems:
            assert problem.constraint, f"{exporter}: a problem without a constraint: {problem!r}"
        assert any(p.layer for p in problems) or len(problems) == 1, f"{exporter}: problems name no layer"
        with tempfile.TemporaryDirectory() as tmp:
            target = Path(tmp) / "refused.out"
            with pytest.raises(bx.ExportCheckError):
                bx.export(model, x, exporter=exporter, path=target)
            assert not target.exists() and not list(Path(tmp).iterdir()), "a refused export wrote a file"
        return "refused"
    artifact = bx.export(model, x, exporter=exporter)  # the check passed: any error here fails the test
    outputs = bx.get_exporter(exporter).run(artifact, x)
    got = np.asarray(outputs[0], dtype=np.float64)
    assert got.shape == ref.shape, f"{exporter}: output shape {got.shape}, PyTorch {ref.shape}"
    assert np.isfinite(got).all() == np.isfinite(ref).all()
    err = float(np.abs(got - ref).max()) / step if got.size else 0.0
    tolerance = _tolerance(exporter)
    assert err <= tolerance + 1e-6, f"{exporter}: {err:.3g} output steps off PyTorch (tolerance {tolerance})"
    return "matched" if err < 1e-3 else "matched within tolerance"


def _fuzz(net: tuple[NetSpec, Any], steps: int) -> None:
    spec, out_quant = net
    note(f"{spec.describe()} out={out_quant.__name__}")
    try:
        model, x = build(spec, seed=0, out_quant=out_quant)
        _train(model, x, steps)
        ref, step = _reference(model, x)
    except BrevitasError as exc:  # a combination the library refuses, with a message
        assert str(exc)
        event("network refused by the library")
        return
    if not np.isfinite(ref).all() or not math.isfinite(step) or step <= 0:
        event("non-finite reference")
        return
    for exporter in _exporters():
        event(f"{exporter}: {_check_one(model, x, exporter, ref, step)}")


_PAIRS_PER_NETWORK = max(1, len(_exporters()))
#: about a fifth of the drawn networks are refused by the library itself (e.g. a bias quantizer that needs an
#: input scale the layer does not get), so draw half as many again to keep MIN_PAIRS exporter pairs
_NETWORKS = math.ceil(1.5 * MIN_PAIRS / _PAIRS_PER_NETWORK)


# derandomized: CI explores the same networks on every run (the --slow run explores new ones)
@settings(max_examples=_NETWORKS, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(net=export_nets(), steps=st.integers(0, 3))
def test_every_exporter_refuses_with_reasons_or_matches_pytorch(net: tuple[NetSpec, Any], steps: int) -> None:
    _fuzz(net, steps)


@pytest.mark.slow
@settings(max_examples=10 * _NETWORKS, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=export_nets(), steps=st.integers(0, 5))
def test_every_exporter_refuses_with_reasons_or_matches_pytorch_slow(net: tuple[NetSpec, Any], steps: int) -> None:
    _fuzz(net, steps)


def test_the_default_run_covers_at_least_200_pairs() -> None:
    exporters = _exporters()
    assert exporters, "no exporter is installed"
    assert _NETWORKS * len(exporters) >= MIN_PAIRS


KNOWN_GOOD = [
    (QuantSpec(fixed_point.Int8WeightPerTensorFixedPoint, {}, fixed_point.Int8ActPerTensorFixedPoint,
               {"collect_stats_steps": 1, "float_to_int_impl_type": "dpu"},
               bias=fixed_point.Int8BiasPerTensorFixedPointInternalScaling, return_quant_tensor=True,
               relu_act=fixed_point.Uint8ActPerTensorFixedPoint, layer_io=True),
     fixed_point.Uint8ActPerTensorFixedPoint),
    (QuantSpec(scaled_int.Int8WeightPerTensorFloat, {}, scaled_int.Int8ActPerTensorFloat, {"collect_stats_steps": 1},
               bias=scaled_int.Int32Bias, return_quant_tensor=True, relu_act=scaled_int.Uint8ActPerTensorFloat,
               layer_io=True),
     scaled_int.Int8ActPerTensorFloat),
]  # fmt: skip


@pytest.mark.parametrize("exporter", _exporters())
def test_a_known_good_network_exports_somewhere(exporter: str) -> None:
    """Not only refusals: each exporter accepts one of the fuzz space's target-friendly configurations."""
    outcomes: list[str] = []
    for quant, out_quant in KNOWN_GOOD:
        model, x = build(NetSpec(("conv2d", "relu"), quant), seed=0, out_quant=out_quant)
        _train(model, x, 2)
        ref, step = _reference(model, x)
        outcomes.append(_check_one(model, x, exporter, ref, step))
    assert any(o.startswith("matched") for o in outcomes), f"{exporter} refused every known-good network"
