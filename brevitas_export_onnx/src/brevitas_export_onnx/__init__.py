"""Brevitas exporter plugin: onnx.

Installed, it registers its exporters through the entry point ``onnx`` of the
group ``brevitas``.
"""

__all__: list[str] = []
