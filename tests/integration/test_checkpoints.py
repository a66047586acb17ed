"""Checkpoints of quantized models: state_dict round trips, whole-model pickling, float checkpoints."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import brevitas.nn as qnn
from brevitas.checkpoint import (
    ignore_missing_quant_keys,
    load_float_state_dict,
    load_state_dict,
    quant_keys_ignored,
    quant_state_keys,
)
from brevitas.errors import CheckpointError
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8Bias, Int8WeightPerTensorFloat


class LearnedWeightQuant(Int8WeightPerTensorFloat):
    """Module level, so it pickles by reference."""

    bit_width = 4
    bit_width_impl_type = "parameter"
    scaling_impl_type = "parameter_from_stats"


def quant_model() -> nn.Module:
    return nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),
        qnn.QuantConv2d(3, 4, 3, weight_quant=LearnedWeightQuant, bias_quant=Int8Bias),
        qnn.QuantReLU(bit_width=4),
        nn.Flatten(),
        qnn.QuantLinear(4 * 4 * 4, 5, bias=True, weight_scaling_per_output_channel=True),
    )


def float_model() -> nn.Module:
    return nn.Sequential(nn.Identity(), nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))


def _train(model: nn.Module, steps: int = 3) -> None:
    torch.manual_seed(1)
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 5, (8,))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def _same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_state_dict_round_trip_is_exact() -> None:
    torch.manual_seed(0)
    trained = quant_model()
    _train(trained)
    torch.manual_seed(42)
    fresh = quant_model()
    fresh.load_state_dict(trained.state_dict())
    _same_state(trained, fresh)
    x = torch.randn(2, 3, 6, 6)
    trained.eval()
    fresh.eval()
    assert torch.equal(trained(x), fresh(x))
    # learned quantizer state came from the checkpoint, not from re-derived statistics
    conv_t, conv_f = trained[1], fresh[1]
    assert torch.equal(conv_t.quant_weight_scale(), conv_f.quant_weight_scale())
    assert torch.equal(conv_t.quant_weight_bit_width(), conv_f.quant_weight_bit_width())


def test_loading_keeps_quantizer_parameters_an_optimizer_holds() -> None:
    torch.manual_seed(0)
    source = quant_model()
    _train(source)
    target = quant_model()
    held = {name: p for name, p in target.named_parameters()}
    opt = torch.optim.SGD(target.parameters(), lr=0.1)
    target.load_state_dict(source.state_dict())
    for name, p in target.named_parameters():
        assert p is held[name], name
    _train_with(target, opt)


def _train_with(model: nn.Module, opt: torch.optim.Optimizer) -> None:
    scale_param = model[1].weight_quant.tensor_quant.scaling_impl.value
    before = scale_param.detach().clone()
    x, y = torch.randn(4, 3, 6, 6), torch.randint(0, 5, (4,))
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    assert not torch.equal(before, scale_param.detach())  # the optimizer still updates the live parameter


def test_whole_model_pickles_with_torch_save() -> None:
    torch.manual_seed(0)
    model = quant_model()
    _train(model)
    model.eval()
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        model(x)  # fills the eval-mode weight cache, which must not get in the way of pickling
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert torch.equal(model(x), loaded(x))
    _same_state(model, loaded)
    # the loaded quantizers can still be rebuilt: a float checkpoint re-derives their statistics
    ref = float_model()
    load_float_state_dict(loaded, ref.state_dict())
    expected = ref[4].weight.detach().abs().amax(dim=1, keepdim=True) / 127
    assert torch.allclose(loaded[4].quant_weight_scale(), expected)
    assert loaded[1].weight_quant.quant is LearnedWeightQuant


def test_whole_model_with_a_locally_defined_quantizer_pickles() -> None:
    class LocalQuant(Int8WeightPerTensorFloat):
        bit_width = 3

    model = nn.Sequential(qnn.QuantLinear(4, 2, weight_quant=LocalQuant))
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    x = torch.randn(3, 4)
    assert torch.equal(model(x), loaded(x))
    assert int(loaded[0].quant_weight_bit_width()) == 3
    with pytest.warns(UserWarning, match="not re-derived"):
        loaded.load_state_dict(model.state_dict())
    assert torch.equal(model(x), loaded(x))


def test_float_checkpoint_with_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    ref = float_model()
    model = quant_model()
    with pytest.raises(RuntimeError, match="tensor_quant"):
        model.load_state_dict(ref.state_dict())
    monkeypatch.setenv("BREVITAS_IGNORE_MISSING_KEYS", "1")
    assert quant_keys_ignored()
    result = model.load_state_dict(ref.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    for name, tensor in ref.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name
    # statistics-based scales are re-derived from the float weights
    conv_w = ref[1].weight.detach()
    assert torch.allclose(model[1].quant_weight_scale(), conv_w.abs().max() / 7)
    assert int(model[1].int_weight().abs().max()) == 7
    fc_w = ref[4].weight.detach()
    assert torch.allclose(model[4].quant_weight_scale(), fc_w.abs().amax(dim=1, keepdim=True) / 127)


def test_float_checkpoint_through_the_explicit_api() -> None:
    torch.manual_seed(0)
    ref = float_model()
    model = quant_model()
    assert not quant_keys_ignored()
    load_float_state_dict(model, ref.state_dict())
    assert torch.allclose(model[1].quant_weight_scale(), ref[1].weight.detach().abs().max() / 7)
    assert not quant_keys_ignored()  # only during the call
    with ignore_missing_quant_keys():
        assert quant_keys_ignored()
        model.load_state_dict(ref.state_dict())


def test_float_checkpoint_errors_name_the_keys() -> None:
    model = quant_model()
    sd = float_model().state_dict()
    unexpected = dict(sd, **{"1.weight_extra": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"1\.weight_extra"):
        load_float_state_dict(model, unexpected)
    misshaped = dict(sd, **{"4.weight": torch.zeros(5, 3)})
    with pytest.raises(CheckpointError, match=r"4\.weight"):
        load_float_state_dict(model, misshaped)
    missing = {k: v for k, v in sd.items() if k != "1.bias"}
    with pytest.raises(CheckpointError, match=r"1\.bias"):
        load_float_state_dict(model, missing)
    with pytest.raises(CheckpointError, match=r"tensor_quant"):
        load_state_dict(model, sd)  # the strict variant wants quantizer keys
    assert isinstance(CheckpointError("x"), RuntimeError)


def test_float_checkpoint_into_a_shared_proxy_covers_both_weights() -> None:
    class Pair(nn.Module):
        def __init__(self, shared: bool) -> None:
            super().__init__()
            if shared:
                self.a = qnn.QuantConv2d(2, 2, 1, bias=False)
                self.b = qnn.QuantConv2d(2, 2, 1, bias=False, weight_quant=self.a.weight_quant)
            else:
                self.a = nn.Conv2d(2, 2, 1, bias=False)
                self.b = nn.Conv2d(2, 2, 1, bias=False)

    torch.manual_seed(0)
    ref = Pair(shared=False)
    with torch.no_grad():
        ref.b.weight.mul_(5.0)
    model = Pair(shared=True)
    load_float_state_dict(model, ref.state_dict())
    top = torch.maximum(ref.a.weight.abs().max(), ref.b.weight.abs().max()).detach()
    assert torch.allclose(model.a.quant_weight_scale(), top / 127)
    assert torch.allclose(model.b.quant_weight_scale(), top / 127)


def test_quant_state_keys_are_what_a_float_checkpoint_lacks() -> None:
    model = quant_model()
    keys = set(quant_state_keys(model))
    float_keys = set(float_model().state_dict())
    assert keys and keys.isdisjoint(float_keys)
    assert keys | float_keys == set(model.state_dict())


def test_activation_statistics_survive_a_round_trip() -> None:
    torch.manual_seed(0)
    act = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat)
    act.train()
    for _ in range(3):
        act(torch.randn(16) * 4)
    other = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        other.load_state_dict(act.state_dict())
    act.eval()
    other.eval()
    assert torch.equal(act.quant_act_scale(), other.quant_act_scale())
