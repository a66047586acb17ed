"""Brevitas exporter plugin for FINN: the ``qonnx`` and ``finn`` exporters.

Installed, it registers its exporters through the entry point ``finn`` of the
group ``brevitas``; they are used by name::

    brevitas.export.export(model, example, exporter="qonnx", path="model.onnx")
    brevitas.export.export(model, example, exporter="finn", path="model_finn.onnx")

Modules (importing this package loads none of them):

- :mod:`brevitas_export_finn.qonnx`: QONNX (``Quant``, ``BipolarQuant``, ``Trunc``);
- :mod:`brevitas_export_finn.finn`: FINN-ONNX (integer weights, ``MultiThreshold``,
  ``QuantAvgPool2d``, ``finn_datatype`` annotations) and its checks;
- :mod:`brevitas_export_finn.base`: what both share (custom-op domain,
  quantized graph input, clean-up);
- :mod:`brevitas_export_finn.thresholds`: exact ``MultiThreshold`` thresholds;
- :mod:`brevitas_export_finn.datatypes`: datatype names and annotations;
- :mod:`brevitas_export_finn.cleanup`: graph clean-up;
- :mod:`brevitas_export_finn.runtime`: running files with qonnx's ``execute_onnx``.

Example:
    >>> import brevitas.export as bx
    >>> {"qonnx", "finn"} <= set(bx.exporters())
    True
"""

__all__: list[str] = []
