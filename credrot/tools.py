"""Tool profiles: everything credrot knows about one CLI, as data.

A profile says where the tool keeps its home and credential, how a prompt becomes
argv + stdin, which of its messages mean quota, rate limit, auth or entitlement, and
when a spent account resets. Rotation logic never looks at a tool's name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from credrot.errors import ConfigError
from credrot.outcome import OutcomeKind, ResetParser, Rule, next_utc_midnight

Validator = Callable[[object], "str | None"]


def _qwen_validate(data: object) -> str | None:
    """The checks Qwen Code itself applies before it accepts a credential file."""
    if not isinstance(data, dict):
        return "not a JSON object"
    for key in ("access_token", "refresh_token", "token_type"):
        if not isinstance(data.get(key), str):
            return f"'{key}' is missing or not a string"
    expiry = data.get("expiry_date")
    if isinstance(expiry, bool) or not isinstance(expiry, (int, float)):
        return "'expiry_date' is missing or not a number"
    return None


def _ms_expiry(key: str) -> Callable[[Mapping[str, object]], float | None]:
    def expiry(data: Mapping[str, object]) -> float | None:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) / 1000.0

    return expiry


@dataclass(frozen=True)
class ToolProfile:
    name: str
    executable: str
    home_dirname: str
    credential_name: str
    home_env: str | None = None
    #: Also point HOME at the private call home (for builds that ignore ``home_env``).
    set_home: bool = False
    tool_lock_name: str | None = None
    base_args: tuple[str, ...] = ()
    approval_flag: str | None = None
    default_approval: str | None = None
    prompt_flag: str | None = None  # None: the prompt goes through stdin only
    validate: Validator = field(default=lambda data: None)
    secret_keys: tuple[str, ...] = ("access_token", "refresh_token")
    expiry: Callable[[Mapping[str, object]], float | None] = field(default=lambda d: None)
    rules: tuple[Rule, ...] = ()
    #: Patterns that, seen in live output, mean the tool is waiting for a human: stop it.
    abort_rules: tuple[Rule, ...] = ()
    exit_codes: Mapping[int, OutcomeKind] = field(default_factory=dict)
    json_error_prefixes: tuple[str, ...] = ()
    reset_parsers: tuple[ResetParser, ...] = ()
    default_reset: Callable[[datetime], datetime] = next_utc_midnight
    install_hint: str = ""
    #: The tool writes a refreshed credential by temp file + rename (a symlink is replaced).
    replaces_symlink: bool = True
    #: Sensible default wait after a rate limit without a retry-after, in seconds.
    rate_limit_default: float = 60.0

    @property
    def account_stem(self) -> str:
        return Path(self.credential_name).stem

    @property
    def account_suffix(self) -> str:
        return Path(self.credential_name).suffix

    def slot_name(self, index: int) -> str:
        return f"{self.account_stem}_{index}{self.account_suffix}"

    def default_home(self, environ: Mapping[str, str] | None = None) -> Path:
        env = os.environ if environ is None else environ
        if self.home_env and env.get(self.home_env):
            return Path(env[self.home_env]).expanduser()
        home = env.get("HOME") or str(Path.home())
        return Path(home) / self.home_dirname

    def parse_credential(self, raw: bytes) -> tuple[dict[str, object] | None, str | None]:
        """(data, None) for a valid credential, else (None, why) — the why holds no secret."""
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return None, "not valid JSON"
        why = self.validate(data)
        if why is not None:
            return None, why
        assert isinstance(data, dict)
        return data, None

    def secrets_of(self, data: Mapping[str, object]) -> list[str]:
        """Every secret string in a credential, for matching and redaction."""
        found: list[str] = []

        def walk(obj: object, key: str | None) -> None:
            if isinstance(obj, dict):
                for k, v in obj.items():
                    walk(v, str(k))
            elif isinstance(obj, list):
                for v in obj:
                    walk(v, key)
            elif isinstance(obj, str) and key is not None:
                lowered = key.lower()
                named = key in self.secret_keys or "token" in lowered or "key" in lowered
                if named and len(obj) >= 8:
                    found.append(obj)

        walk(data, None)
        return found

    def parse_reset(self, text: str, now: datetime) -> datetime:
        for parser in self.reset_parsers:
            when = parser(text, now)
            if when is not None:
                return when
        return self.default_reset(now)

    def argv(self, approval: str | None = None, extra: tuple[str, ...] = ()) -> list[str]:
        args = [self.executable, *self.base_args]
        mode = approval if approval is not None else self.default_approval
        if self.approval_flag and mode:
            args += [self.approval_flag, mode]
        return args + list(extra)


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
    set_home=True,
    tool_lock_name="oauth_creds.lock",
    base_args=("--auth-type", "qwen-oauth", "--output-format", "text"),
    approval_flag="--approval-mode",
    default_approval="plan",
    validate=_qwen_validate,
    expiry=_ms_expiry("expiry_date"),
    rules=_QWEN_RULES,
    abort_rules=(Rule.of(OutcomeKind.AUTH_FAILED, r"Qwen OAuth Device Authorization"),),
    exit_codes={41: OutcomeKind.AUTH_FAILED},
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

BUILTIN: dict[str, ToolProfile] = {"qwen": QWEN}


def get_profile(tool: str | ToolProfile) -> ToolProfile:
    if isinstance(tool, ToolProfile):
        return tool
    try:
        return BUILTIN[tool]
    except KeyError:
        known = ", ".join(sorted(BUILTIN))
        raise ConfigError(f"unknown tool {tool!r} (known: {known})") from None


def default_rate_limit_window(profile: ToolProfile) -> timedelta:
    return timedelta(seconds=profile.rate_limit_default)
