"""Rotation proven against the genuine Gemini CLI 0.61.0 (npm) on a loopback mock.

Each test drives the real ``gemini`` through credrot's Wrapper on a pool in a temporary
home (``GEMINI_CLI_HOME`` points each call at its private home, ``--skip-trust`` lets it
run in the never-trusted project directory) and asserts what a user would notice: which
account answered, which the pool remembers as spent and until when, that a spent
account is not called again, that the CLI is never left to sleep out a long reset, and
where a refreshed token went.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from credrot.kinds import OutcomeKind
from credrot.manager import AccountManager
from credrot.process import RunResult
from credrot.tools import GEMINI

from .genuine import PROMPT, Setup, assert_no_secret, cli_bin, slot_json, status_of
from .mockgemini import MockGemini
from .transcribe import record

pytestmark = pytest.mark.conformance

#: What a user who logged in once has in ``~/.gemini/settings.json``, and no telemetry.
SETTINGS = {
    "security": {"auth": {"selectedType": "oauth-personal"}},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"enableAutoUpdate": False},
}
PACIFIC = ZoneInfo("America/Los_Angeles")
#: The reset a spent capacity quota names (8h44m7s, as recorded).
LONG_RESET = 8 * 3600 + 44 * 60 + 7


@pytest.fixture(scope="module")
def gemini_bin() -> Path:
    return cli_bin("gemini")


@pytest.fixture
def setup(gemini_bin: Path, canary: str, tmp_path: Path) -> Iterator[Setup]:
    with MockGemini(token_prefix=canary) as mock:
        yield Setup(gemini_bin, mock, GEMINI, tmp_path)


def _pool(setup: Setup, *credentials: dict[str, Any]) -> AccountManager:
    setup.pool_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (setup.pool_home / "settings.json").write_text(json.dumps(SETTINGS, indent=2))
    return setup.pool(*credentials)


def _kept(run: RunResult) -> RunResult:
    """What a transcript keeps of a run: the CLI's own lines, without the stack traces and
    object dumps it prints after them (machine paths and request headers)."""
    lines = [
        line
        for line in run.stderr.splitlines()
        if line.strip() and not line[:1].isspace() and line.strip() not in ("{", "}")
    ]
    return replace(run, stderr="".join(f"{line}\n" for line in lines))


def _asked(mock: MockGemini, name: str) -> int:
    """Model requests an account received (the router's and the chat's)."""
    return len(mock.api_hits("router", name)) + len(mock.api_hits("chat", name))


def test_an_answer_comes_back_from_the_untrusted_project(setup: Setup) -> None:
    mock = setup.mock
    manager = _pool(setup, mock.add_account("first"))
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success, result.error
    assert result.output == "Mock answer from first.\n"
    first = attempts[0].run
    assert first is not None and first.exit_code == 0
    record("gemini", "ok", _kept(first), attempts[0].outcome.kind.value)
    # its chat recording (the prompt) stayed in the call's private home
    assert not list(setup.pool_home.glob("tmp/*/chats/*"))
    assert [PROMPT in h.prompt for h in mock.api_hits("chat")] == [True]


def test_without_skip_trust_the_cli_refuses_and_nothing_rotates(setup: Setup) -> None:
    mock = setup.mock
    _pool(setup, mock.add_account("first"), mock.add_account("second"))
    untrusting = replace(GEMINI, base_args=("-o", "text"))
    manager = AccountManager(home=setup.pool_home, tool=untrusting)
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert not result.success and result.attempts == 1
    first = attempts[0].run
    assert first is not None and first.exit_code == 55
    assert first.stderr.startswith("Gemini CLI is not running in a trusted directory.")
    record("gemini", "untrusted", _kept(first), attempts[0].outcome.kind.value)
    assert attempts[0].outcome.kind is OutcomeKind.ERROR
    # not the account's fault: neither is marked, the pool did not move
    assert status_of(manager, 1) == status_of(manager, 2) == "ready"
    assert manager.current() == 1
    assert _asked(mock, "first") == 0


def test_a_home_without_a_login_setting_is_an_error_not_a_bad_account(setup: Setup) -> None:
    mock = setup.mock
    manager = setup.pool(mock.add_account("first"), mock.add_account("second"))
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert not result.success and result.attempts == 1
    first = attempts[0].run
    assert first is not None and first.exit_code == 41
    assert first.stderr.startswith("Please set an Auth method in your ")
    assert "settings.json" in first.stderr
    record("gemini", "no_auth_setting", _kept(first), attempts[0].outcome.kind.value)
    assert attempts[0].outcome.kind is OutcomeKind.ERROR
    # the exit code of a refused login, but neither account is parked for a login
    assert status_of(manager, 1) == status_of(manager, 2) == "ready"
    assert mock.connects == []


def test_spent_account_is_stopped_not_slept_and_skipped_until_its_reset(setup: Setup) -> None:
    mock = setup.mock
    resets = time.time() + LONG_RESET
    manager = _pool(
        setup, mock.add_account("spent", mode="quota", resets_at=resets), mock.add_account("spare")
    )
    wrapper, attempts = setup.wrapper(manager, timeout=90.0)
    result = wrapper.call(PROMPT)
    assert result.success, result.error
    assert result.output.strip() == "Mock answer from spare."
    assert result.accounts_tried == [1, 2]
    first = attempts[0].run
    assert first is not None
    # the CLI said it would sleep the whole reset; credrot stopped it there
    assert first.aborted is not None and not first.timed_out
    assert first.duration < 60
    assert "Attempt 1 failed: You have exhausted your capacity on this model. Your quota " in (
        first.stderr
    )
    assert "Retrying after " in first.stderr
    record("gemini", "quota_long", _kept(first), attempts[0].outcome.kind.value)
    info = {a.index: a for a in manager.list_accounts()}
    assert info[1].status == "exhausted"
    assert info[1].until is not None
    # the reset the message named (whole seconds from the CLI's request), counted from
    # when credrot read it: the minute around it, however loaded the machine
    named = datetime.fromtimestamp(resets, timezone.utc)
    assert abs(info[1].until - named) < timedelta(seconds=60)
    asked = _asked(mock, "spent")
    again = wrapper.call(PROMPT)
    assert again.success and again.attempts == 1 and again.account == 2
    assert _asked(mock, "spent") == asked == 1  # never asked again
    assert_no_secret(mock.secrets(), result, again)


def test_daily_quota_waits_for_midnight_pacific(setup: Setup) -> None:
    mock = setup.mock
    manager = _pool(setup, mock.add_account("daily", mode="daily"), mock.add_account("spare"))
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2, result.error
    first = attempts[0].run
    assert first is not None and first.exit_code == 1 and first.stdout == ""
    assert "TerminalQuotaError: You have exhausted your daily quota on this model." in (
        first.stderr
    )
    record("gemini", "daily", _kept(first), attempts[0].outcome.kind.value)
    assert attempts[0].outcome.window == "day"
    info = manager.list_accounts()[0]
    assert info.status == "exhausted" and info.until is not None
    until = info.until.astimezone(PACIFIC)
    assert (until.hour, until.minute) == (0, 0)
    assert timedelta(0) < info.until - datetime.now(timezone.utc) <= timedelta(hours=24)


def test_rate_limit_is_backed_off_not_remembered(setup: Setup) -> None:
    mock = setup.mock
    manager = _pool(setup, mock.add_account("busy", mode="rate_limit"), mock.add_account("spare"))
    wrapper, attempts = setup.wrapper(manager, max_rate_limits=0)
    result = wrapper.call(PROMPT)
    assert result.success, result.error
    assert [a.outcome.kind for a in attempts] == [OutcomeKind.RATE_LIMITED, OutcomeKind.OK]
    first = attempts[0].run
    assert first is not None
    # the CLI's own backoff (ten attempts, over a minute) is cut at its first retry
    assert first.aborted is not None and first.duration < 60
    assert "Attempt 1 failed with status 429. Retrying with backoff..." in first.stderr
    assert "Resource has been exhausted (e.g. check quota)." in first.stderr
    record("gemini", "rate_limit", _kept(first), "rate_limited")
    assert _asked(mock, "busy") == 1
    info = manager.list_accounts()[0]
    assert info.status == "rate_limited"
    assert info.until is not None
    assert (info.until - datetime.now(timezone.utc)).total_seconds() < 600


def test_json_mode_errors_on_stderr_with_the_http_status_as_exit_code(setup: Setup) -> None:
    """``-o json``: a 401 exits 145 and a 429 exits 173 (the status & 255), the error on
    stderr; credrot reads them as in text mode and returns the answer's JSON."""
    mock = setup.mock
    _pool(
        setup,
        mock.add_account("stale", mode="unauthorized"),
        mock.add_account("daily", mode="daily"),
        mock.add_account("spare"),
    )
    json_gemini = replace(GEMINI, base_args=("-o", "json", "--skip-trust"))
    manager = AccountManager(home=setup.pool_home, tool=json_gemini)
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 3, result.error
    assert json.loads(result.output)["response"] == "Mock answer from spare."
    runs = [a.run for a in attempts]
    assert [r.exit_code for r in runs if r is not None] == [145, 173, 0]
    assert [a.outcome.kind for a in attempts] == [
        OutcomeKind.AUTH_FAILED,
        OutcomeKind.QUOTA_EXHAUSTED,
        OutcomeKind.OK,
    ]
    assert all(r is not None and r.stdout == "" for r in runs[:2])
    assert [status_of(manager, n) for n in (1, 2)] == ["needs_login", "exhausted"]


def test_revoked_login_parks_the_account_as_needing_login(setup: Setup) -> None:
    mock = setup.mock
    manager = _pool(setup, mock.add_account("gone", mode="revoked"), mock.add_account("spare"))
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2, result.error
    first = attempts[0].run
    assert first is not None and first.exit_code == 41
    assert "Manual authorization is required but the current session is non-interactive." in (
        first.stderr
    )
    record("gemini", "revoked", _kept(first), attempts[0].outcome.kind.value)
    assert status_of(manager, 1) == "needs_login"
    assert _asked(mock, "gone") == 0


def test_401_from_the_api_is_an_auth_failure(setup: Setup) -> None:
    mock = setup.mock
    manager = _pool(
        setup, mock.add_account("stale", mode="unauthorized"), mock.add_account("spare")
    )
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2, result.error
    first = attempts[0].run
    assert first is not None and first.exit_code == 1
    assert "Error when talking to Gemini API" in first.stderr
    assert '"code": 401' in first.stderr and "UNAUTHENTICATED" in first.stderr
    record("gemini", "unauthorized", _kept(first), attempts[0].outcome.kind.value)
    assert attempts[0].outcome.kind is OutcomeKind.AUTH_FAILED
    assert status_of(manager, 1) == "needs_login"
    assert_no_secret(mock.secrets(), result)


def test_expired_token_is_refreshed_into_its_own_slot(setup: Setup) -> None:
    mock = setup.mock
    manager = _pool(setup, mock.add_account("old", expires_in=-60), mock.add_account("other"))
    other_before = manager.slot_path(2).read_bytes()
    wrapper, _attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 1, result.error
    acct = mock.account("old")
    assert acct.refreshed == 1
    saved = slot_json(manager, 1)
    # written in place by the CLI in its private copy, read back into account 1's slot;
    # Google keeps the refresh token, and so does the file
    assert saved["access_token"] == acct.access_token
    assert saved["refresh_token"] == acct.refresh_token
    assert saved["expiry_date"] > (time.time() + 3000) * 1000
    assert manager.slot_path(2).read_bytes() == other_before
    # the next call uses the new token: no second refresh
    assert wrapper.call(PROMPT).success
    assert acct.refreshed == 1
    assert_no_secret(mock.secrets(), result)
