"""Brevitas exporter plugin: PyXIR-flavoured ONNX for the Vitis-AI DPU.

Installed, it registers the exporters ``pyxir`` (alias ``pyxir-dpuv1``) and
``pyxir-dpuv2`` through the entry point ``pyxir`` of the group ``brevitas``.
Modules: :mod:`.contract` (the attribute contract), :mod:`.constraints` (what
the DPU accepts from a quantizer), :mod:`.translate` (the translators),
:mod:`.exporter` (the exporters) and :mod:`.executor` (the executor of the
contract that ``run`` uses).
"""

__all__: list[str] = []
