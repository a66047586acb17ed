"""Bad input everywhere: each case gives a clear error or a documented behaviour, never silent garbage.

The behaviours asserted here are the ones ``docs/reliability.md`` documents:

- NaN / Inf in a training batch: the loss shows it; runtime statistics skip a
  batch whose statistic is not finite (no poisoned scale, the counter does
  not advance), so the quantizers end exactly as if the batch never came.
- NaN weights: the weight's quantized output is NaN (it shows in the loss);
  no quantizer state is derived from it.
- Zero-size batches: an empty output, statistics untouched; zero-size
  weights: refused when the layer is built.
- float16 / bfloat16: a model converted with ``.half()`` / ``.bfloat16()``
  trains in that dtype; activation quantizers keep the input's dtype; a layer
  with float32 weights refuses another dtype exactly as ``torch.nn`` does.
- A bit-width changed after construction: in place, it is used consistently
  (cached eval outputs included); loaded from a checkpoint, it is validated.
- A model exported in training mode is exported as it behaves in eval mode,
  its statistics untouched and its modes restored.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import brevitas.export
import brevitas.nn as qnn
from brevitas.checkpoint import load_state_dict
from brevitas.demo.models import QuantLeNet
from brevitas.errors import BrevitasError, CheckpointError, ConfigError
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8Bias, Int32Bias, Uint8ActPerTensorFloat
from brevitas.quant.shifted_scaled_int import ShiftedUint8ActPerTensorFloat


class CollectQuant(Uint8ActPerTensorFloat):
    collect_stats_steps = 4


class RunningMaxQuant(Uint8ActPerTensorFloat):
    scaling_impl_type = "stats"
    scaling_stats_op = "max"


def _lenet(act: Any) -> nn.Module:
    torch.manual_seed(0)
    return QuantLeNet(act_quant=act, input_quant=ShiftedUint8ActPerTensorFloat.let(collect_stats_steps=4))


def _quant_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "quant" in k}


def _batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    return [(torch.rand(8, 1, 8, 8, generator=g), torch.randint(0, 10, (8,), generator=g)) for _ in range(n)]


def _train(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """The usual loop with the usual guard: a non-finite loss skips the optimizer step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    losses = []
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        losses.append(float(loss.detach()))
        if torch.isfinite(loss):
            loss.backward()
            opt.step()
    return losses


# ---------------------------------------------------------------------------
# NaN / Inf
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("act", [CollectQuant, RunningMaxQuant], ids=["collect-then-learn", "running-max"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("position", [0, 2, 5], ids=["first", "mid-statistics", "after-statistics"])
def test_a_non_finite_batch_is_skipped_by_the_statistics(act: Any, bad: float, position: int) -> None:
    good = _batches(7)
    poisoned = list(good)
    x, y = poisoned[position]
    x = x.clone()
    x[0, 0, 3, 3] = bad  # one element is enough
    poisoned[position] = (x, y)

    hit = _lenet(act)
    losses = _train(hit, poisoned)
    if bad != bad:  # NaN: the user sees it in the loss
        assert torch.isnan(torch.tensor(losses[position]))
    else:  # +-Inf: saturates to the end of the range, like any out-of-range value
        assert torch.isfinite(torch.tensor(losses[position]))
    assert all(torch.isfinite(torch.tensor(v)) for i, v in enumerate(losses) if i != position)

    reference = _lenet(act)
    _train(reference, good[:position] + good[position + 1 :])  # as if the bad batch never came
    got, want = _quant_state(hit), _quant_state(reference)
    # NaN reaches every quantizer and the step is skipped: everything is as if the batch never came;
    # Inf is skipped by the input quantizer's statistics, which saturate it, so later layers see finite data
    statistics = ("running_stats", "buffer", "counter")
    compared = [k for k in got if bad != bad or (k.startswith("quant_inp.") and k.endswith(statistics))]
    assert compared
    for key in compared:
        assert torch.equal(got[key], want[key]), key
    for key, value in got.items():
        assert torch.isfinite(value.float()).all(), f"{key} holds a non-finite value"


def test_nan_weights_show_in_the_output_and_leave_no_quantizer_state() -> None:
    torch.manual_seed(0)
    layer = qnn.QuantLinear(4, 3, bias=False, weight_scaling_impl_type="parameter_from_stats")
    clean = {k: v.clone() for k, v in layer.state_dict().items()}
    with torch.no_grad():
        layer.weight[0, 0] = float("nan")
    assert torch.isnan(layer(torch.randn(2, 4))).any()
    assert torch.equal(layer.state_dict()["weight_quant.tensor_quant.scaling_impl.value"],
                       clean["weight_quant.tensor_quant.scaling_impl.value"])  # fmt: skip
    load_state_dict(layer, clean)  # the fix: restore good weights
    assert torch.isfinite(layer(torch.randn(2, 4))).all()


# ---------------------------------------------------------------------------
# Zero-size tensors
# ---------------------------------------------------------------------------


def _per_channel_relu() -> nn.Module:
    return qnn.QuantReLU(scaling_per_output_channel=True, per_channel_broadcastable_shape=(1, 4, 1, 1),
                         scaling_stats_permute_dims=(1, 0, 2, 3))  # fmt: skip


EMPTY_CASES = {
    "identity": (lambda: qnn.QuantIdentity(), (0, 4)),
    "relu-running": (lambda: qnn.QuantReLU(act_quant=RunningMaxQuant), (0, 4, 3, 3)),
    "relu-per-channel": (_per_channel_relu, (0, 4, 3, 3)),
    "shifted": (lambda: qnn.QuantIdentity(act_quant=ShiftedUint8ActPerTensorFloat), (0, 4)),
    "conv": (lambda: nn.Sequential(qnn.QuantIdentity(return_quant_tensor=True),
                                   qnn.QuantConv2d(4, 2, 3, bias_quant=Int8Bias)), (0, 4, 5, 5)),  # fmt: skip
    "linear": (lambda: nn.Sequential(qnn.QuantIdentity(return_quant_tensor=True),
                                     qnn.QuantLinear(4, 2, bias=True, bias_quant=Int32Bias)), (0, 4)),  # fmt: skip
    "avgpool": (lambda: nn.Sequential(qnn.QuantIdentity(return_quant_tensor=True), qnn.QuantAvgPool2d(2)),
                (0, 4, 4, 4)),  # fmt: skip
}


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", list(EMPTY_CASES))
def test_an_empty_batch_gives_an_empty_output_and_leaves_statistics_alone(case: str, training: bool) -> None:
    make, shape = EMPTY_CASES[case]
    torch.manual_seed(0)
    model = make().train()
    model(torch.randn(8, *shape[1:]))  # one real batch first
    model.train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = model(torch.zeros(shape))
    value = out.value if hasattr(out, "value") else out
    assert value.shape[0] == 0
    after = model.state_dict()
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_an_empty_batch_in_an_eltwise_add() -> None:
    add = qnn.QuantEltwiseAdd()
    assert add(torch.zeros(0, 4), torch.zeros(0, 4)).shape == (0, 4)


@pytest.mark.parametrize("shape", [(4, 0), (0, 4)], ids=["no-outputs", "no-inputs"])
def test_zero_size_weights_are_refused_when_building(shape: tuple[int, int]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "Initializing zero-element tensors is a no-op"
        with pytest.raises(ConfigError, match=r"QuantLinear.*shapes \[\(\d, \d\)\]"):
            qnn.QuantLinear(shape[0], shape[1], bias=False)


# ---------------------------------------------------------------------------
# Dtypes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_a_model_converted_to_half_precision_trains_in_it(dtype: torch.dtype) -> None:
    model = _lenet(CollectQuant).to(dtype)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for x, y in _batches(6):  # through the statistics phase and beyond
        opt.zero_grad()
        out = model(x.to(dtype))
        assert out.dtype == dtype
        loss = F.cross_entropy(out.float(), y)
        assert torch.isfinite(loss)
        loss.backward()
        opt.step()
    for key, value in _quant_state(model).items():
        assert torch.isfinite(value.float()).all(), key


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_activation_quantizers_keep_the_input_dtype(dtype: torch.dtype) -> None:
    relu = qnn.QuantReLU(bit_width=4)
    x = torch.rand(2, 4, dtype=dtype)
    assert relu(x).dtype == dtype


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_a_float32_layer_refuses_another_dtype_like_torch_nn(dtype: torch.dtype) -> None:
    x = torch.rand(2, 4, dtype=dtype)
    with pytest.raises(RuntimeError, match="dtype|type") as float_error:
        nn.Linear(4, 2)(x)
    with pytest.raises(RuntimeError, match="dtype|type") as quant_error:
        qnn.QuantLinear(4, 2, bias=True)(x)
    assert type(quant_error.value) is type(float_error.value)


def test_integer_inputs_to_an_activation_quantizer_are_quantized_as_floats() -> None:
    identity = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
    x = torch.tensor([[0, 3, -7, 12]])
    out = identity(x)
    assert out.value.is_floating_point()
    assert torch.allclose(out.value, x.float(), atol=float(out.scale) + 1e-6)  # within one step (max clipped)


# ---------------------------------------------------------------------------
# Bit-width changed after construction
# ---------------------------------------------------------------------------


def test_a_bit_width_changed_in_place_is_used_everywhere_at_once() -> None:
    torch.manual_seed(0)
    layer = qnn.QuantLinear(8, 4, bias=False, weight_bit_width=8).eval()
    with torch.no_grad():
        assert int(layer.quant_weight().int().abs().max()) == 127  # cached in eval mode
        layer.weight_quant.tensor_quant.bit_width_impl.bit_width.fill_(3)
        qw = layer.quant_weight()  # not the stale cached 8-bit weight
    assert int(qw.bit_width) == 3
    assert int(qw.int().abs().max()) == 3  # narrow 3-bit range: [-3, 3]
    assert int(layer.quant_weight_bit_width()) == 3
    with torch.no_grad():
        assert torch.equal(layer(torch.eye(8)).t(), qw.value)


def test_a_checkpoint_with_another_bit_width_wins_and_a_bad_one_is_refused() -> None:
    torch.manual_seed(0)
    four = qnn.QuantLinear(8, 4, bias=False, weight_bit_width=4)
    eight = qnn.QuantLinear(8, 4, bias=False, weight_bit_width=8)
    load_state_dict(eight, four.state_dict())  # the checkpoint's state is the state
    assert int(eight.quant_weight_bit_width()) == 4
    for bad in (0.0, 3.5, 64.0):
        sd = four.state_dict()
        sd["weight_quant.tensor_quant.bit_width_impl.bit_width"] = torch.tensor(bad)
        before = {k: v.clone() for k, v in eight.state_dict().items()}
        with pytest.raises(CheckpointError, match=r"bit_width_impl\.bit_width"):
            load_state_dict(eight, sd)
        assert all(torch.equal(before[k], v) for k, v in eight.state_dict().items())
        with pytest.raises(BrevitasError):
            eight.load_state_dict(sd)  # plain torch loading is refused too


# ---------------------------------------------------------------------------
# Export of a model still in training mode
# ---------------------------------------------------------------------------


def _exporter_that_runs() -> str:
    installed = brevitas.export.exporters()
    for name in ("onnx-qcdq", "qonnx", "torch-quantized"):
        if name in installed:
            return name
    pytest.skip("no exporter installed")


def test_exporting_a_model_in_training_mode_exports_eval_behaviour_and_restores_it(tmp_path: Any) -> None:
    exporter = _exporter_that_runs()
    torch.manual_seed(0)
    model = QuantLeNet(weight_bit_width=8, act_quant=CollectQuant)
    _train(model, _batches(2))  # mid-statistics, still in training mode
    model.relu2.eval()  # a mixed state must come back as it was, too
    modes = {name: m.training for name, m in model.named_modules()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 1, 8, 8)
    artifact = brevitas.export.export(model, x, exporter=exporter, path=tmp_path / "model.out")
    assert {name: m.training for name, m in model.named_modules()} == modes
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), f"export changed {key}"
    model.eval()
    with torch.no_grad():
        expected = model(x).numpy()
    got = brevitas.export.get_exporter(exporter).run(artifact, x)[0]
    scale = float(abs(expected).max())
    assert abs(got - expected).max() <= 0.05 * scale + 1e-5
