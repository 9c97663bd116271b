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
        r"OAuth token (?:has expired|revoked)",
        r"authentication_error",
        r"\bAPI Error: 401\b",
        r"Invalid API key",
        r"Not logged in",
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
        # `You've hit your limit` (older builds) and any other named limit
        rf"\bYou{APOS}?ve hit your (?:[\w-]+ )?limit\b",
        r"\b(?:weekly|session|daily|usage|opus|sonnet) limit reached\b",
        r"\busage_limit_reached\b",
        # the reset clause alone: `resets 7:12pm (UTC)`, `resets Dec 5, 7:49pm (Europe/Berlin)`
        r"\bresets (?:[A-Z][a-z]{2} \d{1,2},? (?:at )?)?\d{1,2}(?::\d{2})?[ap]m "
        r"\([\w+-]+(?:/[\w+-]+)*\)",
    ),
    Rule.of(
        OutcomeKind.RATE_LIMITED,
        r"temporarily limiting requests",
        r"rate_limit_error",
        r"\bAPI Error: 429\b",
        r"\brate[ -]limit",
        r"too many requests",
    ),
)

CLAUDE = ToolProfile(
    name="claude",
    executable="claude",
    home_dirname=".claude",
    credential_name=".credentials.json",
    home_env="CLAUDE_CONFIG_DIR",
    # 2.1.332 reads only CLAUDE_CONFIG_DIR; HOME is pointed at the call home too, so
    # nothing it writes beside its config (`~/.claude.json` in older builds) reaches
    # the user's home.
    set_home=True,
    # Its conversation transcripts hold the prompt (a staged diff, say).
    call_private=("projects", "todos", "shell-snapshots"),
    # Held while it refreshes; the pool must not swap the credential under it.
    tool_lock_name=".oauth_refresh.lock",
    # Otherwise its temp files go to /tmp/claude-<uid>/, shared by every call.
    tmpdir_env=("CLAUDE_CODE_TMPDIR",),
    # Besides the 5-hour and the weekly window, subscriptions meter each model family's
    # week (`week:opus`, `week:sonnet`): a call for another model may still use the account.
    per_model_windows=True,
    base_args=("-p", "--output-format", "text"),
    approval_flag="--permission-mode",
    # A refresh refused with invalid_grant makes 2.1.332 blank both tokens in the file
    # (`""`, expiresAt 0): such a file is not a credential and is never written back.
    validate=json_validator(
        objects=("claudeAiOauth",),
        strings=("claudeAiOauth.accessToken", "claudeAiOauth.refreshToken"),
        numbers=("claudeAiOauth.expiresAt",),
        nonempty=True,
    ),
    secret_keys=("accessToken", "refreshToken"),
    expiry=expiry_at("claudeAiOauth.expiresAt"),
    rules=_CLAUDE_RULES,
    json_error_prefixes=(
        "You've hit your",
        "You\u2019ve hit your",
        "Weekly limit reached",
        "API Error:",
        "Failed to authenticate",
    ),
    # Every error goes to stdout (exit 1); the time is the process's zone, minutes
    # rounded down. `Claude AI usage limit reached|<epoch>` is gone from 2.x.
    reset_parsers=(resets.claude_resets,),
    # Claude's plans meter five-hour sessions (and weeks); without a printed reset,
    # try again after one session rather than after a day.
    default_reset=resets.after(timedelta(hours=5)),
    install_hint="npm install -g @anthropic-ai/claude-code",
    # A refresh writes temp + rename (new inode): a symlink there becomes a file. It
    # refreshes ~5 minutes before expiry (the default margin).
    replaces_symlink=True,
)
