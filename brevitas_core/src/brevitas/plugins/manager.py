"""Discovery and loading of plugins: a small facade over pluggy.

Entry points of the group ``brevitas`` are found with importlib-metadata and
loaded on the first registry lookup, never at ``import brevitas``. Each entry
point is loaded and registered in isolation: one that raises is recorded with
its name, distribution and error, and the others keep working.

Example:
    >>> from brevitas.plugins.manager import PluginManager
    >>> pm = PluginManager(entry_points=[])  # no discovery, for the example
    >>> pm.registry.names("scaling")
    []
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from brevitas import config
from brevitas.errors import DuplicateNameError, PluginError
from brevitas.plugins import hookspecs
from brevitas.plugins.registry import Registry, normalize

__all__ = ["ENTRY_POINT_GROUP", "FIRST_PARTY_DISTRIBUTIONS", "PluginInfo", "PluginManager"]

log = logging.getLogger("brevitas.plugins")

ENTRY_POINT_GROUP = "brevitas"

#: This repository's own plugin distributions: they load even with
#: ``BREVITAS_DISABLE_PLUGIN_AUTOLOAD=1``.
FIRST_PARTY_DISTRIBUTIONS = frozenset(
    {"brevitas-plugins", "brevitas-export-onnx", "brevitas-export-finn", "brevitas-export-pyxir"}
)

#: Which first-party distribution provides a name, so that looking it up
#: without the distribution installed says what to install.
PROVIDED_BY: dict[tuple[str, str], str] = {
    ("exporter", "torch-quantized"): "brevitas-plugins",
    ("exporter", "onnx-qcdq"): "brevitas-export-onnx",
    ("exporter", "onnx-qop"): "brevitas-export-onnx",
    ("exporter", "qonnx"): "brevitas-export-finn",
    ("exporter", "finn"): "brevitas-export-finn",
    ("exporter", "pyxir"): "brevitas-export-pyxir",
    ("exporter", "pyxir-dpuv1"): "brevitas-export-pyxir",
    ("exporter", "pyxir-dpuv2"): "brevitas-export-pyxir",
}


def _canonical_dist(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


@dataclass
class PluginInfo:
    """What ``brevitas plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    module: str
    status: str  # loaded | failed | blocked | disabled
    error: str = ""
    registered: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "status": self.status,
            "error": self.error,
            "registered": [{"kind": k, "name": n} for k, n in self.registered],
        }


class PluginManager:
    """Discovers, loads and registers plugins into one :class:`Registry`.

    Args:
        entry_points: the entry points to consider; ``None`` means discover the
            group ``brevitas`` through importlib-metadata at :meth:`load`.
    """

    def __init__(self, entry_points: Iterable[Any] | None = None) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self.registry = Registry()
        for (kind, name), dist in PROVIDED_BY.items():
            self.registry.hint(kind, name, dist)
        self.plugins: dict[str, PluginInfo] = {}
        self._entry_points = None if entry_points is None else list(entry_points)
        self._loaded = entry_points is not None and not self._entry_points

    # -- discovery -------------------------------------------------------
    @staticmethod
    def discover() -> list[Any]:
        """Entry points of the group ``brevitas``, first-party ones first."""
        import importlib_metadata

        eps = list(importlib_metadata.entry_points(group=ENTRY_POINT_GROUP))
        seen: set[tuple[str, str]] = set()
        unique = []
        for ep in eps:  # the same dist can appear twice on sys.path
            key = (ep.name, ep.value)
            if key not in seen:
                seen.add(key)
                unique.append(ep)

        def first_party(ep: Any) -> bool:
            dist = getattr(ep, "dist", None)
            return dist is not None and _canonical_dist(dist.name) in FIRST_PARTY_DISTRIBUTIONS

        return sorted(unique, key=lambda ep: (not first_party(ep), ep.name))

    @property
    def loaded(self) -> bool:
        """Whether discovery has run."""
        return self._loaded

    def load(self) -> None:
        """Load every entry point once; later calls do nothing."""
        if self._loaded:
            return
        self._loaded = True
        eps = self.discover() if self._entry_points is None else self._entry_points
        blocked = config.blocked_plugins()
        autoload_off = config.plugin_autoload_disabled()
        for ep in eps:
            self._load_entry_point(ep, blocked, autoload_off)

    def _load_entry_point(self, ep: Any, blocked: frozenset[str], autoload_off: bool) -> None:
        dist = getattr(ep, "dist", None)
        dist_name = dist.name if dist is not None else "?"
        version = dist.version if dist is not None else "?"
        info = PluginInfo(normalize(ep.name), dist_name, version, ep.value, "loaded")
        if info.name in self.plugins:
            info.status = "failed"
            info.error = (
                f"entry point name {info.name!r} is used by both {self.plugins[info.name].distribution!r} "
                f"and {dist_name!r}; the second was not loaded"
            )
            self.plugins[info.name + f" ({dist_name})"] = info
            log.warning("brevitas plugin %s: %s", info.name, info.error)
            return
        self.plugins[info.name] = info
        if info.name in blocked:
            info.status = "blocked"
            info.error = "listed in BREVITAS_PLUGINS_BLOCKED"
            self._note_unavailable(info, f"its plugin {info.name!r} is blocked by BREVITAS_PLUGINS_BLOCKED")
            return
        if autoload_off and _canonical_dist(dist_name) not in FIRST_PARTY_DISTRIBUTIONS:
            info.status = "disabled"
            info.error = "BREVITAS_DISABLE_PLUGIN_AUTOLOAD=1; register it with brevitas.plugins.register()"
            self._note_unavailable(info, f"its plugin {info.name!r} is disabled: {info.error}")
            return
        try:
            module = ep.load()
        except Exception as exc:
            self._fail(info, f"import failed: {type(exc).__name__}: {exc}", exc)
            return
        self._register_object(module, info)

    def _fail(self, info: PluginInfo, message: str, exc: BaseException | None) -> None:
        info.status = "failed"
        info.error = message
        self._note_unavailable(info, f"its plugin {info.name!r} failed: {message}")
        log.warning(
            "brevitas plugin %r from distribution %r failed and was skipped: %s", info.name, info.distribution, message
        )
        if exc is not None and config.verbose():
            log.warning("".join(traceback.format_exception(exc)))

    def _note_unavailable(self, info: PluginInfo, reason: str) -> None:
        if info.distribution not in ("?", "code"):
            self.registry.note_unavailable(_canonical_dist(info.distribution), reason)

    def _register_object(self, obj: Any, info: PluginInfo) -> None:
        try:
            self._pm.register(obj, name=info.name)
        except Exception as exc:
            self._fail(info, f"invalid plugin: {type(exc).__name__}: {exc}", exc)
            return
        staging = Registry()
        staging.current_provider = info.name
        impls = [i for i in self._pm.hook.brevitas_register.get_hookimpls() if i.plugin is obj]
        try:
            for impl in impls:
                impl.function(registry=staging)
            for entry in staging.entries():  # check every clash before committing any
                if (entry.kind, entry.name) in self.registry:
                    old = self.registry.entry(entry.kind, entry.name)
                    raise DuplicateNameError(
                        f"{entry.kind} {entry.name!r} is registered twice: first by {old.provider!r}, "
                        f"then by {info.name!r} ({info.distribution}). Rename one, or block one plugin with "
                        f"BREVITAS_PLUGINS_BLOCKED={info.name}."
                    )
        except Exception as exc:
            self._pm.unregister(obj)
            self._fail(info, f"registration failed: {type(exc).__name__}: {exc}", exc)
            return
        for entry in staging.entries():
            self.registry.add(
                entry.kind, entry.name, entry.impl, provider=info.name, description=entry.description, **entry.meta
            )
            info.registered.append((entry.kind, entry.name))
        info.status = "loaded"

    # -- explicit registration -------------------------------------------
    def register(self, obj: ModuleType | object, name: str | None = None) -> PluginInfo:
        """Register a plugin defined in code (a module or an object with hook implementations).

        Raises:
            PluginError: the plugin's registration failed (the registry is unchanged).
        """
        self.load()
        plugin_name = normalize(name or getattr(obj, "__name__", type(obj).__name__))
        if plugin_name in self.plugins and self.plugins[plugin_name].status == "loaded":
            raise PluginError(f"a plugin named {plugin_name!r} is already loaded; pass another name=")
        info = PluginInfo(plugin_name, "code", "-", getattr(obj, "__name__", type(obj).__name__), "loaded")
        self.plugins[plugin_name] = info
        self._register_object(obj, info)
        if info.status == "failed":
            raise PluginError(f"plugin {plugin_name!r} could not be registered: {info.error}")
        return info

    def failed(self) -> list[PluginInfo]:
        """Plugins whose import or registration failed."""
        return [p for p in self.plugins.values() if p.status == "failed"]
