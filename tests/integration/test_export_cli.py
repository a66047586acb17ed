"""``brevitas export`` and ``brevitas check`` on the command line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import onnx
import pytest
import torch

from brevitas.cli import main

MODELS = """
import torch
from brevitas.nn import QuantConv2d, QuantIdentity, QuantReLU


def good():
    return torch.nn.Sequential(QuantIdentity(return_quant_tensor=True), QuantConv2d(3, 4, 3), QuantReLU())


def bad():
    return torch.nn.Sequential(QuantConv2d(3, 4, 3, weight_bit_width=4), QuantReLU(bit_width=4))


def two_inputs():
    class Add(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q = QuantIdentity()

        def forward(self, a, b):
            return self.q(a + b)

    return Add()


not_a_model = 3
"""


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cli_models.py").write_text(textwrap.dedent(MODELS))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_check_prints_every_problem_and_exits_1(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check", "cli_models:bad", "--exporter", "onnx-qop", "--input-shape", "1,3,8,8"])
    out = capsys.readouterr().out
    assert code == 1
    assert "problem(s) exporting with onnx-qop" in out
    assert "  - 0: QuantConv2d has no input quantizer" in out and "  - 1: 1.act_quant is 4-bit" in out
    assert "Fix:" in out
    code = main(["check", "cli_models:good", "--exporter", "onnx-qcdq", "--input-shape", "1x3x8x8"])
    assert code == 0 and "no problems" in capsys.readouterr().out


def test_export_writes_the_file_with_a_checkpoint_and_options(models: Path, capsys: pytest.CaptureFixture) -> None:
    import cli_models

    trained = cli_models.good()
    with torch.no_grad():
        trained[1].weight.mul_(0).add_(0.25)
    torch.save(trained.state_dict(), models / "ckpt.pt")
    code = main(["export", "cli_models:good", "--exporter", "onnx-qcdq", "--input-shape", "1,3,8,8",
                 "--checkpoint", "ckpt.pt", "--output", "out/model.onnx", "--option", "opset_version=13"])  # fmt: skip
    assert code == 0 and "wrote out/model.onnx" in capsys.readouterr().out
    model = onnx.load(str(models / "out" / "model.onnx"))
    assert model.opset_import[0].version == 13
    from onnx import numpy_helper

    weights = [numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("weight_quant.int")]
    assert weights and (weights[0] == weights[0].flat[0]).all()  # the checkpoint's constant weight


def test_export_default_output_name_and_several_inputs(models: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["export", "cli_models:two_inputs", "--exporter", "torch-quantized",
                 "--input-shape", "2,3", "--input-shape", "2,3"])  # fmt: skip
    assert code == 0 and (models / "two_inputs.pt2").exists()
    program = torch.export.load(str(models / "two_inputs.pt2"))
    assert program.module()(torch.ones(4, 3), torch.ones(4, 3)).shape == (4, 3)


def test_export_refuses_with_the_problems(models: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["export", "cli_models:bad", "--exporter", "onnx-qop", "--input-shape", "1,3,8,8"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot export to 'onnx-qop'" in err and "0: QuantConv2d has no input quantizer" in err
    assert not (models / "bad.onnx").exists()


def test_bad_arguments_exit_2(models: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["export", "cli_models:good", "--exporter", "onnx-qcd", "--input-shape", "1,3,8,8"]) == 2
    assert "did you mean 'onnx-qcdq'" in capsys.readouterr().err.lower()
    assert main(["check", "cli_models:missing", "--exporter", "onnx-qcdq", "--input-shape", "1,3,8,8"]) == 2
    assert "cannot build the model" in capsys.readouterr().err
    assert main(["check", "cli_models:not_a_model", "--exporter", "onnx-qcdq", "--input-shape", "1,3"]) == 2
    assert main(["check", "cli_models:good", "--exporter", "onnx-qcdq"]) == 2
    assert "--input-shape" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["check", "cli_models:good", "--exporter", "onnx-qcdq", "--input-shape", "1,-3"])


def test_checkpoint_is_loaded_with_weights_only(models: Path, capsys: pytest.CaptureFixture) -> None:
    import collections

    torch.save({"state_dict": {}, "payload": collections.Counter("abc")}, models / "evil.pt")
    code = main(["check", "cli_models:good", "--exporter", "onnx-qcdq", "--input-shape", "1,3,8,8",
                 "--checkpoint", "evil.pt"])  # fmt: skip
    assert code == 2 and "cannot build the model" in capsys.readouterr().err
