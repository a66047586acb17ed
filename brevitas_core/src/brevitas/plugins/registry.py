"""The registry: implementations keyed by ``(kind, name)``.

Plugins never touch module globals: their ``brevitas_register`` hook receives
a :class:`Registry` and calls :meth:`Registry.add`. The rest of Brevitas looks
implementations up by kind and name (enums are names, see
``brevitas.inject.enum``), so a third-party implementation registered as
``("scaling", "lsq")`` is usable wherever a built-in one is.

Example:
    >>> from brevitas.plugins.registry import Registry
    >>> reg = Registry()
    >>> class MyScaling: ...
    >>> reg.add("scaling", "My_Scaling", MyScaling, provider="example")
    >>> reg.get("scaling", "my_scaling") is MyScaling
    True
    >>> reg.names("scaling")
    ['my_scaling']
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from brevitas.errors import DuplicateNameError, UnknownNameError

__all__ = [
    "KINDS",
    "ByRole",
    "Entry",
    "Registry",
    "normalize",
]

#: The kinds of DESIGN.md section 2, with what an implementation of each is.
KINDS: dict[str, str] = {
    "scaling": "scale factor module (ScalingImplType)",
    "bit_width": "bit-width module (BitWidthImplType)",
    "zero_point": "zero-point module (ZeroPointImplType)",
    "restrict_value": "restriction of a learned value, e.g. power of two (RestrictValueType)",
    "stats_op": "statistic over a tensor (StatsOp)",
    "float_to_int": "rounding with its straight-through estimator (FloatToIntImplType)",
    "tensor_quant": "quantizer returning (value, scale, zero_point, bit_width) (QuantType)",
    "exporter": "export backend (brevitas.export)",
    # collaborators no enum names, found by the solver (docs/engine.md)
    "int_quant": "integer fake-quantization block wrapped by a tensor quantizer",
    "int_scaling": "divisor of the threshold for a bit-width (e.g. 2**(b-1)-1)",
    "tensor_clamp": "clamp to the integer range, with its gradient rule",
    "stats_view": "how a tensor is viewed before statistics (per tensor, per channel)",
}

#: Roles a component can be solved for; see :class:`ByRole`.
ROLES = ("weight", "bias", "act", "trunc")


def normalize(name: str) -> str:
    """Registry names are lower-case; ``-`` and ``_`` are kept as given.

    Accepts ``str`` enums too (their value is their name).
    """
    if not isinstance(name, str):
        raise TypeError(f"a registry name must be a string, got {type(name).__name__}: {name!r}")
    return str(name.value if hasattr(name, "value") else name).strip().lower()


@dataclass(frozen=True)
class ByRole:
    """One registered name that solves to a different component per tensor role.

    ``QuantType.BINARY`` is a sign quantizer for weights but a clamped one for
    activations; register ``ByRole(default=BinaryQuant, act=ClampedBinaryQuant)``.

    Example:
        >>> r = ByRole(default=int, act=float)
        >>> r.resolve("weight"), r.resolve("act")
        (<class 'int'>, <class 'float'>)
    """

    default: Any = None
    weight: Any = None
    bias: Any = None
    act: Any = None
    trunc: Any = None

    def resolve(self, role: str | None) -> Any:
        """The component for ``role`` (one of ``weight``, ``bias``, ``act``, ``trunc``)."""
        if role is not None and role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        chosen = getattr(self, role) if role else None
        return self.default if chosen is None else chosen

    def candidates(self) -> list[Any]:
        """Every distinct component this entry may solve to."""
        out: list[Any] = []
        for value in (self.default, self.weight, self.bias, self.act, self.trunc):
            if value is not None and value not in out:
                out.append(value)
        return out


@dataclass
class Entry:
    """One registered implementation and where it came from."""

    kind: str
    name: str
    impl: Any
    provider: str
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Registry:
    """Implementations keyed by ``(kind, name)``.

    Names are compared case-insensitively. Registering the same key twice
    raises :class:`~brevitas.errors.DuplicateNameError` naming both providers.
    Looking up an unknown key raises :class:`~brevitas.errors.UnknownNameError`
    listing what is registered for that kind.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], Entry] = {}
        #: name -> distribution known to provide it when installed, for hints
        self._hints: dict[tuple[str, str], str] = {}
        #: distribution -> why its installed plugin registered nothing, for hints
        self._unavailable: dict[str, str] = {}
        #: set by the plugin manager while a plugin registers
        self.current_provider: str = "code"

    # -- writing ---------------------------------------------------------
    def add(
        self,
        kind: str,
        name: str,
        impl: Any,
        *,
        provider: str | None = None,
        description: str = "",
        **meta: Any,
    ) -> None:
        """Register ``impl`` as ``name`` of ``kind``.

        Args:
            kind: one of :data:`KINDS` (other kinds are accepted for
                third-party extension, lower-cased).
            name: the name users write (enum value or free string).
            impl: a class, a :class:`ByRole`, or any object the kind expects.
            provider: who registers it; defaults to the plugin being loaded.
            description: one line shown by ``brevitas plugins`` and ``describe``.

        Raises:
            DuplicateNameError: ``(kind, name)`` is already registered.
        """
        key = (normalize(kind), normalize(name))
        provider = provider or self.current_provider
        if key in self._entries:
            old = self._entries[key]
            raise DuplicateNameError(
                f"{key[0]} {key[1]!r} is registered twice: first by {old.provider!r}, "
                f"then by {provider!r}. Rename one of them, or block one plugin with "
                f"BREVITAS_PLUGINS_BLOCKED."
            )
        self._entries[key] = Entry(key[0], key[1], impl, provider, description, dict(meta))

    def hint(self, kind: str, name: str, distribution: str) -> None:
        """Record that ``distribution`` provides ``(kind, name)`` when installed."""
        self._hints[(normalize(kind), normalize(name))] = distribution

    def note_unavailable(self, distribution: str, reason: str) -> None:
        """Record that ``distribution`` is installed but its plugin registered nothing, and why.

        Looking up a name it provides then says so instead of "pip install".

        Example:
            >>> reg = Registry()
            >>> reg.hint("exporter", "mine", "my-dist")
            >>> reg.note_unavailable("my-dist", "its plugin 'mine' failed: boom")
            >>> "which is installed but its plugin 'mine' failed" in reg._unknown_message("exporter", "mine")
            True
        """
        self._unavailable[distribution] = reason

    def remove(self, kind: str, name: str) -> None:
        """Forget ``(kind, name)`` (tests, or a plugin unloading itself)."""
        self._entries.pop((normalize(kind), normalize(name)), None)

    # -- reading ---------------------------------------------------------
    def __contains__(self, key: tuple[str, str]) -> bool:
        kind, name = key
        return (normalize(kind), normalize(name)) in self._entries

    def entry(self, kind: str, name: str) -> Entry:
        """The :class:`Entry` for ``(kind, name)``.

        Raises:
            UnknownNameError: nothing is registered under that key; the message
                lists the registered names of ``kind``, the closest match, and the
                distribution to install when one is known to provide it.
        """
        key = (normalize(kind), normalize(name))
        try:
            return self._entries[key]
        except KeyError:
            raise UnknownNameError(self._unknown_message(*key)) from None

    def get(self, kind: str, name: str) -> Any:
        """The implementation registered as ``(kind, name)`` (see :meth:`entry`)."""
        return self.entry(kind, name).impl

    def names(self, kind: str) -> list[str]:
        """Sorted names registered for ``kind``."""
        k = normalize(kind)
        return sorted(n for (kk, n) in self._entries if kk == k)

    def kinds(self) -> list[str]:
        """Sorted kinds that have at least one entry."""
        return sorted({k for (k, _) in self._entries})

    def entries(self, kind: str | None = None) -> Iterator[Entry]:
        """Every entry, or those of one kind, in registration order."""
        k = normalize(kind) if kind is not None else None
        for entry in self._entries.values():
            if k is None or entry.kind == k:
                yield entry

    def by_provider(self, provider: str) -> list[Entry]:
        """What one provider registered."""
        return [e for e in self._entries.values() if e.provider == provider]

    def entries_of(self, impl: Any) -> list[Entry]:
        """The entries whose implementation is ``impl`` (directly or as a :class:`ByRole` candidate).

        Used on error paths to say which plugin provided a failing component.

        Example:
            >>> reg = Registry()
            >>> reg.add("scaling", "mine", int, provider="p")
            >>> [(e.kind, e.name, e.provider) for e in reg.entries_of(int)]
            [('scaling', 'mine', 'p')]
        """
        out = []
        for entry in self._entries.values():
            impl_ = entry.impl
            if impl_ is impl or (isinstance(impl_, ByRole) and any(c is impl for c in impl_.candidates())):
                out.append(entry)
        return out

    def _unknown_message(self, kind: str, name: str) -> str:
        known = self.names(kind)
        msg = f"unknown {kind} {name!r}."
        if known:
            msg += f" Registered {kind} names: {', '.join(known)}."
            close = difflib.get_close_matches(name, known, n=1)
            if close:
                msg += f" Did you mean {close[0]!r}?"
        else:
            msg += f" Nothing is registered for kind {kind!r}."
            if kind not in KINDS:
                msg += f" Known kinds: {', '.join(KINDS)}."
        dist = self._hints.get((kind, name))
        if dist and dist in self._unavailable:
            msg += f" {name!r} is provided by {dist}, which is installed but {self._unavailable[dist]}."
        elif dist:
            msg += f" {name!r} is provided by the distribution {dist!r}: pip install {dist}."
        return msg
