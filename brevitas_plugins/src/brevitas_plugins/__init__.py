"""The standard Brevitas plugin: the algorithms behind every built-in enum name.

Installed, it registers itself through the entry point ``standard`` of the
group ``brevitas``; nothing imports it by name.

Example:
    >>> from brevitas.plugins import get_registry
    >>> "int" in get_registry().names("tensor_quant")
    True
"""

__all__: list[str] = []
