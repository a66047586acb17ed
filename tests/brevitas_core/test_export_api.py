"""The export API with exporters registered in code (no real backend needed)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
from torch import nn

import brevitas.export as bx
import brevitas.plugins
from brevitas.errors import ExportError, UnknownNameError
from brevitas.export.base import Exporter, Problem
from brevitas.plugins import hookimpl


class _TextExporter(Exporter):
    """Writes the module's repr; refuses models that contain a ReLU6."""

    name = "tests-text"
    suffix = ".txt"
    consumer = "python"

    def __init__(self) -> None:
        self.seen_training: list[bool] = []

    def check(self, model, args, **options):
        self.seen_training.append(model.training)
        return [
            Problem(name, "ReLU6 has no text form", "use nn.ReLU")
            for name, m in model.named_modules()
            if isinstance(m, nn.ReLU6)
        ]

    def export(self, model, args, **options):
        if options.get("explode"):
            raise RuntimeError("exploded")
        return repr(model)

    def save(self, artifact, path: Path) -> None:
        if artifact == "fail-on-save":
            raise OSError("disk full")
        path.write_text(artifact)

    def run(self, artifact, *inputs):
        return [artifact]


_INSTANCE = _TextExporter()


@pytest.fixture
def text_exporter(fresh_plugins):
    plugin = types.ModuleType("tests_text_exporter")

    @hookimpl
    def brevitas_register(registry):
        registry.add("exporter", "tests-text", _INSTANCE, description="model repr as text")

    plugin.brevitas_register = brevitas_register
    brevitas.plugins.register(plugin)
    yield _INSTANCE
    brevitas.plugins.unregister("tests_text_exporter")


def test_exporters_lists_registered(text_exporter):
    listed = bx.exporters()
    assert "tests-text" in listed
    assert "model repr as text" in listed["tests-text"]
    assert "[tests_text_exporter]" in listed["tests-text"]


def test_export_writes_file_and_restores_training_mode(text_exporter, tmp_path):
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    model.train()
    out = tmp_path / "sub" / "m.txt"
    artifact = bx.export(model, torch.randn(1, 2), exporter="TESTS-TEXT", path=out)
    assert out.read_text() == artifact == repr(model)
    assert text_exporter.seen_training[-1] is False  # exported as in eval mode
    assert model.training and all(m.training for m in model.modules())


def test_check_lists_every_problem_with_qualified_names(text_exporter):
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU6(), nn.Sequential(nn.ReLU6()))
    problems = bx.check(model, torch.randn(1, 2), exporter="tests-text")
    assert [p.layer for p in problems] == ["1", "2.0"]
    with pytest.raises(bx.ExportCheckError) as err:
        bx.export(model, torch.randn(1, 2), exporter="tests-text", path="never.txt")
    msg = str(err.value)
    assert "2 problem(s)" in msg and "1: ReLU6 has no text form. Fix: use nn.ReLU" in msg and "2.0:" in msg
    assert not Path("never.txt").exists()


def test_failed_export_or_save_leaves_no_file(text_exporter, tmp_path):
    model = nn.Linear(2, 2)
    out = tmp_path / "m.txt"
    with pytest.raises(RuntimeError, match="exploded"):
        bx.export(model, torch.randn(1, 2), exporter="tests-text", path=out, explode=True)
    text_exporter_save = _TextExporter.export
    try:
        _TextExporter.export = lambda self, model, args, **o: "fail-on-save"
        with pytest.raises(ExportError, match="disk full"):
            bx.export(model, torch.randn(1, 2), exporter="tests-text", path=out)
    finally:
        _TextExporter.export = text_exporter_save
    assert list(tmp_path.iterdir()) == []


def test_unknown_exporter_lists_installed(text_exporter):
    with pytest.raises(UnknownNameError) as err:
        bx.export(nn.Linear(1, 1), torch.randn(1, 1), exporter="tests-txt")
    assert "tests-text" in str(err.value)
