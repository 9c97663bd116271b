"""``credrot explain [N]`` and the one-sentence ``reason`` of every audit ``switch`` line:
which window, what signal (the tool's quota text, its own usage report, a cap, a mark by
hand), until when — on a simulated pool, through CliRunner and a real subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from creds import CANARY
from simpool import SimPool

from credrot import cli, reasons, windows
from credrot.kinds import AccountStatus
from credrot.state import AccountState
from credrot.wrapper import Wrapper

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc).timestamp()
CLOCK = r"\d\d:\d\d UTC"
DAY = r"\(the tool's quota message; resets 00:00 UTC\)"
CAP = rf"\(the configured cap, 2/2 calls; resets {CLOCK}\)"


def invoke(*args: str) -> Result:
    result = CliRunner().invoke(cli.cli, list(args), catch_exceptions=False)
    assert CANARY not in result.output
    assert "Traceback" not in result.output
    return result


def audit(home: Path, event: str = "switch") -> list[dict[str, Any]]:
    lines = (home / "rotation.log").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


@pytest.fixture
def used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    """#1 spent by its daily quota text, #2 at its configured cap, #3 active and fine."""
    config = tmp_path / "config.yaml"
    config.write_text("limits:\n  qwen:\n    accounts:\n      2: {caps: {5h: 2}}\n")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    sim = SimPool(tmp_path, monkeypatch)
    sim.add(quota=0)
    sim.add()
    sim.add()
    wrapper = Wrapper(manager=sim.manager)
    assert [wrapper.call(f"q{i}").account for i in range(3)] == [2, 2, 3]
    return sim


# ------------------------------------------------------------------ the audit line
def test_every_switch_line_says_window_signal_and_until_in_one_sentence(used: SimPool) -> None:
    first, second = audit(used.home)
    assert (first["from"], first["to"], first["cause"]) == (1, 2, "quota_exhausted")
    assert re.fullmatch(rf"#1 spent its day window {DAY}", first["reason"])
    assert (first["window"], first["signal"]) == ("day", "text")
    assert first["until"].endswith("T00:00:00+00:00")
    assert (second["from"], second["to"], second["cause"]) == (2, 3, "current unusable")
    assert re.fullmatch(rf"#2 reached the cap of its 5h window {CAP}", second["reason"])
    assert (second["window"], second["signal"]) == ("5h", "cap")
    until = datetime.fromisoformat(second["until"]).timestamp()
    assert time.time() + 4.9 * 3600 < until <= time.time() + 5 * 3600


def test_a_switch_by_hand_says_so(used: SimPool) -> None:
    assert invoke("--home", str(used.home), "accounts", "switch", "1").exit_code == 0
    last = audit(used.home)[-1]
    assert (last["from"], last["to"], last["reason"], last["cause"]) == (
        3,
        1,
        "switched by hand",
        "manual",
    )


# ------------------------------------------------------------------------ explain
def test_explain_says_per_account_why_it_is_skipped_or_used(used: SimPool) -> None:
    result = invoke("--home", str(used.home), "explain")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"qwen pool in {used.home}: 3 accounts, 1 usable, on #3"
    ago = r"\d+s ago"
    assert re.fullmatch(
        rf"#1 spent its day window {DAY}, so calls skip it; the pool left it {ago} for that "
        "reason",
        lines[1],
    ), lines[1]
    assert re.fullmatch(
        rf"#2 reached the cap of its 5h window {CAP}, so calls skip it; the pool left it {ago} "
        "for that reason",
        lines[2],
    ), lines[2]
    assert re.fullmatch(
        rf"#3 is usable and active: the next call starts on it; the pool moved here from #2 "
        rf"{ago}: #2 reached the cap of its 5h window {CAP}",
        lines[3],
    ), lines[3]
    assert len(lines) == 4

    one = invoke("--home", str(used.home), "explain", "2")
    assert one.stdout.splitlines() == [lines[2]]


def test_explain_json(used: SimPool) -> None:
    data = json.loads(invoke("--home", str(used.home), "explain", "--json").stdout)
    assert (data["tool"], data["current"], data["usable"]) == ("qwen", 3, 1)
    first, second, third = data["accounts"]
    assert (first["window"], first["signal"], first["usable"]) == ("day", "text", False)
    assert first["until"].endswith("T00:00:00+00:00")
    assert (second["window"], second["signal"]) == ("5h", "cap")
    assert second["last_switch"]["cause"] == "current unusable"
    assert (third["usable"], third["active"], third["window"]) == (True, True, None)
    assert third["last_switch"]["from"] == 2 and third["last_switch"]["to"] == 3


def test_explain_an_unknown_account_is_one_line_and_exit_1(used: SimPool) -> None:
    result = invoke("--home", str(used.home), "explain", "9")
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"credrot: error: no qwen account #9 in {used.home / 'accounts'}"
    )
    assert invoke("--home", str(used.home), "explain", "zero").exit_code == 2


def test_explain_reads_old_switch_lines_and_marks_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    old = {"time": "2026-12-01T10:00:00Z", "event": "switch", "tool": "qwen", "from": 2}
    with open(sim.home / "rotation.log", "a") as fh:  # a line written before reasons
        fh.write(json.dumps({**old, "to": 1, "reason": "quota_exhausted", "pid": 1}) + "\n")
    until = datetime.now(timezone.utc) + timedelta(hours=3)
    sim.manager.mark(2, "exhausted", until=until, reason="kept for the release")
    lines = invoke("--home", str(sim.home), "explain").stdout.splitlines()
    assert re.fullmatch(
        r"#1 is usable and active: the next call starts on it; the pool moved here from #2 "
        r"\d+d \d+h ago: the active account's quota was spent"
        r"|#1 is usable and active: the next call starts on it; the pool moved here from #2 "
        r"\d+d ago: the active account's quota was spent",
        lines[1],
    ), lines[1]
    assert re.fullmatch(
        rf"#2 spent its quota \(marked by hand; until {CLOCK}\), so calls skip it; the pool "
        r"left it .* ago: the active account's quota was spent",
        lines[2],
    ), lines[2]


def test_explain_in_a_real_process(used: SimPool) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "credrot", "--home", str(used.home), "explain", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(rf"#1 spent its day window {DAY}, so calls skip it; .*\n", done.stdout)
    assert CANARY not in done.stdout + done.stderr
    as_json = subprocess.run(
        [sys.executable, "-m", "credrot", "--home", str(used.home), "explain", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert [a["usable"] for a in json.loads(as_json.stdout)["accounts"]] == [False, False, True]


# ------------------------------------------------------------ the sentences, as a table
def _acct(**fields: Any) -> AccountState:
    acct = AccountState()
    for key, value in fields.items():
        setattr(acct, key, value)
    return acct


HOUR = 3600.0
SENTENCES = [
    (
        _acct(
            status="exhausted",
            until=NOW + HOUR,
            last_outcome="quota_exhausted",
            windows={"5h": {"until": NOW + HOUR, "seen": NOW, "signal": "text"}},
        ),
        windows.NO_LIMITS,
        "#1 spent its 5h window (the tool's quota message; resets 13:00 UTC)",
    ),
    (
        _acct(
            status="exhausted",
            until=NOW + 7 * 24 * HOUR,
            last_outcome="quota_exhausted",
            windows={"week:opus": {"until": NOW + 7 * 24 * HOUR, "signal": "text"}},
        ),
        windows.NO_LIMITS,
        "#1 spent its week window for opus (the tool's quota message; resets 2026-12-10 12:00 UTC)",
    ),
    (
        _acct(windows={"5h": {"used": 0.97, "read": NOW, "resets": NOW + 2 * HOUR, "over": True}}),
        windows.NO_LIMITS,
        "#1's 5h window is at 97% (the tool's own usage report; resets 14:00 UTC)",
    ),
    (
        _acct(windows={"day": {"calls": 40, "since": NOW, "ends": NOW + 12 * HOUR}}),
        windows.Limits(caps={"day": 40}),
        "#1 reached the cap of its day window (the configured cap, 40/40 calls; resets 00:00 UTC)",
    ),
    (
        _acct(status="exhausted", until=NOW + HOUR, last_outcome="ok"),
        windows.NO_LIMITS,
        "#1 spent its quota (marked by hand; until 13:00 UTC)",
    ),
    (
        _acct(status="rate_limited", until=NOW + 60, last_outcome="rate_limited"),
        windows.NO_LIMITS,
        "#1 is rate limited (the tool's message; until 12:01 UTC)",
    ),
    (
        _acct(status="needs_login", last_outcome="auth_failed"),
        windows.NO_LIMITS,
        "#1 needs a new login (the tool refused its credential)",
    ),
    (
        _acct(status="disabled", last_outcome="disabled"),
        windows.NO_LIMITS,
        "#1 is disabled (the tool says the plan is gone; waiting will not bring it back)",
    ),
]


@pytest.mark.parametrize(("acct", "limits", "sentence"), SENTENCES)
def test_why_an_account_is_out(acct: AccountState, limits: windows.Limits, sentence: str) -> None:
    found = reasons.out(acct, 1, NOW, limits)
    assert found is not None and found.sentence == sentence


def test_a_passed_mark_keeps_nothing_out() -> None:
    acct = _acct(
        status="exhausted", until=NOW - 1, windows={"5h": {"until": NOW - 1, "signal": "text"}}
    )
    assert acct.effective_status(NOW) is AccountStatus.READY
    assert reasons.out(acct, 1, NOW) is None
    last = reasons.LastSwitch("5h", 1, 2, "#1 spent its 5h window (...)", NOW - 1)
    assert reasons.explain(1, NOW, last=last) == (
        "#1 is usable again (what kept it out ended 2026-12-03 11:59 UTC); "
        "the pool left it 5h ago: #1 spent its 5h window (...)"
    )
