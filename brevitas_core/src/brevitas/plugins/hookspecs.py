"""Hook specifications of the ``brevitas`` plugin system.

A plugin is a module named by an entry point of the group ``brevitas``::

    [project.entry-points.brevitas]
    my_plugin = "my_package.brevitas_plugin"

whose functions are marked with :data:`brevitas.plugins.hookimpl` and named
like the specifications below. Plugins contribute through the registry object
they are handed; they never mutate module globals.

Example plugin module:

    >>> from brevitas.plugins import hookimpl
    >>> @hookimpl
    ... def brevitas_register(registry):
    ...     registry.add("scaling", "my_scaling", object, description="demo")
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from brevitas.plugins.registry import Registry

__all__ = ["PROJECT_NAME", "brevitas_register", "hookspec"]

#: pluggy project name; markers must use the same one.
PROJECT_NAME = "brevitas"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def brevitas_register(registry: Registry) -> None:
    """Add implementations to the registry.

    Called once per plugin, when the registry is first used (discovery is
    lazy). Every implementation is added with ``registry.add(kind, name,
    impl)``; the kinds are listed in :data:`brevitas.plugins.registry.KINDS`.
    Whatever one plugin adds is committed only if its whole hook succeeds and
    none of its names clashes with another plugin's, so a failing plugin leaves
    nothing half-registered.

    Args:
        registry: the registry to add to. Its ``current_provider`` is the
            plugin's entry-point name.

    Returns:
        Nothing; every implementation of this hook is called (no first-result).
    """
