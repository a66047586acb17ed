"""Describe a quantizer: every option, its value, who set it, what it solves to.

``describe(Q)`` lists every attribute a quantizer declares through its whole
class hierarchy (private names excluded), the value it holds, the class that
set it (``Q.let()`` for overrides given by keyword, e.g. by a layer or a
proxy), and, for options that name a registered component (an enum member,
or a string where an enum is expected), the component the registry maps the
name to. Nothing is built: it reads declarations only, so it also works on a
quantizer that cannot be built yet.

``brevitas.describe`` is this module's :func:`describe`.

Example:
    >>> from brevitas.quantizer_info import describe
    >>> from brevitas.inject import ExtendedInjector
    >>> from brevitas.plugins.registry import Registry
    >>> class Base(ExtendedInjector):
    ...     bit_width = 8
    ...     scaling_impl_type = "stats"
    >>> class Q(Base):
    ...     bit_width = 4
    >>> registry = Registry()
    >>> registry.add("scaling", "stats", dict, provider="demo")
    >>> print(describe(Q, registry=registry))
    Quantizer Q
    option             value    defined in  solves to
    -----------------  -------  ----------  -----------
    bit_width          4        Q
    scaling_impl_type  'stats'  Base        dict [demo]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from brevitas.errors import BrevitasError, UnknownNameError
from brevitas.inject._adapter import declared_attributes, describe_declaration, is_injector, made_by_let
from brevitas.inject.enum import ATTRIBUTE_ENUMS, NameEnum
from brevitas.plugins.registry import ByRole, Registry

__all__ = ["DescriptionRow", "QuantizerDescription", "describe"]

_MAX_VALUE_WIDTH = 60
_HEADERS = ("option", "value", "defined in", "solves to")


@dataclass(frozen=True)
class DescriptionRow:
    """One option of a quantizer.

    Attributes:
        name: the attribute name.
        value: the declared value (a class, a ``@value`` declaration, an enum
            member, a plain value ...), as written.
        defined_in: name of the class that set it; ``Name.let()`` for an
            override made with ``let``.
        solves_to: for enum-like options, the registered component and its
            provider, or ``unresolved: <why>``; empty otherwise.
    """

    name: str
    value: Any
    defined_in: str
    solves_to: str = ""

    @property
    def value_text(self) -> str:
        """The value rendered on one short line."""
        return _render(self.value)


@dataclass
class QuantizerDescription:
    """What :func:`describe` returns: ``rows`` sorted by name, printable as a table."""

    quantizer: str
    rows: list[DescriptionRow] = field(default_factory=list)

    def row(self, name: str) -> DescriptionRow:
        """The row of option ``name``.

        Raises:
            UnknownNameError: the quantizer declares no such option.
        """
        for row in self.rows:
            if row.name == name:
                return row
        known = ", ".join(r.name for r in self.rows) or "none"
        raise UnknownNameError(f"quantizer {self.quantizer} declares no option {name!r}; its options: {known}")

    def __contains__(self, name: object) -> bool:
        return any(row.name == name for row in self.rows)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: ``{"quantizer": ..., "options": [{name, value, defined_in, solves_to}, ...]}``."""
        return {
            "quantizer": self.quantizer,
            "options": [
                {"name": r.name, "value": r.value_text, "defined_in": r.defined_in, "solves_to": r.solves_to}
                for r in self.rows
            ],
        }

    def __str__(self) -> str:
        table = [_HEADERS] + [(r.name, r.value_text, r.defined_in, r.solves_to) for r in self.rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(_HEADERS))]
        lines = [f"Quantizer {self.quantizer}"]
        for n, line in enumerate(table):
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
            if n == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)


def describe(quantizer: Any, *, registry: Registry | None = None) -> QuantizerDescription:
    """Every option of ``quantizer``, its value, the class that set it and what it solves to.

    Args:
        quantizer: a quantizer class (an ``ExtendedInjector`` subclass).
        registry: where enum names are looked up; defaults to
            ``brevitas.plugins.get_registry()`` (loading the plugins), and is
            only consulted when an option names a registered component.

    Returns:
        A :class:`QuantizerDescription`; ``print`` it for a table.

    Raises:
        ConfigError: ``quantizer`` is not a quantizer class.
    """
    declared = declared_attributes(quantizer)
    role = declared.get("quant_role", (None, None))[0]
    role = role if isinstance(role, str) else None
    getter = _registry_getter(registry)
    rows = []
    for name in sorted(declared):
        if name.startswith("_"):
            continue
        val, owner = declared[name]
        defined_in = f"{owner.__name__}.let()" if made_by_let(owner) else owner.__name__
        rows.append(DescriptionRow(name, val, defined_in, _solves_to(name, val, role, getter)))
    return QuantizerDescription(quantizer.__name__, rows)


def _registry_getter(registry: Registry | None) -> Callable[[], Registry]:
    cache: list[Registry] = [] if registry is None else [registry]

    def get() -> Registry:
        if not cache:
            from brevitas.plugins import get_registry

            cache.append(get_registry())
        return cache[0]

    return get


def _solves_to(name: str, declared: Any, role: str | None, get_registry: Callable[[], Registry]) -> str:
    if isinstance(declared, NameEnum):
        kind = type(declared).kind
    elif isinstance(declared, str) and name in ATTRIBUTE_ENUMS:
        kind = ATTRIBUTE_ENUMS[name].kind
    else:
        return ""
    try:
        registry = get_registry()
    except (ImportError, BrevitasError) as exc:
        return f"unresolved: the registry is unavailable ({exc})"
    try:
        entry = registry.entry(kind, declared)
    except UnknownNameError as exc:
        return f"unresolved: {exc}"
    impl = entry.impl
    if isinstance(impl, ByRole):
        if role is not None:
            try:
                text = _component_name(impl.resolve(role))
            except ValueError as exc:
                return f"unresolved: {exc}"
        else:
            text = "by role: " + ", ".join(
                f"{r}={_component_name(getattr(impl, r))}"
                for r in ("default", "weight", "bias", "act", "trunc")
                if getattr(impl, r) is not None
            )
    else:
        text = _component_name(impl)
    return f"{text} [{entry.provider}]"


def _component_name(impl: Any) -> str:
    return getattr(impl, "__qualname__", None) or repr(impl)


def _render(val: Any) -> str:
    if isinstance(val, NameEnum):
        text = f"{type(val).__name__}.{val.name}"
    elif is_injector(val):
        text = f"quantizer {val.__name__}"
    elif _is_tensor(val):
        text = f"{type(val).__name__}{tuple(val.shape)}"
    elif isinstance(val, (list, tuple)) and val and all(_is_tensor(v) for v in val):
        text = f"{type(val).__name__} of {len(val)} tensors"
    else:
        rendered = describe_declaration(val).strip()
        text = rendered.splitlines()[0] if rendered else repr(val)
    if len(text) > _MAX_VALUE_WIDTH:
        text = text[: _MAX_VALUE_WIDTH - 3] + "..."
    return text


def _is_tensor(val: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(val, torch.Tensor)
