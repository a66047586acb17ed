"""Developer tasks. ``nox -l`` lists them; ``nox -s NAME -- ARGS`` passes ARGS on.

Sessions run in the project's ``.venv`` (made by ``scripts/install.sh``)
rather than building their own, so that the pinned CPU build of
``torch==2.13.0`` is installed once.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "none"

ROOT = Path(__file__).parent
BIN = ROOT / ".venv" / "bin"


def _ensure_installed(session: nox.Session) -> None:
    if not (BIN / "python").exists():
        session.run("bash", str(ROOT / "scripts" / "install.sh"), external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (all distributions and integration), two workers."""
    _ensure_installed(session)
    session.run(str(BIN / "python"), "-m", "pytest", "-n", "2", *session.posargs, external=True)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole repository."""
    _ensure_installed(session)
    session.run(str(BIN / "ruff"), "check", ".", *session.posargs, external=True)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: QAT of a small model and export to every installed backend."""
    _ensure_installed(session)
    session.run(str(BIN / "brevitas"), "demo", *session.posargs, external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark under bench/, printing ratios measured side by side."""
    _ensure_installed(session)
    scripts = sorted((ROOT / "bench").glob("*.py"))
    wanted = set(session.posargs)
    for script in scripts:
        if wanted and script.stem not in wanted:
            continue
        session.log(f"--- {script.name}")
        session.run(str(BIN / "python"), str(script), external=True)
