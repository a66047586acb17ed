"""What the DPU accepts from a quantizer, as :class:`~brevitas.export.base.Problem` s naming the fix.

Each function takes the :class:`~brevitas.export.description.QuantDescription`
of one quantizer call and returns every reason the DPU cannot take it
(empty when it can). The fix always names a quantizer of
:mod:`brevitas.quant.fixed_point` that satisfies the constraint.

The DPU takes (``FORMATS.md``, PyXIR): integer quantization, one scale per
tensor, power-of-two scales (``scale = 2 ** -fix_point``), no zero-point,
8-bit activations on the full signed or unsigned range, weights and biases
of at most 8 bits; and it rounds half toward +infinity, so activations and
truncations must round to nearest (``ROUND``, equal except at exact ties) or
the DPU's way (``DPU``: ``float_to_int_impl_type='dpu'``, bit-exact).

Example:
    >>> import torch
    >>> from brevitas.export.description import QuantDescription
    >>> d = QuantDescription("act", "int", torch.tensor(0.1), torch.tensor(0.0), 4, True, False)
    >>> for p in act_problems(d, "relu.act_quant", "relu", non_negative=True, restriction="power_of_two"):
    ...     print(p.constraint.split(";")[0])
    relu.act_quant (4-bit signed per-tensor) is 4-bit
    relu.act_quant (4-bit signed per-tensor) has a scale of 0.1, not a power of two
    relu.act_quant (4-bit signed per-tensor) is signed but quantizes the output of a ReLU
    >>> p.fix
    'use act_quant=brevitas.quant.fixed_point.Uint8ActPerTensorFixedPoint'
"""

from __future__ import annotations

from brevitas.export.base import Problem
from brevitas.export.description import QuantDescription
from brevitas_export_pyxir.contract import ACT_BIT_WIDTH, MAX_PARAM_BIT_WIDTH

__all__ = [
    "FIXED_POINT",
    "act_fix",
    "act_problems",
    "bias_fix",
    "bias_problems",
    "trunc_problems",
    "weight_fix",
    "weight_problems",
]

#: the module holding the quantizers the fixes name
FIXED_POINT = "brevitas.quant.fixed_point"
#: rounding modes the DPU reproduces (``ROUND`` up to exact ties)
ACCEPTED_ROUNDING = ("DPU", "ROUND")
_ACT_ATTRS = ("input_quant", "output_quant", "act_quant")


def weight_fix() -> str:
    """The fix for a weight quantizer."""
    return f"use weight_quant={FIXED_POINT}.Int8WeightPerTensorFixedPoint"


def bias_fix() -> str:
    """The fix for a bias quantizer."""
    return f"use bias_quant={FIXED_POINT}.Int8BiasPerTensorFixedPointInternalScaling"


def act_fix(where: str, non_negative: bool) -> str:
    """The fix for the activation quantizer ``where`` (``"conv1.output_quant"``) of a tensor of this sign."""
    attr = where.rsplit(".", 1)[-1]
    attr = attr if attr in _ACT_ATTRS else "act_quant"
    name = "Uint8ActPerTensorFixedPoint" if non_negative else "Int8ActPerTensorFixedPoint"
    return f"use {attr}={FIXED_POINT}.{name}"


def _scale_problems(desc: QuantDescription, what: str, layer: str, fix: str, restriction: str | None) -> list[Problem]:
    out = []
    value = float(desc.scale.reshape(-1)[0])
    if not desc.is_per_tensor:
        out.append(
            Problem(
                layer,
                f"{what} has per-channel scales (axis {desc.per_channel_axis}); the DPU needs one power-of-two scale "
                "per tensor",
                fix,
            )
        )
    elif restriction not in (None, "power_of_two"):
        out.append(
            Problem(
                layer,
                f"{what} has a float scale (restrict_scaling_type={restriction}, now {value:.6g}); the DPU needs "
                "power-of-two (fixed-point) scales",
                fix,
            )
        )
    elif not desc.scale_is_power_of_two:
        out.append(
            Problem(
                layer,
                f"{what} has a scale of {value:.6g}, not a power of two; the DPU needs power-of-two (fixed-point) "
                "scales",
                fix,
            )
        )
    if not desc.has_zero_zero_point:
        out.append(Problem(layer, f"{what} has a zero-point; DPU fixed-point numbers have none", fix))
    return out


def _kind_problems(desc: QuantDescription, what: str, layer: str, fix: str) -> list[Problem]:
    if desc.quant_type != "int":
        return [Problem(layer, f"{what} is {desc.quant_type}; the DPU computes with integer fixed-point numbers", fix)]
    return []


def weight_problems(
    desc: QuantDescription | None, layer: str, kind: str, where: str, restriction: str | None = None
) -> list[Problem]:
    """Why the DPU cannot take the weights of ``layer`` (a ``kind`` such as ``QuantConv2d``).

    ``restriction`` is the quantizer's declared ``restrict_scaling_type``
    (``None`` when it declares none: the scale's value is checked alone).
    """
    if desc is None:
        return [Problem(layer, f"{kind} has a float weight; the DPU takes integer fixed-point weights", weight_fix())]
    what = f"{where} ({desc.describe()})"
    out = _kind_problems(desc, what, layer, weight_fix())
    if out:
        return out
    if desc.bit_width > MAX_PARAM_BIT_WIDTH:
        out.append(
            Problem(
                layer,
                f"{what} has {desc.bit_width}-bit weights; the DPU takes weights of at most {MAX_PARAM_BIT_WIDTH} bits",
                weight_fix(),
            )
        )
    return out + _scale_problems(desc, what, layer, weight_fix(), restriction)


def bias_problems(
    desc: QuantDescription | None, layer: str, kind: str, where: str, restriction: str | None = None
) -> list[Problem]:
    """Why the DPU cannot take the bias of ``layer`` (``restriction``: see :func:`weight_problems`)."""
    if desc is None:
        return [Problem(layer, f"{kind} has a float bias; the DPU takes integer fixed-point biases", bias_fix())]
    what = f"{where} ({desc.describe()})"
    out = _kind_problems(desc, what, layer, bias_fix())
    if out:
        return out
    if desc.bit_width > MAX_PARAM_BIT_WIDTH:
        out.append(
            Problem(
                layer,
                f"{what} has a {desc.bit_width}-bit bias; the DPU takes biases of at most {MAX_PARAM_BIT_WIDTH} bits",
                bias_fix(),
            )
        )
    return out + _scale_problems(desc, what, layer, bias_fix(), restriction)


def act_problems(
    desc: QuantDescription, where: str, layer: str, non_negative: bool, restriction: str | None = None
) -> list[Problem]:
    """Why the DPU cannot take the activation quantizer ``where`` of a tensor that can(not) be negative.

    ``restriction``: see :func:`weight_problems`.
    """
    fix = act_fix(where, non_negative)
    what = f"{where} ({desc.describe()})"
    out = _kind_problems(desc, what, layer, fix)
    if out:
        return out
    if desc.bit_width != ACT_BIT_WIDTH:
        out.append(Problem(layer, f"{what} is {desc.bit_width}-bit; the DPU runs {ACT_BIT_WIDTH}-bit activations", fix))
    out += _scale_problems(desc, what, layer, fix, restriction)
    if desc.narrow_range:
        lo = -(2 ** (desc.bit_width - 1))
        out.append(Problem(layer, f"{what} has a narrow range; the DPU's fix range is the full one (from {lo})", fix))
    if desc.rounding_mode not in ACCEPTED_ROUNDING:
        out.append(
            Problem(
                layer,
                f"{what} rounds with {desc.rounding_mode}; the DPU rounds to nearest (half toward +infinity)",
                f"{fix} (it rounds to nearest; float_to_int_impl_type='dpu' rounds exactly as the DPU)",
            )
        )
    if desc.signed and non_negative:
        out.append(
            Problem(
                layer,
                f"{what} is signed but quantizes the output of a ReLU; the PyXIR graph quantizes tensors "
                "that cannot be negative with the unsigned range",
                fix,
            )
        )
    elif not desc.signed and not non_negative:
        out.append(
            Problem(
                layer,
                f"{what} is unsigned but quantizes a tensor that can be negative (not the output of a "
                "ReLU); the PyXIR graph quantizes it with the signed range",
                fix,
            )
        )
    return out


def trunc_problems(desc: QuantDescription, where: str, layer: str) -> list[Problem]:
    """Why the DPU's average pooling cannot reproduce the truncation ``where`` of an average pool."""
    what = f"{where} ({desc.describe()})"
    out = []
    if desc.bit_width != ACT_BIT_WIDTH:
        out.append(
            Problem(
                layer,
                f"{what} truncates to {desc.bit_width} bits; the DPU runs {ACT_BIT_WIDTH}-bit activations",
                "keep the default trunc_quant (8 bits)",
            )
        )
    if not desc.is_per_tensor or not desc.scale_is_power_of_two:
        value = float(desc.scale.reshape(-1)[0])
        out.append(
            Problem(
                layer,
                f"{what} has a scale of {value:.6g}, not a power of two (the pooling window does not "
                "hold a power-of-two number of elements); the DPU needs power-of-two scales",
                f"pool over windows of 2, 4, 8, 16 ... elements (e.g. 2x2 or 4x4), fed by {FIXED_POINT} quantizers",
            )
        )
    if desc.rounding_mode not in ACCEPTED_ROUNDING:
        out.append(
            Problem(
                layer,
                f"{what} rounds with {desc.rounding_mode}; the DPU's average pooling rounds to nearest "
                "(half toward +infinity)",
                "pass float_to_int_impl_type='dpu' to the pooling layer (its trunc_quant then rounds as the DPU)",
            )
        )
    return out
