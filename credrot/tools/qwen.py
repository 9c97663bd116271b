"""Qwen Code (``qwen``): OAuth credential in ``~/.qwen/oauth_creds.json`` (FACTS.md).

The Qwen OAuth free tier ended on 2026-04-15; this profile drives the OAuth flow of the
0.12.0 line. API-key plans (Alibaba Cloud Coding Plan) are ``env`` accounts.
"""

from __future__ import annotations

from credrot.kinds import OutcomeKind, Rule
from credrot.profile import ToolProfile, expiry_at, json_validator
from credrot.resets import next_utc_midnight

_QWEN_RULES = (
    Rule.of(
        OutcomeKind.DISABLED,
        r"free tier (?:has been|was) discontinued",
    ),
    Rule.of(
        OutcomeKind.AUTH_FAILED,
        r"Refresh token expired or invalid",
        r"Qwen OAuth credentials expired",
        r"Failed to obtain valid Qwen access token",
        r"Qwen OAuth Device Authorization",
        r"\[API Error: 401\b",
        r"please use '?/auth'? to re-?authenticate",
    ),
    # the Coding Plan's three quotas (FACTS.md)
    Rule.of(OutcomeKind.QUOTA_EXHAUSTED, r"\bhour allocated quota exceeded", window="5h"),
    Rule.of(OutcomeKind.QUOTA_EXHAUSTED, r"\bweek allocated quota exceeded", window="week"),
    Rule.of(OutcomeKind.QUOTA_EXHAUSTED, r"\bmonth allocated quota exceeded", window="month"),
    Rule.of(OutcomeKind.QUOTA_EXHAUSTED, r"free daily quota has been reached", window="day"),
    Rule.of(
        OutcomeKind.QUOTA_EXHAUSTED,
        r"Qwen (?:API|OAuth) quota exceeded",
        r"quota has been exhausted",
        r"free daily quota has been reached",
        r"Qwen OAuth free tier quota exceeded",
        r"insufficient_quota",
        r"Free allocated quota exceeded",
    ),
    Rule.of(
        OutcomeKind.RATE_LIMITED,
        r"\[API Error: 429\b",
        r"Possible quota limitations in place",
        r"requests throttling triggered",
        r"\bthrottling\b",
        r"\brate[ -]limit",
        r"too many requests",
    ),
)

QWEN = ToolProfile(
    name="qwen",
    executable="qwen",
    home_dirname=".qwen",
    credential_name="oauth_creds.json",
    home_env="QWEN_HOME",
    # Newer builds read QWEN_HOME; 0.12.0, the last release that serves qwen-oauth
    # headless, reads only HOME (proven by tests/conformance): point both at the call home.
    set_home=True,
    # Its chat recording would keep every wrapped prompt (a staged diff, say).
    call_private=("projects", "debug", "tmp"),
    tool_lock_name="oauth_creds.lock",
    # It refreshes when the access token has under 30 s left (FACTS.md).
    refresh_margin=30.0,
    # It starts its OAuth device flow when it has no credential and is told to use qwen-oauth.
    login_args=("--auth-type", "qwen-oauth"),
    base_args=("--auth-type", "qwen-oauth", "--output-format", "text"),
    approval_flag="--approval-mode",
    default_approval="plan",
    validate=json_validator(
        strings=("access_token", "refresh_token", "token_type"), numbers=("expiry_date",)
    ),
    expiry=expiry_at("expiry_date"),
    rules=_QWEN_RULES,
    abort_rules=(Rule.of(OutcomeKind.AUTH_FAILED, r"Qwen OAuth Device Authorization"),),
    # 0.12.0 draws the device-authorization box on stderr (the recorded transcript); an
    # answer on stdout that quotes it is still an answer.
    abort_streams=("stderr",),
    exit_codes={41: OutcomeKind.AUTH_FAILED},
    # `-o/--output-format text|json|stream-json`: errors inside an exit-0 answer are
    # looked for only in the json modes.
    format_flags=("--output-format", "-o"),
    json_error_prefixes=(
        "[API Error:",
        "Qwen OAuth quota exceeded",
        "Qwen API quota exceeded",
        "Qwen OAuth free tier",
        "Qwen OAuth credentials expired",
        "Refresh token expired or invalid",
        "Failed to obtain valid Qwen access token",
    ),
    default_reset=next_utc_midnight,
    install_hint="npm install -g @qwen-code/qwen-code",
    replaces_symlink=True,
)
