"""The plugins the live package adds to every pool's events: one ``call`` record per
wrapper call (the report's timeline of calls), and the notifier when configured."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from credrot.errors import ConfigError
from credrot.logs import LazyLogger

log = LazyLogger(__name__)


class CallRecorder:
    """Audits each finished call: its account, what it found, how many attempts."""

    def __init__(self, audit: Callable[..., None]) -> None:
        self.audit = audit

    def credrot_call_finished(self, tool: str, home: str, result: Any) -> None:
        del tool, home
        self.audit("call", **self.fields(result))

    @staticmethod
    def fields(result: Any) -> dict[str, Any]:
        outcome = getattr(result, "outcome", None)
        kind = getattr(getattr(outcome, "kind", None), "value", None)
        return {
            "to": getattr(result, "account", None),
            "reason": kind or ("ok" if getattr(result, "success", False) else "error"),
            "attempts": getattr(result, "attempts", 0),
        }


#: (the variables naming the config file, when to look again, the answer) of
#: :func:`notify_wanted`.
_WANTED: list[tuple[tuple[object, ...], float, bool]] = []
#: A config file made while a process runs is seen within this many seconds.
WANTED_TTL = 1.0


def notify_wanted() -> bool:
    """Whether a config file exists that may ask for notifications (one ``stat`` a
    second at most: every event of a call asks)."""
    from credrot.configpath import CONFIG_ENV, config_path

    raw = getattr(os.environ, "_data", None)  # bytes: no decoding at every event
    if isinstance(raw, dict):
        names = (CONFIG_ENV.encode(), b"XDG_CONFIG_HOME", b"HOME")
        key: tuple[object, ...] = tuple(raw.get(name) for name in names)
    else:
        env = os.environ
        key = (env.get(CONFIG_ENV), env.get("XDG_CONFIG_HOME"), env.get("HOME"))
    now = time.monotonic()
    if _WANTED and _WANTED[0][0] == key and _WANTED[0][1] > now:
        return _WANTED[0][2]

    try:
        wanted = os.path.isfile(config_path())
    except OSError:
        wanted = False
    _WANTED[:] = [(key, now + WANTED_TTL, wanted)]
    return wanted


def direct(audit_log: Any, audit: Callable[..., None], hook: str, kwargs: dict[str, Any]) -> bool:
    """Serve ``hook`` without pluggy when only the built-ins listen; False when done.

    Most processes fire a few events and have no plugin installed: loading pluggy and
    scanning entry points would cost more than the call's own bookkeeping.
    """
    if notify_wanted():
        return True
    if hook == "credrot_audit":
        audit_log.credrot_audit(**kwargs)
    elif hook == "credrot_call_finished":
        CallRecorder(audit).credrot_call_finished(**kwargs)
    return False


def builtin(tool: str, home: Path, audit: Callable[..., None]) -> list[object]:
    import pluggy

    pluggy.HookimplMarker("credrot")(CallRecorder.credrot_call_finished)
    plugins: list[object] = [CallRecorder(audit)]
    from credrot.config import load_notify

    try:
        settings = load_notify()
    except ConfigError as exc:
        log.warning("notifications off: %s", exc)
        settings = None
    if settings is not None:
        from credrot.live.notify import Notifier

        plugins.append(Notifier(settings, tool, home, audit))
    return plugins
