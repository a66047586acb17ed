"""The ``brevitas`` command line.

Subcommands:

- ``brevitas plugins [--json]``: every discovered plugin, its distribution,
  version, status and what it registered.
- ``brevitas describe DOTTED.NAME [--json]``: every option of a quantizer, who
  set it and what it solves to.
- ``brevitas export MODULE:CALLABLE --exporter NAME --input-shape 1,3,32,32
  [--checkpoint FILE] [--output PATH]`` and ``brevitas check ...``: export a
  model, or list every problem exporting it would meet
  (:mod:`brevitas.export.commands`).

Each subcommand lives in a small function; new ones are added to
:func:`build_parser`.

Example:
    >>> from brevitas.cli import build_parser
    >>> build_parser().parse_args(["plugins", "--json"]).json
    True
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["build_parser", "main", "render_table"]


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Render rows as an aligned plain-text table.

    Example:
        >>> print(render_table(["a", "bb"], [[1, 2], [10, 20]]))
        a   bb
        --  --
        1   2
        10  20
    """
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cmd_plugins(args: argparse.Namespace) -> int:
    from brevitas.plugins import plugin_manager

    pm = plugin_manager()
    infos = sorted(pm.plugins.values(), key=lambda p: p.name)
    if args.json:
        print(json.dumps([p.to_dict() for p in infos], indent=2))
        return 0
    rows = []
    for p in infos:
        status = p.status if not p.error else f"{p.status}: {p.error}"
        rows.append([p.name, p.distribution, p.version, status, len(p.registered)])
    if not rows:
        print("No brevitas plugins are installed (entry-point group 'brevitas').")
        return 0
    print(render_table(["plugin", "distribution", "version", "status", "names"], rows))
    for p in infos:
        if not p.registered:
            continue
        kinds: dict[str, list[str]] = {}
        for kind, name in p.registered:
            kinds.setdefault(kind, []).append(name)
        print(f"\n{p.name} registered:")
        for kind, names in sorted(kinds.items()):
            print(f"  {kind:<15} {', '.join(names)}")
    failed = pm.failed()
    if failed:
        print(f"\n{len(failed)} plugin(s) failed; the others work. Set BREVITAS_VERBOSE=1 for tracebacks.")
    return 0


def _import_dotted(dotted: str) -> Any:
    """Import ``pkg.module.Attr`` or ``pkg.module:Attr``."""
    if ":" in dotted:
        module_name, _, attr = dotted.partition(":")
        return getattr(importlib.import_module(module_name), attr)
    parts = dotted.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    return importlib.import_module(dotted)


def _cmd_describe(args: argparse.Namespace) -> int:
    from brevitas.quantizer_info import describe

    try:
        quant = _import_dotted(args.name)
    except (ImportError, AttributeError) as exc:
        print(f"brevitas describe: cannot import {args.name!r}: {exc}", file=sys.stderr)
        print("Give a dotted path such as brevitas.quant.scaled_int.Int8WeightPerTensorFloat", file=sys.stderr)
        return 2
    desc = describe(quant)
    print(json.dumps(desc.to_dict(), indent=2, default=str) if args.json else desc)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from brevitas.demo import DemoOptions, run_demo

    opts = DemoOptions(
        weight_bit_width=args.weight_bit_width,
        act_bit_width=args.act_bit_width,
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        seed=args.seed,
        exporters=args.exporters.split(",") if args.exporters else None,
        output=Path(args.output),
        progress=not args.no_progress,
    )
    summary = run_demo(opts)
    failed = [d for d in summary["deployments"] if d["status"] == "error"]
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``brevitas`` command."""
    parser = argparse.ArgumentParser(prog="brevitas", description="Brevitas: quantization-aware training for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plugins", help="list discovered plugins and what they registered")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_plugins)

    d = sub.add_parser("describe", help="show every option of a quantizer and what it solves to")
    d.add_argument("name", help="dotted name, e.g. brevitas.quant.scaled_int.Int8WeightPerTensorFloat")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.set_defaults(func=_cmd_describe)

    m = sub.add_parser("demo", help="QAT of a LeNet on digits, then export to every installed backend")
    m.add_argument("--weight-bit-width", type=int, default=4)
    m.add_argument("--act-bit-width", type=int, default=8)
    m.add_argument("--epochs", type=int, default=12, help="training epochs of the float and quantized models")
    m.add_argument("--fine-tune-epochs", type=int, default=4, help="epochs for configurations made for a target")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument(
        "--exporters", default="", help="comma-separated exporter names (default: every installed; 'none': no export)"
    )
    m.add_argument("--output", default="brevitas-demo", help="folder for the artifacts and summary.json")
    m.add_argument("--no-progress", action="store_true", help="no progress bars")
    m.set_defaults(func=_cmd_demo)

    from brevitas.export.commands import add_export_commands

    add_export_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
