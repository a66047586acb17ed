"""Statistics, views, value restrictions and scaling blocks of the standard plugin."""

from __future__ import annotations

import math
import os
import socket
import sys
import tempfile

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from brevitas.core.scaling import ConstScaling
from brevitas.errors import ConfigError
from brevitas.plugins.registry import ByRole, Registry
from brevitas_plugins.core import restrict_val, scaling, stats
from brevitas_plugins.core.restrict_val import (
    FloatRestrictValue,
    IntRestrictValue,
    LogFloatRestrictValue,
    PowerOfTwoRestrictValue,
)
from brevitas_plugins.core.scaling import (
    AffineRuntimeStatsScaling,
    AffineStatsScaling,
    HeScaling,
    ParameterFromRuntimeStatsScaling,
    ParameterFromStatsFromParameterScaling,
    ParameterScaling,
    RuntimeStatsScaling,
    StatsFromParameterScaling,
)
from brevitas_plugins.core.stats import (
    AbsAve,
    AbsMax,
    AbsMaxAve,
    AbsMinMax,
    AbsPercentile,
    MeanLearnedSigmaStd,
    MeanSigmaStd,
    NegativeMinOrZero,
    NegativePercentileOrZero,
    OverBatchOverOutputChannelView,
    OverOutputChannelView,
    OverTensorView,
    PercentileInterval,
    reduce_stats,
)

SETTINGS = settings(max_examples=50, deadline=None)

# outputs of learned blocks require grad; reading them with float() is intended here
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True:UserWarning")

#: 2-D float32 arrays (C, N) with moderate values, as a per-channel view gives them
matrices = arrays(
    np.float32,
    st.tuples(st.integers(1, 5), st.integers(1, 20)),
    elements=st.floats(-100, 100, width=32, allow_nan=False),
)

RESTRICTIONS = [FloatRestrictValue, LogFloatRestrictValue, IntRestrictValue, PowerOfTwoRestrictValue]


def _percentile_ref(a: np.ndarray, q: float) -> float:
    """k-th smallest with k = floor(q/100 * n + 0.5), at least 1: the documented definition."""
    s = np.sort(a.reshape(-1))
    k = min(max(int(math.floor(0.01 * q * s.size + 0.5)), 1), s.size)
    return float(s[k - 1])


def _low_percentile_ref(a: np.ndarray, q: float) -> float:
    s = np.sort(a.reshape(-1))
    k = min(max(int(math.ceil(0.01 * q * s.size)), 1), s.size)
    return float(s[k - 1])


#: op factory (per-tensor / per-channel), numpy reference of one row or of the whole array
STATS_CASES = {
    "max": (lambda d: AbsMax(d), lambda a: np.abs(a).max()),
    "ave": (lambda d: AbsAve(d), lambda a: np.abs(a).mean()),
    "mean_sigma_std": (
        lambda d: MeanSigmaStd(1.5, d),
        lambda a: np.abs(a).mean() + 1.5 * np.sqrt(np.abs(a).var() + stats.DEFAULT_STD_DEV_EPSILON),
    ),
    "mean_learn_sigma_std": (
        lambda d: MeanLearnedSigmaStd(1.5, stats_reduce_dim=d, scaling_shape=(5,)),
        lambda a: np.abs(a).mean() + 1.5 * np.sqrt(np.abs(a).var() + stats.DEFAULT_STD_DEV_EPSILON),
    ),
    "percentile": (lambda d: AbsPercentile(90.0, d), lambda a: _percentile_ref(np.abs(a), 90.0)),
    "min_max": (lambda d: AbsMinMax(d), lambda a: max(a.max(), 0.0) - min(a.min(), 0.0)),
    "negative_min_or_zero": (lambda d: NegativeMinOrZero(d), lambda a: max(-a.min(), 0.0)),
    "negative_percentile_or_zero": (
        lambda d: NegativePercentileOrZero(10.0, d),
        lambda a: max(-_low_percentile_ref(a, 10.0), 0.0),
    ),
    "percentile_interval": (
        lambda d: PercentileInterval(10.0, 90.0, d),
        lambda a: abs(_percentile_ref(a, 90.0) - min(_low_percentile_ref(a, 10.0), 0.0)),
    ),
}


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STATS_CASES))
@SETTINGS
@given(a=matrices)
def test_stats_op_per_tensor_matches_reference(name: str, a: np.ndarray) -> None:
    make, ref = STATS_CASES[name]
    out = make(None)(OverTensorView()(torch.from_numpy(a)))
    assert out.shape == ()
    np.testing.assert_allclose(out.detach().numpy(), ref(a.astype(np.float64)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(STATS_CASES))
@SETTINGS
@given(a=matrices)
def test_stats_op_per_channel_matches_reference(name: str, a: np.ndarray) -> None:
    make, ref = STATS_CASES[name]
    op = make(1)
    if isinstance(op, MeanLearnedSigmaStd):
        op = MeanLearnedSigmaStd(1.5, stats_reduce_dim=1, scaling_shape=(a.shape[0], 1))
    out = op(torch.from_numpy(a))
    assert out.shape == (a.shape[0],)
    expected = [ref(row.astype(np.float64)) for row in a]
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-4, atol=1e-4)


@SETTINGS
@given(a=matrices)
def test_max_ave_is_mean_of_channel_maxima(a: np.ndarray) -> None:
    out = AbsMaxAve()(OverOutputChannelView()(torch.from_numpy(a)))
    assert out.shape == ()
    np.testing.assert_allclose(float(out), np.abs(a).max(axis=1).mean(), rtol=1e-5, atol=1e-5)
    # on a flattened tensor it is the overall max
    assert float(AbsMaxAve()(torch.from_numpy(a).reshape(-1))) == pytest.approx(float(np.abs(a).max()))


def test_percentile_100_is_max_and_works_past_the_quantile_size_limit() -> None:
    x = torch.randn(17_000_000, generator=torch.Generator().manual_seed(0))
    with pytest.raises(RuntimeError):
        torch.quantile(x.abs(), 0.99)  # the limit AbsPercentile must not have
    p99 = AbsPercentile(99.0)(x)
    assert 2.4 < float(p99) < 2.7  # |N(0,1)| 99th percentile is 2.576
    assert float(AbsPercentile(100.0)(x[:1000])) == float(x[:1000].abs().max())


def test_learned_sigma_receives_gradient_per_channel() -> None:
    op = MeanLearnedSigmaStd(2.0, stats_reduce_dim=1, scaling_shape=(3, 1, 1, 1))
    assert op.sigma.shape == (3,)
    op(torch.randn(3, 10)).sum().backward()
    assert op.sigma.grad is not None and bool(torch.all(op.sigma.grad > 0))


@pytest.mark.parametrize(
    "make",
    [
        lambda: AbsPercentile(0.0),
        lambda: AbsPercentile(100.5),
        lambda: AbsPercentile(float("nan")),
        lambda: NegativePercentileOrZero(100.0),
        lambda: PercentileInterval(60.0, 40.0),
        lambda: MeanSigmaStd(float("inf")),
        lambda: AbsMax(stats_reduce_dim=1.0),
        lambda: MeanLearnedSigmaStd(2.0, stats_reduce_dim=1),
        lambda: OverOutputChannelView(permute_dims=(0, 0, 1)),
    ],
)
def test_stats_bad_configuration_is_a_config_error(make) -> None:
    with pytest.raises(ConfigError):
        make()


# ---------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------


def test_views() -> None:
    w = torch.arange(2 * 3 * 4.0).reshape(2, 3, 4)
    assert OverTensorView()(w).shape == (24,)
    assert torch.equal(OverOutputChannelView()(w), w.reshape(2, 12))
    # transposed-conv weight (in, out, k): channel axis 1 put first
    assert torch.equal(OverOutputChannelView(permute_dims=(1, 0, 2))(w), w.permute(1, 0, 2).reshape(3, 8))
    # activations (N, C, H, W) -> (C, N*H*W)
    x = torch.randn(5, 4, 2, 3)
    v = OverBatchOverOutputChannelView()(x)
    assert v.shape == (4, 30)
    assert torch.equal(v[2].sort().values, x[:, 2].reshape(-1).sort().values)
    assert torch.equal(OverBatchOverOutputChannelView(permute_dims=(1, 0, 2, 3))(x), v)
    # channels-last activations (N, H, W, C)
    y = x.permute(0, 2, 3, 1)
    assert torch.equal(OverBatchOverOutputChannelView(permute_dims=(3, 0, 1, 2))(y).max(1).values, v.max(1).values)
    # a permutation longer than the tensor's rank moves only the channel axis
    assert OverBatchOverOutputChannelView(permute_dims=(1, 0, 2, 3))(torch.zeros(5, 4)).shape == (4, 5)


# ---------------------------------------------------------------------------
# Restrictions
# ---------------------------------------------------------------------------

positive_floats = st.floats(2.0**-20, 2.0**20, allow_nan=False, allow_infinity=False, width=32)


@SETTINGS
@given(v=st.lists(positive_floats, min_size=1, max_size=8))
def test_power_of_two_gives_exact_powers_of_two(v: list[float]) -> None:
    r = PowerOfTwoRestrictValue()
    x = torch.tensor(v)
    out = r(r.restrict_init_tensor(x))
    exponent = torch.log2(out)
    assert torch.equal(exponent, torch.round(exponent))
    assert torch.equal(torch.frexp(out).mantissa, torch.full_like(out, 0.5))  # exactly one bit set
    ratio = out / x
    assert bool(torch.all(ratio <= math.sqrt(2) * 1.0001)) and bool(torch.all(ratio >= 1 / (math.sqrt(2) * 1.0001)))


def test_power_of_two_ceil_variant_never_shrinks() -> None:
    from brevitas.function.ste import ceil_ste

    r = PowerOfTwoRestrictValue(restrict_value_float_to_int_impl=ceil_ste)
    x = torch.tensor([0.3, 2.1, 3.0, 4.0])
    assert torch.equal(r(r.restrict_init_tensor(x)), torch.tensor([0.5, 4.0, 4.0, 4.0]))
    with pytest.raises(ConfigError):
        PowerOfTwoRestrictValue(restrict_value_float_to_int_impl=3)


@SETTINGS
@given(v=st.lists(positive_floats, min_size=1, max_size=8))
def test_log_fp_round_trip(v: list[float]) -> None:
    r = LogFloatRestrictValue()
    x = torch.tensor(v, dtype=torch.float64)
    torch.testing.assert_close(r(r.restrict_init_tensor(x)), x, rtol=1e-12, atol=0)


def test_int_and_fp_restrictions() -> None:
    x = torch.tensor([0.4, 1.6, 2.5], requires_grad=True)
    y = IntRestrictValue()(x)
    assert torch.equal(y.detach(), torch.tensor([0.0, 2.0, 2.0]))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones(3))  # straight-through
    assert FloatRestrictValue()(x) is x and FloatRestrictValue().restrict_init_tensor(x) is x


def test_power_of_two_gradient_is_straight_through_in_the_log_domain() -> None:
    p = torch.tensor([1.3], requires_grad=True)
    PowerOfTwoRestrictValue()(p).sum().backward()
    assert p.grad is not None
    assert float(p.grad) == pytest.approx(2.0 * math.log(2))  # d(2**round(p))/dp with round' = 1


# ---------------------------------------------------------------------------
# Parameter-statistics scaling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("restrict", RESTRICTIONS)
def test_stats_from_parameter_scaling_per_tensor(restrict) -> None:
    w = torch.nn.Parameter(torch.tensor([[0.1, -0.7], [0.3, 0.2]]))
    s = StatsFromParameterScaling(AbsMax(), OverTensorView(), [w], (), restrict(), scaling_min_val=1e-8)
    r = restrict()
    expected = r(r.restrict_init_tensor(torch.tensor(0.7)))
    out = s(torch.zeros(1))  # x is ignored: the statistic is of the tracked weights
    assert out.shape == ()
    torch.testing.assert_close(out.detach(), expected)


@pytest.mark.parametrize("restrict", [FloatRestrictValue, LogFloatRestrictValue, PowerOfTwoRestrictValue])
def test_stats_from_parameter_scaling_gradient_reaches_the_weight(restrict) -> None:
    w = torch.nn.Parameter(torch.tensor([0.1, -0.7, 0.3]))
    s = StatsFromParameterScaling(AbsMax(), OverTensorView(), [w], (), restrict())
    s(w).backward()
    assert w.grad is not None
    assert float(w.grad[1]) != 0.0 and float(w.grad[0]) == 0.0 and float(w.grad[2]) == 0.0


def test_stats_from_parameter_scaling_per_channel_and_power_of_two() -> None:
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3)
    s = StatsFromParameterScaling(
        AbsMax(1), OverOutputChannelView(), [w], (4, 1, 1, 1), PowerOfTwoRestrictValue(), scaling_min_val=1e-8
    )
    out = s(w)
    assert out.shape == (4, 1, 1, 1)
    exponent = torch.log2(out)
    assert torch.equal(exponent, torch.round(exponent))
    expected = torch.exp2(torch.round(torch.log2(w.abs().amax(dim=(1, 2, 3))))).reshape(4, 1, 1, 1)
    assert torch.equal(out, expected)


def test_shared_tracked_parameter_list_covers_every_tensor() -> None:
    a = torch.nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 0.5]]))
    b = torch.nn.Parameter(torch.tensor([[0.1, 0.1, 0.1], [-3.0, 0.0, 1.0]]))
    per_tensor = StatsFromParameterScaling(AbsMax(), OverTensorView(), [a, b], ())
    assert float(per_tensor(a)) == 3.0
    per_channel = StatsFromParameterScaling(AbsMax(1), OverOutputChannelView(), [a, b], (2, 1))
    assert torch.equal(per_channel(a).detach(), torch.tensor([[2.0], [3.0]]))
    per_channel(a).sum().backward()
    assert float(a.grad.abs().sum()) == 1.0 and float(b.grad.abs().sum()) == 1.0  # each channel's argmax


def test_add_tracked_parameter_then_reinit() -> None:
    a = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    b = torch.nn.Parameter(torch.tensor([5.0]))
    s = StatsFromParameterScaling(AbsMax(), OverTensorView(), [a], ())
    learned = ParameterFromStatsFromParameterScaling(AbsMax(), OverTensorView(), [a], ())
    assert float(s(a)) == 2.0 and float(learned(a)) == 2.0
    s.add_tracked_parameter(b)
    learned.add_tracked_parameter(b)
    learned.add_tracked_parameter(b)  # idempotent
    assert len(learned.tracked_parameter_list) == 2
    assert float(s(a)) == 5.0 and float(learned(a)) == 5.0


def test_add_tracked_parameter_with_other_channel_count_is_refused() -> None:
    a = torch.randn(2, 3)
    s = StatsFromParameterScaling(AbsMax(1), OverOutputChannelView(), [a], (2, 1))
    with pytest.raises(ConfigError, match="output channels"):
        s.add_tracked_parameter(torch.randn(4, 3))
    assert len(s.tracked_parameter_list) == 1


@pytest.mark.parametrize("restrict", [FloatRestrictValue, LogFloatRestrictValue, PowerOfTwoRestrictValue])
def test_parameter_from_stats_is_initialized_in_the_stored_domain_and_learns(restrict) -> None:
    w = torch.nn.Parameter(torch.tensor([[0.5, -4.0], [1.0, 2.0]]))
    s = ParameterFromStatsFromParameterScaling(AbsMax(1), OverOutputChannelView(), [w], (2, 1), restrict())
    r = restrict()
    torch.testing.assert_close(s.value.detach(), r.restrict_init_tensor(torch.tensor([[4.0], [2.0]])))
    out = s(w)
    torch.testing.assert_close(out.detach(), r(r.restrict_init_tensor(torch.tensor([[4.0], [2.0]]))))
    out.sum().backward()
    assert s.value.grad is not None and bool(torch.all(s.value.grad != 0))
    assert w.grad is None  # the learned scale no longer depends on the weight


def test_parameter_from_stats_reinit_after_weight_change() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    s = ParameterFromStatsFromParameterScaling(AbsMax(), OverTensorView(), [w], (), LogFloatRestrictValue())
    with torch.no_grad():
        w.mul_(4.0)
    assert float(s(w)) == pytest.approx(2.0)  # not re-derived by itself
    s.reinit()
    assert float(s(w)) == pytest.approx(8.0)


class _ProxyLike(torch.nn.Module):
    """What the weight proxy does: re-derive its statistics once its layer's weights are loaded."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.scaling = ParameterFromStatsFromParameterScaling(AbsMax(), OverTensorView(), [weight], ())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # the layer's own weight is loaded before its children; this block's value after
        self.scaling.reinit()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def test_parameter_from_stats_state_dict_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0]]))
    layer.proxy = _ProxyLike(layer.weight)
    scaling_of = layer.proxy.scaling
    # a quantized checkpoint: its learned value wins over the re-derived one
    with torch.no_grad():
        scaling_of.value.fill_(0.25)
    quant_sd = {k: v.clone() for k, v in layer.state_dict().items()}
    assert set(quant_sd) == {"weight", "proxy.scaling.value"}  # the tracked weight is not duplicated
    with torch.no_grad():
        scaling_of.value.fill_(9.0)
    layer.load_state_dict(quant_sd)
    assert float(scaling_of(None)) == 0.25
    # a float checkpoint (no scaling state): the re-derived value is kept
    result = layer.load_state_dict({"weight": torch.tensor([[3.0, -6.0]])}, strict=False)
    assert result.missing_keys == ["proxy.scaling.value"]
    assert float(scaling_of(None)) == 6.0
    monkeypatch.setenv("BREVITAS_IGNORE_MISSING_KEYS", "1")
    layer.load_state_dict({"weight": torch.tensor([[0.5, 0.0]])})  # strict, and nothing reported missing
    assert float(scaling_of(None)) == 0.5


def test_a_missing_value_alone_never_resets_a_learned_scale() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    s = ParameterFromStatsFromParameterScaling(AbsMax(), OverTensorView(), [w], ())
    with torch.no_grad():
        s.value.fill_(0.75)  # learned
    s.load_state_dict({}, strict=False)  # e.g. a partial load of other layers
    assert float(s(None)) == 0.75


def test_parameter_scaling() -> None:
    s = ParameterScaling(torch.tensor([0.5, 2.0]), (2, 1), LogFloatRestrictValue(), scaling_min_val=1e-8)
    torch.testing.assert_close(s.value.detach(), torch.tensor([[-1.0], [1.0]]))
    out = s(torch.randn(2, 3))
    torch.testing.assert_close(out.detach(), torch.tensor([[0.5], [2.0]]))
    out.sum().backward()
    assert s.value.grad is not None and bool(torch.all(s.value.grad > 0))
    # a float parameter pushed below 0 still yields a positive threshold with a gradient
    f = ParameterScaling(1.0)
    with torch.no_grad():
        f.value.fill_(-0.5)
    y = f(None)
    assert float(y) == 0.5
    y.backward()
    assert float(f.value.grad) == -1.0


@pytest.mark.parametrize("init", [0.0, -1.0, float("nan"), [1.0, -1.0], "a"])
def test_scaling_init_must_be_positive(init) -> None:
    with pytest.raises(ConfigError, match="scaling_init"):
        ParameterScaling(init, (2,))


def test_scaling_min_val_is_a_lower_bound() -> None:
    w = torch.zeros(3)
    s = StatsFromParameterScaling(AbsMax(), OverTensorView(), [w], (), LogFloatRestrictValue(), scaling_min_val=1e-3)
    assert float(s(w)) == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="scaling_min_val"):
        ParameterScaling(1.0, scaling_min_val=-1.0)


def test_per_channel_scaling_needs_a_shape() -> None:
    w = torch.randn(4, 3)
    with pytest.raises(ConfigError, match="scaling_shape"):
        StatsFromParameterScaling(AbsMax(1), OverOutputChannelView(), [w], None)
    with pytest.raises(ConfigError, match="scaling_shape"):
        StatsFromParameterScaling(AbsMax(1), OverOutputChannelView(), [w], (3, 1))  # wrong channel count
    with pytest.raises(ConfigError, match="per_channel_broadcastable_shape"):
        RuntimeStatsScaling(AbsMax(1), OverBatchOverOutputChannelView(), None)
    with pytest.raises(ConfigError, match="OverOutputChannelView"):
        StatsFromParameterScaling(AbsMax(1), OverTensorView(), [w], (4, 1))
    with pytest.raises(ConfigError, match="tracked_parameter_list"):
        StatsFromParameterScaling(AbsMax(), OverTensorView(), [], ())


def test_affine_stats_scaling() -> None:
    w = torch.nn.Parameter(torch.tensor([1.0, -3.0]))
    s = AffineStatsScaling(AbsMax(), OverTensorView(), [w], (), PowerOfTwoRestrictValue())
    with torch.no_grad():
        s.affine_rescaling.affine_weight.fill_(2.0)
    out = s(w)
    assert float(out) == 8.0  # 2 * 3 = 6, nearest power of two in ratio is 8
    out.backward()
    assert s.affine_rescaling.affine_weight.grad is not None and s.affine_rescaling.affine_bias.grad is not None
    assert set(dict(s.named_parameters())) == {"affine_rescaling.affine_weight", "affine_rescaling.affine_bias"}
    a = AffineRuntimeStatsScaling(AbsMax(), OverTensorView(), ())
    assert float(a(torch.tensor([-2.0, 1.0]))) == 2.0
    assert float(a.running_stats) == 2.0


def test_he_scaling() -> None:
    w1, w2 = torch.zeros(4, 8), torch.zeros(6, 2, 3, 3)
    s = HeScaling([w1])
    assert float(s(None)) == pytest.approx(math.sqrt(2 / 8))
    s.add_tracked_parameter(w2)
    assert float(s(None)) == pytest.approx((math.sqrt(2 / 8) + math.sqrt(2 / 18)) / 2)
    assert "value" not in s.state_dict()
    p2 = HeScaling([w1], PowerOfTwoRestrictValue())
    assert float(p2(None)) == 0.5


# ---------------------------------------------------------------------------
# Runtime statistics
# ---------------------------------------------------------------------------


def test_runtime_stats_training_uses_the_batch_and_eval_the_running_average() -> None:
    s = RuntimeStatsScaling(AbsMax(), OverTensorView(), (), scaling_stats_momentum=0.1)
    x1 = torch.tensor([1.0, -4.0], requires_grad=True)
    out = s(x1)
    assert float(out) == 4.0 and float(s.running_stats) == 4.0 and int(s.counter) == 1
    out.backward()
    assert torch.equal(x1.grad, torch.tensor([0.0, -1.0]))  # the statistic's gradient reaches x in training
    assert float(s(torch.tensor([2.0]))) == 2.0
    assert float(s.running_stats) == pytest.approx(0.9 * 4.0 + 0.1 * 2.0)
    s.eval()
    assert float(s(torch.tensor([100.0]))) == pytest.approx(3.8)
    assert int(s.counter) == 2  # eval does not update
    assert set(s.state_dict()) == {"running_stats", "counter"}


def test_runtime_stats_plain_average_and_per_channel_activations() -> None:
    s = RuntimeStatsScaling(AbsMax(1), OverBatchOverOutputChannelView(), (1, 3, 1, 1), scaling_stats_momentum=None)
    x = torch.randn(2, 3, 4, 4)
    y = torch.randn(2, 3, 4, 4)
    assert s(x).shape == (1, 3, 1, 1)
    s(y)
    expected = (x.abs().amax(dim=(0, 2, 3)) + y.abs().amax(dim=(0, 2, 3))) / 2
    torch.testing.assert_close(s.running_stats.reshape(3), expected)
    torch.testing.assert_close(s.eval()(x).reshape(3), expected)


@pytest.mark.parametrize("momentum", [0.0, 1.5, -0.1, "x"])
def test_runtime_stats_momentum_is_validated(momentum) -> None:
    with pytest.raises(ConfigError, match="momentum"):
        RuntimeStatsScaling(AbsMax(), OverTensorView(), (), scaling_stats_momentum=momentum)


def test_parameter_from_runtime_stats_transition() -> None:
    s = ParameterFromRuntimeStatsScaling(3, AbsMax(), OverTensorView(), (), LogFloatRestrictValue(), None, 1e-8)
    batches = [torch.tensor([1.0]), torch.tensor([-2.0]), torch.tensor([6.0])]
    outs = []
    for b in batches:
        x = b.clone().requires_grad_()
        out = s(x)
        out.backward()
        assert float(x.grad.abs()) > 0  # statistics phase: gradient to the input
        outs.append(float(out))
    assert outs == pytest.approx([1.0, 2.0, 6.0])
    assert int(s.counter) == 3
    assert float(s.value) == pytest.approx(math.log2(3.0))  # plain average (1 + 2 + 6) / 3, stored as log2
    # the learned value takes over and receives the gradient; the input no longer does
    s.value.grad = None
    x = torch.tensor([100.0], requires_grad=True)
    out = s(x)
    assert float(out) == pytest.approx(3.0)
    out.backward()
    assert x.grad is None or float(x.grad.abs().sum()) == 0.0
    assert s.value.grad is not None and float(s.value.grad) != 0.0
    assert int(s.counter) == 3  # stops counting
    # the counter and the accumulated statistic are state: a fresh module picks them up
    sd = s.state_dict()
    assert set(sd) == {"value", "buffer", "counter"} and sd["counter"].dtype == torch.int64
    fresh = ParameterFromRuntimeStatsScaling(3, AbsMax(), OverTensorView(), (), LogFloatRestrictValue(), None, 1e-8)
    fresh.load_state_dict(sd)
    assert fresh.collection_done and fresh._collection_done
    assert float(fresh(torch.tensor([50.0]))) == pytest.approx(3.0)
    assert float(fresh.eval()(torch.tensor([50.0]))) == pytest.approx(3.0)


def test_parameter_from_runtime_stats_eval_before_the_end_uses_the_buffer() -> None:
    s = ParameterFromRuntimeStatsScaling(5, AbsMax(), OverTensorView(), (), scaling_stats_momentum=0.5)
    s(torch.tensor([4.0]))
    s(torch.tensor([2.0]))
    s.eval()
    assert float(s(torch.tensor([100.0]))) == pytest.approx(3.0)  # EMA 0.5 * 4 + 0.5 * 2
    assert float(s.value) == 1.0  # untouched until collection ends
    s.train()
    assert not s._collection_done
    for v in (1.0, 1.0, 1.0):
        s(torch.tensor([v]))
    assert float(s.value) == pytest.approx(0.5 * (0.5 * (0.5 * 3.0 + 0.5) + 0.5) + 0.5)
    s.train()  # refreshes the Python-side flag outside forward
    assert s._collection_done
    assert float(s(torch.tensor([100.0]))) == pytest.approx(float(s.value))


def test_parameter_from_runtime_stats_power_of_two_per_channel() -> None:
    s = ParameterFromRuntimeStatsScaling(
        2, AbsMax(1), OverBatchOverOutputChannelView(), (1, 2, 1), PowerOfTwoRestrictValue(), scaling_min_val=1e-8
    )
    for _ in range(3):
        out = s(torch.randn(4, 2, 5) * 3)
        exponent = torch.log2(out.detach())
        assert out.shape == (1, 2, 1) and torch.equal(exponent, torch.round(exponent))


def test_collect_stats_steps_is_validated() -> None:
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="collect_stats_steps"):
            ParameterFromRuntimeStatsScaling(steps, AbsMax(), OverTensorView(), ())


def test_runtime_scaling_forward_has_no_graph_break() -> None:
    import torch._dynamo

    for module in (
        RuntimeStatsScaling(AbsMax(), OverTensorView(), ()),
        ParameterFromRuntimeStatsScaling(2, AbsMax(), OverTensorView(), (), PowerOfTwoRestrictValue()),
    ):
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(module)(torch.randn(8))
        assert explanation.graph_break_count == 0, explanation.break_reasons


# ---------------------------------------------------------------------------
# Distributed statistics
# ---------------------------------------------------------------------------


def test_reduce_stats_is_the_identity_without_a_process_group() -> None:
    x = torch.tensor([1.0, 2.0])
    assert reduce_stats(x) is x


def _ddp_worker(rank: int, world_size: int, init_file: str, results: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        s = ParameterFromRuntimeStatsScaling(2, AbsMax(), OverTensorView(), ())
        for step in range(2):
            s(torch.tensor([float(rank + 1) * (step + 1)]))  # different data on every rank
        torch.save({"value": s.value.detach(), "buffer": s.buffer}, os.path.join(results, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(sys.platform == "win32", reason="file:// init of gloo")
def test_statistics_are_reduced_across_ranks(tmp_path) -> None:
    import torch.distributed as dist
    import torch.multiprocessing as mp

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    with socket.socket():  # gloo needs a working loopback
        pass
    init_file = tempfile.mktemp(dir=tmp_path)
    mp.spawn(_ddp_worker, args=(2, init_file, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    # the max of the global batch: step 1: max(1, 2) = 2; step 2: max(2, 4) = 4; plain average 3, on both ranks
    assert float(r0["value"]) == pytest.approx(3.0) and float(r1["value"]) == pytest.approx(3.0)


# ---------------------------------------------------------------------------
# Registration
# ---------------------------------------------------------------------------


def test_register_adds_the_contract_names() -> None:
    reg = Registry()
    restrict_val.register(reg)
    stats.register(reg)
    scaling.register(reg)
    assert reg.names("restrict_value") == ["fp", "int", "log_fp", "power_of_two"]
    assert reg.names("stats_op") == sorted(
        ["max", "ave", "max_ave", "mean_sigma_std", "mean_learn_sigma_std", "percentile", "min_max"]
    )
    assert reg.names("scaling") == sorted(["const", "stats", "affine_stats", "parameter", "parameter_from_stats", "he"])
    assert reg.get("scaling", "const") is ConstScaling
    assert reg.get("restrict_value", "POWER_OF_TWO") is PowerOfTwoRestrictValue
    stats_entry = reg.get("scaling", "stats")
    assert isinstance(stats_entry, ByRole)
    assert stats_entry.resolve("weight") is StatsFromParameterScaling
    assert stats_entry.resolve("act") is RuntimeStatsScaling
    pfs = reg.get("scaling", "parameter_from_stats")
    assert pfs.resolve("bias") is ParameterFromStatsFromParameterScaling
    assert pfs.resolve("act") is ParameterFromRuntimeStatsScaling
    assert reg.get("scaling", "affine_stats").resolve("act") is AffineRuntimeStatsScaling


# ---------------------------------------------------------------------------
# Devices
# ---------------------------------------------------------------------------


def test_scaling_blocks_follow_their_module_to_the_device(device: torch.device) -> None:
    layer = torch.nn.Conv2d(2, 3, 3).to(device)
    blocks = [
        StatsFromParameterScaling(
            AbsMax(1), OverOutputChannelView(), [layer.weight], (3, 1, 1, 1), PowerOfTwoRestrictValue()
        ),
        ParameterFromStatsFromParameterScaling(
            MeanSigmaStd(2.0, 1), OverOutputChannelView(), [layer.weight], (3, 1, 1, 1), LogFloatRestrictValue()
        ),
        AffineStatsScaling(AbsAve(), OverTensorView(), [layer.weight], ()),
        ParameterScaling(0.5, (1, 3, 1, 1), LogFloatRestrictValue()),
        RuntimeStatsScaling(AbsPercentile(99.0, 1), OverBatchOverOutputChannelView(), (1, 3, 1, 1)),
        ParameterFromRuntimeStatsScaling(1, AbsMax(), OverTensorView(), (), PowerOfTwoRestrictValue()),
        HeScaling([layer.weight]),
    ]
    x = torch.randn(2, 3, 4, 4, device=device)
    for block in blocks:
        block.to(device)
        for mode in (True, True, False):
            out = block.train(mode)(x)
            assert out.device.type == device.type
            assert bool(torch.all(out > 0)) and bool(torch.all(torch.isfinite(out)))
