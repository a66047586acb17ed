"""Export a quantized model by name: ``export(model, args, exporter="qonnx", path=...)``.

Exporters are plugins (registry kind ``exporter``); :func:`exporters` lists
what is installed. Every export first runs the exporter's check, which reports
each offending layer with the constraint and the fix, and nothing is written
unless the whole export succeeds (the file appears atomically).

Example:
    >>> import brevitas.export as bx
    >>> isinstance(bx.exporters(), dict)
    True
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torch import nn

from brevitas.errors import BrevitasError, ExportError, add_context
from brevitas.export.base import ExportCheckError, Exporter, Problem

__all__ = ["ExportCheckError", "Exporter", "Problem", "check", "export", "exporters", "get_exporter"]


def exporters() -> dict[str, str]:
    """Installed exporters: name -> one-line description (with the providing plugin)."""
    from brevitas.plugins import get_registry

    out = {}
    for entry in get_registry().entries("exporter"):
        text = (entry.description or entry.impl.__doc__ or "").strip()
        first = text.splitlines()[0] if text else ""
        out[entry.name] = f"{first} [{entry.provider}]".strip()
    return out


def get_exporter(name: str) -> Exporter:
    """An instance of the exporter registered as ``name``.

    Raises:
        UnknownNameError: lists the installed exporters and, for a first-party
            name, the distribution to install.
    """
    from brevitas.plugins import get_registry

    impl = get_registry().get("exporter", name)
    return impl() if isinstance(impl, type) else impl


def _normalize_args(args: Any) -> tuple[Any, ...]:
    return tuple(args) if isinstance(args, (tuple, list)) else (args,)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run a block with ``model`` in eval mode, restoring each module's mode after.

    Exporters capture inference behaviour (frozen statistics, inference-mode
    QuantTensor checks), so a model still in training mode is exported as it
    behaves in eval mode, and handed back in the mode it came in.
    """
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes.items():
            m.training = mode


def check(model: nn.Module, args: Any, exporter: str = "qonnx", **options: Any) -> list[Problem]:
    """Every reason ``model`` cannot be exported by ``exporter``, without exporting.

    Example:
        >>> # problems = brevitas.export.check(model, torch.randn(1, 3, 32, 32), exporter="pyxir")
    """
    backend = get_exporter(exporter)
    with eval_mode(model):
        try:
            return list(backend.check(model, _normalize_args(args), **options))
        except Exception as exc:
            _blame(exc, backend, exporter)
            raise


def export(
    model: nn.Module,
    args: Any,
    exporter: str = "qonnx",
    path: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Any:
    """Export ``model`` with the exporter registered as ``exporter``.

    Args:
        model: the quantized model (exported as it behaves in eval mode).
        args: example input, or a tuple of inputs.
        exporter: registered exporter name (see :func:`exporters`).
        path: where to write; the file appears atomically or not at all.
        options: exporter options (e.g. ``opset_version``).

    Returns:
        The exported artifact (e.g. an ``onnx.ModelProto``).

    Raises:
        ExportCheckError: the model breaks the target's constraints; lists each
            layer, the constraint and the fix. Nothing is written.
    """
    backend = get_exporter(exporter)
    args = _normalize_args(args)
    with eval_mode(model):
        try:
            problems = list(backend.check(model, args, **options))
        except Exception as exc:
            _blame(exc, backend, exporter)
            raise
        if problems:
            raise ExportCheckError(backend.name or exporter, problems)
        try:
            artifact = backend.export(model, args, **options)
        except Exception as exc:
            _blame(exc, backend, exporter)
            raise
    if path is not None:
        write_atomically(backend, artifact, Path(path))
    return artifact


def _blame(exc: BaseException, backend: Exporter, exporter: str) -> None:
    """Error path: an exporter crashed (not a deliberate Brevitas error); say which plugin provided it."""
    if isinstance(exc, BrevitasError):
        return
    try:
        from brevitas.plugins import provider_of

        provider = provider_of(backend) or f"exporter {exporter!r}"
    except Exception:  # never hide the real error behind a failure to describe it
        provider = f"exporter {exporter!r}"
    add_context(exc, f"raised inside {provider}")


def write_atomically(backend: Exporter, artifact: Any, path: Path) -> None:
    """Save to a temporary file beside ``path``, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        backend.save(artifact, Path(tmp))
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, ExportError):
            raise
        if isinstance(exc, Exception):
            raise ExportError(f"writing {path} with exporter {backend.name!r} failed: {exc}") from exc
        raise
