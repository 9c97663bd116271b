"""OpenAI Codex CLI (``codex``): ``$CODEX_HOME/auth.json`` with JWT tokens."""

from __future__ import annotations

import base64
import json
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


#: Codex refreshes its tokens when ``last_refresh`` is older than this.
CODEX_REFRESH_INTERVAL = timedelta(days=8)


def _codex_expiry(data: Mapping[str, object]) -> float | None:
    """The access token's ``exp`` (a JWT), else when Codex will refresh it by itself."""
    tokens = data.get("tokens")
    if isinstance(tokens, Mapping):
        access = tokens.get("access_token")
        if isinstance(access, str) and access.count(".") == 2:
            try:
                payload = access.split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
                exp = claims.get("exp") if isinstance(claims, dict) else None
                if isinstance(exp, (int, float)) and not isinstance(exp, bool):
                    return float(exp)
            except (ValueError, TypeError):
                pass
    last = data.get("last_refresh")
    if not isinstance(last, str):
        return None
    # RFC 3339 as Rust's chrono writes it: ``Z`` and up to nine fractional digits.
    text = re.sub(r"(\.\d{6})\d+", r"\1", last.strip()).replace("Z", "+00:00")
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when + CODEX_REFRESH_INTERVAL).timestamp()


_CODEX_RULES = (
    Rule.of(
        OutcomeKind.AUTH_FAILED,
        r"refresh token (?:has expired|was already used|was revoked)",
        r"access token could not be refreshed",
        r"Please log out and sign in again",
        r"\b401 Unauthorized\b",
    ),
    Rule.of(
        OutcomeKind.QUOTA_EXHAUSTED,
        rf"\bYou{APOS}?ve hit your usage limit\b",
        r"usage_limit_reached",
    ),
    Rule.of(
        OutcomeKind.RATE_LIMITED,
        r"\b429 Too Many Requests\b",
        r"\brate[ -]limit",
        r"too many requests",
    ),
)

CODEX = ToolProfile(
    name="codex",
    executable="codex",
    home_dirname=".codex",
    credential_name="auth.json",
    home_env="CODEX_HOME",
    # `codex exec` refuses to run outside a git repository without this flag; `-` makes
    # it read the prompt from stdin.
    base_args=("exec", "--skip-git-repo-check"),
    tail_args=("-",),
    # `codex login` runs its own OAuth sign-in and writes auth.json into CODEX_HOME.
    login_args=("login",),
    approval_flag="--sandbox",
    validate=_codex_validate,
    secret_keys=("access_token", "refresh_token", "id_token", "OPENAI_API_KEY"),
    expiry=_codex_expiry,
    rules=_CODEX_RULES,
    reset_parsers=(resets.codex_try_again,),
    default_reset=resets.after(timedelta(hours=5)),
    install_hint="npm install -g @openai/codex",
    # Codex truncates auth.json in place: a symlink there is followed, not replaced.
    replaces_symlink=False,
)
