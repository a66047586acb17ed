"""Quant layers: ``torch.nn`` layers with quantizers.

Each layer subclasses its ``torch.nn`` counterpart and owns quantization
proxies (``weight_quant``, ``bias_quant``, ``input_quant``, ``output_quant``;
``act_quant`` for activations; ``trunc_quant`` for average pooling and
accumulators). Quantizers are configured with prefixed keywords
(``weight_bit_width=4``), replaced (``weight_quant=MyWeightQuant``), shared
(``weight_quant=other.weight_quant``) or disabled (``weight_quant=None``).
With every quantizer disabled a layer computes exactly what its ``torch.nn``
counterpart does. Outputs are plain tensors unless ``return_quant_tensor=True``.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantConv2d, QuantIdentity, QuantReLU
    >>> model = torch.nn.Sequential(QuantIdentity(bit_width=8), QuantConv2d(3, 6, 5, weight_bit_width=4),
    ...                             QuantReLU(bit_width=8))
    >>> model(torch.randn(1, 3, 32, 32)).shape
    torch.Size([1, 6, 28, 28])
"""

from brevitas.nn.hadamard_classifier import HadamardClassifier
from brevitas.nn.quant_accumulator import ClampQuantAccumulator, TruncQuantAccumulator
from brevitas.nn.quant_activation import QuantHardTanh, QuantIdentity, QuantReLU, QuantSigmoid, QuantTanh
from brevitas.nn.quant_avg_pool import QuantAdaptiveAvgPool2d, QuantAvgPool2d
from brevitas.nn.quant_bn import BatchNorm2dToQuantScaleBias
from brevitas.nn.quant_conv import QuantConv1d, QuantConv2d, QuantConv3d
from brevitas.nn.quant_convtranspose import QuantConvTranspose1d, QuantConvTranspose2d, QuantConvTranspose3d
from brevitas.nn.quant_dropout import QuantDropout
from brevitas.nn.quant_eltwise import QuantCat, QuantEltwiseAdd
from brevitas.nn.quant_layer import QuantLayerMixin, QuantNonLinearActLayer, QuantWeightBiasInputOutputLayer
from brevitas.nn.quant_linear import QuantLinear
from brevitas.nn.quant_max_pool import QuantMaxPool1d, QuantMaxPool2d
from brevitas.nn.quant_scale_bias import QuantScaleBias, ScaleBias
from brevitas.nn.quant_upsample import QuantUpsample
from brevitas.nn.utils import merge_bn, name_quant_layers

__all__ = [
    "BatchNorm2dToQuantScaleBias",
    "ClampQuantAccumulator",
    "HadamardClassifier",
    "QuantAdaptiveAvgPool2d",
    "QuantAvgPool2d",
    "QuantCat",
    "QuantConv1d",
    "QuantConv2d",
    "QuantConv3d",
    "QuantConvTranspose1d",
    "QuantConvTranspose2d",
    "QuantConvTranspose3d",
    "QuantDropout",
    "QuantEltwiseAdd",
    "QuantHardTanh",
    "QuantIdentity",
    "QuantLayerMixin",
    "QuantLinear",
    "QuantMaxPool1d",
    "QuantMaxPool2d",
    "QuantNonLinearActLayer",
    "QuantReLU",
    "QuantScaleBias",
    "QuantSigmoid",
    "QuantTanh",
    "QuantUpsample",
    "QuantWeightBiasInputOutputLayer",
    "ScaleBias",
    "TruncQuantAccumulator",
    "merge_bn",
    "name_quant_layers",
]
