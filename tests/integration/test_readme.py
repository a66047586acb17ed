"""Every fenced Python block of the README runs (each in a fresh namespace, in order)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import brevitas.plugins

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 8


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs(index, fresh_plugins):
    code = compile(BLOCKS[index], f"README.md python block {index + 1}", "exec")
    exec(code, {"__name__": f"readme_block_{index + 1}"})
    brevitas.plugins.reset()
