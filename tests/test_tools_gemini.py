"""The Gemini CLI profile: every FACTS.md string classified, its home, credential, argv."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from creds import CANARY

from credrot.classify import classify
from credrot.kinds import OutcomeKind
from credrot.tools import GEMINI, get_profile

UTC = timezone.utc
NOW = datetime(2026, 11, 28, 15, 30, tzinfo=UTC)
#: 07:30 in Los Angeles: Gemini's daily quota comes back at midnight Pacific.
PACIFIC_MIDNIGHT = datetime(2026, 11, 29, 8, tzinfo=UTC)
Q, R, A, E, OK = (
    OutcomeKind.QUOTA_EXHAUSTED,
    OutcomeKind.RATE_LIMITED,
    OutcomeKind.AUTH_FAILED,
    OutcomeKind.ERROR,
    OutcomeKind.OK,
)

# (stderr, exit code, kind, reset)
TABLE: list[tuple[str, int, OutcomeKind, datetime | None]] = [
    (
        "[API Error: You have exhausted your capacity on this model. Your quota will reset "
        "after 8h44m7s.]",
        1,
        Q,
        NOW + timedelta(hours=8, minutes=44, seconds=7),
    ),
    (
        "You have exhausted your capacity on this model. Your quota will reset after 44m7s.",
        1,
        Q,
        NOW + timedelta(minutes=44, seconds=7),
    ),
    ("You have exhausted your daily quota on this model.", 1, Q, PACIFIC_MIDNIGHT),
    ("Usage limit reached for all Pro models.", 1, Q, PACIFIC_MIDNIGHT),
    (
        "Usage limit reached for all Pro models.\nAccess resets at 11:00 AM GMT+2.",
        1,
        Q,
        datetime(2026, 11, 29, 9, tzinfo=UTC),
    ),
    ("Access resets at 9:00 PM PST.", 1, Q, datetime(2026, 11, 29, 5, tzinfo=UTC)),
    ("[API Error: 429 Too Many Requests]\nPlease wait and try again later.", 1, R, None),
    (
        '[API Error: got status: 429 Too Many Requests. {"error":{"code":429,"status":'
        '"RESOURCE_EXHAUSTED"}}]',
        1,
        R,
        None,
    ),
    ("[API Error: 401 Request had invalid authentication credentials.]", 1, A, None),
    ("Failed to login. Message: invalid_grant", 41, A, None),
    ("Error authenticating: something new", 41, A, None),  # the exit code says auth
    ("No input provided via stdin.", 42, E, None),
    ("Reached max session turns for this session.", 53, E, None),
    ("[API Error: fetch failed]", 1, E, None),
]


@pytest.mark.parametrize(("text", "code", "kind", "reset"), TABLE)
def test_every_facts_string(
    text: str, code: int, kind: OutcomeKind, reset: datetime | None
) -> None:
    outcome = classify(GEMINI, code, "", text + "\n", now=NOW)
    assert outcome.kind is kind, outcome
    assert outcome.resets_at == reset
    # -o json: the error object on stdout
    body = json.dumps({"error": {"type": "Error", "message": text, "code": code}})
    assert classify(GEMINI, code, body, "", now=NOW).kind is kind


@pytest.mark.parametrize("text", [t for t, c, k, _ in TABLE if k is not E and c == 1])
def test_an_answer_quoting_a_limit_is_a_success(text: str) -> None:
    answer = json.dumps({"response": f"The CLI may print: {text}", "stats": {}})
    assert classify(GEMINI, 0, answer, "", now=NOW).kind is OK
    assert classify(GEMINI, 0, f"The CLI may print: {text}", "", now=NOW).kind is OK


def test_the_continue_prompt_stops_the_tool_as_a_login_problem() -> None:
    rule = GEMINI.abort_rules[-1]
    assert rule.kind is A
    assert rule.pattern.search("Token expired.\nDo you want to continue? [Y/n]: ")
    assert not rule.pattern.search("Do you want to continue with the plan?")


def test_home_is_the_parent_of_dot_gemini(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert get_profile("gemini") is GEMINI
    monkeypatch.delenv("GEMINI_CLI_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert GEMINI.default_home() == tmp_path / ".gemini"
    # GEMINI_CLI_HOME replaces the user's home for the CLI: it then uses $it/.gemini
    monkeypatch.setenv("GEMINI_CLI_HOME", str(tmp_path / "gh"))
    assert GEMINI.default_home() == tmp_path / "gh" / ".gemini"
    env = {"HOME": "/home/me"}
    home = GEMINI.point_at(env, tmp_path / "run")
    assert home == tmp_path / "run" / ".gemini"
    assert env == {
        "HOME": "/home/me",
        "GEMINI_CLI_HOME": str(tmp_path / "run"),
        # its error reports (the whole request) stay in the call home
        "TMPDIR": str(tmp_path / "run" / "tmp"),
    }
    assert GEMINI.slot_name(1) == "oauth_creds_1.json"
    assert not GEMINI.replaces_symlink  # written in place: a symlink is followed


def test_credential_shape() -> None:
    cred = {
        "access_token": f"{CANARY}-a",
        "refresh_token": f"{CANARY}-r",
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "token_type": "Bearer",
        "id_token": f"{CANARY}-id",
        "expiry_date": 4_102_444_800_000,
    }
    data, why = GEMINI.parse_credential(json.dumps(cred).encode())
    assert why is None and data is not None
    assert sorted(GEMINI.secrets_of(data)) == sorted([f"{CANARY}-a", f"{CANARY}-r", f"{CANARY}-id"])
    assert GEMINI.expiry(data) == 4_102_444_800.0
    for bad, reason in [
        (
            json.dumps({**cred, "refresh_token": 3}).encode(),
            "'refresh_token' is missing or not a string",
        ),
        (json.dumps({**cred, "expiry_date": "later"}).encode(), "'expiry_date' is not a number"),
        (b"not json", "not valid JSON"),
    ]:
        assert GEMINI.parse_credential(bad) == (None, reason)


def test_prompt_goes_through_stdin_only() -> None:
    argv, stdin = GEMINI.invocation("hello", approval="default")
    assert argv == ["gemini", "-o", "text", "--skip-trust", "--approval-mode", "default"]
    assert stdin == b"hello"
