"""Gemini CLI (``gemini``): ``$GEMINI_CLI_HOME/.gemini/oauth_creds.json``."""

from __future__ import annotations

from datetime import timezone

from credrot import resets
from credrot.kinds import OutcomeKind, Rule
from credrot.profile import ToolProfile, expiry_at, json_validator

_GEMINI_RULES = (
    # exit 41 like a refused login, but it is the home's settings.json that names no auth
    # type (the CLI's first interactive login writes it): no account is to blame.
    Rule.of(OutcomeKind.ERROR, r"Please set an Auth method in your "),
    Rule.of(
        OutcomeKind.AUTH_FAILED,
        r"\[API Error: 401\b",
        # 0.61 prints the API's JSON: `{"error": {"code": 401, ... "UNAUTHENTICATED"}}`
        r"\"code\":\s*401\b",
        r"\bUNAUTHENTICATED\b",
        r"Manual authorization is required",
        r"invalid_grant",
        r"Failed to login",
    ),
    Rule.of(OutcomeKind.QUOTA_EXHAUSTED, r"exhausted your daily quota", window="day"),
    Rule.of(
        OutcomeKind.QUOTA_EXHAUSTED,
        r"exhausted your capacity on this model",
        r"exhausted your daily quota",
        r"Usage limit reached for",
        r"\bAccess resets at\b",
        r"quota will reset after",
    ),
    Rule.of(
        OutcomeKind.RATE_LIMITED,
        r"\[API Error: [^\]]*\b429\b",
        # a bare 429, after the CLI's own ~90 s of retries
        r"Resource has been exhausted",
        r"Please wait and try again later",
        r"Possible quota limitations in place",
        r"RESOURCE_EXHAUSTED",
        r"\brate[ -]limit",
        r"too many requests",
    ),
)

#: A quota with a long reset: the CLI logs this and then sleeps for the whole delay
#: (8 h, say) before its next attempt. Stop it there: the account is spent until then.
GEMINI_RETRY_SLEEP = Rule.of(
    OutcomeKind.QUOTA_EXHAUSTED,
    r"Attempt \d+ failed: You have exhausted your capacity[^\n]*Retrying after \d+ms",
)

#: A bare 429: the CLI logs this and backs off on its own, up to ten attempts per request
#: (over a minute in all) before it gives up. Stop it there: credrot backs off itself,
#: within the caller's budget, and the CLI has no setting in the environment to cut it.
GEMINI_RETRY_BACKOFF = Rule.of(
    OutcomeKind.RATE_LIMITED,
    r"Attempt \d+ failed with status 429\. Retrying with backoff",
)

GEMINI = ToolProfile(
    name="gemini",
    executable="gemini",
    home_dirname=".gemini",
    credential_name="oauth_creds.json",
    home_env="GEMINI_CLI_HOME",
    home_env_is_parent=True,
    # Piped stdin alone makes the CLI non-interactive; `-p` would be appended to it.
    # Without --skip-trust 0.61 exits 55 in every directory not trusted interactively.
    base_args=("-o", "text", "--skip-trust"),
    approval_flag="--approval-mode",
    validate=json_validator(
        strings=("access_token", "refresh_token"), optional_numbers=("expiry_date",)
    ),
    expiry=expiry_at("expiry_date"),
    rules=_GEMINI_RULES,
    abort_rules=(
        GEMINI_RETRY_SLEEP,
        GEMINI_RETRY_BACKOFF,
        # Older builds ask on stdin with expired OAuth: stop at once, it needs a login.
        Rule.of(OutcomeKind.AUTH_FAILED, r"Do you want to continue\? \[Y/n\]"),
    ),
    # Text mode: 41 auth. JSON modes exit with the HTTP status & 255 (401 -> 145).
    exit_codes={41: OutcomeKind.AUTH_FAILED, 145: OutcomeKind.AUTH_FAILED},
    format_flags=("--output-format", "-o"),
    # Chat recordings (`tmp/<project>/chats`) hold the prompt; so do its error reports
    # (`$TMPDIR/gemini-client-error-*.json`, the whole request).
    call_private=("tmp", "history"),
    tmpdir_env=("TMPDIR",),
    json_error_prefixes=("[API Error:", "You have exhausted", "Usage limit reached"),
    reset_parsers=(resets.gemini_reset_after, resets.gemini_resets_at),
    # Gemini's daily quotas reset at midnight Pacific time (Google's documentation).
    default_reset=resets.next_midnight(resets.zone("America/Los_Angeles") or timezone.utc),
    install_hint="npm install -g @google/gemini-cli",
    # Written in place (mode 0600): a symlink there is followed.
    replaces_symlink=False,
)
