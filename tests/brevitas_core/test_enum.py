"""brevitas.inject.enum: str enums equal to their lower-case names, in any case."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brevitas.errors import ConfigError
from brevitas.inject.enum import (
    ATTRIBUTE_ENUMS,
    ENUMS_BY_KIND,
    BitWidthImplType,
    FloatToIntImplType,
    NameEnum,
    QuantType,
    RestrictValueType,
    ScalingImplType,
    StatsOp,
    ZeroPointImplType,
)
from brevitas.plugins.registry import KINDS, Registry

#: docs/engine.md, "Registry kinds and names"
EXPECTED = {
    QuantType: ("tensor_quant", ["int", "binary", "ternary", "fp"]),
    ScalingImplType: ("scaling", ["const", "stats", "affine_stats", "parameter", "parameter_from_stats", "he"]),
    StatsOp: (
        "stats_op",
        ["max", "ave", "max_ave", "mean_sigma_std", "mean_learn_sigma_std", "percentile", "min_max"],
    ),
    BitWidthImplType: ("bit_width", ["const", "parameter"]),
    RestrictValueType: ("restrict_value", ["fp", "log_fp", "int", "power_of_two"]),
    FloatToIntImplType: ("float_to_int", ["round", "ceil", "floor", "round_to_zero", "dpu"]),
    ZeroPointImplType: ("zero_point", ["zero", "stats", "parameter", "parameter_from_stats", "runtime_stats"]),
}

ALL_MEMBERS = [m for e in EXPECTED for m in e]


@pytest.mark.parametrize("enum_cls", list(EXPECTED), ids=lambda e: e.__name__)
def test_members_and_kind_follow_the_engine_contract(enum_cls: type[NameEnum]) -> None:
    kind, names = EXPECTED[enum_cls]
    assert enum_cls.kind == kind
    assert kind in KINDS
    assert [m.value for m in enum_cls] == names
    assert [m.name for m in enum_cls] == [n.upper() for n in names]
    assert ENUMS_BY_KIND[kind] is enum_cls
    assert all(m.kind == kind for m in enum_cls)


@pytest.mark.parametrize("member", ALL_MEMBERS, ids=repr)
def test_equal_to_its_name_in_any_case(member: NameEnum) -> None:
    name = member.name
    for spelling in (name.lower(), name.upper(), name.title(), name.capitalize()):
        assert member == spelling
        assert spelling == member
        assert not (member != spelling)
        assert isinstance(member, str)
    assert member != name.lower() + "_x"
    assert member != 3


@pytest.mark.parametrize("member", ALL_MEMBERS, ids=repr)
def test_constructible_from_any_case(member: NameEnum) -> None:
    enum_cls = type(member)
    assert enum_cls(member.name) is member
    assert enum_cls(member.name.lower()) is member
    assert enum_cls(member.name.title()) is member
    assert enum_cls(member) is member


@pytest.mark.parametrize("member", ALL_MEMBERS, ids=repr)
def test_hash_is_the_lower_case_string_hash(member: NameEnum) -> None:
    assert hash(member) == hash(member.name.lower())
    assert {member: 1}[member.name.lower()] == 1
    assert {member.name.lower(): 2}[member] == 2
    assert member.name.lower() in {member}


def test_str_and_format_give_the_lower_case_name() -> None:
    assert str(ScalingImplType.PARAMETER_FROM_STATS) == "parameter_from_stats"
    assert f"{StatsOp.MAX_AVE}" == "max_ave"
    assert f"{QuantType.INT:>5}" == "  int"
    assert "scaling " + ScalingImplType.HE == "scaling he"


def test_members_of_different_enums_with_the_same_name_are_the_same_name() -> None:
    assert ScalingImplType.STATS == ZeroPointImplType.STATS
    assert RestrictValueType.FP == QuantType.FP
    assert ScalingImplType.STATS != ScalingImplType.CONST


def test_unknown_name_lists_members_and_suggests() -> None:
    with pytest.raises(ConfigError) as info:
        ScalingImplType("stat")
    msg = str(info.value)
    assert "'stat' is not a ScalingImplType" in msg
    assert "const, stats, affine_stats, parameter, parameter_from_stats, he" in msg
    assert "Did you mean 'stats'?" in msg
    assert "kind 'scaling'" in msg
    with pytest.raises(ConfigError, match="Members: round, ceil"):
        FloatToIntImplType(3)
    with pytest.raises(ValueError):  # ConfigError is a ValueError, as Enum users expect
        StatsOp("nope")


def test_pickle_round_trip_is_identity() -> None:
    for member in ALL_MEMBERS:
        assert pickle.loads(pickle.dumps(member)) is member


def test_registry_accepts_members_as_names() -> None:
    registry = Registry()
    registry.add("scaling", ScalingImplType.STATS, dict, provider="test")
    assert registry.get("scaling", "STATS") is dict
    assert registry.get(ScalingImplType.kind, ScalingImplType.STATS) is dict
    assert registry.names("scaling") == ["stats"]


def test_attribute_enums_name_engine_attributes() -> None:
    assert ATTRIBUTE_ENUMS["scaling_impl_type"] is ScalingImplType
    assert ATTRIBUTE_ENUMS["quant_type"] is QuantType
    assert set(ATTRIBUTE_ENUMS.values()) == set(EXPECTED)


@settings(max_examples=60, deadline=None)
@given(member=st.sampled_from(ALL_MEMBERS), flips=st.lists(st.booleans(), min_size=30, max_size=30))
def test_any_mixed_case_spelling_is_equal_and_constructs(member: NameEnum, flips: list[bool]) -> None:
    spelling = "".join(c.upper() if flip else c for c, flip in zip(member.value, flips))
    assert member == spelling
    assert type(member)(spelling) is member
