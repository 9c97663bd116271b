"""The nox sessions through a real ``nox`` run, and the built wheel in a clean venv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from creds import CANARY, make_cred

from credrot.manager import AccountManager

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def nox(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "nox"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


@pytest.fixture
def home_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["HOME"] = str(tmp_path / "user")
    env.pop("QWEN_HOME", None)
    (tmp_path / "user").mkdir()
    return env


def test_nox_lists_the_user_sessions_with_their_docstrings(home_env: dict[str, str]) -> None:
    out = nox("-l", cwd=ROOT, env=home_env).stdout
    assert "- accounts-setup -> Log in new accounts interactively" in out
    assert "- rotation-stats -> Show the pool's counters" in out
    # Interactive and user-facing sessions are not run by a bare `nox`.
    assert "* tests" in out and "* accounts-setup" not in out


def test_rotation_stats_json_from_a_real_nox_run(home_env: dict[str, str]) -> None:
    home = Path(home_env["HOME"]) / ".qwen"
    home.mkdir()
    manager = AccountManager(home=home)
    for i in (1, 2, 3):
        manager.import_account(make_cred(i))
    manager.switch_next()
    run = nox("-s", "rotation-stats", "--", "--json", cwd=ROOT, env=home_env)
    assert run.returncode == 0, run.stderr
    start = run.stdout.index("{")
    stats = json.loads(run.stdout[start : run.stdout.rindex("}") + 1])
    assert stats["total_accounts"] == 3
    assert stats["switches_total"] == 1
    assert stats["current_account"] == 2
    assert CANARY not in run.stdout + run.stderr


def test_accounts_setup_without_a_terminal_stops_with_a_clear_message(
    home_env: dict[str, str],
) -> None:
    run = nox("-s", "accounts-setup", "--", "--count", "2", cwd=ROOT, env=home_env)
    assert run.returncode != 0
    assert "accounts-setup logs in accounts at a terminal" in run.stdout + run.stderr
    assert not (Path(home_env["HOME"]) / ".qwen" / "accounts").exists()


def test_a_user_noxfile_registers_both_sessions_in_one_line(
    tmp_path: Path, home_env: dict[str, str]
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "noxfile.py").write_text("import credrot.nox  # noqa: F401\n")
    out = nox("-l", cwd=project, env=home_env).stdout
    assert "accounts-setup" in out and "rotation-stats" in out


@pytest.mark.slow
def test_wheel_installs_commands_plugin_and_types_in_a_clean_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # Built from a copy of the tracked files, so no build/ is left in the checkout.
    source = tmp_path / "source"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        path = ROOT / name.decode()
        if path.is_file():
            dest = source / name.decode()
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(dist),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("credrot-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(n.startswith("hooks/") for n in names)
    assert any(n.startswith("credrot/pool/") for n in names)
    assert any(n.startswith("credrot_sim/") for n in names)
    for shipped in (
        "credrot/py.typed",
        "pytest_credrot/py.typed",
        "credrot_hooks/review_prompt.txt",
        "credrot_hooks/qwen_review.py",
    ):
        assert shipped in names
    assert not any(n.startswith("tests/") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    vbin = venv / "bin"
    subprocess.run(
        [str(vbin / "pip"), "install", "--quiet", str(wheel), "pytest"],
        check=True,
        capture_output=True,
    )
    for command in ("credrot", "account-qwen", "qwen-review"):
        run = subprocess.run([str(vbin / command), "--help"], capture_output=True, text=True)
        assert run.returncode == 0, (command, run.stderr)
    version = subprocess.run([str(vbin / "credrot"), "--version"], capture_output=True, text=True)
    assert "0.1.0" in version.stdout
    helptext = subprocess.run(
        [str(vbin / "pytest"), "--help"], capture_output=True, text=True, cwd=tmp_path
    ).stdout
    assert "credrot" in helptext and "--credrot-exhausted" in helptext
    # Run from an empty directory: `python -c` puts the working directory on sys.path.
    probe = subprocess.run(
        [str(vbin / "python"), "-c", "import hooks"], capture_output=True, text=True, cwd=tmp_path
    )
    assert probe.returncode != 0  # no bare top-level `hooks` module
    imports = "import credrot, credrot_hooks, pytest_credrot, credential_rotation"
    assert subprocess.run([str(vbin / "python"), "-c", imports], cwd=tmp_path).returncode == 0
