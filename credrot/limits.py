"""Caps and the telemetry threshold from the config file's ``limits:`` section.

::

    limits:
      qwen:                        # the tool (built in or described under tools:)
        caps: {5h: 40, day: 1000}  # calls per window; at the cap the account is skipped
        rotate_at: 0.95            # move off a window the tool reports this full (or off)
        accounts:
          3: {caps: {day: 500}}    # one account's own caps, over the tool's

With known caps credrot stops sending to an account before the tool refuses it. The
file is read only when it exists (a pool without one never imports YAML), and cached
until it changes, so each transaction pays one ``stat``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from credrot import windows
from credrot.errors import ConfigError

_cache: dict[tuple[Path, str], tuple[tuple[int, int, int], windows.Limits]] = {}
_TOOL_KEYS = ("caps", "rotate_at", "accounts")


def load_limits(tool: str, path: Path | None = None) -> windows.Limits:
    """The limits the config file sets for ``tool`` (the defaults when it sets none)."""
    from credrot.configpath import config_path

    where = path if path is not None else config_path()
    try:
        info = where.stat()
    except OSError:
        return windows.NO_LIMITS
    key = (info.st_mtime_ns, info.st_size, info.st_ino)
    cached = _cache.get((where, tool))
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return windows.NO_LIMITS  # the tool loader reports an unreadable file
    found = parse_limits(text, tool, str(where))
    _cache[(where, tool)] = (key, found)
    return found


def parse_limits(text: str, tool: str, source: str = "<config>") -> windows.Limits:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError(f"{source}: not valid YAML") from None
    if not isinstance(data, dict) or data.get("limits") is None:
        return windows.NO_LIMITS
    every = data["limits"]
    if not isinstance(every, dict):
        raise ConfigError(f"{source}: limits: expected a mapping of tool name to its limits")
    spec = every.get(tool)
    if spec is None:
        return windows.NO_LIMITS
    where = f"{source}: limits.{tool}"
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping with caps, rotate_at, accounts")
    for name in spec:
        if name not in _TOOL_KEYS:
            raise ConfigError(f"{where}.{name}: expected one of {', '.join(_TOOL_KEYS)}")
    caps = _caps(spec.get("caps"), f"{where}.caps")
    per: dict[int, dict[str, int]] = {}
    accounts = spec.get("accounts") or {}
    if not isinstance(accounts, dict):
        raise ConfigError(f"{where}.accounts: expected a mapping of account number to caps")
    for number, own in accounts.items():
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ConfigError(f"{where}.accounts.{number}: expected an account number")
        if not isinstance(own, dict) or set(own) - {"caps"}:
            raise ConfigError(f"{where}.accounts.{number}: expected a mapping with caps")
        per[number] = _caps(own.get("caps"), f"{where}.accounts.{number}.caps")
    rotate_at = spec.get("rotate_at", windows.DEFAULT_ROTATE_AT)
    if rotate_at is not None and (
        isinstance(rotate_at, bool)
        or not isinstance(rotate_at, (int, float))
        or not 0 < rotate_at <= 1
    ):
        raise ConfigError(f"{where}.rotate_at: expected a fraction in (0, 1], or null for off")
    return windows.Limits(caps, per, None if rotate_at is None else float(rotate_at))


def _caps(value: object, where: str) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping of window to calls, like {{5h: 40}}")
    caps: dict[str, int] = {}
    for name, cap in value.items():
        name = str(name)
        if name != "day" and windows.length(name) is None:
            raise ConfigError(
                f"{where}.{name}: expected a window: day, week, month, or a length like 5h"
            )
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
            raise ConfigError(f"{where}.{name}: expected a whole number of calls (1 or more)")
        caps[name] = cap
    return caps


def clear_cache() -> None:
    _cache.clear()


__all__ = ["clear_cache", "load_limits", "parse_limits"]
