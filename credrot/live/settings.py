"""The ``notify`` section of the config file: where notifications go, and which.

::

    notify:
      webhook: https://hooks.example.com/credrot   # POST one JSON object per event
      command: [notify-send, credrot]               # the message appended, JSON on stdin
      on: [pool_exhausted, pool_recovered, account_exhausted, window_above]
      timeout: 5                                    # seconds per try (one retry)
      above: 0.9                                    # window_above: the spent share

Parsed here, not in the tools' parser, so the two grow apart; a mistake is the same
one-line error naming the file and the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from credrot.errors import ConfigError

#: The events ``notify.on`` may name, and the keys of ``notify`` with what each expects.
NOTIFY_EVENTS = ("pool_exhausted", "pool_recovered", "account_exhausted", "window_above")
NOTIFY_KEYS: dict[str, str] = {
    "webhook": "an http:// or https:// URL",
    "command": "a command as a list of strings, like [notify-send, credrot]",
    "on": f"a list of events from {', '.join(NOTIFY_EVENTS)}",
    "timeout": "seconds, a number from 0.1 to 60",
    "above": "a share of a window, a number from 0 to 1 like 0.9",
}
_URL = re.compile(r"https?://[^/\s]+\S*")


class Errors(Protocol):
    def __call__(self, key: str, expected: str, got: str | None = None) -> ConfigError: ...


@dataclass(frozen=True)
class NotifySettings:
    """Where to send notifications, which events, and how long one try may take."""

    webhook: str | None
    command: tuple[str, ...]
    on: frozenset[str]
    timeout: float = 5.0
    above: float = 0.9


def _number(spec: Mapping[str, object], key: str, low: float, high: float, err: Errors) -> float:
    value = spec[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
        raise err(key, NOTIFY_KEYS[key])
    return float(value)


def _strings(spec: Mapping[str, object], key: str, err: Errors) -> tuple[str, ...]:
    value = spec[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise err(key, NOTIFY_KEYS[key])
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise err(f"{key}[{i}]", "a non-empty string")
    return tuple(value)


def parse_notify(value: object, err: Errors) -> NotifySettings | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise err("", "a mapping with webhook and/or command")
    # YAML 1.1 reads a bare `on:` key as true; it means the key "on" here.
    value = {("on" if key is True else key): item for key, item in value.items()}
    for key in value:
        if key not in NOTIFY_KEYS:
            raise err(str(key), f"a known key ({', '.join(NOTIFY_KEYS)})")
    url = value.get("webhook")
    if url is not None and (not isinstance(url, str) or not _URL.fullmatch(url)):
        raise err("webhook", NOTIFY_KEYS["webhook"])
    command = _strings(value, "command", err) if "command" in value else ()
    if url is None and not command:
        raise err("", "a webhook or a command to notify")
    on = _strings(value, "on", err) if "on" in value else NOTIFY_EVENTS
    for i, event in enumerate(on):
        if event not in NOTIFY_EVENTS:
            raise err(f"on[{i}]", NOTIFY_KEYS["on"], event)
    return NotifySettings(
        url,
        command,
        frozenset(on),
        _number(value, "timeout", 0.1, 60, err) if "timeout" in value else 5.0,
        _number(value, "above", 0.0, 1.0, err) if "above" in value else 0.9,
    )
