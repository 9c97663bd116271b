"""Rotation proven against the genuine Claude Code 2.1.332 (npm) on a loopback mock.

Each test drives the real ``claude`` through credrot's Wrapper on a pool in a temporary
home (``CLAUDE_CONFIG_DIR`` points each call at its private home) and asserts what a
user would notice: which account answered, which the pool remembers as spent and until
when, that a spent account is not called again, where a refreshed token went.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from credrot.kinds import OutcomeKind
from credrot.tools import CLAUDE

from .callers import run_callers
from .genuine import PROMPT, Setup, assert_no_secret, cli_bin, slot_json, status_of
from .mockclaude import MockClaude
from .transcribe import record

pytestmark = pytest.mark.conformance


@pytest.fixture(scope="module")
def claude_bin() -> Path:
    return cli_bin("claude")


@pytest.fixture
def setup(claude_bin: Path, canary: str, tmp_path: Path) -> Iterator[Setup]:
    with MockClaude(token_prefix=canary) as mock:
        yield Setup(claude_bin, mock, CLAUDE, tmp_path)


def _minute(epoch: float) -> datetime:
    return datetime.fromtimestamp(int(epoch) // 60 * 60, timezone.utc)


@pytest.mark.parametrize(("mode", "hours"), [("quota", 3), ("quota_long", 50)])
def test_spent_account_is_skipped_until_its_printed_reset(
    setup: Setup, mode: str, hours: int
) -> None:
    resets = time.time() + hours * 3600
    mock = setup.mock
    manager = setup.pool(
        mock.add_account("spent", mode=mode, resets_at=resets), mock.add_account("spare")
    )
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success, result.error
    assert result.output.strip() == "Mock answer from spare."
    assert result.accounts_tried == [1, 2]
    first = attempts[0].run
    assert first is not None and first.exit_code == 1 and first.stderr == ""
    window = "5-hour" if mode == "quota" else "weekly"
    assert first.stdout.startswith(f"You've hit your {window} limit · resets ")
    record("claude", mode, first, attempts[0].outcome.kind.value)
    info = {a.index: a for a in manager.list_accounts()}
    assert info[1].status == "exhausted"
    # the CLI prints whole minutes, rounded down, in the process's zone (UTC here)
    assert info[1].until == _minute(resets)
    again = wrapper.call(PROMPT)
    assert again.success and again.attempts == 1 and again.account == 2
    assert len(mock.chats("spent")) == 1  # never asked again
    assert_no_secret(mock.secrets(), result, again, first.stdout)


def test_rate_limit_is_backed_off_not_remembered(setup: Setup) -> None:
    mock = setup.mock
    manager = setup.pool(mock.add_account("busy", mode="rate_limit"), mock.add_account("spare"))
    # the CLI's own retries (~3 minutes) cut short with its knob
    wrapper, attempts = setup.wrapper(manager, {"CLAUDE_CODE_MAX_RETRIES": "0"}, max_rate_limits=0)
    result = wrapper.call(PROMPT)
    assert result.success, result.error
    assert [a.outcome.kind for a in attempts] == [OutcomeKind.RATE_LIMITED, OutcomeKind.OK]
    first = attempts[0].run
    assert first is not None
    assert first.stdout.startswith("API Error: Server is temporarily limiting requests")
    record("claude", "rate_limit", first, "rate_limited")
    assert len(mock.chats("busy")) == 1
    info = manager.list_accounts()[0]
    assert info.status == "rate_limited"
    assert info.until is not None
    assert (info.until - datetime.now(timezone.utc)).total_seconds() < 600


def test_revoked_token_parks_the_account_as_needing_login(setup: Setup) -> None:
    mock = setup.mock
    manager = setup.pool(mock.add_account("gone", mode="revoked"), mock.add_account("spare"))
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2
    first = attempts[0].run
    assert first is not None
    assert first.stdout.startswith("Failed to authenticate: OAuth token revoked.")
    record("claude", "revoked", first, "auth_failed")
    assert status_of(manager, 1) == "needs_login"


def test_expired_token_is_refreshed_into_its_own_slot(setup: Setup) -> None:
    mock = setup.mock
    manager = setup.pool(mock.add_account("old", expires_in=-60), mock.add_account("other"))
    other_before = manager.slot_path(2).read_bytes()
    wrapper, _ = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 1, result.error
    acct = mock.account("old")
    assert acct.refreshed == 1
    saved = slot_json(manager, 1)["claudeAiOauth"]
    # the CLI's rename of its private copy, read back into account 1's slot
    assert saved["accessToken"] == acct.access_token
    assert saved["refreshToken"] == acct.refresh_token
    assert manager.slot_path(2).read_bytes() == other_before
    # the next call uses the new token: no second refresh (a spent token is never reused)
    assert wrapper.call(PROMPT).success
    assert acct.refreshed == 1 and not acct.revoked
    assert_no_secret(mock.secrets(), result)


def test_401_refresh_is_kept_even_though_the_call_fails(setup: Setup) -> None:
    """On a 401 the CLI refreshes once and writes the new tokens, then still fails."""
    mock = setup.mock
    manager = setup.pool(mock.add_account("stale"), mock.add_account("spare"))
    mock.account("stale").mode = "unauthorized"
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2
    first = attempts[0].run
    assert first is not None
    assert first.stdout.startswith("Failed to authenticate. API Error: 401 OAuth token has expired")
    record("claude", "unauthorized", first, "auth_failed")
    acct = mock.account("stale")
    assert acct.refreshed >= 1
    # the spent refresh token is not left in the slot: the one the CLI got is
    assert slot_json(manager, 1)["claudeAiOauth"]["refreshToken"] == acct.refresh_token
    assert status_of(manager, 1) == "needs_login"


def test_refused_refresh_blanks_the_file_but_not_the_slot(setup: Setup) -> None:
    mock = setup.mock
    manager = setup.pool(
        mock.add_account("dead", expires_in=-60, refresh="invalid_grant"),
        mock.add_account("spare"),
    )
    before = manager.slot_path(1).read_bytes()
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2
    first = attempts[0].run
    assert first is not None
    assert (
        first.stdout == "Failed to authenticate: OAuth session expired and could not be refreshed\n"
    )
    record("claude", "refresh_fail", first, "auth_failed")
    assert status_of(manager, 1) == "needs_login"
    # 2.1.332 writes "" tokens into its file; credrot does not copy that over the slot
    assert manager.slot_path(1).read_bytes() == before


# --- parallel callers --------------------------------------------------------------------
# Several processes each make one credrot call on a pool whose access tokens have expired.
# Claude's refresh tokens are single-use (the mock refuses a spent one and revokes the
# account's family, as the provider does), and each call runs in its own call home, where
# the CLI's own refresh lock cannot see the others: only credrot's refresh lease keeps
# two of them from refreshing one account at once.


def test_parallel_callers_spend_each_refresh_token_once(setup: Setup) -> None:
    mock = setup.mock
    names = ("left", "right")
    manager = setup.pool(*(mock.add_account(name, expires_in=-60) for name in names))
    results = run_callers(setup, 5)
    assert all(r["success"] for r in results), results
    assert {r["output"].strip() for r in results} <= {f"Mock answer from {n}." for n in names}
    for name in names:
        acct = mock.account(name)
        assert not acct.revoked, f"{name}: a spent refresh token was presented"
        assert acct.refreshed <= 1, f"{name} refreshed {acct.refreshed} times"
    assert sum(mock.account(n).refreshed for n in names) >= 1
    assert not [h for h in mock.refreshes() if h.status != 200]
    for index, name in enumerate(names, start=1):
        acct = mock.account(name)
        if acct.refreshed:
            saved = slot_json(manager, index)["claudeAiOauth"]
            assert saved["refreshToken"] == acct.refresh_token
    assert_no_secret(mock.secrets(), *(json.dumps(r) for r in results))
