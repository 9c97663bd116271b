"""Claude Code, Codex and Gemini CLI rotated end to end: each simulator a real subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from creds import CANARY, canary_leaks
from simpool import SimPool

from credrot.kinds import OutcomeKind
from credrot.manager import AccountManager
from credrot.wrapper import Wrapper

TOOLS = ("claude", "codex", "gemini")


@pytest.fixture(params=TOOLS)
def sim(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path, monkeypatch, tool=request.param)


def wrapper(sim: SimPool, **kw: object) -> Wrapper:
    kw.setdefault("backoff", "none")
    return Wrapper(sim.tool, manager=sim.manager, timeout=20, **kw)  # type: ignore[arg-type]


def test_rotation_remembers_each_spent_account(sim: SimPool) -> None:
    sim.add(quota=0, resets_in=3 * 3600)
    sim.add(mode="rate_limit")
    sim.add(mode="auth")
    sim.add()
    w = wrapper(sim, max_rate_limits=0)
    started = datetime.now(timezone.utc)
    first = w.call("review this diff")
    assert first.success, first.error
    assert first.accounts_tried == [1, 2, 3, 4] and first.attempts == 4
    assert "answer from acct4" in first.output
    info = {a.index: a for a in sim.manager.list_accounts()}
    assert [info[i].status for i in (1, 2, 3, 4)] == [
        "exhausted",
        "rate_limited",
        "needs_login",
        "ready",
    ]
    # the reset the tool printed, parsed (tools print minutes; Gemini a duration)
    until = info[1].until
    assert until is not None
    assert abs(until - (started + timedelta(hours=3))) < timedelta(minutes=2)
    # a short rate limit is backed off, not remembered for a day
    assert info[2].until is not None and info[2].until - started < timedelta(minutes=5)
    # remembered: the next call costs one invocation, on the account that works
    second = w.call("again")
    assert second.success and second.attempts == 1 and second.account == 4
    assert [c["account"] for c in sim.backend.calls()].count("acct1") == 1
    # the prompt went through stdin, never argv
    call = sim.backend.calls()[-1]
    assert call["prompt_sha256"] == hashlib.sha256(b"again").hexdigest()
    assert "again" not in call["argv"]
    assert sim.manager.get_stats()["tool"] == sim.tool


def test_all_spent_says_so_without_calling_again(sim: SimPool) -> None:
    sim.add(quota=0)
    sim.add(quota=0)
    w = wrapper(sim)
    result = w.call("hi")
    assert not result.success and result.pool_exhausted
    assert result.error is not None and f"all 2 {sim.tool} accounts are unusable" in result.error
    before = len(sim.backend.calls())
    assert w.call_with_fallback("hi", fallback_message="unavailable") == "unavailable"
    assert len(sim.backend.calls()) == before


def test_refreshed_token_lands_in_its_own_slot(sim: SimPool) -> None:
    sim.add(expired=True)
    sim.add()
    before = sim.token_in_slot(1)
    pointer_target = os.readlink(sim.manager.pointer)
    w = wrapper(sim)
    result = w.call("hi")
    assert result.success and result.account == 1
    after = sim.token_in_slot(1)
    assert after != before and after == sim.backend.latest_token("acct1")
    assert sim.backend.account(sim.names[1])["refreshes"] == 1
    # the shared pointer was never touched by the call
    assert os.readlink(sim.manager.pointer) == pointer_target
    # Claude and Codex rotate refresh tokens: the old copy is dead, the slot's works
    again = w.call("again")
    assert again.success and again.account == 1
    assert sim.backend.account(sim.names[1])["refreshes"] == 1


def _run_by_hand(sim: SimPool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Someone types the tool in a shell, against the shared home and its symlink."""
    env = dict(os.environ)
    if sim.tool == "gemini":  # GEMINI_CLI_HOME holds .gemini
        parent = tmp_path / "gemini-user"
        parent.mkdir()
        (parent / ".gemini").symlink_to(sim.home)
        env["GEMINI_CLI_HOME"] = str(parent)
    else:
        env[sim.manager.profile.home_env or ""] = str(sim.home)
    argv, stdin = sim.manager.profile.invocation("by hand")
    return subprocess.run(
        argv,
        input=(stdin or b"").decode(),
        env=env,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )


def test_a_refresh_by_hand_is_kept_in_the_right_slot(sim: SimPool, tmp_path: Path) -> None:
    sim.add()
    sim.add(expired=True)
    sim.manager.switch_to(2)
    done = _run_by_hand(sim, tmp_path)
    assert done.returncode == 0, done.stderr
    newest = sim.backend.latest_token("acct2")
    pointer = sim.manager.pointer
    if sim.tool == "claude":
        # temp file + rename: the link is now a regular file; slot 2 is stale
        assert not pointer.is_symlink() and sim.token_in_slot(2) != newest
    else:
        # written in place: through the link, straight into slot 2
        assert pointer.is_symlink() and sim.token_in_slot(2) == newest
    sim.manager.switch_to(1)  # moving the pointer adopts a regular file first
    assert sim.token_in_slot(2) == newest and sim.token_in_slot(1) != newest
    assert pointer.is_symlink()
    assert os.readlink(pointer) == f"accounts/{sim.manager.profile.slot_name(1)}"
    result = wrapper(sim).call("after")
    assert result.success and result.account == 1
    sim.manager.switch_to(2)
    assert wrapper(sim).call("and 2").account == 2
    assert sim.backend.account("acct2")["refreshes"] == 1  # the refreshed token works


def test_an_answer_quoting_limits_is_not_a_false_alarm(sim: SimPool) -> None:
    sim.add(
        answer="Handle `You've hit your limit`, 429 Too Many Requests and "
        "`You have exhausted your capacity on this model` gracefully."
    )
    sim.add()
    result = wrapper(sim).call("review")
    assert result.success and result.attempts == 1 and "429" in result.output
    assert sim.manager.get_stats()["switches_total"] == 0


def test_errors_never_rotate(sim: SimPool) -> None:
    sim.add(mode="connection_error")
    sim.add()
    result = wrapper(sim).call("hi")
    assert not result.success and result.attempts == 1
    assert result.outcome is not None and result.outcome.kind is OutcomeKind.ERROR
    assert sim.manager.current() == 1


def test_no_token_in_any_output(sim: SimPool, capfd: pytest.CaptureFixture[str]) -> None:
    sim.add(quota=0)
    sim.add(expired=True, refresh_every=1)
    sim.add(mode="auth")
    w = wrapper(sim)
    results = [w.call("hi"), w.call("hi")]
    sim.backend.set("acct2", quota=0)
    results.append(w.call("hi"))
    for r in results:
        assert CANARY not in repr(r)
    assert CANARY not in repr(w) + repr(w.manager)
    out, err = capfd.readouterr()
    assert CANARY not in out + err
    assert canary_leaks(sim.home) == []
    assert CANARY not in json.dumps(sim.manager.get_stats())
    assert CANARY not in json.dumps([a.as_dict() for a in sim.manager.list_accounts()])


def test_every_surface_finds_the_home_by_the_tools_own_variable(
    sim: SimPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.add()
    if sim.tool == "gemini":
        parent = tmp_path / "gemini-user"
        parent.mkdir()
        (parent / ".gemini").symlink_to(sim.home)
        monkeypatch.setenv("GEMINI_CLI_HOME", str(parent))
        expected = parent / ".gemini"
    else:
        monkeypatch.setenv(sim.manager.profile.home_env or "", str(sim.home))
        expected = sim.home
    assert AccountManager(tool=sim.tool).home == expected
    result = Wrapper(tool=sim.tool).call("hi", timeout=20)
    assert result.success and result.account == 1, result.error
    assert AccountManager(tool=sim.tool).get_stats()["calls"] == 1


def test_large_prompt_through_stdin(sim: SimPool) -> None:
    sim.add()
    prompt = "+" + "x" * 200 + "\n"
    prompt *= 5000  # ~1 MiB, far over one argv string
    result = wrapper(sim).call(prompt)
    assert result.success, result.error
    call = sim.backend.calls()[-1]
    assert call["prompt_sha256"] == hashlib.sha256(prompt.encode()).hexdigest()
    assert all(len(a) < 100 for a in call["argv"])


@pytest.mark.parametrize("sim", ["gemini"], indirect=True)
def test_gemini_asking_on_stdin_is_stopped_at_once(sim: SimPool) -> None:
    sim.backend.configure(device_auth_timeout=30)
    sim.add(mode="refresh_fail", expired=True)
    sim.add()
    started = time.monotonic()
    result = wrapper(sim).call("hi")
    assert time.monotonic() - started < 10
    assert result.success and result.account == 2
    assert {a.index: a.status for a in sim.manager.list_accounts()}[1] == "needs_login"


@pytest.mark.parametrize("sim", ["claude"], indirect=True)
def test_claude_weekly_limit_with_a_date(sim: SimPool) -> None:
    """2.1.332's weekly text names another day: the account waits until then."""
    day = datetime.now(timezone.utc) + timedelta(days=2)
    when = f"{day:%b} {day.day}, 7:49pm (UTC)"
    sim.add(quota=0, limit_text=f"You've hit your weekly limit · resets {when}")
    sim.add()
    result = wrapper(sim).call("hi")
    assert result.success and result.account == 2
    until = {a.index: a.until for a in sim.manager.list_accounts()}[1]
    assert until == datetime(day.year, day.month, day.day, 19, 49, tzinfo=timezone.utc)


@pytest.mark.parametrize("sim", ["claude", "codex"], indirect=True)
def test_json_output_modes_classify_too(sim: SimPool) -> None:
    sim.add(quota=0)
    sim.add()
    extra = ["--output-format", "json"] if sim.tool == "claude" else ["--json"]
    result = wrapper(sim, extra_args=extra).call("hi")
    assert result.success and result.accounts_tried == [1, 2]
    assert "answer from acct2" in result.output
    assert {a.index: a.status for a in sim.manager.list_accounts()}[1] == "exhausted"
