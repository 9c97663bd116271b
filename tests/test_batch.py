"""A caller alone on the pool writes the counters of its plain successes in batches
(``credrot.pool.batch``): in real processes, every count still reaches the file (at
exit, while a slow call runs, for a second caller at once), a ``kill -9`` loses at most
a batch of counts and never a mark, a forked child never writes its parent's counts
again, and a reader in the same process sees them all along."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from simpool import SimPool

from credrot.manager import AccountManager
from credrot.pool import batch
from credrot.tools import QWEN
from credrot.wrapper import Wrapper


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path, monkeypatch)


def _on_disk(home: Path) -> tuple[int, dict[str, dict[str, object]]]:
    state = json.loads((home / "state.yaml").read_text())
    return int(state["requests"]), state["accounts"]


def _run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


CALLS_THEN_EXIT = r"""
import sys
from credrot.wrapper import Wrapper
wrapper = Wrapper(home=sys.argv[1])
for n in range(int(sys.argv[2])):
    assert wrapper.call(f"call {n}").success
"""


def test_every_count_of_a_lone_caller_reaches_the_file_by_its_exit(sim: SimPool) -> None:
    sim.add()
    sim.add()
    _run(CALLS_THEN_EXIT, str(sim.home), "5")
    requests, accounts = _on_disk(sim.home)
    assert requests == 5
    assert accounts["1"]["calls"] == accounts["1"]["successes"] == 5
    assert accounts["1"]["last_outcome"] == "ok"
    assert len(sim.backend.calls()) == 5


def test_a_reader_in_the_same_process_sees_the_counts_kept(sim: SimPool) -> None:
    sim.add()
    assert Wrapper(manager=sim.manager).call("hi").success
    assert _on_disk(sim.home)[0] == 0  # kept for the next write
    fresh = AccountManager(home=sim.home)  # another manager of the same pool
    assert fresh.get_stats()["calls"] == 1
    assert fresh.get_stats()["requests"] == 1
    fresh.flush()
    requests, accounts = _on_disk(sim.home)
    assert requests == 1 and accounts["1"]["successes"] == 1
    fresh.flush()  # nothing twice
    assert _on_disk(sim.home)[0] == 1


def test_a_failure_and_its_mark_are_written_at_once(sim: SimPool) -> None:
    sim.add(quota=0)
    sim.add()
    result = Wrapper(manager=sim.manager).call("hi")
    assert result.success and result.accounts_tried == [1, 2]
    _, accounts = _on_disk(sim.home)
    assert accounts["1"]["status"] == "exhausted"  # before the success, which is kept
    assert accounts["1"]["quota_hits"] == 1


def test_the_counts_kept_are_written_while_a_slow_call_runs(tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    tool.write_text('#!/bin/sh\nread -r line\n[ "$line" = slow ] && sleep 3\necho "$line"\n')
    tool.chmod(0o755)
    manager = AccountManager(
        tool=replace(QWEN, executable=str(tool)), home=tmp_path / "home", lock_timeout=10
    )
    from creds import make_cred

    manager.import_account(make_cred(1))
    wrapper = Wrapper(manager=manager)
    assert wrapper.call("quick").success
    assert _on_disk(manager.home)[0] == 0
    slow = threading.Thread(target=lambda: wrapper.call("slow"))
    started = time.monotonic()
    slow.start()
    try:
        while _on_disk(manager.home)[0] == 0 and time.monotonic() - started < 2.5:
            time.sleep(0.01)
        # what another process sees while the slow call still runs
        assert _on_disk(manager.home)[0] == 1
        assert slow.is_alive()
    finally:
        slow.join()
    manager.flush()
    assert _on_disk(manager.home)[0] == 2


def test_a_second_caller_in_flight_gets_the_counts_at_once(sim: SimPool) -> None:
    sim.add()
    sim.add()
    wrapper = Wrapper(manager=sim.manager)
    assert wrapper.call("first").success
    assert _on_disk(sim.home)[0] == 0
    with sim.other_caller() as other_home:
        other_home(2)
        assert wrapper.call("second").success
        # its lease saw the other call: the kept count and its own are written
        assert _on_disk(sim.home)[0] == 2


CALLS_UNTIL_KILLED = r"""
import sys
from credrot.wrapper import Wrapper
wrapper = Wrapper(home=sys.argv[1])
n = 0
while True:
    result = wrapper.call(f"call {n}")
    n += 1
    print(f"{n} {int(result.success)} {result.account}", flush=True)
"""


def test_kill_9_loses_at_most_a_batch_of_counts_and_never_a_mark(sim: SimPool) -> None:
    sim.add(quota=4)
    sim.add()
    proc = subprocess.Popen(
        [sys.executable, "-c", CALLS_UNTIL_KILLED, str(sim.home)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if len(seen) >= 12:
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
    rows = [line.split() for line in seen]
    assert all(ok == "1" for _, ok, _ in rows)
    requests, accounts = _on_disk(sim.home)
    assert accounts["1"]["status"] == "exhausted"  # the mark is never kept back
    successes = sum(int(str(a.get("successes", 0))) for a in accounts.values())
    assert len(rows) - batch.MAX_COUNT <= successes <= len(sim.backend.calls())
    assert len(rows) - batch.MAX_COUNT <= requests <= len(rows) + 1
    # the next process starts from what was written, and adds its own
    _run(CALLS_THEN_EXIT, str(sim.home), "2")
    assert _on_disk(sim.home)[0] == requests + 2


FORKS = r"""
import os, sys
from credrot.wrapper import Wrapper
wrapper = Wrapper(home=sys.argv[1])
for n in range(3):
    assert wrapper.call(f"call {n}").success
pid = os.fork()
if pid == 0:
    sys.exit(0)  # the child's exit writes nothing of the parent's
os.waitpid(pid, 0)
"""


def test_a_forked_child_never_writes_its_parents_counts_again(sim: SimPool) -> None:
    sim.add()
    _run(FORKS, str(sim.home))
    requests, accounts = _on_disk(sim.home)
    assert requests == 3 and accounts["1"]["successes"] == 3


def test_a_dead_callers_refreshed_token_reaches_its_slot_before_the_next_lease(
    sim: SimPool,
) -> None:
    """kill -9 of a caller whose tool refreshed the single-use token: the next call's
    lease sees the dead home and has it reaped first, so the call starts from the
    refreshed token (the spent one would revoke the account)."""
    sim.add(expired=True, latency=30)
    before = sim.token_in_slot(1)
    proc = subprocess.Popen(
        [sys.executable, "-c", CALLS_THEN_EXIT, str(sim.home), "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sim.kill_mid_call(proc)
    sim.backend.set("acct1", latency=0)
    assert sim.token_in_slot(1) == before  # nobody reaped it yet
    result = Wrapper(manager=sim.manager).call("next")
    assert result.success and result.account == 1, result.error
    assert sim.token_in_slot(1) == sim.backend.latest_token("acct1") != before
    assert not [p for p in (sim.home / ".credrot-run").iterdir() if "-1-" in p.name]


def test_the_audit_lines_of_kept_calls_keep_their_order(sim: SimPool) -> None:
    sim.add(quota=1)
    sim.add()
    wrapper = Wrapper(manager=sim.manager)
    log = sim.home / "rotation.log"
    assert wrapper.call("first").success  # on #1: its line waits with its counters
    assert not log.exists() or '"call"' not in log.read_text()
    second = wrapper.call("second")  # #1 is spent: the wait ends before its lines
    assert second.success and second.accounts_tried == [1, 2]
    sim.manager.flush()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    seen = [e["event"] for e in events if e["event"] in ("call", "exhausted", "switch")]
    assert seen == ["call", "exhausted", "switch", "call"]
    calls = [e for e in events if e["event"] == "call"]
    assert [(e["to"], e["pid"]) for e in calls] == [(1, os.getpid()), (2, os.getpid())]


HOLDS_THE_LOCK = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_writing_kept_counts_during_a_run_never_waits_for_a_busy_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the pool lock while a lone caller's tool runs: the counts
    kept from its last call wait for the next write; the call is not held up."""
    monkeypatch.setattr(batch, "MAX_AGE", 30.0)  # not due by age while this test runs
    tool = tmp_path / "tool"
    tool.write_text('#!/bin/sh\nread -r line\n[ "$line" = slow ] && sleep 0.5\necho "$line"\n')
    tool.chmod(0o755)
    manager = AccountManager(tool=replace(QWEN, executable=str(tool)), home=tmp_path / "home")
    from creds import make_cred

    manager.import_account(make_cred(1))
    wrapper = Wrapper(manager=manager)
    assert wrapper.call("quick").success  # kept
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDS_THE_LOCK, str(manager.home / ".credrot.lock"), "4"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        started = time.monotonic()
        assert wrapper.call("slow").success
        assert time.monotonic() - started < 2.5  # not the holder's 4 s
        assert _on_disk(manager.home)[0] == 0  # both kept for the next write
    finally:
        holder.kill()
        holder.wait()
    manager.flush()
    assert _on_disk(manager.home)[0] == 2
