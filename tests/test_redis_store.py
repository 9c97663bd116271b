"""The Redis store's rules, against a real server: two homes in one test are two
machines; each interleaving is driven step by step, so none depends on timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
from creds import CANARY
from redisserver import RedisServer, dump, redis_server

from credrot.kinds import Outcome, OutcomeKind
from credrot.manager import AccountManager
from credrot.remote import leases
from credrot.remote.scripts import Keys

__all__ = ["redis_server"]

Machines = Callable[..., list[AccountManager]]


@pytest.fixture
def machines(
    tmp_path: Path, redis_server: RedisServer, make_cred: Callable[..., bytes]
) -> Machines:
    def make(n: int = 2, accounts: int = 3) -> list[AccountManager]:
        found = []
        for m in range(n):
            home = tmp_path / f"machine{m}"
            home.mkdir()
            found.append(AccountManager(home=home, store=redis_server.url))
        for i in range(1, accounts + 1):
            found[0].import_account(make_cred(i))
        return found

    return make


def quota(until: datetime) -> Outcome:
    return Outcome(OutcomeKind.QUOTA_EXHAUSTED, "quota exceeded", resets_at=until)


def status_of(manager: AccountManager, index: int) -> tuple[str, datetime | None]:
    info = {a.index: a for a in manager.list_accounts()}[index]
    return info.status.value, info.until


def test_a_deadline_only_moves_later(machines: Machines) -> None:
    a, b = machines()
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=1)
    late = soon + timedelta(hours=5)
    a.record(1, quota(late))
    b.record(1, quota(soon))  # B saw an earlier reset: the later one stands
    for m in (a, b):
        assert status_of(m, 1) == ("exhausted", late)


def test_a_success_clears_only_marks_seen_before_its_call_began(machines: Machines) -> None:
    a, b = machines()
    until = datetime.now(timezone.utc) + timedelta(hours=2)
    started_before = b.lease()  # B's call on #1 starts ...
    assert started_before is not None and started_before.index == 1
    time.sleep(0.01)
    a.record(1, quota(until))  # ... A learns #1 is spent ...
    b.settle(started_before, Outcome.success(), None)  # ... B's older call succeeds
    assert status_of(a, 1)[0] == "exhausted"
    assert status_of(b, 1)[0] == "exhausted"
    assert b.lease(exclude=set()).index == 2  # type: ignore[union-attr]
    a.reset(1)
    a.record(1, quota(until))
    later = a.lease(exclude={2, 3})
    assert later is None  # #1 is spent and the others are excluded
    b.mark(1, "ready")  # by hand: clears whatever the time
    assert status_of(a, 1)[0] == "ready"


def test_calls_in_flight_are_counted_and_a_dead_holder_expires(
    machines: Machines, redis_server: RedisServer
) -> None:
    a, b = machines()
    client = redis.Redis(port=redis_server.port)
    keys = Keys("credrot", "qwen")
    first, second = a.lease(), b.lease()
    assert first is not None and second is not None
    assert leases.in_flight(client, keys, 1) == 2
    a.settle(first, Outcome.success(), None)
    assert leases.in_flight(client, keys, 1) == 1
    b.settle(second, Outcome.success(), None)
    assert leases.in_flight(client, keys, 1) == 0
    # a machine that died mid-call never ends its lease: it stops counting at its TTL
    leases.begin(client, keys, 1, "dead-machine", 200)
    assert leases.in_flight(client, keys, 1) == 1
    time.sleep(0.3)
    assert leases.in_flight(client, keys, 1) == 0


def test_the_refresh_lease_has_one_holder_and_a_fencing_generation(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis(port=redis_server.port)
    keys = Keys("credrot", "codex")
    held = leases.take_refresh(client, keys, 2, 300, holder="A")
    assert held is not None
    assert leases.take_refresh(client, keys, 2, 300, holder="B") is None
    assert leases.take_refresh(client, keys, 3, 300, holder="B") is not None  # per account
    time.sleep(0.4)  # A died holding it: the lease ends by itself
    taken = leases.take_refresh(client, keys, 2, 5000, holder="B")
    assert taken is not None and taken.fence > held.fence
    assert not leases.give_refresh(client, keys, held)  # A's stale release frees nothing
    assert leases.current_fence(client, keys, 2) == taken.fence
    assert leases.take_refresh(client, keys, 2, 300, holder="C") is None
    assert leases.give_refresh(client, keys, taken)
    assert leases.take_refresh(client, keys, 2, 300, holder="C") is not None


def test_a_refresh_on_one_machine_is_used_by_all_and_an_older_copy_is_refused(
    machines: Machines, make_cred: Callable[..., bytes], redis_server: RedisServer
) -> None:
    a, b = machines()
    on_a, on_b = a.lease(), b.lease()  # both start from generation 1 of #1
    assert on_a is not None and on_b is not None and on_a.raw == on_b.raw
    a.settle(on_a, Outcome.success(), make_cred(1, version=2))
    # B's tool refreshed too, from the same generation: the store already moved on
    b.settle(on_b, Outcome.success(), make_cred(1, version=1))
    for m in (a, b):
        assert m.slot_path(1).read_bytes() == make_cred(1, version=2)
    assert b.lease().raw == make_cred(1, version=2)  # type: ignore[union-attr]
    client = redis.Redis(port=redis_server.port)
    assert client.hget("credrot:qwen:cred:1", "gen") == b"2"
    blob = dump(redis_server)
    assert CANARY.encode() not in blob and b"access_token" not in blob


def test_an_account_imported_under_a_number_another_machine_just_took_is_kept(
    machines: Machines, make_cred: Callable[..., bytes]
) -> None:
    a, b = machines(accounts=0)
    assert b.list_accounts() == []
    b.reset()  # B has just looked at the store (it does not look again within a second)
    a.import_account(make_cred(1))
    assert b.import_account(make_cred(2)) == 1  # B did not know #1 was taken
    b.reset()  # B's next sync: the store's #1 stands, B's copy is set aside, not lost
    assert b.slot_path(1).read_bytes() == make_cred(1)
    kept = list((b.home / "backups").iterdir())
    assert [p.read_bytes() for p in kept] == [make_cred(2)]
    assert kept[0].name.startswith("account-1-not-stored-")
