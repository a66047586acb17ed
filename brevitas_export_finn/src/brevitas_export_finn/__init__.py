"""Brevitas exporter plugin: finn.

Installed, it registers its exporters through the entry point ``finn`` of the
group ``brevitas``.
"""

__all__: list[str] = []
