"""brevitas.describe (brevitas.quantizer_info): every option of a quantizer, who set it, what it solves to."""

from __future__ import annotations

import json

import pytest

from brevitas.errors import ConfigError, UnknownNameError
from brevitas.inject import ExtendedInjector, this, value
from brevitas.inject.enum import QuantType, ScalingImplType, StatsOp
from brevitas.plugins.registry import ByRole, Registry
from brevitas.quantizer_info import DescriptionRow, QuantizerDescription, describe


class StatsScaling:
    def __init__(self, bit_width) -> None:
        raise AssertionError("describe must not build anything")


class RuntimeScaling:
    pass


class IntQuant:
    pass


class MaxStats:
    pass


class Root(ExtendedInjector):
    quant_type = QuantType.INT
    bit_width = 8
    scaling_impl_type = ScalingImplType.STATS
    scaling_stats_op = "max"
    signed = True
    _private = 1


class Middle(Root):
    bit_width = 4
    narrow_range = True
    scaling_impl = StatsScaling

    @value
    def scaling_init(bit_width):
        return 1.0


class Leaf(Middle):
    signed = False
    zero_point_impl_type = "wobble"
    scaling_min_val = this.bit_width


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.add("tensor_quant", "int", IntQuant, provider="brevitas-plugins")
    reg.add("scaling", "stats", ByRole(default=StatsScaling, act=RuntimeScaling), provider="brevitas-plugins")
    reg.add("stats_op", "max", MaxStats, provider="third-party")
    reg.add("zero_point", "zero", object, provider="brevitas-plugins")
    return reg


def test_rows_say_who_defined_what(registry: Registry) -> None:
    desc = describe(Leaf, registry=registry)
    assert isinstance(desc, QuantizerDescription)
    assert desc.quantizer == "Leaf"
    defined = {r.name: r.defined_in for r in desc.rows}
    assert defined == {
        "quant_type": "Root",
        "bit_width": "Middle",
        "scaling_impl_type": "Root",
        "scaling_stats_op": "Root",
        "signed": "Leaf",
        "narrow_range": "Middle",
        "scaling_impl": "Middle",
        "scaling_init": "Middle",
        "zero_point_impl_type": "Leaf",
        "scaling_min_val": "Leaf",
    }
    assert [r.name for r in desc.rows] == sorted(defined)
    assert "_private" not in desc


def test_values_are_the_winning_declarations(registry: Registry) -> None:
    desc = describe(Leaf, registry=registry)
    assert desc.row("bit_width").value == 4
    assert desc.row("signed").value is False
    assert desc.row("scaling_impl").value is StatsScaling
    assert desc.row("scaling_impl").value_text == "StatsScaling"
    assert desc.row("scaling_init").value_text == "@value scaling_init(bit_width)"
    assert desc.row("scaling_min_val").value_text == "this.bit_width"
    assert desc.row("quant_type").value_text == "QuantType.INT"
    assert desc.row("scaling_stats_op").value_text == "'max'"


def test_enum_options_solve_through_the_registry(registry: Registry) -> None:
    desc = describe(Leaf, registry=registry)
    assert desc.row("quant_type").solves_to == "IntQuant [brevitas-plugins]"
    # a plain string where an enum is expected is a registry name too
    assert desc.row("scaling_stats_op").solves_to == "MaxStats [third-party]"
    # a ByRole entry without a role lists every candidate
    assert desc.row("scaling_impl_type").solves_to == (
        "by role: default=StatsScaling, act=RuntimeScaling [brevitas-plugins]"
    )
    assert desc.row("bit_width").solves_to == ""
    assert desc.row("scaling_impl").solves_to == ""


def test_role_picks_the_component(registry: Registry) -> None:
    desc = describe(Leaf.let(quant_role="act"), registry=registry)
    assert desc.row("scaling_impl_type").solves_to == "RuntimeScaling [brevitas-plugins]"
    assert desc.row("quant_role").defined_in == "Leaf.let()"


def test_unknown_name_is_shown_unresolved_with_the_registered_names(registry: Registry) -> None:
    row = describe(Leaf, registry=registry).row("zero_point_impl_type")
    assert row.solves_to.startswith("unresolved: unknown zero_point 'wobble'")
    assert "Registered zero_point names: zero" in row.solves_to


def test_let_overrides_are_attributed_to_let(registry: Registry) -> None:
    desc = describe(Leaf.let(bit_width=2, scaling_stats_op=StatsOp.MAX), registry=registry)
    assert desc.row("bit_width").defined_in == "Leaf.let()"
    assert desc.row("bit_width").value == 2
    assert desc.row("scaling_stats_op").solves_to == "MaxStats [third-party]"
    assert desc.row("narrow_range").defined_in == "Middle"


def test_table_is_aligned_and_complete(registry: Registry) -> None:
    text = str(describe(Leaf, registry=registry))
    lines = text.splitlines()
    assert lines[0] == "Quantizer Leaf"
    header, rule, *body = lines[1:]
    assert header.split()[:2] == ["option", "value"]
    columns = [header.index(h) for h in ("option", "value", "defined in", "solves to")]
    assert set(rule.replace(" ", "")) == {"-"}
    assert len(body) == 10
    for line in body:
        for col in columns[1:]:
            if len(line) > col:  # an empty last cell is stripped
                assert line[col - 2 : col] == "  " and line[col] != " "
    bit_width_line = next(line for line in body if line.startswith("bit_width "))
    assert bit_width_line[columns[1] :].startswith("4")
    assert bit_width_line[columns[2] :].startswith("Middle")


def test_to_dict_is_json_friendly(registry: Registry) -> None:
    data = describe(Leaf, registry=registry).to_dict()
    assert data["quantizer"] == "Leaf"
    by_name = {o["name"]: o for o in data["options"]}
    assert by_name["bit_width"] == {"name": "bit_width", "value": "4", "defined_in": "Middle", "solves_to": ""}
    assert by_name["quant_type"]["solves_to"] == "IntQuant [brevitas-plugins]"
    json.dumps(data)


def test_unknown_row_and_non_quantizer_are_errors(registry: Registry) -> None:
    desc = describe(Root, registry=registry)
    with pytest.raises(UnknownNameError, match="declares no option 'nope'"):
        desc.row("nope")
    with pytest.raises(ConfigError, match="expected a quantizer class"):
        describe(StatsScaling, registry=registry)


def test_without_enum_options_no_registry_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    import brevitas.plugins

    def fail() -> Registry:
        raise AssertionError("registry consulted")

    monkeypatch.setattr(brevitas.plugins, "get_registry", fail)

    class Plain(ExtendedInjector):
        bit_width = 8

    desc = describe(Plain)
    assert desc.rows == [DescriptionRow("bit_width", 8, "Plain", "")]


def test_default_registry_failure_is_shown_unresolved(monkeypatch: pytest.MonkeyPatch) -> None:
    import brevitas.plugins
    from brevitas.errors import PluginError

    def broken() -> Registry:
        raise PluginError("plugins could not load")

    monkeypatch.setattr(brevitas.plugins, "get_registry", broken)
    row = describe(Root).row("quant_type")
    assert row.solves_to == "unresolved: the registry is unavailable (plugins could not load)"


def test_package_attribute_stays_callable(registry: Registry) -> None:
    import brevitas

    first = brevitas.describe(Root, registry=registry)
    second = brevitas.describe(Root, registry=registry)  # the submodule may now shadow the function
    assert first.to_dict() == second.to_dict()
