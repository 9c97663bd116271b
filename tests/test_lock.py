"""The pool lock: exclusive across processes and threads, re-entrant, in the home."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from credrot.errors import CredrotError, LockTimeout
from credrot.lock import PoolLock
from credrot.manager import AccountManager

FORK = multiprocessing.get_context("fork")


def _hold(path: str, locked: Event, release: Event) -> None:
    with PoolLock(Path(path), timeout=5):
        locked.set()
        release.wait(30)


def _holder(path: Path) -> tuple[multiprocessing.process.BaseProcess, Event]:
    locked, release = FORK.Event(), FORK.Event()
    proc = FORK.Process(target=_hold, args=(str(path), locked, release))
    proc.start()
    assert locked.wait(10)
    return proc, release


def test_the_lock_file_lives_where_asked_and_is_never_unlinked(tmp_path: Path) -> None:
    path = tmp_path / ".credrot.lock"
    lock = PoolLock(path)
    with lock:
        assert lock.held
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not lock.held
    assert path.exists()


def test_re_entrant_within_a_process(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    outer, inner = PoolLock(path, timeout=0.5), PoolLock(path, timeout=0.5)
    with outer, inner:
        assert inner.held
    assert not outer.held
    with outer:  # released fully: takes it again at once
        pass


def test_another_process_waits_and_times_out_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / ".credrot.lock"
    proc, release = _holder(path)
    try:
        t0 = time.monotonic()
        with pytest.raises(LockTimeout) as info, PoolLock(path, timeout=0.3):
            pass
        waited = time.monotonic() - t0
    finally:
        release.set()
        proc.join(10)
    assert 0.25 <= waited < 2
    assert str(path) in str(info.value)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, CredrotError)
    with PoolLock(path, timeout=2):  # free again once the holder is done
        pass


def test_a_holder_killed_with_sigkill_frees_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    proc, _release = _holder(path)
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join(10)
    t0 = time.monotonic()
    with PoolLock(path, timeout=2):
        pass
    assert time.monotonic() - t0 < 0.5


def test_a_forked_child_does_not_inherit_its_parents_hold(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    with PoolLock(path):
        ctx = FORK
        result = ctx.Queue()

        def child() -> None:
            try:
                with PoolLock(path, timeout=0.2):
                    result.put("acquired")
            except LockTimeout:
                result.put("timed out")

        proc = ctx.Process(target=child)
        proc.start()
        assert result.get(timeout=10) == "timed out"
        proc.join(10)


def _bump(path: str, counter: str, rounds: int) -> None:
    for _ in range(rounds):
        with PoolLock(Path(path), timeout=30):
            value = int(Path(counter).read_text())
            Path(counter).write_text(str(value + 1))


def test_processes_exclude_each_other(tmp_path: Path) -> None:
    lock, counter = tmp_path / "lock", tmp_path / "counter"
    counter.write_text("0")
    procs = [FORK.Process(target=_bump, args=(str(lock), str(counter), 100)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    assert counter.read_text() == "400"


def test_threads_exclude_each_other(tmp_path: Path) -> None:
    lock, counter = tmp_path / "lock", tmp_path / "counter"
    counter.write_text("0")
    threads = [
        threading.Thread(target=_bump, args=(str(lock), str(counter), 200)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert counter.read_text() == "800"


def test_a_thread_times_out_while_another_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with PoolLock(path):
            locked.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        with pytest.raises(LockTimeout), PoolLock(path, timeout=0.1):
            pass
    finally:
        release.set()
        holder.join(10)


def test_a_pool_change_waits_for_the_lock_and_names_it(
    manager: AccountManager,
) -> None:
    proc, release = _holder(manager.lock_path)
    try:
        blocked = AccountManager(qwen_dir=manager.home, lock_timeout=0.2)
        with pytest.raises(LockTimeout, match=r"\.credrot\.lock"):
            blocked.switch_next()
        assert blocked.list_accounts()[0].active  # reading needs no lock
    finally:
        release.set()
        proc.join(10)
    assert manager.get_stats()["switches_total"] == 0
    assert manager.switch_next() == (True, 2)


_READ_ONLY_LOCK = r"""
import sys
from pathlib import Path
from credrot.errors import ReadOnlyHome
from credrot.lock import PoolLock
home = Path(sys.argv[1])
try:
    with PoolLock(home / "missing.lock", timeout=1):
        print("acquired missing")
except ReadOnlyHome as exc:
    print("ReadOnlyHome:", exc)
with PoolLock(home / "existing.lock", timeout=1):
    print("acquired existing")
"""


def test_in_a_read_only_home(tmp_path: Path) -> None:
    home = tmp_path / "ro"
    home.mkdir()
    (home / "existing.lock").write_bytes(b"")
    argv = [sys.executable, "-c", _READ_ONLY_LOCK, str(home)]
    if os.geteuid() == 0:  # root ignores permissions: use a read-only bind mount
        cmd = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" "$1" && shift && exec "$@"'
        argv = ["unshare", "-m", "sh", "-c", cmd, "sh", str(home), *argv]
    else:
        home.chmod(0o500)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    finally:
        home.chmod(0o700)
    if os.geteuid() == 0 and "mount" in done.stderr and done.returncode != 0:
        pytest.skip(f"cannot mount read-only here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ReadOnlyHome:")
    assert "missing.lock" in lines[0]
    assert "read-only" in lines[0]
    assert lines[1] == "acquired existing"
    assert sorted(p.name for p in home.iterdir()) == ["existing.lock"]


def test_a_replaced_lock_file_is_reopened(tmp_path: Path) -> None:
    """If the lock file is ever replaced, the lock must guard the file that is there now."""
    import fcntl

    path = tmp_path / ".credrot.lock"
    with PoolLock(path, timeout=1):
        pass
    path.unlink()
    path.touch()
    with PoolLock(path, timeout=1):
        fd = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def _switch(home: str, rounds: int) -> None:
    manager = AccountManager(qwen_dir=Path(home), lock_timeout=60)
    for _ in range(rounds):
        manager.switch_next()


def test_a_lock_file_deleted_while_held_still_excludes(manager: AccountManager) -> None:
    """A cleaner deleting ``.credrot.lock`` in a loop must not let two switches overlap."""
    stop = threading.Event()

    def delete() -> None:
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(manager.lock_path)
            time.sleep(0.0005)

    deleter = threading.Thread(target=delete)
    deleter.start()
    try:
        procs = [FORK.Process(target=_switch, args=(str(manager.home), 100)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
    finally:
        stop.set()
        deleter.join(10)
    assert [p.exitcode for p in procs] == [0] * 8
    assert manager.get_stats()["switches_total"] == 800


def test_a_waiting_command_says_whom_it_waits_for(manager: AccountManager) -> None:
    proc, release = _holder(manager.lock_path)
    cmd = [sys.executable, "-m", "credrot", "--home", str(manager.home), "accounts", "next"]
    waiter = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert waiter.stderr is not None
        first = waiter.stderr.readline()  # said at once, while the holder still holds it
        release.set()  # only now: however slowly the command started, it had to wait
        rest = waiter.communicate(timeout=60)[1]
    finally:
        release.set()
        waiter.kill()
        waiter.wait(10)
        proc.join(10)
    assert waiter.returncode == 0, first + rest
    waiting = [ln for ln in (first + rest).splitlines() if "waiting for another credrot" in ln]
    assert waiting == [
        f"credrot: waiting for another credrot (pid {proc.pid}) to release .credrot.lock"
    ]
