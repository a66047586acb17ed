"""The main job, with a short schedule: every installed exporter verified or refused with a reason."""

from __future__ import annotations

import json

import pytest
import torch

import brevitas.export as bx
from brevitas.cli import main
from brevitas.demo import DemoOptions, layer_table, run_demo
from brevitas.demo.models import QuantLeNet, build_quant_lenet


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    lines: list[str] = []
    result = run_demo(DemoOptions(epochs=2, fine_tune_epochs=1, progress=False, output=out), echo=lines.append)
    result["_printed"] = "\n".join(lines)
    result["_out"] = out
    return result


def test_every_installed_exporter_is_verified_or_refused(summary):
    installed = set(bx.exporters())
    assert {d["exporter"] for d in summary["deployments"]} == installed
    for d in summary["deployments"]:
        assert d["status"] in {"verified", "refused"}, d
        if d["status"] == "verified":
            assert d["size_bytes"] > 0
            assert d["consumer"]
            # the consumer agrees with PyTorch on the whole test set
            assert abs(d["accuracy_consumer"] - d["accuracy_pytorch"]) <= 1.0, d
        else:
            assert d["refused"], d


def test_summary_file_and_printout(summary):
    data = json.loads((summary["_out"] / "summary.json").read_text())
    assert data["float_accuracy"] == summary["float_accuracy"]
    assert 0 <= data["quant_accuracy"] <= 100
    printed = summary["_printed"]
    assert "test accuracy: float" in printed and "what was quantized:" in printed and "deployment:" in printed


def test_layer_table_reports_the_configured_bit_widths():
    rows = {
        r["quantizer"]: r for r in layer_table(QuantLeNet(weight_bit_width=3, act_bit_width=5), torch.rand(1, 1, 8, 8))
    }
    assert rows["conv1.weight_quant"]["bit_width"] == 3
    assert rows["relu1.act_quant"]["bit_width"] == 5
    assert rows["relu1.act_quant"]["signed"] is False
    assert rows["relu1.act_quant"]["learned"] == "yes"


def test_fixed_point_config_has_power_of_two_scales():
    rows = layer_table(build_quant_lenet("fixed-point"), torch.rand(1, 1, 8, 8))
    assert all(r["scale"].endswith("power-of-two") for r in rows), rows


def test_cli_demo_unknown_exporter_fails_with_its_name(tmp_path, capsys):
    code = main(
        [
            "demo",
            "--epochs",
            "1",
            "--fine-tune-epochs",
            "1",
            "--no-progress",
            "--exporters",
            "no-such-exporter",
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 1
    data = json.loads((tmp_path / "summary.json").read_text())
    assert "unknown exporter 'no-such-exporter'" in data["deployments"][0]["error"]
