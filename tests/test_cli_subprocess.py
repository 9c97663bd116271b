"""The installed console scripts, run as real processes in a temporary HOME."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from creds import CANARY
from prometheus_client.parser import text_string_to_metric_families
from simpool import SimPool

BIN = Path(sys.executable).parent


def script(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found is not None, f"{name} is not installed in {BIN} (pip install -e .)"
    return found


def run(
    *args: str, input: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        list(args),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert CANARY not in out + err
    assert "Traceback" not in err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path / "sim", monkeypatch)


def test_version_entry_points() -> None:
    assert run(script("credrot"), "--version").stdout == "credrot 0.1.0\n"
    assert run(script("account-qwen"), "--version").stdout == "account-qwen 0.1.0\n"
    assert run(sys.executable, "-m", "credrot", "--version").stdout == "credrot 0.1.0\n"


def test_account_qwen_in_a_fresh_home(tmp_path: Path, make_cred: Callable[..., bytes]) -> None:
    home = Path(os.environ["HOME"])
    usage = run(script("account-qwen"))
    assert usage.returncode == 2
    assert "give exactly one of" in usage.stderr
    empty = run(script("account-qwen"), "--list")
    assert empty.returncode == 0
    assert "run 'account-qwen --setup' or '--add'" in empty.stdout
    cred = tmp_path / "c.json"
    cred.write_bytes(make_cred(1))
    added = run(script("account-qwen"), "--add", "--from", str(cred))
    assert added.returncode == 0, added.stderr
    assert (home / ".qwen" / "accounts" / "oauth_creds_1.json").read_bytes() == make_cred(1)
    listed = run(script("account-qwen"), "--list")
    assert "1 usable; * = active" in listed.stdout
    missing = run(script("account-qwen"), "--switch", "4")
    assert missing.returncode == 1
    assert (
        missing.stderr == f"credrot: error: no qwen account #4 in {home / '.qwen' / 'accounts'}\n"
    )


def test_credrot_run_pipes_stdin_and_exits_3_when_spent(sim: SimPool) -> None:
    sim.add("a", quota=1, answer="{account}:{prompt_len}")
    credrot = script("credrot")
    first = run(credrot, "--home", str(sim.home), "run", "--", "-p", "x", input=b"diff text")
    assert (first.returncode, first.stdout) == (0, "a:12")
    spent = run(credrot, "--home", str(sim.home), "run", "--", "-p", "x", input=b"")
    assert spent.returncode == 3
    assert "credrot: error: no usable account: the only qwen account is unusable" in spent.stderr
    stats = run(credrot, "--home", str(sim.home), "stats", "--prometheus")
    samples = {
        (s.name, s.labels.get("account")): s.value
        for family in text_string_to_metric_families(stats.stdout)
        for s in family.samples
    }
    assert samples[("credrot_calls_total", "1")] == 2
    assert samples[("credrot_pool_exhausted_total", None)] == 1
    assert (
        json.loads(run(credrot, "--home", str(sim.home), "stats", "--json").stdout)["quota_hits"]
        == 1
    )


def test_demo_needs_no_account_and_no_network(tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("QWEN_HOME", "CREDROT_SIM_BACKEND")}
    env.update(HOME=str(home), PATH=os.defpath)  # no qwen anywhere on PATH
    env.update(http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    result = run(script("credrot"), "demo", env=env)
    assert result.returncode == 0, result.stderr
    assert "no tool run at all" in result.stdout
    assert "answered by #3" in result.stdout
    assert list(home.iterdir()) == []


def test_doctor_and_errors_as_processes(sim: SimPool) -> None:
    sim.add("a")
    os.chmod(sim.home, 0o700)
    credrot = script("credrot")
    healthy = run(credrot, "--home", str(sim.home), "doctor")
    assert healthy.returncode == 0, healthy.stdout
    assert "qwen 0.12.0-sim" in healthy.stdout
    sim.manager.pointer.unlink()
    broken = run(credrot, "--home", str(sim.home), "doctor", "--json")
    assert broken.returncode == 0
    found = json.loads(broken.stdout)["findings"]
    assert any(f["check"] == "pointer" and f["fixable"] for f in found)
    assert run(credrot, "--home", str(sim.home), "doctor", "--fix").returncode == 0
    assert sim.manager.pointer_state() == "link"
    usage = run(credrot, "accounts", "switch")
    assert usage.returncode == 2
    assert "Missing argument 'N'" in usage.stderr
