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

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from creds import CANARY
from simpool import SimPool

from credrot.manager import AccountManager

ROWS = (
    "slot is a FIFO, socket or directory",
    "slot is a symlink outside the home",
    "pointer leads outside accounts/",
    "non-canonical slot names",
    "huge credential, huge answer",
)


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
