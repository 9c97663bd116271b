"""The accounts of the pool's state: one :class:`AccountState` each, kept in an
:class:`AccountTable` that builds each on first access and writes an untouched (or
unchanged) account back as the very line it was read from."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field, fields
from typing import Any

from credrot.kinds import STORED_STATUSES, AccountStatus
from credrot.logs import LazyLogger
from credrot.statecheck import checked

log = LazyLogger(__name__)

STATUSES = STORED_STATUSES
READY = AccountStatus.READY


@dataclass
class AccountState:
    status: str = AccountStatus.READY.value
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
    #: When the current mark was observed (epoch s): a call that started before it and
    #: then succeeded says nothing about the account now, so it does not clear it.
    marked_at: float | None = None
    #: Bumped at every write of a new credential into the account's slot (fencing).
    generation: int = 0
    #: Fingerprints of the credentials the slot has held, newest last (never a token:
    #: see :func:`credrot.pool.slots.fingerprint`); an older copy is never written back.
    held: str = ""
    #: Quota windows by name, plain dicts (see :mod:`credrot.windows`).
    windows: dict[str, Any] = field(default_factory=dict)

    def effective_status(self, now: float) -> AccountStatus:
        status = AccountStatus(self.status)
        if status.timed and self.until is not None and self.until <= now:
            return AccountStatus.READY
        return status

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
_DEFAULTS = vars(AccountState())


def _compact(acct: AccountState) -> str:
    """An account as one JSON object, defaults left out (status always kept, first)."""
    data = {k: v for k, v in vars(acct).items() if k == "status" or v != _DEFAULTS[k]}
    return json.dumps(data)


#: Parsed and checked fields by state line, for lines read without a warning: a
#: process reads the same few lines at every call (bounded: cleared when full).
_ACCOUNTS_PARSED: dict[str, dict[str, Any]] = {}
_CACHE_MAX = 256


def _account_from(index: int, line: str, warn: Callable[[str], None]) -> AccountState:
    kept = _ACCOUNTS_PARSED.get(line)
    if kept is None:
        kept = _parse_account(index, line, warn)
    if kept.get("windows"):
        kept = {**kept, "windows": copy.deepcopy(kept["windows"])}
    return AccountState(**kept)


def _parse_account(index: int, line: str, warn: Callable[[str], None]) -> dict[str, Any]:
    try:
        value = json.loads(line[line.index(": ") + 2 :])
    except (ValueError, RecursionError):
        value = None
    if not isinstance(value, dict):
        warn(f"state of account #{index} was unreadable; it starts afresh")
        return {}
    kept: dict[str, Any] = {}
    clean_line = True
    for key, item in value.items():
        if key not in _ACCOUNT_FIELDS:
            continue
        ok, clean = checked(_ACCOUNT_TYPES[key], item)
        if ok and (key != "status" or clean in STATUSES):
            kept[key] = clean
        else:
            clean_line = False
            warn(f"state of account #{index}: dropped {key}={item!r:.40} (not a valid value)")
    if clean_line:
        remember_in(_ACCOUNTS_PARSED, line, kept)
    return kept


def remember_in(cache: dict[str, Any], key: str, value: Any) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


_ACCOUNT_TYPES = {f.name: str(f.type) for f in fields(AccountState)}


def line_of(index: int, data: str) -> str:
    return f'  "{index}": {data}'


class AccountTable(MutableMapping[int, AccountState]):
    """Accounts by number. Each is built on first access, and an account nobody touched
    is written back as the very line it was read from, so a pool of 1,000 accounts costs
    little more to load and save than a pool of 5."""

    def __init__(self, lines: dict[int, str] | None = None) -> None:
        self._objs: dict[int, AccountState] = {}
        self._lines: dict[int, str] = lines or {}  # untouched accounts: their state.yaml line
        #: Told of a field dropped as invalid when an account is first read.
        self.warn: Callable[[str], None] = log.warning
        self._read: dict[int, str] = {}  # touched accounts: the line each was built from
        #: Touched accounts read from a clean line, with no windows: their fields then
        #: (one that still has them is written as the line it was read from).
        self._was: dict[int, tuple[Any, ...]] = {}
        self._replaced = False  # an account was set or removed wholesale

    def __getitem__(self, index: int) -> AccountState:
        acct = self._objs.get(index)
        if acct is None:
            line = self._lines.pop(index)  # KeyError: none such
            acct = _account_from(index, line, self.warn)
            self._objs[index] = acct
            self._read[index] = line
            if not acct.windows and line in _ACCOUNTS_PARSED:
                self._was[index] = tuple(vars(acct).values())
        return acct

    def __setitem__(self, index: int, acct: AccountState) -> None:
        self._lines.pop(index, None)
        self._was.pop(index, None)
        self._objs[index] = acct
        self._replaced = True

    def __delitem__(self, index: int) -> None:
        found = self._objs.pop(index, None) is not None
        self._was.pop(index, None)
        if self._lines.pop(index, None) is None and not found:
            raise KeyError(index)
        self._replaced = True

    def __contains__(self, index: object) -> bool:
        return index in self._objs or index in self._lines

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._objs.keys() | self._lines.keys()))

    def __len__(self) -> int:
        return len(self._objs) + len(self._lines)

    def __repr__(self) -> str:
        return f"AccountTable({len(self)} accounts)"

    def status_changed(self) -> bool:
        """Whether an account was added, removed, or given another status, deadline or
        reason since it was read (counters and times of use do not count)."""
        if self._replaced:
            return True
        for index, acct in self._objs.items():
            line = self._read[index]
            try:
                was = json.loads(line[line.index(": ") + 2 :])
            except ValueError:
                return True
            if not isinstance(was, dict):
                return True
            old = (was.get("status"), was.get("until"), was.get("reason", ""))
            if old != (acct.status, acct.until, acct.reason):
                return True
        return False

    def _as_read(self, index: int, acct: AccountState) -> bool:
        """A touched account still as its clean line said (see ``_was``)."""
        was = self._was.get(index)
        return was is not None and not acct.windows and was == tuple(vars(acct).values())

    def unchanged(self) -> bool:
        """No account set, removed, or changed since it was read."""
        return not self._replaced and all(
            self._as_read(index, acct) for index, acct in self._objs.items()
        )

    def lines(self) -> dict[int, str]:
        """Every account's line as ``to_text`` writes it (a new dict)."""
        merged = dict(self._lines)
        for index, acct in self._objs.items():
            if self._as_read(index, acct):
                merged[index] = self._read[index]
            else:
                merged[index] = line_of(index, _compact(acct))
        return merged

    def body(self) -> str:
        merged = self.lines()
        return ",\n".join([merged[index] for index in sorted(merged)])
