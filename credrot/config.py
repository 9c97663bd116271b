"""Tools described in a YAML file: any quota-limited CLI, without code.

The file is ``$CREDROT_CONFIG``, else ``$XDG_CONFIG_HOME/credrot/config.yaml``, else
``~/.config/credrot/config.yaml``. The core reads it only when a tool name is not built
in; every command of the CLI checks it first (:func:`check_config`), so a mistake is never
silent. It is validated as a whole on load, and every mistake is reported as one line
naming the file, the key and what was expected::

    tools:
      mytool:
        executable: mytool              # default: the tool's name
        home: .mytool                   # under your home directory; default .<name>
        home_env: MYTOOL_HOME           # the variable that moves the home (optional)
        credential: auth.json           # the credential file inside the home
        args: [--print, --quiet]        # argv after the executable
        prompt: stdin                   # or "argument": "{prompt}" in args, else last
        patterns:                       # regular expressions, case-insensitive
          quota_exhausted: ["quota exceeded"]
          rate_limited: ["\\b429\\b", "rate limit"]
          auth_failed: ["please log in"]
        per_model_windows: false        # true: quota_exhausted: {"week:opus": [...]} bars opus only
        exit_codes: {41: auth_failed}
        resets: [gemini_after]          # reset parsers from credrot.resets.PARSERS
        reset_window: 24h               # or "5h", "90m", "midnight", "midnight Europe/Paris"

See :data:`TOOL_KEYS` for every key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

from credrot import resets, windows
from credrot.configpath import CONFIG_ENV as CONFIG_ENV
from credrot.configpath import config_path as config_path
from credrot.errors import ConfigError
from credrot.kinds import OutcomeKind, Rule
from credrot.live.settings import NotifySettings, parse_notify
from credrot.profile import (
    BUILTIN_NAMES,
    CREDENTIAL_KINDS,
    PROMPT_PLACEHOLDER,
    ToolProfile,
    expiry_at,
    json_validator,
)

#: Every key a tool may have, with what it expects (also the text of the errors).
TOOL_KEYS: dict[str, str] = {
    "executable": "a command name or path",
    "home": "a path under your home directory, like .mytool or ~/.config/mytool",
    "home_env": "an environment variable name",
    "home_env_is_parent": "true or false",
    "set_home": "true or false",
    "credential": "a file name, like auth.json",
    "credential_kind": "file or env",
    "args": "a list of strings",
    "prompt": "stdin or argument",
    "approval_flag": "a string",
    "default_approval": "a string",
    "patterns": "a mapping of outcome to regular expressions",
    "per_model_windows": "true or false (true: a window like week:opus limits that model only)",
    "abort_patterns": "a list of regular expressions",
    "abort_streams": "a list of stderr and stdout: where the tool prints its login prompt",
    "exit_codes": "a mapping of exit code to outcome",
    "resets": "a list of reset parser names",
    "reset_window": "a duration like 5h or 24h, or midnight [zone]",
    "rate_limit_window": "a duration like 60s",
    "refresh_margin": "a duration like 5m: how long before expiry the tool refreshes",
    "required_keys": "a list of strings",
    "secret_keys": "a list of strings",
    "expiry_key": "a key (dotted for nesting) holding the expiry time",
    "expiry_unit": "ms or s",
    "replaces_symlink": "true or false",
    "tool_lock": "a file name",
    "install_hint": "a string",
    "json_error_prefixes": "a list of strings",
    "output_format_flags": "a list of options whose value picks the output format",
    "json_flags": "a list of options that turn on JSON output",
    "max_output": "a whole number of bytes (at least 1024), like 16777216",
}
#: Outcomes a pattern can mean, in the order they are tried.
PATTERN_OUTCOMES = ("disabled", "auth_failed", "quota_exhausted", "rate_limited")
_EXIT_OUTCOMES = (*PATTERN_OUTCOMES, "error")
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION = re.compile(r"\d+(?:\.\d+)?(?:ms|d|h|m|s)(?:\d+(?:\.\d+)?(?:ms|d|h|m|s))*")

_cache: dict[Path, tuple[tuple[int, int, int], dict[str, ToolProfile]]] = {}


#: The sections a config file may have.
TOP_LEVEL_KEYS = ("tools", "limits", "notify", "store", "version")


def check_config() -> str | None:
    """Raise :class:`ConfigError` (one line: file, key, what was expected) when the config
    file is broken, or named by ``$CREDROT_CONFIG`` and missing; a mistake in it is never
    silent, even for a command about a built-in tool. A mistake in the ``notify`` section
    only is returned instead, as a warning: calls work without notifications. Costs one
    ``stat`` when there is no file, and one per change otherwise (the parse is cached)."""
    try:
        load_tools()
    except ConfigError as exc:
        if str(exc).startswith(f"{config_path()}: notify"):
            return str(exc)
        raise
    return None


def load_tools(path: str | os.PathLike[str] | None = None) -> dict[str, ToolProfile]:
    """The tools the config file describes (none when the default file does not exist).

    Cached per file until it changes, so a name lookup per call costs one ``stat``.
    """
    named = path is not None or bool(os.environ.get(CONFIG_ENV))
    where = Path(path).expanduser() if path is not None else config_path()
    try:
        st = where.stat()
    except FileNotFoundError:
        if named:
            raise ConfigError(f"{where}: no such config file") from None
        return {}
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror})") from None
    key = (st.st_mtime_ns, st.st_size, st.st_ino)
    cached = _cache.get(where)
    if cached is not None and cached[0] == key:
        return dict(cached[1])
    try:
        text = where.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror})") from None
    tools = parse_config(text, str(where))
    _cache[where] = (key, tools)
    return dict(tools)


def parse_config(text: str, source: str = "<config>") -> dict[str, ToolProfile]:
    """Validate a whole config text; raises :class:`ConfigError` at the first mistake."""
    import yaml  # only when there is a file to read

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or "syntax error"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ConfigError(f"{source}: not valid YAML ({where}{_one_line(str(problem))})") from None
    if data is None:
        return {}
    err = _Errors(source)
    if not isinstance(data, dict):
        raise err("(top level)", "a mapping with a 'tools' key")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            expected = ", ".join(f"'{k}'" for k in TOP_LEVEL_KEYS if k != "version")
            raise err(str(key), f"only {expected} (and 'version') at the top level")
    if data.get("version", 1) != 1:
        raise err("version", "1")
    parse_notify(data.get("notify"), err.under("notify"))
    tools = data.get("tools")
    if tools is None:
        return {}
    if not isinstance(tools, dict):
        raise err("tools", "a mapping of tool name to its description")
    found: dict[str, ToolProfile] = {}
    for name, spec in tools.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise err(f"tools.{name}", "a tool name of lowercase letters, digits, '-', '_', '.'")
        if name in BUILTIN_NAMES:
            raise err(f"tools.{name}", "a name that is not built in (choose another name)")
        found[name] = _tool(name, spec, err.under(f"tools.{name}"))
    return found


class _Errors:
    """Makes the one-line errors: ``FILE: tools.x.key: expected WHAT``."""

    def __init__(self, source: str, prefix: str = "") -> None:
        self.source = source
        self.prefix = prefix

    def under(self, prefix: str) -> _Errors:
        return _Errors(self.source, prefix)

    def __call__(self, key: str, expected: str, got: str | None = None) -> ConfigError:
        path = f"{self.prefix}.{key}" if self.prefix and key else (self.prefix or key)
        tail = f" ({_one_line(got)})" if got else ""
        return ConfigError(f"{self.source}: {path}: expected {expected}{tail}")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def _str(
    spec: Mapping[str, object], key: str, err: _Errors, default: str | None = None
) -> str | None:
    value = spec.get(key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise err(key, TOOL_KEYS[key])
    return value


def _bool(spec: Mapping[str, object], key: str, err: _Errors, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise err(key, TOOL_KEYS[key])
    return value


def _str_list(spec: Mapping[str, object], key: str, err: _Errors) -> tuple[str, ...]:
    value = spec.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise err(key, TOOL_KEYS.get(key, "a list of strings"))
    items: list[str] = []
    for i, item in enumerate(value):
        if key == "args" and isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)  # `args: [--max-turns, 3]`
        if not isinstance(item, str):
            raise err(f"{key}[{i}]", "a string")
        items.append(item)
    return tuple(items)


def _regex(pattern: str, key: str, err: _Errors) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise err(key, "a regular expression", str(exc)) from None
    return pattern


def _duration(value: object, key: str, err: _Errors) -> timedelta:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=float(value))
    if isinstance(value, str) and _DURATION.fullmatch(value.strip()):
        delta = resets.parse_duration(value)
        if delta is not None and delta.total_seconds() > 0:
            return delta
    raise err(key, TOOL_KEYS[key])


def _window(value: object, err: _Errors) -> Callable[[datetime], datetime]:
    if isinstance(value, str) and value.strip().lower().startswith("midnight"):
        zone_name = value.strip()[len("midnight") :].strip() or "UTC"
        tz = resets.zone(zone_name)
        if tz is None:
            raise err("reset_window", "midnight followed by a known time zone", zone_name)
        return resets.next_midnight(tz)
    return resets.after(_duration(value, "reset_window", err))


def _home(value: str, err: _Errors) -> str:
    text = value.strip()
    if text.startswith("~/"):
        text = text[2:]
    path = PurePosixPath(text)
    if text.startswith("~") or path.is_absolute() or ".." in path.parts or not path.parts:
        raise err("home", TOOL_KEYS["home"], value)
    return str(path)


def _tool(name: str, spec: object, err: _Errors) -> ToolProfile:
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise err("", "a mapping of settings")
    for key in spec:
        if key not in TOOL_KEYS:
            raise err(str(key), f"a known key ({', '.join(TOOL_KEYS)})")

    kind = _str(spec, "credential_kind", err, "file")
    if kind not in CREDENTIAL_KINDS:
        raise err("credential_kind", TOOL_KEYS["credential_kind"], str(kind))
    credential = _str(spec, "credential", err, "account.env" if kind == "env" else None)
    if credential is None:
        raise err("credential", "the credential file name (this key is required)")
    if "/" in credential or credential in (".", "..") or not credential.strip("."):
        raise err("credential", TOOL_KEYS["credential"], credential)

    home_env = _str(spec, "home_env", err)
    if home_env is not None and not _ENV_NAME.fullmatch(home_env):
        raise err("home_env", TOOL_KEYS["home_env"], home_env)
    set_home = _bool(spec, "set_home", err, False)
    parent = _bool(spec, "home_env_is_parent", err, False)
    if parent and home_env is None:
        raise err("home_env_is_parent", "home_env to be set as well")

    args = _str_list(spec, "args", err)
    prompt_mode = _str(spec, "prompt", err, "stdin")
    placeholder = any(PROMPT_PLACEHOLDER in a for a in args)
    tail: tuple[str, ...] = ()
    if prompt_mode == "stdin":
        if placeholder:
            raise err("args", f"no {PROMPT_PLACEHOLDER} when the prompt goes through stdin")
    elif prompt_mode == "argument":
        if not placeholder:
            tail = (PROMPT_PLACEHOLDER,)
    else:
        raise err("prompt", TOOL_KEYS["prompt"], str(prompt_mode))

    rules = _rules(spec.get("patterns", {}), err)
    aborts = _str_list(spec, "abort_patterns", err)
    for i, p in enumerate(aborts):
        _regex(p, f"abort_patterns[{i}]", err)

    codes_spec = spec.get("exit_codes", {})
    if not isinstance(codes_spec, dict):
        raise err("exit_codes", TOOL_KEYS["exit_codes"])
    exit_codes: dict[int, OutcomeKind] = {}
    for code, outcome in codes_spec.items():
        if isinstance(code, bool) or not isinstance(code, int) or not 1 <= code <= 255:
            raise err(f"exit_codes.{code}", "an exit code from 1 to 255")
        if outcome not in _EXIT_OUTCOMES:
            raise err(f"exit_codes.{code}", f"one of {', '.join(_EXIT_OUTCOMES)}")
        exit_codes[code] = OutcomeKind(outcome)

    parsers = _str_list(spec, "resets", err)
    for i, parser in enumerate(parsers):
        if parser not in resets.PARSERS:
            raise err(f"resets[{i}]", f"one of {', '.join(resets.PARSERS)}", parser)

    unit = _str(spec, "expiry_unit", err, "ms")
    if unit not in ("ms", "s"):
        raise err("expiry_unit", TOOL_KEYS["expiry_unit"], str(unit))
    tool_lock = _str(spec, "tool_lock", err)
    if tool_lock is not None and "/" in tool_lock:
        raise err("tool_lock", TOOL_KEYS["tool_lock"], tool_lock)
    secret_keys = _str_list(spec, "secret_keys", err)

    return ToolProfile(
        name=name,
        executable=_str(spec, "executable", err, name) or name,
        home_dirname=_home(_str(spec, "home", err, f".{name}") or f".{name}", err),
        credential_name=credential,
        home_env=home_env,
        set_home=set_home,
        home_env_is_parent=parent,
        credential_kind=kind,
        tool_lock_name=tool_lock,
        base_args=args,
        tail_args=tail,
        approval_flag=_str(spec, "approval_flag", err),
        default_approval=_str(spec, "default_approval", err),
        validate=_env_validator(_str_list(spec, "required_keys", err))
        if kind == "env"
        else json_validator(strings=_str_list(spec, "required_keys", err), nonempty=True),
        secret_keys=secret_keys or ("access_token", "refresh_token"),
        expiry=expiry_at(_str(spec, "expiry_key", err), unit or "ms"),
        rules=tuple(rules),
        abort_rules=(Rule.of(OutcomeKind.AUTH_FAILED, *aborts),) if aborts else (),
        abort_streams=_abort_streams(spec, err),
        exit_codes=exit_codes,
        json_error_prefixes=_str_list(spec, "json_error_prefixes", err),
        format_flags=_str_list(spec, "output_format_flags", err)
        if "output_format_flags" in spec
        else ("--output-format",),
        json_switches=_str_list(spec, "json_flags", err),
        max_output=_max_output(spec, err),
        reset_parsers=tuple(resets.PARSERS[p] for p in parsers),
        default_reset=_window(spec.get("reset_window", "midnight UTC"), err),
        install_hint=_str(spec, "install_hint", err) or "",
        replaces_symlink=_bool(spec, "replaces_symlink", err, True),
        rate_limit_default=_duration(
            spec.get("rate_limit_window", 60), "rate_limit_window", err
        ).total_seconds(),
        refresh_margin=_duration(
            spec.get("refresh_margin", 300), "refresh_margin", err
        ).total_seconds(),
        per_model_windows=_bool(spec, "per_model_windows", err, False),
    )


def _rules(patterns: object, err: _Errors) -> list[Rule]:
    """``patterns``: outcome -> regexes; ``quota_exhausted`` may map window names to them
    (``{5h: [...], "week:opus": [...]}``), one rule per window."""
    if not isinstance(patterns, dict):
        raise err("patterns", TOOL_KEYS["patterns"])
    for outcome in patterns:
        if outcome not in PATTERN_OUTCOMES:
            raise err(f"patterns.{outcome}", f"one of {', '.join(PATTERN_OUTCOMES)}")
    rules: list[Rule] = []
    for outcome in (o for o in PATTERN_OUTCOMES if o in patterns):
        named = outcome == "quota_exhausted" and isinstance(patterns[outcome], dict)
        groups = patterns[outcome] if named else {"": patterns[outcome]}
        for name, value in groups.items():
            window = str(name)
            key = f"patterns.{outcome}" + (f".{window}" if named else "")
            if named and not windows.is_name(window):
                raise err(key, windows.NAME_HELP)
            found = _str_list({key: value}, key, err)
            for i, p in enumerate(found):
                _regex(p, f"{key}[{i}]", err)
            if found:
                rules.append(Rule.of(OutcomeKind(outcome), *found, window=window))
    return rules


def _abort_streams(spec: Mapping[str, object], err: _Errors) -> tuple[str, ...]:
    streams = _str_list(spec, "abort_streams", err) if "abort_streams" in spec else ("stderr",)
    if not streams or set(streams) - {"stderr", "stdout"}:
        raise err("abort_streams", TOOL_KEYS["abort_streams"], ", ".join(streams))
    return streams


def _max_output(spec: Mapping[str, object], err: _Errors) -> int | None:
    value = spec.get("max_output")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1024:
        raise err("max_output", TOOL_KEYS["max_output"], str(value))
    return value


def _env_validator(required: tuple[str, ...]) -> Callable[[object], str | None]:
    def validate(data: object) -> str | None:
        if not isinstance(data, dict):
            return "not KEY=value lines"
        for key in required:
            if key not in data:
                return f"{key} is not set"
        return None

    return validate


# ------------------------------------------------------------------ notify
def load_notify(path: str | os.PathLike[str] | None = None) -> NotifySettings | None:
    """The config file's ``notify`` section (None when there is no file or no section);
    the section's keys are parsed by :mod:`credrot.live.settings`."""
    import yaml

    where = Path(path).expanduser() if path is not None else config_path()
    try:
        text = where.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot be read ({exc})") from None
    except yaml.YAMLError:
        parse_config(text, str(where))  # raises the one-line error
        raise
    if not isinstance(data, dict):
        return None
    return parse_notify(data.get("notify"), _Errors(str(where), "notify"))
