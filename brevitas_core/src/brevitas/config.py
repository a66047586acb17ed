"""Settings read from the environment, in one place.

Every environment variable Brevitas honours is read here, at call time, so a
test or a user can change it with ``os.environ`` (or ``monkeypatch.setenv``)
without re-importing anything.

Example:
    >>> import os
    >>> from brevitas import config
    >>> os.environ["BREVITAS_PLUGINS_BLOCKED"] = "Foo, bar"
    >>> sorted(config.blocked_plugins())
    ['bar', 'foo']
    >>> del os.environ["BREVITAS_PLUGINS_BLOCKED"]
"""

from __future__ import annotations

import os

__all__ = [
    "ENV_DISABLE_PLUGIN_AUTOLOAD",
    "ENV_IGNORE_MISSING_KEYS",
    "ENV_JIT",
    "ENV_PLUGINS_BLOCKED",
    "ENV_VERBOSE",
    "blocked_plugins",
    "ignore_missing_keys",
    "jit_enabled",
    "plugin_autoload_disabled",
    "verbose",
]

ENV_JIT = "BREVITAS_JIT"
ENV_VERBOSE = "BREVITAS_VERBOSE"
ENV_IGNORE_MISSING_KEYS = "BREVITAS_IGNORE_MISSING_KEYS"
ENV_DISABLE_PLUGIN_AUTOLOAD = "BREVITAS_DISABLE_PLUGIN_AUTOLOAD"
ENV_PLUGINS_BLOCKED = "BREVITAS_PLUGINS_BLOCKED"

_TRUE = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() in _TRUE


def jit_enabled() -> bool:
    """``BREVITAS_JIT=1``: compile the quantizers with ``torch.compile``."""
    return _flag(ENV_JIT)


def verbose() -> bool:
    """``BREVITAS_VERBOSE=1``: log plugin discovery and compilation decisions."""
    return _flag(ENV_VERBOSE)


def ignore_missing_keys() -> bool:
    """``BREVITAS_IGNORE_MISSING_KEYS=1``: quantizer state absent from a loaded
    ``state_dict`` (a float checkpoint) is not reported as missing."""
    return _flag(ENV_IGNORE_MISSING_KEYS)


def plugin_autoload_disabled() -> bool:
    """``BREVITAS_DISABLE_PLUGIN_AUTOLOAD=1``: only this repository's own
    distributions are loaded from entry points."""
    return _flag(ENV_DISABLE_PLUGIN_AUTOLOAD)


def blocked_plugins() -> frozenset[str]:
    """``BREVITAS_PLUGINS_BLOCKED=a,b``: entry-point names never imported."""
    raw = os.environ.get(ENV_PLUGINS_BLOCKED, "")
    return frozenset(p.strip().lower() for p in raw.split(",") if p.strip())
