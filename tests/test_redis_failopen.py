"""The store going away never fails a call: one warning, the local pool carries on, and
nothing is lost — a token refreshed meanwhile reaches the store when it is back."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from redisserver import RedisServer, credrot_on, redis_server
from simpool import SimPool

from credrot.remote.shared import RETRY_AFTER

__all__ = ["redis_server"]


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path / "sim", monkeypatch)


def call(home: Path, store: str) -> subprocess.CompletedProcess[str]:
    return credrot_on(home, store, "run", "--", "-p", "x")


def test_redis_killed_mid_run_loses_nothing(
    sim: SimPool, redis_server: RedisServer, tmp_path: Path
) -> None:
    sim.add("a", answer="{account}", refresh_every=2)  # the tool refreshes every 2nd call
    sim.add("b", answer="{account}")
    store = redis_server.url
    other = tmp_path / "machine2"
    other.mkdir()
    for home in (sim.home, other):
        assert call(home, store).stdout == "a"
    redis_server.kill()  # SIGKILL: no persistence, it comes back empty
    down = [call(sim.home, store) for _ in range(3)]
    assert [(r.returncode, r.stdout) for r in down] == [(0, "a")] * 3
    for r in down:
        warnings = [line for line in r.stderr.splitlines() if "unreachable" in line]
        assert len(warnings) == 1, r.stderr
        assert warnings[0].startswith(f"credrot: warning: store {store} is unreachable")
        assert warnings[0].endswith("using the local pool until it answers")
    refreshed = sim.token_in_slot(1)
    assert sim.backend.account("a")["refreshes"] == 2  # calls 2 and 4
    assert refreshed == sim.backend.latest_token("a")  # kept locally meanwhile
    redis_server.start()
    time.sleep(RETRY_AFTER + 0.1)  # the machine leaves a store it found down alone that long
    back = call(sim.home, store)  # the refreshed token is offered to the empty store
    assert (back.returncode, back.stdout, back.stderr) == (0, "a", "")
    latest, refreshes = sim.token_in_slot(1), sim.backend.account("a")["refreshes"]
    assert latest == sim.backend.latest_token("a")
    # machine 2 starts from it, not from its stale copy (which would need a refresh:
    # call 7 of the account is not a scheduled one)
    again = call(other, store)
    assert (again.returncode, again.stdout, again.stderr) == (0, "a", "")
    slot = json.loads((other / "accounts" / "oauth_creds_1.json").read_bytes())
    assert slot["access_token"] == latest
    assert sim.backend.account("a")["refreshes"] == refreshes
    assert sim.backend.account("a")["calls"] == 7
