"""Proxies: the modules between a layer and its quantizers.

A proxy wraps one quantizer declaration for one tensor role and returns
:class:`~brevitas.quant_tensor.QuantTensor` s:

- :class:`WeightQuantProxy` (``layer.weight_quant``), :class:`BiasQuantProxy`
  (``layer.bias_quant``);
- :class:`ActQuantProxy` (``act_quant``, ``input_quant``, ``output_quant``);
- :class:`TruncQuantProxy` (``trunc_quant``), :class:`ClampQuantProxy` (``clamp_quant``).

The names of the original Brevitas (``WeightQuantProxyFromInjector`` ...) are
aliases.

Example:
    >>> from brevitas.nn import QuantConv2d
    >>> from brevitas.proxy import WeightQuantProxy
    >>> isinstance(QuantConv2d(1, 1, 1).weight_quant, WeightQuantProxy)
    True
"""

from brevitas.proxy.base import QuantProxy, describe_layer, iter_proxies, make_quant_tensor
from brevitas.proxy.parameter_quant import BiasQuantProxy, WeightQuantProxy
from brevitas.proxy.runtime_quant import ActQuantProxy, ClampQuantProxy, TruncQuantProxy

#: original Brevitas names
WeightQuantProxyFromInjector = WeightQuantProxy
BiasQuantProxyFromInjector = BiasQuantProxy
ActQuantProxyFromInjector = ActQuantProxy
TruncQuantProxyFromInjector = TruncQuantProxy
ClampQuantProxyFromInjector = ClampQuantProxy

__all__ = [
    "ActQuantProxy",
    "ActQuantProxyFromInjector",
    "BiasQuantProxy",
    "BiasQuantProxyFromInjector",
    "ClampQuantProxy",
    "ClampQuantProxyFromInjector",
    "QuantProxy",
    "TruncQuantProxy",
    "TruncQuantProxyFromInjector",
    "WeightQuantProxy",
    "WeightQuantProxyFromInjector",
    "describe_layer",
    "iter_proxies",
    "make_quant_tensor",
]
