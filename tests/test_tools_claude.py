"""The Claude Code profile: every FACTS.md string classified, its home, credential, argv."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from creds import CANARY

from credrot.classify import classify
from credrot.kinds import MAX_ARG_BYTES, OutcomeKind
from credrot.tools import CLAUDE, get_profile

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

# (text, exit code, kind, reset) — `claude -p` prints its result, errors included, on
# stdout; each text is also checked on stderr.
TABLE: list[tuple[str, int, OutcomeKind, datetime | None]] = [
    # 1.x wording, gone from 2.x: still a quota, but the epoch is not trusted as a reset
    ("Claude AI usage limit reached|1750708800", 1, Q, FIVE_HOURS),
    (
        "You've hit your limit · resets 1pm (Europe/Lisbon)",
        1,
        Q,
        datetime(2026, 11, 29, 13, tzinfo=UTC),
    ),
    (
        "You've hit your session limit · resets 2:50am (Asia/Muscat)",
        1,
        Q,
        datetime(2026, 11, 28, 22, 50, tzinfo=UTC),
    ),
    (
        "Weekly limit reached · resets 10am (Asia/Seoul) · /upgrade to Max or turn on /extra-usage",
        1,
        Q,
        datetime(2026, 11, 29, 1, tzinfo=UTC),
    ),
    # a dated reset that has passed this year (FACTS.md's example is April): the window
    ("resets Apr 23 at 4pm (Europe/Berlin)", 1, Q, FIVE_HOURS),
    (
        "You've hit your limit · resets Dec 1 at 4pm (Europe/Berlin)",
        1,
        Q,
        datetime(2026, 12, 1, 15, tzinfo=UTC),
    ),
    (
        'API Error: 429 {"type":"error","error":{"type":"rate_limit_error","message":'
        '"This request would exceed your account\'s rate limit. Please try again later."}}',
        1,
        R,
        None,
    ),
    ("Failed to authenticate: OAuth session expired and could not be refreshed", 1, A, None),
    (
        'API Error: 401 {"type":"error","error":{"type":"authentication_error","message":'
        '"OAuth token has expired. Please obtain a new token or refresh your existing token."}}',
        1,
        A,
        None,
    ),
    ("Invalid API key · Please run /login", 1, A, None),
    ("API Error: Connection error.", 1, E, None),
    ("Error: Input must be provided either through stdin or as a prompt argument", 1, E, None),
]


@pytest.mark.parametrize(("text", "code", "kind", "reset"), TABLE)
@pytest.mark.parametrize("channel", ["stdout", "stderr"])
def test_every_facts_string(
    text: str, code: int, kind: OutcomeKind, reset: datetime | None, channel: str
) -> None:
    out, err = (text + "\n", "") if channel == "stdout" else ("", text + "\n")
    outcome = classify(CLAUDE, code, out, err, now=NOW)
    assert outcome.kind is kind, outcome
    assert outcome.resets_at == reset
    if kind is not E:
        assert outcome.message and outcome.message in text


@pytest.mark.parametrize("text", [t for t, _, k, _ in TABLE if k is not E])
def test_an_answer_quoting_a_limit_is_a_success(text: str) -> None:
    answer = f"The wrapper handles this message:\n{text}\nso nothing is lost."
    assert classify(CLAUDE, 0, answer, "", now=NOW).kind is OK


def _result(text: str, is_error: bool) -> str:
    return json.dumps(
        {"type": "result", "subtype": "success", "is_error": is_error, "result": text}
    )


def test_json_output_error_results() -> None:
    quota = _result("You've hit your 5-hour limit · resets 7:12pm (UTC)", True)
    for code in (0, 1):
        outcome = classify(CLAUDE, code, quota, "", now=NOW)
        assert outcome.kind is Q
        assert outcome.resets_at == datetime(2026, 11, 28, 19, 12, tzinfo=UTC)
    # is_error false but the result is the CLI's own limit text
    hit = _result("You've hit your limit · resets 1pm (Europe/Lisbon)", False)
    assert classify(CLAUDE, 0, hit, "", now=NOW).kind is Q
    # a real answer that talks about rate limits
    answer = _result("Handle rate_limit_error and 429 with a backoff.", False)
    assert classify(CLAUDE, 0, answer, "", now=NOW).kind is OK
    stream = "\n".join([json.dumps({"type": "system", "subtype": "init"}), answer])
    assert classify(CLAUDE, 0, stream, "", now=NOW).kind is OK


def test_home_and_credential(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert get_profile("claude") is CLAUDE
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert CLAUDE.default_home() == tmp_path / ".claude"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))
    assert CLAUDE.default_home() == tmp_path / "cfg"
    # the pointer keeps the CLI's name; the slots are visible files
    assert CLAUDE.credential_name == ".credentials.json"
    assert CLAUDE.slot_name(3) == "credentials_3.json"
    # a call home: the config dir and HOME both point into the private root
    env: dict[str, str] = {}
    home = CLAUDE.point_at(env, tmp_path / "run")
    assert home == tmp_path / "run" / ".claude"
    assert env == {
        "CLAUDE_CONFIG_DIR": str(home),
        "HOME": str(tmp_path / "run"),
        "CLAUDE_CODE_TMPDIR": str(tmp_path / "run" / "tmp"),
    }
    assert (tmp_path / "run" / "tmp").is_dir()
    assert CLAUDE.replaces_symlink


def _cred(**oauth: object) -> bytes:
    data = {
        "accessToken": f"{CANARY}-a",
        "refreshToken": f"{CANARY}-r",
        "expiresAt": 4_102_444_800_000,
        "scopes": ["user:inference"],
        "subscriptionType": "max",
    }
    data.update(oauth)
    return json.dumps({"claudeAiOauth": data}).encode()


def test_credential_shape() -> None:
    data, why = CLAUDE.parse_credential(_cred())
    assert why is None and data is not None
    assert sorted(CLAUDE.secrets_of(data)) == [f"{CANARY}-a", f"{CANARY}-r"]
    assert CLAUDE.expiry(data) == 4_102_444_800.0
    for bad, reason in [
        (b"[]", "not a JSON object"),
        (b"{}", "'claudeAiOauth' is missing or not an object"),
        (_cred(accessToken=None), "'claudeAiOauth.accessToken' is missing or not a string"),
        (_cred(expiresAt="soon"), "'claudeAiOauth.expiresAt' is missing or not a number"),
    ]:
        assert CLAUDE.parse_credential(bad) == (None, reason)


def test_prompt_goes_through_stdin() -> None:
    prompt = "x" * (MAX_ARG_BYTES + 10)
    argv, stdin = CLAUDE.invocation(prompt)
    assert argv == ["claude", "-p", "--output-format", "text"]
    assert stdin == prompt.encode()
    argv, _ = CLAUDE.invocation("hi", approval="plan", extra=["--model", "opus"])
    assert argv == [
        "claude",
        "-p",
        "--output-format",
        "text",
        "--permission-mode",
        "plan",
        "--model",
        "opus",
    ]


def test_a_call_starting_just_outside_the_cli_refresh_line_takes_the_lease() -> None:
    """Claude Code refreshes inside 300 s of expiry; a call decided at 310 s reaches the
    CLI's own check a start-up later, so credrot already counts it as a refresh (else two
    such calls could both refresh a single-use token without the lease)."""
    from credrot.pool import refresh

    now = time.time()
    for seconds_left, due in ((290, True), (310, True), (329, True), (331, False), (3600, False)):
        oauth = {
            "accessToken": "a",
            "refreshToken": "r",
            "expiresAt": int((now + seconds_left) * 1000),
        }
        assert refresh.due(CLAUDE, {"claudeAiOauth": oauth}, "ok", now) is due, seconds_left
