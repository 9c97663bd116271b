"""The account pool as a user sees it: real homes, real files, real processes."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import random
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

import pytest

from credrot import state as st
from credrot.errors import (
    AccountNotFound,
    ConfigError,
    CredrotError,
    DuplicateAccount,
    InvalidCredential,
    ReadOnlyHome,
)
from credrot.events import AuditLog, hookimpl
from credrot.kinds import Outcome, OutcomeKind
from credrot.manager import AccountManager
from credrot.resets import next_utc_midnight

MakeCred = Callable[..., bytes]
MakePool = Callable[..., AccountManager]
FORK = multiprocessing.get_context("fork")
POINTER = "oauth_creds.json"


def slot(home: Path, index: int) -> Path:
    return home / "accounts" / f"oauth_creds_{index}.json"


def cli_refresh(home: Path, raw: bytes) -> None:
    """Write the pointer the way Qwen Code does on a token refresh: temp file + rename."""
    tmp = home / f"{POINTER}.tmp.{uuid.uuid4()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    os.rename(tmp, home / POINTER)


def pointer_target(home: Path) -> str:
    return os.readlink(home / POINTER)


def snapshot(home: Path) -> dict[str, str]:
    """Every entry under ``home``: file digests, link targets, directories."""
    out: dict[str, str] = {}
    for path in sorted(home.rglob("*")):
        rel = str(path.relative_to(home))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def audit_events(home: Path) -> list[dict[str, Any]]:
    lines = (home / "rotation.log").read_text().splitlines()
    return [json.loads(line) for line in lines]


def statuses(manager: AccountManager) -> dict[int, str]:
    return {info.index: info.status for info in manager.list_accounts()}


# ------------------------------------------------------------------ concurrency


def _switcher(home: str, rounds: int, barrier: Barrier) -> None:
    manager = AccountManager(qwen_dir=home)
    barrier.wait()
    for _ in range(rounds):
        switched, _index = manager.switch_next()
        if not switched:
            os._exit(3)


def _pointer_reader(pointer: str, stop: Event, counts: Any) -> None:
    samples = bad = 0
    while not stop.is_set():
        samples += 1
        try:
            target = os.readlink(pointer)
            if target.startswith("/") or not os.path.isfile(pointer):
                bad += 1
        except OSError:
            bad += 1
        time.sleep(0.0001)  # leave the CPU to the switchers
    counts[0], counts[1] = samples, bad


def test_parallel_switches_are_all_counted_and_the_pointer_never_dangles(pool_home: Path) -> None:
    workers, rounds = 8, 200
    barrier = FORK.Barrier(workers + 1)
    stop = FORK.Event()
    counts = FORK.Array("q", 2)
    reader = FORK.Process(target=_pointer_reader, args=(str(pool_home / POINTER), stop, counts))
    reader.start()
    procs = [
        FORK.Process(target=_switcher, args=(str(pool_home), rounds, barrier))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    barrier.wait()
    for p in procs:
        p.join(60)
    stop.set()
    reader.join(10)
    assert [p.exitcode for p in procs] == [0] * workers
    assert reader.exitcode == 0
    samples, bad = counts[0], counts[1]
    assert samples > 1000, "the reader did not sample while the workers ran"
    assert bad == 0, f"{bad} of {samples} samples saw a missing or dangling pointer"
    stats = AccountManager(qwen_dir=pool_home).get_stats()
    assert stats["switches_total"] == workers * rounds
    assert sum(a["switches_to"] for a in stats["accounts"].values()) == workers * rounds
    switch_lines = [e for e in audit_events(pool_home) if e["event"] == "switch"]
    assert len(switch_lines) == workers * rounds


def _cas_switcher(home: str, barrier: Barrier, results: Any) -> None:
    manager = AccountManager(qwen_dir=home)
    barrier.wait()
    results.put(manager.switch_next(expected=1))


def test_processes_that_saw_the_same_failure_advance_the_pool_once(pool_home: Path) -> None:
    workers = 8
    barrier = FORK.Barrier(workers)
    results = FORK.Queue()
    procs = [
        FORK.Process(target=_cas_switcher, args=(str(pool_home), barrier, results))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    got = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(30)
    assert got == [(True, 2)] * workers
    manager = AccountManager(qwen_dir=pool_home)
    assert manager.get_stats()["switches_total"] == 1
    assert manager.current() == 2
    assert pointer_target(pool_home) == "accounts/oauth_creds_2.json"


def test_cas_skips_on_when_the_pool_already_moved_to_a_spent_account(
    manager: AccountManager,
) -> None:
    manager.switch_to(2)
    manager.mark(2, "exhausted", until=datetime.now(timezone.utc) + timedelta(hours=1))
    # A caller that saw 1 fail finds the pool on 2, which is spent too: it moves on.
    assert manager.switch_next(expected=1) == (True, 3)
    # A caller that saw 1 fail finds the pool on a good account: it stays.
    assert manager.switch_next(expected=1) == (True, 3)


def _endless_switcher(home: str, started: Event) -> None:
    manager = AccountManager(qwen_dir=home)
    manager.switch_next()
    started.set()
    while True:
        manager.switch_next()


def test_kill_9_in_the_middle_of_switching_leaves_a_valid_pool(
    make_pool: MakePool, caplog: pytest.LogCaptureFixture
) -> None:
    home = make_pool(5).home
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    for _ in range(50):
        started = FORK.Event()
        proc = FORK.Process(target=_endless_switcher, args=(str(home), started))
        proc.start()
        assert started.wait(10)
        time.sleep(rng.uniform(0, 0.004))
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL

        target = pointer_target(home)
        assert not target.startswith("/")
        data = json.loads((home / POINTER).read_bytes())  # resolves to a credential
        assert isinstance(data["access_token"], str)
        state, why = st.load_state(home / "state.yaml")
        manager = AccountManager(qwen_dir=home)
        if state is None:
            assert why is not None
            assert sorted(manager.get_stats()["accounts"]) == ["1", "2", "3", "4", "5"]
        else:
            assert sorted(state.accounts) == [1, 2, 3, 4, 5]
            # A kill between the pointer swap and the state write leaves state one step
            # behind; the pointer wins at the next change.
            assert state.current in state.accounts
    # The lock was not left held and the pool still moves.
    manager = AccountManager(qwen_dir=home, lock_timeout=2)
    on = int(pointer_target(home).split("_")[-1].split(".")[0])
    assert manager.switch_next() == (True, on % 5 + 1)
    assert manager.current() == on % 5 + 1
    assert sorted(p.name for p in (home / "accounts").iterdir() if not p.name.startswith(".")) == [
        f"oauth_creds_{i}.json" for i in range(1, 6)
    ]


# --------------------------------------------------------------------- adoption


def test_a_refreshed_pointer_file_is_adopted_into_its_slot(
    manager: AccountManager, make_cred: MakeCred, canary: str
) -> None:
    home = manager.home
    refreshed = make_cred(1, version=1)
    cli_refresh(home, refreshed)
    assert manager.pointer_state() == "file"
    assert manager.switch_next() == (True, 2)
    assert slot(home, 1).read_bytes() == refreshed
    assert (home / POINTER).is_symlink()
    assert pointer_target(home) == "accounts/oauth_creds_2.json"
    assert stat.S_IMODE(slot(home, 1).stat().st_mode) == 0o600
    assert not (home / "backups").exists()
    assert any(e["event"] == "adopted" and e["to"] == 1 for e in audit_events(home))


def test_a_refreshed_token_lands_in_its_own_slot_even_after_the_pool_moved(
    manager: AccountManager, make_cred: MakeCred
) -> None:
    home = manager.home
    manager.switch_to(3)
    refreshed = make_cred(2, version=1)  # a call that started on account 2
    cli_refresh(home, refreshed)
    manager.switch_next()
    assert slot(home, 2).read_bytes() == refreshed
    assert slot(home, 3).read_bytes() == make_cred(3)


def test_an_unowned_pointer_file_goes_to_the_active_slot_and_the_old_file_is_kept(
    manager: AccountManager, make_cred: MakeCred
) -> None:
    home = manager.home
    stranger = make_cred(99)  # a login wrote tokens no slot knows
    old = slot(home, 1).read_bytes()
    cli_refresh(home, stranger)
    manager.switch_next()
    assert slot(home, 1).read_bytes() == stranger
    kept = [p.read_bytes() for p in (home / "backups").iterdir()]
    assert kept == [old]
    assert any("kept as" in n and "backups" in n for n in manager.notices)
    assert (home / POINTER).is_symlink()


def test_an_invalid_pointer_file_is_kept_in_backups(manager: AccountManager) -> None:
    home = manager.home
    before = {i: slot(home, i).read_bytes() for i in range(1, 6)}
    garbage = b'{"access_token": "half-written'
    cli_refresh(home, garbage)
    assert manager.switch_next() == (True, 2)
    assert [p.read_bytes() for p in (home / "backups").iterdir()] == [garbage]
    assert {i: slot(home, i).read_bytes() for i in range(1, 6)} == before
    assert pointer_target(home) == "accounts/oauth_creds_2.json"
    assert any("not a valid credential" in n for n in manager.notices)


def test_an_older_copy_at_the_pointer_does_not_overwrite_a_newer_slot(
    manager: AccountManager, make_cred: MakeCred
) -> None:
    home = manager.home
    newer = make_cred(1, version=5)
    slot(home, 1).write_bytes(newer)
    older = make_cred(1, version=1)
    cli_refresh(home, older)
    manager.switch_next()
    assert slot(home, 1).read_bytes() == newer
    assert [p.read_bytes() for p in (home / "backups").iterdir()] == [older]


@pytest.mark.parametrize("damage", ["missing", "dangling"])
def test_a_missing_or_dangling_pointer_is_restored(manager: AccountManager, damage: str) -> None:
    home = manager.home
    (home / POINTER).unlink()
    if damage == "dangling":
        os.symlink("accounts/oauth_creds_9.json", home / POINTER)
    assert manager.pointer_state() == damage
    assert manager.switch_next() == (True, 2)
    assert manager.pointer_state() == "link"
    assert pointer_target(home) == "accounts/oauth_creds_2.json"
    assert any(e["event"] == "restored" for e in audit_events(home))


def test_a_pointer_moved_by_hand_wins(manager: AccountManager) -> None:
    home = manager.home
    os.unlink(home / POINTER)
    os.symlink("accounts/oauth_creds_4.json", home / POINTER)
    assert manager.switch_next() == (True, 5)


def test_a_fresh_tool_refresh_lock_is_waited_for(manager: AccountManager) -> None:
    lock = manager.home / "oauth_creds.lock"
    lock.write_text("some-id")
    age = 9.6
    os.utime(lock, (time.time() - age, time.time() - age))
    t0 = time.monotonic()
    manager.switch_next()
    waited = time.monotonic() - t0
    assert 0.3 <= waited < 2.0
    os.utime(lock, (time.time() - 60, time.time() - 60))  # stale: no wait
    t0 = time.monotonic()
    manager.switch_next()
    assert time.monotonic() - t0 < 0.3


def test_a_swap_bumps_the_target_mtime(manager: AccountManager) -> None:
    old = time.time() - 3600
    os.utime(slot(manager.home, 2), (old, old))
    manager.switch_to(2)
    assert slot(manager.home, 2).stat().st_mtime > time.time() - 60


# --------------------------------------------------------- damage and read-only


def test_a_corrupt_state_file_is_set_aside_and_rebuilt(
    manager: AccountManager, caplog: pytest.LogCaptureFixture
) -> None:
    home = manager.home
    manager.switch_to(3)
    garbage = b"{{{ this: is [not yaml"
    (home / "state.yaml").write_bytes(garbage)
    fresh = AccountManager(qwen_dir=home)
    with caplog.at_level(logging.WARNING):
        assert fresh.switch_next() == (True, 4)  # the pointer told it where it was
    aside = list(home.glob("state.yaml.corrupt-*"))
    assert len(aside) == 1
    assert aside[0].read_bytes() == garbage
    assert aside[0].name in caplog.text
    assert any(aside[0].name in n for n in fresh.notices)
    state, why = st.load_state(home / "state.yaml")
    assert why is None
    assert state is not None
    assert sorted(state.accounts) == [1, 2, 3, 4, 5]
    assert [p.name for p in (home / "accounts").iterdir()].__len__() == 5


@pytest.mark.parametrize(
    "content",
    [b"{not json at all", b'{"access_token": "x", "refresh_token": "y"}', b"\xff\xfe\x00"],
)
def test_a_corrupt_credential_is_listed_invalid_and_never_used(
    manager: AccountManager, content: bytes
) -> None:
    home = manager.home
    slot(home, 3).write_bytes(content)
    infos = {i.index: i for i in manager.list_accounts()}
    assert infos[3].status == "invalid"
    assert not infos[3].valid
    assert infos[3].invalid_reason
    seen = {manager.switch_next()[1] for _ in range(12)}
    assert seen == {1, 2, 4, 5}
    with pytest.raises(InvalidCredential, match="#3"):
        manager.switch_to(3)
    assert 3 not in {manager.acquire() for _ in range(5)}
    assert slot(home, 3).read_bytes() == content


def test_an_active_account_whose_file_is_corrupted_is_left(manager: AccountManager) -> None:
    slot(manager.home, 1).write_bytes(b"oops")
    assert manager.acquire() == 2
    assert slot(manager.home, 1).read_bytes() == b"oops"


@pytest.mark.parametrize("empty", [False, True])
def test_a_missing_or_empty_accounts_dir(tmp_path: Path, empty: bool) -> None:
    home = tmp_path / "qwen"
    home.mkdir()
    if empty:
        (home / "accounts").mkdir()
    manager = AccountManager(qwen_dir=home)
    assert manager.list_accounts() == []
    stats = manager.get_stats()
    assert stats["total_accounts"] == 0
    assert stats["current_account"] is None
    assert manager.switch_next() == (False, 0)
    assert manager.acquire() is None
    with pytest.raises(AccountNotFound):
        manager.switch_to(1)
    assert "no qwen accounts" in manager.pool_status().describe("qwen")
    assert (home / "accounts").exists() is empty


def test_a_missing_home_is_a_clear_error_and_is_not_created(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    manager = AccountManager(qwen_dir=home)
    assert manager.list_accounts() == []
    with pytest.raises(CredrotError, match="does not exist"):
        manager.switch_next()
    assert not home.exists()


def test_files_with_other_names_are_warned_about_and_left_alone(
    manager: AccountManager, caplog: pytest.LogCaptureFixture
) -> None:
    accounts = manager.home / "accounts"
    odd = {
        "oauth_creds_abc.json": b"{}",
        "notes.txt": b"my notes",
        "oauth_creds_0.json": b"{}",
    }
    for name, data in odd.items():
        (accounts / name).write_bytes(data)
    fresh = AccountManager(qwen_dir=manager.home)
    with caplog.at_level(logging.WARNING):
        assert [i.index for i in fresh.list_accounts()] == [1, 2, 3, 4, 5]
    assert "oauth_creds_abc.json" in caplog.text
    assert "notes.txt" in caplog.text
    for _ in range(7):
        fresh.switch_next()
    fresh.remove_account(2)
    for name, data in odd.items():
        assert (accounts / name).read_bytes() == data


_READ_ONLY_PROBE = r"""
import json, sys
from datetime import datetime, timedelta, timezone
from credrot.manager import AccountManager
from credrot.errors import ReadOnlyHome
from credrot.kinds import Outcome, OutcomeKind

home = sys.argv[1]
out = {}
m = AccountManager(qwen_dir=home)
out["listed"] = [i.index for i in m.list_accounts()]
out["stats_total"] = m.get_stats()["total_accounts"]
out["current"] = m.current()
out["acquire"] = m.acquire()  # fill-first on a good account: reads only
soon = datetime.now(timezone.utc) + timedelta(hours=1)
quota = Outcome(OutcomeKind.QUOTA_EXHAUSTED, "Qwen OAuth quota exceeded")
for name, call in [
    ("switch_next", lambda: m.switch_next()),
    ("switch_to", lambda: m.switch_to(2)),
    ("import", lambda: m.import_account(sys.argv[2].encode())),
    ("remove", lambda: m.remove_account(2)),
    ("reset", lambda: m.reset()),
    ("mark", lambda: m.mark(2, "exhausted", until=soon)),
    ("record", lambda: m.record(1, quota)),
]:
    try:
        call()
        out[name] = "no error"
    except ReadOnlyHome as exc:
        out[name] = "ReadOnlyHome: " + str(exc)
    except Exception as exc:
        out[name] = type(exc).__name__ + ": " + str(exc)
mem = AccountManager(qwen_dir=home, in_memory_fallback=True)
try:
    out["memory_switch"] = list(mem.switch_next())
    out["memory_record"] = mem.record(2, quota)
    out["memory_persisted"] = mem.persisted
except Exception as exc:
    out["memory_switch"] = type(exc).__name__ + ": " + str(exc)
print(json.dumps(out))
"""


def _can_mount_read_only(tmp_path: Path) -> bool:
    probe = tmp_path / "mount-probe"
    probe.mkdir()
    cmd = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1"'
    try:
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", cmd, "sh", str(probe)],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def run_on_read_only_home(home: Path, tmp_path: Path, *args: str) -> dict[str, Any]:
    """Run the probe against ``home`` made read-only in a way that binds root too.

    As root (permissions don't bind it) the home is bind-mounted read-only in a private
    mount namespace, which gives the real EROFS of a read-only container mount; as
    another user the home is simply made unwritable.
    """
    argv = [sys.executable, "-c", _READ_ONLY_PROBE, str(home), *args]
    if os.geteuid() == 0:
        if not _can_mount_read_only(tmp_path):
            pytest.skip("running as root without a way to mount read-only (unshare -m)")
        cmd = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"'
        argv = ["unshare", "-m", "sh", "-c", cmd, "sh", str(home), *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    else:
        dirs = [home, home / "accounts"]
        for d in dirs:
            d.chmod(0o500)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        finally:
            for d in dirs:
                d.chmod(0o700)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_read_only_home_reads_and_refuses_writes_clearly(
    manager: AccountManager, tmp_path: Path, make_cred: MakeCred
) -> None:
    home = manager.home
    before = snapshot(home)
    out = run_on_read_only_home(home, tmp_path, make_cred(42).decode())
    assert out["listed"] == [1, 2, 3, 4, 5]
    assert out["stats_total"] == 5
    assert out["current"] == 1
    assert out["acquire"] == 1
    for name in ("switch_next", "switch_to", "import", "remove", "reset", "mark", "record"):
        assert out[name].startswith("ReadOnlyHome: "), (name, out[name])
        assert "read-only" in out[name]
    # The wrapper's choice: keep rotating in memory when nothing can be written.
    assert out["memory_switch"] == [True, 2]
    assert out["memory_record"] == 3
    assert out["memory_persisted"] is False
    assert snapshot(home) == before


# ------------------------------------------------------------ usable / unusable


def test_switch_next_fails_only_when_no_other_account_is_usable(manager: AccountManager) -> None:
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    for i in (2, 3, 4):
        manager.mark(i, "exhausted", until=soon)
    manager.mark(5, "needs_login")
    assert manager.switch_next() == (False, 1)
    assert pointer_target(manager.home) == "accounts/oauth_creds_1.json"
    manager.mark(1, "disabled")
    assert manager.switch_next() == (False, 1)
    manager.mark(4, "ready")
    assert manager.switch_next() == (True, 4)


def test_from_account_3_of_5_with_3_4_5_spent_it_goes_to_1(manager: AccountManager) -> None:
    # The original gave up here: the index wrapped, so it called the pool exhausted.
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    manager.switch_to(3)
    for i in (3, 4, 5):
        manager.mark(i, "exhausted", until=soon)
    assert manager.switch_next() == (True, 1)
    assert manager.switch_next() == (True, 2)
    assert manager.switch_next() == (True, 1)


def test_an_account_is_usable_again_once_its_time_has_passed(manager: AccountManager) -> None:
    now = datetime.now(timezone.utc)
    manager.mark(2, "exhausted", until=now - timedelta(seconds=1))
    manager.mark(3, "rate_limited", until=now + timedelta(hours=1))
    manager.mark(4, "exhausted", until=now + timedelta(hours=1))
    assert statuses(manager) == {
        1: "ready",
        2: "ready",
        3: "rate_limited",
        4: "exhausted",
        5: "ready",
    }
    assert manager.switch_next() == (True, 2)
    assert manager.switch_next() == (True, 5)
    with pytest.raises(ConfigError):
        manager.mark(2, "exhausted")  # a timed status needs its time


def test_fill_first_stays_until_the_account_fails(manager: AccountManager) -> None:
    assert [manager.acquire() for _ in range(3)] == [1, 1, 1]
    manager.record(1, Outcome(OutcomeKind.QUOTA_EXHAUSTED, "quota"))
    assert [manager.acquire() for _ in range(2)] == [2, 2]
    assert manager.acquire(exclude={2}) == 3


def test_round_robin_advances_on_every_call(make_pool: MakePool) -> None:
    manager = make_pool(3, strategy="round-robin")
    picks = [manager.acquire() for _ in range(9)]
    assert sorted(picks.count(i) for i in (1, 2, 3)) == [3, 3, 3]
    assert all(a != b for a, b in itertools.pairwise(picks))
    manager.mark(2, "needs_login")
    assert {manager.acquire() for _ in range(4)} == {1, 3}


def test_least_used_picks_the_account_with_fewest_calls(make_pool: MakePool) -> None:
    manager = make_pool(3, strategy="least-used")
    order = []
    for _ in range(6):
        index = manager.acquire()
        assert index is not None
        order.append(index)
        manager.record(index, Outcome.success())
    assert order == [1, 2, 3, 1, 2, 3]
    manager.record(1, Outcome.success())
    manager.record(2, Outcome.success())
    assert manager.acquire() == 3


def test_acquire_returns_none_when_nothing_is_usable(make_pool: MakePool) -> None:
    manager = make_pool(2)
    manager.mark(1, "disabled")
    manager.mark(2, "needs_login")
    assert manager.acquire() is None
    assert "all 2 qwen accounts are unusable" in manager.pool_status().describe("qwen")


def test_an_unknown_strategy_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="strategy"):
        AccountManager(qwen_dir=tmp_path, strategy="random")


# ---------------------------------------------------------------------- record


def _in(seconds: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("outcome", "status", "moves"),
    [
        (Outcome(OutcomeKind.QUOTA_EXHAUSTED, "Qwen OAuth quota exceeded"), "exhausted", True),
        (
            Outcome(OutcomeKind.RATE_LIMITED, "too many requests", retry_after=30),
            "rate_limited",
            True,
        ),
        (Outcome(OutcomeKind.AUTH_FAILED, "Refresh token expired or invalid"), "needs_login", True),
        (Outcome(OutcomeKind.DISABLED, "free tier has been discontinued"), "disabled", True),
        (Outcome.error("Connection error"), "ready", False),
        (Outcome.success(), "ready", False),
    ],
    ids=lambda v: v.kind.value if isinstance(v, Outcome) else None,
)
def test_record_marks_the_account_by_outcome(
    manager: AccountManager, outcome: Outcome, status: str, moves: bool
) -> None:
    now = datetime.now(timezone.utc)
    assert manager.record(1, outcome) == (2 if moves else 1)
    info = manager.list_accounts()[0]
    assert info.status == status
    assert info.usable is (status == "ready")
    assert manager.get_stats()["accounts"]["1"]["calls"] == 1
    if outcome.kind is OutcomeKind.QUOTA_EXHAUSTED:
        assert info.until == next_utc_midnight(now)
        assert info.quota_hits == 1
    elif outcome.kind is OutcomeKind.RATE_LIMITED:
        assert info.until is not None
        assert 25 < (info.until - now).total_seconds() < 35
    else:
        assert info.until is None
    if moves:
        assert info.reason == outcome.message
        assert pointer_target(manager.home) == "accounts/oauth_creds_2.json"


def test_record_uses_the_reset_time_the_tool_gave(manager: AccountManager) -> None:
    resets = _in(7200).replace(microsecond=0)
    manager.record(1, Outcome(OutcomeKind.QUOTA_EXHAUSTED, "quota", resets_at=resets))
    assert manager.list_accounts()[0].until == resets
    explicit = _in(600).replace(microsecond=0)
    manager.record(2, Outcome(OutcomeKind.QUOTA_EXHAUSTED, "quota"), until=explicit)
    assert manager.list_accounts()[1].until == explicit


def test_a_success_recovers_a_marked_account(manager: AccountManager) -> None:
    manager.mark(1, "needs_login", reason="expired")
    manager.record(1, Outcome.success())
    assert statuses(manager)[1] == "ready"
    assert any(e["event"] == "recovered" and e["to"] == 1 for e in audit_events(manager.home))


def test_record_is_compare_and_swap(manager: AccountManager) -> None:
    manager.switch_to(2)
    quota = Outcome(OutcomeKind.QUOTA_EXHAUSTED, "quota")
    # A late report about account 1 marks it, but does not move the pool off 2.
    assert manager.record(1, quota) == 2
    assert statuses(manager)[1] == "exhausted"
    assert manager.record(2, quota) == 3
    assert manager.get_stats()["quota_hits"] == 2


def test_reset_one_or_all(manager: AccountManager) -> None:
    soon = _in(3600)
    for i in (2, 3):
        manager.mark(i, "exhausted", until=soon)
    manager.mark(4, "disabled")
    assert manager.reset(3) == [3]
    assert statuses(manager) == {1: "ready", 2: "exhausted", 3: "ready", 4: "disabled", 5: "ready"}
    assert manager.reset() == [1, 2, 3, 4, 5]
    assert set(statuses(manager).values()) == {"ready"}
    with pytest.raises(AccountNotFound):
        manager.reset(9)


# --------------------------------------------------------- import and remove


def test_remove_moves_the_file_to_trash_and_the_pointer_on(
    manager: AccountManager, make_cred: MakeCred
) -> None:
    home = manager.home
    dest = manager.remove_account(1)
    assert dest.parent == home / "trash"
    assert dest.read_bytes() == make_cred(1)
    assert not slot(home, 1).exists()
    assert pointer_target(home) == "accounts/oauth_creds_2.json"
    manager.remove_account(4)  # not active: the pointer stays
    assert pointer_target(home) == "accounts/oauth_creds_2.json"
    assert [i.index for i in manager.list_accounts()] == [2, 3, 5]
    with pytest.raises(AccountNotFound):
        manager.remove_account(4)
    for i in (2, 3, 5):
        manager.remove_account(i)
    assert not os.path.lexists(home / POINTER)
    trashed = sorted(p.read_bytes() for p in (home / "trash").iterdir())
    assert trashed == sorted(make_cred(i) for i in range(1, 6))
    assert manager.list_accounts() == []
    assert manager.import_account(make_cred(7)) == 1


def test_removing_the_same_number_twice_keeps_both_files(
    manager: AccountManager, make_cred: MakeCred
) -> None:
    first = manager.remove_account(5)
    manager.import_account(make_cred(50), index=5)
    second = manager.remove_account(5)
    assert first != second
    assert first.read_bytes() == make_cred(5)
    assert second.read_bytes() == make_cred(50)


def test_import_numbers_gaps_and_refuses_duplicates(
    manager: AccountManager, make_cred: MakeCred, tmp_path: Path
) -> None:
    source = tmp_path / "new.json"
    source.write_bytes(make_cred(6))
    assert manager.import_account(source) == 6
    assert manager.import_account(make_cred(10), index=10) == 10
    assert manager.import_account(make_cred(11)) == 11
    with pytest.raises(DuplicateAccount, match="#6"):
        manager.import_account(source)
    with pytest.raises(DuplicateAccount, match="#2"):
        manager.import_account(make_cred(2, version=3))  # same account, refreshed
    with pytest.raises(DuplicateAccount):
        manager.import_account(make_cred(12), index=10)
    with pytest.raises(ConfigError):
        manager.import_account(make_cred(12), index=0)
    assert [i.index for i in manager.list_accounts()] == [1, 2, 3, 4, 5, 6, 10, 11]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"access_token": "a", "refresh_token": "b", "token_type": "Bearer"}',
        b'{"access_token": "a", "refresh_token": "b", "token_type": 1, "expiry_date": 1}',
        b'{"access_token": "a", "refresh_token": "b", "token_type": "B", "expiry_date": "1"}',
    ],
)
def test_import_refuses_invalid_credentials(manager: AccountManager, raw: bytes) -> None:
    before = snapshot(manager.home)
    with pytest.raises(InvalidCredential):
        manager.import_account(raw)
    assert snapshot(manager.home) == before


def test_import_of_a_missing_file_is_a_clear_error(manager: AccountManager, tmp_path: Path) -> None:
    with pytest.raises(InvalidCredential, match="cannot read"):
        manager.import_account(tmp_path / "nope.json")


def test_permissions_of_what_credrot_writes(
    tmp_path: Path, make_cred: MakeCred, make_pool: MakePool
) -> None:
    old_umask = os.umask(0)
    try:
        source = tmp_path / "loose.json"
        source.write_bytes(make_cred(1))
        source.chmod(0o644)
        home = tmp_path / "fresh"
        manager = AccountManager(qwen_dir=home)
        manager.import_account(source)
        manager.switch_next()
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((home / "accounts").stat().st_mode) == 0o700
    assert stat.S_IMODE(slot(home, 1).stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "state.yaml").stat().st_mode) == 0o600
    assert stat.S_IMODE((home / "rotation.log").stat().st_mode) == 0o600


def test_a_credential_readable_by_others_is_flagged(manager: AccountManager) -> None:
    slot(manager.home, 2).chmod(0o640)
    flags = {i.index: i.unsafe_permissions for i in manager.list_accounts()}
    assert flags == {1: False, 2: True, 3: False, 4: False, 5: False}
    assert manager.list_accounts()[1].as_dict()["mode"] == "0o640"
    manager.repair()
    assert not any(i.unsafe_permissions for i in manager.list_accounts())


# -------------------------------------------------------------------- secrets


def test_the_canary_token_never_leaks(
    manager: AccountManager,
    make_cred: MakeCred,
    canary: str,
    canary_leaks: Callable[[Path], list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    home = manager.home
    seen: list[str] = []
    caplog.set_level(logging.DEBUG)
    quota = Outcome(OutcomeKind.QUOTA_EXHAUSTED, "Qwen OAuth quota exceeded")
    manager.switch_next()
    manager.record(2, quota)
    manager.record(3, Outcome(OutcomeKind.AUTH_FAILED, "Refresh token expired or invalid"))
    cli_refresh(home, make_cred(4, version=2))  # adopted into its slot
    manager.switch_next()
    cli_refresh(home, make_cred(77))  # unowned: kept in backups/
    manager.switch_next()
    cli_refresh(home, make_cred(5)[:-9])  # truncated: invalid, kept in backups/
    manager.switch_next()
    manager.remove_account(1)
    for bad in (make_cred(2), make_cred(3, version=4), make_cred(8)[:-4]):
        with pytest.raises(CredrotError) as info:
            manager.import_account(bad)
        seen += [str(info.value), repr(info.value)]
    with pytest.raises(DuplicateAccount) as dup:
        manager.import_account(make_cred(9), index=3)
    seen.append(str(dup.value))

    seen += [
        (home / "rotation.log").read_text(),
        (home / "state.yaml").read_text(),
        json.dumps(manager.get_stats()),
        repr(manager),
        repr(manager.list_accounts()),
        json.dumps([i.as_dict() for i in manager.list_accounts()]),
        manager.pool_status().describe("qwen"),
        "\n".join(manager.notices),
        caplog.text,
    ]
    for text in seen:
        assert canary not in text
    assert canary_leaks(home) == []
    # The secrets were really there to leak: the slots and backups do hold them.
    assert canary.encode() in slot(home, 2).read_bytes()
    assert len(list((home / "backups").iterdir())) == 2


# -------------------------------------------------------- construction, events


def test_the_home_comes_from_qwen_home_when_the_manager_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    monkeypatch.setenv("QWEN_HOME", str(first))
    manager = AccountManager()
    monkeypatch.setenv("QWEN_HOME", str(second))
    assert manager.home == first
    assert AccountManager().home == second
    monkeypatch.delenv("QWEN_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert AccountManager().home == tmp_path / "user" / ".qwen"
    assert AccountManager(qwen_dir=str(first)).home == first
    assert AccountManager(str(second)).home == second
    assert AccountManager(qwen_dir=first).home == first


def test_qwen_home_pool_works_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_cred: MakeCred
) -> None:
    home = tmp_path / "qh"
    monkeypatch.setenv("QWEN_HOME", str(home))
    manager = AccountManager()
    manager.import_account(make_cred(1))
    manager.import_account(make_cred(2))
    assert manager.switch_next() == (True, 2)
    assert os.readlink(home / POINTER) == "accounts/oauth_creds_2.json"


class Recorder:
    def __init__(self) -> None:
        self.switched: list[tuple[int | None, int, str]] = []
        self.exhausted: list[tuple[int, str]] = []
        self.pool: list[str] = []
        self.audit: list[str] = []

    @hookimpl
    def credrot_account_switched(
        self, tool: str, home: str, from_index: int | None, to_index: int, reason: str
    ) -> None:
        self.switched.append((from_index, to_index, reason))

    @hookimpl
    def credrot_account_exhausted(self, index: int, outcome: Outcome) -> None:
        self.exhausted.append((index, outcome.kind.value))

    @hookimpl
    def credrot_pool_exhausted(self, message: str) -> None:
        self.pool.append(message)

    @hookimpl
    def credrot_audit(self, record: dict[str, Any]) -> None:
        self.audit.append(record["event"])


def test_plugins_receive_the_events(pool_home: Path) -> None:
    rec = Recorder()
    manager = AccountManager(qwen_dir=pool_home, plugins=(rec,))
    manager.switch_next()
    manager.record(2, Outcome(OutcomeKind.QUOTA_EXHAUSTED, "quota"))
    manager.note_pool_exhausted("nothing left", None)
    assert rec.switched == [
        (1, 2, "asked for by hand"),
        (2, 3, "#2 spent its quota (the tool's quota message; resets 00:00 UTC)"),
    ]
    assert rec.exhausted == [(2, "quota_exhausted")]
    assert rec.pool == ["nothing left"]
    assert rec.audit == ["switch", "exhausted", "switch", "pool_exhausted"]


class Broken:
    @hookimpl
    def credrot_account_switched(self) -> None:
        raise RuntimeError("plugin bug")


def test_a_broken_plugin_does_not_break_rotation(
    pool_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = AccountManager(qwen_dir=pool_home, plugins=(Broken(),))
    with caplog.at_level(logging.WARNING):
        assert manager.switch_next() == (True, 2)
    assert "plugin bug" in caplog.text
    fresh = AccountManager(qwen_dir=pool_home)
    assert fresh.current() == 2
    assert fresh.get_stats()["switches_total"] == 1


def test_audit_lines_are_json_with_the_fields(manager: AccountManager) -> None:
    manager.switch_next(reason="test")
    line = audit_events(manager.home)[-1]
    assert line["event"] == "switch"
    assert (line["from"], line["to"], line["reason"]) == (1, 2, "test")
    assert line["pid"] == os.getpid()
    assert line["tool"] == "qwen"
    assert datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%SZ")


def test_the_audit_log_is_capped_with_one_predecessor(tmp_path: Path) -> None:
    path = tmp_path / "rotation.log"
    log = AuditLog(path, max_bytes=1000)
    for n in range(100):
        log.credrot_audit({"event": "switch", "n": n})
    older = path.with_name("rotation.log.1")
    assert path.stat().st_size <= 1000
    assert older.stat().st_size <= 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rotation.log", "rotation.log.1"]
    last = [json.loads(x)["n"] for x in path.read_text().splitlines()]
    assert last[-1] == 99
    assert json.loads(older.read_text().splitlines()[-1])["n"] == last[0] - 1


def test_account_info_reads_like_the_original_dicts(manager: AccountManager) -> None:
    info = manager.list_accounts()[0]
    assert info["index"] == info.index == 1
    assert info["active"] is True
    data = info.as_dict()
    assert data["usable"] is True
    assert data["path"].endswith("accounts/oauth_creds_1.json")
    assert data["token_expiry"] is not None


def test_stats_count_switches_and_the_current_account(manager: AccountManager) -> None:
    for _ in range(7):
        manager.switch_next()
    stats = manager.get_stats()
    assert stats["switches_total"] == 7
    assert stats["current_account"] == 3
    assert stats["last_switch_from"] == 2
    assert stats["last_switch_to"] == 3
    assert stats["total_accounts"] == stats["usable_accounts"] == 5
    assert stats["accounts"]["3"]["active"] is True


def test_the_state_file_keeps_what_the_issue_lists(manager: AccountManager) -> None:
    manager.record(1, Outcome(OutcomeKind.QUOTA_EXHAUSTED, "quota"))
    raw = json.loads((manager.home / "state.yaml").read_text())
    assert raw["version"] == st.SCHEMA_VERSION
    assert raw["current"] == 2
    assert raw["generation"] >= 1
    acct = raw["accounts"]["1"]
    assert acct["status"] == "exhausted"
    assert acct["until"] > time.time()
    assert (acct["calls"], acct["quota_hits"]) == (1, 1)
    assert acct["last_used"] is not None
    assert raw["switches_total"] == 1


def test_read_only_errors_are_credrot_and_permission_errors() -> None:
    assert issubclass(ReadOnlyHome, PermissionError)
    assert issubclass(ReadOnlyHome, CredrotError)


def test_an_existing_single_login_becomes_account_1_on_first_import(
    tmp_path: Path, make_cred: MakeCred
) -> None:
    """A user who has been running `qwen` with one login keeps it when adding more."""
    home = tmp_path / ".qwen"
    home.mkdir()
    (home / "oauth_creds.json").write_bytes(make_cred(1))
    manager = AccountManager(qwen_dir=home)
    assert manager.import_account(make_cred(2)) == 2
    assert manager.slot_path(1).read_bytes() == make_cred(1)
    assert manager.slot_path(2).read_bytes() == make_cred(2)
    assert os.readlink(home / "oauth_creds.json") == "accounts/oauth_creds_1.json"
    # Importing the same login again is refused rather than duplicated.
    with pytest.raises(DuplicateAccount, match="already account #1"):
        manager.import_account(make_cred(1))


def test_a_nan_expiry_is_not_a_valid_credential(manager: AccountManager) -> None:
    """NaN is not JSON: Qwen Code's JSON.parse refuses such a file, so credrot does too."""
    bad = manager.slot_path(2)
    bad.write_bytes(bad.read_bytes().replace(b'"expiry_date": ', b'"expiry_date": NaN, "x": '))
    info = {a.index: a for a in manager.list_accounts()}[2]
    assert info.status == "invalid"
    assert info.invalid_reason == "not valid JSON"


def test_an_invalid_slot_met_by_rotation_is_audited_once(manager: AccountManager) -> None:
    manager.slot_path(2).write_bytes(b"{not json")
    for _ in range(3):
        manager.switch_next()
    lines = [json.loads(line) for line in manager.log_path.read_text().splitlines()]
    invalid = [r for r in lines if r["event"] == "invalid"]
    assert len(invalid) == 1
    assert invalid[0]["to"] == 2 and invalid[0]["reason"] == "never activated: not valid JSON"
    assert manager.current() != 2
