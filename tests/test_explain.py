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
AGO = r"\d+[smhd](?: \d+[hm])? ago"  # how long ago, however loaded the machine


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
        "asked for by hand",
        "manual",
    )


# ------------------------------------------------------------------------ explain
def test_explain_says_per_account_why_it_is_skipped_or_used(used: SimPool) -> None:
    result = invoke("--home", str(used.home), "explain")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == f"qwen pool in {used.home}: 3 accounts, 1 usable, on #3"
    ago = AGO
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

    one = invoke("--home", str(used.home), "explain", "2").stdout.splitlines()
    assert [re.sub(AGO, "ago", line) for line in one] == [re.sub(AGO, "ago", lines[2])]


def test_explain_json(used: SimPool) -> None:
    data = json.loads(invoke("--home", str(used.home), "explain", "--json").stdout)
    assert (data["tool"], data["current"], data["usable"]) == ("qwen", 3, 1)
    first, second, third = data["accounts"]
    assert (first["window"], first["signal"], first["usable"]) == ("day", "text", False)
    assert first["until"].endswith("T00:00:00+00:00")
    assert (second["window"], second["signal"]) == ("5h", "cap")
    assert second["last_switch"]["cause"] == "current unusable"
    assert (third["usable"], third["active"], third["window"]) == (True, True, None)
    assert third["headroom"] is None and second["headroom"] is None
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


def test_top_and_the_html_report_put_an_old_switch_line_into_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    then = datetime.now(timezone.utc) - timedelta(hours=1)
    old = {"time": f"{then:%Y-%m-%dT%H:%M:%SZ}", "event": "switch", "tool": "qwen", "from": 1}
    with open(sim.home / "rotation.log", "a") as fh:  # a line written before reasons
        fh.write(json.dumps({**old, "to": 2, "reason": "quota_exhausted", "pid": 1}) + "\n")
    words = "the active account's quota was spent"
    top = invoke("--home", str(sim.home), "top", "--once").stdout
    assert re.search(rf"^last switch #1 -> #2 1h(?: \d+m)? ago: {words}$", top, re.M), top
    assert "from #1 " in top and f"({words})" in top  # the row of the account it reached
    assert "quota_exhausted" not in top
    page = invoke("--home", str(sim.home), "report", "--html", "-").stdout
    assert f"switch {words}".replace("'", "&#x27;") in page
    assert "quota_exhausted" not in page


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


@pytest.mark.parametrize(
    ("cause", "before", "invalid", "sentence"),
    [
        ("manual", 1, None, "asked for by hand"),
        ("removed", 2, None, "#2 was removed"),
        ("round-robin", 1, None, "round-robin: each call takes the next account"),
        ("current unusable", None, None, "no account was active; #3 is the first usable one"),
        (
            "current unusable",
            2,
            "file is missing",
            "#2 is not a valid credential (file is missing)",
        ),
        ("current unusable", 2, None, "#2 was already tried by this call"),
        ("a reason of the caller's own", 2, None, "a reason of the caller's own"),
    ],
)
def test_why_the_pool_moved(
    cause: str, before: int | None, invalid: str | None, sentence: str
) -> None:
    found = reasons.switch(cause, before, AccountState(), 3, NOW, invalid=invalid)
    assert found.sentence == sentence


def test_a_damaged_account_file_is_said_when_the_pool_moves_off_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    sim.add()
    sim.manager.slot_path(1).write_text("{}")  # overwritten by hand, behind credrot's back
    assert Wrapper(manager=sim.manager).call("hi").account == 2
    (moved,) = audit(sim.home)
    assert (moved["from"], moved["to"]) == (1, 2)
    assert re.fullmatch(r"#1 is not a valid credential \(.+\)", moved["reason"]), moved["reason"]


def test_explain_on_a_home_without_accounts_says_how_to_add_one(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    result = invoke("--home", str(home), "explain")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"qwen pool in {home}: 0 accounts, 0 usable",
        f"no qwen accounts in {home}; add one with `credrot accounts add`",
    ]
    assert not home.exists()  # explaining creates nothing


@pytest.mark.parametrize(
    ("entries", "caps", "said"),
    [
        ({}, {}, None),
        ({"5h": {"calls": 3, "ends": NOW + HOUR}}, {"5h": 10}, "3/10 calls of its 5h cap"),
        ({"5h": {"calls": 3, "ends": NOW - 1}}, {"5h": 10}, None),  # that period is over
        (
            {"week": {"used": 0.4, "resets": NOW + HOUR}, "5h": {"calls": 1, "ends": NOW + 60}},
            {"5h": 10},
            "its week window at 40% by the tool's own usage report",
        ),
        ({"week": {"used": 0.4, "resets": NOW - 1}}, {}, None),  # a reading past its reset
    ],
)
def test_how_full_a_usable_account_is(
    entries: dict[str, Any], caps: dict[str, int], said: str | None
) -> None:
    acct = _acct(windows=entries)
    assert reasons.headroom(acct, 1, NOW, windows.Limits(caps=caps)) == said


def test_explain_says_how_full_the_active_account_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("limits:\n  qwen:\n    caps: {5h: 3}\n")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    sim = SimPool(tmp_path, monkeypatch)
    sim.add()
    assert Wrapper(manager=sim.manager).call("hi").success
    lines = invoke("--home", str(sim.home), "explain").stdout.splitlines()
    assert lines[1] == (
        "#1 is usable and active: the next call starts on it (1/3 calls of its 5h cap)"
    )
