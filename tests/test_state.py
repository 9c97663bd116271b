"""state.yaml on disk: round trips, damage, atomic replacement, permissions."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from credrot import state as st

FORK = multiprocessing.get_context("fork")


def sample_state() -> st.PoolState:
    state = st.PoolState(current=3, generation=7, switches_total=12, last_switch=1.5e9)
    state.account(1)
    state.account(3).calls = 4
    state.accounts[10] = st.AccountState(
        status=st.EXHAUSTED, until=2e9, reason="Qwen OAuth quota exceeded", quota_hits=2
    )
    return state


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    st.save_state(path, sample_state())
    loaded, why = st.load_state(path)
    assert why is None
    assert loaded == sample_state()


def test_the_file_is_yaml_and_json_with_one_account_per_line(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    st.save_state(path, sample_state())
    text = path.read_text()
    as_yaml = yaml.safe_load(text)
    assert as_yaml == json.loads(text)
    assert as_yaml["version"] == st.SCHEMA_VERSION
    assert sorted(as_yaml["accounts"]) == ["1", "10", "3"]
    assert len(text.splitlines()) == 2 + 3


def test_a_hand_edited_block_yaml_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(
        "version: 1\ncurrent: 2\naccounts:\n  1:\n    status: disabled\n  2:\n    calls: 3\n"
    )
    loaded, why = st.load_state(path)
    assert why is None
    assert loaded is not None
    assert loaded.current == 2
    assert loaded.accounts[1].status == st.DISABLED
    assert loaded.accounts[2].calls == 3


def test_unknown_keys_in_an_account_are_ignored(tmp_path: Path) -> None:
    loaded = st.PoolState.from_text('{"version": 1, "accounts": {"1": {"colour": "red"}}}')
    assert loaded.accounts[1] == st.AccountState()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("[1, 2]", "not a mapping"),
        ("just words", "not a mapping"),
        ('{"version": 99}', "schema version"),
        ("current: 1\n", "schema version"),
        ('{"version": 1, "accounts": [1]}', "'accounts' is not a mapping"),
        ('{"version": 1, "accounts": {"1": 5}}', "is not a mapping"),
        ('{"version": 1, "accounts": {"1": {"status": "tired"}}}', "unknown status"),
        ('{"version": 1, "current": "three"}', "bad value"),
        ('{"version": 1, "accounts": {"x": {}}}', "not a number"),
        ("{{{ not: [yaml", "not YAML"),
    ],
)
def test_damage_is_reported_not_guessed(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "state.yaml"
    path.write_text(text)
    loaded, reason = st.load_state(path)
    assert loaded is None
    assert reason is not None
    assert why in reason


def test_missing_and_binary_files(tmp_path: Path) -> None:
    assert st.load_state(tmp_path / "none.yaml") == (None, None)
    path = tmp_path / "state.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert st.load_state(path) == (None, "not UTF-8 text")


def test_set_aside_keeps_the_bytes_and_names_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.yaml"
    path.write_bytes(b"broken: [")
    with caplog.at_level(logging.WARNING):
        aside = st.set_aside(path, "not YAML")
    assert aside is not None
    assert aside.name.startswith("state.yaml.corrupt-")
    assert aside.read_bytes() == b"broken: ["
    assert not path.exists()
    assert aside.name in caplog.text
    path.write_bytes(b"again")
    second = st.set_aside(path, "x")
    assert second is not None
    assert second != aside
    assert aside.exists()


def test_save_writes_0600_whatever_the_umask_or_old_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    path.write_text("old")
    path.chmod(0o644)
    old_umask = os.umask(0)
    try:
        st.save_state(path, st.PoolState())
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.yaml"]


def test_timed_statuses_pass_by_themselves() -> None:
    now = time.time()
    acct = st.AccountState(status=st.EXHAUSTED, until=now + 60)
    assert not acct.usable(now)
    assert acct.usable(now + 61)
    assert acct.effective_status(now + 61) == st.READY
    assert st.AccountState(status=st.RATE_LIMITED, until=now - 1).usable(now)
    for status in (st.NEEDS_LOGIN, st.DISABLED):
        assert not st.AccountState(status=status, until=now - 1).usable(now + 10**6)


def test_calls_today_start_again_on_a_new_utc_day() -> None:
    acct = st.AccountState()
    day1 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    acct.count_call(day1 + 10)
    acct.count_call(day1 + 20)
    assert acct.calls_on(day1 + 30) == 2
    assert acct.calls_on(day1 + 86_400) == 0
    acct.count_call(day1 + 86_400 + 5)
    assert (acct.calls, acct.calls_today, acct.day) == (3, 1, "2026-01-02")


def test_state_dataclasses_compare_by_value() -> None:
    one: dict[str, Any] = {"calls": 2, "reason": "x"}
    assert st.AccountState(**one) == st.AccountState(**one)


@pytest.mark.parametrize(
    ("change", "durable"),
    [
        (lambda s: s.account(3).count_call(time.time()), False),
        (lambda s: setattr(s.account(1), "successes", 9), False),
        (lambda s: setattr(s, "pool_exhausted", 1), False),
        (lambda s: setattr(s.account(3), "status", st.NEEDS_LOGIN), True),
        (lambda s: setattr(s.account(10), "until", 3e9), True),
        (lambda s: setattr(s, "current", 1), True),
        (lambda s: s.account(4), True),
        (lambda s: s.accounts.__delitem__(1), True),
    ],
)
def test_only_more_than_counters_is_a_durable_change(
    tmp_path: Path, change: Any, durable: bool
) -> None:
    path = tmp_path / "state.yaml"
    st.save_state(path, sample_state())
    loaded, _ = st.load_state(path)
    assert loaded is not None
    assert not loaded.durable_change()
    change(loaded)
    assert loaded.durable_change() is durable
    st.save_state(path, loaded)
    again, _ = st.load_state(path)
    assert again == loaded  # written either way


def test_a_state_not_read_from_a_file_is_always_durable() -> None:
    assert sample_state().durable_change()


def test_a_state_read_again_is_a_new_copy_of_the_file(tmp_path: Path) -> None:
    """A process reads the same text at every call (it is kept parsed): what one
    caller changed in its copy must not show in the next read, nor a file's change be
    missed."""
    path = tmp_path / "state.yaml"
    state = sample_state()
    state.account(3).windows["5h"] = {"used": 1}
    st.save_state(path, state)
    first, _ = st.load_state(path)
    assert first is not None
    first.account(3).calls += 100
    first.account(3).windows["5h"]["used"] = 99
    first.current = 1
    again, _ = st.load_state(path)
    assert again is not None
    assert (again.current, again.account(3).calls) == (3, 4)
    assert again.account(3).windows == {"5h": {"used": 1}}
    assert not again.durable_change()
    state.account(3).calls = 5  # another process's write: same length, one digit changed
    st.save_state(path, state)
    seen, _ = st.load_state(path)
    assert seen is not None and seen.account(3).calls == 5
    state.account(3).status, state.account(3).until = st.EXHAUSTED, 2e9
    again.accounts[3] = state.account(3)
    assert again.durable_change()
