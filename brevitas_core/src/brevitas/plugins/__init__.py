"""The plugin system: hook marker, registry access and explicit registration.

Plugins are found through the entry-point group ``brevitas`` the first time
the registry is used (``import brevitas`` loads none). See
:mod:`brevitas.plugins.hookspecs` for the hooks and
:mod:`brevitas.plugins.registry` for the registry.

Example:
    >>> import types
    >>> from brevitas.plugins import hookimpl, register, get_registry
    >>> plugin = types.ModuleType("doc_example_plugin")
    >>> @hookimpl
    ... def brevitas_register(registry):
    ...     registry.add("scaling", "doc_example", object)
    >>> plugin.brevitas_register = brevitas_register
    >>> info = register(plugin)
    >>> get_registry().get("scaling", "doc_example") is object
    True
    >>> unregister("doc_example_plugin")
"""

from __future__ import annotations

from typing import Any

import pluggy

from brevitas.plugins.hookspecs import PROJECT_NAME
from brevitas.plugins.registry import KINDS, ByRole, Registry

__all__ = [
    "KINDS",
    "ByRole",
    "Registry",
    "get_registry",
    "hookimpl",
    "lookup",
    "plugin_manager",
    "provider_of",
    "register",
    "reset",
    "unregister",
]

#: Marker for hook implementations in plugin modules.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

_MANAGER = None


def plugin_manager() -> Any:
    """The process-wide :class:`~brevitas.plugins.manager.PluginManager` (plugins loaded)."""
    global _MANAGER
    if _MANAGER is None:
        from brevitas.plugins.manager import PluginManager

        _MANAGER = PluginManager()
    _MANAGER.load()
    return _MANAGER


def get_registry() -> Registry:
    """The registry, loading the plugins on first use."""
    return plugin_manager().registry


def lookup(kind: str, name: str) -> Any:
    """Shorthand for ``get_registry().get(kind, name)``."""
    return get_registry().get(kind, name)


def provider_of(component: Any) -> str | None:
    """Who provided ``component`` (a class or instance), for error messages; ``None`` if not registered.

    Reads the registry only when plugins are already loaded (never triggers
    discovery), so it is safe on any error path. The answer reads like
    ``"scaling 'lsq' of plugin 'lsq' (distribution 'brevitas-lsq' 1.0)"``.

    Example:
        >>> import types
        >>> plugin = types.ModuleType("doc_provider_plugin")
        >>> class DocScaling: ...
        >>> @hookimpl
        ... def brevitas_register(registry):
        ...     registry.add("scaling", "doc_provided", DocScaling)
        >>> plugin.brevitas_register = brevitas_register
        >>> _ = register(plugin)
        >>> provider_of(DocScaling())
        "scaling 'doc_provided' of plugin 'doc_provider_plugin' (registered in code)"
        >>> unregister("doc_provider_plugin")
    """
    if _MANAGER is None:
        return None
    entries = _MANAGER.registry.entries_of(component)
    if not entries and not isinstance(component, type):
        entries = _MANAGER.registry.entries_of(type(component))
    if not entries:
        return None
    entry = entries[0]
    info = _MANAGER.plugins.get(entry.provider)
    where = f"plugin {entry.provider!r}"
    if info is not None and info.distribution == "code":
        where += " (registered in code)"
    elif info is not None:
        where += f" (distribution {info.distribution!r} {info.version})"
    return f"{entry.kind} {entry.name!r} of {where}"


def register(obj: Any, name: str | None = None) -> Any:
    """Register a plugin defined in code; returns its ``PluginInfo``.

    Use this for plugins that are not installed as a distribution, or when
    ``BREVITAS_DISABLE_PLUGIN_AUTOLOAD=1`` keeps third-party entry points from
    loading.
    """
    return plugin_manager().register(obj, name)


def unregister(name: str) -> None:
    """Remove a plugin registered in code and everything it registered."""
    pm = plugin_manager()
    info = pm.plugins.pop(name.lower(), None)
    if info is None:
        return
    for kind, entry_name in info.registered:
        pm.registry.remove(kind, entry_name)
    plugin = pm._pm.get_plugin(info.name)
    if plugin is not None:
        pm._pm.unregister(plugin)


def reset() -> None:
    """Forget every loaded plugin; the next lookup discovers again (tests)."""
    global _MANAGER
    _MANAGER = None
