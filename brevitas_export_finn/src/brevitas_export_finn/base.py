"""What the QONNX and FINN-ONNX dialects share: custom-op domain, datatype annotations, clean-up, qonnx runner.

:class:`CustomOpTranslator` extends the ONNX machinery of
``brevitas_export_onnx`` (:class:`~brevitas_export_onnx.translate.OnnxTranslator`)
with

- nodes in the domain ``qonnx.custom_op.general`` (:meth:`CustomOpTranslator.custom`),
  whose opset version the dialect sets (:attr:`CustomOpTranslator.domain_version`);
- ``finn_datatype`` annotations (:meth:`CustomOpTranslator.annotate`), written
  into ``graph.quantization_annotation``;
- a quantized graph input: when the example input is a valid
  :class:`~brevitas.quant_tensor.QuantTensor`, the graph takes its integer
  codes, annotated with their datatype, and dequantizes them
  (:meth:`CustomOpTranslator.dequantize_input`);
- the clean-up of :mod:`brevitas_export_finn.cleanup` on the result.

Both dialects default to a static batch (``dynamic_batch=False``): FINN and
qonnx's executor work on fixed shapes. :class:`QonnxRunExporter` runs a file
with qonnx's ``execute_onnx``, the consumer that proves both formats.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import onnx
import torch
import torch.fx
from torch import nn

from brevitas.export.base import Problem
from brevitas.export.description import QuantDescription, describe_quant_tensor
from brevitas.export.trace import TracedModel
from brevitas.quant_tensor import QuantTensor
from brevitas_export_finn.cleanup import cleanup
from brevitas_export_finn.datatypes import annotate, finn_datatype
from brevitas_export_onnx.exporter import OnnxExporter
from brevitas_export_onnx.graph import GraphBuilder
from brevitas_export_onnx.translate import OnnxTranslator, Ref

__all__ = ["DOMAIN", "AnnotatingGraphBuilder", "CustomOpTranslator", "QonnxRunExporter", "input_codes"]

#: the operator domain of Quant, BipolarQuant, Trunc, MultiThreshold and QuantAvgPool2d
DOMAIN = "qonnx.custom_op.general"


def input_codes(qt: QuantTensor) -> torch.Tensor:
    """The integer codes a graph with a quantized input takes: ``round(value / scale + zero_point)`` (float32).

    Example:
        >>> import torch
        >>> qt = QuantTensor(torch.tensor([0.5, -1.0]), torch.tensor(0.5), torch.tensor(0.0), torch.tensor(4.0), True)
        >>> input_codes(qt).tolist()
        [1.0, -2.0]
    """
    return torch.round(qt.value / qt.scale + qt.zero_point).to(torch.float32)


class AnnotatingGraphBuilder(GraphBuilder):
    """A :class:`~brevitas_export_onnx.graph.GraphBuilder` that remembers renames.

    :attr:`renames` maps each renamed tensor (graph outputs are renamed
    ``output``) to its new name, so that datatype annotations follow it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.renames: dict[str, str] = {}

    def rename(self, old: str, new: str) -> None:
        super().rename(old, new)
        self.renames[old] = new
        for key, value in list(self.renames.items()):
            if value == old:
                self.renames[key] = new

    def final_name(self, name: str) -> str:
        """The name ``name`` has in the built graph."""
        return self.renames.get(name, name)


class CustomOpTranslator(OnnxTranslator):
    """Base of the QONNX and FINN-ONNX translators (see the module doc).

    Args:
        traced: the traced model.
        opset_version: version of the default ONNX domain (default 13).
        dynamic_batch: make dimension 0 symbolic (default ``False``: FINN needs fixed shapes).
        options: dialect options.
    """

    dialect = "qonnx"
    MIN_OPSET = 13
    DEFAULT_OPSET = 13
    #: opset version of :data:`DOMAIN` the dialect declares (a subclass may raise it while translating)
    DOMAIN_VERSION: ClassVar[int] = 1

    def __init__(
        self,
        traced: TracedModel,
        opset_version: int | None = None,
        dynamic_batch: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(traced, opset_version=opset_version, dynamic_batch=dynamic_batch, **options)
        self.g: AnnotatingGraphBuilder = AnnotatingGraphBuilder(self.opset, self.g.name, self.g.domains)
        self.domain_version = self.DOMAIN_VERSION
        #: tensor name -> finn_datatype annotation
        self.datatypes: dict[str, str] = {}
        self._proxies: dict[int, nn.Module] = {}
        for calls in traced.calls.values():
            for call in calls:
                if call.description is not None:
                    self._proxies[id(call.description)] = call.proxy

    # ------------------------------------------------------------------ helpers
    def custom(self, op_type: str, inputs: list[str], hint: str, **attrs: Any) -> str:
        """Add a node of :data:`DOMAIN`; returns its output name."""
        return self.g.node(op_type, inputs, hint, domain=DOMAIN, **attrs)

    def annotate(self, name: str, datatype: str) -> str:
        """Record the ``finn_datatype`` of tensor ``name``; returns ``name``."""
        self.datatypes[name] = datatype
        return name

    def proxy_of(self, desc: QuantDescription) -> nn.Module | None:
        """The proxy whose call ``desc`` describes (``None`` when unknown)."""
        return self._proxies.get(id(desc))

    def ternary_threshold(self, desc: QuantDescription) -> float:
        """The threshold (fraction of the scale) of a ternary quantizer (0.5 when it declares none)."""
        proxy = self.proxy_of(desc)
        for source in (getattr(proxy, "tensor_quant", None), getattr(proxy, "quant_injector", None)):
            try:
                value = getattr(source, "threshold", None)
            except Exception:  # an injector that cannot resolve it
                value = None
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        return 0.5

    def scale_const(self, desc: QuantDescription, hint: str) -> str:
        """Initializer of ``desc``'s scale: a scalar per tensor, else broadcastable against the tensor."""
        scale = desc.flat_scale() if desc.is_per_tensor else desc.scale
        return self.g.const(scale.detach().to(torch.float32).cpu().numpy(), f"{hint}.scale")

    def zero_point_const(self, desc: QuantDescription, hint: str) -> str:
        """Initializer of ``desc``'s zero-point, shaped like :meth:`scale_const`."""
        zp = desc.flat_zero_point() if desc.is_per_tensor else desc.zero_point
        return self.g.const(zp.detach().to(torch.float32).cpu().numpy(), f"{hint}.zero_point")

    # ------------------------------------------------------------------ quantized graph input
    def graph_input(self, node: torch.fx.Node) -> Any:
        value = self.traced.values.get(node)
        if not isinstance(value, QuantTensor) or not value.is_valid:
            return super().graph_input(node)
        desc = describe_quant_tensor(value, role="act")
        assert desc is not None
        t = value.value
        name = self.g.input(str(node.target), np.float32, self.dims(t.shape))
        self.annotate(name, finn_datatype(desc))
        return Ref(self.dequantize_input(name, desc, str(node.target)), value)

    def dequantize_input(self, name: str, desc: QuantDescription, hint: str) -> str:
        """Float value of a graph input holding integer codes: ``(codes - zero_point) * scale``."""
        y = name
        if not desc.has_zero_zero_point:
            y = self.g.node("Sub", [y, self.zero_point_const(desc, hint)], hint)
        if not bool((desc.scale == 1).all()):
            y = self.g.node("Mul", [y, self.scale_const(desc, hint)], hint)
        return y

    # ------------------------------------------------------------------ result
    def finish(self) -> list[Problem]:
        self.g.use_domain(DOMAIN, self.domain_version)
        return super().finish()

    def translate(self) -> tuple[onnx.ModelProto | None, list[Problem]]:
        model, problems = super().translate()
        if model is None:
            return model, problems
        annotate(model, {self.g.final_name(name): dtype for name, dtype in self.datatypes.items()})
        cleanup(model)
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as exc:  # a clean-up bug: report it rather than write a broken file
            return None, [
                Problem(
                    "",
                    f"the cleaned-up {self.dialect} graph failed onnx.checker: {type(exc).__name__}: {exc}",
                    "report this with the model as a bug of the exporter",
                )
            ]
        return model, []


class QonnxRunExporter(OnnxExporter):
    """An ONNX exporter whose files run with qonnx's ``execute_onnx`` (its ``run``)."""

    consumer = "qonnx (execute_onnx)"

    def run(self, artifact: Any, *inputs: Any) -> list[Any]:  # type: ignore[override]
        """Run with qonnx's ``execute_onnx``; a QuantTensor input is fed as its integer codes."""
        from brevitas_export_finn.runtime import run

        return run(artifact, *inputs)
