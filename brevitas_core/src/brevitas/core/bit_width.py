"""Interface of bit-width blocks (registry kind ``bit_width``) and ``BitWidthConst``.

Example:
    >>> from brevitas.core.bit_width import BitWidthConst
    >>> BitWidthConst(bit_width=4)()
    tensor(4.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from brevitas.core.base import QuantBlock
from brevitas.errors import ConfigError

__all__ = ["BitWidthConst", "BitWidthImpl", "validate_bit_width"]


def validate_bit_width(bit_width: object, *, name: str = "bit_width", minimum: int = 1, maximum: int = 32) -> int:
    """Check that a constant bit-width is an integer in ``[minimum, maximum]``.

    Raises:
        ConfigError: naming the value given and what is accepted.
    """
    if isinstance(bit_width, Tensor):
        if bit_width.numel() != 1:
            raise ConfigError(f"{name} must be a single integer, got a tensor of shape {tuple(bit_width.shape)}")
        bit_width = bit_width.item()
    if isinstance(bit_width, bool) or not isinstance(bit_width, (int, float)):
        raise ConfigError(f"{name} must be an integer, got {type(bit_width).__name__} {bit_width!r}")
    if float(bit_width) != int(bit_width):
        raise ConfigError(f"{name} must be an integer, got {bit_width!r}; write {round(bit_width)} instead")
    if not minimum <= int(bit_width) <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {int(bit_width)}")
    return int(bit_width)


class BitWidthImpl(QuantBlock):
    """``forward() -> bit_width`` as a scalar float tensor holding an integer."""

    kind = "bit_width"

    def forward(self) -> Tensor:  # pragma: no cover
        raise NotImplementedError


class BitWidthConst(BitWidthImpl):
    """A constant bit-width, stored as a buffer.

    Args:
        bit_width: integer between 1 and 32.
    """

    def __init__(self, bit_width: int) -> None:
        super().__init__()
        self.register_buffer("bit_width", torch.tensor(float(validate_bit_width(bit_width))))

    def forward(self) -> Tensor:
        return self.bit_width

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object) -> None:  # type: ignore[override]
        # a checkpoint may carry another constant bit-width (it wins, as any buffer does); refuse one no
        # quantizer can use before it is copied in, rather than quantize with it
        loaded = state_dict.get(prefix + "bit_width")
        if isinstance(loaded, Tensor):
            validate_bit_width(loaded, name=f"{prefix}bit_width (loaded)")
        super()._load_from_state_dict(state_dict, prefix, *args)  # type: ignore[arg-type]
