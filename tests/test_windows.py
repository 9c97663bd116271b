"""Quota windows: the tools' window texts, marks kept per window with absolute UTC
deadlines, what ``list``/``stats``/Prometheus show, and self-healing."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from clocktexts import claude_reset_in
from simpool import SimPool

from credrot import resets, windows
from credrot.classify import classify
from credrot.kinds import Outcome, OutcomeKind
from credrot.pool import rotation
from credrot.state import AccountState
from credrot.tools import BUILTIN
from credrot.wrapper import Wrapper

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)

WINDOW_TEXTS = [
    ("claude", "You've hit your 5-hour limit · resets 7:12pm (UTC)", "5h"),
    ("claude", "You\u2019ve hit your 5-hour limit · resets 7:12pm (UTC)", "5h"),
    ("claude", "You've hit your weekly limit · resets 7:12pm (UTC)", "week"),
    ("claude", "You've hit your weekly limit · resets Dec 5, 7:49pm (Europe/Berlin)", "week"),
    ("claude", "Weekly limit reached · resets 10am (Asia/Seoul) · /upgrade to Max", "week"),
    ("claude", "You've hit your session limit · resets 2:50am (Asia/Muscat)", "5h"),
    ("claude", "You've hit your Opus limit · resets 7:12pm (UTC)", "week:opus"),
    ("claude", "You've hit your limit · resets 1pm (Europe/Lisbon)", ""),
    (
        "codex",
        "ERROR: You\u2019ve hit your usage limit. Upgrade to Pro or try again at 8:05 PM.",
        "",
    ),
    ("qwen", "[API Error: 429 hour allocated quota exceeded]", "5h"),
    ("qwen", "[API Error: 429 week allocated quota exceeded]", "week"),
    ("qwen", "[API Error: 429 month allocated quota exceeded]", "month"),
    ("qwen", "Qwen OAuth quota exceeded: Your free daily quota has been reached.", "day"),
    ("qwen", "Qwen API quota exceeded: Your Qwen API quota has been exhausted.", ""),
    ("qwen-key", "[API Error: 429 hour allocated quota exceeded]", "5h"),
    ("qwen-key", "[API Error: 429 week allocated quota exceeded]", "week"),
    ("gemini", "TerminalQuotaError: You have exhausted your daily quota on this model.", "day"),
    ("gemini", "You have exhausted your capacity on this model. reset after 2s.", ""),
]


@pytest.mark.parametrize(("tool", "text", "window"), WINDOW_TEXTS)
def test_window_texts_of_every_builtin_tool(tool: str, text: str, window: str) -> None:
    outcome = classify(BUILTIN[tool], 1, text, text, now=NOW)
    assert outcome.kind is OutcomeKind.QUOTA_EXHAUSTED
    assert outcome.window == window
    assert outcome.resets_at is not None and outcome.resets_at.tzinfo is not None


def test_every_builtin_tool_has_a_window_text() -> None:
    assert {tool for tool, _t, w in WINDOW_TEXTS if w} >= {"claude", "qwen", "gemini"}
    assert {tool for tool, _t, _w in WINDOW_TEXTS} == set(BUILTIN)


def test_a_named_window_without_a_printed_time_waits_one_window() -> None:
    outcome = classify(BUILTIN["qwen"], 1, "", "hour allocated quota exceeded", now=NOW)
    assert outcome.resets_at == datetime(2026, 12, 3, 17, 0, tzinfo=timezone.utc)
    week = classify(BUILTIN["qwen"], 1, "", "week allocated quota exceeded", now=NOW)
    assert week.resets_at == datetime(2026, 12, 10, 12, 0, tzinfo=timezone.utc)


def _state(pool: SimPool) -> dict[str, object]:
    data: dict[str, object] = json.loads((pool.home / "state.yaml").read_text())
    return data


def _cli(pool: SimPool, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "credrot", "--tool", pool.tool, "--home", str(pool.home), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_claude_limits_land_in_their_own_windows_and_every_view_shows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary: str
) -> None:
    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    weekly = f"You've hit your weekly limit · resets {claude_reset_in(6)}"
    five = f"You've hit your 5-hour limit · resets {claude_reset_in(3)}"
    pool.add("w", quota=0, limit_text=weekly)
    pool.add("f", quota=0, limit_text=five)
    pool.add("ok")
    before = datetime.now(timezone.utc)
    result = Wrapper("claude", manager=pool.manager).call("hello")
    assert result.success and result.account == 3, result.error
    accounts: Any = _state(pool)["accounts"]
    week_at, five_at = resets.claude_resets(weekly, before), resets.claude_resets(five, before)
    assert week_at is not None and five_at is not None
    week = accounts["1"]["windows"]["week"]
    five_h = accounts["2"]["windows"]["5h"]
    assert week["until"] == pytest.approx(week_at.timestamp(), abs=1)
    assert five_h["until"] == pytest.approx(five_at.timestamp(), abs=1)
    assert week["signal"] == "text" and "weekly limit" in week["reason"]
    assert "5h" not in accounts["1"]["windows"] and "week" not in accounts["2"]["windows"]

    listed = _cli(pool, "accounts", "list")
    assert listed.returncode == 0, listed.stderr
    assert "week spent until" in listed.stdout and "5h spent until" in listed.stdout
    as_json = json.loads(_cli(pool, "stats", "--json").stdout)
    assert as_json["accounts"]["1"]["windows"]["week"]["spent_until"].endswith("+00:00")
    prom = _cli(pool, "stats", "--prometheus").stdout
    assert (
        'credrot_window_spent_until_timestamp_seconds{tool="claude",account="1",window="week"}'
        in prom
    )
    assert 'window="5h"' in prom
    for text in (listed.stdout, listed.stderr, prom, json.dumps(as_json)):
        assert canary not in text


def test_a_success_clears_only_marks_older_than_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving: call A leases #1; another process marks #1's 5h window; A's
    success settles after the mark — the mark stands. A call that starts after a mark
    and succeeds clears it."""
    pool = SimPool(tmp_path, monkeypatch)
    pool.add()
    pool.add()
    lease = pool.manager.lease()
    assert lease is not None and lease.index == 1
    marker = (
        "import sys; from credrot.manager import AccountManager; "
        "from credrot.classify import classify; from credrot.tools import QWEN; "
        "o = classify(QWEN, 1, '', 'hour allocated quota exceeded'); "
        "AccountManager(home=sys.argv[1]).record(1, o)"
    )
    subprocess.run([sys.executable, "-c", marker, str(pool.home)], check=True, timeout=60)
    pool.manager.settle(lease, Outcome.success(), None)
    five = _state(pool)["accounts"]["1"]["windows"]["5h"]  # type: ignore[index]
    assert five["until"] > time.time() + 4 * 3600
    assert not pool.manager.pool.usable(pool.manager.pool.store.load(), 1)

    # a success that started after the mark (the provider reset early) clears it
    rotation.settle(pool.manager.pool, 1, Outcome.success(), started=time.time())
    healed = _state(pool)["accounts"]["1"]["windows"]["5h"]  # type: ignore[index]
    assert "until" not in healed
    assert pool.manager.pool.usable(pool.manager.pool.store.load(), 1)


def test_a_passed_reset_is_reprobed_by_the_next_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    pool.add("a")
    pool.add("b", quota=0, limit_text=f"You've hit your weekly limit · resets {claude_reset_in(6)}")
    later = datetime.fromtimestamp(time.time() + 600, timezone.utc)
    spent = Outcome(OutcomeKind.QUOTA_EXHAUSTED, "5-hour limit", resets_at=later, window="5h")
    rotation.settle(pool.manager.pool, 1, spent)
    wrapper = Wrapper("claude", manager=pool.manager, max_retries=2)
    first = wrapper.call("one")
    assert not first.success and first.pool_exhausted
    # The reset passes (the mark is moved into the past, as the clock would move past it).
    with pool.manager.pool.store.transaction() as state:
        acct = state.account(1)
        past = time.time() - 1
        if acct.until is not None:
            acct.until = past
        for entry in acct.windows.values():
            for key in ("until", "ends"):
                if key in entry:
                    entry[key] = past
    again = wrapper.call("two")
    assert again.success and again.account == 1, again.error
    assert [c["account"] for c in pool.backend.calls()] == ["b", "a"]
    assert "until" not in _state(pool)["accounts"]["1"]["windows"]["5h"]  # type: ignore[index]


# ---------------------------------------------------------------------- per model
@pytest.mark.parametrize(
    ("window", "model", "per_model", "limits"),
    [
        ("week:opus", "opus", True, True),
        ("week:opus", "claude-opus-4-5", True, True),
        ("week:opus", "sonnet", True, False),
        ("week:opus", "claude-sonnet-4-5", True, False),
        ("week:opus", None, True, True),  # the tool's default model may be that one
        ("week:opus", "sonnet", False, True),  # the profile keeps windows per account
        ("week", "sonnet", True, True),  # a window of every model
        ("5h", "sonnet", True, True),
        ("quota", None, True, True),
    ],
)
def test_which_calls_a_window_limits(
    window: str, model: str | None, per_model: bool, limits: bool
) -> None:
    assert windows.concerns(window, model, per_model) is limits


@pytest.mark.parametrize(
    ("argv", "model"),
    [
        (["-p", "--model", "opus"], "opus"),
        (["-p", "--model=Claude-Sonnet-4-5"], "claude-sonnet-4-5"),
        (["exec", "-m", "gpt-5", "-"], "gpt-5"),
        (["-p", "--output-format", "text"], None),
        (["-p", "--model"], None),  # a flag without its value names nothing
    ],
)
def test_the_model_a_call_names(argv: list[str], model: str | None) -> None:
    assert windows.call_model(argv) == model


def test_only_claude_keeps_windows_per_model() -> None:
    assert {name for name, p in BUILTIN.items() if p.per_model_windows} == {"claude"}
    assert not windows.account_wide("week:opus", True)
    assert windows.account_wide("week:opus", False)
    assert windows.account_wide("week", True)


def test_a_spent_model_window_blocks_calls_for_that_model_only() -> None:
    acct = AccountState(windows={"week:opus": {"until": NOW.timestamp() + 3600, "signal": "text"}})
    now = NOW.timestamp()
    opus = windows.blocked(acct, 1, now, model="opus", per_model=True)
    assert opus is not None and opus.window == "week:opus"
    assert windows.blocked(acct, 1, now, model="sonnet", per_model=True) is None
    assert windows.blocked(acct, 1, now, model=None, per_model=True) is not None
    assert windows.blocked(acct, 1, now, model="sonnet", per_model=False) is not None
    # the tool's own report that the opus week is nearly spent bars opus calls only too
    read = AccountState(windows={"week:opus": {"used": 0.97, "read": now, "over": True}})
    assert windows.blocked(read, 1, now, model="opus", per_model=True) is not None
    assert windows.blocked(read, 1, now, model="sonnet", per_model=True) is None


OPUS_SPENT = f"You've hit your Opus limit · resets {claude_reset_in(6)}"


def test_a_call_for_another_model_still_uses_an_account_whose_model_week_is_spent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    pool.add("a", quota=0, limit_text=OPUS_SPENT)
    pool.add("b")
    opus = Wrapper("claude", manager=pool.manager, extra_args=("--model", "opus"))
    first = opus.call("one")
    assert first.success and first.accounts_tried == [1, 2], first.error
    one: Any = _state(pool)["accounts"]
    one = one["1"]
    assert one["status"] == "ready"  # the account itself is not spent
    assert one["windows"]["week:opus"]["until"] > time.time()
    assert one.get("quota_hits") == 1
    switch = [json.loads(x) for x in (pool.home / "rotation.log").read_text().splitlines()]
    moved = [r for r in switch if r["event"] == "switch"][-1]
    assert moved["reason"].startswith("#1 spent its week window for opus (the tool's quota")
    assert moved["window"] == "week:opus"

    pool.backend.set("a", quota=None)  # the simulated account answers its other models
    pool.manager.switch_to(1)
    sonnet = Wrapper("claude", manager=pool.manager, extra_args=("--model", "sonnet"))
    assert sonnet.call("two").account == 1
    assert opus.call("three").account == 2  # skipped without a run
    default = Wrapper("claude", manager=pool.manager)  # no model named: it may be opus
    pool.manager.switch_to(1)
    assert default.call("four").account == 2
    assert [c["account"] for c in pool.backend.calls()] == ["a", "b", "a", "b", "b"]

    explained = _cli(pool, "explain", "1")
    assert explained.returncode == 0, explained.stderr
    assert "so calls for opus skip it (a call naming another model may use it)" in (
        explained.stdout
    )


def _opus_spent_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int = 2) -> SimPool:
    """A claude pool whose every account has its Opus week spent, by real tool runs; the
    simulated accounts answer other models afterwards."""
    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    for i in range(n):
        pool.add(f"o{i}", quota=0, limit_text=OPUS_SPENT)
    opus = Wrapper("claude", manager=pool.manager, extra_args=("--model", "opus"))
    spent = opus.call("spend")
    assert spent.pool_exhausted and spent.accounts_tried == list(range(1, n + 1)), spent.error
    for i in range(n):
        pool.backend.set(f"o{i}", quota=None)
    return pool


def test_an_account_spent_for_one_model_is_shown_usable_with_that_window_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary: str
) -> None:
    from click.testing import CliRunner

    from credrot import cli

    pool = _opus_spent_pool(tmp_path, monkeypatch)

    def run(*args: str) -> str:
        got = CliRunner().invoke(
            cli.cli, ["--tool", "claude", "--home", str(pool.home), *args], catch_exceptions=False
        )
        assert got.exit_code == 0, got.output
        assert canary not in got.output and "Traceback" not in got.output
        return got.output

    listed = run("accounts", "list")
    rows = [line for line in listed.splitlines() if "week:opus" in line]
    assert len(rows) == 2, listed
    until = r"(\d{4}-\d\d-\d\d )?\d\d:\d\d"  # a date when it is not today
    assert all(re.search(rf"\bready \(week:opus spent until {until}", r) for r in rows), listed
    assert "exhausted" not in listed
    as_json = json.loads(run("accounts", "list", "--json"))
    entries = as_json if isinstance(as_json, list) else as_json["accounts"]
    assert [e["usable"] for e in entries] == [True, True]
    assert all(e["model_spent"]["week:opus"].endswith("+00:00") for e in entries)

    stats = run("stats")
    assert "2 accounts, 2 usable" in stats
    assert stats.count("ready (week:opus spent)") == 2, stats
    prom = run("stats", "--prometheus")
    assert 'credrot_account_status{tool="claude",account="1",status="ready"} 1' in prom
    assert 'credrot_account_status{tool="claude",account="1",status="exhausted"} 0' in prom
    assert 'account="1",window="week:opus"' in prom

    top = run("top", "--once")
    assert "2 accounts, 2 usable" in top
    assert top.count("ready (week:opus spent)") == 2, top
    # `accounts next` moves for a call of unknown model (the default may be opus), and its
    # refusal says why in the same terms
    refused_next = CliRunner().invoke(
        cli.cli, ["--tool", "claude", "--home", str(pool.home), "accounts", "next"]
    )
    assert refused_next.exit_code != 0
    assert "no other usable account: all 2 claude accounts are unusable (#1 exhausted" in (
        refused_next.output
    )

    # the views' "usable" is what a call for another model finds; an opus call finds none
    assert pool.manager.pool_status().usable == [1, 2]
    assert pool.manager.pool_status(for_call=True, model="opus").usable == []
    sonnet = Wrapper("claude", manager=pool.manager, extra_args=("--model", "sonnet"))
    assert sonnet.call("hello").success
    refused = Wrapper("claude", manager=pool.manager, extra_args=("--model", "opus")).call("hi")
    assert refused.pool_exhausted and refused.attempts == 0
    assert "all 2 claude accounts are unusable (#1 exhausted until" in str(refused.error)
