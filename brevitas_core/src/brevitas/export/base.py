"""The exporter interface and the problems a check reports.

An exporter is registered under a name (registry kind ``exporter``) and
implements four things: ``check`` (every reason the model cannot be exported,
without exporting), ``export`` (the artifact, in memory), ``save`` (write it)
and ``run`` (execute an artifact with its real consumer, for verification).

Example:
    >>> from brevitas.export.base import Problem
    >>> print(Problem("features.0", "needs 8-bit activations", "use Int8ActPerTensorFixedPoint"))
    features.0: needs 8-bit activations. Fix: use Int8ActPerTensorFixedPoint
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from brevitas.errors import ExportError

__all__ = ["ExportCheckError", "Exporter", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One reason a model cannot be exported.

    Attributes:
        layer: qualified name of the offending module (``""`` for the model).
        constraint: what the target requires that the layer does not meet.
        fix: what to change, e.g. the quantizer that would satisfy it.
    """

    layer: str
    constraint: str
    fix: str = ""

    def __str__(self) -> str:
        where = self.layer or "<model>"
        return f"{where}: {self.constraint}" + (f". Fix: {self.fix}" if self.fix else "")


class ExportCheckError(ExportError):
    """The model does not meet the exporter's constraints; ``problems`` lists each."""

    def __init__(self, exporter: str, problems: Sequence[Problem]) -> None:
        self.exporter = exporter
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"cannot export to {exporter!r}: {len(self.problems)} problem(s)\n{lines}")


class Exporter(abc.ABC):
    """Base class of export backends.

    Subclasses set ``name`` (the registry name), ``suffix`` (the file suffix),
    ``consumer`` (what runs the result, e.g. ``"onnxruntime"``) and implement
    the abstract methods. Options given to :func:`brevitas.export.export` are
    passed to ``check`` and ``export`` as keyword arguments.
    """

    name: str = ""
    suffix: str = ".onnx"
    consumer: str = ""
    description: str = ""

    @abc.abstractmethod
    def check(self, model: nn.Module, args: tuple[Any, ...], **options: Any) -> list[Problem]:
        """Every problem preventing export (empty when exportable)."""

    @abc.abstractmethod
    def export(self, model: nn.Module, args: tuple[Any, ...], **options: Any) -> Any:
        """The exported artifact, in memory. Called only when ``check`` found nothing."""

    @abc.abstractmethod
    def save(self, artifact: Any, path: Path) -> None:
        """Write ``artifact`` to ``path`` (the caller makes it atomic)."""

    @abc.abstractmethod
    def run(self, artifact: Any, *inputs: Any) -> list[Any]:
        """Execute ``artifact`` (in memory or a path) with the real consumer; outputs as numpy arrays."""
