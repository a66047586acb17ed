"""The main job: quantization-aware training of a LeNet on digits, then export to every backend.

``brevitas demo`` (or :func:`run_demo`) does, with a fixed seed:

1. trains the float LeNet and the documented QuantLeNet (4-bit weights, 8-bit
   activations by default) the same way on scikit-learn's digits (80/20 split);
2. prints both test accuracies and a table of what was quantized per layer;
3. for every installed exporter: checks the model; exports it and runs the
   file in the exporter's real consumer (onnxruntime, qonnx, PyTorch, the PyXIR
   contract executor), comparing with PyTorch on the whole test set; or, when
   the check refuses the configuration, prints the reason and exports a
   configuration that fits instead (8-bit everywhere, or fixed-point), trained
   from the float weights;
4. writes every artifact and ``summary.json`` into the output folder.

Example:
    >>> from brevitas.demo import DemoOptions
    >>> DemoOptions(epochs=1).weight_bit_width
    4
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from brevitas.demo.data import DigitsSplit, load_digits_split
from brevitas.demo.models import FloatLeNet, build_quant_lenet
from brevitas.demo.train import accuracy, predict, train

__all__ = ["DemoOptions", "layer_table", "run_demo"]

#: configurations tried, in order, when an exporter refuses the demo's own
FALLBACK_CONFIGS = ("int8", "fixed-point")


@dataclass
class DemoOptions:
    """Everything ``brevitas demo`` can be told."""

    weight_bit_width: int = 4
    act_bit_width: int = 8
    epochs: int = 12
    fine_tune_epochs: int = 4
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    exporters: list[str] | None = None  # None: every installed exporter
    output: Path = field(default_factory=lambda: Path("brevitas-demo"))
    progress: bool = True
    #: activation scales: statistics for this many steps, then learned (the
    #: demo trains a few hundred steps, shorter than the quantizers' default)
    collect_stats_steps: int = 30


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def layer_table(model: nn.Module, example: torch.Tensor) -> list[dict[str, Any]]:
    """One row per quantizer of ``model``: bit-width, scale kind, whether it learns.

    Example:
        >>> import torch
        >>> from brevitas.demo.models import QuantLeNet
        >>> rows = layer_table(QuantLeNet(), torch.rand(1, 1, 8, 8))
        >>> rows[1]["quantizer"], rows[1]["bit_width"]
        ('conv1.weight_quant', 4)
    """
    from brevitas.export.description import capture

    modules = dict(model.named_modules())
    rows = []
    for name, desc in capture(model, example).items():
        proxy = modules.get(name)
        learned = proxy is not None and any(p.requires_grad for p in proxy.parameters(recurse=True))
        per = "per-channel" if desc.per_channel_axis is not None else "per-tensor"
        kind = "power-of-two" if desc.scale_is_power_of_two else "float"
        rows.append(
            {
                "quantizer": name,
                "role": desc.role,
                "type": desc.quant_type,
                "bit_width": desc.bit_width,
                "signed": desc.signed,
                "scale": f"{per} {kind}",
                "learned": "yes" if learned else "no",
                "by": desc.quantizer,
            }
        )
    return rows


def _print_table(headers: list[str], rows: list[list[Any]], echo: Callable[[str], None]) -> None:
    from brevitas.cli import render_table

    echo(render_table(headers, rows))


def _deploy_one(
    name: str,
    models: dict[str, nn.Module],
    make_config: Callable[[str], nn.Module],
    split: DigitsSplit,
    out_dir: Path,
    echo: Callable[[str], None],
) -> dict[str, Any]:
    import brevitas.export as bx

    backend = bx.get_exporter(name)
    example = split.x_test[:1]
    record: dict[str, Any] = {"exporter": name, "consumer": backend.consumer}
    config = "default"
    problems = bx.check(models[config], example, exporter=name)
    if problems:
        record["refused"] = [str(p) for p in problems]
        echo(f"  {name}: the demo's configuration is refused:")
        for p in problems[:6]:
            echo(f"    - {p}")
        if len(problems) > 6:
            echo(f"    ... and {len(problems) - 6} more")
        for candidate in FALLBACK_CONFIGS:
            model = models.get(candidate) or make_config(candidate)
            models[candidate] = model
            if not bx.check(model, example, exporter=name):
                config = candidate
                echo(f"  {name}: exporting the '{candidate}' configuration instead")
                break
        else:
            record["status"] = "refused"
            return record
    model = models[config]
    path = out_dir / f"lenet-{config}-{name}{backend.suffix}"
    t0 = time.perf_counter()
    # a dynamic batch dimension, so the consumer runs the whole test set at once
    bx.export(model, example, exporter=name, path=path, dynamic_batch=True)
    record["export_s"] = round(time.perf_counter() - t0, 3)
    reference = predict(model, split.x_test)
    produced = torch.as_tensor(np.asarray(backend.run(str(path), split.x_test)[0]), dtype=reference.dtype)
    diff = (produced - reference).abs().max().item()
    record.update(
        {
            "status": "verified",
            "config": config,
            "file": str(path),
            "size_bytes": path.stat().st_size,
            "max_abs_diff": diff,
            "accuracy_pytorch": float((reference.argmax(1) == split.y_test).float().mean() * 100),
            "accuracy_consumer": float((produced.argmax(1) == split.y_test).float().mean() * 100),
        }
    )
    return record


def run_demo(options: DemoOptions | None = None, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo; returns the summary also written to ``<output>/summary.json``."""
    import brevitas.export as bx
    from brevitas.checkpoint import load_float_state_dict

    opts = options or DemoOptions()
    out_dir = Path(opts.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    split = load_digits_split(seed=opts.seed)
    echo(f"digits: {len(split.y_train)} train / {len(split.y_test)} test images (8x8), seed {opts.seed}")
    train_kw = {
        "epochs": opts.epochs,
        "batch_size": opts.batch_size,
        "lr": opts.lr,
        "seed": opts.seed,
        "progress": opts.progress,
    }

    _seed(opts.seed)
    float_model = FloatLeNet()
    train(float_model, split.x_train, split.y_train, desc="float", **train_kw)
    float_acc = accuracy(float_model, split.x_test, split.y_test)

    _seed(opts.seed)
    quant_model = build_quant_lenet(
        weight_bit_width=opts.weight_bit_width,
        act_bit_width=opts.act_bit_width,
        collect_stats_steps=opts.collect_stats_steps,
    )
    train(
        quant_model, split.x_train, split.y_train, desc=f"QAT {opts.weight_bit_width}/{opts.act_bit_width}", **train_kw
    )
    quant_acc = accuracy(quant_model, split.x_test, split.y_test)
    echo(
        f"test accuracy: float {float_acc:.2f}%   "
        f"quantized ({opts.weight_bit_width}-bit weights, {opts.act_bit_width}-bit activations) {quant_acc:.2f}%"
    )

    layers = layer_table(quant_model, split.x_test[:1])
    echo("\nwhat was quantized:")
    _print_table(
        ["quantizer", "role", "type", "bits", "signed", "scale", "learned"],
        [[r["quantizer"], r["role"], r["type"], r["bit_width"], r["signed"], r["scale"], r["learned"]] for r in layers],
        echo,
    )

    def make_config(config: str) -> nn.Module:
        _seed(opts.seed)
        model = build_quant_lenet(config, collect_stats_steps=opts.collect_stats_steps)
        load_float_state_dict(model, float_model.state_dict())
        train(
            model,
            split.x_train,
            split.y_train,
            desc=f"fine-tune {config}",
            **{**train_kw, "epochs": opts.fine_tune_epochs, "lr": opts.lr / 3},
        )
        return model

    installed = sorted(bx.exporters())
    wanted = installed if opts.exporters is None else [e.lower() for e in opts.exporters if e.lower() != "none"]
    echo(f"\nexporters installed: {', '.join(installed) or 'none'}")
    models: dict[str, nn.Module] = {"default": quant_model}
    deployments = []
    for name in wanted:
        try:
            record = _deploy_one(name, models, make_config, split, out_dir, echo)
        except Exception as exc:
            record = {"exporter": name, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
        deployments.append(record)

    echo("\ndeployment:")
    rows = []
    for r in deployments:
        if r["status"] == "verified":
            rows.append(
                [
                    r["exporter"],
                    r["config"],
                    Path(r["file"]).name,
                    f"{r['size_bytes'] / 1024:.1f} KiB",
                    r["consumer"],
                    f"{r['max_abs_diff']:.2e}",
                    f"{r['accuracy_consumer']:.2f}%",
                ]
            )
        else:
            reason = r.get("error") or (r.get("refused") or ["?"])[0]
            rows.append([r["exporter"], "-", "-", "-", r.get("consumer", "-"), r["status"], reason[:60]])
    _print_table(["exporter", "config", "file", "size", "consumer", "max |diff|", "accuracy"], rows, echo)

    summary = {
        "options": {**asdict(opts), "output": str(opts.output)},
        "float_accuracy": float_acc,
        "quant_accuracy": quant_acc,
        "layers": layers,
        "deployments": deployments,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    echo(f"\nsummary: {out_dir / 'summary.json'}  ({summary['seconds']} s)")
    return summary
