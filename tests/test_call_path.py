"""What one wrapper call costs the pool: each attempt takes the pool lock twice (lease,
settle), loads the state once per take and parses its credential at most once; a plain
success of a caller alone on the pool is settled with the next write (one take). More
takes mean more waiting for every parallel caller of the same pool."""

from __future__ import annotations

import json
import subprocess
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


def test_a_lone_call_takes_the_lock_once_and_parses_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counts: Counter[str]
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    result = _call(sim, counts)()
    assert result.success and result.attempts == 1
    assert counts["lock"] == 1
    assert counts["load"] == counts["lock"]
    assert counts["parse"] <= 1


def test_a_call_beside_another_in_flight_takes_the_lock_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counts: Counter[str]
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    other = subprocess.Popen(["sleep", "60"])  # a live caller with a call home on #2
    try:
        run_dir = sim.home / ".credrot-run"
        run_dir.mkdir(mode=0o700, exist_ok=True)
        (run_dir / f"{other.pid}-2-0123456789ab").mkdir()
        result = _call(sim, counts)()
        assert result.success and result.attempts == 1
        assert counts["lock"] == 2  # settled at once: the other caller sees its count
        assert counts["load"] == counts["lock"]
        assert json.loads((sim.home / "state.yaml").read_text())["requests"] == 1
    finally:
        other.kill()
        other.wait()


def test_each_attempt_of_a_rotating_call_costs_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, counts: Counter[str]
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add(quota=0)
    sim.add(quota=0)
    sim.add()
    result = _call(sim, counts)()
    assert result.success and result.attempts == 3
    assert counts["lock"] == 2 * result.attempts - 1  # the success: with the next write
    assert counts["load"] == counts["lock"]
    assert counts["parse"] <= result.attempts
