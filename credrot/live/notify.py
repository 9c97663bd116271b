"""Notifications: a built-in pluggy plugin that tells a webhook and/or a command when
the pool is spent, answers again, or an account or one of its windows is spent.

Delivery never holds up a call: each notification is sent by a daemon thread (one try,
one retry, each bounded by ``timeout``); at exit the process waits for what is still in
flight, at most ``timeout`` in all. A payload is made of credrot's own words and numbers
(no tool output, no credential), so no token can reach it.

"Pool exhausted" is told once until the pool answers again, across processes: the
notifier writes ``notified`` and ``pool_recovered`` records to ``rotation.log`` and reads
back what other processes wrote there.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pluggy

from credrot import __version__
from credrot.kinds import Outcome, OutcomeKind
from credrot.live import timeline, words
from credrot.live.settings import NotifySettings

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("credrot")

_pending: set[threading.Thread] = set()
_pending_lock = threading.Lock()
_flush_budget = [0.0]
_flush_registered = [False]


def _flush() -> None:
    """At exit: let notifications in flight finish, for at most the longest timeout."""
    deadline = time.monotonic() + _flush_budget[0]
    with _pending_lock:
        threads = list(_pending)
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def post(url: str, body: bytes, timeout: float) -> None:
    request = urllib.request.Request(  # noqa: S310 (the config allows http(s) only)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"credrot/{__version__}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read(65536)


def run_command(argv: list[str], body: bytes, event: str, timeout: float) -> None:
    env = {**os.environ, "CREDROT_EVENT": event}
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    try:
        proc.communicate(body, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode:
        raise OSError(f"exit status {proc.returncode}")


class Delivery:
    """Sends payloads to the webhook and the command, off the caller's thread."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        with _pending_lock:
            _flush_budget[0] = max(_flush_budget[0], settings.timeout)
            if not _flush_registered[0]:
                _flush_registered[0] = True
                atexit.register(_flush)

    def send(self, payload: dict[str, Any]) -> threading.Thread:
        thread = threading.Thread(target=self._deliver, args=(payload,), daemon=True)
        with _pending_lock:
            _pending.add(thread)
        thread.start()
        return thread

    def _deliver(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode("utf-8")
        timeout = self.settings.timeout
        try:
            if self.settings.webhook:
                self._webhook(self.settings.webhook, body, timeout)
            if self.settings.command:
                argv = [*self.settings.command, str(payload["message"])]
                try:
                    run_command(argv, body, str(payload["event"]), timeout)
                except (OSError, subprocess.SubprocessError) as exc:
                    log.warning("notify command %s failed: %s", argv[0], exc)
        finally:
            with _pending_lock:
                _pending.discard(threading.current_thread())

    @staticmethod
    def _webhook(url: str, body: bytes, timeout: float) -> None:
        host = urlsplit(url).hostname  # the rest of the URL may be a secret
        for attempt in (1, 2):
            try:
                post(url, body, timeout)
                return
            except (OSError, urllib.error.URLError, ValueError) as exc:
                if attempt == 2:
                    log.warning("notify webhook at %s failed twice: %s", host, exc)


class Notifier:
    """The plugin: turns pool events into notifications."""

    def __init__(
        self,
        settings: NotifySettings,
        tool: str,
        home: Path,
        audit: Callable[..., None],
        delivery: Delivery | None = None,
    ) -> None:
        self.settings = settings
        self.tool = tool
        self.home = home
        self.audit = audit
        self.delivery = delivery or Delivery(settings)
        self.follower = timeline.Follower(home)
        self.down_seen = False
        self.down_told = False

    def _catch_up(self) -> None:
        for record in self.follower.new():
            if record.event == "pool_exhausted":
                self.down_seen = True
            elif record.event == "notified" and record.reason == "pool_exhausted":
                self.down_told = True
            elif record.event == "pool_recovered":
                self.down_seen = self.down_told = False

    def _send(self, event: str, account: int | None, until: datetime | None, **extra: Any) -> None:
        if event not in self.settings.on:
            return
        payload: dict[str, Any] = {
            "event": event,
            "tool": self.tool,
            "home": str(self.home),
            "account": account,
            "until": until.isoformat() if until is not None else None,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "message": words.notice_text(event, self.tool, account, until),
        }
        payload.update(extra)
        self.delivery.send(payload)

    @hookimpl
    def credrot_pool_exhausted(
        self, tool: str, home: str, message: str, first_reset: datetime | None
    ) -> None:
        del tool, home, message  # the message is the pool's; the payload says its own
        self._catch_up()
        if self.down_told or "pool_exhausted" not in self.settings.on:
            return
        self.down_told = True
        self.audit("notified", reason="pool_exhausted")
        self._send("pool_exhausted", None, first_reset)

    @hookimpl
    def credrot_call_finished(self, tool: str, home: str, result: Any) -> None:
        del tool, home
        if not getattr(result, "success", False):
            return
        if not {"pool_exhausted", "pool_recovered"} & self.settings.on:
            return
        self._catch_up()
        if not self.down_seen:
            return
        self.down_seen = self.down_told = False
        account = getattr(result, "account", None)
        self.audit("pool_recovered", to=account, reason="a call succeeded")
        self._send("pool_recovered", account, None)

    @hookimpl
    def credrot_account_exhausted(
        self, tool: str, home: str, index: int, outcome: Outcome, until: datetime | None
    ) -> None:
        del tool, home
        kind = outcome.kind.value
        self._send("account_exhausted", index, until, kind=kind)
        # Today a window's share is known only when the tool says it is spent (1.0,
        # above any threshold); per-window usage will cross it earlier.
        if outcome.kind is OutcomeKind.QUOTA_EXHAUSTED:
            self._send(
                "window_above", index, until, window="quota", used=1.0, above=self.settings.above
            )
