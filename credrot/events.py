"""Extension points: what happens in a pool, as pluggy hooks.

Third-party plugins register under the entry point group ``credrot``. pluggy and the
entry-point scan (``importlib.metadata``, tens of milliseconds in a fresh process) are
paid only when something can hear an event: a plugin passed in, a distribution on
``sys.path`` whose ``entry_points.txt`` declares the group (found once per process by
reading those files, see :func:`plugins_declared`), or a caller asking for :attr:`Events.pm`.
Otherwise the one listener, the audit log (``rotation.log``), is called directly.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credrot.fsutil import my_pid, read_bytes
from credrot.logs import LazyLogger

if TYPE_CHECKING:
    from datetime import datetime

    import pluggy

    from credrot.kinds import Outcome

    hookspec: pluggy.HookspecMarker
    hookimpl: pluggy.HookimplMarker

log = LazyLogger(__name__)

PROJECT = "credrot"
_GROUP_LINE = f"[{PROJECT}]".encode()
#: The hooks of :class:`CredrotSpec`, marked as pluggy hookspecs when pluggy is loaded.
HOOKS = (
    "credrot_account_switched",
    "credrot_account_exhausted",
    "credrot_pool_exhausted",
    "credrot_call_finished",
    "credrot_audit",
)


@functools.cache
def _markers() -> dict[str, Any]:
    import pluggy

    return {
        "hookspec": pluggy.HookspecMarker(PROJECT),
        "hookimpl": pluggy.HookimplMarker(PROJECT),
    }


def __getattr__(name: str) -> Any:
    """``hookspec`` and ``hookimpl``, the pluggy markers, made on first use."""
    if name in ("hookspec", "hookimpl"):
        return _markers()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def plugins_declared() -> bool:
    """Whether any distribution on ``sys.path`` declares a ``credrot`` entry point.

    Reads the ``entry_points.txt`` of each ``*.dist-info``/``*.egg-info`` directory on
    the path, which is where installers put them; a zip archive on the path counts as a
    yes (then pluggy's own scan decides). Cached for the life of the process.
    """
    for entry in sys.path:
        folder = entry or "."
        try:
            with os.scandir(folder) as listing:
                names = [e.name for e in listing if e.name.endswith((".dist-info", ".egg-info"))]
        except NotADirectoryError:
            return True
        except OSError:
            continue
        for name in names:
            try:
                text = read_bytes(Path(folder, name, "entry_points.txt"))
            except OSError:
                continue
            if _GROUP_LINE in text:
                return True
    return False


class CredrotSpec:
    """The hooks a credrot plugin may implement. All are called with keyword arguments;
    a plugin marks its implementations with :data:`hookimpl`."""

    def credrot_account_switched(
        self, tool: str, home: str, from_index: int | None, to_index: int, reason: str
    ) -> None:
        """The pool's active account moved from ``from_index`` to ``to_index``;
        ``reason`` says why in one sentence (which window, what signal, until when: see
        :mod:`credrot.reasons`)."""

    def credrot_account_exhausted(
        self, tool: str, home: str, index: int, outcome: Outcome, until: datetime | None
    ) -> None:
        """An account was found unusable (quota, rate limit, login, entitlement)."""

    def credrot_pool_exhausted(
        self, tool: str, home: str, message: str, first_reset: datetime | None
    ) -> None:
        """A call found no usable account left in the pool."""

    def credrot_call_finished(self, tool: str, home: str, result: Any) -> None:
        """A wrapper call ended; ``result`` is the :class:`credrot.WrapperResult`."""

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
        if self._fd >= 0 and self._pid == my_pid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1

    def _open(self) -> int:
        # A link or a FIFO planted as the log is neither followed nor waited on.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.path, flags | os.O_NONBLOCK, 0o600)
        s = os.fstat(fd)
        if not stat.S_ISREG(s.st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file", str(self.path))
        self._fd, self._ino, self._pid = fd, s.st_ino, my_pid()
        return fd

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
            if current is None or fd < 0 or self._pid != my_pid() or current.st_ino != self._ino:
                self._close()
                fd = self._open()
            os.write(fd, line)
        except OSError as exc:
            log.debug("audit log %s not written: %s", self.path, exc)

    def __del__(self) -> None:
        self._close()


class Events:
    """The events of one pool: the audit log, and pluggy once anything else listens."""

    def __init__(self, tool: str, home: Path, extra_plugins: tuple[object, ...] = ()) -> None:
        self.tool = tool
        self.home = home
        self._extra = extra_plugins
        self._audit_log = AuditLog(home / "rotation.log")
        self._pm: pluggy.PluginManager | None = None

    @property
    def pm(self) -> pluggy.PluginManager:
        """The pool's plugin manager (pluggy loaded and entry points scanned on first use)."""
        if self._pm is None:
            import pluggy

            mark = _markers()
            pm = pluggy.PluginManager(PROJECT)
            for name in HOOKS:
                mark["hookspec"](getattr(CredrotSpec, name))
            pm.add_hookspecs(CredrotSpec)
            mark["hookimpl"](AuditLog.credrot_audit)
            pm.register(self._audit_log, name="credrot-audit")
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

    def _builtins_only(self) -> bool:
        """No plugin but the built-ins can be listening (pluggy not needed yet)."""
        return self._pm is None and not self._extra and not plugins_declared()

    def _notify(self, hook: str, **kwargs: Any) -> None:
        """Call a hook; a plugin's exception is logged, never raised into rotation.

        Events fire in the middle of a change (after the pointer moved, before the state
        is saved): an exception there would leave the pool half-changed.
        """
        if self._builtins_only():
            from credrot.live.plugins import direct

            if not direct(self._audit_log, self.audit, hook, kwargs):
                return
        try:
            getattr(self.pm.hook, hook)(**kwargs)
        except Exception as exc:
            log.warning("credrot plugin failed in %s: %s: %s", hook, type(exc).__name__, exc)

    def audit(self, event: str, **fields: Any) -> None:
        self.audit_at(None, event, fields)

    def audit_at(self, at: float | None, event: str, fields: dict[str, Any]) -> None:
        """``at``: when it happened (epoch seconds), if not now."""
        record: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
            "event": event,
            "tool": self.tool,
        }
        record.update(fields)
        record["pid"] = my_pid()
        self._notify("credrot_audit", record=record)

    def switched(self, from_index: int | None, to_index: int, reason: str, **why: Any) -> None:
        """``reason``: one sentence; ``why``: its parts for the audit line (``cause``,
        ``window``, ``signal``, ``until``), which older lines do not have."""
        self.audit("switch", **{"from": from_index, "to": to_index, "reason": reason, **why})
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

    def call_finished(
        self, result: Any, later: Callable[[Callable[[], None]], None] | None = None
    ) -> None:
        """``later``: takes the call's audit line to write it with the call's counters
        (:meth:`credrot.pool.batch.Batch.later`), when only the built-ins listen."""
        if later is not None and self._builtins_only():
            from credrot.live.plugins import CallRecorder, notify_wanted

            if not notify_wanted():
                at, fields = time.time(), CallRecorder.fields(result)
                later(lambda: self.audit_at(at, "call", fields))
                return
        self._notify("credrot_call_finished", tool=self.tool, home=str(self.home), result=result)
