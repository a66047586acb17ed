"""Brevitas exporter plugin: pyxir.

Installed, it registers its exporters through the entry point ``pyxir`` of the
group ``brevitas``.
"""

__all__: list[str] = []
