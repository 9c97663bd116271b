"""The plugins the live package adds to every pool's events: one ``call`` record per
wrapper call (the report's timeline of calls), and the notifier when configured."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pluggy

from credrot.errors import ConfigError

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("credrot")


class CallRecorder:
    """Audits each finished call: its account, what it found, how many attempts."""

    def __init__(self, audit: Callable[..., None]) -> None:
        self.audit = audit

    @hookimpl
    def credrot_call_finished(self, tool: str, home: str, result: Any) -> None:
        del tool, home
        outcome = getattr(result, "outcome", None)
        kind = getattr(getattr(outcome, "kind", None), "value", None)
        self.audit(
            "call",
            to=getattr(result, "account", None),
            reason=kind or ("ok" if getattr(result, "success", False) else "error"),
            attempts=getattr(result, "attempts", 0),
        )


def builtin(tool: str, home: Path, audit: Callable[..., None]) -> list[object]:
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
