"""What quantization-aware training costs: quantized against float, side by side in one run.

Two networks, each in float (``torch.nn``) and quantized (``brevitas.nn``:
4-bit weights with PARAMETER_FROM_STATS scaling, 8-bit activations):

- ``lenet``: the README's LeNet, 3x32x32 input, batch 64;
- ``cnn``: six 3x3 convolutions (32, 32, 64, 64, 64, 64 channels), 32x32
  input, batch 32.

The quantized networks run in two phases: ``collect`` (the activation
quantizers gather statistics, their first 300 training steps) and
``learned`` (after it: the learned scales take over; built with
``collect_stats_steps=2`` and trained past it, which costs the same per step
as after the default 300). For each, a full training step (forward,
backward, SGD step) and an eval forward (``eval()``, ``no_grad``) are timed,
eager and under ``torch.compile``, in interleaved repetitions (float,
collect, learned, float, ...), so machine noise hits every configuration
alike; the table reports medians and the quartile spread of the ratio
quantized / float. Peak memory of a training step is measured for each
configuration in its own subprocess.

When ``BREVITAS_BENCH_OTHER_PYTHON`` names a Python that imports another QAT
library as ``brevitas`` (the original Brevitas: ``pip install brevitas``
in another environment), the same networks are timed there too, in the same
run (eager), and reported as ratios.

    python bench/qat_overhead.py [--reps N] [--steps N] [--nets lenet,cnn] [--no-compile]
                                 [--threads N] [--json PATH] [--profile NET]

Writes the numbers as JSON (default ``build/bench/qat_overhead.json``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
OTHER_ENV = "BREVITAS_BENCH_OTHER_PYTHON"
BATCH = {"lenet": 64, "cnn": 32}
#: default activation collection length of the quantizers used (Int8/Uint8ActPerTensorFloat)
COLLECT_STEPS = 300
#: targets of the issue, quantized / float in the same run (eager)
TARGETS = {
    ("lenet", "train"): 1.6,
    ("cnn", "train"): 1.3,
    ("lenet", "eval"): 1.5,
    ("cnn", "eval"): 1.2,
}
COMPILED_TARGET = 1.15  # compiled quantized step / compiled float step
MEMORY_TARGET = 1.3  # peak memory of a training step, quantized / float
CONFIGS = ("float", "collect", "learned")


# ---------------------------------------------------------------------------
# The networks (written against the brevitas.nn API shared with the original Brevitas)
# ---------------------------------------------------------------------------


def _quant_kwargs() -> tuple[dict[str, Any], Any]:
    from brevitas.inject.enum import ScalingImplType

    weight = {"weight_bit_width": 4, "weight_scaling_impl_type": ScalingImplType.PARAMETER_FROM_STATS}
    return weight, ScalingImplType


class LeNet(nn.Module):
    """LeNet-5 on 3x32x32 inputs; ``quant`` selects brevitas.nn layers."""

    def __init__(self, quant: bool, collect_stats_steps: int | None = None) -> None:
        super().__init__()
        if quant:
            from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU

            w, _ = _quant_kwargs()
            act = {"bit_width": 8} if collect_stats_steps is None else {"bit_width": 8,
                                                                        "collect_stats_steps": collect_stats_steps}
            self.quant_inp = QuantIdentity(**act)
            self.conv1, self.relu1 = QuantConv2d(3, 6, 5, **w), QuantReLU(**act)
            self.conv2, self.relu2 = QuantConv2d(6, 16, 5, **w), QuantReLU(**act)
            self.fc1, self.relu3 = QuantLinear(400, 120, bias=True, **w), QuantReLU(**act)
            self.fc2, self.relu4 = QuantLinear(120, 84, bias=True, **w), QuantReLU(**act)
            self.fc3 = QuantLinear(84, 10, bias=False, **w)
        else:
            self.quant_inp = nn.Identity()
            self.conv1, self.relu1 = nn.Conv2d(3, 6, 5), nn.ReLU()
            self.conv2, self.relu2 = nn.Conv2d(6, 16, 5), nn.ReLU()
            self.fc1, self.relu3 = nn.Linear(400, 120), nn.ReLU()
            self.fc2, self.relu4 = nn.Linear(120, 84), nn.ReLU()
            self.fc3 = nn.Linear(84, 10, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.quant_inp(x)
        out = F.max_pool2d(self.relu1(self.conv1(out)), 2)
        out = F.max_pool2d(self.relu2(self.conv2(out)), 2)
        out = out.reshape(out.shape[0], -1)
        out = self.relu3(self.fc1(out))
        out = self.relu4(self.fc2(out))
        return self.fc3(out)


class CNN(nn.Module):
    """Six 3x3 convolutions with ReLU, max-pooling after every second, then a linear classifier."""

    CHANNELS = (32, 32, 64, 64, 64, 64)

    def __init__(self, quant: bool, collect_stats_steps: int | None = None) -> None:
        super().__init__()
        convs, acts = [], []
        c_in = 3
        if quant:
            from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear, QuantReLU

            w, _ = _quant_kwargs()
            act = {"bit_width": 8} if collect_stats_steps is None else {"bit_width": 8,
                                                                        "collect_stats_steps": collect_stats_steps}
            self.quant_inp = QuantIdentity(**act)
            for c_out in self.CHANNELS:
                convs.append(QuantConv2d(c_in, c_out, 3, padding=1, **w))
                acts.append(QuantReLU(**act))
                c_in = c_out
            self.fc = QuantLinear(64 * 4 * 4, 10, bias=True, **w)
        else:
            self.quant_inp = nn.Identity()
            for c_out in self.CHANNELS:
                convs.append(nn.Conv2d(c_in, c_out, 3, padding=1))
                acts.append(nn.ReLU())
                c_in = c_out
            self.fc = nn.Linear(64 * 4 * 4, 10)
        self.convs, self.acts = nn.ModuleList(convs), nn.ModuleList(acts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.quant_inp(x)
        for i, (conv, act) in enumerate(zip(self.convs, self.acts)):
            out = act(conv(out))
            if i % 2 == 1:
                out = F.max_pool2d(out, 2)
        return self.fc(out.reshape(out.shape[0], -1))


NETS: dict[str, type[nn.Module]] = {"lenet": LeNet, "cnn": CNN}


def build(net: str, config: str) -> nn.Module:
    """``config``: ``float``, ``collect`` (default collection length) or ``learned`` (collection done early)."""
    torch.manual_seed(0)
    if config == "float":
        return NETS[net](quant=False)
    return NETS[net](quant=True, collect_stats_steps=None if config == "collect" else 2)


def batch(net: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    n = BATCH[net]
    return torch.randn(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen)


#: where the timed runs go (``--device``)
DEVICE = torch.device("cpu")
#: ``--recompute``: quantized training steps run inside ``brevitas.memory.recompute_quantized()``
RECOMPUTE = False


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


class Runner:
    """One configuration ready to run: its model (eager or compiled), optimizer and batch."""

    def __init__(self, net: str, config: str, compiled: bool) -> None:
        self.net, self.config, self.compiled = net, config, compiled
        self.model = build(net, config).to(DEVICE)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9)
        self.x, self.y = (t.to(DEVICE) for t in batch(net))
        self.steps = 0
        self.fn: Callable[[torch.Tensor], torch.Tensor] = self.model
        if config == "learned":  # finish the (short) collection eagerly, then refresh the mode flags
            for _ in range(3):
                self.train_step()
            self.model.train()
        self.fn = torch.compile(self.model) if compiled else self.model

    def train_step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if RECOMPUTE and self.config != "float":
            import brevitas.memory

            with brevitas.memory.recompute_quantized():
                loss = F.cross_entropy(self.fn(self.x), self.y)
        else:
            loss = F.cross_entropy(self.fn(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        self.steps += 1

    def eval_forward(self) -> None:
        with torch.no_grad():
            self.fn(self.x)

    def call(self, mode: str) -> Callable[[], None]:
        if mode == "train":
            self.model.train()
            return self.train_step
        self.model.eval()
        return self.eval_forward


# ---------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------


def time_interleaved(
    runners: dict[str, Runner], mode: str, reps: int, steps: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, list[float]]:
    """Seconds per call of each runner, ``reps`` samples of ``steps`` calls each, interleaved."""
    calls = {name: r.call(mode) for name, r in runners.items()}
    for fn in calls.values():  # warm-up (and compilation)
        for _ in range(2):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for rep in range(reps):
        order = names[rep % len(names):] + names[: rep % len(names)]  # rotate who goes first
        for name in order:
            fn = calls[name]
            _sync()
            t0 = clock()
            for _ in range(steps):
                fn()
            _sync()
            samples[name].append((clock() - t0) / steps)
    return samples


def ratio_stats(quant: list[float], ref: list[float]) -> dict[str, float]:
    """Median and quartiles of the per-repetition ratio (the repetitions ran side by side), and the
    ratio of the fastest repetitions (interference from other processes only ever adds time)."""
    ratios = sorted(q / f for q, f in zip(quant, ref))
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return {"median": statistics.median(ratios), "q1": q1, "q3": q3, "best": min(quant) / min(ref)}


def run_timings(
    nets: list[str], reps: int, steps: int, compiled_too: bool, clock: Callable[[], float] = time.perf_counter
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    variants = [False, True] if compiled_too else [False]
    for net in nets:
        for compiled in variants:
            tag = "compiled" if compiled else "eager"
            for mode in ("train", "eval"):
                runners = {c: Runner(net, c, compiled) for c in CONFIGS}
                needed = 3 + reps * steps + 2
                if mode == "train" and needed >= COLLECT_STEPS:
                    raise SystemExit(f"--reps x --steps must stay below {COLLECT_STEPS - 5} training steps so that "
                                     f"'collect' is still collecting; got {reps} x {steps}")
                t0 = time.perf_counter()
                samples = time_interleaved(runners, mode, reps, steps, clock)
                entry = {c: {"median_ms": 1e3 * statistics.median(s), "min_ms": 1e3 * min(s),
                             "samples_ms": [1e3 * v for v in s]} for c, s in samples.items()}
                for c in ("collect", "learned"):
                    entry[c]["ratio"] = ratio_stats(samples[c], samples["float"])
                out[f"{net}/{tag}/{mode}"] = entry
                print(f"  {net:5s} {tag:8s} {mode:5s}: float {entry['float']['median_ms']:7.2f} ms, "
                      f"collect x{entry['collect']['ratio']['median']:.2f}, "
                      f"learned x{entry['learned']['ratio']['median']:.2f}  ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
                del runners
                gc.collect()
    return out


# ---------------------------------------------------------------------------
# Peak memory (one configuration per subprocess)
# ---------------------------------------------------------------------------


def _live_tensor_bytes() -> int:
    """Bytes of every tensor storage Python can reach (deduplicated by storage)."""
    seen: dict[int, int] = {}
    for obj in gc.get_objects():
        try:
            if isinstance(obj, torch.Tensor) and obj.device.type == "cpu" and not obj.is_sparse:
                storage = obj.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
        except Exception:
            continue
    return sum(seen.values())


def measure_peak(net: str, config: str) -> dict[str, int]:
    """Peak tensor memory of one training step: live tensors before it plus the largest growth during it."""
    from torch.profiler import ProfilerActivity, profile

    runner = Runner(net, config, compiled=False)
    step = runner.call("train")
    for _ in range(2):
        step()
    runner.optimizer.zero_grad(set_to_none=True)
    gc.collect()
    before = _live_tensor_bytes()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return {"before_bytes": before, "growth_bytes": peak, "peak_bytes": before + peak}


def run_memory(nets: list[str], python: str = sys.executable) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for net in nets:
        entry = {}
        for config in CONFIGS:
            res = subprocess.run(
                [python, str(Path(__file__).resolve()), "--memory-probe", net, config]
                + (["--recompute"] if RECOMPUTE else []),
                capture_output=True, text=True, check=True,
            )
            entry[config] = json.loads(res.stdout.strip().splitlines()[-1])
        for config in ("collect", "learned"):
            entry[config]["ratio"] = entry[config]["peak_bytes"] / entry["float"]["peak_bytes"]
        out[net] = entry
        print(f"  {net:5s} peak train-step memory: float {entry['float']['peak_bytes'] / 2**20:.2f} MiB, "
              f"collect x{entry['collect']['ratio']:.2f}, learned x{entry['learned']['ratio']:.2f}", flush=True)
    return out


# ---------------------------------------------------------------------------
# Another library in another interpreter
# ---------------------------------------------------------------------------


def run_other(python: str, nets: list[str], reps: int, steps: int, threads: int, clock: str) -> dict[str, Any]:
    """Time the same networks with the ``brevitas`` that ``python`` imports (eager) and measure their memory."""
    cmd = [python, str(Path(__file__).resolve()), "--worker", "--nets", ",".join(nets), "--reps", str(reps),
           "--steps", str(steps), "--threads", str(threads), "--no-compile", "--clock", clock]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{OTHER_ENV}={python}: the worker failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def describe_library() -> dict[str, str]:
    import brevitas

    return {"brevitas": getattr(brevitas, "__version__", "?"), "file": str(Path(brevitas.__file__).parent)}


# ---------------------------------------------------------------------------
# Profile: what a quantized step adds, op by op
# ---------------------------------------------------------------------------


def profile_difference(net: str, config: str, steps: int = 10) -> None:
    """Print the ops whose self CPU time grows most from float to ``config`` (a training step)."""
    from torch.profiler import ProfilerActivity, profile

    totals: dict[str, dict[str, float]] = {}
    for c in ("float", config):
        runner = Runner(net, c, compiled=False)
        step = runner.call("train")
        for _ in range(3):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
        totals[c] = {e.key: e.self_cpu_time_total / steps / 1e3 for e in prof.key_averages()}
    keys = set(totals["float"]) | set(totals[config])
    diff = sorted(((totals[config].get(k, 0.0) - totals["float"].get(k, 0.0), k) for k in keys), reverse=True)
    total_f, total_q = sum(totals["float"].values()), sum(totals[config].values())
    print(f"{net} train step, {config} vs float: self CPU {total_q:.2f} ms vs {total_f:.2f} ms "
          f"(+{total_q - total_f:.2f} ms); largest increases:")
    for d, k in diff[:20]:
        print(f"  {d:+8.3f} ms  {k}  (float {totals['float'].get(k, 0.0):.3f}, quant {totals[config].get(k, 0.0):.3f})")


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _fmt_ratio(r: dict[str, float]) -> str:
    return f"{r['median']:.2f} [{r['q1']:.2f}-{r['q3']:.2f}] {r['best']:.2f}"


def print_table(result: dict[str, Any]) -> None:
    timings, memory, other = result["timings"], result.get("memory", {}), result.get("other")
    print()
    header = f"{'net':5s} {'mode':5s} {'phase':8s} {'float ms':>9s} {'eager q/f [IQR] best':>24s}"
    header += f" {'target':>6s} {'':4s}"
    header += f" {'compiled q/f [IQR] best':>24s} {'':4s}"
    if other:
        header += f" {'other q/f':>10s} {'ours/other':>10s}"
    print(header)
    print("-" * len(header))
    for net in result["nets"]:
        for mode in ("train", "eval"):
            eager = timings[f"{net}/eager/{mode}"]
            compiled = timings.get(f"{net}/compiled/{mode}")
            target = TARGETS[(net, mode)]
            for phase in ("collect", "learned"):
                r = eager[phase]["ratio"]
                line = (f"{net:5s} {mode:5s} {phase:8s} {eager['float']['median_ms']:9.2f} {_fmt_ratio(r):>24s} "
                        f"{target:6.2f} {'MET' if r['median'] <= target else 'gap':4s}")
                if compiled:
                    rc = compiled[phase]["ratio"]
                    ok = rc["median"] <= COMPILED_TARGET or mode == "eval"
                    line += f" {_fmt_ratio(rc):>24s} {('MET' if ok else 'gap') if mode == 'train' else '':4s}"
                else:
                    line += f" {'-':>24s} {'':4s}"
                if other:
                    o = other["timings"].get(f"{net}/eager/{mode}")
                    if o:
                        ro = o[phase]["ratio"]["median"]
                        ours = eager[phase]["median_ms"] / o[phase]["median_ms"]
                        line += f" {ro:10.2f} {ours:10.2f}"
                print(line)
    if memory:
        print()
        print(f"peak memory of a training step (target quantized / float <= {MEMORY_TARGET}):")
        for net, entry in memory.items():
            parts = [f"float {entry['float']['peak_bytes'] / 2**20:.2f} MiB"]
            for phase in ("collect", "learned"):
                ratio = entry[phase]["ratio"]
                parts.append(f"{phase} x{ratio:.2f} {'MET' if ratio <= MEMORY_TARGET else 'gap'}")
            if other and net in other.get("memory", {}):
                om = other["memory"][net]
                parts.append(f"other: collect x{om['collect']['ratio']:.2f}, learned x{om['learned']['ratio']:.2f}")
            print(f"  {net:5s} " + ", ".join(parts))
    print()
    print(f"compiled target: quantized step within x{COMPILED_TARGET} of the compiled float step; eager targets "
          "in the 'target' column (MET/gap on the median); [IQR] = quartiles of the per-repetition ratios; "
          "best = fastest quantized repetition / fastest float one.")


def environment(threads: int) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": threads,
        "device": str(DEVICE),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "library": describe_library(),
        "machine": platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=11, help="interleaved repetitions (default 11)")
    parser.add_argument("--steps", type=int, default=10, help="calls per repetition (default 10)")
    parser.add_argument("--nets", default="lenet,cnn")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where models and batches live "
                        "(peak memory is measured on the CPU only)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: perf_counter (default); cpu: the calling thread's CPU time, steadier on a busy "
                             "machine and meaningful with --threads 1 only")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile timings")
    parser.add_argument("--recompute", action="store_true",
                        help="run the quantized training steps inside brevitas.memory.recompute_quantized() "
                             "(quantized activations recomputed in backward instead of kept)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", default=str(ROOT / "build" / "bench" / "qat_overhead.json"))
    parser.add_argument("--profile", metavar="NET", help="print what a quantized step adds, op by op, and exit")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-probe", nargs=2, metavar=("NET", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global DEVICE, RECOMPUTE
    RECOMPUTE = args.recompute
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda":
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is available")
        if args.clock == "cpu":
            parser.error("--clock cpu measures host CPU time: use the default wall clock with --device cuda")
        args.no_memory = True
    torch.set_num_threads(args.threads)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    unknown = [n for n in nets if n not in NETS]
    if unknown:
        parser.error(f"unknown net(s) {unknown}; choose among {sorted(NETS)}")

    if args.memory_probe:
        print(json.dumps(measure_peak(*args.memory_probe)))
        return 0
    if args.profile:
        for config in ("collect", "learned"):
            profile_difference(args.profile, config)
        return 0

    print(f"QAT overhead on {DEVICE}{' (recompute_quantized)' if RECOMPUTE else ''}, torch {torch.__version__}, "
          f"{args.threads} thread(s), "
          f"{args.reps} x {args.steps} calls per configuration", flush=True)
    result: dict[str, Any] = {"nets": nets, "environment": environment(args.threads)}
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu measures the calling thread only: use it with --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    result["environment"]["clock"] = args.clock
    result["environment"]["recompute"] = RECOMPUTE
    result["timings"] = run_timings(nets, args.reps, args.steps, not args.no_compile, clock)
    if not args.no_memory:
        result["memory"] = run_memory(nets)
    if args.worker:
        print(json.dumps(result))
        return 0
    other = os.environ.get(OTHER_ENV)
    if other:
        print(f"other library ({OTHER_ENV}={other}):", flush=True)
        result["other"] = run_other(other, nets, args.reps, args.steps, args.threads, args.clock)
        result["other"]["environment"] = result["other"].get("environment", {})
    print_table(result)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
