"""PyXIR end to end: the DPU-ready example trains, exports through the registry and runs in both contract executors.

The test-side executor (tests/brevitas_export_pyxir/contract_executor.py, written
from FORMATS.md) is loaded by path; the shipped one is the exporter's ``run``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest
import torch

import brevitas.export as bx

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def contract() -> ModuleType:
    return _load("pyxir_contract_executor", ROOT / "tests" / "brevitas_export_pyxir" / "contract_executor.py")


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> tuple[ModuleType, dict]:
    module = _load("dpu_fixed_point_example", ROOT / "examples" / "dpu_fixed_point.py")
    lines: list[str] = []
    result = module.main(steps=3, output=tmp_path_factory.mktemp("dpu"), echo=lines.append)
    result["printed"] = "\n".join(lines)
    return module, result


def test_example_exports_both_dpus_and_the_consumer_matches_pytorch_exactly(example):
    _, result = example
    assert set(result["exports"]) == {"pyxir", "pyxir-dpuv2"}
    for name, record in result["exports"].items():
        assert record["path"].exists()
        assert record["max_abs_diff"] == 0.0, name
        assert record["accuracy"] == result["accuracy"]
        onnx.checker.check_model(str(record["path"]), full_check=True)
    assert result["exports"]["pyxir"]["nodes"] == [
        "Conv", "Relu", "MaxPool", "Conv", "Relu", "Conv", "Add", "Relu", "GlobalAveragePool", "Flatten", "Gemm",
    ]  # fmt: skip
    assert result["exports"]["pyxir-dpuv2"]["nodes"].count("Pad") == 2
    assert "PyXIR contract executor" in result["printed"] and "max |diff| 0," in result["printed"]


def test_example_files_run_the_same_in_the_test_side_executor(example, contract):
    module, result = example
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    for name, record in result["exports"].items():
        model = onnx.load(str(record["path"]))
        shipped = bx.get_exporter(name).run(record["path"], x)[0]
        np.testing.assert_array_equal(contract.execute(model, x.numpy())[0], shipped)


def test_the_example_network_is_refused_with_half_its_quantizers_swapped_for_float_ones(example):
    from brevitas.quant.scaled_int import Int8ActPerTensorFloat, Int8WeightPerTensorFloat

    module, _ = example
    model = module.DpuNet()
    model.conv2 = type(model.conv2)(16, 32, 3, padding=1, **module.dpu_layer(weight_quant=Int8WeightPerTensorFloat))
    model.fc = type(model.fc)(32, 10, **module.dpu_layer(output_quant=Int8ActPerTensorFloat))
    problems = bx.check(model.eval(), torch.rand(1, 1, 8, 8), exporter="pyxir")
    assert [(p.layer, "brevitas.quant.fixed_point" in p.fix) for p in problems] == [("conv2", True), ("fc", True)]


def test_the_demo_lenet_in_fixed_point_exports_once_each_layer_quantizes_its_output(contract):
    """The demo's fixed-point LeNet quantizes each layer's output; without that the DPU refuses it."""
    from brevitas.demo.models import build_quant_lenet
    from brevitas.quant.fixed_point import Int8ActPerTensorFixedPoint

    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    refused = bx.check(build_quant_lenet("fixed-point", output_quant=None).eval(), x[:1], exporter="pyxir")
    assert {p.layer for p in refused} == {"conv1", "conv2", "fc1", "fc2", "fc3"}
    assert all("output_quant=brevitas.quant.fixed_point.Int8ActPerTensorFixedPoint" in p.fix for p in refused)
    assert not bx.check(build_quant_lenet("fixed-point").eval(), x[:1], exporter="pyxir")

    torch.manual_seed(0)
    model = build_quant_lenet("fixed-point", output_quant=Int8ActPerTensorFixedPoint)
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()
    artifact = bx.export(model, x[:1], exporter="pyxir")
    got = contract.execute(artifact, x.numpy())[0]
    with torch.no_grad():
        ref = model(x).numpy()
    step = 2.0 ** -[a.ints for a in artifact.graph.node[-1].attribute if a.name == "vai_quant_out"][0][1]
    # round-half-to-even quantizers: one step at a tie, which the next layers may carry a step further
    assert np.abs(got - ref).max() <= 2 * step
    np.testing.assert_array_equal(bx.get_exporter("pyxir").run(artifact, x)[0], got)
