"""The base of every quantization proxy.

A proxy is the ``nn.Module`` that stands between a layer and a quantizer
declaration (an :class:`~brevitas.inject.ExtendedInjector` subclass). It

- builds the quantizer's ``tensor_quant`` module with
  ``quant.let(module=<layer>, tracked_parameter_list=[...], quant_role=<role>, **overrides)``
  (``None`` means quantization is disabled);
- rebuilds it when what it tracks changes: when a layer starts sharing it, and
  when a ``state_dict`` is loaded (statistics of the new weights are
  re-derived, then any quantizer state found in the checkpoint is loaded on
  top);
- lets a float checkpoint load into a quantized model: with
  ``BREVITAS_IGNORE_MISSING_KEYS=1`` or inside
  :func:`brevitas.checkpoint.ignore_missing_quant_keys`, its own missing keys
  are not reported;
- pickles: the quantizer class travels by reference when it can; when it
  cannot (a class defined inside a function), the built ``tensor_quant``
  still travels and only re-derivation on later loads is lost.

Subclasses (:mod:`brevitas.proxy.parameter_quant`,
:mod:`brevitas.proxy.runtime_quant`) define ``forward``.

Example:
    >>> import torch
    >>> from brevitas.proxy import ActQuantProxy
    >>> from brevitas.quant.scaled_int import Int8ActPerTensorFloat
    >>> proxy = ActQuantProxy(Int8ActPerTensorFloat)
    >>> proxy.is_quant_enabled
    True
    >>> ActQuantProxy(None).is_quant_enabled
    False
"""

from __future__ import annotations

import pickle
import warnings
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from brevitas import config
from brevitas._tracing import tracing
from brevitas.errors import BrevitasError, ConfigError, InjectionError, add_context
from brevitas.quant_tensor import QuantTensor

__all__ = [
    "QuantProxy",
    "describe_layer",
    "iter_proxies",
    "make_quant_tensor",
]


def describe_layer(layer: nn.Module | None) -> str:
    """``"QuantConv2d 'features.0'"`` when a model-level helper named the layer, else ``"QuantConv2d"``.

    Names are set by :func:`brevitas.nn.utils.name_quant_layers` (the exporters
    and :func:`brevitas.checkpoint.load_float_state_dict` call it).

    Example:
        >>> import torch
        >>> describe_layer(torch.nn.ReLU())
        'ReLU'
    """
    if layer is None:
        return "<no layer>"
    name = getattr(layer, "_brevitas_name", None)
    cls = type(layer).__name__
    return f"{cls} {name!r}" if name else cls


def make_quant_tensor(
    value: Tensor,
    scale: Tensor | None = None,
    zero_point: Tensor | None = None,
    bit_width: Tensor | None = None,
    signed: bool | None = None,
    narrow_range: bool | None = None,
    training: bool | None = None,
) -> Any:
    """Build a :class:`brevitas.quant_tensor.QuantTensor` (the one place proxies and layers do it).

    Example:
        >>> import torch
        >>> qt = make_quant_tensor(torch.ones(2))
        >>> qt.is_valid
        False
    """
    return QuantTensor(value, scale, zero_point, bit_width, signed, bool(narrow_range), training)


class _QuantRef:
    """The quantizer class and its overrides, pickled by reference when possible.

    A quantizer defined at module level pickles by name; one defined inside a
    function (or made by ``let``) does not. Then the reference pickles as
    "not rebuildable": the proxy keeps its built ``tensor_quant`` but cannot
    re-derive it on later loads.
    """

    __slots__ = ("description", "overrides", "quant", "rebuildable")

    def __init__(
        self, quant: Any, overrides: Mapping[str, Any], rebuildable: bool = True, description: str = ""
    ) -> None:
        self.quant = quant
        self.overrides = dict(overrides)
        self.rebuildable = rebuildable
        self.description = description or (getattr(quant, "__qualname__", repr(quant)) if quant is not None else "")

    def __reduce__(self) -> tuple[Any, ...]:
        if not self.rebuildable:
            return (_QuantRef, (None, {}, False, self.description))
        try:
            pickle.dumps((self.quant, self.overrides))
        except Exception:
            return (_QuantRef, (None, {}, False, self.description))
        return (_QuantRef, (self.quant, self.overrides, True, self.description))

    def __deepcopy__(self, memo: dict[int, Any]) -> _QuantRef:
        # quantizer classes are immutable declarations: share them
        return _QuantRef(self.quant, self.overrides, self.rebuildable, self.description)


#: quantizers without tensor_quant, solved per role: {quant: {solver name: solved class}}
_SOLVED: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _is_load_ignoring_missing() -> bool:
    from brevitas.checkpoint import quant_keys_ignored

    return quant_keys_ignored()


def _drop_own_missing_keys(module: QuantProxy, incompatible_keys: Any) -> None:
    """Post-load hook: forget this proxy's missing keys when loading a float checkpoint."""
    prefixes = module._loading_prefixes
    module._loading_prefixes = []
    if not prefixes or not _is_load_ignoring_missing():
        return
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not any(k.startswith(p) for p in prefixes)]


class QuantProxy(nn.Module):
    """Base of the proxies: owns one quantizer's ``tensor_quant`` module.

    Args:
        quant: the quantizer class (an ``ExtendedInjector`` subclass), or
            ``None`` to disable quantization.
        layer: the layer this proxy quantizes for (optional; more can be added
            with :meth:`add_tracked_module`).
        **overrides: quantizer attributes to override (what a layer receives
            as ``weight_bit_width=4`` arrives here as ``bit_width=4``).

    Raises:
        ConfigError: ``quant`` is neither ``None`` nor a quantizer class.
        InjectionError: the quantizer declaration is incomplete (the message
            names the layer, the quantizer and the missing attribute).
    """

    #: the tensor role handed to the solver as ``quant_role``
    role: ClassVar[str] = ""
    #: the layer attribute whose tensor the statistics track (``weight``, ``bias``), or ``""``
    tracked_attr: ClassVar[str] = ""
    #: the solver of :mod:`brevitas.quant.solver` mixed into quantizers that declare no ``tensor_quant``
    solver_name: ClassVar[str] = ""

    tensor_quant: nn.Module | None

    def __init__(self, quant: Any, layer: nn.Module | None = None, **overrides: Any) -> None:
        super().__init__()
        _check_quantizer(quant, type(self).__name__, layer)
        self._quant_ref = _QuantRef(quant, overrides)
        self._owners: list[nn.Module] = []
        self._built_tracked_ids: tuple[int, ...] = ()
        self._loading_prefixes: list[str] = []
        self._signed: bool | None = None
        self._narrow_range: bool | None = None
        #: statically known: every zero-point block of tensor_quant is ZeroZeroPoint
        self.zero_point_is_zero = True
        self._injector: Any = None
        self.register_module("tensor_quant", None)
        self.register_load_state_dict_post_hook(_drop_own_missing_keys)
        if layer is not None:
            self._owners.append(layer)
        self.init_tensor_quant()

    # -- what it quantizes for -------------------------------------------
    @property
    def quant_injector(self) -> Any:
        """The quantizer as built: ``quant.let(module=..., quant_role=..., **overrides)``, or ``None``."""
        if self._injector is None and self._quant_ref.quant is not None:
            self._injector = self._solved_quant().let(**self._build_kwargs())
        return self._injector

    def _solved_quant(self) -> Any:
        """The quantizer, with this role's solver mixed in when it declares no ``tensor_quant``.

        A quantizer written with enums only (as in the original documentation,
        ``class MyQuant(BaseInjector): quant_type = QuantType.INT ...``) is
        solved for the role it is used in.
        """
        from brevitas.inject import defines

        quant = self._quant_ref.quant
        if not self.solver_name or defines(quant, "tensor_quant"):
            return quant
        per_quant = _SOLVED.setdefault(quant, {})
        solved = per_quant.get(self.solver_name)
        if solved is None:
            import brevitas.quant.solver as solvers

            solver = getattr(solvers, self.solver_name)
            namespace = {"__module__": quant.__module__, "__qualname__": quant.__qualname__, "__doc__": quant.__doc__}
            solved = type(quant)(quant.__name__, (quant, solver), namespace)
            per_quant[self.solver_name] = solved
        return solved

    @property
    def quant(self) -> Any:
        """The quantizer class given by the user (before overrides), or ``None``."""
        return self._quant_ref.quant

    @property
    def overrides(self) -> dict[str, Any]:
        """The attribute overrides applied on top of :attr:`quant`."""
        return dict(self._quant_ref.overrides)

    @property
    def owners(self) -> tuple[nn.Module, ...]:
        """The layers using this proxy (several when shared)."""
        return tuple(self._owners)

    @property
    def is_quant_enabled(self) -> bool:
        """Whether a ``tensor_quant`` is built (``False`` for ``quant=None`` or ``QuantType.FP``)."""
        return self.tensor_quant is not None

    @property
    def is_signed(self) -> bool | None:
        """The quantizer's ``signed`` attribute (``None`` when it does not declare one)."""
        return self._signed

    @property
    def is_narrow_range(self) -> bool | None:
        """The quantizer's ``narrow_range`` attribute (``None`` when it does not declare one)."""
        return self._narrow_range

    @property
    def rounding_mode(self) -> str | None:
        """The rounding of the first float-to-int block found in ``tensor_quant`` (for exporters)."""
        if self.tensor_quant is None:
            return None
        for module in self.tensor_quant.modules():
            mode = getattr(type(module), "rounding_mode", None)
            if isinstance(mode, property):
                return module.rounding_mode
            if isinstance(mode, str) and getattr(module, "kind", "") == "float_to_int":
                return mode
        return None

    def describe_owner(self) -> str:
        """``"weight_quant of QuantConv2d 'features.0'"``: the phrase used in error messages."""
        what = f"{self.role}_quant" if self.role else "quant"
        for owner in self._owners:
            for name, child in owner._modules.items():
                if child is self:
                    what = name
                    break
        if not self._owners:
            return f"{what} ({type(self).__name__})"
        return f"{what} of " + ", ".join(describe_layer(o) for o in self._owners)

    def tracked_tensors(self) -> list[Tensor]:
        """The tensors statistics are computed over (one per owner that has ``tracked_attr``)."""
        if not self.tracked_attr:
            return []
        out = []
        for owner in self._owners:
            t = getattr(owner, self.tracked_attr, None)
            if isinstance(t, Tensor):
                out.append(t)
        return out

    def add_tracked_module(self, layer: nn.Module) -> None:
        """Start quantizing for ``layer`` too (sharing): statistics then cover its tensor as well.

        Rebuilds ``tensor_quant`` when the set of tracked tensors changed.
        """
        if any(o is layer for o in self._owners):
            return
        self._owners.append(layer)
        if self.tracked_attr and isinstance(getattr(layer, self.tracked_attr, None), Tensor):
            self.init_tensor_quant()

    # -- building --------------------------------------------------------
    def _build_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self._quant_ref.overrides)
        kwargs["quant_role"] = self.role
        if self._owners:
            kwargs["module"] = self._owners[0]
        if self.tracked_attr:
            kwargs["tracked_parameter_list"] = self.tracked_tensors()
        return kwargs

    def _device(self) -> torch.device | None:
        for t in self.tracked_tensors():
            return t.device
        for owner in self._owners:
            for p in owner.parameters(recurse=False):
                return p.device
            for b in owner.buffers(recurse=False):
                return b.device
        return None

    def _build(self) -> tuple[Any, nn.Module | None]:
        quant = self._quant_ref.quant
        injector = self._solved_quant().let(**self._build_kwargs())
        try:
            tensor_quant = injector.tensor_quant
        except BrevitasError as exc:
            _add_context(exc, f"building {self.describe_owner()} from quantizer {quant.__qualname__}")
            raise
        except Exception as exc:
            raise InjectionError(
                f"building {self.describe_owner()} from quantizer {quant.__qualname__} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if tensor_quant is not None and not isinstance(tensor_quant, nn.Module):
            raise ConfigError(
                f"{self.describe_owner()}: quantizer {quant.__qualname__} built a tensor_quant of type "
                f"{type(tensor_quant).__name__}; tensor_quant must be a torch.nn.Module returning "
                f"(value, scale, zero_point, bit_width), or None to disable quantization"
            )
        return injector, tensor_quant

    def init_tensor_quant(self) -> None:
        """(Re)build ``tensor_quant`` from the quantizer and what this proxy tracks.

        Called at construction, when a layer starts sharing the proxy and when a
        ``state_dict`` is loaded. When only the tracked values changed (a load),
        the new initial state is copied into the existing modules, so an
        optimizer holding their parameters keeps working.
        """
        ref = self._quant_ref
        if ref.quant is None or not self._has_something_to_quantize():
            if ref.rebuildable:
                self.tensor_quant = None
                self._injector = None
            return
        injector, tensor_quant = self._build()
        self._injector = injector
        self._signed = _optional_bool(injector, "signed")
        self._narrow_range = _optional_bool(injector, "narrow_range")
        tracked_ids = tuple(id(t) for t in self.tracked_tensors())
        device = self._device()
        if tensor_quant is not None and device is not None:
            tensor_quant = tensor_quant.to(device)
        old = self.tensor_quant
        if (
            old is not None
            and tensor_quant is not None
            and type(old) is type(tensor_quant)
            and tracked_ids == self._built_tracked_ids
            and _same_state_layout(old, tensor_quant)
        ):
            with torch.no_grad():
                old.load_state_dict(tensor_quant.state_dict())
        else:
            self.tensor_quant = tensor_quant
        self._built_tracked_ids = tracked_ids
        self.zero_point_is_zero = _zero_point_is_zero(self.tensor_quant)
        self._on_rebuilt()

    def _has_something_to_quantize(self) -> bool:
        """False when every owner lacks the tracked tensor (a layer built with ``bias=False``)."""
        if not self.tracked_attr or not self._owners:
            return True
        return bool(self.tracked_tensors())

    def _on_rebuilt(self) -> None:
        """Hook for subclasses (cache invalidation)."""

    def _forward_error(self, exc: BaseException) -> None:
        """Say where an exception raised by ``tensor_quant`` during ``forward`` comes from.

        Called on the error path only (a ``try`` costs nothing when nothing is
        raised): the message gains the layer (``"in weight_quant of
        QuantConv2d 'conv1'"``), the component that raised and, when it was
        registered by a plugin, which plugin and distribution. The
        exception keeps its type; the caller re-raises it.
        """
        if getattr(exc, "_brevitas_forward_context", False):
            return
        context = f"in {self.describe_owner()}"
        try:
            context += _raising_component(exc, self.tensor_quant)
        except Exception:  # never hide the real error behind a failure to describe it
            pass
        add_context(exc, context)
        exc._brevitas_forward_context = True  # type: ignore[attr-defined]

    # -- state_dict --------------------------------------------------------
    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # the owners' tensors are already loaded (a module loads before its children):
        # re-derive what depends on them, then the children load any saved quantizer state on top
        if self.tracked_attr and self._owners:
            if self._quant_ref.rebuildable:
                self.init_tensor_quant()
            elif self._quant_ref.description:
                warnings.warn(
                    f"{self.describe_owner()}: quantizer {self._quant_ref.description} could not be pickled by "
                    f"reference, so statistics are not re-derived from the loaded weights; define the quantizer "
                    f"at module level to get that back",
                    stacklevel=2,
                )
        self._loading_prefixes.append(prefix)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._injector = None
        self._loading_prefixes = []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_injector"] = None  # classes made by let() do not pickle; rebuilt on demand
        state.pop("_jit_tensor_quant", None)  # compiled code does not pickle; recompiled on demand
        return state

    def _tensor_quant_fn(self) -> Any:
        """What ``forward`` calls: ``tensor_quant``, compiled with ``torch.compile`` under ``BREVITAS_JIT=1``.

        The compiled wrapper is made at the first call with the flag set and
        kept outside the module tree (``state_dict`` and the module's children
        are unchanged); a rebuilt ``tensor_quant`` gets a new one. Inside code
        that is already being compiled or traced (a compiled model,
        ``torch.export``, ``torch.jit.trace``, ``torch.fx``) the module itself
        is returned, so the outer tracer sees through it.
        """
        tensor_quant = self.tensor_quant
        if tensor_quant is None or not config.jit_enabled() or tracing():
            return tensor_quant
        cached = self.__dict__.get("_jit_tensor_quant")
        if cached is None or cached[0] is not tensor_quant:
            cached = (tensor_quant, torch.compile(tensor_quant))
            self.__dict__["_jit_tensor_quant"] = cached  # not an attribute nn.Module registers
        return cached[1]

    def extra_repr(self) -> str:
        ref = self._quant_ref
        if ref.quant is None and not ref.rebuildable:
            return f"quant={ref.description} (not rebuildable)"
        name = getattr(ref.quant, "__qualname__", None)
        parts = [f"quant={name}"]
        parts += [f"{k}={v!r}" for k, v in ref.overrides.items()]
        return ", ".join(parts)


def _check_quantizer(quant: Any, proxy_name: str, layer: nn.Module | None) -> None:
    from brevitas.inject import is_injector

    if quant is None or is_injector(quant):
        return
    where = f" for {describe_layer(layer)}" if layer is not None else ""
    if isinstance(quant, QuantProxy):
        hint = "pass the proxy itself to the layer (e.g. weight_quant=other_layer.weight_quant), not to a proxy"
    elif isinstance(quant, type):
        hint = "a quantizer is a subclass of brevitas.inject.ExtendedInjector, e.g. Int8WeightPerTensorFloat"
    else:
        hint = "pass the quantizer class itself (e.g. Int8ActPerTensorFloat), not an instance or a string"
    raise ConfigError(f"{proxy_name}{where}: expected a quantizer class or None, got {quant!r}; {hint}")


def _optional_bool(injector: Any, name: str) -> bool | None:
    from brevitas.inject import defines

    if not defines(injector, name):
        return None
    try:
        got = getattr(injector, name)
    except Exception:
        return None
    return bool(got) if isinstance(got, (bool, int)) else None


def _zero_point_is_zero(tensor_quant: nn.Module | None) -> bool:
    from brevitas.core.zero_point import ZeroPointImpl, ZeroZeroPoint

    if tensor_quant is None:
        return True
    declared = getattr(tensor_quant, "zero_point_impl", None)
    if isinstance(declared, nn.Module) and not isinstance(declared, ZeroZeroPoint):
        return False
    return not any(isinstance(m, ZeroPointImpl) and not isinstance(m, ZeroZeroPoint) for m in tensor_quant.modules())


def _same_state_layout(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return False
    return all(isinstance(sa[k], Tensor) and sa[k].shape == sb[k].shape for k in sa)


def _raising_component(exc: BaseException, tensor_quant: nn.Module | None) -> str:
    """``", raised by LsqScaling (scaling 'lsq' of plugin 'lsq' ...)"``: the innermost module of
    ``tensor_quant`` in the traceback, and the innermost one a plugin registered."""
    from brevitas.plugins import provider_of

    if tensor_quant is None:
        return ""
    members = {id(m) for m in tensor_quant.modules()}
    innermost = registered = None
    provider = None
    tb = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if candidate is not None and id(candidate) in members:
            innermost = candidate
            found = provider_of(candidate)
            if found:
                registered, provider = candidate, found
        tb = tb.tb_next
    if innermost is None:
        return ""
    text = f", raised by {type(innermost).__name__}"
    if registered is innermost:
        text += f" ({provider})"
    elif registered is not None:
        text += f" inside {type(registered).__name__} ({provider})"
    return text


def _add_context(exc: BaseException, context: str) -> None:
    if len(exc.args) == 1 and isinstance(exc.args[0], str):
        exc.args = (f"{context}: {exc.args[0]}",)
    else:
        exc.add_note(context)


def iter_proxies(module: nn.Module) -> Iterator[tuple[str, QuantProxy]]:
    """Every proxy in ``module`` with its qualified name (each shared proxy once).

    Example:
        >>> from brevitas.nn import QuantLinear
        >>> [name for name, p in iter_proxies(QuantLinear(2, 2, bias=False)) if p.is_quant_enabled]
        ['weight_quant']
    """
    for name, sub in module.named_modules():
        if isinstance(sub, QuantProxy):
            yield name, sub
