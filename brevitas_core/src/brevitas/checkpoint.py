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

Loads through this module are **all or nothing**: the keys and shapes are
checked before anything is copied, and if loading fails anyway the model's
previous state is put back, so a bad checkpoint never leaves a half-loaded
model.

Files: :func:`save_checkpoint` writes ``state_dict()`` (plus anything else,
e.g. the optimizer's state) atomically with a checksum;
:func:`load_checkpoint` reads it (or a plain ``torch.save(model.state_dict())``
file) and refuses a truncated or corrupt file, or one of another
architecture, with an error naming the file and the keys, leaving the model
untouched. A checkpoint taken in the middle of a statistics-collection phase
resumes exactly (counters and running statistics are buffers).

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
import hashlib
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from brevitas import config
from brevitas.errors import CheckpointError

__all__ = [
    "CHECKPOINT_FORMAT",
    "ignore_missing_quant_keys",
    "load_checkpoint",
    "load_float_state_dict",
    "load_state_dict",
    "quant_keys_ignored",
    "quant_state_keys",
    "save_checkpoint",
    "state_checksum",
]

#: marker and version of the files :func:`save_checkpoint` writes
CHECKPOINT_FORMAT = ("brevitas-checkpoint", 1)

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


def _short(keys: list[str], limit: int = 20) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def _mismatches(model: nn.Module, state_dict: Mapping[str, Any], strict: bool) -> list[str]:
    """Every key of ``state_dict`` that cannot load into ``model`` (checked before anything is copied)."""
    expected = model.state_dict()
    problems = []
    if strict:
        ignorable = set(quant_state_keys(model)) if quant_keys_ignored() else set()
        missing = [k for k in expected if k not in state_dict and k not in ignorable]
        unexpected = [k for k in state_dict if k not in expected]
        if missing:
            problems.append(f"missing from the checkpoint: {_short(missing)}")
        if unexpected:
            problems.append(f"not in the model: {_short(unexpected)}")
    wrong = []
    for key, value in state_dict.items():
        if key not in expected or not isinstance(expected[key], Tensor):
            continue
        want = tuple(expected[key].shape)
        if not isinstance(value, Tensor):
            wrong.append(f"{key} (a {type(value).__name__}, the model has a tensor of shape {want})")
            continue
        got = tuple(value.shape)
        if got != want and not (want == () and got == (1,)):  # torch accepts (1,) for a scalar
            wrong.append(f"{key} (checkpoint {got}, model {want})")
    if wrong:
        problems.append(f"wrong shape: {_short(wrong)}")
    return problems


def _load(model: nn.Module, state_dict: Mapping[str, Any], strict: bool, what: str) -> Any:
    from brevitas.nn.utils import name_quant_layers

    name_quant_layers(model)
    hint = (
        "Keys must match the model's state_dict() names and shapes; quantizer keys may be absent "
        "(load_float_state_dict ignores them), any other difference is an error. The model was not changed."
    )
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(f"cannot load {what} into {type(model).__name__}: expected a state_dict "
                              f"(a mapping of names to tensors), got {type(state_dict).__name__}")  # fmt: skip
    problems = _mismatches(model, state_dict, strict)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise CheckpointError(
            f"cannot load {what} into {type(model).__name__}: {len(problems)} problem(s)\n{lines}\n{hint}"
        )
    # all or nothing: if loading still fails (a component refusing a value), put the old state back
    backup = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    try:
        return model.load_state_dict(state_dict, strict=strict)
    except Exception as exc:
        with ignore_missing_quant_keys():
            model.load_state_dict(backup, strict=False)
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"cannot load {what} into {type(model).__name__}: {exc}\n{hint}") from exc


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


def state_checksum(state_dict: Mapping[str, Any]) -> str:
    """SHA-256 of a ``state_dict``'s names, dtypes, shapes and bytes (what :func:`save_checkpoint` records).

    Example:
        >>> import torch
        >>> a = state_checksum({"w": torch.ones(2)})
        >>> a == state_checksum({"w": torch.ones(2)}), a == state_checksum({"w": torch.zeros(2)})
        (True, False)
    """
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        value = state_dict[key]
        digest.update(key.encode())
        if isinstance(value, Tensor):
            t = value.detach().to("cpu").contiguous()
            digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
            digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def save_checkpoint(model: nn.Module, path: str | os.PathLike[str], **extra: Any) -> Path:
    """Write ``model.state_dict()`` to ``path`` atomically, with a checksum.

    The file is a ``torch.save`` of a dict (readable with
    ``torch.load(path, weights_only=True)``): the format marker, the model's
    class name, the ``state_dict``, its :func:`state_checksum` and ``extra``
    (anything ``weights_only`` loading accepts, e.g. an optimizer's
    ``state_dict()``). It is written to a temporary file next to ``path``
    and renamed, so an interrupted save never leaves a truncated checkpoint.

    Returns:
        The path written.

    Example:
        >>> import tempfile, torch
        >>> from brevitas.nn import QuantLinear
        >>> a, b = QuantLinear(4, 2, bias=False), QuantLinear(4, 2, bias=False)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = save_checkpoint(a, f"{d}/model.pt", step=3)
        ...     load_checkpoint(b, path)
        {'step': 3}
        >>> torch.equal(a.weight, b.weight)
        True
    """
    path = Path(path)
    state = {k: v.detach() if isinstance(v, Tensor) else v for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT[0],
        "version": CHECKPOINT_FORMAT[1],
        "model": type(model).__qualname__,
        "state_dict": state,
        "sha256": state_checksum(state),
        "extra": dict(extra),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(model: nn.Module, path: str | os.PathLike[str], strict: bool = True) -> dict[str, Any]:
    """Load a checkpoint file into ``model``, all or nothing.

    Reads a file written by :func:`save_checkpoint` (its checksum is
    verified) or a plain ``torch.save(model.state_dict(), path)``. Tensors are
    read on the CPU and copied into the model wherever it lives.

    Args:
        model: the model to load into.
        path: the file.
        strict: as in ``nn.Module.load_state_dict``.

    Returns:
        The ``extra`` entries given to :func:`save_checkpoint` (``{}`` for a
        plain state_dict file).

    Raises:
        CheckpointError: the file is missing, unreadable, truncated or corrupt,
            holds no state_dict, or its keys or shapes do not match the model
            (another architecture); the message names the file and the keys.
            The model is left exactly as it was.

    Example:
        >>> import tempfile, torch
        >>> from brevitas.nn import QuantLinear
        >>> with tempfile.TemporaryDirectory() as d:
        ...     path = save_checkpoint(QuantLinear(4, 2, bias=False), f"{d}/small.pt")
        ...     load_checkpoint(QuantLinear(8, 2, bias=False), path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        brevitas.errors.CheckpointError: cannot load the checkpoint file '...small.pt' into QuantLinear: 1 problem(s)
          - wrong shape: weight (checkpoint (2, 4), model (2, 8))
        ...
    """
    path = Path(path)
    what = f"the checkpoint file '{path}'"
    if not path.is_file():
        raise CheckpointError(f"{what} does not exist (or is not a file); the model was not changed")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"cannot read {what}: {type(exc).__name__}: {exc}. The file is truncated, corrupt, or not a "
            f"PyTorch checkpoint; the model was not changed. Save checkpoints with "
            f"brevitas.checkpoint.save_checkpoint, which writes them atomically."
        ) from exc
    extra: dict[str, Any] = {}
    if isinstance(payload, Mapping) and payload.get("format") == CHECKPOINT_FORMAT[0]:
        if payload.get("version") != CHECKPOINT_FORMAT[1]:
            raise CheckpointError(
                f"{what} has format version {payload.get('version')!r}; this Brevitas reads version "
                f"{CHECKPOINT_FORMAT[1]}. The model was not changed."
            )
        state_dict = payload.get("state_dict")
        if not isinstance(state_dict, Mapping) or state_checksum(state_dict) != payload.get("sha256"):
            raise CheckpointError(
                f"{what} is corrupt: its tensors do not match the checksum recorded when it was saved "
                f"(from a {payload.get('model', '?')}). The model was not changed; use another copy."
            )
        extra = dict(payload.get("extra") or {})
    elif isinstance(payload, Mapping) and all(isinstance(k, str) for k in payload):
        state_dict = payload
    else:
        raise CheckpointError(
            f"{what} holds a {type(payload).__name__}, not a state_dict; save model.state_dict() (or use "
            f"brevitas.checkpoint.save_checkpoint). The model was not changed."
        )
    _load(model, state_dict, strict, what)
    return extra
