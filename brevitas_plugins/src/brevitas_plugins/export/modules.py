"""Plain PyTorch modules the ``torch-quantized`` exporter builds: integers and scales in buffers.

Each computes in quantize-clamp-dequantize form with the same operations, in
the same order, as the Brevitas quantizers, so the exported program
reproduces the quantized model exactly. None of them imports anything from
Brevitas: an exported program runs with PyTorch alone.

Example:
    >>> import torch
    >>> fq = FakeQuant(torch.tensor(0.5), torch.tensor(0.0), -8, 7)
    >>> fq(torch.tensor([-9.0, 0.3, 0.76, 9.0])).tolist()
    [-4.0, 0.5, 1.0, 3.5]
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FakeQuant",
    "IntegerConstant",
    "QuantizedCat",
    "QuantizedEltwiseAdd",
    "QuantizedWeightLayer",
    "Requantize",
    "round_with",
]

ROUNDING_MODES = ("ROUND", "FLOOR", "CEIL", "ROUND_TO_ZERO", "DPU")


def round_with(x: Tensor, mode: str) -> Tensor:
    """Round ``x`` the way the quantizer's ``rounding_mode`` says (``ROUND`` is half to even).

    Example:
        >>> round_with(torch.tensor([-2.5, 0.5, 1.5]), "DPU").tolist()
        [-2.0, 1.0, 2.0]
    """
    if mode == "ROUND":
        return torch.round(x)
    if mode == "FLOOR":
        return torch.floor(x)
    if mode == "CEIL":
        return torch.ceil(x)
    if mode == "ROUND_TO_ZERO":
        return torch.trunc(x)
    if mode == "DPU":
        return torch.where(x - torch.floor(x) == 0.5, torch.ceil(x), torch.round(x))
    raise ValueError(f"unknown rounding mode {mode!r}; known: {', '.join(ROUNDING_MODES)}")


class FakeQuant(nn.Module):
    """``(clamp(round(x / scale + zero_point), int_min, int_max) - zero_point) * scale``.

    Args:
        scale: scale, broadcastable against the input.
        zero_point: integer-valued zero-point, broadcastable like ``scale``.
        int_min, int_max: the integer range.
        rounding_mode: see :func:`round_with`.
        binary: a binary quantizer instead: ``scale`` where ``x >= 0``, ``-scale`` elsewhere.
    """

    def __init__(
        self,
        scale: Tensor,
        zero_point: Tensor,
        int_min: int,
        int_max: int,
        rounding_mode: str = "ROUND",
        binary: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().to(torch.float32))
        self.register_buffer("zero_point", zero_point.detach().clone().to(torch.float32))
        self.register_buffer("int_min", torch.tensor(float(int_min)))
        self.register_buffer("int_max", torch.tensor(float(int_max)))
        self.rounding_mode = str(rounding_mode)
        self.binary = bool(binary)

    def forward(self, x: Tensor) -> Tensor:
        if self.binary:
            return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x)) * self.scale
        code = round_with(x / self.scale + self.zero_point, self.rounding_mode)
        return (torch.clamp(code, self.int_min, self.int_max) - self.zero_point) * self.scale

    def extra_repr(self) -> str:
        return f"int_min={int(self.int_min)}, int_max={int(self.int_max)}, rounding_mode={self.rounding_mode}"


class Requantize(nn.Module):
    """Truncate (drop least-significant bits) or clamp an integer tensor given in dequantized form.

    ``code = round(x / in_scale + in_zero_point)``, then truncation:
    ``code = rounding(code / trunc_scale)``; clamping: ``code = clamp(code, int_min, int_max)``;
    finally ``(code - zero_point) * scale``.
    """

    def __init__(
        self,
        kind: str,
        in_scale: Tensor,
        in_zero_point: Tensor,
        scale: Tensor,
        zero_point: Tensor,
        trunc_scale: float = 1.0,
        int_min: int = 0,
        int_max: int = 0,
        rounding_mode: str = "FLOOR",
    ) -> None:
        super().__init__()
        if kind not in ("trunc", "clamp"):
            raise ValueError(f"kind must be 'trunc' or 'clamp', got {kind!r}")
        self.kind = kind
        self.rounding_mode = rounding_mode
        for name, t in (("in_scale", in_scale), ("in_zero_point", in_zero_point), ("scale", scale),
                        ("zero_point", zero_point)):  # fmt: skip
            self.register_buffer(name, t.detach().clone().to(torch.float32))
        self.register_buffer("trunc_scale", torch.tensor(float(trunc_scale)))
        self.register_buffer("int_min", torch.tensor(float(int_min)))
        self.register_buffer("int_max", torch.tensor(float(int_max)))

    def forward(self, x: Tensor) -> Tensor:
        code = torch.round(x / self.in_scale + self.in_zero_point)
        if self.kind == "trunc":
            code = round_with(code / self.trunc_scale, self.rounding_mode)
        else:
            code = torch.clamp(code, self.int_min, self.int_max)
        return (code - self.zero_point) * self.scale


class IntegerConstant(nn.Module):
    """A constant stored as integers with its scale and zero-point; ``forward()`` dequantizes it.

    ``ints`` holds integer values (any dtype); they are stored in the smallest
    of int8, uint8, int16, int32 that holds them.
    """

    def __init__(self, ints: Tensor, scale: Tensor, zero_point: Tensor) -> None:
        super().__init__()
        lo, hi = (int(ints.min()), int(ints.max())) if ints.numel() else (0, 0)
        dtype = torch.int32
        for candidate in (torch.int8, torch.uint8, torch.int16):
            info = torch.iinfo(candidate)
            if info.min <= lo and hi <= info.max:
                dtype = candidate
                break
        self.register_buffer("ints", ints.to(dtype))
        self.register_buffer("scale", scale.detach().clone().to(torch.float32))
        self.register_buffer("zero_point", zero_point.detach().clone().to(torch.float32))

    def forward(self) -> Tensor:
        return (self.ints.to(torch.float32) - self.zero_point) * self.scale


class QuantizedWeightLayer(nn.Module):
    """Convolution, transposed convolution, linear or scale-bias on an integer weight.

    ``output_quant(op(input_quant(x), weight(), bias()))`` where ``weight`` /
    ``bias`` are :class:`IntegerConstant` (or float buffers when the layer
    left them unquantized) and the quantizers :class:`FakeQuant` or identity.

    Args:
        op: ``conv1d`` / ``conv2d`` / ``conv3d``, ``conv_transpose1d`` ..., ``linear``, ``scale_bias``.
        op_args: the operation's keyword arguments (stride, padding ...).
    """

    def __init__(
        self,
        op: str,
        op_args: dict[str, Any],
        weight: nn.Module | Tensor,
        bias: nn.Module | Tensor | None,
        input_quant: nn.Module | None,
        output_quant: nn.Module | None,
    ) -> None:
        super().__init__()
        self.op = op
        self.op_args = dict(op_args)
        if isinstance(weight, nn.Module):
            self.weight = weight
        else:
            self.register_buffer("float_weight", weight.detach().clone())
        if isinstance(bias, nn.Module):
            self.bias = bias
        elif bias is not None:
            self.register_buffer("float_bias", bias.detach().clone())
        self.input_quant = input_quant if input_quant is not None else nn.Identity()
        self.output_quant = output_quant if output_quant is not None else nn.Identity()

    def _weight(self) -> Tensor:
        return self.weight() if "weight" in self._modules else self.float_weight

    def _bias(self) -> Tensor | None:
        if "bias" in self._modules:
            return self.bias()
        return self._buffers.get("float_bias")

    def forward(self, x: Tensor) -> Tensor:
        x = self.input_quant(x)
        w, b = self._weight(), self._bias()
        a = self.op_args
        if self.op == "linear":
            y = F.linear(x, w, b)
        elif self.op == "scale_bias":
            y = x * w.view(a["runtime_shape"])
            if b is not None:
                y = y + b.view(a["runtime_shape"])
        elif self.op.startswith("conv_transpose"):
            fn = {"conv_transpose1d": F.conv_transpose1d, "conv_transpose2d": F.conv_transpose2d,
                  "conv_transpose3d": F.conv_transpose3d}[self.op]  # fmt: skip
            y = fn(x, w, b, a["stride"], a["padding"], a["output_padding"], a["groups"], a["dilation"])
        else:
            fn = {"conv1d": F.conv1d, "conv2d": F.conv2d, "conv3d": F.conv3d}[self.op]
            padding = a["padding"]
            if a.get("padding_mode", "zeros") != "zeros":
                x = F.pad(x, a["reversed_padding"], mode=a["padding_mode"])
                padding = 0
            y = fn(x, w, b, a["stride"], padding, a["dilation"], a["groups"])
        return self.output_quant(y)

    def extra_repr(self) -> str:
        return f"op={self.op}"


class QuantizedEltwiseAdd(nn.Module):
    """``output_quant(input_quant(a) + input_quant(b))`` (two separate, identical input quantizers)."""

    def __init__(self, quant_a: nn.Module | None, quant_b: nn.Module | None, output_quant: nn.Module | None) -> None:
        super().__init__()
        self.quant_a = quant_a if quant_a is not None else nn.Identity()
        self.quant_b = quant_b if quant_b is not None else nn.Identity()
        self.output_quant = output_quant if output_quant is not None else nn.Identity()

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return self.output_quant(self.quant_a(a) + self.quant_b(b))


class QuantizedCat(nn.Module):
    """``output_quant(torch.cat([quant_i(t_i)], dim))`` with a :class:`FakeQuant` (or identity) per input."""

    def __init__(self, quants: list[nn.Module | None], dim: int, output_quant: nn.Module | None = None) -> None:
        super().__init__()
        self.quants = nn.ModuleList([q if q is not None else nn.Identity() for q in quants])
        self.dim = int(dim)
        self.output_quant = output_quant if output_quant is not None else nn.Identity()

    def forward(self, tensors: list[Tensor], dim: int = 1) -> Tensor:
        return self.output_quant(torch.cat([q(t) for q, t in zip(self.quants, tensors)], dim=self.dim))
