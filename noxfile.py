"""The project's own sessions (``nox -l`` lists them).

They run in the environment where credrot is installed (``pip install -e ".[dev]"``),
so they work offline and start at once.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

import credrot.nox  # noqa: F401  (the user-facing sessions accounts-setup and rotation-stats)

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests"]

ROOT = Path(__file__).parent


@nox.session(venv_backend="none")
def conformance(session: nox.Session) -> None:
    """Rotation against the genuine CLIs (Qwen Code 0.12.0 and the newest, Claude Code,
    Codex, Gemini CLI) on loopback mocks. Needs node + npm; the packages are installed
    once into ~/.cache/credrot-conformance (by version) and found there on later runs."""
    if shutil.which("node") and shutil.which("npm"):
        in_ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
        session.run(
            sys.executable,
            str(ROOT / "tests" / "conformance" / "install.py"),
            success_codes=[0] if in_ci else [0, 1],
        )
    session.run(
        sys.executable, "-m", "pytest", "tests/conformance", "-m", "conformance", *session.posargs
    )


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite (extra arguments go to pytest)."""
    session.run(sys.executable, "-m", "pytest", *session.posargs)


@nox.session(venv_backend="none")
def quick(session: nox.Session) -> None:
    """The test suite without the slow tests (``-m "not slow"``)."""
    session.run(
        sys.executable, "-m", "pytest", "-m", "not slow and not conformance", *session.posargs
    )


@nox.session(venv_backend="none")
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.run(sys.executable, "-m", "ruff", "check", ".")
    session.run(sys.executable, "-m", "ruff", "format", "--check", ".")


@nox.session(venv_backend="none")
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the packages, the tests and this file."""
    session.run(sys.executable, "-m", "mypy", "--strict")


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Benchmarks: each prints ratios against a baseline measured in the same run."""
    scripts = sorted((ROOT / "tests" / "benchmarks").glob("bench_*.py"))
    if session.posargs:
        scripts = [s for s in scripts if any(arg in s.name for arg in session.posargs)]
    failed = []
    for script in scripts:
        session.log(f"--- {script.name}")
        try:
            session.run(sys.executable, str(script))
        except nox.command.CommandFailed:
            failed.append(script.name)
    if failed:
        session.error(f"benchmarks over target: {', '.join(failed)}")


@nox.session(venv_backend="none")
def demo(session: nox.Session) -> None:
    """Show rotation working against simulated accounts (no real account, no network)."""
    session.run(sys.executable, "-m", "credrot", "demo")
