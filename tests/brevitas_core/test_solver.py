"""Unit tests of the solver (``brevitas.quant.solver``): names to registered components.

The components here are toys registered by an in-code plugin under names of
their own (``tests_*``), so these tests exercise the solver's wiring, not the
standard plugin's algorithms (``tests/integration/test_quantizers.py`` does).
"""

from __future__ import annotations

import types

import pytest
import torch
from torch import nn

from brevitas.errors import ConfigError, UnknownNameError
from brevitas.inject import ExtendedInjector, declared_attributes, is_injector
from brevitas.inject.enum import QuantType, RestrictValueType, ScalingImplType, StatsOp
from brevitas.plugins import hookimpl, register, unregister
from brevitas.plugins.registry import ByRole
from brevitas.quant.solver import (
    ActQuantSolver,
    BiasQuantSolver,
    TruncQuantSolver,
    WeightQuantSolver,
    output_channel_axis,
    resolve,
)

PLUGIN = "tests_solver_plugin"


# ---------------------------------------------------------------------------
# Toy components, registered by an in-code plugin
# ---------------------------------------------------------------------------


class ToyScaling(nn.Module):
    """A learned threshold of ``scaling_shape`` starting at ``scaling_init`` (stands in for a plugin's LSQ)."""

    def __init__(self, scaling_init: float, scaling_shape: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.full(tuple(scaling_shape), float(scaling_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


class OtherScaling(ToyScaling):
    """A second toy, to tell which one the solver picked."""


class ToyQuant(nn.Module):
    """``y = round(x / s) * s`` with ``s = scaling_impl(x)``; bit-width 8."""

    def __init__(self, scaling_impl: nn.Module) -> None:
        super().__init__()
        self.scaling_impl = scaling_impl

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        s = self.scaling_impl(x)
        return torch.round(x / s) * s, s, s.new_zeros(()), s.new_full((), 8.0)


class ToyActQuant(ToyQuant):
    """What ``tests_byrole`` solves to for activations."""


class ToyPoTRestrict(nn.Module):
    """Declares itself a power-of-two restriction, as the standard one does."""

    restrict_value_type = "power_of_two"


class ToyZeroPoint(nn.Module):
    """A zero-point that is not always 0."""


@pytest.fixture(scope="module", autouse=True)
def toy_plugin():
    plugin = types.ModuleType(PLUGIN)

    @hookimpl
    def brevitas_register(registry):  # type: ignore[no-untyped-def]
        registry.add("scaling", "tests_lsq", ToyScaling)
        registry.add("tensor_quant", "tests_toy", ToyQuant)
        registry.add("tensor_quant", "tests_byrole", ByRole(default=ToyQuant, act=ToyActQuant))
        registry.add("restrict_value", "tests_pot", ToyPoTRestrict)
        registry.add("zero_point", "tests_zp", ToyZeroPoint)

    plugin.brevitas_register = brevitas_register
    register(plugin)
    yield
    unregister(PLUGIN)


class ToyWeightQuant(WeightQuantSolver):
    quant_type = "tests_toy"
    scaling_impl_type = "tests_lsq"
    scaling_init = 0.5


# ---------------------------------------------------------------------------
# resolve()
# ---------------------------------------------------------------------------


def test_resolve_returns_none_for_none_and_for_no_quantization() -> None:
    assert resolve("scaling", None) is None
    assert resolve("tensor_quant", QuantType.FP) is None
    assert resolve("tensor_quant", "FP") is None


def test_resolve_returns_a_component_named_directly() -> None:
    module = ToyZeroPoint()
    assert resolve("scaling", OtherScaling) is OtherScaling
    assert resolve("zero_point", module) is module


@pytest.mark.parametrize("spelling", ["tests_lsq", "TESTS_LSQ", "Tests_Lsq", " tests_lsq "])
def test_resolve_is_case_insensitive(spelling: str) -> None:
    assert resolve("scaling", spelling) is ToyScaling


def test_resolve_picks_the_component_of_the_role() -> None:
    assert resolve("tensor_quant", "tests_byrole", "weight") is ToyQuant
    assert resolve("tensor_quant", "tests_byrole", "act") is ToyActQuant


def test_resolve_unknown_name_lists_registered_names_and_closest() -> None:
    with pytest.raises(UnknownNameError) as info:
        resolve("scaling", "tests_lsk", attribute="scaling_impl_type")
    message = str(info.value)
    assert "scaling_impl_type='tests_lsk'" in message
    assert "tests_lsq" in message
    assert "did you mean 'tests_lsq'" in message.lower()


def test_resolve_refuses_an_enum_of_another_kind() -> None:
    with pytest.raises(ConfigError, match=r"StatsOp\.MAX is a StatsOp .*'stats_op'.* scaling name is expected"):
        resolve("scaling", StatsOp.MAX, attribute="scaling_impl_type")


def test_resolve_refuses_something_that_is_neither_a_name_nor_a_component() -> None:
    with pytest.raises(ConfigError, match="expected a scaling name"):
        resolve("scaling", 3.5)


# ---------------------------------------------------------------------------
# Solving through the registry
# ---------------------------------------------------------------------------


def test_third_party_names_build_the_whole_quantizer() -> None:
    tq = ToyWeightQuant.tensor_quant
    assert type(tq) is ToyQuant
    assert type(tq.scaling_impl) is ToyScaling
    y, scale, _, _ = tq(torch.tensor([0.3, 1.2]))
    assert torch.equal(y, torch.tensor([0.5, 1.0]))
    assert float(scale.detach()) == 0.5


@pytest.mark.parametrize("spelling", ["tests_lsq", "TESTS_LSQ"])
def test_string_overrides_equal_the_registered_name(spelling: str) -> None:
    q = ToyWeightQuant.let(scaling_impl_type=spelling)
    assert type(q.scaling_impl) is ToyScaling


def test_enum_member_and_its_string_solve_alike() -> None:
    class Q(ToyWeightQuant):
        quant_type = QuantType.FP

    assert Q.tensor_quant is None
    assert Q.let(quant_type="fp").tensor_quant is None
    assert Q.let(quant_type="FP").tensor_quant is None


def test_a_component_class_named_directly_wins_over_the_enum() -> None:
    class Direct(ToyWeightQuant):
        scaling_impl = OtherScaling

    assert type(Direct.tensor_quant.scaling_impl) is OtherScaling
    assert type(ToyWeightQuant.let(scaling_impl=OtherScaling).tensor_quant.scaling_impl) is OtherScaling
    assert type(ToyWeightQuant.let(tensor_quant=ToyActQuant).tensor_quant) is ToyActQuant


def test_a_class_given_where_a_name_is_expected_is_used() -> None:
    assert type(ToyWeightQuant.let(scaling_impl_type=OtherScaling).scaling_impl) is OtherScaling


def test_each_solver_sets_its_role() -> None:
    assert WeightQuantSolver.quant_role == "weight"
    assert BiasQuantSolver.quant_role == "bias"
    assert ActQuantSolver.quant_role == "act"
    assert TruncQuantSolver.quant_role == "trunc"


def test_role_dependent_names_follow_the_solver() -> None:
    class W(ToyWeightQuant):
        quant_type = "tests_byrole"

    class A(ActQuantSolver):
        quant_type = "tests_byrole"
        scaling_impl_type = "tests_lsq"
        scaling_init = 1.0

    assert type(W.tensor_quant) is ToyQuant
    assert type(A.tensor_quant) is ToyActQuant


def test_unknown_name_in_a_quantizer_names_the_quantizer_and_attribute() -> None:
    with pytest.raises(UnknownNameError) as info:
        _ = ToyWeightQuant.let(scaling_impl_type="tests_lsk").tensor_quant
    message = str(info.value)
    assert "ToyWeightQuant" in message
    assert "scaling_impl_type='tests_lsk'" in message
    assert "tests_lsq" in message


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


def test_output_channel_axis() -> None:
    assert output_channel_axis(nn.Conv2d(3, 8, 3)) == 0
    assert output_channel_axis(nn.Linear(3, 8)) == 0
    assert output_channel_axis(nn.ConvTranspose2d(3, 8, 3)) == 1
    assert output_channel_axis(nn.ConvTranspose1d(3, 8, 3)) == 1
    assert output_channel_axis(nn.ConvTranspose2d(3, 8, 3), role="bias") == 0
    custom = nn.Linear(3, 8)
    custom.output_channel_dim = 1  # type: ignore[assignment]
    assert output_channel_axis(custom) == 1


def test_per_tensor_scaling_shape_is_scalar() -> None:
    conv = nn.Conv2d(3, 8, 3)
    assert ToyWeightQuant.let(module=conv, tracked_parameter_list=[conv.weight]).scaling_shape == ()


@pytest.mark.parametrize(
    ("layer", "expected", "permute"),
    [
        (nn.Conv2d(3, 8, 3), (8, 1, 1, 1), None),
        (nn.Linear(5, 4), (4, 1), None),
        (nn.ConvTranspose2d(3, 8, 3), (1, 8, 1, 1), (1, 0, 2, 3)),
        # grouped: the weight is (C_in, C_out / groups, k); the scale broadcasts against the weight
        (nn.ConvTranspose1d(3, 6, 3, groups=3), (1, 2, 1), (1, 0, 2)),
    ],
)
def test_per_channel_weight_shape_follows_the_output_channel_axis(
    layer: nn.Module, expected: tuple[int, ...], permute: tuple[int, ...] | None
) -> None:
    q = ToyWeightQuant.let(scaling_per_output_channel=True, module=layer, tracked_parameter_list=[layer.weight])
    assert q.scaling_shape == expected
    assert q.permute_dims == permute
    assert q.stats_reduce_dim == 1
    assert tuple(q.tensor_quant.scaling_impl.value.shape) == expected


def test_per_channel_weight_shape_from_module_alone() -> None:
    conv = nn.Conv2d(3, 8, 3)
    assert ToyWeightQuant.let(scaling_per_output_channel=True, module=conv).scaling_shape == (8, 1, 1, 1)


def test_per_channel_activation_shape_from_broadcastable_shape() -> None:
    q = ActQuantSolver.let(scaling_per_output_channel=True, per_channel_broadcastable_shape=(1, 4, 1, 1))
    assert q.scaling_shape == (1, 4, 1, 1)
    assert q.stats_reduce_dim == 1


@pytest.mark.parametrize("solver", [WeightQuantSolver, BiasQuantSolver, ActQuantSolver])
def test_per_channel_without_channel_count_is_a_config_error(solver: type) -> None:
    class NoChannels(solver):  # type: ignore[valid-type, misc]
        scaling_per_output_channel = True

    with pytest.raises(ConfigError) as info:
        _ = NoChannels.scaling_shape
    message = str(info.value)
    assert "NoChannels" in message
    assert "per_channel_broadcastable_shape" in message
    assert "scaling_per_output_channel=False" in message


def test_scaling_per_output_channel_must_be_a_bool() -> None:
    with pytest.raises(ConfigError, match="scaling_per_output_channel must be True or False"):
        _ = ToyWeightQuant.let(scaling_per_output_channel="yes").scaling_shape


def test_max_ave_statistic_reduces_per_channel_even_per_tensor() -> None:
    q = ToyWeightQuant.let(scaling_stats_op=StatsOp.MAX_AVE)
    assert q.stats_reduce_dim == 1
    assert ToyWeightQuant.let(scaling_stats_op=StatsOp.MAX).stats_reduce_dim is None


# ---------------------------------------------------------------------------
# Initial threshold
# ---------------------------------------------------------------------------


def test_scaling_init_from_min_and_max_val() -> None:
    q = ActQuantSolver.let(scaling_impl_type=ScalingImplType.PARAMETER, min_val=-3.0, max_val=2.0)
    assert q.scaling_init == 3.0
    assert ActQuantSolver.let(max_val=0.5).scaling_init == 0.5


def test_scaling_init_from_the_older_scaling_const() -> None:
    assert WeightQuantSolver.let(scaling_const=0.25).scaling_init == 0.25


def test_scaling_init_from_the_tracked_weight_per_channel() -> None:
    w = torch.tensor([[1.0, -3.0], [0.5, 0.25]])
    q = WeightQuantSolver.let(scaling_per_output_channel=True, tracked_parameter_list=[w])
    assert torch.equal(q.scaling_init, torch.tensor([[3.0], [0.5]]))
    assert float(WeightQuantSolver.let(tracked_parameter_list=[w]).scaling_init) == 3.0


def test_scaling_init_without_any_source_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match=r"ScalingImplType\.CONST needs an initial threshold: set scaling_init"):
        _ = ActQuantSolver.let(scaling_impl_type=ScalingImplType.CONST).scaling_init


def test_scaling_init_refuses_an_empty_range() -> None:
    with pytest.raises(ConfigError, match="empty range"):
        _ = ActQuantSolver.let(min_val=0.0, max_val=0.0).scaling_init


# ---------------------------------------------------------------------------
# Incompatible choices, bias and truncation specifics
# ---------------------------------------------------------------------------


def test_power_of_two_scale_with_a_zero_point_is_refused() -> None:
    q = ToyWeightQuant.let(restrict_scaling_type="tests_pot", zero_point_impl_type="tests_zp")
    with pytest.raises(ConfigError) as info:
        _ = q.int_scaling_impl
    message = str(info.value)
    assert "POWER_OF_TWO" in message
    assert "ToyZeroPoint" in message
    assert "no zero-point" in message


def test_bias_on_the_accumulator_grid_must_be_integer() -> None:
    q = BiasQuantSolver.let(requires_input_scale=True, quant_type=QuantType.BINARY)
    with pytest.raises(ConfigError, match="needs quant_type=INT"):
        _ = q.tensor_quant


def test_bias_with_no_quantization_builds_nothing() -> None:
    assert BiasQuantSolver.let(requires_input_scale=True, quant_type="fp").tensor_quant is None


def test_bias_with_accumulator_bit_width_has_no_bit_width_block() -> None:
    q = BiasQuantSolver.let(requires_input_bit_width=True, bit_width_impl_type="no_such_name")
    assert q.bit_width_impl is None


def test_truncation_rounds_down_by_default() -> None:
    assert str(TruncQuantSolver.float_to_int_impl_type) == "floor"


def test_restriction_defaults_to_plain_float() -> None:
    assert WeightQuantSolver.restrict_scaling_type == RestrictValueType.FP


# ---------------------------------------------------------------------------
# Prebuilt quantizers: the solver comes last, so every mixin attribute wins
# ---------------------------------------------------------------------------


def _prebuilt() -> list[type]:
    import brevitas.quant

    return [getattr(brevitas.quant, name) for name in brevitas.quant.__all__]


def _is_solver(klass: type) -> bool:
    return klass.__module__.startswith("brevitas.quant.solver")


def _declares_itself(klass: type, name: str) -> bool:
    if not is_injector(klass):
        return False
    attrs = declared_attributes(klass)
    return name in attrs and attrs[name][1] is klass


@pytest.mark.parametrize("quant", _prebuilt(), ids=lambda q: q.__name__)
def test_prebuilt_quantizers_put_the_solver_last(quant: type) -> None:
    mixins = [k for k in quant.__mro__[1:] if is_injector(k) and k is not ExtendedInjector]
    first_solver = next(i for i, k in enumerate(mixins) if _is_solver(k))
    assert all(_is_solver(k) for k in mixins[first_solver:]), [k.__name__ for k in mixins]
    for name, (_, owner) in declared_attributes(quant).items():
        declarers = [k for k in quant.__mro__ if _declares_itself(k, name)]
        if any(not _is_solver(k) for k in declarers):
            assert not _is_solver(owner), f"{quant.__name__}.{name} is taken from the solver {owner.__name__}"


def test_brevitas_import_does_not_import_the_quantizers() -> None:
    import subprocess
    import sys

    code = "import sys, brevitas; print('brevitas.quant' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
