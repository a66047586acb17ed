"""Batch norm as a quantized scale-bias: :class:`BatchNorm2dToQuantScaleBias`.

In inference a 2-d batch norm is ``x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps))``.
This layer is a :class:`~brevitas.nn.QuantScaleBias` that loads a
``BatchNorm2d`` ``state_dict`` (``weight``, ``bias``, ``running_mean``,
``running_var``, ``num_batches_tracked``) by folding it into that form.

Example:
    >>> import torch
    >>> from brevitas.nn import BatchNorm2dToQuantScaleBias
    >>> bn = torch.nn.BatchNorm2d(3).eval()
    >>> with torch.no_grad():
    ...     _ = bn.running_mean.uniform_(-1, 1)
    ...     _ = bn.running_var.uniform_(0.5, 2)
    >>> sb = BatchNorm2dToQuantScaleBias(3, weight_quant=None)
    >>> _ = sb.load_state_dict(bn.state_dict())
    >>> x = torch.randn(2, 3, 4, 4)
    >>> torch.allclose(sb(x), bn(x), atol=1e-6)
    True
"""

from __future__ import annotations

from typing import Any

import torch

from brevitas.nn.quant_scale_bias import QuantScaleBias
from brevitas.quant.scaled_int import Int8WeightPerTensorFloat

__all__ = ["BatchNorm2dToQuantScaleBias"]

_BN_ONLY = ("running_mean", "running_var", "num_batches_tracked")


class BatchNorm2dToQuantScaleBias(QuantScaleBias):
    """A :class:`~brevitas.nn.QuantScaleBias` that loads ``BatchNorm2d`` checkpoints.

    Args:
        num_features: number of channels.
        eps: the batch norm's epsilon.
        weight_quant, bias_quant, input_quant, output_quant, return_quant_tensor,
            **kwargs: as for :class:`~brevitas.nn.QuantScaleBias`.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        weight_quant: Any = Int8WeightPerTensorFloat,
        bias_quant: Any = None,
        input_quant: Any = None,
        output_quant: Any = None,
        return_quant_tensor: bool = False,
        **kwargs: Any,
    ) -> None:
        self.eps = eps
        QuantScaleBias.__init__(
            self, num_features, True, weight_quant, bias_quant, input_quant, output_quant,
            return_quant_tensor, **kwargs,
        )  # fmt: skip

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        mean_key, var_key = prefix + "running_mean", prefix + "running_var"
        if mean_key in state_dict and var_key in state_dict:
            weight_key, bias_key = prefix + "weight", prefix + "bias"
            mean, var = state_dict[mean_key], state_dict[var_key]
            gamma = state_dict.get(weight_key, torch.ones_like(mean))
            beta = state_dict.get(bias_key, torch.zeros_like(mean))
            inv_std = torch.rsqrt(var + self.eps)
            state_dict[weight_key] = gamma * inv_std
            state_dict[bias_key] = beta - mean * gamma * inv_std
            for key in _BN_ONLY:
                state_dict.pop(prefix + key, None)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
