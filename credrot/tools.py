"""Tool profiles: everything credrot knows about one CLI, as data.

A profile says where the tool keeps its home and credential, how a prompt becomes
argv + stdin, which of its messages mean quota, rate limit, auth or entitlement, and
when a spent account resets. Rotation logic never looks at a tool's name.

Built in: ``qwen``, ``claude``, ``codex``, ``gemini`` (their facts are in FACTS.md). Any
other name is looked up in the config file (:mod:`credrot.config`) when first asked for.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from credrot import resets
from credrot.errors import ConfigError, CredrotError
from credrot.outcome import OutcomeKind, ResetParser, Rule, next_utc_midnight

Validator = Callable[[object], "str | None"]

#: Credential kinds: a file the tool reads from its home, or environment variables.
CREDENTIAL_KINDS = ("file", "env")
#: Where an argument-prompt tool's argv takes the prompt (``args: ["-m", "{prompt}"]``).
PROMPT_PLACEHOLDER = "{prompt}"
#: Values of an ``env`` account shorter than this are not redacted (they would mangle
#: every answer: ``DEBUG=1``); no real key or token is this short.
MIN_ENV_SECRET = 6
#: Variables an ``env`` account may not set: they would take the call out of its home.
_ENV_RESERVED = frozenset({"HOME", "PATH"})
_ENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)")
#: Words of a variable name (split at ``_``) that make its value an account's identity.
_SECRET_WORDS = frozenset(
    {"KEY", "APIKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PASS", "CREDENTIAL",
     "CREDENTIALS", "AUTH", "PAT"}
)


class PromptTooLarge(CredrotError, ValueError):
    """A prompt that must go on the command line is over the 128 KiB argv limit."""


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


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


def _ms_expiry(
    key: str, within: str | None = None
) -> Callable[[Mapping[str, object]], float | None]:
    def expiry(data: Mapping[str, object]) -> float | None:
        holder: object = data.get(within) if within is not None else data
        if not isinstance(holder, Mapping):
            return None
        value = holder.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) / 1000.0

    return expiry


def parse_env_file(raw: bytes, reserved: frozenset[str] = _ENV_RESERVED) -> tuple[
    dict[str, object] | None, str | None
]:
    """An ``env`` account: ``KEY=value`` lines (``#`` comments, ``export``, quotes allowed).

    The reason for a refusal names a line and a key, never a value.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    found: dict[str, object] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _ENV_LINE.fullmatch(stripped)
        if m is None:
            return None, f"line {number} is not KEY=value"
        key, value = m.group(1), m.group(2).strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key in reserved:
            return None, f"line {number}: {key} cannot be set by an account"
        if key in found:
            return None, f"line {number}: {key} is set twice"
        if not value:
            return None, f"line {number}: {key} is empty"
        found[key] = value
    if not found:
        return None, "no KEY=value lines"
    return found, None


@dataclass(frozen=True)
class ToolProfile:
    name: str
    executable: str
    home_dirname: str
    credential_name: str
    home_env: str | None = None
    #: Also point HOME at the private call home (for builds that ignore ``home_env``).
    set_home: bool = False
    #: ``home_env`` names the directory that *holds* ``home_dirname`` (Gemini CLI's
    #: ``GEMINI_CLI_HOME`` replaces the user's home, the CLI then uses ``$it/.gemini``).
    home_env_is_parent: bool = False
    #: ``file``: the credential is a file in the tool home (copied into each call's
    #: private home). ``env``: an account is ``KEY=value`` lines put into the tool's
    #: environment for the call (API-key plans); the tool never sees a file.
    credential_kind: str = "file"
    tool_lock_name: str | None = None
    base_args: tuple[str, ...] = ()
    approval_flag: str | None = None
    default_approval: str | None = None
    prompt_flag: str | None = None  # None: the prompt goes through stdin only
    #: Arguments after the approval flag and the caller's extra args (``codex exec ... -``).
    tail_args: tuple[str, ...] = ()
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
    #: Entries of the home a private call home does not link (the tool's chat history:
    #: a headless call's prompt — a staged diff, say — stays out of the user's history).
    call_private: tuple[str, ...] = ()
    #: Sensible default wait after a rate limit without a retry-after, in seconds.
    rate_limit_default: float = 60.0

    @functools.cached_property
    def account_stem(self) -> str:
        # ``.credentials.json`` (Claude) gives visible slots ``credentials_<N>.json``:
        # a hidden file per account would vanish from ``ls accounts/``.
        return Path(self.credential_name).stem.lstrip(".") or "account"

    @functools.cached_property
    def account_suffix(self) -> str:
        return Path(self.credential_name).suffix

    def slot_name(self, index: int) -> str:
        return f"{self.account_stem}_{index}{self.account_suffix}"

    def default_home(self, environ: Mapping[str, str] | None = None) -> Path:
        env = os.environ if environ is None else environ
        if self.home_env and env.get(self.home_env):
            base = Path(env[self.home_env]).expanduser()
            return base / self.home_dirname if self.home_env_is_parent else base
        home = env.get("HOME") or str(Path.home())
        return Path(home) / self.home_dirname

    def private_home(self, root: Path) -> Path:
        """Where the tool home lives inside a private root made for one call or login."""
        return root / self.home_dirname if self.set_home or self.home_env_is_parent else root

    def point_at(self, env: dict[str, str], root: Path) -> Path:
        """Point ``env`` at a private home under ``root``; returns the tool home in it."""
        tool_home = self.private_home(root)
        if self.home_env:
            env[self.home_env] = str(root if self.home_env_is_parent else tool_home)
        if self.set_home:
            env["HOME"] = str(root)
        return tool_home

    @property
    def env_kind(self) -> bool:
        return self.credential_kind == "env"

    def parse_credential(self, raw: bytes) -> tuple[dict[str, object] | None, str | None]:
        """(data, None) for a valid credential, else (None, why) — the why holds no secret."""
        data: object
        if self.env_kind:
            reserved = _ENV_RESERVED | ({self.home_env} if self.home_env else set())
            data, why = parse_env_file(raw, frozenset(reserved))
            if data is None:
                return None, why
        else:
            try:
                # NaN and Infinity are not JSON: the tools (JSON.parse) reject them too.
                data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
            except (UnicodeDecodeError, ValueError):
                return None, "not valid JSON"
        why = self.validate(data)
        if why is not None:
            return None, why
        assert isinstance(data, dict)
        return data, None

    def env_of(self, data: Mapping[str, object]) -> dict[str, str]:
        """The variables an ``env`` account puts into the tool's environment."""
        if not self.env_kind:
            return {}
        return {str(k): str(v) for k, v in data.items()}

    def identity_of(self, data: Mapping[str, object]) -> set[str]:
        """What makes two credentials the same account (duplicate and owner checks).

        For ``env`` accounts: the variables that look secret (``*_KEY``, ``*TOKEN*`` ...),
        so two accounts may share a base URL or a model name.
        """
        if not self.env_kind:
            return set(self.secrets_of(data))
        pairs = {
            f"{k}={v}" for k, v in data.items() if _SECRET_WORDS & set(str(k).upper().split("_"))
        }
        return pairs or {f"{k}={v}" for k, v in data.items()}

    def secrets_of(self, data: Mapping[str, object]) -> list[str]:
        """Every secret string in a credential, for matching and redaction."""
        if self.env_kind:
            return [str(v) for v in data.values() if len(str(v)) >= MIN_ENV_SECRET]
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

    def argv(
        self, approval: str | None = None, extra: Sequence[str] = (), *, prompt: str | None = None
    ) -> list[str]:
        def fill(args: Sequence[str]) -> list[str]:
            if prompt is None:
                return list(args)
            return [a.replace(PROMPT_PLACEHOLDER, prompt) for a in args]

        args = [self.executable, *fill(self.base_args)]
        mode = approval if approval is not None else self.default_approval
        if self.approval_flag and mode:
            args += [self.approval_flag, mode]
        return args + list(extra) + fill(self.tail_args)

    @property
    def prompt_in_argv(self) -> bool:
        return self.prompt_flag is not None or any(
            PROMPT_PLACEHOLDER in a for a in (*self.base_args, *self.tail_args)
        )

    def invocation(
        self, prompt: str, approval: str | None = None, extra: Sequence[str] = ()
    ) -> tuple[list[str], bytes | None]:
        """(argv, stdin) for one prompt: stdin unless the profile puts it in an argument."""
        if not self.prompt_in_argv:
            return self.argv(approval, extra), prompt.encode("utf-8")
        from credrot.process import MAX_ARG_BYTES  # not at import: it loads subprocess

        size = len(prompt.encode("utf-8", errors="surrogateescape"))
        if size >= MAX_ARG_BYTES:
            raise PromptTooLarge(
                f"the prompt is {size} bytes; {self.name} takes it as an argument, which "
                f"Linux caps at 128 KiB (describe the tool with `prompt: stdin` instead)"
            )
        args = self.argv(approval, extra, prompt=prompt)
        if self.prompt_flag is not None:
            args += [self.prompt_flag, prompt]
        return args, None


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
    # Newer builds read QWEN_HOME; 0.12.0, the last release that serves qwen-oauth
    # headless, reads only HOME (proven by tests/conformance): point both at the call home.
    set_home=True,
    # Its chat recording would keep every wrapped prompt (a staged diff, say).
    call_private=("projects", "debug", "tmp"),
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


# --- Claude Code ------------------------------------------------------------------------


def _claude_validate(data: object) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    oauth = data.get("claudeAiOauth")
    if not isinstance(oauth, dict):
        return "'claudeAiOauth' is missing or not an object"
    for key in ("accessToken", "refreshToken"):
        if not isinstance(oauth.get(key), str):
            return f"'claudeAiOauth.{key}' is missing or not a string"
    expiry = oauth.get("expiresAt")
    if isinstance(expiry, bool) or not isinstance(expiry, (int, float)):
        return "'claudeAiOauth.expiresAt' is missing or not a number"
    return None


_APOS = "['\u2019]"  # the CLI prints a typographic apostrophe in some builds

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
        r"Claude AI usage limit reached",
        rf"\bYou{_APOS}?ve hit your (?:\w+ )?limit\b",
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
    validate=_claude_validate,
    secret_keys=("accessToken", "refreshToken"),
    expiry=_ms_expiry("expiresAt", within="claudeAiOauth"),
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


# --- OpenAI Codex CLI --------------------------------------------------------------------


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
        rf"\bYou{_APOS}?ve hit your usage limit\b",
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


# --- Gemini CLI ---------------------------------------------------------------------------


def _gemini_validate(data: object) -> str | None:
    if not isinstance(data, dict):
        return "not a JSON object"
    for key in ("access_token", "refresh_token"):
        if not isinstance(data.get(key), str):
            return f"'{key}' is missing or not a string"
    expiry = data.get("expiry_date")
    if expiry is not None and (isinstance(expiry, bool) or not isinstance(expiry, (int, float))):
        return "'expiry_date' is not a number"
    return None


_GEMINI_RULES = (
    Rule.of(
        OutcomeKind.AUTH_FAILED,
        r"\[API Error: 401\b",
        r"invalid_grant",
        r"Failed to login",
    ),
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
        r"Please wait and try again later",
        r"Possible quota limitations in place",
        r"RESOURCE_EXHAUSTED",
        r"\brate[ -]limit",
        r"too many requests",
    ),
)

GEMINI = ToolProfile(
    name="gemini",
    executable="gemini",
    home_dirname=".gemini",
    credential_name="oauth_creds.json",
    home_env="GEMINI_CLI_HOME",
    home_env_is_parent=True,
    # Piped stdin alone makes the CLI non-interactive; `-p` would be appended to it.
    base_args=("-o", "text"),
    approval_flag="--approval-mode",
    validate=_gemini_validate,
    expiry=_ms_expiry("expiry_date"),
    rules=_GEMINI_RULES,
    # With expired OAuth it may ask on stdin: stop it at once, it needs a login.
    abort_rules=(
        Rule.of(OutcomeKind.AUTH_FAILED, r"Do you want to continue\? \[Y/n\]"),
    ),
    exit_codes={41: OutcomeKind.AUTH_FAILED},
    json_error_prefixes=("[API Error:", "You have exhausted", "Usage limit reached"),
    reset_parsers=(resets.gemini_reset_after, resets.gemini_resets_at),
    # Gemini's daily quotas reset at midnight Pacific time (Google's documentation).
    default_reset=resets.next_midnight(resets.zone("America/Los_Angeles") or timezone.utc),
    install_hint="npm install -g @google/gemini-cli",
    # Written in place (mode 0600): a symlink there is followed.
    replaces_symlink=False,
)

BUILTIN: dict[str, ToolProfile] = {"qwen": QWEN, "claude": CLAUDE, "codex": CODEX, "gemini": GEMINI}


def get_profile(tool: str | ToolProfile) -> ToolProfile:
    """A built-in profile, or one described in the config file (read only when needed)."""
    if isinstance(tool, ToolProfile):
        return tool
    if tool in BUILTIN:
        return BUILTIN[tool]
    from credrot import config  # YAML is read only for a name not built in

    found = config.load_tools()
    if tool in found:
        return found[tool]
    known = ", ".join(sorted(BUILTIN) + sorted(found))
    raise ConfigError(
        f"unknown tool {tool!r} (known: {known}; describe others in {config.config_path()})"
    )


def known_tools() -> list[str]:
    """Built-in tools, then those described in the config file."""
    from credrot import config

    return list(BUILTIN) + sorted(set(config.load_tools()) - set(BUILTIN))


def default_rate_limit_window(profile: ToolProfile) -> timedelta:
    return timedelta(seconds=profile.rate_limit_default)
