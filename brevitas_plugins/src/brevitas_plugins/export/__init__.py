"""The PyTorch quantized exporter (``torch-quantized``) of the standard plugin.

- :mod:`brevitas_plugins.export.torch_quantized`: the exporter and the
  converter from a traced Brevitas model to a plain PyTorch program;
- :mod:`brevitas_plugins.export.modules`: the plain modules that program is
  built of (integer weights, quantize-clamp-dequantize).

Its ``register(registry)`` adds the exporter; the plugin's entry point calls it.
"""

from brevitas_plugins.export.torch_quantized import TorchQuantizedExporter, register

__all__ = ["TorchQuantizedExporter", "register"]
