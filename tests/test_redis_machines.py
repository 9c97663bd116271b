"""Several machines, one Redis: separate homes, separate processes, a real server.

Each "machine" is its own tool home and every call a real ``credrot run`` process on the
simulator; the only thing they share is the store (and the simulated provider behind
the accounts).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from creds import CANARY
from redisserver import RedisServer, credrot_on, dump, machine, redis_server
from simpool import SimPool

from credrot.manager import AccountManager

__all__ = ["redis_server"]


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path / "sim", monkeypatch)


def call(home: Path, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return credrot_on(home, store, "run", "--", "-p", "x", *args)


def test_a_spent_account_seen_on_one_machine_is_skipped_on_all(
    sim: SimPool, redis_server: RedisServer, tmp_path: Path
) -> None:
    sim.add("a", quota=0, answer="{account}")
    sim.add("b", answer="{account}")
    sim.add("c", answer="{account}")
    store = redis_server.url
    first = call(sim.home, store)
    assert (first.returncode, first.stdout) == (0, "b")
    for name in ("m2", "m3"):
        home = machine(tmp_path, name)
        got = call(home, store)
        assert (got.returncode, got.stdout, got.stderr) == (0, "b", "")
        assert sorted(p.name for p in (home / "accounts").iterdir()) == [
            f"oauth_creds_{i}.json" for i in (1, 2, 3)
        ]
    assert sim.backend.account("a")["calls"] == 1  # only machine A spent a call to learn it
    assert sim.backend.account("b")["calls"] == 3
    assert CANARY.encode() not in dump(redis_server)


def test_counters_add_up_across_machines_and_a_mark_reaches_the_listing(
    sim: SimPool, redis_server: RedisServer, tmp_path: Path
) -> None:
    sim.add("a", answer="{account}")
    sim.add("b", answer="{account}")
    store = redis_server.url
    other = machine(tmp_path, "m2")
    for home in (sim.home, other, sim.home):
        assert call(home, store).returncode == 0
    listing = credrot_on(other, store, "stats", "--json")
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout)["calls"] == 3
    AccountManager(home=sim.home, store=store).mark(1, "disabled", reason="plan ended")
    seen = AccountManager(home=other, store=store).list_accounts()
    assert [(a.index, a.status.value) for a in seen] == [(1, "disabled"), (2, "ready")]
