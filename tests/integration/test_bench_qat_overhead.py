"""bench/qat_overhead.py runs end to end (tiny repetitions) and writes its JSON; no timing is asserted."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench" / "qat_overhead.py"


def _load():
    spec = importlib.util.spec_from_file_location("qat_overhead_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_qat_overhead_runs_and_reports_every_configuration(device: str, tmp_path: Path) -> None:
    bench = _load()
    out = tmp_path / "q.json"
    threads = torch.get_num_threads()
    try:
        rc = bench.main(["--reps", "2", "--steps", "1", "--nets", "lenet", "--no-compile", "--no-memory",
                         "--device", device, "--json", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    result = json.loads(out.read_text())
    assert result["environment"]["device"] == device
    for mode in ("train", "eval"):
        entry = result["timings"][f"lenet/eager/{mode}"]
        assert set(entry) == {"float", "collect", "learned"}
        for phase in ("collect", "learned"):
            ratio = entry[phase]["ratio"]
            assert ratio["median"] > 0 and ratio["q1"] <= ratio["median"] <= ratio["q3"]
            assert len(entry[phase]["samples_ms"]) == 2


def test_quantized_networks_learn_their_scales_in_the_learned_phase() -> None:
    bench = _load()
    runner = bench.Runner("lenet", "learned", compiled=False)
    runner.call("train")()
    scales = [p for n, p in runner.model.named_parameters() if "act_quant" in n]
    assert scales and all(p.grad is not None and p.grad.abs().sum() > 0 for p in scales)
