"""Graph mode: quantize an existing float model, calibrate it, correct its biases, inspect it.

The post-training quantization flow::

    from brevitas.graph import QuantConfig, Rule, bias_correction_mode, calibration_mode, quantize, report

    qmodel = quantize(float_model.eval(), QuantConfig(weight_bit_width=4,
                                                      rules=[Rule(name=["conv1", "fc"], weight_bit_width=8)]))
    with calibration_mode(qmodel):           # activation statistics, no gradient
        for x, _ in calibration_batches:
            qmodel(x)
    with bias_correction_mode(qmodel):       # bias shift caused by quantization
        for x, _ in calibration_batches:
            qmodel(x)
    print(report(qmodel, example_input))     # per layer: quantizers, bit-widths, scales, exporters
    # then brevitas.export.export(qmodel, example_input, exporter=...), or fine-tune (QAT)

- :func:`quantize` (:mod:`brevitas.graph.quantize`): trace with ``torch.fx``
  and replace layers, activations, additions and concatenations by quant layers;
- :class:`QuantConfig`, :class:`Rule` (:mod:`brevitas.graph.config`):
  quantizers per kind of layer, overridden by name pattern (mixed precision);
- :func:`trace`, :class:`UntraceableModelError` (:mod:`brevitas.graph.tracer`);
- :class:`calibration_mode`, :class:`bias_correction_mode` (:mod:`brevitas.graph.calibrate`);
- :func:`report` (:mod:`brevitas.graph.report`).

Example:
    >>> import torch
    >>> mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> q = quantize(mlp.eval())
    >>> with calibration_mode(q):
    ...     _ = q(torch.randn(32, 4, 4))
    >>> [lay.name for lay in report(q)]
    ['input_quant', '1', '2', '3']
"""

from brevitas.graph.calibrate import Calibratable, bias_correction_mode, calibratable_components, calibration_mode
from brevitas.graph.config import KINDS, QuantConfig, Rule, Site
from brevitas.graph.quantize import quantize
from brevitas.graph.report import LayerReport, ModelReport, QuantizerReport, report
from brevitas.graph.tracer import GraphTracer, UntraceableModelError, trace

__all__ = [
    "KINDS",
    "Calibratable",
    "GraphTracer",
    "LayerReport",
    "ModelReport",
    "QuantConfig",
    "QuantizerReport",
    "Rule",
    "Site",
    "UntraceableModelError",
    "bias_correction_mode",
    "calibratable_components",
    "calibration_mode",
    "quantize",
    "report",
    "trace",
]
