"""The Codex CLI profile: every FACTS.md string classified, its home, credential, argv."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from creds import CANARY

from credrot.classify import classify
from credrot.kinds import OutcomeKind
from credrot.pool import refresh
from credrot.tools import CODEX, get_profile

UTC = timezone.utc
NOW = datetime(2026, 11, 28, 15, 30, tzinfo=UTC)
FIVE_HOURS = NOW + timedelta(hours=5)
Q, R, A, E, OK = (
    OutcomeKind.QUOTA_EXHAUSTED,
    OutcomeKind.RATE_LIMITED,
    OutcomeKind.AUTH_FAILED,
    OutcomeKind.ERROR,
    OutcomeKind.OK,
)
LIMIT = (
    "You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit "
    "https://chatgpt.com/codex/settings/usage to purchase more credits or try again at {}."
)
REFRESH = (
    "Your access token could not be refreshed because your refresh token {}. "
    "Please log out and sign in again."
)

# (stderr, kind, reset) — every failure of `codex exec` exits 1 (FACTS.md)
TABLE: list[tuple[str, OutcomeKind, datetime | None]] = [
    (LIMIT.format("3:51 PM"), Q, datetime(2026, 11, 28, 15, 51, tzinfo=UTC)),
    (LIMIT.format("9:05 AM"), Q, datetime(2026, 11, 29, 9, 5, tzinfo=UTC)),  # tomorrow
    (LIMIT.format("Dec 1st, 2026 3:51 PM"), Q, datetime(2026, 12, 1, 15, 51, tzinfo=UTC)),
    (LIMIT.format("Dec 22nd, 2026 12:00 AM"), Q, datetime(2026, 12, 22, tzinfo=UTC)),
    ("You've hit your usage limit. Try again later.", Q, FIVE_HOURS),
    (
        "You've hit your usage limit. Upgrade to Plus to continue using Codex "
        "(https://openai.com/chatgpt/pricing), or try again later.",
        Q,
        FIVE_HOURS,
    ),
    (REFRESH.format("has expired"), A, None),
    (REFRESH.format("was already used"), A, None),
    (REFRESH.format("was revoked"), A, None),
    ("Please log out and sign in again.", A, None),
    ("exceeded retry limit, last status: 429 Too Many Requests", R, None),
    (
        "stream disconnected before completion: error sending request for url "
        "(https://chatgpt.com/backend-api/codex/responses)",
        E,
        None,
    ),
    ("Not inside a trusted directory and --skip-git-repo-check was not specified.", E, None),
]


@pytest.fixture(autouse=True)
def _utc_machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Codex prints reset times in this machine's zone: make it UTC for the table."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("text", "kind", "reset"), TABLE)
@pytest.mark.parametrize("prefix", ["", "ERROR: "])
def test_every_facts_string(
    text: str, kind: OutcomeKind, reset: datetime | None, prefix: str
) -> None:
    outcome = classify(CODEX, 1, "", f"{prefix}{text}\n", now=NOW)
    assert outcome.kind is kind, outcome
    assert outcome.resets_at == reset
    # --json: the same text inside the error events on stdout
    events = "\n".join(
        json.dumps(e)
        for e in (
            {"type": "thread.started"},
            {"type": "error", "message": text},
            {"type": "turn.failed", "error": {"message": text}},
        )
    )
    assert classify(CODEX, 1, events, "", now=NOW).kind is kind


@pytest.mark.parametrize("text", [t for t, k, _ in TABLE if k is not E])
def test_an_answer_quoting_a_limit_is_a_success(text: str) -> None:
    assert classify(CODEX, 0, f"Seen in the logs: {text}\n", "codex\n", now=NOW).kind is OK


def test_home_and_credential(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert get_profile("codex") is CODEX
    monkeypatch.delenv("CODEX_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert CODEX.default_home() == tmp_path / ".codex"
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "ch"))
    assert CODEX.default_home() == tmp_path / "ch"
    assert CODEX.slot_name(2) == "auth_2.json"
    env = {"HOME": "/home/me"}
    home = CODEX.point_at(env, tmp_path / "run")
    assert home == tmp_path / "run"
    assert env == {"HOME": "/home/me", "CODEX_HOME": str(home)}  # HOME untouched
    assert not CODEX.replaces_symlink  # codex writes auth.json in place


def _jwt(exp: int) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJub25lIn0.{claims}.{CANARY}"


def test_credential_shape() -> None:
    tokens = {
        "id_token": f"{CANARY}-id",
        "access_token": f"{CANARY}-a",
        "refresh_token": f"{CANARY}-r",
        "account_id": "acct-123",
    }
    cred = {
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": None,
        "tokens": tokens,
        "last_refresh": "2026-11-20T10:00:00.123456789Z",
    }
    data, why = CODEX.parse_credential(json.dumps(cred).encode())
    assert why is None and data is not None
    assert sorted(CODEX.secrets_of(data)) == sorted([f"{CANARY}-id", f"{CANARY}-a", f"{CANARY}-r"])
    # not a JWT: the CLI refreshes once last_refresh is 8 days old
    refreshed = datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=timezone.utc).timestamp()
    assert CODEX.expiry(data) == pytest.approx(refreshed + 8 * 86400, abs=1e-3)
    # neither a JWT nor a readable last_refresh: unknown (a caller assumes a refresh)
    for stamp in (None, "yesterday", 17):
        data, _ = CODEX.parse_credential(json.dumps({**cred, "last_refresh": stamp}).encode())
        assert data is not None and CODEX.expiry(data) is None
    # a JWT access token: its exp, whatever last_refresh says
    jwt = {**cred, "tokens": {**tokens, "access_token": _jwt(1_900_000_000)}}
    data, _ = CODEX.parse_credential(json.dumps(jwt).encode())
    assert data is not None and CODEX.expiry(data) == 1_900_000_000.0
    # an API-key login is a valid account too
    key_only = json.dumps({"OPENAI_API_KEY": f"sk-{CANARY}"}).encode()
    data, why = CODEX.parse_credential(key_only)
    assert why is None and data is not None and CODEX.secrets_of(data) == [f"sk-{CANARY}"]
    for bad, reason in [
        (b"{}", "neither 'tokens' nor 'OPENAI_API_KEY' is set"),
        (
            json.dumps({"tokens": {"access_token": "x"}}).encode(),
            "'tokens.refresh_token' is missing or not a string",
        ),
        (b"null", "not a JSON object"),
    ]:
        assert CODEX.parse_credential(bad) == (None, reason)


def test_exec_reads_the_prompt_from_stdin() -> None:
    argv, stdin = CODEX.invocation("review this", approval="read-only", extra=["-m", "o4"])
    assert argv == [
        "codex",
        "exec",
        "--skip-git-repo-check",
        "--sandbox",
        "read-only",
        "-m",
        "o4",
        "-",
    ]
    assert stdin == b"review this"


def test_a_call_starting_just_outside_the_cli_refresh_line_takes_the_lease() -> None:
    """0.171.0 refreshes inside 300 s of exp; a call decided at 310 s reaches the CLI's
    check a start-up later, so credrot already counts it as a refresh."""
    now = time.time()
    for seconds_left, due in ((310, True), (329, True), (331, False), (3600, False)):
        cred = {"tokens": {"access_token": _jwt(int(now + seconds_left)), "refresh_token": "r"}}
        assert refresh.due(CODEX, cred, "ok", now) is due, seconds_left


def test_a_non_finite_exp_is_an_unknown_expiry() -> None:
    for exp in ("NaN", "Infinity", "-Infinity"):
        claims = base64.urlsafe_b64encode(f'{{"exp": {exp}}}'.encode()).decode().rstrip("=")
        token = f"eyJhbGciOiJub25lIn0.{claims}.{CANARY}"
        cred = {"tokens": {"access_token": token, "refresh_token": "r"}}
        assert CODEX.expiry(cred) is None
        assert refresh.due(CODEX, cred, "ok", time.time())
