"""The exception hierarchy of Brevitas.

Every error the library raises on purpose derives from :class:`BrevitasError`,
so user code can catch the library's failures in one place. Each subclass also
derives from the built-in exception a Python user would expect (``ValueError``
for a bad value, ``LookupError`` for an unknown name, ...), so existing
``except ValueError`` blocks keep working.

Example:
    >>> from brevitas.errors import BrevitasError, UnknownNameError
    >>> issubclass(UnknownNameError, BrevitasError)
    True
"""

from __future__ import annotations

__all__ = [
    "BrevitasError",
    "CheckpointError",
    "ConfigError",
    "DuplicateNameError",
    "ExportError",
    "InjectionError",
    "PluginError",
    "QuantTensorError",
    "RegistryError",
    "UnknownNameError",
    "add_context",
]


class BrevitasError(Exception):
    """Root of every error Brevitas raises on purpose."""


class ConfigError(BrevitasError, ValueError):
    """A quantizer or layer option has a value that cannot work (e.g. a 0-bit width)."""


class RegistryError(BrevitasError):
    """Base class of the registry's errors."""


class UnknownNameError(RegistryError, LookupError):
    """A name was looked up in the registry and nothing is registered under it."""


class DuplicateNameError(RegistryError, ValueError):
    """Two providers tried to register the same ``(kind, name)``."""


class PluginError(BrevitasError):
    """A plugin failed to import, to register, or inside one of its components."""


class InjectionError(BrevitasError, AttributeError):
    """A quantizer could not be assembled from its declaration.

    Derives from ``AttributeError`` because it is raised while resolving a
    quantizer attribute, so ``hasattr`` and ``getattr(q, name, default)`` keep
    their usual meaning.
    """


class QuantTensorError(BrevitasError, ValueError):
    """An operation on QuantTensors would produce wrong metadata."""


class ExportError(BrevitasError):
    """A model cannot be exported to the requested target."""


class CheckpointError(BrevitasError, RuntimeError):
    """A checkpoint cannot be loaded into a model."""


def add_context(exc: BaseException, context: str) -> None:
    """Put ``context`` in front of ``exc``'s message, in place, keeping its type and traceback.

    For exceptions whose message is not their single string argument, the
    context becomes a note (shown in the traceback). Used on error paths to
    say where an error raised by third-party code came from.

    Example:
        >>> err = ValueError("bad value")
        >>> add_context(err, "in weight_quant of QuantConv2d 'conv1'")
        >>> str(err)
        "in weight_quant of QuantConv2d 'conv1': bad value"
    """
    before = str(exc)
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        exc.args = (f"{context}: {exc.args[0]}",)
    if str(exc) == before:
        exc.add_note(context)
