"""Quota windows through the shared store: a window mark one machine learns reaches the
others with the next call's sync, a success elsewhere clears it, usage stays local.

Each "machine" is its own tool home; calls are real ``credrot run`` processes on the
simulated claude, views are real ``credrot accounts list`` processes.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from clocktexts import claude_reset_in
from creds import CANARY
from redisserver import RedisServer, credrot_on, dump, machine, redis_server
from simpool import SimPool

from credrot.kinds import Outcome
from credrot.manager import AccountManager
from credrot.pool import rotation

__all__ = ["redis_server"]


OPUS_SPENT = f"You've hit your Opus limit · resets {claude_reset_in(6)}"
FIVE_SPENT = f"You've hit your 5-hour limit · resets {claude_reset_in(3)}"


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path / "sim", monkeypatch, tool="claude")


def credrot(home: Path, store: str, *args: str) -> subprocess.CompletedProcess[str]:
    return credrot_on(home, store, *args, tool="claude")


def ask(home: Path, store: str, *model: str) -> str:
    got = credrot(home, store, "run", "--", "-p", "x", *model)
    assert got.returncode == 0, got.stderr
    return got.stdout.strip()


def listed(home: Path, store: str) -> dict[int, dict[str, Any]]:
    got = credrot(home, store, "accounts", "list", "--json")
    assert got.returncode == 0, got.stderr
    data = json.loads(got.stdout)
    rows = data if isinstance(data, list) else data["accounts"]
    return {int(row["index"]): row for row in rows}


def test_a_model_window_spent_on_one_machine_keeps_that_model_off_it_on_another(
    sim: SimPool, redis_server: RedisServer, tmp_path: Path
) -> None:
    sim.add("a", quota=0, limit_text=OPUS_SPENT, answer="{account}")
    sim.add("b", answer="{account}")
    store = redis_server.url
    assert ask(sim.home, store, "--model", "opus") == "b"  # machine A learns it on "a"
    sim.backend.set("a", quota=None)  # "a" answers its other models (and would answer opus)
    assert [c["account"] for c in sim.backend.calls()] == ["a", "b"]

    other = machine(tmp_path, "m2")
    assert ask(other, store, "--model", "opus") == "b"  # "a" skipped without a run
    assert credrot(other, store, "accounts", "switch", "1").returncode == 0
    assert ask(other, store, "--model", "sonnet") == "a"  # another model still uses it
    assert ask(other, store, "--model", "opus") == "b"
    text = credrot(other, store, "accounts", "list")
    assert text.returncode == 0, text.stderr
    row = [line for line in text.stdout.splitlines() if "week:opus" in line]
    assert len(row) == 1 and "ready (week:opus spent until" in row[0], text.stdout
    assert ask(sim.home, store, "--model", "opus") == "b"  # machine A keeps its own mark
    assert [c["account"] for c in sim.backend.calls()] == ["a", "b", "b", "a", "b", "b"]
    assert CANARY.encode() not in dump(redis_server)


def test_a_window_mark_shows_on_every_machine_and_a_later_success_anywhere_clears_it(
    sim: SimPool, redis_server: RedisServer, tmp_path: Path
) -> None:
    sim.add("a", quota=0, limit_text=FIVE_SPENT, answer="{account}")
    sim.add("b", answer="{account}")
    store = redis_server.url
    before = time.time()
    assert ask(sim.home, store) == "b"
    other = machine(tmp_path, "m2")
    assert ask(other, store) == "b"  # skipped without a run
    seen = listed(other, store)
    assert seen[1]["windows"]["5h"]["spent_until"] is not None
    assert seen[1]["usable"] is False
    text = credrot(other, store, "accounts", "list").stdout
    assert "5h spent until" in text, text
    assert [c["account"] for c in sim.backend.calls()] == ["a", "b", "b"]

    on_b = AccountManager(tool="claude", home=other, store=store)
    # a success on B whose call began before A's mark leaves it standing
    rotation.settle(on_b.pool, 1, Outcome.success(), started=before)
    assert listed(sim.home, store)[1]["windows"]["5h"]["spent_until"] is not None
    # one that began after it (the provider reset early) clears it everywhere
    rotation.settle(on_b.pool, 1, Outcome.success(), started=time.time())
    row = listed(sim.home, store)[1]
    assert row["usable"] is True and row["windows"]["5h"]["spent_until"] is None
    sim.backend.set("a", quota=None)
    credrot(sim.home, store, "accounts", "switch", "1")
    assert ask(sim.home, store) == "a"
    state = json.loads((sim.home / "state.yaml").read_text())
    assert "until" not in state["accounts"]["1"]["windows"]["5h"]
