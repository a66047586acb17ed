"""Tensor functions of quantization.

- :mod:`brevitas.function.ops`: integer ranges (:func:`max_int`,
  :func:`min_int`), :func:`tensor_clamp` (ordinary gradient), :func:`identity`.
- :mod:`brevitas.function.ste`: straight-through estimators
  (:func:`round_ste`, ..., :func:`make_ste` to build one, and the fused
  :func:`fake_quant_ste`).

Example:
    >>> import torch
    >>> from brevitas.function import max_int, round_ste
    >>> round_ste(torch.tensor([0.5, 1.5]))
    tensor([0., 2.])
    >>> max_int(True, False, torch.tensor(4.0))
    tensor(7.)
"""

from brevitas.function.ops import identity, max_int, min_int, tensor_clamp
from brevitas.function.ste import (
    abs_binary_sign_grad,
    binary_sign_ste,
    ceil_ste,
    dpu_round,
    dpu_round_ste,
    fake_quant_ste,
    floor_ste,
    make_ste,
    round_ste,
    round_to_zero_ste,
    scalar_clamp_min_ste,
    scalar_clamp_ste,
    tensor_clamp_ste,
    ternary_sign_ste,
)

__all__ = [
    "abs_binary_sign_grad",
    "binary_sign_ste",
    "ceil_ste",
    "dpu_round",
    "dpu_round_ste",
    "fake_quant_ste",
    "floor_ste",
    "identity",
    "make_ste",
    "max_int",
    "min_int",
    "round_ste",
    "round_to_zero_ste",
    "scalar_clamp_min_ste",
    "scalar_clamp_ste",
    "tensor_clamp",
    "tensor_clamp_ste",
    "ternary_sign_ste",
]
