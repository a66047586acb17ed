"""The ``brevitas export`` and ``brevitas check`` commands.

Both take a ``module:callable`` that builds the model (called without
arguments), an optional checkpoint (loaded with ``weights_only=True``, so a
checkpoint cannot run code) and the shape of each input::

    brevitas check  mypkg.models:cnv --exporter onnx-qop --input-shape 1,3,32,32
    brevitas export mypkg.models:cnv --exporter onnx-qcdq --input-shape 1,3,32,32 \\
        --checkpoint cnv.pt --output cnv.onnx --option opset_version=13

``check`` prints every problem (layer, constraint, fix) and exits with 1 when
there is one; ``export`` writes the file atomically, or prints the problems
and exits with 1. Wrong arguments exit with 2.

Example:
    >>> import argparse
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> add_export_commands(sub)
    >>> parse_shape("1,3,32,32")
    (1, 3, 32, 32)
"""

from __future__ import annotations

import argparse
import ast
import importlib
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_export_commands", "build_model", "parse_option", "parse_shape"]


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,32,32"`` (or ``1x3x32x32``) -> ``(1, 3, 32, 32)``.

    Raises:
        argparse.ArgumentTypeError: not a list of positive integers.
    """
    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape or any(s <= 0 for s in shape):
        raise argparse.ArgumentTypeError(
            f"input shape {text!r}: write positive integers separated by commas, e.g. 1,3,32,32"
        )
    return shape


def parse_option(text: str) -> tuple[str, Any]:
    """``"opset_version=13"`` -> ``("opset_version", 13)`` (values are Python literals, else strings).

    Example:
        >>> parse_option("int4=True"), parse_option("name=abc")
        (('int4', True), ('name', 'abc'))
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"option {text!r}: write NAME=VALUE, e.g. opset_version=13")
    try:
        value: Any = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = raw
    return key.strip(), value


def build_model(target: str, checkpoint: str | None = None) -> Any:
    """Import ``module:callable``, call it, and load ``checkpoint`` (``weights_only=True``) into the result.

    A checkpoint may be a state dict or a dict holding one under ``"state_dict"`` / ``"model"``.
    """
    import torch

    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"{target!r}: give the model builder as module:callable, e.g. mypkg.models:cnv")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    model = obj() if callable(obj) and not isinstance(obj, torch.nn.Module) else obj
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"{target} returned a {type(model).__name__}, not a torch.nn.Module")
    if checkpoint is not None:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if isinstance(state, dict):
            for key in ("state_dict", "model"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
        model.load_state_dict(state)
    return model.eval()


def _inputs(shapes: list[tuple[int, ...]] | None) -> tuple[Any, ...]:
    import torch

    generator = torch.Generator().manual_seed(0)
    return tuple(torch.randn(*shape, generator=generator) for shape in (shapes or []))


def _prepare(args: argparse.Namespace) -> tuple[Any, tuple[Any, ...], dict[str, Any]] | None:
    try:
        model = build_model(args.model, args.checkpoint)
    except Exception as exc:
        print(f"brevitas {args.command}: cannot build the model: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    if not args.input_shape:
        print(f"brevitas {args.command}: give --input-shape (once per input), e.g. --input-shape 1,3,32,32",
              file=sys.stderr)  # fmt: skip
        return None
    return model, _inputs(args.input_shape), dict(args.option or [])


def _cmd_check(args: argparse.Namespace) -> int:
    import brevitas.export as bx
    from brevitas.errors import UnknownNameError

    prepared = _prepare(args)
    if prepared is None:
        return 2
    model, inputs, options = prepared
    try:
        problems = bx.check(model, inputs, exporter=args.exporter, **options)
    except UnknownNameError as exc:
        print(f"brevitas check: {exc}", file=sys.stderr)
        return 2
    if not problems:
        print(f"{args.model}: no problems; it can be exported with {args.exporter}")
        return 0
    print(f"{args.model}: {len(problems)} problem(s) exporting with {args.exporter}")
    for p in problems:
        print(f"  - {p}")
    return 1


def _cmd_export(args: argparse.Namespace) -> int:
    import brevitas.export as bx
    from brevitas.errors import ExportError, UnknownNameError

    prepared = _prepare(args)
    if prepared is None:
        return 2
    model, inputs, options = prepared
    try:
        backend = bx.get_exporter(args.exporter)
    except UnknownNameError as exc:
        print(f"brevitas export: {exc}", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else Path(args.model.rpartition(":")[2].split(".")[-1] + backend.suffix)
    try:
        bx.export(model, inputs, exporter=args.exporter, path=output, **options)
    except bx.ExportCheckError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except ExportError as exc:
        print(f"brevitas export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {output} ({args.exporter}, {output.stat().st_size} bytes)")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="module:callable building the model, e.g. mypkg.models:cnv")
    p.add_argument("--exporter", required=True, help="exporter name (brevitas plugins lists them)")
    p.add_argument("--input-shape", type=parse_shape, action="append", metavar="SHAPE",
                   help="shape of an example input, e.g. 1,3,32,32 (repeat for several inputs)")  # fmt: skip
    p.add_argument("--checkpoint", help="state dict to load (torch.load with weights_only=True)")
    p.add_argument("--option", type=parse_option, action="append", metavar="NAME=VALUE",
                   help="exporter option, e.g. opset_version=13 (repeatable)")  # fmt: skip


def add_export_commands(sub: Any) -> None:
    """Add ``export`` and ``check`` to the ``brevitas`` command's subparsers."""
    e = sub.add_parser("export", help="export a model with a registered exporter")
    _common(e)
    e.add_argument("--output", help="file to write (default: the callable's name with the exporter's suffix)")
    e.set_defaults(func=_cmd_export, command="export")

    c = sub.add_parser("check", help="list every problem exporting a model would meet, without exporting")
    _common(c)
    c.set_defaults(func=_cmd_check, command="check")
