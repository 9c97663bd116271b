"""OpenAI Codex CLI (``codex``): ``$CODEX_HOME/auth.json`` with JWT tokens."""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from credrot import resets
from credrot.kinds import OutcomeKind, Rule
from credrot.profile import ToolProfile
from credrot.tools.claude import APOS


def _codex_validate(data: object) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    tokens = data.get("tokens")
    if isinstance(tokens, dict):
        for key in ("access_token", "refresh_token"):
            if not isinstance(tokens.get(key), str):
                return f"'tokens.{key}' is missing or not a string"
        return None
    api_key = data.get("OPENAI_API_KEY")
    if isinstance(api_key, str) and api_key:
        return None
    return "neither 'tokens' nor 'OPENAI_API_KEY' is set"


#: Without a JWT ``exp`` on the access token, 0.171.0 refreshes once ``last_refresh`` is
#: this old (seen: 690,500 s old did not refresh, 691,900 s old did).
LAST_REFRESH_MAX_AGE = 8 * 86400.0
_ISO = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?$")


def _jwt_exp(token: object) -> float | None:
    if not isinstance(token, str) or token.count(".") != 2:
        return None
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError, RecursionError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, (int, float)) and not isinstance(exp, bool) and math.isfinite(exp):
        return float(exp)
    return None  # JSON's NaN/Infinity too: an unknown expiry, so a refresh is assumed


def _epoch_of(stamp: object) -> float | None:
    """``2026-12-03T14:02:52.393389367Z`` (RFC 3339, nanoseconds as codex writes them)."""
    m = _ISO.match(stamp.strip()) if isinstance(stamp, str) else None
    if m is None:
        return None
    zone = m.group(3) or "Z"
    try:
        at = datetime.fromisoformat(m.group(1) + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.timestamp() + float("0." + (m.group(2) or "0"))


def _codex_expiry(data: Mapping[str, object]) -> float | None:
    """When the CLI will refresh: the access token's JWT ``exp``; for a token without
    one, ``last_refresh`` + 8 days (the CLI's rule then); None when neither is known,
    so a caller assumes a refresh.

    With an ``exp``, ``last_refresh``'s age is ignored by the CLI, and here too.
    """
    tokens = data.get("tokens")
    if not isinstance(tokens, Mapping):
        return None
    exp = _jwt_exp(tokens.get("access_token"))
    if exp is not None:
        return exp
    refreshed = _epoch_of(data.get("last_refresh"))
    return None if refreshed is None else refreshed + LAST_REFRESH_MAX_AGE


#: What 0.171.0 writes into ``CODEX_HOME`` during a call, kept out of the shared home.
CODEX_PRIVATE = (
    "sessions",
    "archived_sessions",
    "log",
    "history.jsonl",
    "auth.lock",
    "auth.json.lock",
    "thread-writer-locks",
    # snapshots of the shell's environment, taken for the commands the agent runs
    "shell_snapshots",
    # the SQLite files 0.171.0 created in an empty CODEX_HOME, each with -shm and -wal
    *(
        f"{db}.sqlite{suffix}"
        for db in ("state_5", "logs_2", "memories_1", "goals_1", "queue_1", "thread_history_1")
        for suffix in ("", "-shm", "-wal")
    ),
)

_CODEX_RULES = (
    Rule.of(
        OutcomeKind.AUTH_FAILED,
        r"refresh token (?:has expired|was already used|was revoked)",
        r"access token could not be refreshed",
        r"Please log out and sign in again",
        r"\b401 Unauthorized\b",
        r"Provided authentication token is expired",
    ),
    Rule.of(
        OutcomeKind.QUOTA_EXHAUSTED,
        rf"\bYou{APOS}?ve hit your usage limit\b",
        r"usage_limit_reached",
    ),
    Rule.of(
        OutcomeKind.RATE_LIMITED,
        # `ERROR: exceeded retry limit, last status: 429 Too Many Requests, request id: …`
        r"exceeded retry limit, last status: 429\b",
        r"\b429 Too Many Requests\b",
        r"\brate[ -]limit",
        r"too many requests",
    ),
)

#: Codex 0.171.0 retries a 429 itself, honouring the server's ``retry-after``: it prints
#: ``ERROR: Reconnecting... 1/5`` and then nothing for the whole wait (minutes, with a
#: long one). After a dropped connection it prints the same line and goes on within a few
#: seconds (its back-off between reconnects stays under ten). So the run is stopped once
#: it has printed nothing for this long after the line: a rate limit, the next account.
RECONNECT_SILENCE = 20.0
_WAITING_OUT = Rule(
    OutcomeKind.RATE_LIMITED, r"^ERROR: Reconnecting\.\.\. \d+/\d+", silence=RECONNECT_SILENCE
)

CODEX = ToolProfile(
    name="codex",
    executable="codex",
    home_dirname=".codex",
    credential_name="auth.json",
    home_env="CODEX_HOME",
    # Private to each call: the session rollouts (they hold the prompt), its SQLite
    # state and logs, and the locks it leaves beside auth.json.
    call_private=CODEX_PRIVATE,
    # `codex exec` refuses to run outside a git repository without this flag; `-` makes
    # it read the prompt from stdin.
    base_args=("exec", "--skip-git-repo-check"),
    # `--json` prints JSONL events; its `-o` is `--output-last-message FILE`.
    format_flags=(),
    json_switches=("--json", "--experimental-json"),
    tail_args=("-",),
    # `codex login` runs its own OAuth sign-in and writes auth.json into CODEX_HOME.
    login_args=("login",),
    approval_flag="--sandbox",
    validate=_codex_validate,
    secret_keys=("access_token", "refresh_token", "id_token", "OPENAI_API_KEY"),
    expiry=_codex_expiry,
    rules=_CODEX_RULES,
    abort_rules=(_WAITING_OUT,),
    reset_parsers=(resets.codex_try_again,),
    default_reset=resets.after(timedelta(hours=5)),
    install_hint="npm install -g @openai/codex",
    # A refresh resolves a symlink at auth.json and writes temp + rename beside its
    # target: the link survives, the target gets a new inode.
    replaces_symlink=False,
    # 0.171.0 refreshes a token whose exp is within 300 s (seen: 290 s refreshed, 310 s
    # did not); the refresh lease adds its start-up slack on top (pool/refresh.py).
    refresh_margin=300.0,
)
