"""Extension points: what happens in a pool, as pluggy hooks.

Third-party plugins register under the entry point group ``credrot``; they are loaded the
first time an event fires, so commands that change nothing pay nothing for them. The
audit log (``rotation.log``) is itself a plugin of these hooks.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from credrot.kinds import Outcome

log = logging.getLogger(__name__)

PROJECT = "credrot"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class CredrotSpec:
    """The hooks a credrot plugin may implement. All are called with keyword arguments."""

    @hookspec
    def credrot_account_switched(
        self, tool: str, home: str, from_index: int | None, to_index: int, reason: str
    ) -> None:
        """The pool's active account moved from ``from_index`` to ``to_index``."""

    @hookspec
    def credrot_account_exhausted(
        self, tool: str, home: str, index: int, outcome: Outcome, until: datetime | None
    ) -> None:
        """An account was found unusable (quota, rate limit, login, entitlement)."""

    @hookspec
    def credrot_pool_exhausted(
        self, tool: str, home: str, message: str, first_reset: datetime | None
    ) -> None:
        """A call found no usable account left in the pool."""

    @hookspec
    def credrot_call_finished(self, tool: str, home: str, result: Any) -> None:
        """A wrapper call ended; ``result`` is the :class:`credrot.WrapperResult`."""

    @hookspec
    def credrot_audit(self, record: dict[str, Any]) -> None:
        """One audit record (no secrets): time, event, tool, from, to, reason, pid."""


class AuditLog:
    """Writes one JSON line per audit record to ``rotation.log``, keeping one predecessor.

    The file stays open between records (an open costs more than a stat on overlay
    filesystems); a stat tells when another process rotated it, and then it is reopened.
    """

    def __init__(self, path: Path, max_bytes: int = 1_000_000) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._fd = -1
        self._ino = -1
        self._pid = -1

    def _close(self) -> None:
        if self._fd >= 0 and self._pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1

    def _open(self) -> int:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._fd, self._ino, self._pid = fd, os.fstat(fd).st_ino, os.getpid()
        return fd

    @hookimpl
    def credrot_audit(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, default=str) + "\n").encode("utf-8")
        try:
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is not None and current.st_size + len(line) > self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
                current = None
            fd = self._fd
            if current is None or fd < 0 or self._pid != os.getpid() or current.st_ino != self._ino:
                self._close()
                fd = self._open()
            os.write(fd, line)
        except OSError as exc:
            log.debug("audit log %s not written: %s", self.path, exc)

    def __del__(self) -> None:
        self._close()


class Events:
    """The plugin manager of one pool, created on first use."""

    def __init__(self, tool: str, home: Path, extra_plugins: tuple[object, ...] = ()) -> None:
        self.tool = tool
        self.home = home
        self._extra = extra_plugins
        self._pm: pluggy.PluginManager | None = None

    @property
    def pm(self) -> pluggy.PluginManager:
        if self._pm is None:
            pm = pluggy.PluginManager(PROJECT)
            pm.add_hookspecs(CredrotSpec)
            pm.register(AuditLog(self.home / "rotation.log"), name="credrot-audit")
            from credrot.live.plugins import builtin

            for plugin in builtin(self.tool, self.home, self.audit):
                pm.register(plugin)
            for plugin in self._extra:
                pm.register(plugin)
            try:
                pm.load_setuptools_entrypoints(PROJECT)
            except Exception as exc:  # a broken third-party plugin must not break rotation
                log.warning("credrot plugins not loaded: %s", exc)
            self._pm = pm
        return self._pm

    def register(self, plugin: object) -> None:
        self.pm.register(plugin)

    def _notify(self, hook: str, **kwargs: Any) -> None:
        """Call a hook; a plugin's exception is logged, never raised into rotation.

        Events fire in the middle of a change (after the pointer moved, before the state
        is saved): an exception there would leave the pool half-changed.
        """
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception as exc:
            log.warning("credrot plugin failed in %s: %s: %s", hook, type(exc).__name__, exc)

    def audit(self, event: str, **fields: Any) -> None:
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "event": event,
            "tool": self.tool,
        }
        record.update(fields)
        record["pid"] = os.getpid()
        self._notify("credrot_audit", record=record)

    def switched(self, from_index: int | None, to_index: int, reason: str) -> None:
        self.audit("switch", **{"from": from_index, "to": to_index, "reason": reason})
        self._notify(
            "credrot_account_switched",
            tool=self.tool,
            home=str(self.home),
            from_index=from_index,
            to_index=to_index,
            reason=reason,
        )

    def exhausted(self, index: int, outcome: Outcome, until: datetime | None) -> None:
        self.audit(
            str(outcome.kind) if outcome.kind.value != "quota_exhausted" else "exhausted",
            **{
                "from": index,
                "to": None,
                "reason": outcome.message[:200],
                "until": until.isoformat() if until else None,
            },
        )
        self._notify(
            "credrot_account_exhausted",
            tool=self.tool,
            home=str(self.home),
            index=index,
            outcome=outcome,
            until=until,
        )

    def pool_exhausted(self, message: str, first_reset: datetime | None) -> None:
        self.audit("pool_exhausted", reason=message[:300])
        self._notify(
            "credrot_pool_exhausted",
            tool=self.tool,
            home=str(self.home),
            message=message,
            first_reset=first_reset,
        )

    def call_finished(self, result: Any) -> None:
        self._notify("credrot_call_finished", tool=self.tool, home=str(self.home), result=result)
