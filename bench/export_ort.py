"""Exported int8 models in onnxruntime vs the fp32 ONNX of the same float model, and export time.

A CNV-like CNN (six 3x3 convolutions of 64 to 256 channels, two linear
layers, 32x32 input; ReLUs realized by the unsigned 8-bit output quantizers
of the convolutions) is quantized to 8 bits (per-channel weights, int32
biases, 8-bit activations) and exported with each exporter. Printed, measured
in one run side by side (onnxruntime on the CPU, one intra-op thread, median
latency):

- the speed-up of each int8 export over the fp32 ONNX of the float model
  (target: at least 1.8x), at batch 1 and 32;
- the speed-up over onnxruntime's own static quantization of the float model
  (``onnxruntime.quantization.quantize_static``, QDQ, per-channel; target: at
  least as fast). onnxruntime fuses both into the same integer graph
  (QLinearConv, QGemm), so the expected ratio is 1.0; a ratio below 0.97,
  beyond the run-to-run noise of interleaved medians, counts as a miss;
- the ``torch-quantized`` program in PyTorch next to the float model in PyTorch
  (informative: it computes quantize-clamp-dequantize in float, for exactness);
- the export time of a quantized ResNet-18 per exporter (target: under 10 s).

    python bench/export_ort.py [--runs N] [--threads T]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

SPEEDUP_TARGET = 1.8
#: "at least as fast" as onnxruntime's own quantization, less the measurement noise
ORT_RATIO_TARGET = 0.97
EXPORT_TIME_TARGET_S = 10.0


# ----------------------------------------------------------------------------- models
def float_cnv() -> nn.Module:
    """The float CNV-like CNN."""
    chans = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256)]
    layers: list[nn.Module] = []
    for i, (cin, cout) in enumerate(chans):
        layers += [nn.Conv2d(cin, cout, 3), nn.ReLU()]
        if i in (1, 3):
            layers.append(nn.MaxPool2d(2))
    layers += [nn.Flatten(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 10)]
    return nn.Sequential(*layers)


def quant_cnv(float_model: nn.Module) -> nn.Module:
    """The same CNN quantized to 8 bits, with the float model's weights."""
    from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantMaxPool2d
    from brevitas.quant.scaled_int import (
        Int8ActPerTensorFloat,
        Int8WeightPerChannelFloat,
        Int32Bias,
        Uint8ActPerTensorFloat,
    )

    common = dict(weight_quant=Int8WeightPerChannelFloat, bias_quant=Int32Bias, return_quant_tensor=True)
    layers: list[nn.Module] = [QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True)]
    for m in float_model:
        if isinstance(m, nn.Conv2d):
            q = QuantConv2d(m.in_channels, m.out_channels, 3, output_quant=Uint8ActPerTensorFloat, **common)
            q.load_state_dict(m.state_dict(), strict=False)
            layers.append(q)
        elif isinstance(m, nn.MaxPool2d):
            layers.append(QuantMaxPool2d(2))
        elif isinstance(m, nn.Flatten):
            layers.append(nn.Flatten())
        elif isinstance(m, nn.Linear):
            last = m.out_features == 10
            out_q = Int8ActPerTensorFloat if last else Uint8ActPerTensorFloat
            q = QuantLinear(m.in_features, m.out_features, output_quant=out_q, **common)
            q.return_quant_tensor = not last
            q.load_state_dict(m.state_dict(), strict=False)
            layers.append(q)
    return nn.Sequential(*layers)


def quant_resnet18() -> nn.Module:
    """A quantized ResNet-18 (ImageNet-sized: 11.7 M parameters) for the export time."""
    from brevitas.nn import QuantConv2d, QuantEltwiseAdd, QuantIdentity, QuantLinear, QuantReLU
    from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int32Bias

    def conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Module:
        return QuantConv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False,
                           weight_quant=Int8WeightPerChannelFloat, output_quant=Int8ActPerTensorFloat)  # fmt: skip

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1, self.bn1 = conv(cin, cout, 3, stride), nn.BatchNorm2d(cout)
            self.relu1 = QuantReLU(return_quant_tensor=True)
            self.conv2, self.bn2 = conv(cout, cout, 3), nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))
            self.add = QuantEltwiseAdd()
            self.relu2 = QuantReLU(return_quant_tensor=True)

        def forward(self, x: Any) -> Any:
            y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            shortcut = x if self.down is None else self.down(x)
            return self.relu2(self.add(y, shortcut))

    class ResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inp = QuantIdentity(return_quant_tensor=True)
            self.stem = conv(3, 64, 7, 2)
            self.bn = nn.BatchNorm2d(64)
            self.relu = QuantReLU(return_quant_tensor=True)
            self.pool = nn.MaxPool2d(3, 2, 1)
            blocks, cin = [], 64
            for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                blocks += [Block(cin, cout, stride), Block(cout, cout, 1)]
                cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.avg = nn.AdaptiveAvgPool2d(1)
            self.fc = QuantLinear(512, 1000, input_quant=Int8ActPerTensorFloat, output_quant=Int8ActPerTensorFloat,
                                  bias_quant=Int32Bias)

        def forward(self, x: Any) -> Any:
            x = self.relu(self.bn(self.stem(self.inp(x))))
            x = self.blocks(self.pool(x))
            return self.fc(torch.flatten(self.avg(x), 1))

    return ResNet18()


def calibrate(model: nn.Module, shape: tuple[int, ...], steps: int = 4) -> None:
    """Gather activation statistics in training mode, then switch to eval."""
    model.train()
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(*shape))
    model.eval()


# ----------------------------------------------------------------------------- timing
def median_latency(fn: Callable[[], Any], runs: int, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ort_latencies(models: dict[str, bytes], x: np.ndarray, runs: int, threads: int) -> dict[str, float]:
    """Median latency of each model, measured interleaved (one run of each in turn) so drift hits all alike."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    calls = {}
    for key, model_bytes in models.items():
        sess = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        calls[key] = (lambda s, f: (lambda: s.run(None, f)))(sess, feed)
    times: dict[str, list[float]] = {key: [] for key in calls}
    for _ in range(5):
        for fn in calls.values():
            fn()
    for _ in range(runs):
        for key, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    return {key: statistics.median(v) for key, v in times.items()}


def ort_static_quantization(fp32: Any, folder: Path) -> bytes:
    """onnxruntime's own static quantization of the fp32 model (QDQ, per-channel, random calibration)."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self, name: str) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{name: rng.standard_normal((8, 3, 32, 32)).astype(np.float32)} for _ in range(4)])

        def get_next(self) -> Any:
            return next(self.batches, None)

    src, dst = folder / "fp32.onnx", folder / "ort_int8.onnx"
    onnx.save(fp32, str(src))
    quantize_static(
        str(src),
        str(dst),
        Reader(fp32.graph.input[0].name),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    return dst.read_bytes()


def fp32_onnx(model: nn.Module, x: torch.Tensor) -> Any:
    """The fp32 ONNX of a float model, through the same ONNX machinery (standard operators only)."""
    from brevitas.export.trace import trace
    from brevitas_export_onnx.translate import OnnxTranslator

    onnx_model, problems = OnnxTranslator(trace(model, x)).translate()
    assert not problems, problems
    return onnx_model


def _row(name: str, batch: int, seconds: float, vs_fp32: float, vs_ort: str, note: str = "") -> None:
    print(f"{name:<34}{batch:>6}{seconds * 1e3:>12.3f}{vs_fp32:>10.2f}{vs_ort:>13}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="timed runs per measurement (default 100)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    import brevitas.export as bx

    float_model = float_cnv().eval()
    qmodel = quant_cnv(float_model)
    calibrate(qmodel, (8, 3, 32, 32))
    example = torch.randn(1, 3, 32, 32)
    fp32 = fp32_onnx(float_model, example)
    with tempfile.TemporaryDirectory() as tmp:
        ort_int8 = ort_static_quantization(fp32, Path(tmp))
    artifacts = {name: bx.export(qmodel, example, exporter=name) for name in ("onnx-qcdq", "onnx-qop")}
    program = bx.export(qmodel, example, exporter="torch-quantized")

    print(f"CNV-like CNN, onnxruntime CPU, {args.threads} thread(s), median of {args.runs} runs")
    header = f"{'model':<34}{'batch':>6}{'latency ms':>12}{'vs fp32':>10}{'vs ORT int8':>13}"
    print(header)
    print("-" * len(header))
    failures = []
    for batch in (1, 32):
        x = np.random.default_rng(1).standard_normal((batch, 3, 32, 32)).astype(np.float32)
        models = {"fp32": fp32.SerializeToString(), "ort": ort_int8}
        models.update({name: artifact.SerializeToString() for name, artifact in artifacts.items()})
        lat = ort_latencies(models, x, args.runs, args.threads)
        t_fp32, t_ort = lat["fp32"], lat["ort"]
        _row("fp32 ONNX (float model)", batch, t_fp32, 1.0, f"{t_ort / t_fp32:.2f}")
        _row("ORT quantize_static (int8 QDQ)", batch, t_ort, t_fp32 / t_ort, "1.00")
        for name in artifacts:
            t = lat[name]
            r_fp32, r_ort = t_fp32 / t, t_ort / t
            _row(f"{name} (int8)", batch, t, r_fp32, f"{r_ort:.2f}")
            if r_fp32 < SPEEDUP_TARGET:
                failures.append(f"{name} batch {batch}: {r_fp32:.2f}x vs fp32 (target {SPEEDUP_TARGET}x)")
            if r_ort < ORT_RATIO_TARGET:
                failures.append(f"{name} batch {batch}: {r_ort:.2f}x vs ORT int8 (target 1.0x, noise 3%)")
        xt = torch.from_numpy(x)
        runs = max(5, args.runs // 5)
        with torch.no_grad():
            t_float_pt = median_latency(partial(float_model, xt), runs)
            t_prog = median_latency(partial(program.module(), xt), runs)
        _row("torch-quantized (PyTorch)", batch, t_prog, t_float_pt / t_prog, "-", "  (vs the float model in PyTorch)")

    print()
    print("Export time, quantized ResNet-18 (11.7 M parameters), input 1x3x224x224, one thread")
    print("(CPU time of this process: what the export costs, whatever else runs on the machine; wall time beside it)")
    resnet = quant_resnet18()
    calibrate(resnet, (2, 3, 224, 224), steps=1)
    x = torch.randn(1, 3, 224, 224)
    for name in ("onnx-qcdq", "onnx-qop", "torch-quantized"):
        c0, t0 = time.process_time(), time.perf_counter()
        bx.export(resnet, x, exporter=name)
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        print(f"  {name:<18}{cpu:>7.2f} s CPU {wall:>7.2f} s wall  (target < {EXPORT_TIME_TARGET_S:.0f} s)")
        if cpu >= EXPORT_TIME_TARGET_S:
            failures.append(f"{name}: ResNet-18 export took {cpu:.1f} s of CPU time")
    print()
    print("all targets met" if not failures else "targets missed:\n  " + "\n  ".join(failures))


if __name__ == "__main__":
    main()
