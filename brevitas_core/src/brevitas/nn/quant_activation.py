"""Quantized activations: :class:`QuantReLU`, :class:`QuantSigmoid`, :class:`QuantTanh`,
:class:`QuantHardTanh`, :class:`QuantIdentity`.

Each computes its float activation, then quantizes the result with
``act_quant``. For compatibility with the original Brevitas, keywords
without a prefix configure ``act_quant`` (``QuantReLU(bit_width=4)``);
``input_*`` keywords configure the optional ``input_quant``.

Defaults: ``QuantReLU`` and ``QuantSigmoid`` use ``Uint8ActPerTensorFloat``,
``QuantTanh`` and ``QuantIdentity`` use ``Int8ActPerTensorFloat``,
``QuantHardTanh`` uses ``Int8ActPerTensorFloatMinMaxInit`` (pass ``min_val``
and ``max_val``).

Example:
    >>> import torch
    >>> from brevitas.nn import QuantReLU
    >>> act = QuantReLU(bit_width=4, return_quant_tensor=True)
    >>> out = act(torch.randn(2, 8))
    >>> int(out.bit_width), out.signed, bool((out.int() >= 0).all() and (out.int() <= 15).all())
    (4, False, True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brevitas.inject import defines, is_injector
from brevitas.nn.quant_layer import QuantNonLinearActLayer
from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8ActPerTensorFloatMinMaxInit, Uint8ActPerTensorFloat

__all__ = ["QuantHardTanh", "QuantIdentity", "QuantReLU", "QuantSigmoid", "QuantTanh"]


def _plain_act_init(torch_act: type[nn.Module], default_act_quant: Any) -> Callable[..., None]:
    """The constructor of ``Quant<torch_act>``, for a ``torch.nn`` activation built without arguments."""

    def __init__(
        self: QuantNonLinearActLayer,
        act_quant: Any = default_act_quant,
        input_quant: Any = None,
        return_quant_tensor: bool = False,
        **kwargs: Any,
    ) -> None:
        torch_act.__init__(self)
        self._init_nlal(act_quant, input_quant, return_quant_tensor, kwargs)

    __init__.__qualname__ = f"Quant{torch_act.__name__}.__init__"
    return __init__


class QuantReLU(QuantNonLinearActLayer, nn.ReLU):
    """``torch.nn.ReLU`` followed by ``act_quant`` (default ``Uint8ActPerTensorFloat``).

    Example:
        >>> import torch
        >>> torch.equal(QuantReLU(act_quant=None)(torch.tensor([-1.0, 2.0])), torch.tensor([0.0, 2.0]))
        True
    """

    passthrough_act = True

    __init__ = _plain_act_init(nn.ReLU, Uint8ActPerTensorFloat)

    def act_forward(self, x: Tensor) -> Tensor:
        return torch.relu(x)


class QuantSigmoid(QuantNonLinearActLayer, nn.Sigmoid):
    """``torch.nn.Sigmoid`` followed by ``act_quant`` (default ``Uint8ActPerTensorFloat``).

    Example:
        >>> import torch
        >>> QuantSigmoid(bit_width=4)(torch.zeros(1)).shape
        torch.Size([1])
    """

    __init__ = _plain_act_init(nn.Sigmoid, Uint8ActPerTensorFloat)

    def act_forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x)


class QuantTanh(QuantNonLinearActLayer, nn.Tanh):
    """``torch.nn.Tanh`` followed by ``act_quant`` (default ``Int8ActPerTensorFloat``).

    Example:
        >>> import torch
        >>> QuantTanh()(torch.zeros(1)).shape
        torch.Size([1])
    """

    __init__ = _plain_act_init(nn.Tanh, Int8ActPerTensorFloat)

    def act_forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x)


class QuantHardTanh(QuantNonLinearActLayer, nn.Hardtanh):
    """``torch.nn.Hardtanh`` followed by ``act_quant`` (default ``Int8ActPerTensorFloatMinMaxInit``).

    ``min_val`` and ``max_val`` set both the float clamp and the quantizer's
    range. When not given, the quantizer's own ``min_val`` / ``max_val`` are
    used, else ``torch.nn.Hardtanh``'s defaults ``-1.0`` and ``1.0``.

    Example:
        >>> import torch
        >>> act = QuantHardTanh(min_val=-1.0, max_val=1.0, return_quant_tensor=True)
        >>> out = act(torch.tensor([-3.0, 0.5, 3.0]))
        >>> out.value.tolist()[0], out.value.tolist()[2] <= 1.0
        (-1.0, True)
    """

    passthrough_act = True

    def __init__(
        self,
        act_quant: Any = Int8ActPerTensorFloatMinMaxInit,
        input_quant: Any = None,
        return_quant_tensor: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs = dict(kwargs)
        bounds = {}
        for name, default in (("min_val", -1.0), ("max_val", 1.0)):
            if name in kwargs or f"act_{name}" in kwargs:
                bounds[name] = kwargs.get(name, kwargs.get(f"act_{name}"))
            elif defines(act_quant, name):
                bounds[name] = getattr(act_quant, name)
            else:  # the range of torch.nn.Hardtanh, given to the quantizer too
                bounds[name] = default
                if is_injector(act_quant):
                    kwargs[name] = default
        nn.Hardtanh.__init__(self, float(bounds["min_val"]), float(bounds["max_val"]))
        self._init_nlal(act_quant, input_quant, return_quant_tensor, kwargs)

    def act_forward(self, x: Tensor) -> Tensor:
        return F.hardtanh(x, self.min_val, self.max_val)


class QuantIdentity(QuantNonLinearActLayer, nn.Identity):
    """Quantizes its input with ``act_quant`` (default ``Int8ActPerTensorFloat``); no activation.

    Typically the first layer of a model, so the next layer receives a
    quantized input.

    Example:
        >>> import torch
        >>> qi = QuantIdentity(bit_width=8, return_quant_tensor=True)
        >>> out = qi(torch.randn(3, 4))
        >>> int(out.bit_width), out.signed
        (8, True)
    """

    passthrough_act = True

    def __init__(
        self,
        act_quant: Any = Int8ActPerTensorFloat,
        return_quant_tensor: bool = False,
        **kwargs: Any,
    ) -> None:
        nn.Identity.__init__(self)
        self._init_nlal(act_quant, None, return_quant_tensor, kwargs)
