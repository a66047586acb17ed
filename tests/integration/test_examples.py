"""Every example runs (short schedules) and prints what it promises."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_lenet_example(tmp_path):
    text = _run([str(EXAMPLES / "lenet_digits.py"), "--epochs", "2", "--output", str(tmp_path)], tmp_path)
    assert re.search(r"test accuracy: \d+\.\d+%", text)
    assert (tmp_path / "lenet_digits_qcdq.onnx").exists()
    diff = float(re.search(r"max \|diff\| (\S+)", text).group(1))
    assert diff < 0.5  # the same logits up to a few activation steps


@pytest.mark.parametrize(("net", "bits"), [("tfc", "1/1"), ("cnv", "2/2")])
def test_finn_style_example(tmp_path, net, bits):
    text = _run(
        [str(EXAMPLES / "finn_style.py"), "--epochs", "1", "--net", net, "--bits", bits, "--output", str(tmp_path)],
        tmp_path,
    )
    w, a = bits.split("/")
    assert re.search(rf"{net.upper()} W{w}A{a}: test accuracy \d+\.\d+%", text)
    for name in ("qonnx", "finn"):
        line = next(line for line in text.splitlines() if line.startswith(f"{name}:"))
        assert "exported" in line or "refused" in line or "not installed" in line, text


def _install_example_plugin(site: Path) -> dict[str, str]:
    """Install examples/plugin_lsq as pip would: a dist-info with its entry points, its source on the path."""
    meta = tomllib.loads((EXAMPLES / "plugin_lsq" / "pyproject.toml").read_text())["project"]
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    eps = meta["entry-points"]["brevitas"]
    (info / "entry_points.txt").write_text("[brevitas]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()))
    paths = [str(site), str(EXAMPLES / "plugin_lsq" / "src"), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def test_third_party_plugin_example_registers_and_is_used_by_name(tmp_path):
    env = _install_example_plugin(tmp_path / "site")
    listing = json.loads(_run(["-m", "brevitas", "plugins", "--json"], tmp_path, env))
    lsq = next(p for p in listing if p["name"] == "lsq")
    assert lsq["status"] == "loaded" and lsq["distribution"] == "brevitas-lsq-example"
    assert {"kind": "scaling", "name": "lsq"} in lsq["registered"]
    text = _run([str(EXAMPLES / "plugin_lsq" / "use_lsq.py"), "--epochs", "2"], tmp_path, env)
    assert "scaling component: brevitas_lsq.scaling.LsqScaling" in text
    before, after = map(float, re.search(r"learned threshold: (\S+) -> (\S+)", text).groups())
    assert before != after  # the LSQ step was learned
    assert re.search(r"test accuracy .*: \d+\.\d+%", text)


def test_third_party_plugin_blocked_by_name(tmp_path):
    env = _install_example_plugin(tmp_path / "site")
    env["BREVITAS_PLUGINS_BLOCKED"] = "lsq"
    listing = json.loads(_run(["-m", "brevitas", "plugins", "--json"], tmp_path, env))
    assert next(p for p in listing if p["name"] == "lsq")["status"] == "blocked"
