"""The simulated ``qwen`` behaves like FACTS.md says the real one does.

Every test runs the installed shim as a real subprocess against real files: the point of
the simulator is that the rest of the suite can trust it.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import credrot_sim as simulate
from credrot_sim import (
    QWEN_AUTH_401_TEXT,
    QWEN_CONNECTION_TEXT,
    QWEN_CRITICAL_ERROR_TEXT,
    QWEN_DEVICE_AUTH_TIMEOUT_TEXT,
    QWEN_DEVICE_AUTH_TITLE,
    QWEN_DISCONTINUED_TEXT,
    QWEN_ERROR_OUTPUT,
    QWEN_QUOTA_TEXT,
    QWEN_RATE_LIMIT_HINT_TEXT,
    QWEN_RATE_LIMIT_TEXT,
    SimBackend,
)

CRED_KEYS_AFTER_REFRESH = [
    "access_token",
    "token_type",
    "refresh_token",
    "resource_url",
    "expiry_date",
]


class Sim:
    """A backend, a qwen home and the shim on PATH, run as real subprocesses."""

    def __init__(self, tmp_path: Path, canary: str) -> None:
        self.canary = canary
        self.backend = SimBackend(tmp_path / "backend")
        self.bin = tmp_path / "bin"
        self.shims = simulate.install(self.bin, self.backend.root)
        self.home = tmp_path / "qwen-home"
        self.home.mkdir(mode=0o700)
        self.cred = self.home / "oauth_creds.json"
        self.env = dict(os.environ)
        self.env["PATH"] = f"{self.bin}{os.pathsep}{self.env.get('PATH', '')}"
        self.env["QWEN_HOME"] = str(self.home)
        self.env.pop(simulate.BACKEND_ENV, None)  # the shim's baked-in path must do

    def account(self, name: str, **kwargs: object) -> dict[str, object]:
        """Add an account with canary tokens and make it the home's credential."""
        cred = self.backend.add_account(
            name,
            access_token=f"{self.canary}-access-{name}",
            refresh_token=f"{self.canary}-refresh-{name}",
            **kwargs,  # type: ignore[arg-type]
        )
        self.backend.write_credential(name, self.cred)
        return cred

    def popen(self, *args: str) -> subprocess.Popen[bytes]:
        """Start the shim in its own session, so a test can kill the whole group."""
        return subprocess.Popen(
            ["qwen", *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def run(
        self, *args: str, input: str | bytes | None = None, timeout: float = 10
    ) -> subprocess.CompletedProcess[bytes]:
        data = input.encode() if isinstance(input, str) else input
        proc = subprocess.run(
            ["qwen", *args],
            env=self.env,
            input=data,
            stdin=None if data is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        for stream in (proc.stdout, proc.stderr):
            assert self.canary.encode() not in stream
        return proc


@pytest.fixture
def sim(tmp_path: Path, canary: str) -> Sim:
    return Sim(tmp_path, canary)


def read_until(proc: subprocess.Popen[bytes], needle: str, timeout: float) -> bytes:
    """Read the process's stderr as it arrives until ``needle`` shows up."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{needle!r} not printed within {timeout}s: {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"stderr closed before {needle!r}: {seen!r}"
            seen += chunk
    return seen


def json_messages(stdout: bytes, fmt: str) -> list[dict[str, Any]]:
    """``-o json``: one JSON array on one line (0.12.0); ``stream-json``: an object a line."""
    text = stdout.decode()
    if fmt == "json":
        assert text.count("\n") == 1 and text.endswith("\n")
        messages = json.loads(text)
        assert isinstance(messages, list)
        return messages
    return [json.loads(line) for line in text.splitlines()]


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=5)


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a (container) init to reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_success_with_stdin_prompt(sim: Sim) -> None:
    sim.account("a1")
    proc = sim.run(input="review this diff")
    assert proc.returncode == 0
    assert proc.stdout == b"Simulated qwen answer from a1 (call 1)."  # no trailing newline
    assert proc.stderr == b""
    (call,) = sim.backend.calls()
    assert call["account"] == "a1"
    assert call["outcome"] == "ok"
    assert call["refreshed"] is False
    assert call["tool"] == "qwen"
    assert sim.backend.prompt(call["n"]) == "review this diff"
    assert sim.backend.used("a1") == 1


def test_success_with_p_flag_and_stdin_joined_like_the_cli(sim: Sim) -> None:
    sim.account("a1", answer="{account} read {prompt_len} chars")
    proc = sim.run(
        "-p",
        "the question",
        "--auth-type",
        "qwen-oauth",
        "-y",
        "--chat-recording",
        "false",
        input="the diff",
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"a1 read 22 chars"
    assert sim.backend.prompt(1) == "the diff\n\nthe question"
    proc = sim.run("positional", "prompt", "--approval-mode", "plan", "-o", "text")
    assert proc.returncode == 0
    assert sim.backend.prompt(2) == "positional prompt"
    assert sim.backend.calls()[1]["argv"] == [
        "positional",
        "prompt",
        "--approval-mode",
        "plan",
        "-o",
        "text",
    ]


def test_home_defaults_to_home_dot_qwen(sim: Sim, tmp_path: Path) -> None:
    sim.account("a1")
    user_home = tmp_path / "user"
    (user_home / ".qwen").mkdir(parents=True)
    sim.backend.write_credential("a1", user_home / ".qwen" / "oauth_creds.json")
    sim.cred.unlink()
    del sim.env["QWEN_HOME"]
    sim.env["HOME"] = str(user_home)
    assert sim.run("hi").returncode == 0


def test_quota_after_n_calls(sim: Sim) -> None:
    sim.account("a1", quota=2)
    for k in (1, 2):
        assert sim.run("hi").stdout == f"Simulated qwen answer from a1 (call {k}).".encode()
    proc = sim.run("hi")
    assert proc.returncode == 1
    assert proc.stdout == b""
    err = proc.stderr.decode()
    assert err == QWEN_ERROR_OUTPUT["quota"]
    printed, _, crash = err.partition(QWEN_CRITICAL_ERROR_TEXT)
    assert printed.count(QWEN_QUOTA_TEXT) == 3  # three copies before the crash report
    assert crash.startswith(f"\nError: {QWEN_QUOTA_TEXT}")  # the thrown error's own message
    assert "    at " in crash  # a stack trace follows
    assert sim.backend.used("a1") == 2
    assert [c["outcome"] for c in sim.backend.calls()] == ["ok", "ok", "quota"]
    sim.backend.set("a1", quota=None)
    assert sim.run("hi").returncode == 0


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("quota", QWEN_QUOTA_TEXT),
        ("rate_limit", f"{QWEN_RATE_LIMIT_TEXT}\n{QWEN_RATE_LIMIT_HINT_TEXT}\n"),
        ("auth", QWEN_AUTH_401_TEXT),
        ("disabled", QWEN_DISCONTINUED_TEXT),
        ("connection_error", QWEN_CONNECTION_TEXT),
    ],
)
def test_error_modes_text(sim: Sim, mode: str, expected: str) -> None:
    sim.account("a1", mode=mode)
    proc = sim.run("hi")
    assert proc.returncode == 1
    assert proc.stdout == b""
    assert expected in proc.stderr.decode()
    assert sim.backend.used("a1") == 0
    assert sim.backend.calls()[0]["outcome"] == mode


def test_refresh_by_rename_breaks_the_symlink(sim: Sim) -> None:
    slot = sim.home / "accounts" / "oauth_creds_1.json"
    slot.parent.mkdir(mode=0o700)
    old = sim.account("a1", expired=True)
    sim.backend.write_credential("a1", slot)
    sim.cred.unlink()
    sim.cred.symlink_to(Path("accounts") / slot.name)
    slot_before = slot.read_bytes()

    proc = sim.run("hi")

    assert proc.returncode == 0, proc.stderr
    assert not sim.cred.is_symlink()
    assert sim.cred.is_file()
    assert slot.read_bytes() == slot_before  # the slot keeps the old token
    assert sim.cred.stat().st_mode & 0o777 == 0o600
    raw = sim.cred.read_text()
    assert not raw.endswith("\n")
    new = json.loads(raw)
    assert list(new) == CRED_KEYS_AFTER_REFRESH
    assert raw == json.dumps(new, indent=2)
    assert new["refresh_token"] == old["refresh_token"]
    assert new["access_token"] != old["access_token"]
    assert new["access_token"] == sim.backend.latest_token("a1")
    assert sim.backend.account_for_token(new["access_token"]) == "a1"
    assert new["expiry_date"] > time.time() * 1000 > float(str(old["expiry_date"]))
    assert sim.backend.calls()[0]["refreshed"] is True
    assert [p.name for p in sim.home.iterdir() if ".tmp." in p.name] == []
    assert new["access_token"].encode() not in proc.stdout + proc.stderr


def test_refresh_every_n_calls_drops_unknown_keys_and_expiry_increases(sim: Sim) -> None:
    sim.account("a1", refresh_every=2)
    data = json.loads(sim.cred.read_text())
    data["extra_key"] = "dropped"
    sim.cred.write_text(json.dumps(data))
    expiries = []
    for _ in range(4):
        assert sim.run("hi").returncode == 0
        expiries.append(json.loads(sim.cred.read_text())["expiry_date"])
    assert [c["refreshed"] for c in sim.backend.calls()] == [False, True, False, True]
    assert expiries[0] < expiries[1] == expiries[2] < expiries[3]
    assert "extra_key" not in json.loads(sim.cred.read_text())


def test_unknown_access_token_known_refresh_token_refreshes(sim: Sim) -> None:
    sim.account("a1")
    data = json.loads(sim.cred.read_text())
    data["access_token"] = "revoked-or-foreign"
    sim.cred.write_text(json.dumps(data))
    proc = sim.run("hi")
    assert proc.returncode == 0
    assert json.loads(sim.cred.read_text())["access_token"] == sim.backend.latest_token("a1")


def test_unknown_tokens_are_a_401(sim: Sim) -> None:
    sim.account("a1")
    data = json.loads(sim.cred.read_text())
    data["access_token"] = "unknown-access"
    data["refresh_token"] = "unknown-refresh"
    sim.cred.write_text(json.dumps(data))
    proc = sim.run("hi")
    assert proc.returncode == 1
    assert "401" in proc.stderr.decode()
    assert sim.backend.calls()[0]["account"] is None


def test_auth_mode_force_refreshes_once_then_fails(sim: Sim) -> None:
    sim.account("a1", mode="auth")
    before = sim.cred.read_bytes()
    proc = sim.run("hi")
    assert proc.returncode == 1
    assert QWEN_AUTH_401_TEXT in proc.stderr.decode()
    assert sim.cred.read_bytes() != before
    assert sim.backend.calls()[0]["refreshed"] is True


def test_connection_error_does_not_touch_an_expired_credential(sim: Sim) -> None:
    sim.account("a1", mode="connection_error", expired=True)
    before = sim.cred.read_bytes()
    proc = sim.run("hi")
    assert proc.returncode == 1
    assert QWEN_CONNECTION_TEXT in proc.stderr.decode()
    assert sim.cred.read_bytes() == before


def test_refresh_fail_unlinks_the_link_and_starts_the_device_flow(sim: Sim) -> None:
    slot = sim.home / "accounts" / "oauth_creds_1.json"
    slot.parent.mkdir(mode=0o700)
    sim.account("a1", mode="refresh_fail", expired=True)
    sim.backend.write_credential("a1", slot)
    sim.cred.unlink()
    sim.cred.symlink_to(Path("accounts") / slot.name)
    slot_before = slot.read_bytes()

    started = time.monotonic()
    proc = sim.popen("hi")
    try:
        err = read_until(proc, "Waiting for authorization", timeout=5)
    finally:
        kill_group(proc)
    assert time.monotonic() - started < 5
    assert QWEN_DEVICE_AUTH_TITLE.encode() in err
    assert b"https://chat.qwen.ai/authorize?user_code=" in err
    assert not os.path.lexists(sim.cred)  # the link itself is gone
    assert slot.read_bytes() == slot_before  # not what it pointed to
    assert sim.backend.calls()[0]["outcome"] == "refresh_fail"
    assert sim.canary.encode() not in err


@pytest.mark.parametrize(
    "content",
    [
        None,
        "not json",
        '{"access_token": "x", "refresh_token": "y", "token_type": "Bearer",'
        ' "expiry_date": "tomorrow"}',
        '{"access_token": 1, "refresh_token": "y", "token_type": "Bearer", "expiry_date": 1}',
    ],
    ids=["missing", "not-json", "expiry-not-number", "token-not-string"],
)
def test_missing_or_malformed_credential_prints_the_banner(sim: Sim, content: str | None) -> None:
    if content is not None:
        sim.cred.write_text(content)
    proc = sim.popen("hi")
    try:
        err = read_until(proc, QWEN_DEVICE_AUTH_TITLE, timeout=5)
    finally:
        kill_group(proc)
    assert b"Qwen OAuth Device Authorization" in err
    assert sim.backend.calls()[0]["outcome"] == "device_auth"


def test_device_flow_times_out_and_can_be_approved(sim: Sim) -> None:
    sim.backend.configure(poll_interval=0.05, device_auth_timeout=0.3)
    proc = sim.run("hi", timeout=5)
    assert proc.returncode == 41
    assert QWEN_DEVICE_AUTH_TIMEOUT_TEXT in proc.stderr.decode()

    sim.backend.add_account("late")
    sim.backend.approve_login("late")
    proc = sim.run("hi", timeout=5)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"Simulated qwen answer from late (call 1)."
    cred = json.loads(sim.cred.read_text())
    assert cred["access_token"] == sim.backend.latest_token("late")
    assert [c["outcome"] for c in sim.backend.calls()] == ["device_auth", "device_auth", "ok"]


@pytest.mark.parametrize("fmt", ["json", "stream-json"])
def test_json_modes_exit_zero_with_the_error_in_result(sim: Sim, fmt: str) -> None:
    sim.account("a1", quota=1)
    proc = sim.run("-o", fmt, "hi")
    assert proc.returncode == 0
    ok = json_messages(proc.stdout, fmt)[-1]
    assert ok["type"] == "result"
    assert ok["result"] == "Simulated qwen answer from a1 (call 1)."

    proc = sim.run("-o", fmt, "hi")
    assert proc.returncode == 0  # FACTS: the real CLI exits 0 here
    result = json_messages(proc.stdout, fmt)[-1]
    assert result["type"] == "result"
    assert result["subtype"] == "success"
    assert result["is_error"] is False
    assert QWEN_QUOTA_TEXT in result["result"]

    sim.backend.set("a1", mode="auth")
    proc = sim.run("-o", fmt, "hi")
    assert proc.returncode == 0
    assert "401" in json_messages(proc.stdout, fmt)[-1]["result"]


def test_large_prompt_through_stdin_is_recorded_exactly(sim: Sim) -> None:
    sim.account("a1", answer="{prompt_len}")
    prompt = ("diff --git a/x b/x\n+" + "é" * 100 + "\n") * 5000
    data = prompt.encode()
    assert len(data) > 1024 * 1024
    proc = sim.run(input=data)
    assert proc.returncode == 0
    assert proc.stdout == str(len(prompt)).encode()
    call = sim.backend.calls()[0]
    assert call["prompt_sha256"] == hashlib.sha256(data).hexdigest()
    assert call["prompt_len"] == len(prompt)
    assert sim.backend.prompt(call["n"]) == prompt


def test_parallel_calls_keep_exact_counts(sim: Sim) -> None:
    sim.account("a1", quota=5)
    procs = [sim.popen("hi") for _ in range(8)]
    results = [(p.wait(timeout=20), p.communicate()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0] * 5 + [1] * 3
    assert sim.backend.used("a1") == 5
    calls = sim.backend.calls()
    assert sorted(c["n"] for c in calls) == list(range(1, 9))
    assert sorted(c["outcome"] for c in calls) == ["ok"] * 5 + ["quota"] * 3
    answers = sorted(out for rc, (out, _) in results if rc == 0)
    assert answers == sorted(
        f"Simulated qwen answer from a1 (call {k}).".encode() for k in range(1, 6)
    )


def test_usage_errors_exit_42(sim: Sim) -> None:
    sim.account("a1")
    proc = sim.run("--no-such-flag", "hi")
    assert proc.returncode == 42
    assert b"no-such-flag" in proc.stderr
    assert sim.run("-o", "xml", "hi").returncode == 42
    assert sim.run("-p", "a", "b").returncode == 42
    assert sim.run().returncode == 42  # no prompt at all (stdin empty)
    assert sim.backend.used("a1") == 0
    assert {c["outcome"] for c in sim.backend.calls()} == {"usage_error"}


def test_version_and_missing_backend(sim: Sim, tmp_path: Path) -> None:
    assert sim.run("--version").stdout == b"0.12.0-sim\n"
    env = {k: v for k, v in sim.env.items() if k != simulate.BACKEND_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "credrot_sim", "qwen", "hi"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert proc.returncode == 2
    assert simulate.BACKEND_ENV.encode() in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_module_entry_point_uses_env_backend(sim: Sim) -> None:
    sim.account("a1")
    env = {**sim.env, simulate.BACKEND_ENV: str(sim.backend.root)}
    proc = subprocess.run(
        [sys.executable, "-m", "credrot_sim", "qwen", "-p", "hi"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=10,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"Simulated qwen answer from a1 (call 1)."


def test_garbage_mode_writes_non_utf8(sim: Sim) -> None:
    sim.account("a1", mode="garbage")
    proc = sim.run("hi")
    assert proc.returncode == 0
    with pytest.raises(UnicodeDecodeError):
        proc.stdout.decode("utf-8")


def test_latency_delays_the_answer(sim: Sim) -> None:
    sim.account("a1", latency=0.3)
    started = time.monotonic()
    assert sim.run("hi").returncode == 0
    assert time.monotonic() - started >= 0.3


def test_hang_leaves_a_child_in_the_process_group(sim: Sim) -> None:
    sim.account("a1", mode="hang")
    proc = sim.popen("hi")
    deadline = time.monotonic() + 5
    while not sim.backend.calls():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = sim.backend.calls()[0]["child_pid"]
    assert os.getpgid(child) == proc.pid
    assert proc.poll() is None
    kill_group(proc)
    deadline = time.monotonic() + 5
    while alive(child):
        assert time.monotonic() < deadline, "child survived the process-group kill"
        time.sleep(0.02)


def test_tokens_never_printed(sim: Sim) -> None:
    sim.account("a1", expired=True, refresh_every=1)
    outputs = b""
    for args in (["hi"], ["-o", "json", "hi"], ["-o", "stream-json", "hi"], ["--bogus"]):
        proc = sim.run(*args)
        outputs += proc.stdout + proc.stderr
    for mode in ("quota", "rate_limit", "auth", "disabled", "connection_error"):
        sim.backend.set("a1", mode=mode)
        proc = sim.run("hi")
        outputs += proc.stdout + proc.stderr
    state = json.loads((sim.backend.root / "backend.json").read_text())
    tokens = [*state["access_tokens"], *state["refresh_tokens"]]
    assert len(tokens) > 5
    calls_log = (sim.backend.root / "calls.jsonl").read_bytes()
    for token in tokens:
        assert token.encode() not in outputs
        assert token.encode() not in calls_log


def test_backend_api_validates(sim: Sim) -> None:
    sim.account("a1")
    with pytest.raises(ValueError, match="exists"):
        sim.backend.add_account("a1")
    with pytest.raises(ValueError, match="mode"):
        sim.backend.add_account("a2", mode="sleepy")
    with pytest.raises(TypeError):
        sim.backend.set("a1", quotas=3)
    with pytest.raises(KeyError):
        sim.backend.used("nobody")
    assert sim.backend.account_for_token(f"{sim.canary}-refresh-a1") == "a1"
    assert sim.backend.account_for_token("nope") is None
    info = sim.backend.account("a1")
    assert "access_token" not in info
    assert info["used"] == 0
    with pytest.raises(ValueError, match="no simulator"):
        simulate.install(sim.bin, sim.backend.root, tools=["nosuchtool"])
