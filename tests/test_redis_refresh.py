"""The refresh lease across machines: with a shared store, one refresh per account at a
time on every machine together, so a single-use refresh token is never spent twice.

Each "machine" is its own tool home holding its own copy of the same credentials; real
caller processes on the simulator, whose provider revokes an account whose refresh
token is presented twice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from creds import CANARY, canary_leaks
from redisserver import RedisServer, dump, redis_server
from simpool import SimPool

from credrot.kinds import Outcome
from credrot.manager import AccountManager
from credrot.pool import rotation
from credrot.remote import leases
from credrot.remote.scripts import Keys

__all__ = ["redis_server"]

MACHINES, PROCS, CALLS, ACCOUNTS = 3, 8, 2, 3

#: One caller process: CALLS calls through the Wrapper, one JSON line per result.
DRIVER = """
import json, sys
from credrot.wrapper import Wrapper
tool, home, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
w = Wrapper(tool, home=home, timeout=60, max_retries=4, backoff="none")
for n in range(calls):
    r = w.call(f"question {n}")
    print(json.dumps({"ok": r.success, "account": r.account, "error": r.error}), flush=True)
"""


@pytest.mark.parametrize("tool", ["claude", "codex"])
def test_two_machines_of_parallel_callers_on_expired_tokens_revoke_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer, tool: str
) -> None:
    sim = SimPool(tmp_path / "sim", monkeypatch, tool=tool)
    for _ in range(ACCOUNTS):
        sim.add(expired=True)
    homes = [sim.home]
    for m in range(1, MACHINES):  # the same stale copies on every machine
        home = tmp_path / f"machine{m}"
        home.mkdir()
        shutil.copytree(sim.home / "accounts", home / "accounts")
        homes.append(home)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, CREDROT_STORE=redis_server.url)
    running = [
        subprocess.Popen(
            [sys.executable, str(script), tool, str(home), str(CALLS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for home in homes
        for _ in range(PROCS)
    ]
    results, printed = [], ""
    for proc in running:
        out, err = proc.communicate(timeout=300)
        printed += out + err
        assert proc.returncode == 0, err
        results += [json.loads(line) for line in out.splitlines()]
    assert [r["ok"] for r in results] == [True] * (MACHINES * PROCS * CALLS), results
    names = [f"acct{i}" for i in range(1, ACCOUNTS + 1)]
    assert [n for n in names if sim.backend.account(n).get("revoked")] == []
    assert sum(int(str(sim.backend.account(n)["refreshes"])) for n in names) <= ACCOUNTS
    assert CANARY not in printed
    assert CANARY.encode() not in dump(redis_server)
    for home in homes:
        assert canary_leaks(home) == []


# ------------------------------------------------------- step by step, in process
Machines = Callable[[], tuple[AccountManager, AccountManager]]


@pytest.fixture
def machines(
    tmp_path: Path, redis_server: RedisServer, make_cred: Callable[..., bytes]
) -> Machines:
    def make() -> tuple[AccountManager, AccountManager]:
        found = []
        for m in range(2):
            home = tmp_path / f"machine{m}"
            home.mkdir()
            found.append(AccountManager(home=home, store=redis_server.url))
        found[0].import_account(make_cred(1, expiry_ms=1_000))  # expired long ago
        return found[0], found[1]  # the other machine gets it from the store

    return make


def test_a_refresh_held_on_one_machine_keeps_the_other_waiting_then_it_uses_the_result(
    machines: Machines, make_cred: Callable[..., bytes]
) -> None:
    a, b = machines()
    on_a = a.lease()
    assert on_a is not None and on_a.refresh_due
    held_a = rotation.hold_refresh(a.pool, on_a, time.monotonic() + 5)
    assert held_a is not None and held_a[1] is not None and held_a[1].held
    on_b = b.lease()
    assert on_b is not None and on_b.refresh_due
    # B's own home has no local holder, but machine A holds the account's refresh
    assert rotation.hold_refresh(b.pool, on_b, time.monotonic() + 0.3) is None
    refreshed = make_cred(1, version=2)
    a.settle(held_a[0], Outcome.success(), refreshed)
    held_a[1].release()
    again = b.lease()  # (B looked at the store less than a second ago: its copy is old)
    assert again is not None
    got = rotation.hold_refresh(b.pool, again, time.monotonic() + 5)
    assert got is not None and got[1] is None  # fresh now: runs without a refresh
    assert got[0].raw == refreshed and not got[0].refresh_due


def test_each_grant_has_a_larger_fence_and_a_running_call_keeps_its_lease(
    machines: Machines, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leases, "REFRESH_TTL_MS", 1500)  # renewed every 0.5 s
    a, b = machines()
    client = redis.Redis(port=redis_server.port)
    keys = Keys("credrot", "qwen")
    first = a.lease()
    assert first is not None
    held = rotation.hold_refresh(a.pool, first, time.monotonic() + 5)
    assert held is not None and held[1] is not None
    fence = leases.current_fence(client, keys, 1)
    time.sleep(2.5)  # longer than the time to live: the holder renews it
    assert leases.take_refresh(client, keys, 1, 1000, holder="other") is None
    held[1].release()
    assert client.get(keys.refresh(1)) is None
    second = b.lease()
    assert second is not None
    taken = rotation.hold_refresh(b.pool, second, time.monotonic() + 5)
    assert taken is not None and taken[1] is not None
    assert leases.current_fence(client, keys, 1) == fence + 1
    taken[1].release()
    audit = [json.loads(line) for line in (b.home / "rotation.log").read_text().splitlines()]
    assert [r["reason"] for r in audit if r.get("event") == "refresh-lease"] == [
        f"held in the store, fence {fence + 1}"
    ]


def test_a_store_that_is_down_leaves_the_local_lease_in_force(
    machines: Machines, redis_server: RedisServer
) -> None:
    a, _b = machines()
    redis_server.kill()
    first = a.lease()
    assert first is not None and first.refresh_due
    held = rotation.hold_refresh(a.pool, first, time.monotonic() + 5)
    assert held is not None and held[1] is not None and held[1].held
    held[1].release()
    assert any("is unreachable" in n for n in a.notices)
