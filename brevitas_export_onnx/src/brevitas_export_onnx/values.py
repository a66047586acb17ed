"""What the ONNX translation passes around: graph tensors, folded constants, and the failure it raises.

Example:
    >>> import torch
    >>> Ref("x", torch.zeros(2, 3)).shape
    (2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from brevitas.export.base import Problem
from brevitas.export.trace import tensor_value

__all__ = ["Const", "Ref", "Unsupported"]


class Unsupported(Exception):
    """Raised inside a translation: the node cannot be translated; carries one or more :class:`Problem` s."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)

    @property
    def problem(self) -> Problem:
        """The first problem."""
        return self.problems[0]


@dataclass(frozen=True)
class Ref:
    """A tensor of the ONNX graph under construction and its example value in PyTorch.

    Attributes:
        name: the ONNX tensor name (a float tensor holding the dequantized value).
        example: what the PyTorch model computed for it (tensor or QuantTensor).
    """

    name: str
    example: Any

    @property
    def value(self) -> Tensor:
        """The example as a plain tensor."""
        return tensor_value(self.example)

    @property
    def shape(self) -> tuple[int, ...]:
        """The example's shape."""
        return tuple(self.value.shape)

    @property
    def rank(self) -> int:
        """The example's rank."""
        return self.value.dim()


@dataclass(frozen=True)
class Const:
    """A node whose value does not depend on the graph inputs (folded to an initializer when used)."""

    value: Any
