"""Claude Code (``claude``): ``~/.claude/.credentials.json`` (``CLAUDE_CONFIG_DIR``)."""

from __future__ import annotations

from datetime import timedelta

from credrot import resets
from credrot.kinds import OutcomeKind, Rule
from credrot.profile import ToolProfile, expiry_at, json_validator

APOS = "['\u2019]"  # the CLI prints a typographic apostrophe in some builds

_CLAUDE_RULES = (
    Rule.of(
        OutcomeKind.AUTH_FAILED,
        r"Failed to authenticate",
        r"OAuth session expired",
        r"authentication_error",
        r"OAuth token has expired",
        r"\bAPI Error: 401\b",
        r"Invalid API key",
        r"Please run /login",
    ),
    Rule.of(
        OutcomeKind.QUOTA_EXHAUSTED,
        rf"\bYou{APOS}?ve hit your (?:5-hour|session) limit\b",
        window="5h",
    ),
    Rule.of(
        OutcomeKind.QUOTA_EXHAUSTED,
        rf"\bYou{APOS}?ve hit your weekly limit\b",
        r"\bweekly limit reached\b",
        window="week",
    ),
    Rule.of(
        OutcomeKind.QUOTA_EXHAUSTED,
        rf"\bYou{APOS}?ve hit your opus limit\b",
        r"\bopus limit reached\b",
        window="week:opus",
    ),
    Rule.of(
        OutcomeKind.QUOTA_EXHAUSTED,
        rf"\bYou{APOS}?ve hit your sonnet limit\b",
        r"\bsonnet limit reached\b",
        window="week:sonnet",
    ),
    Rule.of(
        OutcomeKind.QUOTA_EXHAUSTED,
        r"Claude AI usage limit reached",
        rf"\bYou{APOS}?ve hit your (?:\w+ )?limit\b",
        r"\b(?:weekly|session|daily|usage|opus|sonnet) limit reached\b",
        # the reset clause alone, e.g. `resets Apr 23 at 4pm (Europe/Berlin)`
        r"\bresets (?:[A-Z][a-z]{2} \d{1,2} at )?\d{1,2}(?::\d{2})?[ap]m \([\w+-]+(?:/[\w+-]+)*\)",
    ),
    Rule.of(
        OutcomeKind.RATE_LIMITED,
        r"rate_limit_error",
        r"\bAPI Error: 429\b",
        r"\brate[ -]limit",
        r"too many requests",
    ),
)

CLAUDE = ToolProfile(
    call_private=("projects", "todos", "shell-snapshots"),
    name="claude",
    executable="claude",
    home_dirname=".claude",
    credential_name=".credentials.json",
    home_env="CLAUDE_CONFIG_DIR",
    # CLAUDE_CONFIG_DIR is UNVERIFIED in FACTS.md: HOME is pointed at the call home too,
    # so a build that ignores it still reads the call's own copy, never the pool's pointer.
    set_home=True,
    base_args=("-p", "--output-format", "text"),
    approval_flag="--permission-mode",
    validate=json_validator(
        objects=("claudeAiOauth",),
        strings=("claudeAiOauth.accessToken", "claudeAiOauth.refreshToken"),
        numbers=("claudeAiOauth.expiresAt",),
    ),
    secret_keys=("accessToken", "refreshToken"),
    expiry=expiry_at("claudeAiOauth.expiresAt"),
    rules=_CLAUDE_RULES,
    json_error_prefixes=(
        "Claude AI usage limit reached",
        "You've hit your",
        "You\u2019ve hit your",
        "Weekly limit reached",
        "API Error:",
        "Failed to authenticate",
    ),
    reset_parsers=(resets.claude_epoch, resets.claude_resets),
    # Claude's plans meter five-hour sessions (and weeks); without a printed reset,
    # try again after one session rather than after a day.
    default_reset=resets.after(timedelta(hours=5)),
    install_hint="npm install -g @anthropic-ai/claude-code",
    replaces_symlink=True,
)
