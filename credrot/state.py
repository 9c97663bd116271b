"""The pool's state, and how it is kept on disk (``state.yaml``).

The file is written as JSON, one account per line. JSON is YAML, so the seed's
``state.yaml`` name and any YAML reader keep working, while credrot itself parses it
with the C JSON parser: a pool of 1,000 accounts loads in about a millisecond. A file a
person edited by hand in block YAML is still read (PyYAML is the fallback).

Whatever is on disk is checked before it is used, because every command and every call
reads it under the pool lock: a file over :data:`MAX_STATE_BYTES`, or YAML with anchors
or aliases (a few hundred bytes can expand to gigabytes), is refused as corrupt and set
aside; a field of the wrong type or out of range (a string ``until``, NaN, a 5000-digit
number) is dropped with a warning and the rest of the state kept.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import time
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from credrot.fsutil import NotARegularFile, atomic_write, read_regular, temp_name
from credrot.kinds import STORED_STATUSES, AccountStatus
from credrot.logs import LazyLogger
from credrot.statecheck import CorruptState, checked, load_yaml

log = LazyLogger(__name__)

SCHEMA_VERSION = 1
READY = AccountStatus.READY
EXHAUSTED = AccountStatus.EXHAUSTED
RATE_LIMITED = AccountStatus.RATE_LIMITED
NEEDS_LOGIN = AccountStatus.NEEDS_LOGIN
DISABLED = AccountStatus.DISABLED
STATUSES = STORED_STATUSES
#: Statuses that pass by themselves once their ``until`` time is reached.
TIMED = (EXHAUSTED, RATE_LIMITED)


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
_ACCOUNTS_OPEN = ', "accounts": {'
_STATUS_ALT = "|".join(STATUSES)
#: The start of one account line as ``to_text`` writes it (status first, one line each).
_LINE_KEY = re.compile(rf'\n  "(\d{{1,15}})": {{"status": "(?:{_STATUS_ALT})"')
_HEAD_INTS = ("generation", "switches_total", "pool_exhausted", "requests")
_HEAD_OPT_INTS = ("current", "last_switch_from", "last_switch_to")


_NOT_HEAD = frozenset({"accounts", "loaded_text"})


def _compact(acct: AccountState) -> str:
    """An account as one JSON object, defaults left out (status always kept, first)."""
    data = {k: v for k, v in vars(acct).items() if k == "status" or v != _DEFAULTS[k]}
    return json.dumps(data)


#: Parsed and checked fields by state line, for lines read without a warning: a
#: process reads the same few lines at every call (bounded: cleared when full).
_ACCOUNTS_PARSED: dict[str, dict[str, Any]] = {}
#: Parsed state texts this process read or wrote last: (head fields, lines, canonical).
_PARSED: dict[str, tuple[dict[str, Any], dict[int, str], bool]] = {}
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
        _remember(_ACCOUNTS_PARSED, line, kept)
    return kept


def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value


#: Largest state file read (a pool of 1,000 accounts writes about 200 KiB).
MAX_STATE_BYTES = 8 << 20


_ACCOUNT_TYPES = {f.name: str(f.type) for f in fields(AccountState)}


def _line(index: int, data: str) -> str:
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

    def unchanged(self) -> bool:
        """No account set, removed, or changed since it was read (see ``_was``)."""
        if self._replaced:
            return False
        was = self._was
        for index, acct in self._objs.items():
            before = was.get(index)
            if before is None or acct.windows or before != tuple(vars(acct).values()):
                return False
        return True

    def lines(self) -> dict[int, str]:
        """Every account's line as ``to_text`` writes it (a new dict)."""
        merged = dict(self._lines)
        for index, acct in self._objs.items():
            was = self._was.get(index)
            if was is not None and not acct.windows and was == tuple(vars(acct).values()):
                merged[index] = self._read[index]
            else:
                merged[index] = _line(index, _compact(acct))
        return merged

    def body(self) -> str:
        merged = self.lines()
        return ",\n".join([merged[index] for index in sorted(merged)])


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
    #: Wrapper calls (what was asked); each takes one or more tool runs (``calls``).
    requests: int = 0
    accounts: AccountTable = field(default_factory=AccountTable)
    #: The pointer fields as loaded (None: not loaded from a file, so every save is durable).
    _loaded_head: tuple[object, ...] | None = field(default=None, repr=False, compare=False)
    #: The file's text when it is exactly what ``to_text`` gives for the state as loaded.
    loaded_text: str | None = field(default=None, repr=False, compare=False)
    #: The head fields as loaded, when known (:meth:`unchanged` needs no text then).
    _head_was: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def account(self, index: int) -> AccountState:
        if index not in self.accounts:
            self.accounts[index] = AccountState()
        return self.accounts[index]

    def unchanged(self) -> bool:
        """Whether the state is still as loaded, told without composing its text (True
        only when that is sure; False may still give the same text)."""
        return (
            self._head_was is not None
            and self._head() == self._head_was
            and self.accounts.unchanged()
        )

    def to_text(self) -> str:
        body = self.accounts.body()
        return self.head_line() + ("\n" + body if body else "") + "\n}}\n"

    def head_line(self) -> str:
        return json.dumps(self._head())[:-1] + _ACCOUNTS_OPEN

    def _head(self) -> dict[str, Any]:
        """The fields of the file's first line (all but the accounts and the bookkeeping)."""
        return {k: v for k, v in vars(self).items() if k not in _NOT_HEAD and k[0] != "_"}

    def _set_head(self, raw: dict[str, Any]) -> None:
        version = raw.get("version")
        if version != SCHEMA_VERSION:
            raise CorruptState(f"unknown schema version {version!r}")
        for key in (*_HEAD_OPT_INTS, *_HEAD_INTS, "last_switch"):
            value = raw.get(key)
            if key in _HEAD_INTS and value is None:
                value = 0
            ok, clean = checked("int | None" if key != "last_switch" else "float | None", value)
            if not ok or (key == "current" and clean == 0):
                # The head says where the pool is: a damaged one is not guessed at.
                raise CorruptState(f"bad value: {key}={value!r:.40}")
            setattr(self, key, clean)
        self._loaded_head = self._pointer_head()

    def _pointer_head(self) -> tuple[object, ...]:
        return (self.version, self.current, self.last_switch_from, self.last_switch_to)

    def durable_change(self) -> bool:
        """Whether saving this state records more than counters: the active account, an
        account's status, or the set of accounts. Only such a save waits for the disk
        (fsync); a counter lost to a power cut is worth less than a millisecond per call."""
        if self._loaded_head is None or self._loaded_head != self._pointer_head():
            return True
        return self.accounts.status_changed()

    @classmethod
    def from_text(cls, text: str) -> PoolState:
        fast = cls._from_layout(text)
        if fast is not None:
            return fast
        try:
            raw = json.loads(text)
        except RecursionError:
            raise CorruptState("nested too deeply") from None
        except ValueError:
            raw = load_yaml(text)
        if raw is None:
            raise CorruptState("empty file")
        if not isinstance(raw, dict):
            raise CorruptState("top level is not a mapping")
        state = cls()
        state._set_head(raw)
        accounts = raw.get("accounts") or {}
        if not isinstance(accounts, dict):
            raise CorruptState("'accounts' is not a mapping")
        lines: dict[int, str] = {}
        for key, value in accounts.items():
            if not isinstance(value, dict):
                raise CorruptState(f"account {key!r} is not a mapping")
            status = value.get("status", READY)
            if status not in STATUSES:
                raise CorruptState(f"account {key}: unknown status {status!r}")
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise CorruptState(f"account number {key!r} is not a number") from None
            lines[index] = _line(index, json.dumps(value, default=str))
        state.accounts = AccountTable(lines)
        return state

    @classmethod
    def _from_layout(cls, text: str) -> PoolState | None:
        """Parse the layout ``to_text`` writes without parsing each account; None if the
        text is in any other shape (then the full parser validates it)."""
        seen = _PARSED.get(text)
        if seen is not None:
            return cls._from_parsed(text, *seen)
        head, _, rest = text.partition("\n")
        if not head.endswith(_ACCOUNTS_OPEN) or not text.endswith("}}\n"):
            return None
        try:
            raw = json.loads(head[: -len(_ACCOUNTS_OPEN)] + "}")
        except (ValueError, RecursionError):
            return None
        if not isinstance(raw, dict):
            return None
        body = rest[: -len("}}\n")].rstrip("\n")
        lines = body.split(",\n") if body else []
        keys = _LINE_KEY.findall("\n" + body)
        if len(keys) != len(lines):
            return None
        state = cls()
        state._set_head(raw)
        table = dict(zip(map(int, keys), lines, strict=True))
        state.accounts = AccountTable(dict(table))
        # Usually the file is just as to_text writes it: then it need not be written again.
        canonical = head == state.head_line() and text == f"{head}\n{body}\n}}}}\n" and body
        state.loaded_text = text if canonical else None
        state.remember(text, table)
        return state

    def remember(self, text: str, lines: dict[int, str]) -> None:
        """Keep ``text`` parsed: the next read of the same text costs no parsing."""
        _remember(_PARSED, text, (self._head(), lines, self.loaded_text == text))

    @classmethod
    def _from_parsed(
        cls, text: str, head: dict[str, Any], lines: dict[int, str], canonical: bool
    ) -> PoolState:
        state = cls(**head)
        state._loaded_head = state._pointer_head()
        state._head_was = head
        state.accounts = AccountTable(dict(lines))
        state.loaded_text = text if canonical else None
        return state


def load_state(path: Path) -> tuple[PoolState | None, str | None]:
    """(state, None); (None, None) when there is no file; (None, why) when it is corrupt."""
    try:
        text = read_regular(path, MAX_STATE_BYTES).decode("utf-8")
    except FileNotFoundError:
        return None, None
    except NotARegularFile as exc:
        return None, f"it is {exc.reason}"
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


def save_state(
    path: Path, state: PoolState, text: str | None = None, durable: Path | None = None
) -> None:
    """Atomically; flushed to the disk only when more than counters changed.
    ``text``: ``state.to_text()`` when the caller has it already; ``durable``: where a
    flushed save is also linked, read in place of a state file a power cut emptied."""
    if text is None:
        text = state.to_text()
    flush = state.durable_change()
    atomic_write(path, text.encode("utf-8"), fsync=flush)
    if flush and durable is not None:
        _link_durable(path, durable)
    state.loaded_text = text
    state.remember(text, state.accounts.lines())


def _link_durable(path: Path, durable: Path) -> None:
    """Keep the file just flushed under a second name (a hard link: no copy, no wait).

    A later save of counters is not flushed: a power cut soon after it can leave the
    state file empty, and then this one still says which accounts are spent."""
    tmp = temp_name(durable, "lnk")
    try:
        os.link(path, tmp)
        os.replace(tmp, durable)
    except OSError as exc:  # no hard links here, or a folder planted in its place
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        log.debug("no durable copy of %s: %s", path, exc)
