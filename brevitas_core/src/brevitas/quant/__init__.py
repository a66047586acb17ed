"""Prebuilt quantizers, and the mixins and solver they are made of.

Import them from their module, as the original documentation does
(``from brevitas.quant.scaled_int import Int8WeightPerTensorFloat``), or
from here. Modules: :mod:`~brevitas.quant.base` (mixins),
:mod:`~brevitas.quant.scaled_int`, :mod:`~brevitas.quant.shifted_scaled_int`,
:mod:`~brevitas.quant.fixed_point`, :mod:`~brevitas.quant.binary`,
:mod:`~brevitas.quant.ternary`, and :mod:`~brevitas.quant.solver`.
``import brevitas`` does not import this package.

Example:
    >>> from brevitas.quant import Int8WeightPerTensorFloat
    >>> from brevitas.quant.scaled_int import Int8WeightPerTensorFloat as Same
    >>> Int8WeightPerTensorFloat is Same
    True
"""

from brevitas.quant.binary import (
    SignedBinaryActPerTensorConst,
    SignedBinaryActPerTensorFloat,
    SignedBinaryWeightPerTensorConst,
    SignedBinaryWeightPerTensorFloat,
)
from brevitas.quant.fixed_point import (
    Int8ActPerTensorFixedPoint,
    Int8BiasPerTensorFixedPointInternalScaling,
    Int8WeightPerTensorFixedPoint,
    Uint8ActPerTensorFixedPoint,
    Uint8ActPerTensorFixedPointMaxInit,
)
from brevitas.quant.scaled_int import (
    Int8ActPerTensorFloat,
    Int8ActPerTensorFloatMinMaxInit,
    Int8Bias,
    Int8BiasPerTensorFloatInternalScaling,
    Int8WeightPerChannelFloat,
    Int8WeightPerTensorFloat,
    Int16Bias,
    Int32Bias,
    IntBias,
    TruncTo8bit,
    Uint8ActPerTensorFloat,
    Uint8ActPerTensorFloatMaxInit,
)
from brevitas.quant.shifted_scaled_int import (
    ShiftedUint8ActPerTensorFloat,
    ShiftedUint8WeightPerChannelFloat,
    ShiftedUint8WeightPerTensorFloat,
)
from brevitas.quant.ternary import (
    SignedTernaryActPerTensorConst,
    SignedTernaryActPerTensorFloat,
    SignedTernaryWeightPerTensorConst,
    SignedTernaryWeightPerTensorFloat,
)

__all__ = [
    "Int8ActPerTensorFixedPoint",
    "Int8ActPerTensorFloat",
    "Int8ActPerTensorFloatMinMaxInit",
    "Int8Bias",
    "Int8BiasPerTensorFixedPointInternalScaling",
    "Int8BiasPerTensorFloatInternalScaling",
    "Int8WeightPerChannelFloat",
    "Int8WeightPerTensorFixedPoint",
    "Int8WeightPerTensorFloat",
    "Int16Bias",
    "Int32Bias",
    "IntBias",
    "ShiftedUint8ActPerTensorFloat",
    "ShiftedUint8WeightPerChannelFloat",
    "ShiftedUint8WeightPerTensorFloat",
    "SignedBinaryActPerTensorConst",
    "SignedBinaryActPerTensorFloat",
    "SignedBinaryWeightPerTensorConst",
    "SignedBinaryWeightPerTensorFloat",
    "SignedTernaryActPerTensorConst",
    "SignedTernaryActPerTensorFloat",
    "SignedTernaryWeightPerTensorConst",
    "SignedTernaryWeightPerTensorFloat",
    "TruncTo8bit",
    "Uint8ActPerTensorFixedPoint",
    "Uint8ActPerTensorFixedPointMaxInit",
    "Uint8ActPerTensorFloat",
    "Uint8ActPerTensorFloatMaxInit",
]
