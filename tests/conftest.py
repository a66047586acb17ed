"""Shared fixtures: devices to test on, and throw-away plugin distributions."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

import brevitas.plugins

#: CPU always; CUDA too when a GPU is present.
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False, help="run the long fuzzing and training tests")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: long test, run with --slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="long test: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every available device (CPU, and CUDA when present)."""
    return torch.device(request.param)


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    """A plugin manager that discovers again, restored afterwards."""
    brevitas.plugins.reset()
    yield
    brevitas.plugins.reset()


@pytest.fixture
def make_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None) -> Callable[..., Path]:
    """Write an installed-looking distribution into a folder on ``sys.path``.

    ``make_distribution("my-dist", {"ep_name": "module_name"}, {"module_name": "source"})``
    writes ``module_name.py`` and ``my_dist-1.0.dist-info/{METADATA,entry_points.txt}``,
    which importlib-metadata discovers exactly like a pip-installed package.
    """
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    added_modules: list[str] = []

    def make(dist: str, entry_points: dict[str, str], modules: dict[str, str], version: str = "1.0") -> Path:
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = ["[brevitas]"] + [f"{name} = {target}" for name, target in entry_points.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            added_modules.append(module)
        return site

    yield make
    for module in added_modules:
        sys.modules.pop(module, None)
