"""brevitas.inject: resolution by name, @value, let, MRO, errors."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from brevitas.core.bit_width import BitWidthConst
from brevitas.errors import BrevitasError, ConfigError, InjectionError, UnknownNameError
from brevitas.inject import (
    BaseInjector,
    ExtendedInjector,
    declared_attributes,
    defines,
    is_injector,
    this,
    value,
)
from brevitas.plugins.registry import Registry

# --------------------------------------------------------------------------
# components used by the quantizers below
# --------------------------------------------------------------------------


class Scaling(nn.Module):
    def __init__(self, scaling_init: float, restrict_impl: nn.Module, scaling_min_val: float = 1e-8) -> None:
        super().__init__()
        self.scaling_init = scaling_init
        self.restrict_impl = restrict_impl
        self.scaling_min_val = scaling_min_val


class Restrict(nn.Module):  # no __init__ of its own: nn.Module's takes *args, **kwargs
    pass


class Quant(nn.Module):
    def __init__(self, scaling_impl: nn.Module, bit_width_impl: nn.Module, restrict_impl: nn.Module) -> None:
        super().__init__()
        self.scaling_impl = scaling_impl
        self.bit_width_impl = bit_width_impl
        self.restrict_impl = restrict_impl


class WithClassDefault:
    def __init__(self, bit_width: int, factory=Restrict) -> None:
        self.bit_width = bit_width
        self.factory = factory


class Base(ExtendedInjector):
    bit_width = 8
    scaling_init = 0.5
    restrict_impl = Restrict
    bit_width_impl = BitWidthConst
    scaling_impl = Scaling
    tensor_quant = Quant


class PickledBase(Base):
    name = "y"


# --------------------------------------------------------------------------
# resolution
# --------------------------------------------------------------------------


def test_base_injector_is_the_extended_injector() -> None:
    assert BaseInjector is ExtendedInjector


def test_class_attributes_are_built_with_arguments_resolved_by_name() -> None:
    tq = Base.tensor_quant
    assert isinstance(tq, Quant)
    assert isinstance(tq.scaling_impl, Scaling)
    assert tq.scaling_impl.scaling_init == 0.5
    assert torch.equal(tq.bit_width_impl(), torch.tensor(8.0))


def test_constructor_default_used_unless_declared() -> None:
    assert Base.scaling_impl.scaling_min_val == 1e-8
    assert Base.let(scaling_min_val=1e-3).scaling_impl.scaling_min_val == 1e-3


def test_plain_values_are_returned_as_declared() -> None:
    module = nn.Linear(2, 2)

    class Q(ExtendedInjector):
        signed = True
        name = "stats"
        shape = (1, 3, 1, 1)
        layer = module
        nothing = None

    assert Q.signed is True
    assert Q.name == "stats"
    assert Q.shape == (1, 3, 1, 1)
    assert Q.layer is module
    assert Q.nothing is None


def test_value_function_called_with_arguments_by_name() -> None:
    class Q(Base):
        @value
        def max_int(bit_width, signed=True):
            return 2 ** (bit_width - 1) - 1 if signed else 2**bit_width - 1

    assert Q.max_int == 127
    assert Q.let(signed=False).max_int == 255


def test_value_returning_a_class_builds_it_by_name() -> None:
    class Q(Base):
        @value
        def scaling_impl(scaling_init):
            assert scaling_init == 0.5
            return Scaling

    impl = Q.scaling_impl
    assert isinstance(impl, Scaling)
    assert impl.scaling_init == 0.5
    assert isinstance(impl.restrict_impl, Restrict)
    assert impl.scaling_min_val == 1e-8  # not declared: the constructor default


def test_value_returning_an_injector_or_a_star_class_attribute_is_not_built() -> None:
    class Other(ExtendedInjector):
        bit_width = 4

    class Q(ExtendedInjector):
        @value
        def inner_quant():
            return Other

        @value
        def impl_class():
            return Scaling

        plain_class = Restrict
        nested = Other

    assert Q.inner_quant is Other
    assert Q.impl_class is Scaling
    assert Q.plain_class is Restrict
    assert Q.nested is Other


def test_module_without_init_and_class_valued_default_are_accepted() -> None:
    class Q(ExtendedInjector):
        bit_width = 3
        restrict = Restrict
        holder = WithClassDefault

    assert isinstance(Q.restrict, Restrict)
    assert Q.holder.bit_width == 3
    assert Q.holder.factory is Restrict


def test_star_class_parameters_take_classes_as_values() -> None:
    class NeedsFactory:
        def __init__(self, impl_class, fallback_class=None) -> None:
            self.impl_class = impl_class
            self.fallback_class = fallback_class

    class Q(ExtendedInjector):
        impl_class = Restrict
        holder = NeedsFactory

    assert Q.holder.impl_class is Restrict
    assert Q.holder.fallback_class is None


def test_positional_only_parameters_are_passed_positionally() -> None:
    class PosOnly:
        def __init__(self, a, b=2, /, c=3) -> None:
            self.args = (a, b, c)

    class Q(ExtendedInjector):
        a = 1
        c = 30
        impl = PosOnly

    assert Q.impl.args == (1, 2, 30)
    assert Q.let(b=20).impl.args == (1, 20, 30)


def test_this_refers_to_another_attribute() -> None:
    class Q(Base):
        scaling_init = this.bit_width

    assert Q.scaling_impl.scaling_init == 8
    assert Q.let(bit_width=4).scaling_impl.scaling_init == 4


def test_annotations_in_class_body_are_fine() -> None:
    class Q(ExtendedInjector):
        bit_width: int = 4

    assert Q.bit_width == 4


# --------------------------------------------------------------------------
# let
# --------------------------------------------------------------------------


def test_let_overrides_without_touching_the_original() -> None:
    Q4 = Base.let(bit_width=4)
    assert torch.equal(Q4.tensor_quant.bit_width_impl(), torch.tensor(4.0))
    assert torch.equal(Base.tensor_quant.bit_width_impl(), torch.tensor(8.0))
    assert issubclass(Q4, Base)
    assert Q4.__name__ == "Base"


def test_let_with_a_string_keeps_a_plain_string() -> None:
    Q = Base.let(scaling_impl_type="stats", scaling_init="abc")
    assert Q.scaling_impl_type == "stats"
    assert Q.scaling_impl.scaling_init == "abc"


def test_let_with_a_class_builds_it() -> None:
    class OtherRestrict(nn.Module):
        def __init__(self, bit_width: int) -> None:
            super().__init__()
            self.bit_width = bit_width

    Q = Base.let(restrict_impl=OtherRestrict)
    impl = Q.tensor_quant.restrict_impl
    assert isinstance(impl, OtherRestrict)
    assert impl.bit_width == 8


def test_let_replaces_a_value_function_and_chains() -> None:
    class Q(Base):
        @value
        def bit_width(scaling_init):
            return 2

    assert Q.bit_width == 2
    assert Q.let(bit_width=6).bit_width == 6
    assert Q.let(bit_width=6).let(scaling_init=1.0).bit_width == 6


def test_let_with_a_value_declaration() -> None:
    Q = Base.let(bit_width=value(lambda scaling_init: int(scaling_init * 8)))
    assert Q.bit_width == 4


# --------------------------------------------------------------------------
# inheritance and sharing
# --------------------------------------------------------------------------


def test_diamond_of_mixins_follows_python_mro() -> None:
    class Defaults(ExtendedInjector):
        rounding = "round"

    class Left(Defaults):
        pass

    class Right(Defaults):
        rounding = "floor"

    class Both(Left, Right):
        pass

    assert Both.rounding == "floor"  # Python's MRO: Both, Left, Right, Defaults
    assert declared_attributes(Both)["rounding"] == ("floor", Right)


def test_one_build_shares_each_component() -> None:
    class Q(Base):
        @value
        def wrapper(tensor_quant, scaling_impl):
            return (tensor_quant, scaling_impl)

        @value
        def auto():
            return Quant

    tq, scaling = Q.wrapper
    assert tq.scaling_impl is scaling
    assert tq.restrict_impl is scaling.restrict_impl
    auto = Q.auto
    assert auto.restrict_impl is auto.scaling_impl.restrict_impl


def test_let_classes_pickle_with_their_overrides() -> None:
    restored = pickle.loads(pickle.dumps(PickledBase.let(bit_width=4, name="x")))
    assert restored is not PickledBase and issubclass(restored, PickledBase)
    assert (restored.bit_width, restored.name) == (4, "x")
    assert torch.equal(restored.tensor_quant.bit_width_impl(), torch.tensor(4.0))
    assert pickle.loads(pickle.dumps(PickledBase)) is PickledBase
    assert pickle.loads(pickle.dumps(PickledBase.let(bit_width=3).let(signed=False))).bit_width == 3


def test_nothing_is_cached_between_accesses_or_injectors() -> None:
    assert Base.tensor_quant is not Base.tensor_quant
    assert Base.let(bit_width=4).scaling_impl is not Base.scaling_impl


# --------------------------------------------------------------------------
# introspection
# --------------------------------------------------------------------------


def test_defines_and_declared_attributes_do_not_build() -> None:
    calls = []

    class Q(Base):
        @value
        def probe(bit_width):
            calls.append(bit_width)
            return bit_width

    assert defines(Q, "probe") and defines(Q, "bit_width")
    assert not defines(Q, "missing")
    assert not defines(None, "bit_width")
    attrs = declared_attributes(Q.let(bit_width=4))
    assert attrs["bit_width"][0] == 4
    assert attrs["scaling_impl"] == (Scaling, Base)
    assert attrs["probe"][1] is Q
    assert calls == []
    assert is_injector(Q) and not is_injector(Scaling) and not is_injector(None)


def test_declared_attributes_refuses_a_non_quantizer() -> None:
    with pytest.raises(ConfigError, match="expected a quantizer class"):
        declared_attributes(Scaling)


# --------------------------------------------------------------------------
# errors: missing attributes
# --------------------------------------------------------------------------


def test_missing_attribute_names_quantizer_attribute_and_component() -> None:
    class Broken(ExtendedInjector):
        restrict_impl = Restrict
        scaling_impl = Scaling
        tensor_quant = Quant

    with pytest.raises(InjectionError) as info:
        _ = Broken.tensor_quant
    err = info.value
    msg = str(err)
    assert "Broken" in msg
    assert "'scaling_init'" in msg
    assert "Scaling (attribute 'scaling_impl' of Broken)" in msg
    assert "while building 'tensor_quant'" in msg
    assert err.name == "scaling_init" and err.obj is Broken
    assert err.quantizer == "Broken" and err.attribute == "scaling_init"
    assert isinstance(err, AttributeError) and isinstance(err, BrevitasError)


def test_typo_gets_a_suggestion() -> None:
    class Typo(ExtendedInjector):
        scaling_int = 0.25  # meant scaling_init
        restrict_impl = Restrict
        scaling_impl = Scaling

    with pytest.raises(InjectionError) as info:
        _ = Typo.scaling_impl
    msg = str(info.value)
    assert "cannot resolve 'scaling_init'" in msg
    assert "did you mean 'scaling_int'" in msg
    assert "while building" not in msg  # the requested attribute is the component itself
    assert info.value.accepted[0] == "scaling_int"


def test_direct_access_to_an_undeclared_attribute() -> None:
    with pytest.raises(InjectionError, match=r"quantizer Base has no attribute 'bit_widht'.*'bit_width'"):
        _ = Base.bit_widht
    assert not hasattr(Base, "bit_widht")
    assert hasattr(Base, "bit_width")
    assert getattr(Base, "missing", "default") == "default"


def test_missing_attribute_of_a_class_returned_by_value() -> None:
    class Q(ExtendedInjector):
        restrict_impl = Restrict

        @value
        def scaling_impl():
            return Scaling

    with pytest.raises(InjectionError) as info:
        _ = Q.scaling_impl
    msg = str(info.value)
    assert "cannot resolve 'scaling_init'" in msg
    assert "Scaling (returned by @value scaling_impl of Q)" in msg


def test_missing_argument_of_a_value_function() -> None:
    class Q(ExtendedInjector):
        @value
        def scaling_impl(scaling_impl_type):
            return Scaling

    with pytest.raises(InjectionError, match=r"cannot resolve 'scaling_impl_type', needed by @value scaling_impl"):
        _ = Q.scaling_impl


def test_state_is_clean_after_a_failure() -> None:
    class Q(ExtendedInjector):
        restrict_impl = Restrict
        scaling_impl = Scaling

    with pytest.raises(InjectionError):
        _ = Q.scaling_impl
    assert Q.let(scaling_init=1.0).scaling_impl.scaling_init == 1.0
    assert isinstance(Q.restrict_impl, Restrict)


# --------------------------------------------------------------------------
# errors: raised by components
# --------------------------------------------------------------------------


def test_config_error_in_a_constructor_keeps_its_type_and_names_quantizer_and_component() -> None:
    with pytest.raises(ConfigError) as info:
        _ = Base.let(bit_width=0).tensor_quant
    err = info.value
    assert type(err) is ConfigError
    assert not isinstance(err, AttributeError)  # hasattr/getattr-with-default cannot hide it
    msg = str(err)
    assert msg.startswith("quantizer Base, BitWidthConst (attribute 'bit_width_impl' of Base): ")
    assert "bit_width must be between 1 and 32, got 0" in msg
    assert isinstance(err.__cause__, ConfigError)


def test_registry_error_in_a_value_function_keeps_its_type() -> None:
    registry = Registry()
    registry.add("scaling", "stats", Scaling, provider="test")

    class Q(Base):
        scaling_impl_type = "stat"

        @value
        def scaling_impl(scaling_impl_type):
            return registry.get("scaling", scaling_impl_type)

    with pytest.raises(UnknownNameError) as info:
        _ = Q.scaling_impl
    msg = str(info.value)
    assert "quantizer Q, @value scaling_impl(scaling_impl_type)" in msg
    assert "Registered scaling names: stats" in msg


def test_exception_that_cannot_be_rebuilt_is_re_raised_unchanged() -> None:
    class TwoArgs(Exception):
        def __init__(self, code: int, text: str) -> None:
            super().__init__(code, text)

    original = TwoArgs(3, "boom")

    class Explodes:
        def __init__(self) -> None:
            raise original

    class Q(ExtendedInjector):
        impl = Explodes

    with pytest.raises(TwoArgs) as info:
        _ = Q.impl
    assert info.value is original
    notes = getattr(info.value, "__notes__", None)
    if notes is not None:  # Python 3.11+
        assert any("quantizer Q" in n and "Explodes" in n for n in notes)


def test_context_is_added_once_through_nested_builds() -> None:
    class Q(Base):
        @value
        def tensor_quant(bit_width):
            return Quant

    with pytest.raises(ConfigError) as info:
        _ = Q.let(bit_width=40).tensor_quant
    assert str(info.value).count("quantizer ") == 1


# --------------------------------------------------------------------------
# errors: declarations
# --------------------------------------------------------------------------


def test_dunder_and_let_declarations_are_refused() -> None:
    with pytest.raises(InjectionError, match="'__call__' cannot be declared"):

        class Bad(ExtendedInjector):
            def __call__(self):  # pragma: no cover
                return 1

    with pytest.raises(InjectionError, match="'let' is the override method"):

        class Bad2(ExtendedInjector):
            let = 1

    with pytest.raises(InjectionError, match="cannot be overridden"):
        Base.let(__doc__="x")


def test_bad_value_declarations_are_refused() -> None:
    with pytest.raises(InjectionError, match="named parameters only"):

        class Bad(ExtendedInjector):
            @value
            def impl(*args):  # pragma: no cover
                return args

    with pytest.raises(InjectionError, match="assign the class itself"):
        value(Scaling)

    with pytest.raises(InjectionError, match="takes 'self'"):

        class Bad2(ExtendedInjector):
            @value
            def impl(self):  # pragma: no cover
                return 1


def test_circular_declaration_is_an_injection_error() -> None:
    class NeedsItself:
        def __init__(self, loop) -> None:  # pragma: no cover
            self.loop = loop

    with pytest.raises(InjectionError, match="circular") as info:

        class Bad(ExtendedInjector):
            loop = NeedsItself

    assert "DependencyError" in type(info.value.__cause__).__name__


def test_circular_dependency_through_a_returned_class() -> None:
    class Wraps:
        def __init__(self, scaling_impl) -> None:  # pragma: no cover
            self.inner = scaling_impl

    class Q(ExtendedInjector):
        @value
        def scaling_impl():
            return Wraps

    with pytest.raises(InjectionError, match=r"circular dependency scaling_impl -> scaling_impl"):
        _ = Q.scaling_impl


def test_bare_this_is_refused_as_an_injection_error() -> None:
    with pytest.raises(InjectionError, match="cannot be declared"):

        class Bad(ExtendedInjector):
            alias = this


def test_quantizers_are_not_instantiated() -> None:
    with pytest.raises(InjectionError, match="never instantiated"):
        Base()


def test_plain_dependencies_injector_cannot_be_mixed_in() -> None:
    from dependencies import Injector

    class Plain(Injector):
        x = 1

    with pytest.raises(InjectionError, match="not a brevitas.inject.ExtendedInjector"):

        class Mixed(Base, Plain):
            pass
