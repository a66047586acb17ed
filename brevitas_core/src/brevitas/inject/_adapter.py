"""The one module that talks to the ``dependencies`` library.

Everything else in Brevitas imports :mod:`brevitas.inject`; only this module
imports ``dependencies``, and only its public names (``Injector``, ``value``,
``this``, ``dependencies.exceptions.DependencyError``). It adapts the library
to what quantizers need:

- **Every declared class and ``@value`` function becomes a component.** Before
  a class body reaches the library, each class-valued attribute and each
  ``@value`` function is replaced by a callable whose signature lists the
  constructor's (or function's) parameters, all optional. The library then
  resolves the parameters it can by name and calls the component, which
  checks the ones still missing itself. That is how a missing attribute is
  reported with the quantizer, the attribute and the component that needed
  it, and it also lifts the library's refusals that do not fit quantizers:
  constructors with ``*args, **kwargs`` (any ``nn.Module`` without its own
  ``__init__``) and class-valued default arguments are accepted.
- **A ``@value`` function may return a class**, which is then built with its
  constructor arguments resolved by name from the same quantizer.
- **Inheritance follows Python's MRO.** The library merges the bases'
  declarations in its own order, which differs from the MRO for diamonds of
  mixins; each class therefore hands the library every declaration of its
  whole MRO, resolved the Python way.
- **One build shares its components.** While ``Q.tensor_quant`` is being
  built, each attribute is built at most once and shared by every component
  that needs it; nothing is cached between two accesses or two injectors.
- **Errors are Brevitas errors.** An incomplete declaration raises
  :class:`~brevitas.errors.InjectionError` (an ``AttributeError``, so
  ``hasattr`` works); an exception raised *by* a component (say a
  :class:`~brevitas.errors.ConfigError` for a 0-bit width) keeps its type and
  gets the quantizer and the component prepended to its message, chained to
  the original; no ``DependencyError`` escapes.

Conventions kept from the library: an attribute whose name ends in ``_class``
holds a class itself (it is never instantiated), an attribute holding another
injector holds that injector class, and anything else that is not a class
(numbers, strings, enum members, module instances, ``None``) is a plain value.

Example:
    >>> from brevitas.inject import ExtendedInjector, value
    >>> class Scaling:
    ...     def __init__(self, scaling_init):
    ...         self.scaling_init = scaling_init
    >>> class Quant(ExtendedInjector):
    ...     scaling_init = 0.5
    ...     @value
    ...     def scaling_impl(scaling_init):
    ...         return Scaling
    >>> Quant.scaling_impl.scaling_init
    0.5
    >>> Quant.let(scaling_init=2.0).scaling_impl.scaling_init
    2.0
"""

from __future__ import annotations

import contextvars
import copyreg
import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from dependencies import Injector as _LibInjector
from dependencies import this as _lib_this
from dependencies import value as _LibValue
from dependencies.exceptions import DependencyError

from brevitas.errors import ConfigError, InjectionError

__all__ = [
    "BaseInjector",
    "ExtendedInjector",
    "declared_attributes",
    "defines",
    "describe_declaration",
    "is_injector",
    "made_by_let",
    "this",
    "value",
]

_T = TypeVar("_T")

#: ``this.attr`` refers to another attribute of the same quantizer.
this = _lib_this

_This = type(_lib_this)
_LibMeta = type(_LibInjector)
_Parameter = inspect.Parameter

#: where each class keeps what it declared itself (set with ``type.__setattr__``)
_RECORD = "__brevitas_record__"
#: namespace key by which :meth:`ExtendedInjector.let` marks the classes it makes
_LET_MARK = "__brevitas_let__"
#: dunder entries Python itself may put in a class body; they are not attributes
_CLASS_BODY_DUNDERS = frozenset({"__annotations__", "__firstlineno__", "__static_attributes__", "__orig_bases__"})
_KEPT_DUNDERS = ("__module__", "__qualname__", "__doc__")
_MAX_LISTED = 12


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


# --------------------------------------------------------------------------
# @value
# --------------------------------------------------------------------------


class value:
    """Mark a function whose result is a quantizer attribute.

    The function's parameters are resolved by name from the quantizer; it is
    called when the attribute is accessed. When it returns a class, the class
    is instantiated with its constructor arguments resolved by name too.

    Example:
        >>> from brevitas.inject import ExtendedInjector, value
        >>> class Q(ExtendedInjector):
        ...     bit_width = 4
        ...     @value
        ...     def max_int(bit_width):
        ...         return 2 ** (bit_width - 1) - 1
        >>> Q.max_int
        7
    """

    __slots__ = ("function",)

    def __init__(self, function: Callable[..., Any]) -> None:
        if inspect.isclass(function) or not callable(function):
            raise InjectionError(
                f"@value decorates a function, got {function!r}. To have a class built with its "
                f"arguments resolved by name, assign the class itself (e.g. scaling_impl = MyScaling)."
            )
        self.function = function

    def __repr__(self) -> str:
        return f"@value {_function_label(self.function)}"


def _value_function(obj: Any) -> Callable[..., Any] | None:
    """The function of a ``@value`` declaration (ours or the library's), else None."""
    if isinstance(obj, value):
        return obj.function
    if isinstance(obj, _LibValue):
        return obj.__function__
    return None


def _function_label(function: Callable[..., Any]) -> str:
    try:
        params = ", ".join(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        params = "..."
    return f"{getattr(function, '__name__', repr(function))}({params})"


# --------------------------------------------------------------------------
# Build state: one per top-level attribute access, shared by nested accesses
# --------------------------------------------------------------------------


@dataclass
class _BuildState:
    requested: str
    injectors: list[type] = field(default_factory=list)
    cache: dict[tuple[type, str], Any] = field(default_factory=dict)
    building: list[tuple[type, str]] = field(default_factory=list)


_STATE: contextvars.ContextVar[_BuildState | None] = contextvars.ContextVar("brevitas_injection", default=None)


# --------------------------------------------------------------------------
# Components: what the library sees in place of classes and @value functions
# --------------------------------------------------------------------------


class _MissingClass:
    """Stand-in default of ``*_class`` parameters (the library wants a class there)."""


_MISSING = object()


def _injectable_parameters(target: Any) -> tuple[inspect.Parameter, ...]:
    """The parameters of ``target`` that can be resolved by name (``*args``/``**kwargs`` dropped)."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return ()
    return tuple(
        p for p in signature.parameters.values() if p.kind not in (_Parameter.VAR_POSITIONAL, _Parameter.VAR_KEYWORD)
    )


def _library_signature(params: tuple[inspect.Parameter, ...]) -> inspect.Signature:
    """All parameters optional: the library resolves what it can, the component checks the rest."""
    return inspect.Signature(
        [
            _Parameter(
                p.name, _Parameter.KEYWORD_ONLY, default=_MissingClass if p.name.endswith("_class") else _MISSING
            )
            for p in params
        ]
    )


def _candidates_message(injector: type, name: str) -> tuple[str, list[str]]:
    """What the quantizer defines that is close to ``name``, as a sentence and a list."""
    declared = sorted(n for n in declared_attributes(injector) if not n.startswith("_"))
    close = difflib.get_close_matches(name, declared, n=3, cutoff=0.6)
    if close:
        listed = ", ".join(repr(c) for c in close)
        return f" Close names it defines: {listed}; did you mean {close[0]!r}?", close
    if not declared:
        return " It defines no attributes.", []
    shown = ", ".join(declared[:_MAX_LISTED]) + (", ..." if len(declared) > _MAX_LISTED else "")
    return f" It defines: {shown}.", declared


def _missing_error(
    injector: type, name: str, needed_by: str | None, building: str | None, state: _BuildState | None
) -> InjectionError:
    """The error for an attribute ``name`` the quantizer does not declare.

    ``needed_by`` labels the component that asked for it (None for a direct
    access), ``building`` is the attribute that component provides.
    """
    hint, accepted = _candidates_message(injector, name)
    quant = injector.__name__
    if needed_by is None:
        msg = f"quantizer {quant} has no attribute {name!r}."
    else:
        msg = f"quantizer {quant}: cannot resolve {name!r}, needed by {needed_by}"
        if state is not None and state.requested not in (name, building):
            msg += f" while building {state.requested!r}"
        msg += "."
    msg += (
        f"{hint} Define it on the quantizer ({name} = ... in the class, or {quant}.let({name}=...)), "
        f"or pass it to the layer as a prefixed keyword (e.g. weight_{name}=...)."
    )
    err = InjectionError(msg, name=name, obj=injector)
    err.quantizer = quant
    err.attribute = name
    err.component = needed_by
    err.accepted = accepted
    return err


def _with_context(exc: Exception, context: str, suffix: str = "") -> Exception | None:
    """``exc`` rebuilt with ``context`` prepended (and ``suffix`` appended), same type; None when it cannot be.

    An exception that already carries a quantizer context is left alone.
    """
    if getattr(exc, "_brevitas_context", False):
        return None
    if len(exc.args) > 1 or (exc.args and not isinstance(exc.args[0], str)):
        return None
    message = (f"{context}: {exc.args[0]}" if exc.args else context) + suffix
    try:
        rebuilt = type(exc)(message)
    except Exception:
        return None
    if type(rebuilt) is not type(exc) or rebuilt.args != (message,):
        return None
    rebuilt.__dict__.update(exc.__dict__)
    rebuilt._brevitas_context = True
    return rebuilt


def _provider_of(target: Any) -> str | None:
    """``"scaling 'lsq' of plugin 'lsq' (...)"`` when ``target`` came from the registry (error paths only)."""
    if not inspect.isclass(target):
        return None
    try:
        from brevitas.plugins import provider_of

        return provider_of(target)
    except Exception:  # never hide the real error behind a failure to describe it
        return None


def _call(target: Callable[..., Any], pos: list[Any], kw: dict[str, Any], injector: type, label: str) -> Any:
    """Call a component; its own exceptions keep their type and gain the quantizer and component."""
    try:
        return target(*pos, **kw)
    except InjectionError:
        raise
    except Exception as exc:
        context = f"quantizer {injector.__name__}, {label}"
        provider = _provider_of(target)
        suffix = f" [raised by {target.__qualname__}, {provider}]" if provider else ""
        rebuilt = _with_context(exc, context, suffix)
        if rebuilt is None:
            if not getattr(exc, "_brevitas_context", False):
                add_note = getattr(exc, "add_note", None)  # Python 3.11+
                if add_note is not None:
                    add_note(f"raised in {context}{suffix}")
                exc._brevitas_context = True
            raise
        raise rebuilt from exc


def _is_injector_class(obj: Any) -> bool:
    return isinstance(obj, _LibMeta)


def _autowired(attribute: str, result: Any) -> bool:
    """Whether a ``@value`` result is a class to build (not an injector, not a ``*_class``)."""
    return inspect.isclass(result) and not _is_injector_class(result) and not attribute.endswith("_class")


class _Component:
    """A declared class or ``@value`` function, as handed to the library."""

    def __init__(self, attribute: str, target: Any, kind: str, owner: str) -> None:
        self.attribute = attribute
        self.target = target
        self.kind = kind  # "class", "value" or "const"
        self.owner = owner
        if kind == "class":
            self.label = f"{target.__qualname__} (attribute {attribute!r} of {owner})"
            self.params = _injectable_parameters(target)
        elif kind == "value":
            self.label = f"@value {_function_label(target)} (attribute {attribute!r} of {owner})"
            self.params = _injectable_parameters(target)
        else:
            self.label = f"attribute {attribute!r} of {owner}"
            self.params = ()
        self.__name__ = self.label  # the library names components in its messages
        self.__signature__ = _library_signature(self.params)

    def __repr__(self) -> str:
        return f"<component {self.label}>"

    def __call__(self, **resolved: Any) -> Any:
        state = _STATE.get()
        if state is None or not state.injectors:  # pragma: no cover - only the library calls us
            raise InjectionError(f"{self.label} was built outside of an attribute access")
        injector = state.injectors[-1]
        key = (injector, self.attribute)
        if key in state.cache:
            return state.cache[key]
        if key in state.building:
            path = [name for (inj, name) in state.building[state.building.index(key) :] if inj is injector]
            cycle = " -> ".join([*path, self.attribute])
            raise InjectionError(
                f"quantizer {injector.__name__}: circular dependency {cycle}: {self.attribute!r} is needed "
                f"while it is being built. Set one of these attributes to a value or a class instead.",
                name=self.attribute,
                obj=injector,
            )
        state.building.append(key)
        try:
            result = self._build(injector, resolved, state)
        finally:
            state.building.pop()
        state.cache[key] = result
        return result

    def _build(self, injector: type, resolved: dict[str, Any], state: _BuildState) -> Any:
        if self.kind == "const":
            return self.target
        pos, kw = _arguments(injector, self.params, resolved, self.label, self.attribute, state)
        result = _call(self.target, pos, kw, injector, self.label)
        if self.kind == "value" and _autowired(self.attribute, result):
            label = f"{result.__qualname__} (returned by @value {self.attribute} of {self.owner})"
            params = _injectable_parameters(result)
            found = {p.name: getattr(injector, p.name) for p in params if p.name in injector}
            pos, kw = _arguments(injector, params, found, label, self.attribute, state)
            result = _call(result, pos, kw, injector, label)
        return result


def _arguments(
    injector: type,
    params: tuple[inspect.Parameter, ...],
    resolved: dict[str, Any],
    label: str,
    building: str,
    state: _BuildState,
) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments for ``params``; a missing required one is an InjectionError."""
    pos: list[Any] = []
    kw: dict[str, Any] = {}
    for p in params:
        if p.name in resolved:
            if p.kind is _Parameter.POSITIONAL_ONLY:
                pos.append(resolved[p.name])
            else:
                kw[p.name] = resolved[p.name]
        elif p.default is _Parameter.empty:
            raise _missing_error(injector, p.name, label, building, state)
        elif p.kind is _Parameter.POSITIONAL_ONLY:
            pos.append(p.default)  # later positional-only arguments may follow
    return pos, kw


def _adapt(attribute: str, declared: Any, owner: str) -> Any:
    """What the library is given for one declaration."""
    function = _value_function(declared)
    if function is not None:
        for p in inspect.signature(function).parameters.values():
            if p.kind in (_Parameter.VAR_POSITIONAL, _Parameter.VAR_KEYWORD):
                raise InjectionError(
                    f"quantizer {owner}: @value {attribute} takes *{p.name}; a @value function takes named "
                    f"parameters only, each resolved by name from the quantizer."
                )
            if p.name == "self":
                raise InjectionError(
                    f"quantizer {owner}: @value {attribute} takes 'self'; a @value function is not a method, "
                    f"its parameters are other attributes of the quantizer (e.g. def {attribute}(bit_width): ...)."
                )
        return _LibValue(_Component(attribute, function, "value", owner))
    if inspect.isclass(declared):
        if _is_injector_class(declared):
            return _LibValue(_Component(attribute, declared, "const", owner))
        if attribute.endswith("_class"):
            return declared  # the library keeps *_class attributes as plain classes
        return _LibValue(_Component(attribute, declared, "class", owner))
    return declared


# --------------------------------------------------------------------------
# The metaclass
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    own: Mapping[str, Any]
    adapted: Mapping[str, Any]
    via_let: bool


def _linearize(bases: tuple[type, ...]) -> list[type]:
    """The MRO a class with these bases will have, without itself (C3)."""
    seqs = [list(b.__mro__) for b in bases] + [list(bases)]
    out: list[type] = []
    while True:
        seqs = [s for s in seqs if s]
        if not seqs:
            return out
        for seq in seqs:
            head = seq[0]
            if not any(head in other[1:] for other in seqs):
                break
        else:
            raise TypeError(f"cannot create a consistent method resolution order for bases {bases}")
        out.append(head)
        for seq in seqs:
            if seq[0] is head:
                del seq[0]


class _InjectorMeta(_LibMeta):
    """Metaclass of :class:`ExtendedInjector` (see the module docstring)."""

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> _InjectorMeta:
        namespace = dict(namespace)
        via_let = bool(namespace.pop(_LET_MARK, False))
        kept: dict[str, Any] = {}
        own: dict[str, Any] = {}
        for key, declared in namespace.items():
            if key in _KEPT_DUNDERS:
                kept[key] = declared
            elif key in _CLASS_BODY_DUNDERS:
                continue
            elif _is_dunder(key):
                raise InjectionError(
                    f"quantizer {name}: {key!r} cannot be declared; quantizer attributes are plain names "
                    f"(dunder names and methods are not supported)."
                )
            elif key == "let":
                raise InjectionError(f"quantizer {name}: 'let' is the override method and cannot be redefined.")
            else:
                own[key] = declared
        for base in bases:
            if base is not _LibInjector and not isinstance(base, _InjectorMeta):
                raise InjectionError(
                    f"quantizer {name}: base {base.__qualname__} is not a brevitas.inject.ExtendedInjector; "
                    f"quantizers mix in ExtendedInjector subclasses only."
                )
        flat: dict[str, Any] = {}
        for base in reversed(_linearize(bases)):
            record = base.__dict__.get(_RECORD)
            if record is not None:
                flat.update(record.adapted)
        adapted = {key: _adapt(key, declared, name) for key, declared in own.items()}
        flat.update(adapted)
        try:
            cls = super().__new__(mcs, name, bases, {**kept, **flat})
        except DependencyError as exc:
            raise InjectionError(f"quantizer {name} cannot be declared: {exc}") from exc
        type.__setattr__(cls, _RECORD, _Record(MappingProxyType(own), MappingProxyType(adapted), via_let))
        return cls

    def __getattr__(cls, name: str) -> Any:
        if name not in cls:
            if _is_dunder(name):
                raise AttributeError(f"type object {cls.__name__!r} has no attribute {name!r}")
            raise _missing_error(cls, name, None, None, _STATE.get())
        state = _STATE.get()
        token = None
        if state is None:
            state = _BuildState(requested=name)
            token = _STATE.set(state)
        state.injectors.append(cls)
        try:
            return super().__getattr__(name)
        except DependencyError as exc:
            raise InjectionError(f"quantizer {cls.__name__}: cannot build {name!r}: {exc}", name=name, obj=cls) from exc
        finally:
            state.injectors.pop()
            if token is not None:
                _STATE.reset(token)


class ExtendedInjector(_LibInjector, metaclass=_InjectorMeta):
    """Base class of quantizers: attributes resolved by name.

    Subclass it and declare attributes. Accessing one builds it: a class is
    instantiated with its constructor arguments taken, by name, from the
    other attributes; a ``@value`` function is called likewise, and when it
    returns a class that class is built the same way; anything else is
    returned as is. Quantizers are classes and are never instantiated.

    ``Q.let(**overrides)`` returns a subclass with some attributes replaced
    (a class stays a class to build, a string stays a string).

    Example:
        >>> from brevitas.inject import ExtendedInjector
        >>> class BitWidth:
        ...     def __init__(self, bit_width, signed=True):
        ...         self.bit_width, self.signed = bit_width, signed
        >>> class Q(ExtendedInjector):
        ...     bit_width = 8
        ...     bit_width_impl = BitWidth
        >>> Q.bit_width_impl.bit_width
        8
        >>> Q.let(bit_width=4, signed=False).bit_width_impl.signed
        False
        >>> hasattr(Q, "scaling_impl")
        False
    """


def _let(cls: type[_T], **overrides: Any) -> type[_T]:
    """A subclass of the quantizer with ``overrides`` as class attributes.

    Example:
        >>> from brevitas.inject import ExtendedInjector
        >>> class Q(ExtendedInjector):
        ...     bit_width = 8
        >>> Q.let(bit_width=4).bit_width, Q.bit_width
        (4, 8)
    """
    for key in overrides:
        if _is_dunder(key) or key == "let":
            raise InjectionError(
                f"{cls.__name__}.let(): {key!r} cannot be overridden; it is not a quantizer attribute."
            )
    namespace = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        _LET_MARK: True,
        **overrides,
    }
    return type(cls)(cls.__name__, (cls,), namespace)


def _refuse_instances(self: Any, *args: Any, **kwargs: Any) -> None:
    raise InjectionError(
        f"{type(self).__name__} is a quantizer, which is used as a class and never instantiated: "
        f"pass {type(self).__name__} itself (or {type(self).__name__}.let(...)) where a quantizer is expected."
    )


# The library refuses 'let' and dunders in a class body, so these go in after.
type.__setattr__(ExtendedInjector, "let", classmethod(_let))
type.__setattr__(ExtendedInjector, "__init__", _refuse_instances)

#: The name the original documentation uses for the same class.
BaseInjector = ExtendedInjector


def _relet(parent: type, overrides: dict[str, Any]) -> type:
    """Unpickle a class made by ``let``: make it again from its parent."""
    return parent.let(**overrides)


def _reduce_injector(cls: type) -> Any:
    """Pickle a class made by ``let`` as ``parent.let(**overrides)``, any other by name.

    A ``let`` class has its parent's name, so pickling it by name would fail
    (or, worse, find the parent); a model saved whole keeps its overrides.
    """
    record = cls.__dict__.get(_RECORD)
    if record is not None and record.via_let:
        return _relet, (cls.__bases__[0], dict(record.own))
    return cls.__qualname__


copyreg.pickle(_InjectorMeta, _reduce_injector)


# --------------------------------------------------------------------------
# Introspection without building
# --------------------------------------------------------------------------


def is_injector(obj: Any) -> bool:
    """Whether ``obj`` is a quantizer class (an :class:`ExtendedInjector` subclass).

    Example:
        >>> from brevitas.inject import ExtendedInjector, is_injector
        >>> class Q(ExtendedInjector):
        ...     bit_width = 8
        >>> is_injector(Q), is_injector(None), is_injector(int)
        (True, False, False)
    """
    return isinstance(obj, _InjectorMeta)


def defines(quant: Any, name: str) -> bool:
    """Whether ``quant`` declares the attribute ``name`` (anywhere in its MRO), without building it.

    ``False`` for anything that is not a quantizer class (``None`` included).

    Example:
        >>> from brevitas.inject import ExtendedInjector, defines
        >>> class Q(ExtendedInjector):
        ...     bit_width = 8
        >>> defines(Q, "bit_width"), defines(Q, "signed"), defines(None, "bit_width")
        (True, False, False)
    """
    return is_injector(quant) and name in quant


def declared_attributes(quant: Any) -> dict[str, tuple[Any, type]]:
    """Every attribute ``quant`` declares: ``name -> (declared value, class that declared it)``.

    The declared value is what the class body (or ``let``) wrote: a class, a
    ``@value`` declaration, a ``this`` reference or a plain value. Walks the
    MRO the way Python does, so the winner of each name is the one attribute
    access uses. Nothing is built.

    Raises:
        ConfigError: ``quant`` is not a quantizer class.

    Example:
        >>> from brevitas.inject import ExtendedInjector, declared_attributes
        >>> class Base(ExtendedInjector):
        ...     bit_width = 8
        ...     signed = True
        >>> class Q(Base):
        ...     bit_width = 4
        >>> {k: (v, c.__name__) for k, (v, c) in declared_attributes(Q).items()}
        {'bit_width': (4, 'Q'), 'signed': (True, 'Base')}
    """
    if not is_injector(quant):
        raise ConfigError(
            f"expected a quantizer class (a brevitas.inject.ExtendedInjector subclass), got {quant!r}. "
            f"Pass the class itself, e.g. Int8WeightPerTensorFloat, not an instance or a layer."
        )
    out: dict[str, tuple[Any, type]] = {}
    for klass in reversed(quant.__mro__):
        record = klass.__dict__.get(_RECORD)
        if record is not None:
            for key, declared in record.own.items():
                out[key] = (declared, klass)
    return out


def made_by_let(klass: type) -> bool:
    """Whether ``klass`` was made by :meth:`ExtendedInjector.let` (for ``describe``)."""
    record = klass.__dict__.get(_RECORD)
    return bool(record is not None and record.via_let)


def describe_declaration(declared: Any) -> str:
    """A short human-readable rendering of a declared value, for tables.

    Example:
        >>> from brevitas.inject import value, this
        >>> describe_declaration(value(lambda bit_width: bit_width))
        '@value <lambda>(bit_width)'
        >>> describe_declaration(this.bit_width)
        'this.bit_width'
        >>> describe_declaration(int)
        'int'
    """
    function = _value_function(declared)
    if function is not None:
        return f"@value {_function_label(function)}"
    if isinstance(declared, _This):
        parts = []
        for kind, symbol in getattr(declared, "__expression__", ()):
            parts.append(f".{symbol}" if kind == "." else f"[{symbol!r}]")
        return "this" + "".join(parts)
    if inspect.isclass(declared):
        return declared.__qualname__
    return repr(declared)
