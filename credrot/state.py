"""The pool's state, and how it is kept on disk (``state.yaml``).

The file is written as JSON, one account per line. JSON is YAML, so the seed's
``state.yaml`` name and any YAML reader keep working, while credrot itself parses it
with the C JSON parser: a pool of 1,000 accounts loads in about a millisecond. A file a
person edited by hand in block YAML is still read (PyYAML is the fallback).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import yaml

from credrot.errors import ReadOnlyHome

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
READY = "ready"
EXHAUSTED = "exhausted"
RATE_LIMITED = "rate_limited"
NEEDS_LOGIN = "needs_login"
DISABLED = "disabled"
STATUSES = (READY, EXHAUSTED, RATE_LIMITED, NEEDS_LOGIN, DISABLED)
#: Statuses that pass by themselves once their ``until`` time is reached.
TIMED = (EXHAUSTED, RATE_LIMITED)


_SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CorruptState(ValueError):
    pass


@dataclass
class AccountState:
    status: str = READY
    until: float | None = None  # epoch seconds, for TIMED statuses
    reason: str = ""
    calls: int = 0
    successes: int = 0
    quota_hits: int = 0
    rate_limits: int = 0
    auth_failures: int = 0
    errors: int = 0
    switches_to: int = 0
    calls_today: int = 0
    day: str = ""  # UTC date of calls_today
    last_used: float | None = None
    last_outcome: str = ""

    def effective_status(self, now: float) -> str:
        if self.status in TIMED and self.until is not None and self.until <= now:
            return READY
        return self.status

    def usable(self, now: float) -> bool:
        return self.effective_status(now) == READY

    def count_call(self, now: float) -> None:
        today = time.strftime("%Y-%m-%d", time.gmtime(now))
        if self.day != today:
            self.day, self.calls_today = today, 0
        self.calls += 1
        self.calls_today += 1
        self.last_used = now

    def calls_on(self, now: float) -> int:
        return self.calls_today if self.day == time.strftime("%Y-%m-%d", time.gmtime(now)) else 0


_ACCOUNT_FIELDS = {f.name for f in fields(AccountState)}


@dataclass
class PoolState:
    version: int = SCHEMA_VERSION
    current: int | None = None
    generation: int = 0
    switches_total: int = 0
    last_switch: float | None = None
    last_switch_from: int | None = None
    last_switch_to: int | None = None
    pool_exhausted: int = 0
    accounts: dict[int, AccountState] = field(default_factory=dict)

    def account(self, index: int) -> AccountState:
        acct = self.accounts.get(index)
        if acct is None:
            acct = self.accounts[index] = AccountState()
        return acct

    def to_text(self) -> str:
        head = {k: v for k, v in vars(self).items() if k != "accounts"}
        lines = [json.dumps(head)[:-1] + ', "accounts": {']
        items = sorted(self.accounts.items())
        for pos, (index, acct) in enumerate(items):
            sep = "," if pos < len(items) - 1 else ""
            lines.append(f'  "{index}": {json.dumps(vars(acct))}{sep}')
        lines.append("}}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> PoolState:
        try:
            raw = json.loads(text)
        except ValueError:
            try:
                raw = yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader
            except yaml.YAMLError as exc:
                raise CorruptState(f"not YAML: {str(exc).splitlines()[0]}") from None
        if raw is None:
            raise CorruptState("empty file")
        if not isinstance(raw, dict):
            raise CorruptState("top level is not a mapping")
        version = raw.get("version")
        if version != SCHEMA_VERSION:
            raise CorruptState(f"unknown schema version {version!r}")
        state = cls()
        try:
            for key in ("current", "last_switch_from", "last_switch_to"):
                value = raw.get(key)
                setattr(state, key, None if value is None else int(value))
            for key in ("generation", "switches_total", "pool_exhausted"):
                setattr(state, key, int(raw.get(key) or 0))
            ls = raw.get("last_switch")
            state.last_switch = None if ls is None else float(ls)
            accounts = raw.get("accounts") or {}
            if not isinstance(accounts, dict):
                raise CorruptState("'accounts' is not a mapping")
            for key, value in accounts.items():
                if not isinstance(value, dict):
                    raise CorruptState(f"account {key!r} is not a mapping")
                acct = AccountState(**{k: v for k, v in value.items() if k in _ACCOUNT_FIELDS})
                if acct.status not in STATUSES:
                    raise CorruptState(f"account {key}: unknown status {acct.status!r}")
                state.accounts[int(key)] = acct
        except (TypeError, ValueError) as exc:
            if isinstance(exc, CorruptState):
                raise
            raise CorruptState(f"bad value: {exc}") from None
        return state


def is_read_only_error(exc: OSError) -> bool:
    return exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the new one, never a mix.

    A failure leaves the old file untouched and no temporary file behind.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as exc:
        if is_read_only_error(exc):
            raise ReadOnlyHome(f"cannot write {path}: {path.parent} is read-only") from None
        raise
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_state(path: Path) -> tuple[PoolState | None, str | None]:
    """(state, None); (None, None) when there is no file; (None, why) when it is corrupt."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    try:
        return PoolState.from_text(text), None
    except CorruptState as exc:
        return None, str(exc)


def set_aside(path: Path, why: str) -> Path | None:
    """Move a corrupt state file aside with a timestamp; it is never deleted."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.replace(path, aside)
    except OSError as exc:
        log.warning(
            "state file %s is corrupt (%s) and could not be moved aside: %s", path, why, exc
        )
        return None
    log.warning("state file %s was corrupt (%s); kept as %s and rebuilt", path, why, aside)
    return aside


def save_state(path: Path, state: PoolState) -> None:
    atomic_write(path, state.to_text().encode("utf-8"))
