"""Account setup end to end: the simulator acts as the tool's login.

The login runs with a private temporary home, so it can never write through the active
pointer into an existing account; the credential is validated, a duplicate refused,
and Ctrl-C (or SIGTERM) leaves no half-written file.
"""

from __future__ import annotations

import json
import os
import pty
import select
import shlex
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from creds import CANARY
from simpool import SimPool

from credrot import cli
from credrot_sim import QWEN_DEVICE_AUTH_WAITING_TEXT

#: The simulator logs in through its device flow when it has no credential; headless it
#: needs a prompt (a person at a terminal gets the interactive session instead).
LOGIN = "qwen --auth-type qwen-oauth -p 'credrot login'"
BIN = Path(sys.executable).parent


def invoke(args: Sequence[str], *, qwen: bool = False) -> Result:
    command = cli.account_qwen if qwen else cli.cli
    result = CliRunner().invoke(command, list(args), catch_exceptions=False)
    assert CANARY not in result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    pool = SimPool(tmp_path / "sim", monkeypatch)
    pool.backend.configure(poll_interval=0.02, device_auth_timeout=30)
    return pool


def approve(sim: SimPool, *names: str) -> None:
    for name in names:
        sim.backend.add_account(name)
        sim.backend.approve_login(name)


def slot_token(sim: SimPool, index: int) -> str:
    token = json.loads(sim.manager.slot_path(index).read_bytes())["access_token"]
    assert isinstance(token, str)
    return token


def test_add_logs_in_count_accounts_without_touching_existing_ones(sim: SimPool) -> None:
    sim.add("old")
    before = sim.manager.slot_path(1).read_bytes()
    approve(sim, "new1", "new2")
    result = invoke(
        ["--home", str(sim.home), "accounts", "add", "--count", "2", "--login-command", LOGIN]
    )
    assert result.exit_code == 0, result.output
    assert "[1/2] saved as account #2" in result.stdout
    assert "[2/2] saved as account #3" in result.stdout
    assert "2 of 2 accounts added" in result.stdout
    assert "[1/2] starting `qwen --auth-type qwen-oauth -p 'credrot login'`" in result.stderr
    assert slot_token(sim, 2) == sim.backend.latest_token("new1")
    assert slot_token(sim, 3) == sim.backend.latest_token("new2")
    for i in (2, 3):
        assert stat.S_IMODE(sim.manager.slot_path(i).stat().st_mode) == 0o600
    # the active account's file and the pointer are exactly as before
    assert sim.manager.slot_path(1).read_bytes() == before
    assert os.readlink(sim.manager.pointer) == "accounts/oauth_creds_1.json"
    # each login ran in its own private home, which is gone now
    logins = [c for c in sim.backend.calls() if c["outcome"] == "device_auth"]
    assert len(logins) == 2
    homes = {Path(c["home"]) for c in logins}
    assert len(homes) == 2
    for home in homes:
        assert not home.exists()
        assert sim.home not in home.parents
        assert Path(os.environ["HOME"]) not in home.parents


def test_account_qwen_setup_and_add(sim: SimPool, monkeypatch: pytest.MonkeyPatch) -> None:
    approve(sim, "a", "b", "c")
    result = invoke(
        ["--home", str(sim.home), "--setup", "--count", "2", "--login-command", LOGIN], qwen=True
    )
    assert result.exit_code == 0, result.output
    assert sorted(sim.manager.slots()) == [1, 2]
    monkeypatch.setenv("CREDROT_LOGIN_COMMAND", LOGIN)
    result = invoke(["--home", str(sim.home), "--add"], qwen=True)
    assert result.exit_code == 0, result.output
    assert "saved as account #3" in result.stdout
    assert slot_token(sim, 3) == sim.backend.latest_token("c")


def test_the_login_sees_only_a_private_home(sim: SimPool, tmp_path: Path) -> None:
    seen = tmp_path / "seen.txt"
    command = f'sh -c \'echo "$HOME|$QWEN_HOME" > "$0"; exit 3\' {shlex.quote(str(seen))}'
    result = invoke(["--home", str(sim.home), "accounts", "add", "--login-command", command])
    assert result.exit_code == 1
    assert result.stderr.endswith(
        "credrot: error: the login ended (exit code 3) without writing a credential\n"
    )
    home, qwen_home = seen.read_text().strip().split("|")
    assert qwen_home == f"{home}/.qwen"
    assert home != os.environ["HOME"]
    assert Path(home).name.startswith("credrot-login-qwen-")
    assert not Path(home).exists()
    assert sim.manager.slots() == {}


def test_a_duplicate_login_is_refused(sim: SimPool) -> None:
    sim.add("old")
    src = sim.manager.slot_path(1)
    command = 'sh -c \'cp "$0" "$QWEN_HOME/oauth_creds.json"; exec sleep 30\' ' + shlex.quote(
        str(src)
    )
    started = time.monotonic()
    result = invoke(["--home", str(sim.home), "accounts", "add", "--login-command", command])
    assert time.monotonic() - started < 10  # the login was stopped, not waited for
    assert result.exit_code == 1
    assert result.stderr.endswith("credrot: error: this credential is already account #1\n")
    assert sorted(sim.manager.slots()) == [1]


def test_an_invalid_credential_is_refused(sim: SimPool) -> None:
    command = 'sh -c \'echo "{}" > "$QWEN_HOME/oauth_creds.json"; exit 0\''
    result = invoke(["--home", str(sim.home), "accounts", "add", "--login-command", command])
    assert result.exit_code == 1
    assert "the credential is not valid ('access_token' is missing" in result.stderr
    assert sim.manager.slots() == {}


def test_the_login_times_out(sim: SimPool) -> None:
    result = invoke(
        [
            "--home",
            str(sim.home),
            "accounts",
            "add",
            "--timeout",
            "1",
            "--login-command",
            "sleep 30",
        ]
    )
    assert result.exit_code == 1
    assert "no valid credential after 1 s; the login was stopped" in result.stderr


def test_a_missing_tool(sim: SimPool) -> None:
    result = invoke(
        ["--home", str(sim.home), "accounts", "add", "--login-command", "no-such-login-tool --x"]
    )
    assert result.exit_code == 1
    assert "no-such-login-tool is not installed or not on PATH" in result.stderr


def test_a_failed_step_keeps_the_accounts_added_before(sim: SimPool) -> None:
    approve(sim, "only")  # one approval for two logins: the second one times out
    sim.backend.configure(device_auth_timeout=0.3)
    result = invoke(
        ["--home", str(sim.home), "accounts", "add", "--count", "2", "--login-command", LOGIN]
    )
    assert result.exit_code == 1
    assert "[1/2] saved as account #1" in result.stdout
    assert "the login ended (exit code 41)" in result.stderr
    assert sorted(sim.manager.slots()) == [1]


# ---------------------------------------------------------- real processes
def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not seen: {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # a pty reports EIO once the other side is closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_setup_leaves_nothing_behind(
    sim: SimPool, tmp_path: Path, sig: signal.Signals
) -> None:
    sim.add("old")
    before = sorted(p.name for p in sim.manager.accounts_dir.iterdir())
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    proc = subprocess.Popen(
        [
            str(BIN / "credrot"),
            "--home",
            str(sim.home),
            "accounts",
            "add",
            "--login-command",
            LOGIN,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        _read_until(proc.stderr.fileno(), QWEN_DEVICE_AUTH_WAITING_TEXT.encode(), timeout=15)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert b"credrot: error: interrupted" in err
    assert b"Traceback" not in err
    assert CANARY.encode() not in out + err
    assert list(tmpdir.iterdir()) == []  # the private login home is gone
    assert sorted(p.name for p in sim.manager.accounts_dir.iterdir()) == before
    login = next(c for c in sim.backend.calls() if c["outcome"] == "device_auth")
    assert not Path(f"/proc/{login['pid']}").exists()  # the login was stopped


def test_setup_at_a_terminal_uses_the_default_login(sim: SimPool) -> None:
    """At a terminal the default `qwen --auth-type qwen-oauth` runs in the foreground."""
    approve(sim, "t1", "t2")
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(BIN / "account-qwen"), "--home", str(sim.home), "--setup", "--count", "2"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    try:
        seen = _read_until(master, b"2 of 2 accounts added", timeout=20)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert b"starting `qwen --auth-type qwen-oauth` with a private home" in seen
    assert b"Simulated qwen interactive session" in seen
    assert CANARY.encode() not in seen
    assert slot_token(sim, 1) == sim.backend.latest_token("t1")
    assert slot_token(sim, 2) == sim.backend.latest_token("t2")


def test_without_a_terminal_the_default_login_explains_itself(sim: SimPool) -> None:
    result = invoke(["--home", str(sim.home), "accounts", "add"])
    assert result.exit_code == 1
    assert "the login ended (exit code 42) without writing a credential" in result.stderr
    assert "--login-command 'qwen --auth-type qwen-oauth -p hi'" in result.stderr
    assert sim.manager.slots() == {}
