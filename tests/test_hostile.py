"""Hostile processes and files, tried on a throwaway home: no hang, no crash, nothing
lost, nothing touched outside the home.

Each test names the row of the table below it covers (``Row: <name>``), and
``test_every_row_of_the_table_has_a_test`` keeps the table and the tests together. Every
command that could hang runs as a real process with a timeout; every test that plants
something keeps a sentinel file outside the home and checks its mode, bytes and mtime.
The rows of the runner (a daemon keeping the pipes open, a 200 MB answer) are covered in
depth in ``tests/test_process.py``; the wrapper-level checks are here.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from creds import CANARY
from simpool import SimPool

from credrot import resets
from credrot.manager import AccountManager
from credrot.tools.codex import CODEX
from credrot.tools.qwen import QWEN
from credrot.wrapper import QwenWrapper, Wrapper

ROWS = (
    "the tool starts a daemon that keeps stdout open",
    "slot is a FIFO, socket or directory",
    "slot is a symlink outside the home",
    "pointer leads outside accounts/",
    "state.yaml alias bomb",
    "state.yaml wrong types",
    "lock file deleted while held",
    "the tool's own lock has a future mtime",
    "an answer quotes the login box or a JSON quota message",
    "disk full, unreadable state, out-of-range times",
    "non-canonical slot names",
    "huge credential, huge answer",
    "doctor: stale temp files, dead call homes, unreadable home",
)
#: Rows tested in depth in another module: ``row -> "file.py::test_name"``.
ELSEWHERE = {
    "the tool starts a daemon that keeps stdout open": (
        "test_process.py::test_a_wrapper_call_with_a_daemonising_tool_returns"
    ),
    "lock file deleted while held": (
        "test_lock.py::test_a_lock_file_deleted_while_held_still_excludes"
    ),
}


@dataclass
class Outside:
    """A file outside the home whose mode, bytes and mtime must never change."""

    path: Path
    mode: int
    data: bytes
    mtime_ns: int

    def check(self) -> None:
        s = os.lstat(self.path)
        assert (s.st_mode & 0o7777, s.st_mtime_ns) == (self.mode, self.mtime_ns)
        assert self.path.read_bytes() == self.data
        assert sorted(os.listdir(self.path.parent)) == [self.path.name]


def make_outside(root: Path, data: bytes) -> Outside:
    folder = root / "outside"
    folder.mkdir()
    path = folder / "oauth_creds_2.json"
    path.write_bytes(data)
    path.chmod(0o644)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    s = path.stat()
    return Outside(path, s.st_mode & 0o7777, data, s.st_mtime_ns)


@pytest.fixture
def outside(tmp_path: Path, make_cred: Callable[..., bytes]) -> Iterator[Outside]:
    sentinel = make_outside(tmp_path, make_cred(42))
    yield sentinel
    sentinel.check()


def cli(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``credrot --home HOME ARGS`` as a real process that must end within ``timeout``."""
    done = subprocess.run(
        [sys.executable, "-m", "credrot", "--home", str(home), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        check=False,
        text=True,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert CANARY not in done.stdout + done.stderr
    return done


def listed(home: Path) -> dict[int, dict[str, object]]:
    done = cli(home, "accounts", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["accounts"]
    return {int(row["index"]): row for row in rows}


def test_every_row_of_the_table_has_a_test() -> None:
    docs = [
        obj.__doc__ or ""
        for name, obj in globals().items()
        if name.startswith("test_") and callable(obj)
    ]
    missing = [row for row in ROWS if not any(f"Row: {row}" in doc for doc in docs)]
    for row, where in ELSEWHERE.items():
        module, name = where.split("::")
        assert f"\ndef {name}(" in (Path(__file__).parent / module).read_text(), where
        if row in missing:
            missing.remove(row)
    assert missing == []


# ------------------------------------------------------------------ special files
def _plant_specials(accounts: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.mkfifo(accounts / "oauth_creds_4.json", 0o600)
    with monkeypatch.context() as m:
        m.chdir(accounts)  # a socket path must be short: bind it relative
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind("oauth_creds_5.json")
        sock.close()
    (accounts / "oauth_creds_6.json").mkdir()


def test_special_files_as_slots_are_listed_invalid_and_never_block(
    make_pool: Callable[..., AccountManager], monkeypatch: pytest.MonkeyPatch, outside: Outside
) -> None:
    """Row: slot is a FIFO, socket or directory — list, switch, doctor end at once."""
    home = make_pool(3).home
    _plant_specials(home / "accounts", monkeypatch)
    rows = listed(home)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6]
    assert "a FIFO, not a regular file" in str(rows[4]["invalid_reason"])
    assert "a socket, not a regular file" in str(rows[5]["invalid_reason"])
    assert "a directory, not a regular file" in str(rows[6]["invalid_reason"])
    assert [i for i, row in rows.items() if row["valid"]] == [1, 2, 3]
    refused = cli(home, "accounts", "switch", "4")
    assert refused.returncode != 0
    assert len(refused.stderr.strip().splitlines()) == 1
    assert cli(home, "doctor").returncode != 0  # findings, not a hang
    assert cli(home, "accounts", "next").returncode == 0
    assert listed(home)[2]["active"]
    assert stat_kinds(home / "accounts") == {
        "oauth_creds_1.json": "file",
        "oauth_creds_2.json": "file",
        "oauth_creds_3.json": "file",
        "oauth_creds_4.json": "fifo",
        "oauth_creds_5.json": "socket",
        "oauth_creds_6.json": "dir",
    }


def stat_kinds(folder: Path) -> dict[str, str]:
    import stat

    kinds = {}
    for entry in os.scandir(folder):
        mode = os.lstat(entry.path).st_mode
        kinds[entry.name] = (
            "fifo"
            if stat.S_ISFIFO(mode)
            else "socket"
            if stat.S_ISSOCK(mode)
            else "dir"
            if stat.S_ISDIR(mode)
            else "link"
            if stat.S_ISLNK(mode)
            else "file"
        )
    return kinds


def test_a_wrapper_call_skips_a_fifo_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Outside
) -> None:
    """Row: slot is a FIFO, socket or directory — a wrapper call on a pool with a FIFO."""
    sim = SimPool(tmp_path / "sim", monkeypatch)
    sim.add()
    sim.add()
    slot = sim.home / "accounts" / "oauth_creds_1.json"
    slot.unlink()
    os.mkfifo(slot, 0o600)
    done = cli(sim.home, "run", "--timeout", "20", "--", "-p", "hello", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "acct2" in done.stdout
    assert stat_kinds(sim.home / "accounts")["oauth_creds_1.json"] == "fifo"


# ------------------------------------------------------------------------ symlinks
def test_a_symlinked_slot_is_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row: slot is a symlink outside the home — no chmod, no read, no copy to the tool."""
    sim = SimPool(tmp_path / "sim", monkeypatch)
    sim.add(quota=0)
    sim.add()
    sim.add()
    stranger = sim.backend.add_account(
        "stranger", access_token=f"{CANARY}-access-x", refresh_token=f"{CANARY}-refresh-x"
    )
    sentinel = make_outside(tmp_path, json.dumps(stranger, indent=2).encode())
    slot = sim.home / "accounts" / "oauth_creds_2.json"
    slot.unlink()
    slot.symlink_to(sentinel.path)
    rows = listed(sim.home)
    assert rows[2]["valid"] is False
    assert "symbolic link" in str(rows[2]["invalid_reason"])
    fixed = cli(sim.home, "doctor", "--fix")
    assert "Traceback" not in fixed.stderr
    sentinel.check()  # not chmodded to 0600 through the link
    done = cli(sim.home, "run", "--timeout", "20", "--", "-p", "hello")
    assert done.returncode == 0, done.stderr
    assert "acct3" in done.stdout
    assert [c["account"] for c in sim.backend.calls()] == ["acct1", "acct3"]
    assert os.readlink(slot) == str(sentinel.path)
    sentinel.check()


def test_a_pointer_leading_outside_accounts_is_not_an_account(
    make_pool: Callable[..., AccountManager], outside: Outside
) -> None:
    """Row: pointer leads outside accounts/ — not active, not ok, and repaired."""
    home = make_pool(3).home
    pointer = home / "oauth_creds.json"
    pointer.unlink()
    pointer.symlink_to(os.path.relpath(outside.path, home))
    rows = listed(home)
    assert not rows[2]["active"]
    doctor = cli(home, "doctor")
    assert doctor.returncode != 0
    assert not any(
        "pointer" in line and "links to" in line for line in doctor.stdout.splitlines()
    ), doctor.stdout
    assert cli(home, "doctor", "--fix").returncode in (0, 1)
    assert os.readlink(pointer) == "accounts/oauth_creds_1.json"


# ------------------------------------------------------------------ names and caps
def test_one_canonical_name_per_account_number(
    make_pool: Callable[..., AccountManager], make_cred: Callable[..., bytes], outside: Outside
) -> None:
    """Row: non-canonical slot names — ``_01`` and ``_0`` are reported, never used."""
    home = make_pool(2).home
    accounts = home / "accounts"
    (accounts / "oauth_creds_01.json").write_bytes(make_cred(7))
    (accounts / "oauth_creds_0.json").write_bytes(make_cred(8))
    (accounts / "oauth_creds_02.json").write_bytes(make_cred(9))
    done = cli(home, "accounts", "list")
    assert done.returncode == 0
    assert "oauth_creds_01.json: not the canonical name oauth_creds_1.json" in done.stderr
    assert "oauth_creds_02.json: not the canonical name oauth_creds_2.json" in done.stderr
    assert "oauth_creds_0.json: account numbers start at 1" in done.stderr
    manager = AccountManager(qwen_dir=home)
    assert manager.slots() == {i: accounts / f"oauth_creds_{i}.json" for i in (1, 2)}
    assert manager.read_credential(1) == make_cred(1)
    for _ in range(4):
        assert manager.switch_next()[0]
    assert os.readlink(home / "oauth_creds.json") in (
        "accounts/oauth_creds_1.json",
        "accounts/oauth_creds_2.json",
    )
    assert (accounts / "oauth_creds_01.json").read_bytes() == make_cred(7)


def test_a_credential_over_the_cap_is_invalid_unread(
    make_pool: Callable[..., AccountManager], make_cred: Callable[..., bytes], outside: Outside
) -> None:
    """Row: huge credential, huge answer — a 100 MB slot (and a 2 MiB valid one) is
    invalid with the cap named."""
    home = make_pool(3).home
    with open(home / "accounts" / "oauth_creds_2.json", "r+b") as f:
        f.truncate(100 * (1 << 20))
    padded = make_cred(3)[:-1] + b" " * (2 << 20) + b"}"
    json.loads(padded)  # a valid credential, only too big
    (home / "accounts" / "oauth_creds_3.json").write_bytes(padded)
    rows = listed(home)
    assert rows[1]["valid"] is True
    for index in (2, 3):
        assert rows[index]["valid"] is False
        assert "over the 1048576-byte cap" in str(rows[index]["invalid_reason"])
    refused = cli(home, "accounts", "switch", "3")
    assert refused.returncode != 0


# ------------------------------------------------------------------------ state.yaml
#: Nine levels of nine aliases: under 400 bytes of YAML, 387 million strings expanded.
_BOMB = (
    "version: 1\na: &a [x,x,x,x,x,x,x,x,x]\n"
    + "".join(
        f"{chr(c + 1)}: &{chr(c + 1)} [{','.join(['*' + chr(c)] * 9)}]\n" for c in range(97, 105)
    )
    + "accounts: {1: {status: ready, reason: *i}}\n"
)


def _limited() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def test_a_yaml_alias_bomb_is_set_aside_not_expanded(
    make_pool: Callable[..., AccountManager], outside: Outside
) -> None:
    """Row: state.yaml alias bomb — refused unexpanded, set aside, state rebuilt."""
    home = make_pool(3).home
    assert len(_BOMB) < 400
    (home / "state.yaml").write_text(_BOMB)
    done = subprocess.run(
        [sys.executable, "-m", "credrot", "--home", str(home), "accounts", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_limited,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "anchors and aliases are not allowed" in done.stderr
    assert "Traceback" not in done.stderr
    (aside,) = home.glob("state.yaml.corrupt-*")
    assert aside.read_text() == _BOMB
    assert sorted(listed(home)) == [1, 2, 3]


def _state_with(accounts: dict[int, str], head: str = '"current": 1') -> str:
    """A state file in the layout credrot writes (one account per line)."""
    lines = ",\n".join(f'  "{i}": {body}' for i, body in accounts.items())
    return (
        '{"version": 1, ' + head + ', "generation": 3, "switches_total": 0, "last_switch": null,'
        ' "last_switch_from": null, "last_switch_to": null, "pool_exhausted": 0,'
        ' "accounts": {\n' + lines + "\n}}\n"
    )


def test_wrong_types_in_state_are_dropped_field_by_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Outside
) -> None:
    """Row: state.yaml wrong types — a bad field is dropped with a warning; commands and
    calls work on the rest."""
    sim = SimPool(tmp_path / "sim", monkeypatch)
    for _ in range(4):
        sim.add()
    bad = {
        1: '{"status": "exhausted", "until": "soon", "calls": 7}',
        2: '{"status": "rate_limited", "until": NaN, "calls": "many", "successes": 2}',
        3: '{"status": "exhausted", "until": 1e400, "reason": ["x"], "quota_hits": -4}',
        4: '{"status": "ready", "last_used": true, "calls": ' + "9" * 5000 + "}",
    }
    (sim.home / "state.yaml").write_text(_state_with(bad))
    shown = cli(sim.home, "accounts", "list")
    assert "state of account #1: dropped until='soon' (not a valid value)" in shown.stderr
    assert "state of account #2: dropped calls='many'" in shown.stderr
    rows = listed(sim.home)
    statuses = [rows[i]["status"] for i in (1, 2, 3, 4)]
    assert statuses == ["exhausted", "rate_limited", "exhausted", "ready"]
    assert rows[1]["calls"] == 7 and rows[2]["calls"] == 0 and rows[2]["successes"] == 2
    assert rows[1]["until"] is None and rows[3]["until"] is None
    for args in (("stats",), ("doctor",), ("accounts", "next")):
        done = cli(sim.home, *args)
        assert done.returncode in (0, 1), done.stderr
    result = QwenWrapper(home=sim.home).call("hello", timeout=20)
    assert result.success, result.error
    assert not list(sim.home.glob("state.yaml.corrupt-*"))  # only the bad fields went


@pytest.mark.parametrize(
    "text",
    [
        _state_with({1: '{"status": "ready"}'}, head='"current": ' + "7" * 5000),
        '{"version": 1, "accounts": ' + "[" * 100_000,
        "version: 1\naccounts: " + "[" * 100_000,
        '{"version": 1, "current": NaN, "accounts": {}}',
    ],
    ids=["5000-digit current", "json [[[", "yaml [[[", "NaN current"],
)
def test_a_state_beyond_repair_is_set_aside_and_rebuilt(
    make_pool: Callable[..., AccountManager], outside: Outside, text: str
) -> None:
    """Row: state.yaml wrong types — a damaged head or a nesting bomb: set aside, rebuilt."""
    home = make_pool(3).home
    (home / "state.yaml").write_text(text)
    done = cli(home, "accounts", "next")
    assert done.returncode == 0, done.stderr
    assert "corrupt" in done.stderr
    (aside,) = home.glob("state.yaml.corrupt-*")
    assert aside.read_text() == text
    assert sorted(listed(home)) == [1, 2, 3]


# ------------------------------------------------------------- tools seen as hostile
def tool_script(folder: Path, body: str) -> str:
    """An executable ``sh`` script standing in for the tool (it writes no file)."""
    path = folder / "tool"
    path.write_text("#!/bin/sh\ncat >/dev/null\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def scripted_pool(
    root: Path, body: str, make_cred: Callable[..., bytes], n: int = 2, **changes: Any
) -> AccountManager:
    """A pool of ``n`` Qwen accounts whose tool is the script ``body``."""
    root.mkdir(exist_ok=True)
    profile = dataclasses.replace(QWEN, executable=tool_script(root, body), **changes)
    manager = AccountManager(tool=profile, home=root / "home")
    for i in range(1, n + 1):
        manager.import_account(make_cred(i))
    return manager


def test_a_future_tool_lock_is_not_fresh_and_waits_are_bounded(
    make_pool: Callable[..., AccountManager], outside: Outside
) -> None:
    """Row: the tool's own lock has a future mtime — a switch does not wait for it, says
    so, and ``doctor --fix`` removes it; a lock kept fresh is waited for a bounded time."""
    home = make_pool(3).home
    lock = home / "oauth_creds.lock"
    lock.write_text("")
    ahead = time.time() + 3600
    os.utime(lock, (ahead, ahead))
    done = cli(home, "accounts", "next")
    assert done.returncode == 0, done.stderr
    assert "oauth_creds.lock is dated" in done.stderr and "in the future" in done.stderr
    assert listed(home)[2]["active"]
    doctor = cli(home, "doctor")
    assert "oauth_creds.lock is dated" in doctor.stdout, doctor.stdout
    cli(home, "doctor", "--fix")
    assert not lock.exists()

    # A lock the tool keeps touching: the switch waits for it, but not forever.
    stop = threading.Event()

    def keep_fresh() -> None:
        while not stop.is_set():
            lock.touch()
            stop.wait(0.2)

    toucher = threading.Thread(target=keep_fresh)
    toucher.start()
    try:
        done = cli(home, "accounts", "next")
    finally:
        stop.set()
        toucher.join(10)
    assert done.returncode == 0, done.stderr
    assert "oauth_creds.lock was still fresh after 11 s of waiting" in done.stderr
    assert listed(home)[3]["active"]


def _box() -> str:
    transcript = Path(__file__).parent / "conformance" / "transcripts" / "qwen-0.12.0.json"
    box = json.loads(transcript.read_text())["transcripts"]["refresh_fail"]["stderr"]
    assert isinstance(box, str) and "Qwen OAuth Device Authorization" in box
    return box


#: A text answer that is itself JSON in the shape of the tool's json error result.
_JSON_QUOTA_ANSWER = json.dumps(
    [{"type": "result", "is_error": True, "result": "Qwen OAuth quota exceeded: 429"}]
)


@pytest.mark.parametrize(
    "answer", [_box(), _JSON_QUOTA_ANSWER], ids=["login box", "json quota message"]
)
def test_an_answer_in_text_mode_that_quotes_errors_is_an_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Outside, answer: str
) -> None:
    """Row: an answer quotes the login box or a JSON quota message — on stdout, exit 0,
    in text mode: a success, and no account is parked or marked exhausted."""
    sim = SimPool(tmp_path / "sim", monkeypatch)
    sim.add(answer=answer)
    sim.add()
    result = QwenWrapper(home=sim.home).call("show me the error", timeout=20)
    assert result.success, result.error
    assert result.output.strip() == answer.strip()
    assert result.accounts_tried == [1]
    assert [row["status"] for row in listed(sim.home).values()] == ["ready", "ready"]
    done = cli(sim.home, "run", "--timeout", "20", "--", "-p", "again")
    assert done.returncode == 0, done.stderr
    assert [row["status"] for row in listed(sim.home).values()] == ["ready", "ready"]


@pytest.mark.parametrize("fmt", [("--output-format", "json"), ("-o", "stream-json")])
def test_in_json_mode_an_exit_zero_error_result_still_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: tuple[str, str]
) -> None:
    """Row: an answer quotes the login box or a JSON quota message — the JSON error
    result of a ``json``/``stream-json`` run (exit 0) is still read as the quota it is."""
    sim = SimPool(tmp_path / "sim", monkeypatch)
    sim.add(mode="quota")
    sim.add()
    result = QwenWrapper(home=sim.home, extra_args=fmt).call("hello", timeout=20)
    assert result.success, result.error
    assert result.accounts_tried == [1, 2]
    assert listed(sim.home)[1]["status"] == "exhausted"


def test_the_output_format_decides_where_errors_are_read() -> None:
    """Row: an answer quotes the login box or a JSON quota message — which runs print
    JSON, per tool (the last format option wins; ``codex -o`` names a file)."""
    assert not QWEN.json_output(QWEN.argv())
    assert QWEN.json_output(QWEN.argv(extra=["-o", "json"]))
    assert QWEN.json_output(["qwen", "--output-format=stream-json"])
    assert not QWEN.json_output(["qwen", "-o", "json", "--output-format", "text"])
    assert not QWEN.json_output(["qwen", "-p", "x", "--", "-o", "json"])
    assert CODEX.json_output(["codex", "exec", "--json", "-"])
    assert not CODEX.json_output(["codex", "exec", "-o", "json", "-"])


# ------------------------------------------------------------ the call never raises
_CALLER = r"""
import ctypes, dataclasses, json, os, resource, signal, sys
from credrot.manager import AccountManager
from credrot.tools.qwen import QWEN
from credrot.wrapper import Wrapper

home, tool, how = sys.argv[1:4]
if how == "disk full":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit gets EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))
elif how == "unreadable" and os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH: root reads mode 000 files
        assert libc.prctl(24, cap, 0, 0, 0) == 0  # PR_CAPBSET_DROP
    os.execv(sys.executable, [sys.executable, "-c", sys.argv[4], home, tool, "-", sys.argv[4]])
profile = dataclasses.replace(QWEN, executable=tool)
wrapper = Wrapper(manager=AccountManager(tool=profile, home=home))
result = wrapper.call("hello", timeout=20)
fallback = wrapper.call_with_fallback("hello", "FALLBACK", timeout=20)
print(json.dumps({"success": result.success, "error": result.error, "fallback": fallback}))
"""


def _call_in_child(home: Path, tool: str, how: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _CALLER, str(home), tool, how, _CALLER],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert CANARY not in done.stdout + done.stderr
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


def _snapshot(home: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((home / "accounts").iterdir())}


@pytest.mark.parametrize("how", ["disk full", "unreadable"])
def test_a_full_disk_or_an_unreadable_state_is_a_failed_result(
    tmp_path: Path, make_cred: Callable[..., bytes], outside: Outside, how: str
) -> None:
    """Row: disk full, unreadable state, out-of-range times — a disk that takes no byte
    (``RLIMIT_FSIZE``) or a ``state.yaml`` that cannot be read: ``call()`` returns a
    failed result naming the reason, ``call_with_fallback`` its fallback; nothing lost."""
    manager = scripted_pool(tmp_path, 'echo "the answer"\n', make_cred)
    home = manager.home
    state = home / "state.yaml"
    before, state_before = _snapshot(home), state.read_bytes()
    if how == "unreadable":
        state.chmod(0o000)
    try:
        seen = _call_in_child(home, manager.profile.executable, how)
    finally:
        state.chmod(0o600)
    reason = "File too large" if how == "disk full" else "state.yaml: Permission denied"
    assert seen["success"] is False
    assert seen["error"].startswith("the call could not go on: ") and reason in seen["error"]
    assert seen["fallback"] == "FALLBACK"
    assert _snapshot(home) == before
    assert state.read_bytes() == state_before
    result = Wrapper(manager=AccountManager(tool=manager.profile, home=home)).call("x")
    assert result.success and result.output == "the answer\n", result.error


@pytest.mark.parametrize(
    "message",
    [
        "[API Error: 429] Too many requests, retry after 99999999999999999999 seconds",
        "Qwen OAuth quota exceeded. Your quota will reset after 99999999999d.",
        "Qwen OAuth quota exceeded. Your quota will reset after " + "9" * 400 + "s.",
    ],
    ids=["retry after 1e20 s", "reset after 1e11 days", "reset after 400 digits"],
)
def test_an_absurd_wait_is_clamped_not_raised(
    tmp_path: Path, make_cred: Callable[..., bytes], outside: Outside, message: str
) -> None:
    """Row: disk full, unreadable state, out-of-range times — a wait past any date is
    cut to the longest window (62 days); the call moves on to the next account."""
    body = f"""
        if grep -q access-1 "$HOME/.qwen/oauth_creds.json"; then
            echo "{message}" >&2
            exit 1
        fi
        echo "the answer"
    """
    manager = scripted_pool(tmp_path, body, make_cred, reset_parsers=(resets.gemini_reset_after,))
    wrapper = Wrapper(manager=manager, max_rate_limits=0)
    result = wrapper.call("hello", timeout=20)
    assert result.success, result.error
    assert result.accounts_tried == [1, 2]
    first = listed_manager(manager)[1]
    assert first.status in ("rate_limited", "exhausted")
    until = first.until
    assert until is not None
    ahead = until - datetime.now(timezone.utc)
    assert timedelta(days=61) < ahead <= resets.MAX_AHEAD
    assert wrapper.call_with_fallback("hello", "FALLBACK") == "the answer\n"


def listed_manager(manager: AccountManager) -> dict[int, Any]:
    fresh = AccountManager(tool=manager.profile, home=manager.home)
    return {a.index: a for a in fresh.list_accounts()}


# -------------------------------------------------------------------- output cap
_BIG_CALLER = r"""
import dataclasses, json, resource, sys
from credrot.manager import AccountManager
from credrot.tools.qwen import QWEN
from credrot.wrapper import Wrapper

home, tool, how = sys.argv[1:4]
profile = dataclasses.replace(QWEN, executable=tool)
if how == "profile":
    profile = dataclasses.replace(profile, max_output=1 << 20)
    wrapper = Wrapper(manager=AccountManager(tool=profile, home=home))
else:
    wrapper = Wrapper(manager=AccountManager(tool=profile, home=home), max_output=1 << 20)
result = wrapper.call("hello", timeout=120)
print(json.dumps({
    "success": result.success, "kept": len(result.output), "truncated": result.truncated,
    "cap": result.max_output, "warnings": result.warnings, "error": result.error,
}))
"""


#: Runs ``argv`` as its only child and prints that child's peak RSS (KiB) and output.
_MEASURE = r"""
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300, check=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"peak_kib": peak, "seen": json.loads(done.stdout)}))
"""


def _peak_of_call(root: Path, body: str, make_cred: Callable[..., bytes], how: str) -> Any:
    manager = scripted_pool(root, body, make_cred)
    argv = [sys.executable, "-c", _BIG_CALLER, str(manager.home), manager.profile.executable]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *argv, how],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("how", ["wrapper argument", "profile"])
def test_a_200_mb_answer_through_the_wrapper_is_capped_and_said(
    tmp_path: Path, make_cred: Callable[..., bytes], outside: Outside, how: str
) -> None:
    """Row: huge credential, huge answer — a 200 MB answer through ``Wrapper.call`` with
    a 1 MiB cap (wrapper argument or profile key): the result keeps 1 MiB, says it was
    cut in a field and a warning, and the caller's peak memory grows by a few MiB over
    the same call with a one-line answer, never by the answer."""
    base = _peak_of_call(tmp_path / "small", "echo small\n", make_cred, how)
    big = _peak_of_call(
        tmp_path / "big", "head -c 209715200 /dev/zero | tr '\\0' 'y'\n", make_cred, how
    )
    seen = big["seen"]
    assert base["seen"]["success"] and base["seen"]["truncated"] == []
    assert seen["success"], seen["error"]
    assert seen["kept"] == 1 << 20 and seen["cap"] == 1 << 20
    assert seen["truncated"] == ["stdout"]
    assert seen["warnings"] == [
        f"the answer was cut: stdout cut at {1 << 20} bytes ({200 * (1 << 20) - (1 << 20)}"
        " more bytes discarded)"
    ]
    grown_mib = (big["peak_kib"] - base["peak_kib"]) / 1024
    assert grown_mib < 32, grown_mib  # the kept MiB, its text and copies; 200 before


def test_the_cap_is_a_config_key_and_said_by_credrot_run(
    tmp_path: Path, make_cred: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row: huge credential, huge answer — ``max_output`` in the config file caps what
    ``credrot run`` keeps, and the CLI warns that the answer was cut."""
    tool = tool_script(tmp_path, "head -c 300000 /dev/zero | tr '\\0' 'y'\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        "tools:\n  bigtool:\n"
        f"    executable: {tool}\n    home: .bigtool\n    credential: auth.json\n"
        "    required_keys: [access_token]\n    max_output: 100000\n"
    )
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    home = tmp_path / "bighome"
    cred = tmp_path / "cred.json"
    cred.write_bytes(make_cred(1))
    added = cli_tool(home, "bigtool", "accounts", "add", "--from", str(cred))
    assert added.returncode == 0, added.stderr
    done = cli_tool(home, "bigtool", "run", "--timeout", "20", "--", "x")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) == 100_000
    assert "warning: the answer was cut: stdout cut at 100000 bytes" in done.stderr
    bad = config.read_text().replace("max_output: 100000", "max_output: lots")
    config.write_text(bad)
    refused = cli_tool(home, "bigtool", "accounts", "list")
    assert refused.returncode != 0
    assert "tools.bigtool.max_output: expected a whole number of bytes" in refused.stderr


def cli_tool(home: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "credrot", "--tool", tool, "--home", str(home), *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
        text=True,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert CANARY not in done.stdout + done.stderr
    return done


# ------------------------------------------------------------------------- doctor
def _without_dac_override() -> None:
    """As root, give up reading and searching what the mode forbids (as any user would)."""
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl")


def test_doctor_clears_stale_temp_files_and_dead_call_homes(
    make_pool: Callable[..., AccountManager], make_cred: Callable[..., bytes], outside: Outside
) -> None:
    """Row: doctor: stale temp files, dead call homes, unreadable home — what dead
    writers and dead calls left is reported and ``--fix`` clears it, saving any token;
    what live processes own, and what credrot never writes, is left alone."""
    manager = make_pool(3)
    home, accounts, run = manager.home, manager.accounts_dir, manager.home / ".credrot-run"
    dead, live = 999_999_999, os.getpid()
    (home / f".state.yaml.{dead}.deadbeef.tmp").write_text("{}")
    (accounts / f".oauth_creds_2.json.{dead}.deadbeef.tmp").write_bytes(make_cred(2, version=1))
    (accounts / f".oauth_creds_3.json.{dead}.cafebabe.tmp").symlink_to(outside.path)
    (home / f".oauth_creds.json.{dead}.0badf00d.lnk").mkdir()  # not something credrot writes
    (home / f".state.yaml.{live}.abcdef01.tmp").write_text("{}")
    refreshed = run / f"{dead}-1-abc" / ".qwen"
    refreshed.mkdir(parents=True)
    (refreshed / "oauth_creds.json").write_bytes(make_cred(1, version=2))
    (run / f"{dead + 1}-2-file").write_text("junk")
    (run / f"{live}-3-live").mkdir()

    doctor = cli(home, "doctor", "--skip-tool")
    assert "3 unfinished temporary files left by processes that died" in doctor.stdout
    assert "2 private call homes in .credrot-run/ were left by processes that died" in (
        doctor.stdout
    )
    fixed = cli(home, "doctor", "--skip-tool", "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    again = cli(home, "doctor", "--skip-tool")
    assert again.returncode == 0, again.stdout
    assert "temporary files" not in again.stdout and "call homes" not in again.stdout
    assert manager.read_credential(1) == make_cred(1, version=2)  # the dead call's token
    (kept,) = (home / "backups").iterdir()
    assert kept.read_bytes() == make_cred(2, version=1)
    assert sorted(p.name for p in home.iterdir() if p.name.startswith(".state.yaml.")) == [
        f".state.yaml.{live}.abcdef01.tmp"
    ]
    assert (home / f".oauth_creds.json.{dead}.0badf00d.lnk").is_dir()
    assert sorted(p.name for p in run.iterdir()) == [f"{live}-3-live"]
    assert not any(p.name.startswith(".oauth_creds_3") for p in accounts.iterdir())


@pytest.mark.parametrize("what", ["home", "accounts", "state.yaml"])
def test_doctor_on_an_unreadable_home_gives_findings(
    make_pool: Callable[..., AccountManager], outside: Outside, what: str
) -> None:
    """Row: doctor: stale temp files, dead call homes, unreadable home — a home, an
    accounts folder or a state file this user cannot read: findings, one line each."""
    home = make_pool(2).home
    target = home if what == "home" else home / what
    mode = target.stat().st_mode & 0o777
    target.chmod(0)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "credrot", "--home", str(home), "doctor", "--skip-tool"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
            text=True,
            preexec_fn=_without_dac_override,
        )
    finally:
        target.chmod(mode)
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot be read" in done.stdout, done.stdout
    assert done.stderr.count("\n") <= 1, done.stderr


# --------------------------------------------------------------- usage readings
def test_a_text_answer_quoting_a_usage_event_moves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Row: an answer quotes the login box or a JSON quota message — a Claude answer in
    text mode that quotes a ``rate_limit_event`` line saying "rejected" is the model's
    words: no window is marked full, the account stays in use."""
    event = '{"type":"rate_limit_event","status":"rejected","resetsAt":4102444800000}'
    sim = SimPool(tmp_path / "sim", monkeypatch, tool="claude")
    sim.add(answer=f"The stream said:\n{event}\n")
    sim.add()
    wrapper = Wrapper("claude", manager=AccountManager(tool="claude", home=sim.home))
    for _ in range(2):
        result = wrapper.call("what did the stream say?", timeout=20)
        assert result.success and result.account == 1, result.error
    state = json.loads((sim.home / "state.yaml").read_text())
    assert not state["accounts"]["1"].get("windows"), state["accounts"]["1"]


_ROLLOUT = (
    '{"timestamp":"STAMP","type":"event_msg","payload":{"type":"token_count",'
    '"info":null,"rate_limits":{"primary":{"used_percent":100,"window_minutes":NaN,'
    '"resets_in_seconds":1e300},"secondary":{"used_percent":100,"window_minutes":1e400,'
    '"resets_at":99999999999999999999}}}}'
)


def test_usage_readings_with_absurd_numbers_are_clamped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Outside
) -> None:
    """Row: disk full, unreadable state, out-of-range times — a session rollout whose
    window is NaN and whose reset is 1e300 s away: the answer is kept, the window that
    was reported full comes back within the longest window, every command still works."""
    sim = SimPool(tmp_path / "sim", monkeypatch, tool="codex")
    sim.add()
    sim.add()
    folder = tmp_path / "t"
    folder.mkdir()
    stamp = datetime.now(timezone.utc).isoformat()
    (folder / "rollout.jsonl").write_text(_ROLLOUT.replace("STAMP", stamp) + "\n")
    body = f"""
        mkdir -p "$CODEX_HOME/sessions/2026"
        cp {folder / "rollout.jsonl"} "$CODEX_HOME/sessions/2026/rollout-1.jsonl"
        echo "the answer"
    """
    profile = dataclasses.replace(CODEX, executable=tool_script(folder, body))
    result = Wrapper(manager=AccountManager(tool=profile, home=sim.home)).call("hi", timeout=20)
    assert result.success and result.output == "the answer\n", result.error
    windows = json.loads((sim.home / "state.yaml").read_text())["accounts"]["1"]["windows"]
    assert sorted(windows) == ["primary", "secondary"]  # no NaN or 1e400 window name
    latest = time.time() + resets.MAX_AHEAD.total_seconds()
    assert windows["primary"]["over"] and windows["primary"]["resets"] <= latest
    assert "resets" not in windows["secondary"]  # 1e20 is no time at all
    for args in (("stats",), ("doctor", "--skip-tool"), ("top", "--once")):
        done = subprocess.run(
            [sys.executable, "-m", "credrot", "--tool", "codex", "--home", str(sim.home), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert "Traceback" not in done.stderr, (args, done.stderr)


def test_a_described_tool_says_where_it_prints_its_login_prompt() -> None:
    """Row: an answer quotes the login box or a JSON quota message — a tool described in
    the config file watches stderr for its login prompt unless ``abort_streams`` says
    otherwise; a stream that does not exist is one clear error."""
    from credrot.config import parse_config
    from credrot.errors import ConfigError

    head = "tools:\n  t:\n    credential: a.json\n    abort_patterns: [log in]\n"
    assert parse_config(head)["t"].abort_streams == ("stderr",)
    both = parse_config(head + "    abort_streams: [stdout, stderr]\n")["t"]
    assert both.abort_streams == ("stdout", "stderr")
    with pytest.raises(ConfigError, match=r"tools\.t\.abort_streams: expected a list of stderr"):
        parse_config(head + "    abort_streams: [stdin]\n")


_FILLING_CALLER = r"""
import dataclasses, json, signal, sys
from credrot.manager import AccountManager
from credrot.tools.qwen import QWEN
from credrot.wrapper import Wrapper

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit gets EFBIG
profile = dataclasses.replace(QWEN, executable=sys.argv[2])
result = Wrapper(manager=AccountManager(tool=profile, home=sys.argv[1])).call("hi", timeout=20)
print(json.dumps({"success": result.success, "output": result.output,
                  "warnings": result.warnings, "error": result.error}))
"""


def test_a_disk_that_fills_during_the_call_keeps_the_answer_and_the_token(
    tmp_path: Path, make_cred: Callable[..., bytes], outside: Outside
) -> None:
    """Row: disk full, unreadable state, out-of-range times — the disk fills while the
    tool runs, after it refreshed its token (the tool takes its caller's right to write,
    ``prlimit``): the answer comes back with a warning that the outcome was not
    recorded, and the refreshed token reaches its slot on the next call."""
    refreshed = tmp_path / "refreshed.json"
    refreshed.write_bytes(make_cred(1, version=1))
    tool = tmp_path / "tool"
    tool.write_text(
        f"#!{sys.executable}\n"
        "import os, resource, shutil, sys\n"
        "sys.stdin.read()\n"
        f"shutil.copyfile({str(refreshed)!r}, os.environ['HOME'] + '/.qwen/oauth_creds.json')\n"
        f"if os.getppid() == {os.getpid()}: raise SystemExit('not in the test process')\n"
        "resource.prlimit(os.getppid(), resource.RLIMIT_FSIZE, (16, 16))\n"
        "print('the answer')\n"
    )
    tool.chmod(0o755)
    profile = dataclasses.replace(QWEN, executable=str(tool))
    home = tmp_path / "home"
    manager = AccountManager(tool=profile, home=home)
    for i in (1, 2):
        manager.import_account(make_cred(i))
    done = subprocess.run(
        [sys.executable, "-c", _FILLING_CALLER, str(home), str(tool)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    seen = json.loads(done.stdout)
    assert seen["success"] and seen["output"] == "the answer\n", seen["error"]
    (warning,) = [w for w in seen["warnings"] if w.startswith("the outcome was not recorded")]
    assert warning.endswith(": File too large"), warning
    assert CANARY not in done.stdout + done.stderr
    assert manager.read_credential(1) == make_cred(1)  # not written yet: the disk was full
    # The next call (a tool that only answers) finds the dead caller's home and its token.
    tool.write_text("#!/bin/sh\ncat >/dev/null\necho 'the answer'\n")
    again = Wrapper(manager=AccountManager(tool=profile, home=home)).call("hello", timeout=20)
    assert again.success, again.error
    assert AccountManager(tool=profile, home=home).read_credential(1) == make_cred(1, version=1)


@pytest.mark.parametrize(
    "text",
    [
        "Claude AI usage limit reached|99999999999",
        "Your quota will reset after 99999999999d.",
        "Your quota will reset after 1d" + "9" * 500 + "h.",
        "try again at Apr 23rd, 9999 3:51 PM",
        "retry after 99999999999999999999 seconds",
        "try again in " + "9" * 5000 + " minutes",
    ],
)
def test_every_parser_cuts_a_time_past_the_longest_window(text: str) -> None:
    """Row: disk full, unreadable state, out-of-range times — no text a tool prints
    overflows a date: each parser gives a time within 62 days, or none."""
    from credrot.classify import parse_retry_after

    now = datetime.now(timezone.utc)
    for parser in resets.PARSERS.values():
        when = parser(text, now)
        assert when is None or now <= when <= now + resets.MAX_AHEAD, parser
    wait = parse_retry_after(text)
    assert wait is None or 0 <= wait <= resets.MAX_AHEAD.total_seconds()


@pytest.mark.parametrize("left", ["fifo", "link outside", "100 MB file"])
def test_what_the_tool_leaves_as_its_credential_is_read_safely(
    tmp_path: Path, make_cred: Callable[..., bytes], outside: Outside, left: str
) -> None:
    """Row: slot is a FIFO, socket or directory — the tool replaces the credential in its
    call home with a FIFO, a link to a file outside (a newer token of the same account)
    or a 100 MB file: the call returns its answer at once, nothing is read through the
    link or copied into the slot."""
    newer = tmp_path / "newer.json"
    newer.write_bytes(make_cred(1, version=5))
    make = {
        "fifo": 'mkfifo "$C"',
        "link outside": f'ln -s {newer} "$C"',
        "100 MB file": 'head -c 104857600 /dev/zero > "$C"',
    }[left]
    body = f"""
        C="$HOME/.qwen/oauth_creds.json"
        rm -f "$C"
        {make}
        echo "the answer"
    """
    manager = scripted_pool(tmp_path / "pool", body, make_cred)
    done = subprocess.run(
        [sys.executable, "-c", _CALLER, str(manager.home), manager.profile.executable, "-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert json.loads(done.stdout)["success"] is True
    assert AccountManager(tool=manager.profile, home=manager.home).read_credential(1) == (
        make_cred(1)
    )
    assert newer.read_bytes() == make_cred(1, version=5)


def test_files_a_dead_call_left_never_block_the_next_call(
    tmp_path: Path, make_cred: Callable[..., bytes], outside: Outside
) -> None:
    """Row: slot is a FIFO, socket or directory — a call home of a dead caller whose
    tool pid file is a FIFO, and a tool that leaves a FIFO as its session rollout: the
    next call, ``doctor`` and ``doctor --fix`` end at once, and the dead home is reaped."""
    dead = tmp_path / "pool" / "home" / ".credrot-run" / "999999999-1-abc"
    manager = scripted_pool(tmp_path / "pool", 'echo "the answer"\n', make_cred)
    dead.mkdir(parents=True)
    os.mkfifo(dead / ".credrot-tool.pid")
    seen = _call_in_child(manager.home, manager.profile.executable, "-")
    assert seen["success"] is True
    assert not dead.exists()
    dead.mkdir(parents=True)
    os.mkfifo(dead / ".credrot-tool.pid")
    assert "call homes" in cli(manager.home, "doctor", "--skip-tool").stdout
    cli(manager.home, "doctor", "--skip-tool", "--fix")
    assert not dead.exists()


def test_a_fifo_as_a_session_rollout_does_not_hold_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outside: Outside
) -> None:
    """Row: slot is a FIFO, socket or directory — Codex's usage is read from its session
    rollouts: one that is a FIFO (or a link outside) is skipped, the answer returns."""
    sim = SimPool(tmp_path / "sim", monkeypatch, tool="codex")
    sim.add()
    folder = tmp_path / "t"
    folder.mkdir()
    body = f"""
        mkdir -p "$CODEX_HOME/sessions/2026"
        mkfifo "$CODEX_HOME/sessions/2026/rollout-1.jsonl"
        ln -s {outside.path} "$CODEX_HOME/sessions/2026/rollout-2.jsonl"
        echo "the answer"
    """
    profile = dataclasses.replace(CODEX, executable=tool_script(folder, body))
    done = subprocess.run(
        [sys.executable, "-c", _CODEX_CALLER, str(sim.home), profile.executable],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == "the answer\n"


_CODEX_CALLER = r"""
import dataclasses, sys
from credrot.manager import AccountManager
from credrot.tools.codex import CODEX
from credrot.wrapper import Wrapper

profile = dataclasses.replace(CODEX, executable=sys.argv[2])
result = Wrapper(manager=AccountManager(tool=profile, home=sys.argv[1])).call("hi", timeout=20)
assert result.success, result.error
print(result.output, end="")
"""


# ------------------------------------------------------------------- nesting bombs
_NESTED = "[" * 200_000


def test_a_nested_json_bomb_as_a_credential_is_invalid(
    make_pool: Callable[..., AccountManager], outside: Outside
) -> None:
    """Row: state.yaml wrong types — a slot of 200 000 ``[`` (under the size cap) is an
    invalid account with its reason; every command still runs."""
    home = make_pool(2).home
    (home / "accounts" / "oauth_creds_3.json").write_text(_NESTED)
    rows = listed(home)
    assert rows[3]["valid"] is False
    assert "nested too deeply" in str(rows[3]["invalid_reason"])
    for args in (("accounts", "next"), ("doctor", "--skip-tool"), ("stats",)):
        assert cli(home, *args).returncode in (0, 1)
    token = "x." + base64.urlsafe_b64encode(_NESTED.encode()).decode().rstrip("=") + ".y"
    assert CODEX.expiry({"tokens": {"access_token": token}}) is None


@pytest.mark.parametrize(
    "stdout",
    [_NESTED, '{"type":"result","result":' * 100_000 + "1" + "}" * 100_000],
    ids=["array", "objects"],
)
def test_a_nested_json_bomb_as_a_json_answer_does_not_break_the_call(
    tmp_path: Path, make_cred: Callable[..., bytes], stdout: str
) -> None:
    """Row: an answer quotes the login box or a JSON quota message — a json-mode run
    whose output (exit 0) nests past any parser's depth: the call returns it, the
    account is not marked."""
    (tmp_path / "out.txt").write_text(stdout)
    manager = scripted_pool(tmp_path / "pool", f"cat {tmp_path / 'out.txt'}\n", make_cred)
    wrapper = Wrapper(manager=manager, extra_args=("--output-format", "stream-json"))
    result = wrapper.call("hello", timeout=20)
    assert result.success, result.error
    assert result.output == stdout
    assert [a.status for a in manager.list_accounts()] == ["ready", "ready"]


# --------------------------------------------------------------- planted folders
def test_folders_of_the_home_planted_as_links_are_never_written_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_cred: Callable[..., bytes]
) -> None:
    """Row: slot is a symlink outside the home — ``.credrot-run``, ``backups``,
    ``trash`` and ``.credrot-leases`` replaced by links to folders outside: calls,
    backups and removals work inside the home, the links are moved aside (kept), and
    nothing outside is written or chmodded."""
    sim = SimPool(tmp_path / "sim", monkeypatch)
    sim.add()
    sim.add(expired=True)  # its call takes the refresh lease in .credrot-leases
    sim.add()
    home = sim.home
    elsewhere = tmp_path / "elsewhere"
    outsides = {}
    for name in (".credrot-run", "backups", "trash", ".credrot-leases"):
        target = elsewhere / name.strip(".")
        target.mkdir(parents=True)
        target.chmod(0o755)
        shutil.rmtree(home / name, ignore_errors=True)
        (home / name).symlink_to(target)
        outsides[name] = target
    result = QwenWrapper(home=home).call("hello", timeout=20)
    assert result.success, result.error
    stranger = make_cred(9)
    pointer = home / "oauth_creds.json"
    pointer.unlink()
    pointer.write_bytes(stranger)  # bytes of no account: kept in backups/
    assert cli(home, "accounts", "list").returncode == 0
    assert cli(home, "accounts", "switch", "2").returncode == 0
    assert QwenWrapper(home=home).call("hello", timeout=20).success
    assert cli(home, "accounts", "remove", "3").returncode == 0
    for name, target in outsides.items():
        assert list(target.iterdir()) == [], name
        assert target.stat().st_mode & 0o777 == 0o755, name
        assert (home / name).is_dir() and not (home / name).is_symlink(), name
        (moved,) = home.glob(f"{name}.moved-*")
        assert os.readlink(moved) == str(target)
    assert list((home / "backups").iterdir())  # the stranger's bytes were kept, inside
    assert len(list((home / "trash").iterdir())) == 1


@pytest.mark.parametrize("planted", ["link outside", "link to /dev/zero", "fifo"])
def test_a_planted_rotation_log_is_not_written_through_or_waited_on(
    make_pool: Callable[..., AccountManager], outside: Outside, planted: str
) -> None:
    """Row: slot is a symlink outside the home — ``rotation.log`` replaced by a link to
    a file outside or to ``/dev/zero``, or by a FIFO: the commands that write it and the
    views that read it end at once, and the file outside is untouched."""
    home = make_pool(3).home
    log = home / "rotation.log"
    log.unlink()
    if planted == "fifo":
        os.mkfifo(log)
    else:
        log.symlink_to(outside.path if planted == "link outside" else "/dev/zero")
    commands = (
        ("accounts", "next"),
        ("accounts", "switch", "3"),
        ("doctor", "--skip-tool"),
        ("top", "--once"),
        ("stats",),
    )
    for args in commands:
        assert cli(home, *args, timeout=30).returncode in (0, 1), args
    assert listed(home)[3]["active"]
    assert stat_kinds(home)["rotation.log"] == ("fifo" if planted == "fifo" else "link")


def test_a_lock_file_planted_as_a_link_is_replaced_not_followed(
    make_pool: Callable[..., AccountManager], outside: Outside
) -> None:
    """Row: lock file deleted while held — ``.credrot.lock`` replaced by a link to a
    file outside (or to a name that does not exist yet): the link is removed, a lock
    file of the home's own made, and nothing is written or created outside."""
    home = make_pool(3).home
    lock = home / ".credrot.lock"
    for target in (outside.path, outside.path.with_name("new")):
        lock.unlink()
        lock.symlink_to(target)
        assert cli(home, "accounts", "next").returncode == 0
        assert not lock.is_symlink() and lock.is_file()
    assert listed(home)[3]["active"]


def test_a_call_home_base_planted_as_a_link_is_never_reaped_through(
    tmp_path: Path, make_cred: Callable[..., bytes]
) -> None:
    """Row: slot is a symlink outside the home — ``.credrot-run`` as a link to a folder
    outside holding what looks like a dead call home and a kept token: ``doctor --fix``
    and a call neither remove it nor adopt the token; the call runs in a folder of the
    home's own."""
    manager = scripted_pool(tmp_path / "pool", 'echo "the answer"\n', make_cred)
    home = manager.home
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "999999999-1-abc" / ".qwen").mkdir(parents=True)
    (elsewhere / "999999999-1-abc" / ".qwen" / "oauth_creds.json").write_bytes(
        make_cred(1, version=7)
    )
    (elsewhere / "kept-1-g1-deadbeef.json").write_bytes(make_cred(1, version=8))
    before = sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*"))
    shutil.rmtree(home / ".credrot-run", ignore_errors=True)
    (home / ".credrot-run").symlink_to(elsewhere)
    doctor = cli(home, "doctor", "--skip-tool", "--fix")
    assert "call homes" not in doctor.stdout, doctor.stdout
    result = Wrapper(manager=AccountManager(tool=manager.profile, home=home)).call("hi")
    assert result.success, result.error
    assert sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*")) == before
    assert manager.read_credential(1) == make_cred(1)
    assert (home / ".credrot-run").is_dir() and not (home / ".credrot-run").is_symlink()


def test_a_folder_in_place_of_the_pointer_is_moved_aside(
    make_pool: Callable[..., AccountManager], outside: Outside
) -> None:
    """Row: pointer leads outside accounts/ — a folder where the pointer belongs (with a
    file in it) no longer blocks every switch: it is moved aside, kept whole, and said."""
    home = make_pool(3).home
    pointer = home / "oauth_creds.json"
    pointer.unlink()
    pointer.mkdir()
    (pointer / "note.txt").write_text("mine")
    doctor = cli(home, "doctor", "--skip-tool")
    assert "oauth_creds.json is a folder, not a link to an account" in doctor.stdout
    done = cli(home, "accounts", "next")
    assert done.returncode == 0, done.stderr
    assert "was a folder, not a link to an account; moved to oauth_creds.json.moved-" in (
        done.stderr
    )
    assert os.readlink(pointer).startswith("accounts/oauth_creds_")
    (aside,) = home.glob("oauth_creds.json.moved-*")
    assert (aside / "note.txt").read_text() == "mine"
    assert cli(home, "doctor", "--skip-tool").returncode == 0
    pointer.unlink()
    pointer.mkdir()
    assert cli(home, "doctor", "--skip-tool", "--fix").returncode == 0
    assert pointer.is_symlink() and len(list(home.glob("oauth_creds.json.moved-*"))) == 2
