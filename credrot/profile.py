"""A tool profile: everything credrot knows about one CLI, as data, plus the small
builders (validators, expiry readers) that the built-in profiles and ``config.py`` share.

A profile says where the tool keeps its home and credential, how a prompt becomes
argv + stdin, which of its messages mean quota, rate limit, auth or entitlement, and
when a spent account resets. Rotation logic never looks at a tool's name.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from credrot.errors import CredrotError
from credrot.kinds import MAX_ARG_BYTES, OutcomeKind, Rule
from credrot.resets import ResetParser, next_utc_midnight

Validator = Callable[[object], "str | None"]

#: The names of the built-in profiles (``credrot.tools``); a config file may not reuse them.
BUILTIN_NAMES = frozenset({"qwen", "claude", "codex", "gemini", "qwen-key"})
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
    {
        "KEY",
        "APIKEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASS",
        "CREDENTIAL",
        "CREDENTIALS",
        "AUTH",
        "PAT",
    }
)


class PromptTooLarge(CredrotError, ValueError):
    """A prompt that must go on the command line is over the 128 KiB argv limit."""


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def lookup(data: Mapping[str, object], dotted: str) -> object:
    """The value at ``a.b.c`` in nested mappings, or None."""
    holder: object = data
    for part in dotted.split("."):
        if not isinstance(holder, Mapping):
            return None
        holder = holder.get(part)
    return holder


def json_validator(
    *,
    objects: Sequence[str] = (),
    strings: Sequence[str] = (),
    numbers: Sequence[str] = (),
    optional_numbers: Sequence[str] = (),
    nonempty: bool = False,
) -> Validator:
    """A credential check in the shape the tools apply themselves: these keys (dotted
    paths) must be objects, strings or numbers. The reason names a key, never a value."""

    def validate(data: object) -> str | None:
        if not isinstance(data, dict):
            return "not a JSON object"
        for key in objects:
            if not isinstance(lookup(data, key), dict):
                return f"'{key}' is missing or not an object"
        for key in strings:
            value = lookup(data, key)
            if not isinstance(value, str) or (nonempty and not value):
                return f"'{key}' is missing or not a string"
        for key, required in [(k, True) for k in numbers] + [(k, False) for k in optional_numbers]:
            value = lookup(data, key)
            if value is None and not required:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return f"'{key}' is {'missing or ' if required else ''}not a number"
        return None

    return validate


def expiry_at(key: str | None, unit: str = "ms") -> Callable[[Mapping[str, object]], float | None]:
    """Reads a credential's expiry (epoch ``ms`` or ``s``) at a dotted key."""
    scale = 1000.0 if unit == "ms" else 1.0

    def expiry(data: Mapping[str, object]) -> float | None:
        if key is None:
            return None
        value = lookup(data, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) / scale

    return expiry


def parse_env_file(
    raw: bytes, reserved: frozenset[str] = _ENV_RESERVED
) -> tuple[dict[str, object] | None, str | None]:
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
    #: Whether ``home_env`` also says where the pool lives when no ``--home`` is given.
    #: False for a second pool of the same CLI (``qwen-key`` beside ``qwen``): a user's
    #: ``QWEN_HOME`` names the OAuth pool, and the two must never share one home.
    pool_in_home_env: bool = True
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
    #: The streams ``abort_rules`` are looked for in: where the tool prints its login
    #: prompt. Not stdout by default: an answer may quote that prompt.
    abort_streams: tuple[str, ...] = ("stderr",)
    exit_codes: Mapping[int, OutcomeKind] = field(default_factory=dict)
    #: Read only in runs whose output is JSON (see :meth:`json_output`): a text answer
    #: that happens to be JSON quoting a quota message is an answer.
    json_error_prefixes: tuple[str, ...] = ()
    #: Options whose value chooses the output format (``--output-format json``,
    #: ``-o stream-json``); the last one given wins.
    format_flags: tuple[str, ...] = ("--output-format",)
    #: Options that alone turn on JSON output (``codex exec --json``).
    json_switches: tuple[str, ...] = ()
    #: Bytes kept of each output stream of a run (None: the runner's default); the rest
    #: is read and thrown away, and the result says so.
    max_output: int | None = None
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
    #: How long before its expiry the tool refreshes an access token, in seconds: a
    #: call starting inside this window will refresh (and, with a single-use refresh
    #: token, must be the only one doing so for that account).
    refresh_margin: float = 300.0
    #: Arguments after ``executable`` that start the tool's own login (None: unknown,
    #: the user passes ``--login-command``).
    login_args: tuple[str, ...] | None = None
    #: Variables that name the tool's temp directory: pointed at ``tmp/`` in the call
    #: home, so what the tool leaves there (a prompt, a request dump) goes with it.
    tmpdir_env: tuple[str, ...] = ()
    #: A quota window named ``base:model`` (``week:opus``) limits calls for that model
    #: only: a call naming another model may still use the account (see
    #: :mod:`credrot.windows`). Claude's weekly per-model limits are such windows.
    per_model_windows: bool = False

    @property
    def rate_limit_window(self) -> timedelta:
        """How long to leave a rate-limited account alone when the tool gave no wait."""
        return timedelta(seconds=self.rate_limit_default)

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
        if self.home_env and self.pool_in_home_env and env.get(self.home_env):
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
        if self.tmpdir_env:
            tmp = root / "tmp"
            tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
            for name in self.tmpdir_env:
                env[name] = str(tmp)
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
            except RecursionError:
                return None, "not valid JSON (nested too deeply)"
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

    def json_output(self, argv: Sequence[str]) -> bool:
        """Whether a run with ``argv`` prints JSON (``json`` or ``stream-json``): only
        then is an error looked for inside an exit-0 answer."""
        fmt = "text"
        switched = False
        args = list(argv[1:])
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if arg in self.json_switches:
                switched = True
            for flag in self.format_flags:
                if arg == flag and i + 1 < len(args):
                    fmt = args[i + 1]
                elif flag.startswith("--") and arg.startswith(flag + "="):
                    fmt = arg[len(flag) + 1 :]
        return switched or fmt in ("json", "stream-json")

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
