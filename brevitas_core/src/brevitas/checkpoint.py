"""Loading checkpoints into quantized models.

A quantized model's ``state_dict`` holds the float layers' tensors plus the
quantizers' state (learned scales, runtime statistics, learned bit-widths).
Three situations:

- **Quantized checkpoint into the same quantized model**: plain
  ``model.load_state_dict(sd)``; the round trip is exact.
- **Float checkpoint into a quantized model** (re-training from a float
  model): the quantizers' keys are missing. :func:`load_float_state_dict`
  loads it, ignoring exactly those keys, and the weight quantizers re-derive
  their statistics from the loaded weights. Setting
  ``BREVITAS_IGNORE_MISSING_KEYS=1`` (read by
  :func:`brevitas.config.ignore_missing_keys`) makes plain
  ``model.load_state_dict(sd)`` behave the same way;
  :func:`ignore_missing_quant_keys` does it for a block of code.
- Anything else wrong (a key the model does not have, a missing float
  weight, a tensor of the wrong shape) still fails, with a
  :class:`~brevitas.errors.CheckpointError` naming the keys.

Whole models pickle too: ``torch.save(model, path)`` and
``torch.load(path, weights_only=False)``.

Example:
    >>> import torch
    >>> from brevitas.nn import QuantLinear
    >>> from brevitas.checkpoint import load_float_state_dict
    >>> float_model = torch.nn.Linear(4, 2)
    >>> quant_model = QuantLinear(4, 2, bias=True, weight_bit_width=4)
    >>> _ = load_float_state_dict(quant_model, float_model.state_dict())
    >>> torch.equal(quant_model.weight, float_model.weight)
    True
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from torch import Tensor, nn

from brevitas import config
from brevitas.errors import CheckpointError

__all__ = [
    "ignore_missing_quant_keys",
    "load_float_state_dict",
    "load_state_dict",
    "quant_keys_ignored",
    "quant_state_keys",
]

_LOCAL = threading.local()


def quant_keys_ignored() -> bool:
    """Whether missing quantizer keys are ignored right now.

    True with ``BREVITAS_IGNORE_MISSING_KEYS=1`` or inside
    :func:`ignore_missing_quant_keys`.

    Example:
        >>> with ignore_missing_quant_keys():
        ...     quant_keys_ignored()
        True
    """
    return getattr(_LOCAL, "depth", 0) > 0 or config.ignore_missing_keys()


@contextlib.contextmanager
def ignore_missing_quant_keys() -> Iterator[None]:
    """Within the block, ``load_state_dict`` does not report quantizer keys as missing.

    Only keys belonging to quantization proxies are ignored: a missing float
    weight is still reported. Nestable and thread-local.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantReLU
        >>> act = QuantReLU()
        >>> with ignore_missing_quant_keys():
        ...     act.load_state_dict({})
        <All keys matched successfully>
    """
    _LOCAL.depth = getattr(_LOCAL, "depth", 0) + 1
    try:
        yield
    finally:
        _LOCAL.depth -= 1


def quant_state_keys(model: nn.Module) -> list[str]:
    """The ``state_dict`` keys that belong to quantizers (what a float checkpoint lacks).

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> quant_state_keys(QuantLinear(2, 2, bias=False, weight_quant=None))
        []
    """
    from brevitas.proxy.base import QuantProxy

    prefixes = [name + "." for name, m in model.named_modules(remove_duplicate=False) if isinstance(m, QuantProxy)]
    return [k for k in model.state_dict() if any(k.startswith(p) for p in prefixes)]


def _load(model: nn.Module, state_dict: Mapping[str, Any], strict: bool, what: str) -> Any:
    from brevitas.nn.utils import name_quant_layers

    name_quant_layers(model)
    try:
        return model.load_state_dict(state_dict, strict=strict)
    except CheckpointError:
        raise
    except RuntimeError as exc:
        raise CheckpointError(
            f"cannot load {what} into {type(model).__name__}: {exc}\n"
            f"Keys must match the model's state_dict() names and shapes; quantizer keys may be absent "
            f"(load_float_state_dict ignores them), any other difference is an error."
        ) from exc


def load_float_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], strict: bool = True) -> Any:
    """Load a float checkpoint into a quantized model.

    The quantizers' keys may be missing (they are, in a checkpoint of the
    float model); weight quantizers whose scale comes from statistics of the
    weights re-derive it from the loaded weights. Quantizer keys that *are*
    present are loaded.

    Args:
        model: the quantized model.
        state_dict: the float model's ``state_dict()``.
        strict: as in ``nn.Module.load_state_dict``, for every other key.

    Returns:
        The ``(missing_keys, unexpected_keys)`` named tuple of ``load_state_dict``.

    Raises:
        CheckpointError: a float key is missing, a key is unexpected, or a
            tensor has the wrong shape; the message names each.

    Example:
        >>> import torch
        >>> from brevitas.nn import QuantConv2d
        >>> conv = QuantConv2d(1, 1, 1)
        >>> load_float_state_dict(conv, {"weight": torch.ones(1, 1, 1, 1)})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        brevitas.errors.CheckpointError: cannot load a float checkpoint into QuantConv2d: ...
    """
    with ignore_missing_quant_keys():
        return _load(model, state_dict, strict, "a float checkpoint")


def load_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], strict: bool = True) -> Any:
    """``model.load_state_dict`` raising :class:`~brevitas.errors.CheckpointError` on mismatches.

    Quantizer keys must be present (unless ``BREVITAS_IGNORE_MISSING_KEYS=1``);
    use :func:`load_float_state_dict` for float checkpoints.

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> a, b = QuantLinear(2, 2, bias=False), QuantLinear(2, 2, bias=False)
        >>> load_state_dict(b, a.state_dict())
        <All keys matched successfully>
    """
    return _load(model, state_dict, strict, "the checkpoint")
