"""Parallel callers on the genuine Claude Code 2.1.332 with single-use refresh tokens.

Several processes each make one credrot call on the same pool whose access tokens have
expired. Claude's refresh tokens are single-use (the mock refuses a spent one and
revokes the account's family, as the provider does), and each call runs in its own
call home, where the CLI's own refresh lock cannot see the others: only credrot's
refresh lease keeps two of them from refreshing one account at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from credrot.tools import CLAUDE

from .callers import run_callers
from .genuine import Setup, assert_no_secret, cli_bin, slot_json
from .mockclaude import MockClaude

pytestmark = pytest.mark.conformance


@pytest.fixture(scope="module")
def claude_bin() -> Path:
    return cli_bin("claude")


@pytest.fixture
def setup(claude_bin: Path, canary: str, tmp_path: Path) -> Iterator[Setup]:
    with MockClaude(token_prefix=canary) as mock:
        yield Setup(claude_bin, mock, CLAUDE, tmp_path)


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
