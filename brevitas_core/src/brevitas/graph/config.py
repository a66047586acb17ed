"""What :func:`brevitas.graph.quantize` puts where: quantizers per layer kind, overridden by rules.

A :class:`QuantConfig` holds the defaults (one weight quantizer, one bias
quantizer, a signed and an unsigned activation quantizer, optional global
bit-widths) and an ordered list of :class:`Rule` s. Each place the
quantizer rewrites (a *site*: a convolution, an activation, an addition, a
concatenation, a model input) is described by its qualified name and its
*kind*; every rule whose name pattern and kind match is applied in order,
so later rules win. That is how mixed precision is written::

    QuantConfig(
        weight_bit_width=4, act_bit_width=4,
        rules=[Rule(name=["conv1", "fc"], weight_bit_width=8, input_bit_width=8)],
    )

Kinds: ``conv``, ``conv_transpose``, ``linear`` (roles ``weight``, ``bias``,
``input``, ``output``); ``relu``, ``sigmoid``, ``tanh``, ``hardtanh``
(roles ``act``, ``input``); ``add`` (``input``: the one quantizer shared by
both operands, ``output``); ``cat`` (``input``: shared by every operand,
``output``);
``input`` (``act``: a model input). A rule may also name a ``torch.nn``
class as its kind (``kind=torch.nn.Conv1d``), matched against the float
layer the site replaces.

Rule settings are the keywords a quant layer takes: ``<role>_quant`` (a
quantizer class, or ``None`` to disable that quantizer) and
``<role>_<attribute>`` (``weight_bit_width=4``,
``weight_scaling_per_output_channel=True``), plus ``quantize=False`` to
leave the site in float. A setting for a role the site does not have is
ignored, so ``Rule(weight_bit_width=4)`` can match every site.

Example:
    >>> cfg = QuantConfig(weight_bit_width=4, rules=[Rule(name="fc", weight_bit_width=8)])
    >>> cfg.resolve(Site("fc", "linear")).overrides["weight"]
    {'bit_width': 8}
    >>> cfg.resolve(Site("conv1", "conv")).overrides["weight"]
    {'bit_width': 4}
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from brevitas.errors import ConfigError
from brevitas.graph.tracer import LeafSpec

__all__ = ["KINDS", "ROLES", "QuantConfig", "ResolvedSite", "Rule", "Site"]

#: the roles each kind of site has
ROLES: dict[str, tuple[str, ...]] = {
    "conv": ("weight", "bias", "input", "output"),
    "conv_transpose": ("weight", "bias", "input", "output"),
    "linear": ("weight", "bias", "input", "output"),
    "relu": ("act", "input"),
    "sigmoid": ("act", "input"),
    "tanh": ("act", "input"),
    "hardtanh": ("act", "input"),
    "add": ("input", "output"),
    "cat": ("input", "output"),
    "input": ("act",),
}

#: every kind of site
KINDS = tuple(ROLES)

_ALL_ROLES = ("weight", "bias", "input", "output", "act")
_WEIGHTED = ("conv", "conv_transpose", "linear")
#: kinds whose output is never negative (their activation quantizer defaults to the unsigned one)
_NONNEGATIVE = ("relu", "sigmoid")


def _default_weight_quant() -> Any:
    from brevitas.quant.scaled_int import Int8WeightPerTensorFloat

    return Int8WeightPerTensorFloat


def _default_bias_quant() -> Any:
    from brevitas.quant.scaled_int import Int32Bias

    return Int32Bias


def _default_act_quant() -> Any:
    from brevitas.quant.scaled_int import Int8ActPerTensorFloat

    return Int8ActPerTensorFloat


def _default_unsigned_act_quant() -> Any:
    from brevitas.quant.scaled_int import Uint8ActPerTensorFloat

    return Uint8ActPerTensorFloat


@dataclass(frozen=True)
class Site:
    """One place :func:`~brevitas.graph.quantize` rewrites, as rules see it.

    Attributes:
        name: qualified name the quant module gets in the quantized model.
        kind: one of :data:`KINDS`.
        float_type: the ``torch.nn`` class of the float layer it replaces
            (for a function or method, the equivalent class, e.g.
            ``torch.nn.ReLU`` for ``F.relu``); ``None`` for additions,
            concatenations and inputs.
        nonnegative_input: every operand is known to be >= 0 (the output of
            a ReLU or a sigmoid), so an unsigned quantizer loses nothing.
    """

    name: str
    kind: str
    float_type: type | None = None
    nonnegative_input: bool = False


@dataclass
class ResolvedSite:
    """What a site gets: per role, a quantizer (``None``: disabled) and its keyword overrides.

    Attributes:
        site: the site.
        quantize: ``False`` when a rule left it in float.
        quants: ``{role: quantizer class or None}`` for every role of the kind.
        overrides: ``{role: {attribute: value}}`` (e.g. ``{"weight": {"bit_width": 4}}``).
        explicit: the roles whose quantizer a rule set explicitly.
        fallback: quantizers used only when needed: ``{"input": ...}`` for a
            weight layer whose input nothing upstream quantizes.
    """

    site: Site
    quantize: bool = True
    quants: dict[str, Any] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    explicit: set[str] = field(default_factory=set)
    fallback: dict[str, Any] = field(default_factory=dict)

    def layer_kwargs(self, roles: Sequence[str] | None = None) -> dict[str, Any]:
        """Keywords for the quant layer: ``<role>_quant=...`` and ``<role>_<attr>=...`` (``act`` unprefixed)."""
        out: dict[str, Any] = {}
        for role in roles if roles is not None else self.quants:
            quant = self.quants.get(role)
            out[f"{role}_quant"] = quant
            if quant is None:
                continue
            for attr, val in self.overrides.get(role, {}).items():
                out[attr if role == "act" else f"{role}_{attr}"] = val
        return out


def _check_kind(kind: object) -> None:
    if isinstance(kind, type):
        if not issubclass(kind, nn.Module):
            raise ConfigError(f"Rule kind {kind!r} is a class but not a torch.nn.Module; give e.g. torch.nn.Conv2d")
        return
    if kind not in ROLES:
        raise ConfigError(
            f"Rule kind {kind!r} is unknown; accepted: {', '.join(KINDS)} or a torch.nn class such as torch.nn.Conv2d"
        )


def _split_setting(key: str) -> tuple[str, str]:
    """``"weight_bit_width"`` -> ``("weight", "bit_width")``; ``"act_quant"`` -> ``("act", "quant")``."""
    for role in _ALL_ROLES:
        prefix = role + "_"
        if key.startswith(prefix) and len(key) > len(prefix):
            return role, key[len(prefix) :]
    raise ConfigError(
        f"Rule setting {key!r} has no quantizer prefix. Settings are <role>_quant or <role>_<attribute> with a role "
        f"in {', '.join(_ALL_ROLES)} (e.g. weight_bit_width=4, act_quant=Uint8ActPerTensorFloat), or quantize=False"
    )


class Rule:
    """Settings applied to the sites whose qualified name and kind match.

    Args:
        name: glob pattern(s) over qualified names (``"layer*.conv1"``;
            ``fnmatch`` syntax, case-sensitive) or compiled regexes (full
            match); ``None`` matches every name.
        kind: kind name(s) from :data:`KINDS` or ``torch.nn`` class(es);
            ``None`` matches every kind.
        quantize: ``False`` leaves the matched sites in float.
        **settings: ``<role>_quant`` and ``<role>_<attribute>`` keywords.

    Raises:
        ConfigError: an unknown kind, a setting without a role prefix, or a
            ``<role>_quant`` that is neither ``None`` nor a quantizer class.

    Example:
        >>> r = Rule(name="features.*", kind="conv", weight_bit_width=4)
        >>> r.matches(Site("features.0", "conv")), r.matches(Site("classifier", "linear"))
        (True, False)
    """

    def __init__(
        self,
        name: str | re.Pattern[str] | Sequence[str | re.Pattern[str]] | None = None,
        kind: str | type | Sequence[str | type] | None = None,
        *,
        quantize: bool | None = None,
        **settings: Any,
    ) -> None:
        from brevitas.inject import is_injector

        if name is None:
            self.names: tuple[str | re.Pattern[str], ...] | None = None
        elif isinstance(name, (str, re.Pattern)):
            self.names = (name,)
        else:
            self.names = tuple(name)
        if self.names is not None:
            for pattern in self.names:
                if not isinstance(pattern, (str, re.Pattern)):
                    raise ConfigError(f"Rule name patterns are glob strings or compiled regexes, got {pattern!r}")
        if kind is None:
            self.kinds: tuple[str | type, ...] | None = None
        elif isinstance(kind, (str, type)):
            self.kinds = (kind,)
        else:
            self.kinds = tuple(kind)
        for k in self.kinds or ():
            _check_kind(k)
        if quantize is not None and not isinstance(quantize, bool):
            raise ConfigError(f"Rule quantize must be True or False, got {quantize!r}")
        self.quantize = quantize
        self.settings: dict[tuple[str, str], Any] = {}
        for key, val in settings.items():
            role, attr = _split_setting(key)
            if attr == "quant" and val is not None and not is_injector(val):
                raise ConfigError(
                    f"Rule setting {key}={val!r}: expected a quantizer class (e.g. Int8WeightPerTensorFloat) or "
                    f"None to disable it"
                )
            self.settings[(role, attr)] = val

    def matches(self, site: Site) -> bool:
        """Whether this rule applies to ``site``."""
        if self.names is not None and not any(_name_matches(p, site.name) for p in self.names):
            return False
        if self.kinds is not None and not any(_kind_matches(k, site) for k in self.kinds):
            return False
        return True

    def __repr__(self) -> str:
        parts = []
        if self.names is not None:
            parts.append(f"name={list(self.names)!r}")
        if self.kinds is not None:
            parts.append(f"kind={[k.__name__ if isinstance(k, type) else k for k in self.kinds]!r}")
        if self.quantize is not None:
            parts.append(f"quantize={self.quantize}")
        parts += [f"{role}_{attr}={val!r}" for (role, attr), val in self.settings.items()]
        return f"Rule({', '.join(parts)})"


def _name_matches(pattern: str | re.Pattern[str], name: str) -> bool:
    if isinstance(pattern, re.Pattern):
        return pattern.fullmatch(name) is not None
    return fnmatch.fnmatchcase(name, pattern)


def _kind_matches(kind: str | type, site: Site) -> bool:
    if isinstance(kind, type):
        return site.float_type is not None and issubclass(site.float_type, kind)
    return kind == site.kind


@dataclass(frozen=True)
class QuantConfig:
    """How :func:`brevitas.graph.quantize` quantizes a float model.

    Args:
        weight_quant: weight quantizer of convolutions and linear layers
            (default ``Int8WeightPerTensorFloat``).
        bias_quant: their bias quantizer (default ``Int32Bias``: on the
            accumulator grid, input scale x weight scale).
        act_quant: quantizer of signed activations: model inputs, additions,
            concatenations, tanh / hardtanh outputs, and the input of a weight
            layer when nothing upstream quantizes it (default
            ``Int8ActPerTensorFloat``).
        unsigned_act_quant: quantizer of non-negative activations: ReLU and
            sigmoid outputs, and additions / concatenations of them (default
            ``Uint8ActPerTensorFloat``).
        weight_bit_width: bit-width of every weight quantizer (``None``: the quantizer's own).
        act_bit_width: bit-width of every activation quantizer (``None``: the quantizer's own).
        quantize_input: quantize the model inputs (``input`` sites).
        merge_bn: fold each ``BatchNorm`` into the convolution or linear
            layer before it (a batch norm anywhere else stays in float);
            ``False`` keeps every batch norm in float.
        rules: applied in order after the defaults (see :class:`Rule`).
        leaf_modules: modules not traced through and left as they are
            (qualified-name globs, regexes or classes).

    Raises:
        ConfigError: a rule that is not a :class:`Rule`, a bit-width that is
            not a positive int, a quantizer that is not a quantizer class.

    Example:
        >>> from brevitas.quant.scaled_int import Int8WeightPerChannelFloat
        >>> cfg = QuantConfig(weight_quant=Int8WeightPerChannelFloat, weight_bit_width=4)
        >>> r = cfg.resolve(Site("conv", "conv"))
        >>> r.quants["weight"].__name__, r.overrides["weight"]
        ('Int8WeightPerChannelFloat', {'bit_width': 4})
    """

    weight_quant: Any = field(default_factory=_default_weight_quant)
    bias_quant: Any = field(default_factory=_default_bias_quant)
    act_quant: Any = field(default_factory=_default_act_quant)
    unsigned_act_quant: Any = field(default_factory=_default_unsigned_act_quant)
    weight_bit_width: int | None = None
    act_bit_width: int | None = None
    quantize_input: bool = True
    merge_bn: bool = True
    rules: Sequence[Rule] = ()
    leaf_modules: Sequence[LeafSpec] = ()

    def __post_init__(self) -> None:
        from brevitas.inject import is_injector

        for attr in ("weight_quant", "bias_quant", "act_quant", "unsigned_act_quant"):
            val = getattr(self, attr)
            if val is not None and not is_injector(val):
                raise ConfigError(
                    f"QuantConfig {attr}={val!r}: expected a quantizer class (an ExtendedInjector subclass such as "
                    f"Int8ActPerTensorFloat) or None"
                )
        for attr in ("weight_bit_width", "act_bit_width"):
            val = getattr(self, attr)
            if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 1):
                raise ConfigError(f"QuantConfig {attr} must be None or an int >= 1 (e.g. 4), got {val!r}")
        rules = tuple(self.rules) if not isinstance(self.rules, Rule) else (self.rules,)
        for rule in rules:
            if not isinstance(rule, Rule):
                raise ConfigError(f"QuantConfig rules must be Rule objects, got {rule!r}; write Rule(name=..., ...)")
        object.__setattr__(self, "rules", rules)
        leaves = (self.leaf_modules,) if isinstance(self.leaf_modules, (str, type, re.Pattern)) else self.leaf_modules
        for leaf in leaves:
            if not isinstance(leaf, (str, type, re.Pattern)):
                raise ConfigError(
                    f"QuantConfig leaf_modules entries are qualified-name globs, regexes or module classes, got "
                    f"{leaf!r}"
                )
        object.__setattr__(self, "leaf_modules", tuple(leaves))

    def _defaults(self, site: Site) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
        kind = site.kind
        quants: dict[str, Any] = {}
        fallback: dict[str, Any] = {}
        overrides: dict[str, dict[str, Any]] = {role: {} for role in ROLES[kind]}
        act_bw = {} if self.act_bit_width is None else {"bit_width": self.act_bit_width}
        if kind in _WEIGHTED:
            quants = {"weight": self.weight_quant, "bias": self.bias_quant, "input": None, "output": None}
            fallback["input"] = self.act_quant  # signed: what every exporter takes at a layer's own input
            if self.weight_bit_width is not None:
                overrides["weight"]["bit_width"] = self.weight_bit_width
            overrides["input"].update(act_bw)
            overrides["output"].update(act_bw)
        elif kind in ("add", "cat"):
            quant = self.unsigned_act_quant if site.nonnegative_input else self.act_quant
            for role in ROLES[kind]:
                quants[role] = quant
                overrides[role].update(act_bw)
        elif kind == "input":
            quants = {"act": self.act_quant}
            overrides["act"].update(act_bw)
        else:  # activations
            nonneg = kind in _NONNEGATIVE or (site.float_type is not None and issubclass(site.float_type, nn.ReLU6))
            quants = {"act": self.unsigned_act_quant if nonneg else self.act_quant, "input": None}
            overrides["act"].update(act_bw)
            overrides["input"].update(act_bw)
        return quants, overrides, fallback

    def resolve(self, site: Site) -> ResolvedSite:
        """The quantizers and overrides ``site`` gets: the defaults, then every matching rule in order.

        Example:
            >>> cfg = QuantConfig(rules=[Rule(kind="relu", quantize=False)])
            >>> cfg.resolve(Site("relu", "relu")).quantize
            False
        """
        if site.kind not in ROLES:
            raise ConfigError(f"unknown site kind {site.kind!r}; accepted: {', '.join(KINDS)}")
        quants, overrides, fallback = self._defaults(site)
        resolved = ResolvedSite(site, True, quants, overrides, fallback=fallback)
        if site.kind == "input" and not self.quantize_input:
            resolved.quantize = False
        roles = ROLES[site.kind]
        for rule in self.rules:
            if not rule.matches(site):
                continue
            if rule.quantize is not None:
                resolved.quantize = rule.quantize
            for (role, attr), val in rule.settings.items():
                if role not in roles:
                    continue
                if attr == "quant":
                    resolved.quants[role] = val
                    resolved.explicit.add(role)
                else:
                    resolved.overrides[role][attr] = val
        return resolved

    def describe(self) -> Mapping[str, Any]:
        """A plain summary of the defaults and rules (for logs and reports)."""
        return {
            "weight_quant": getattr(self.weight_quant, "__name__", None),
            "bias_quant": getattr(self.bias_quant, "__name__", None),
            "act_quant": getattr(self.act_quant, "__name__", None),
            "unsigned_act_quant": getattr(self.unsigned_act_quant, "__name__", None),
            "weight_bit_width": self.weight_bit_width,
            "act_bit_width": self.act_bit_width,
            "merge_bn": self.merge_bn,
            "rules": [repr(r) for r in self.rules],
        }
