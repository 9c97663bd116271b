"""What one wrapper call costs the pool: each attempt takes the pool lock twice (lease,
settle), loads the state once per take and parses its credential at most once. A caller
alone on the pool leases without the lock and keeps a plain success for the next write:
a lone call takes no lock at all. More takes mean more waiting for every parallel
caller of the same pool."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from simpool import SimPool

from credrot import state as st
from credrot.pool.store import FileStore
from credrot.profile import ToolProfile
from credrot.wrapper import Wrapper


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the real operations (each still runs as it would)."""
    seen: Counter[str] = Counter()
    real_locked = FileStore.locked
    real_load = st.load_state
    real_parse = ToolProfile.parse_credential

    @contextmanager
    def locked(self: FileStore) -> Iterator[None]:
        seen["lock"] += 1
        with real_locked(self):
            yield

    def load(path: Path) -> Any:
        seen["load"] += 1
        return real_load(path)

    def parse(self: ToolProfile, raw: bytes) -> Any:
        seen["parse"] += 1
        return real_parse(self, raw)

    monkeypatch.setattr(FileStore, "locked", locked)
    monkeypatch.setattr(st, "load_state", load)
    monkeypatch.setattr(ToolProfile, "parse_credential", parse)
    return seen


def _call(sim: SimPool, counts: Counter[str]) -> Callable[[], Any]:
    def run() -> Any:
        counts.clear()
        return Wrapper(manager=sim.manager, max_retries=4).call("hi", timeout=20)

    return run


def test_a_lone_call_takes_no_lock_and_reads_the_state_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counts: Counter[str]
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    result = _call(sim, counts)()
    assert result.success and result.attempts == 1
    assert counts["lock"] == 0  # leased without it, its success kept for the next write
    assert counts["load"] == 1
    assert counts["parse"] <= 1


def test_a_caller_that_appears_during_a_lone_lease_sends_it_to_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counts: Counter[str]
) -> None:
    """The interleaving: another caller reserves its home on #1 between this lease's
    look at the call homes and its own reservation. The lease gives its home back and
    takes the locked path, which sees the other call and spreads to #2."""
    from credrot import callhome

    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    real_reserve = callhome.reserve
    planted: list[Path] = []
    with sim.other_caller() as other_home:

        def reserve(layout: Any, index: int) -> Path:
            root = real_reserve(layout, index)
            if not planted:
                planted.append(other_home(1))
            return root

        monkeypatch.setattr(callhome, "reserve", reserve)
        result = _call(sim, counts)()
        assert result.success and result.account == 2, result.error
        assert counts["lock"] == 2  # the locked lease, and a settlement beside a call
        homes = sorted(p.name for p in (sim.home / ".credrot-run").iterdir())
        assert homes == sorted([planted[0].name, *(n for n in homes if "-idle-" in n)])
        assert len(homes) == 2  # the home given back is gone, one idle home is left


def test_a_call_beside_another_in_flight_takes_the_lock_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counts: Counter[str]
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    with sim.other_caller() as other_home:
        other_home(2)
        result = _call(sim, counts)()
        assert result.success and result.attempts == 1
        assert counts["lock"] == 2  # settled at once: the other caller sees its count
        assert counts["load"] == counts["lock"]
        assert json.loads((sim.home / "state.yaml").read_text())["requests"] == 1


def test_each_attempt_of_a_rotating_call_costs_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counts: Counter[str]
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add(quota=0)
    sim.add(quota=0)
    sim.add()
    result = _call(sim, counts)()
    assert result.success and result.attempts == 3
    # each lease alone without the lock; each spent account's settlement under it; the
    # success kept for the next write
    assert counts["lock"] == result.attempts - 1
    assert counts["load"] == result.attempts + counts["lock"]
    assert counts["parse"] <= result.attempts


def _pointer_a_file(sim: SimPool) -> None:
    """The tool refreshed by rename: the pointer is now a file with a newer token."""
    pointer = sim.home / "oauth_creds.json"
    data = json.loads(pointer.read_text())
    pointer.unlink()
    pointer.write_text(json.dumps(data))


def _pointer_elsewhere(sim: SimPool) -> None:
    """Moved by hand to #2 while the state still says #1."""
    pointer = sim.home / "oauth_creds.json"
    pointer.unlink()
    pointer.symlink_to("accounts/oauth_creds_2.json")


def _pointer_missing(sim: SimPool) -> None:
    (sim.home / "oauth_creds.json").unlink()


@pytest.mark.parametrize("change", [_pointer_a_file, _pointer_elsewhere, _pointer_missing])
def test_a_lone_call_leaves_a_pointer_it_did_not_make_to_the_locked_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counts: Counter[str], change: Any
) -> None:
    """A lone lease trusts only credrot's own link to the active slot; anything else is
    repaired (a file adopted into its slot, never lost) under the lock first."""
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    slot_before = (sim.home / "accounts" / "oauth_creds_1.json").read_bytes()
    change(sim)
    result = _call(sim, counts)()
    assert result.success and result.attempts == 1, result.error
    assert counts["lock"] >= 1
    pointer = sim.home / "oauth_creds.json"
    assert pointer.is_symlink()
    assert json.loads(pointer.read_text()) == json.loads(slot_before) or result.account == 2
    assert result.account == (2 if change is _pointer_elsewhere else 1)
    counts.clear()
    again = _call(sim, counts)()  # repaired: the next call is a lone one again
    assert again.success
    assert counts["lock"] <= 1  # only the first call's kept counts, written as the tool runs


def test_round_robin_leaves_the_lone_lease_to_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counts: Counter[str]
) -> None:
    """A lone lease only ever stays where the pool is: a strategy that moves every call
    (round-robin) moves it under the lock."""
    from credrot.manager import AccountManager

    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    sim.manager = AccountManager(home=sim.home, strategy="round-robin")
    used = [_call(sim, counts)().account for _ in range(4)]
    assert used == [2, 1, 2, 1]
