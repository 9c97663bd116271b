"""A caller refused on an account (its quota spent) says so at once, with a notice in
the call-home base, while its mark waits for the pool lock. A caller leasing meanwhile
does not spend a tool run there: it starts on another usable account, or, when none is
left, waits for the mark. Under many parallel callers the wait for the lock is the
longest part of a refusal, and the refused account looked ready all along."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from simpool import SimPool

from credrot.kinds import Outcome, OutcomeKind
from credrot.wrapper import Wrapper


def _notice(sim: SimPool, index: int, pid: int) -> Path:
    path = sim.home / ".credrot-run" / f"refused-{index}-{pid}-abcd1234"
    path.write_bytes(b"")
    return path


def _accounts_run(sim: SimPool) -> list[str]:
    return [str(call["account"]) for call in sim.backend.calls()]


def test_a_call_starts_beside_an_account_another_caller_was_just_refused_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One caller in flight on each of #1, #2 and #3 would keep this call on the
    active #1; the notice on #1 sends it elsewhere, and the pool stays on #1 until the
    mark itself moves it."""
    sim = SimPool(tmp_path, monkeypatch)
    for _ in range(3):
        sim.add()
    with sim.other_caller() as home:
        for index in (1, 2, 3):
            caller = int(home(index).name.split("-")[0])
        _notice(sim, 1, caller)
        result = Wrapper(manager=sim.manager).call("hi", timeout=20)
        assert result.success and result.account in (2, 3), result.error
        assert _accounts_run(sim) == [sim.names[result.account]]
        assert json.loads((sim.home / "state.yaml").read_text())["current"] == 1


def test_with_nothing_else_left_the_call_waits_for_the_mark_and_spends_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    with sim.other_caller() as home:
        caller = int(home(1).name.split("-")[0])
        notice = _notice(sim, 1, caller)

        def mark_then_withdraw() -> None:  # what the refused caller does once it has the lock
            time.sleep(0.3)
            sim.manager.record(1, Outcome(OutcomeKind.QUOTA_EXHAUSTED, "daily quota reached"))
            notice.unlink()

        other = threading.Thread(target=mark_then_withdraw)
        other.start()
        result = Wrapper(manager=sim.manager).call("hi", timeout=20)
        other.join()
    assert not result.success and result.pool_exhausted, result.error
    assert _accounts_run(sim) == []  # #1 has quota on the server: a run would have served


def test_a_dead_callers_notice_is_not_heeded_and_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    (sim.home / ".credrot-run").mkdir(mode=0o700, exist_ok=True)
    gone = subprocess.Popen(["true"])
    gone.wait()
    notice = _notice(sim, 1, gone.pid)
    result = Wrapper(manager=sim.manager).call("hi", timeout=20)
    assert result.success and result.account == 1, result.error
    assert not notice.exists()


HOLDS_THE_LOCK = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""

CALLS = r"""
import sys
from credrot.wrapper import Wrapper
result = Wrapper("qwen", home=sys.argv[1], max_retries=1).call("hi", timeout=20)
print(result.outcome.kind.value if result.outcome else result.error, flush=True)
"""


def test_the_notice_is_there_while_the_mark_waits_for_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real processes: a caller refused on #1 while another process holds the pool lock
    shows its notice until it has written the mark, then takes it away."""
    sim = SimPool(tmp_path, monkeypatch)
    sim.add(quota=0)
    sim.add()
    run_dir = sim.home / ".credrot-run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDS_THE_LOCK, str(sim.home / ".credrot.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    caller = None
    try:
        assert holder.stdout.readline() == "held\n"
        caller = subprocess.Popen(
            [sys.executable, "-c", CALLS, str(sim.home)], stdout=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 15
        seen: list[Path] = []
        while time.monotonic() < deadline and not seen:
            seen = list(run_dir.glob("refused-1-*")) if run_dir.is_dir() else []
            time.sleep(0.01)
        assert [p.name.split("-")[2] for p in seen] == [str(caller.pid)]
        holder.stdin.write("\n")
        holder.stdin.flush()
        out, _ = caller.communicate(timeout=30)
    finally:
        holder.kill()
        holder.wait()
        if caller is not None and caller.poll() is None:
            caller.kill()
            caller.wait()
    assert out.strip() == "quota_exhausted"
    assert list(run_dir.glob("refused-*")) == []
    state = json.loads((sim.home / "state.yaml").read_text())
    assert state["accounts"]["1"]["status"] == "exhausted"


def test_a_notice_left_long_ago_under_a_live_pid_is_not_heeded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller killed while its notice stood, its pid since taken by another process:
    past its time the notice bars nothing and is removed."""
    import os

    from credrot import inflight

    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    (sim.home / ".credrot-run").mkdir(mode=0o700, exist_ok=True)
    with sim.other_caller() as home:
        caller = int(home(2).name.split("-")[0])  # lives, and is in flight on #2
        notice = _notice(sim, 1, caller)
        old = time.time() - inflight.NOTICE_TTL - 5
        os.utime(notice, (old, old))
        result = Wrapper(manager=sim.manager).call("hi", timeout=20)
        assert result.success and result.account == 1, result.error
        assert not notice.exists()
