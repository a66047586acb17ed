"""Zero-point blocks of the standard plugin: integer values, the affine grid, learning and statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from brevitas.core.zero_point import ZeroZeroPoint
from brevitas.errors import ConfigError
from brevitas.plugins.registry import ByRole, Registry
from brevitas_plugins.core import zero_point
from brevitas_plugins.core.scaling import StatsFromParameterScaling
from brevitas_plugins.core.stats import (
    AbsMinMax,
    NegativeMinOrZero,
    NegativePercentileOrZero,
    OverBatchOverOutputChannelView,
    OverOutputChannelView,
    OverTensorView,
)
from brevitas_plugins.core.zero_point import (
    ParameterFromRuntimeStatsZeroPoint,
    ParameterFromStatsZeroPoint,
    ParameterZeroPoint,
    RuntimeStatsZeroPoint,
    StatsFromParameterZeroPoint,
    zero_point_from_offset,
)

SETTINGS = settings(max_examples=50, deadline=None)

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True:UserWarning")

matrices = arrays(
    np.float32,
    st.tuples(st.integers(1, 4), st.integers(2, 30)),
    elements=st.floats(-50, 50, width=32, allow_nan=False),
)


def _fake_quant(x: torch.Tensor, scale: torch.Tensor, zp: torch.Tensor, bit_width: int) -> torch.Tensor:
    """The unsigned affine quantizer of docs/engine.md's IntQuant, written out."""
    q = torch.clamp(torch.round(x / scale + zp), 0, 2**bit_width - 1)
    return (q - zp) * scale


# ---------------------------------------------------------------------------
# Integer zero points and the affine grid
# ---------------------------------------------------------------------------


@SETTINGS
@given(
    offset=st.lists(st.floats(0, 1e3, allow_nan=False, width=32), min_size=1, max_size=6),
    scale=st.floats(2.0**-10, 10, width=32),
    bit_width=st.integers(2, 16),
    signed=st.booleans(),
    narrow=st.booleans(),
)
def test_zero_point_from_offset_is_an_integer_in_range(offset, scale, bit_width, signed, narrow) -> None:
    b = torch.tensor(float(bit_width))
    zp = zero_point_from_offset(torch.tensor(offset), torch.tensor(scale), b, signed, narrow)
    assert torch.equal(zp, torch.round(zp))
    lo = -(2 ** (bit_width - 1)) + int(narrow) if signed else 0
    hi = 2 ** (bit_width - 1) - 1 if signed else 2**bit_width - 1 - int(narrow)
    assert bool(torch.all(zp >= lo)) and bool(torch.all(zp <= hi))
    unclamped = np.round(np.float32(offset) / np.float32(scale)) + lo
    np.testing.assert_array_equal(zp.numpy(), np.clip(unclamped, lo, hi))


@SETTINGS
@given(a=matrices, bit_width=st.integers(2, 8))
def test_stats_zero_point_and_range_scaling_give_a_grid_covering_the_range(a: np.ndarray, bit_width: int) -> None:
    x = torch.from_numpy(a)
    b = torch.tensor(float(bit_width))
    for per_channel in (False, True):
        if per_channel:
            shape, view, dim = (a.shape[0], 1), OverOutputChannelView(), 1
        else:
            shape, view, dim = (), OverTensorView(), None
        width = StatsFromParameterScaling(AbsMinMax(dim), view, [x], shape, scaling_min_val=1e-8)(x)
        scale = width / (2**bit_width - 1)
        zp = StatsFromParameterZeroPoint(
            tracked_parameter_list=[x],
            zero_point_shape=shape,
            scaling_stats_input_view_shape_impl=view,
            stats_reduce_dim=dim,
        )(x, scale, b)
        assert zp.shape == scale.shape
        assert torch.equal(zp, torch.round(zp))
        assert bool(torch.all(zp >= 0)) and bool(torch.all(zp <= 2**bit_width - 1))
        y = _fake_quant(x, scale, zp, bit_width)
        # every value within half a step; zero exactly representable
        assert bool(torch.all((y - x).abs() <= scale / 2 * (1 + 1e-4) + 1e-6))
        assert bool(torch.all(_fake_quant(torch.zeros_like(x), scale, zp, bit_width) == 0))


def test_shifted_weights_use_the_full_unsigned_range() -> None:
    w = torch.tensor([-1.0, -0.25, 0.0, 0.5, 3.0])
    scale = torch.tensor(4.0 / 15)
    zp = StatsFromParameterZeroPoint(tracked_parameter_list=[w])(w, scale, torch.tensor(4.0))
    assert float(zp) == 4.0  # round(1 / (4 / 15)) = round(3.75)
    q = torch.clamp(torch.round(w / scale + zp), 0, 15)
    assert float(q.min()) == 0.0 and float(q.max()) == 15.0


def test_all_positive_tensor_has_zero_point_zero() -> None:
    w = torch.tensor([0.5, 2.0])
    assert float(StatsFromParameterZeroPoint(tracked_parameter_list=[w])(w, torch.tensor(0.1), torch.tensor(8.0))) == 0


def test_signed_zero_point_is_shifted_by_min_int() -> None:
    w = torch.tensor([-1.0, 1.0])
    zp = StatsFromParameterZeroPoint(tracked_parameter_list=[w], signed=True)
    assert float(zp(w, torch.tensor(0.1), torch.tensor(8.0))) == 10.0 - 128.0


def test_stats_zero_point_shared_parameters_and_custom_statistic() -> None:
    a, b = torch.tensor([-1.0, 0.0]), torch.tensor([-3.0, 2.0])
    zp = StatsFromParameterZeroPoint(tracked_parameter_list=[a, b])
    assert float(zp(a, torch.tensor(1.0), torch.tensor(8.0))) == 3.0
    zp.add_tracked_parameter(torch.tensor([-7.0]))
    assert float(zp(a, torch.tensor(1.0), torch.tensor(8.0))) == 7.0
    x = torch.cat([torch.full((99,), -1.0), torch.tensor([-100.0])])
    robust = StatsFromParameterZeroPoint(NegativePercentileOrZero(1.0), tracked_parameter_list=[x])
    assert float(robust(x, torch.tensor(1.0), torch.tensor(8.0))) == 100.0  # 1st percentile: the outlier
    robust = StatsFromParameterZeroPoint(NegativePercentileOrZero(1.5), tracked_parameter_list=[x])
    assert float(robust(x, torch.tensor(1.0), torch.tensor(8.0))) == 1.0


def test_zero_point_gradient_is_straight_through() -> None:
    w = torch.nn.Parameter(torch.tensor([-1.3, 2.0]))
    scale = torch.tensor(0.5, requires_grad=True)
    zp = StatsFromParameterZeroPoint(tracked_parameter_list=[w])(w, scale, torch.tensor(8.0))
    assert float(zp) == 3.0
    zp.backward()
    assert float(w.grad[0]) == pytest.approx(-2.0)  # d(round(-w0 / s)) / dw0 = -1 / s
    assert float(scale.grad) == pytest.approx(-1.3 / 0.25)


# ---------------------------------------------------------------------------
# Learned zero points
# ---------------------------------------------------------------------------


def test_parameter_zero_point_learns_the_offset() -> None:
    zp = ParameterZeroPoint(zero_point_init=torch.tensor([0.26, 1.0]), zero_point_shape=(2, 1))
    scale = torch.tensor([[0.1], [0.5]])
    out = zp(torch.zeros(2, 3), scale, torch.tensor(4.0))
    assert torch.equal(out.detach(), torch.tensor([[3.0], [2.0]]))
    out.sum().backward()
    torch.testing.assert_close(zp.value.grad, torch.tensor([[10.0], [2.0]]))
    # the integer follows the scale: same offset, twice the scale
    assert torch.equal(zp(torch.zeros(1), scale * 2, torch.tensor(4.0)).detach(), torch.tensor([[1.0], [1.0]]))
    # clamped to the unsigned range of the bit-width
    assert float(ParameterZeroPoint(100.0)(torch.zeros(1), torch.tensor(1.0), torch.tensor(3.0))) == 7.0


@pytest.mark.parametrize("init", [-0.5, float("nan"), [1.0, 2.0, 3.0], "zero"])
def test_parameter_zero_point_init_is_validated(init) -> None:
    with pytest.raises(ConfigError, match="zero_point_init"):
        ParameterZeroPoint(init, zero_point_shape=(2,))


def test_parameter_from_stats_zero_point_init_reinit_and_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = torch.nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[-0.5, 0.0, 1.0], [0.25, 0.5, 1.0]]))
    layer.zp = ParameterFromStatsZeroPoint(
        tracked_parameter_list=[layer.weight],
        zero_point_shape=(2, 1),
        scaling_stats_input_view_shape_impl=OverOutputChannelView(),
        stats_reduce_dim=1,
    )
    torch.testing.assert_close(layer.zp.value.detach(), torch.tensor([[0.5], [0.0]]))
    s, b = torch.tensor(0.1), torch.tensor(8.0)
    out = layer.zp(layer.weight, s, b)
    assert torch.equal(out.detach(), torch.tensor([[5.0], [0.0]]))
    out.sum().backward()
    assert layer.zp.value.grad is not None and layer.weight.grad is None
    # reinit after a weight change
    with torch.no_grad():
        layer.weight[1, 0] = -0.3
    layer.zp.reinit()
    assert torch.equal(layer.zp(layer.weight, s, b).detach(), torch.tensor([[5.0], [3.0]]))
    # a quantized checkpoint keeps its learned offset; a float one re-derives it
    with torch.no_grad():
        layer.zp.value.fill_(0.2)
    sd = {k: v.clone() for k, v in layer.state_dict().items()}
    assert set(sd) == {"weight", "zp.value"}
    layer.load_state_dict(sd)
    assert torch.equal(layer.zp(None, s, b).detach(), torch.tensor([[2.0], [2.0]]))
    missing = layer.load_state_dict({"weight": torch.tensor([[-1.0, 0.0, 0.0], [0.0, 0.0, -0.4]])}, strict=False)
    assert missing.missing_keys == ["zp.value"]
    assert torch.equal(layer.zp(None, s, b).detach(), torch.tensor([[2.0], [2.0]]))  # kept until reinit
    layer.zp.reinit()  # what the proxy does once a float checkpoint has loaded the weight
    assert torch.equal(layer.zp(None, s, b).detach(), torch.tensor([[10.0], [4.0]]))
    monkeypatch.setenv("BREVITAS_IGNORE_MISSING_KEYS", "1")
    layer.load_state_dict({"weight": torch.zeros(2, 3)})  # strict, and nothing reported missing
    layer.zp.reinit()
    assert torch.equal(layer.zp(None, s, b).detach(), torch.zeros(2, 1))


# ---------------------------------------------------------------------------
# Runtime statistics
# ---------------------------------------------------------------------------


def test_runtime_stats_zero_point_training_and_eval() -> None:
    zp = RuntimeStatsZeroPoint(scaling_stats_momentum=0.5)
    s, b = torch.tensor(0.5), torch.tensor(8.0)
    assert float(zp.eval()(torch.full((2,), -9.0), s, b)) == 0.0  # starts at offset 0, eval does not update
    zp.train()
    assert float(zp(torch.tensor([-2.0, 1.0]), s, b)) == 4.0
    assert float(zp(torch.tensor([-4.0, 1.0]), s, b)) == 8.0
    assert float(zp.running_stats) == pytest.approx(3.0)
    assert int(zp.counter) == 2
    zp.eval()
    assert float(zp(torch.tensor([-100.0]), s, b)) == 6.0
    assert set(zp.state_dict()) == {"running_stats", "counter"}


def test_runtime_stats_zero_point_per_channel_activations() -> None:
    zp = RuntimeStatsZeroPoint(
        scaling_shape=(1, 3, 1, 1),
        scaling_stats_input_view_shape_impl=OverBatchOverOutputChannelView(),
        stats_reduce_dim=1,
    )
    x = torch.randn(4, 3, 5, 5)
    out = zp(x, torch.tensor(0.01), torch.tensor(8.0))
    assert out.shape == (1, 3, 1, 1)
    expected = torch.clamp(torch.round(torch.clamp_min(-x.amin(dim=(0, 2, 3)), 0) / 0.01), 0, 255)
    assert torch.equal(out.reshape(3), expected)


def test_parameter_from_runtime_stats_zero_point_transition() -> None:
    zp = ParameterFromRuntimeStatsZeroPoint(collect_stats_steps=2)
    s, b = torch.tensor(0.25), torch.tensor(8.0)
    assert float(zp(torch.tensor([-1.0, 3.0]), s, b)) == 4.0
    zp.eval()
    assert float(zp(torch.tensor([-9.0]), s, b)) == 4.0  # eval before the end: the accumulated statistic
    zp.train()
    assert float(zp(torch.tensor([-2.0, 3.0]), s, b)) == 8.0
    assert int(zp.counter) == 2 and float(zp.value) == pytest.approx(1.5)  # plain average, frozen into value
    out = zp(torch.tensor([-50.0]), s, b)
    assert float(out) == 6.0
    out.backward()
    assert zp.value.grad is not None and float(zp.value.grad) == pytest.approx(4.0)
    sd = zp.state_dict()
    assert set(sd) == {"value", "buffer", "counter"}
    fresh = ParameterFromRuntimeStatsZeroPoint(collect_stats_steps=2)
    fresh.load_state_dict(sd)
    assert float(fresh.eval()(torch.tensor([-50.0]), s, b)) == 6.0
    with pytest.raises(ConfigError, match="collect_stats_steps"):
        ParameterFromRuntimeStatsZeroPoint(collect_stats_steps=0)


def test_runtime_zero_point_forward_has_no_graph_break() -> None:
    import torch._dynamo

    for module in (RuntimeStatsZeroPoint(), ParameterFromRuntimeStatsZeroPoint(3)):
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(module)(torch.randn(8), torch.tensor(0.1), torch.tensor(8.0))
        assert explanation.graph_break_count == 0, explanation.break_reasons


# ---------------------------------------------------------------------------
# Configuration and registration
# ---------------------------------------------------------------------------


def test_per_channel_zero_point_needs_a_shape() -> None:
    w = torch.randn(4, 3)
    with pytest.raises(ConfigError, match="zero_point_shape"):
        StatsFromParameterZeroPoint(
            NegativeMinOrZero(1), OverOutputChannelView(), tracked_parameter_list=[w], zero_point_shape=None
        )
    with pytest.raises(ConfigError, match="zero_point_shape"):
        StatsFromParameterZeroPoint(
            NegativeMinOrZero(1), OverOutputChannelView(), tracked_parameter_list=[w], zero_point_shape=(2, 1)
        )
    with pytest.raises(ConfigError, match="tracked_parameter_list"):
        StatsFromParameterZeroPoint()


def test_register_adds_the_contract_names() -> None:
    reg = Registry()
    zero_point.register(reg)
    assert reg.names("zero_point") == sorted(["zero", "stats", "parameter", "parameter_from_stats", "runtime_stats"])
    assert reg.get("zero_point", "zero") is ZeroZeroPoint
    assert reg.get("zero_point", "PARAMETER") is ParameterZeroPoint
    assert reg.get("zero_point", "runtime_stats") is RuntimeStatsZeroPoint
    entry = reg.get("zero_point", "stats")
    assert isinstance(entry, ByRole)
    assert entry.resolve("weight") is StatsFromParameterZeroPoint
    assert entry.resolve("act") is RuntimeStatsZeroPoint
    pfs = reg.get("zero_point", "parameter_from_stats")
    assert pfs.resolve("weight") is ParameterFromStatsZeroPoint
    assert pfs.resolve("act") is ParameterFromRuntimeStatsZeroPoint


def test_zero_point_blocks_follow_their_module_to_the_device(device: torch.device) -> None:
    weight = torch.randn(3, 4, device=device)
    blocks = [
        StatsFromParameterZeroPoint(tracked_parameter_list=[weight]),
        ParameterFromStatsZeroPoint(
            tracked_parameter_list=[weight],
            zero_point_shape=(3, 1),
            scaling_stats_input_view_shape_impl=OverOutputChannelView(),
            stats_reduce_dim=1,
        ),
        ParameterZeroPoint(0.5),
        RuntimeStatsZeroPoint(),
        ParameterFromRuntimeStatsZeroPoint(1),
    ]
    s, b = torch.tensor(0.05, device=device), torch.tensor(8.0, device=device)
    for block in blocks:
        block.to(device)
        for mode in (True, True, False):
            out = block.train(mode)(weight, s, b)
            assert out.device.type == device.type
            assert torch.equal(out, torch.round(out)) and bool(torch.all((out >= 0) & (out <= 255)))
