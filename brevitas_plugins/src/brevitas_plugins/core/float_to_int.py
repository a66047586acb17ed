"""Float-to-integer conversion with straight-through gradients, and clamps.

Registry kind ``float_to_int`` (``FloatToIntImplType``):

- ``round``: :class:`RoundSte`, half to even (``torch.round``, as ONNX);
- ``ceil``: :class:`CeilSte`;
- ``floor``: :class:`FloorSte`;
- ``round_to_zero``: :class:`RoundToZeroSte` (``torch.trunc``);
- ``dpu``: :class:`DPURoundSte`, half toward +inf (Vitis-AI DPU).

Every one has an identity gradient. ``rounding_mode`` names the rounding for
exporters (``ROUND``, ``CEIL``, ``FLOOR``, ``ROUND_TO_ZERO``, ``DPU``).

The clamps used by the integer quantizers live here too (they are not
registered under a kind; the solver provides :class:`TensorClamp` as
``tensor_clamp_impl``):

- :class:`TensorClamp`: ``forward(x, min_val, max_val)``, gradient blocked
  outside the range;
- :class:`TensorClampSte`: same forward, gradient passed straight through.

Example:
    >>> import torch
    >>> from brevitas_plugins.core.float_to_int import DPURoundSte, RoundSte
    >>> x = torch.tensor([-2.5, -0.5, 0.5, 2.5])
    >>> RoundSte()(x)
    tensor([-2., -0.,  0.,  2.])
    >>> DPURoundSte()(x)
    tensor([-2., -0.,  1.,  3.])
"""

from __future__ import annotations

from torch import Tensor

from brevitas.core.base import QuantBlock
from brevitas.core.float_to_int import FloatToInt
from brevitas.function.ops import tensor_clamp
from brevitas.function.ste import (
    ceil_ste,
    dpu_round_ste,
    floor_ste,
    round_ste,
    round_to_zero_ste,
    tensor_clamp_ste,
)
from brevitas.plugins.registry import Registry

__all__ = [
    "CeilSte",
    "DPURoundSte",
    "FloorSte",
    "RoundSte",
    "RoundToZeroSte",
    "TensorClamp",
    "TensorClampSte",
    "register",
]


class RoundSte(FloatToInt):
    """Round half to even (as ONNX ``Round``), identity gradient.

    Example:
        >>> import torch
        >>> RoundSte()(torch.tensor([0.5, 1.5, -1.5]))
        tensor([ 0.,  2., -2.])
    """

    rounding_mode = "ROUND"

    def forward(self, x: Tensor) -> Tensor:
        return round_ste(x)


class CeilSte(FloatToInt):
    """Round up, identity gradient.

    Example:
        >>> import torch
        >>> CeilSte()(torch.tensor([0.1, -0.9]))
        tensor([1., -0.])
    """

    rounding_mode = "CEIL"

    def forward(self, x: Tensor) -> Tensor:
        return ceil_ste(x)


class FloorSte(FloatToInt):
    """Round down, identity gradient (drops LSBs in truncation).

    Example:
        >>> import torch
        >>> FloorSte()(torch.tensor([0.9, -0.1]))
        tensor([ 0., -1.])
    """

    rounding_mode = "FLOOR"

    def forward(self, x: Tensor) -> Tensor:
        return floor_ste(x)


class RoundToZeroSte(FloatToInt):
    """Round toward zero, identity gradient.

    Example:
        >>> import torch
        >>> RoundToZeroSte()(torch.tensor([1.9, -1.9]))
        tensor([ 1., -1.])
    """

    rounding_mode = "ROUND_TO_ZERO"

    def forward(self, x: Tensor) -> Tensor:
        return round_to_zero_ste(x)


class DPURoundSte(FloatToInt):
    """Round half toward +inf (``floor(x + 0.5)``), as the Vitis-AI DPU; identity gradient.

    Example:
        >>> import torch
        >>> DPURoundSte()(torch.tensor([-1.5, 1.5, 1.4]))
        tensor([-1.,  2.,  1.])
    """

    rounding_mode = "DPU"

    def forward(self, x: Tensor) -> Tensor:
        return dpu_round_ste(x)


class TensorClamp(QuantBlock):
    """``forward(x, min_val, max_val)``: clamp with tensor bounds, gradient blocked outside.

    The bounds receive the gradient of the clamped values (see
    :func:`brevitas.function.ops.tensor_clamp`), which is how a learned
    bit-width learns from saturation.

    Example:
        >>> import torch
        >>> TensorClamp()(torch.tensor([-5.0, 5.0]), torch.tensor(-1.0), torch.tensor(2.0))
        tensor([-1.,  2.])
    """

    def forward(self, x: Tensor, min_val: Tensor, max_val: Tensor) -> Tensor:
        return tensor_clamp(x, min_val, max_val)


class TensorClampSte(QuantBlock):
    """``forward(x, min_val, max_val)``: clamp with tensor bounds, identity gradient to ``x``.

    Example:
        >>> import torch
        >>> x = torch.tensor([-5.0, 5.0], requires_grad=True)
        >>> TensorClampSte()(x, torch.tensor(-1.0), torch.tensor(2.0)).sum().backward()
        >>> x.grad
        tensor([1., 1.])
    """

    def forward(self, x: Tensor, min_val: Tensor, max_val: Tensor) -> Tensor:
        return tensor_clamp_ste(x, min_val, max_val)


def register(registry: Registry) -> None:
    """Add the ``float_to_int`` names: ``round``, ``ceil``, ``floor``, ``round_to_zero``, ``dpu``."""
    registry.add("float_to_int", "round", RoundSte, description="round half to even, straight-through gradient")
    registry.add("float_to_int", "ceil", CeilSte, description="ceil, straight-through gradient")
    registry.add("float_to_int", "floor", FloorSte, description="floor, straight-through gradient")
    registry.add(
        "float_to_int", "round_to_zero", RoundToZeroSte, description="round toward zero, straight-through gradient"
    )
    registry.add("float_to_int", "dpu", DPURoundSte, description="round half up (Vitis-AI DPU), straight-through")
