"""The classifier, table-tested against what Qwen Code really prints (FACTS.md)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from credrot.classify import classify, parse_retry_after
from credrot.kinds import OutcomeKind
from credrot.tools import QWEN

NOW = datetime(2026, 11, 28, 15, 30, tzinfo=timezone.utc)
MIDNIGHT = datetime(2026, 11, 29, tzinfo=timezone.utc)

UPSELL = (
    "To continue using Qwen Code, consider upgrading or switching to an API key "
    "from Alibaba Cloud Model Studio."
)
QUOTA_BLOCK = "Qwen OAuth quota exceeded: Your free daily quota has been reached.\n" + UPSELL + "\n"
REAL_QUOTA_STDERR = (
    QUOTA_BLOCK * 3
    + "An unexpected critical error occurred:\nError: quota\n    at run (file:///x/cli.js:1:1)\n"
)

# (stderr, exit code, expected kind) — every Qwen string in FACTS.md, as the CLI prints it.
ERROR_TABLE: list[tuple[str, int, OutcomeKind]] = [
    (
        "Qwen API quota exceeded: Your Qwen API quota has been exhausted. "
        "Please wait for your quota to reset.",
        1,
        OutcomeKind.QUOTA_EXHAUSTED,
    ),
    (
        "Qwen OAuth quota exceeded: Your free daily quota has been reached.",
        1,
        OutcomeKind.QUOTA_EXHAUSTED,
    ),
    ("Qwen OAuth free tier quota exceeded.", 1, OutcomeKind.QUOTA_EXHAUSTED),
    (REAL_QUOTA_STDERR, 1, OutcomeKind.QUOTA_EXHAUSTED),
    (
        '[API Error: 429 {"error":{"code":"insufficient_quota","message":'
        '"Free allocated quota exceeded."}}]',
        1,
        OutcomeKind.QUOTA_EXHAUSTED,
    ),
    (
        "[API Error: 429 Requests rate limit exceeded, please try again later.]\n"
        "Possible quota limitations in place or slow response times detected. "
        "Please wait and try again later.",
        1,
        OutcomeKind.RATE_LIMITED,
    ),
    (
        "[API Error: 503 upstream overloaded]\nPossible quota limitations in place or slow "
        "response times detected. Please wait and try again later.",
        1,
        OutcomeKind.RATE_LIMITED,
    ),
    ("Error: requests throttling triggered", 1, OutcomeKind.RATE_LIMITED),
    ("Error: throttling", 1, OutcomeKind.RATE_LIMITED),
    ("Error: rate limit reached for requests", 1, OutcomeKind.RATE_LIMITED),
    ("Error: Too Many Requests", 1, OutcomeKind.RATE_LIMITED),
    (
        "Refresh token expired or invalid. Please use '/auth' to re-authenticate.",
        1,
        OutcomeKind.AUTH_FAILED,
    ),
    (
        "Qwen OAuth credentials expired. Please use /auth to re-authenticate with qwen-oauth.",
        1,
        OutcomeKind.AUTH_FAILED,
    ),
    (
        "Failed to obtain valid Qwen access token. Please re-authenticate.",
        1,
        OutcomeKind.AUTH_FAILED,
    ),
    ("[API Error: 401 Incorrect API key provided.]", 1, OutcomeKind.AUTH_FAILED),
    ("something went wrong", 41, OutcomeKind.AUTH_FAILED),
    ("Qwen OAuth free tier has been discontinued as of 2026-04-15.", 1, OutcomeKind.DISABLED),
    (
        "Qwen OAuth free tier was discontinued on 2026-04-15. Run /auth to switch to another "
        "authentication method.",
        1,
        OutcomeKind.DISABLED,
    ),
    ("[API Error: Connection error.]", 1, OutcomeKind.ERROR),
    ("Error: invalid option --frobnicate", 42, OutcomeKind.ERROR),
    ("config broken", 52, OutcomeKind.ERROR),
    ("Reached max session turns", 53, OutcomeKind.ERROR),
    ("", 130, OutcomeKind.ERROR),
]


@pytest.mark.parametrize(("stderr", "code", "kind"), ERROR_TABLE)
def test_tool_error_output_is_classified(stderr: str, code: int, kind: OutcomeKind) -> None:
    outcome = classify(QWEN, code, "", stderr, now=NOW)
    assert outcome.kind is kind
    assert outcome.rotates == (
        kind in (OutcomeKind.QUOTA_EXHAUSTED, OutcomeKind.AUTH_FAILED, OutcomeKind.DISABLED)
    )


def test_device_authorization_banner_is_an_auth_failure() -> None:
    banner = (
        "╭──────────────────────────────────╮\n"
        "│ Qwen OAuth Device Authorization  │\n"
        "│ https://chat.qwen.ai/authorize?user_code=ABCD-1234 │\n"
    )
    assert classify(QWEN, None, banner, "", now=NOW).kind is OutcomeKind.AUTH_FAILED
    assert any(rule.pattern.search(banner) for rule in QWEN.abort_rules)


def test_quota_resets_at_next_utc_midnight() -> None:
    outcome = classify(QWEN, 1, "", REAL_QUOTA_STDERR, now=NOW)
    assert outcome.resets_at == MIDNIGHT
    assert outcome.message == "Qwen OAuth quota exceeded: Your free daily quota has been reached."


@pytest.mark.parametrize(
    "answer",
    [
        "The handler returns HTTP 429 when the rate limit is hit.",
        "Consider what happens when the quota exceeded error fires: "
        "Qwen OAuth quota exceeded: Your free daily quota has been reached.",
        "[API Error: 401] is what the client shows; handle it.",
        "Too many requests are retried with throttling.",
        "The free tier was discontinued in April.",
    ],
)
def test_a_successful_answer_that_talks_about_errors_is_ok(answer: str) -> None:
    """The original rotated on these; an answer is never searched for error words."""
    assert classify(QWEN, 0, answer, "", now=NOW).kind is OutcomeKind.OK


def test_stderr_warnings_on_a_zero_exit_do_not_rotate() -> None:
    outcome = classify(QWEN, 0, "fine", "warning: rate limit close", now=NOW)
    assert outcome.kind is OutcomeKind.OK


@pytest.mark.parametrize(
    ("result_text", "kind"),
    [
        (
            "Qwen OAuth quota exceeded: Your free daily quota has been reached.",
            OutcomeKind.QUOTA_EXHAUSTED,
        ),
        ("[API Error: 401 invalid access token or token expired]", OutcomeKind.AUTH_FAILED),
        (
            "[API Error: 429 Requests rate limit exceeded, please try again later.]",
            OutcomeKind.RATE_LIMITED,
        ),
        ("The code is fine. It mentions a 429 rate limit once.", OutcomeKind.OK),
    ],
)
def test_json_mode_result_with_exit_zero(result_text: str, kind: OutcomeKind) -> None:
    """In json modes the CLI exits 0 on a quota error, the text inside ``result``."""
    import json

    stdout = json.dumps(
        {"type": "result", "subtype": "success", "is_error": False, "result": result_text}
    )
    assert classify(QWEN, 0, stdout, "", now=NOW).kind is kind
    stream = "\n".join([json.dumps({"type": "system", "subtype": "init"}), stdout])
    assert classify(QWEN, 0, stream, "", now=NOW).kind is kind


def test_json_is_error_flag_is_honoured() -> None:
    import json

    stdout = json.dumps({"type": "result", "is_error": True, "result": "boom"})
    assert classify(QWEN, 0, stdout, "", now=NOW).kind is OutcomeKind.ERROR


def test_error_message_names_the_exit_code_and_last_line() -> None:
    outcome = classify(QWEN, 1, "", "[API Error: Connection error.]\n", now=NOW)
    assert "exit code 1" in outcome.message
    assert "Connection error" in outcome.message
    stopped = classify(QWEN, None, "", "", now=NOW)
    assert "signal" in stopped.message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("Please retry after 30 seconds", 30.0),
        ("try again in 2 minutes", 120.0),
        ("retry in 500ms", 0.5),
        ("Please wait and try again later.", None),
    ],
)
def test_retry_after_parsing(text: str, seconds: float | None) -> None:
    assert parse_retry_after(text) == seconds
