"""Telemetry the tools emit about themselves: Claude Code's stream-json
``rate_limit_event`` and Codex's rollout ``token_count`` ``rate_limits``. The simulator
reports rising utilization; credrot moves at ``rotate_at``, before any 429."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from simpool import SimPool

from credrot import telemetry, windows
from credrot.kinds import Outcome
from credrot.pool import rotation
from credrot.state import AccountState
from credrot.wrapper import Wrapper


def _windows(pool: SimPool, index: int) -> Any:
    return json.loads((pool.home / "state.yaml").read_text())["accounts"][str(index)]["windows"]


def test_claude_stream_json_utilization_moves_the_pool_before_any_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary: str
) -> None:
    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    pool.add("a", quota=20)
    pool.add("b", quota=20)
    wrapper = Wrapper("claude", manager=pool.manager, extra_args=("--output-format", "stream-json"))
    served = [wrapper.call(f"q{i}").account for i in range(25)]
    assert served == [1] * 19 + [2] * 6  # 19/20 = 0.95 = rotate_at: moved before the 20th
    assert all(c["outcome"] == "ok" for c in pool.backend.calls())  # no 429, none wasted
    five = _windows(pool, 1)["5h"]
    assert five["used"] == 0.95 and five["over"] is True and five["calls"] == 19
    assert five["resets"] > time.time() + 4 * 3600
    assert _windows(pool, 2)["5h"]["used"] == 0.3
    listed = pool.manager.list_accounts()
    assert listed[0].status == "exhausted" and "95%" in listed[0].reason
    assert canary not in json.dumps(_windows(pool, 1))


def test_codex_rollout_rate_limits_move_the_pool_and_name_the_full_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = SimPool(tmp_path, monkeypatch, tool="codex")
    pool.add("spent", quota=0)
    pool.add("a", quota=10)
    pool.add("b", quota=10)
    wrapper = Wrapper("codex", manager=pool.manager)
    served = [wrapper.call(f"q{i}").account for i in range(12)]
    # the spent account is found by its quota text (the rollout says primary is full);
    # account 2 is left at 10/10 = 100% by its own report, before the tool refuses it
    assert served == [2] * 10 + [3] * 2
    outcomes = [c["outcome"] for c in pool.backend.calls()]
    assert outcomes == ["quota"] + ["ok"] * 12
    assert "until" in _windows(pool, 1)["5h"]  # the quota text named no window
    second = _windows(pool, 2)
    assert second["5h"]["used"] == 1.0 and second["5h"]["over"] is True
    assert second["week"]["used"] == pytest.approx(second["5h"]["used"] / 5, abs=0.01)
    assert second["5h"]["tokens"] > 0
    assert not list((pool.home).glob("sessions"))  # rollouts stayed in the call homes


def test_readings_out_of_order_do_not_flap_the_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two parallel calls on one account: the later-started one reports 0.96 first, the
    earlier one's stale 0.93 arrives after it. Hysteresis keeps the account out until a
    reading falls below rotate_at - 0.05."""
    pool = SimPool(tmp_path, monkeypatch)
    pool.add()
    pool.add()
    p = pool.manager.pool

    def settle(used: float) -> bool:
        reading = telemetry.Reading("5h", used, time.time() + 3600)
        rotation.settle(p, 1, Outcome.success(), readings=[reading])
        return p.usable(p.store.load(), 1)

    assert settle(0.90) is True
    assert settle(0.96) is False
    assert settle(0.93) is False  # between 0.90 and 0.95: still out
    assert settle(0.89) is True
    assert settle(0.93) is True  # rising again, still under the threshold
    assert settle(0.95) is False


def test_rotate_at_null_turns_the_threshold_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("limits:\n  claude:\n    rotate_at: null\n")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    pool.add("a", quota=3)
    pool.add("b", quota=3)
    wrapper = Wrapper("claude", manager=pool.manager, extra_args=("--output-format", "stream-json"))
    served = [wrapper.call(f"q{i}").account for i in range(4)]
    assert served == [1, 1, 1, 2]
    assert [c["outcome"] for c in pool.backend.calls()] == ["ok"] * 3 + ["quota", "ok"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            '{"type":"rate_limit_event","rate_limit_info":{"status":"allowed",'
            '"resetsAt":1764790000,"rateLimitType":"seven_day","utilization":0.5}}',
            telemetry.Reading("week", 0.5, 1764790000.0, "claude stream-json"),
        ),
        (
            '{"type":"rate_limit_event","status":"rejected","resetsAt":1764790000000}',
            telemetry.Reading("5h", 1.0, 1764790000.0, "claude stream-json"),
        ),
        ('{"type":"rate_limit_event","rate_limit_info":"garbage"}', None),
        ('{"type":"result","result":"rate_limit_event"}', None),
        ("rate_limit_event: not json", None),
    ],
)
def test_claude_event_shapes(line: str, expected: telemetry.Reading | None) -> None:
    found = list(telemetry.claude_events(line + "\n"))
    if expected is None:
        assert found == [] or found[0].used is None
    else:
        assert found == [expected]


def test_a_window_over_threshold_comes_back_when_its_reset_passes() -> None:
    acct = AccountState()
    now = time.time()
    windows.observe(acct, "5h", 0.99, now + 10, now, 0.95)
    assert windows.blocked(acct, 1, now, windows.NO_LIMITS) is not None
    assert windows.blocked(acct, 1, now + 11, windows.NO_LIMITS) is None
