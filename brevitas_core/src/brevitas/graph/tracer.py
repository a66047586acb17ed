"""Trace a float model into a ``torch.fx`` graph, with errors that say what could not be traced.

:func:`trace` is the first step of :func:`brevitas.graph.quantize`. It runs
``torch.fx`` symbolic tracing with :class:`GraphTracer`, which keeps whole
(as ``call_module`` nodes):

- every ``torch.nn`` layer (the ``torch.fx`` default) except containers;
- every module that already owns quantizers (``brevitas.nn`` layers,
  proxies), so a partly quantized model traces too;
- the modules named in ``leaf_modules`` (qualified-name glob patterns such
  as ``"head.*"``, or classes), which are then left as they are.

User modules are traced through, so ``x + y``, ``torch.cat``, ``F.relu`` and
``x.flatten(1)`` inside them become graph nodes.

A model that cannot be traced raises :class:`UntraceableModelError` naming
the module being traced, the construct (data-dependent control flow, ``len``
or iteration over a tensor ...) with its source line, and what to do: mark
the module as a leaf (it then stays in float) or rewrite the construct.

Example:
    >>> import torch
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = torch.nn.Linear(4, 4)
    ...     def forward(self, x):
    ...         return torch.relu(self.fc(x)) + x
    >>> gm = trace(Net())
    >>> [n.op for n in gm.graph.nodes]
    ['placeholder', 'call_module', 'call_function', 'call_function', 'output']
"""

from __future__ import annotations

import fnmatch
import re
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
import torch.fx
from torch import nn

from brevitas.errors import BrevitasError

__all__ = [
    "GraphTracer",
    "LeafSpec",
    "UntraceableModelError",
    "enclosing_module",
    "is_quant_module",
    "matches_leaf",
    "trace",
]

#: a leaf-module specification: a qualified-name glob (``"head.*"``), a compiled regex, or a module class
LeafSpec = str | re.Pattern[str] | type


class UntraceableModelError(BrevitasError, RuntimeError):
    """``torch.fx`` could not trace the model; the message names the module, the construct and the fix.

    Attributes:
        module: qualified name of the module being traced when it failed (``""`` for the model itself).
        construct: what could not be traced, with its source line when known.
    """

    def __init__(self, message: str, module: str = "", construct: str = "") -> None:
        super().__init__(message)
        self.module = module
        self.construct = construct


def matches_leaf(name: str, module: nn.Module, specs: Iterable[LeafSpec]) -> bool:
    """Whether ``module`` (qualified name ``name``) matches one of the leaf specifications.

    Example:
        >>> matches_leaf("head.fc", torch.nn.Linear(1, 1), ["head.*"]), matches_leaf("fc", torch.nn.ReLU(), [])
        (True, False)
    """
    for spec in specs:
        if isinstance(spec, type):
            if isinstance(module, spec):
                return True
        elif isinstance(spec, re.Pattern):
            if spec.fullmatch(name):
                return True
        elif fnmatch.fnmatchcase(name, spec):
            return True
    return False


def is_quant_module(module: nn.Module) -> bool:
    """A module that owns quantizers: a proxy, a ``brevitas.nn`` layer, or a module with a proxy child.

    Example:
        >>> from brevitas.nn import QuantReLU
        >>> is_quant_module(QuantReLU()), is_quant_module(torch.nn.ReLU())
        (True, False)
    """
    from brevitas.nn.quant_layer import QuantLayerMixin
    from brevitas.proxy import QuantProxy

    if isinstance(module, (QuantProxy, QuantLayerMixin)):
        return True
    return any(isinstance(child, QuantProxy) for child in module.children())


class GraphTracer(torch.fx.Tracer):
    """``torch.fx`` tracer keeping ``torch.nn`` layers, quant layers and the configured leaves whole.

    Args:
        leaf_modules: qualified-name globs, regexes or classes of modules not
            to trace through.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.ReLU()))
        >>> graph = GraphTracer(leaf_modules=["1"]).trace(model)
        >>> [str(n.target) for n in graph.nodes if n.op == "call_module"]
        ['0', '1']
    """

    def __init__(self, leaf_modules: Sequence[LeafSpec] = ()) -> None:
        super().__init__()
        self.leaf_modules = tuple(leaf_modules)

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if is_quant_module(m):
            return True
        if self.leaf_modules and matches_leaf(module_qualified_name, m, self.leaf_modules):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def enclosing_module(node: torch.fx.Node) -> str:
    """Qualified name of the module whose ``forward`` produced ``node`` (``""`` for the top level).

    For a ``call_module`` node it is the parent of the called module.

    Example:
        >>> import torch
        >>> gm = trace(torch.nn.Sequential(torch.nn.Sequential(torch.nn.ReLU())))
        >>> [enclosing_module(n) for n in gm.graph.nodes if n.op == "call_module"]
        ['0']
    """
    if node.op == "call_module":
        target = str(node.target)
        return target.rpartition(".")[0]
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1]
    return str(path[0] if isinstance(path, tuple) else path)


_TORCH_DIR = Path(torch.__file__).resolve().parent

_CONSTRUCTS = (
    ("cannot be used as inputs to control flow", "data-dependent control flow (if / while / bool() on a tensor)"),
    ("'len' is not supported", "len() of a tensor"),
    ("cannot be iterated", "iteration over a tensor (for ... in x, or unpacking it)"),
    ("not 'Proxy'", "a tensor used as a Python value (int(), float(), an index, a numpy call ...)"),
    ("__index__", "a tensor used as a Python value (int(), float(), an index, a numpy call ...)"),
)


def _user_frame(exc: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of the traceback outside torch (the user's line)."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        try:
            path = Path(frame.filename).resolve()
        except (OSError, RuntimeError):  # pragma: no cover - odd file names
            continue
        if _TORCH_DIR in path.parents:
            continue
        if frame.name == "trace" and path.name == "tracer.py" and path.parent.name == "graph":
            continue
        return frame
    return None


def _describe_construct(exc: BaseException) -> str:
    text = str(exc)
    kind = next((label for needle, label in _CONSTRUCTS if needle in text), None)
    if kind is None:
        first = text.strip().splitlines()[0] if text.strip() else ""
        kind = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    frame = _user_frame(exc)
    if frame is not None:
        line = (frame.line or "").strip()
        where = f"{Path(frame.filename).name}:{frame.lineno}, in {frame.name}"
        return f"{kind} at `{line}` ({where})" if line else f"{kind} ({where})"
    return kind


def trace(model: nn.Module, leaf_modules: Sequence[LeafSpec] = ()) -> torch.fx.GraphModule:
    """Trace ``model`` into a ``torch.fx.GraphModule`` (the model's modules are shared, not copied).

    Args:
        model: the float (or partly quantized) model.
        leaf_modules: modules not to trace through (qualified-name globs,
            regexes or classes).

    Returns:
        The graph module; its submodules are the model's own objects.

    Raises:
        UntraceableModelError: naming the module being traced, the construct
            and its source line, and the two fixes (leaf or rewrite).

    Example:
        >>> import torch
        >>> class Gate(torch.nn.Module):
        ...     def forward(self, x):
        ...         if x.sum() > 0:
        ...             return x
        ...         return -x
        >>> try:
        ...     trace(torch.nn.Sequential(torch.nn.Linear(2, 2), Gate()))
        ... except UntraceableModelError as err:
        ...     print(err.module, "|", err.construct.split(" at ")[0])
        1 | data-dependent control flow (if / while / bool() on a tensor)
    """
    tracer = GraphTracer(leaf_modules)
    try:
        graph = tracer.trace(model)
    except BrevitasError:
        raise
    except Exception as exc:
        stack = list(getattr(tracer, "module_stack", {}).values())
        where = ""
        if stack:
            last = stack[-1]
            where = str(last[0] if isinstance(last, tuple) else last)
        construct = _describe_construct(exc)
        explain = (
            "torch.fx records forward() symbolically, so Python code that depends on tensor values cannot be captured."
        )
        rewrite = (
            "rewrite the construct with tensor operations (e.g. torch.where instead of if, x.shape[0] instead of "
            "len(x))"
        )
        if where:
            module = model.get_submodule(where)
            message = (
                f"cannot trace module {where!r} ({type(module).__name__}): {construct}. {explain} Either keep that "
                f"module whole, in float, with QuantConfig(leaf_modules=[{where!r}]) (nothing inside it is then "
                f"quantized), or {rewrite}"
            )
        else:
            message = (
                f"cannot trace the model ({type(model).__name__}) in its own forward(): {construct}. {explain} "
                f"Move that code into a submodule and keep it whole with QuantConfig(leaf_modules=[...]), or {rewrite}"
            )
        raise UntraceableModelError(message, module=where, construct=construct) from exc
    return torch.fx.GraphModule(tracer.root, graph, type(model).__name__)
