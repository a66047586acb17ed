"""Model-level helpers for quant layers: folding batch norms and naming layers.

- :func:`merge_bn` folds a ``BatchNorm`` into the weight and bias of the
  convolution or linear layer before it, and re-derives the weight
  quantizer's statistics from the folded weight.
- :func:`name_quant_layers` records each quant layer's qualified name, so
  error messages say which layer failed (``QuantConv2d 'features.0'``).

Example:
    >>> import torch
    >>> from brevitas.nn import QuantConv2d
    >>> from brevitas.nn.utils import merge_bn
    >>> conv, bn = QuantConv2d(2, 3, 1, weight_quant=None), torch.nn.BatchNorm2d(3).eval()
    >>> x = torch.randn(1, 2, 4, 4)
    >>> ref = bn(conv(x))
    >>> merge_bn(conv, bn)
    >>> torch.allclose(conv(x), ref, atol=1e-6)
    True
"""

from __future__ import annotations

import torch
from torch import nn

from brevitas.errors import ConfigError

__all__ = ["merge_bn", "name_quant_layers"]


def name_quant_layers(model: nn.Module) -> None:
    """Record on every quant layer of ``model`` its qualified name (used in error messages).

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantReLU
        >>> model = torch.nn.Sequential(QuantReLU())
        >>> name_quant_layers(model)
        >>> model[0]._brevitas_name
        '0'
    """
    from brevitas.nn.quant_layer import QuantLayerMixin

    for name, module in model.named_modules():
        if isinstance(module, QuantLayerMixin) and name:
            module._brevitas_name = name


def _output_channel_dim(layer: nn.Module) -> int:
    if isinstance(layer, nn.modules.conv._ConvTransposeNd):
        return 1
    return 0


def merge_bn(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm, output_channel_dim: int | None = None) -> None:
    """Fold ``bn`` (in its inference form, running statistics) into ``layer``'s weight and bias.

    ``layer(x)`` then equals ``bn(layer(x))`` with ``bn`` in eval mode (for a
    grouped transposed convolution, per group). A missing bias is created.
    The weight keeps its identity (an optimizer holding it keeps working),
    and quantizers whose scale comes from weight statistics are rebuilt.

    Args:
        layer: a convolution, transposed convolution or linear layer (quant or float).
        bn: the batch norm that follows it.
        output_channel_dim: the weight axis of the output channels (default:
            1 for transposed convolutions, 0 otherwise).

    Raises:
        ConfigError: the channel counts of ``layer`` and ``bn`` differ, or
            ``bn`` has no running statistics.
    """
    dim = _output_channel_dim(layer) if output_channel_dim is None else output_channel_dim
    weight = layer.weight
    mean, var = bn.running_mean, bn.running_var
    if mean is None or var is None:
        raise ConfigError(
            f"merge_bn: {type(bn).__name__} has no running statistics (track_running_stats=False); "
            f"only a batch norm with running_mean and running_var can be folded"
        )
    groups = getattr(layer, "groups", 1) if dim == 1 else 1
    channels = weight.shape[dim] * groups
    if channels != mean.numel():
        raise ConfigError(
            f"merge_bn: {type(layer).__name__} has {channels} output channels but {type(bn).__name__} has "
            f"{mean.numel()}; fold a batch norm into the layer that produces its input"
        )
    with torch.no_grad():
        gamma = bn.weight if bn.weight is not None else torch.ones_like(mean)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(mean)
        mul = gamma * torch.rsqrt(var + bn.eps)
        shape = [1] * weight.dim()
        shape[dim] = weight.shape[dim]
        weight_mul = mul.reshape(groups, -1)[0] if groups > 1 else mul
        if groups > 1 and not torch.equal(mul.reshape(groups, -1), weight_mul.expand(groups, -1)):
            raise ConfigError(
                "merge_bn: a grouped transposed convolution shares its weight columns between groups, so a batch "
                "norm with different statistics per group cannot be folded into it"
            )
        weight.mul_(weight_mul.reshape(shape).to(weight.dtype))
        if layer.bias is None:
            layer.bias = nn.Parameter((beta - mean * mul).to(weight.dtype))
        else:
            layer.bias.copy_((layer.bias - mean) * mul + beta)
    for attr in ("weight_quant", "bias_quant"):
        proxy = getattr(layer, attr, None)
        if proxy is not None and hasattr(proxy, "init_tensor_quant"):
            proxy.init_tensor_quant()
