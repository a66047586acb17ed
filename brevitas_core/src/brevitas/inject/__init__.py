"""Quantizers as injectors: attributes resolved by name.

A quantizer is a class deriving from :class:`ExtendedInjector` (also
importable as :class:`BaseInjector`, the name the original documentation
uses). Its attributes are resolved by name when accessed: a class attribute
that is a class is instantiated with its constructor arguments taken from the
other attributes, a :class:`value` function is called the same way (and the
class it returns, if any, is built too). ``Q.let(**overrides)`` derives a
quantizer with some attributes replaced. See ``docs/engine.md`` for the
attribute names the engine uses.

Failures raise :class:`brevitas.errors.InjectionError` (an ``AttributeError``)
naming the quantizer, the missing attribute, the component that needed it and
the close names the quantizer does define. An exception raised inside a
component keeps its type (a bad bit-width stays a ``ConfigError``) and its
message starts with the quantizer and the component.

Example:
    >>> from brevitas.inject import BaseInjector as Injector
    >>> from brevitas.inject import value
    >>> class Clamp:
    ...     def __init__(self, min_val, max_val):
    ...         self.range = (min_val, max_val)
    >>> class Q(Injector):
    ...     min_val = -1.0
    ...     max_val = 1.0
    ...     clamp_impl = Clamp
    ...     @value
    ...     def width(min_val, max_val):
    ...         return max_val - min_val
    >>> Q.clamp_impl.range, Q.width
    ((-1.0, 1.0), 2.0)
    >>> Q.let(max_val=3.0).width
    4.0
"""

from brevitas.inject._adapter import (
    BaseInjector,
    ExtendedInjector,
    declared_attributes,
    defines,
    is_injector,
    this,
    value,
)

__all__ = [
    "BaseInjector",
    "ExtendedInjector",
    "declared_attributes",
    "defines",
    "is_injector",
    "this",
    "value",
]
