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
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from credrot.fsutil import NotARegularFile, atomic_write, read_regular, temp_name
from credrot.kinds import STORED_STATUSES, AccountStatus
from credrot.logs import LazyLogger
from credrot.statecheck import CorruptState, checked, load_yaml
from credrot.statetable import AccountState as AccountState
from credrot.statetable import AccountTable as AccountTable
from credrot.statetable import line_of, remember_in

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


_ACCOUNTS_OPEN = ', "accounts": {'
_STATUS_ALT = "|".join(STATUSES)
#: The start of one account line as ``to_text`` writes it (status first, one line each).
_LINE_KEY = re.compile(rf'\n  "(\d{{1,15}})": {{"status": "(?:{_STATUS_ALT})"')
_HEAD_INTS = ("generation", "switches_total", "pool_exhausted", "requests")
_HEAD_OPT_INTS = ("current", "last_switch_from", "last_switch_to")
_NOT_HEAD = frozenset({"accounts", "loaded_text"})
#: Parsed state texts this process read or wrote last: (head fields, lines, canonical).
_PARSED: dict[str, tuple[dict[str, Any], dict[int, str], bool]] = {}


#: Largest state file read (a pool of 1,000 accounts writes about 200 KiB).
MAX_STATE_BYTES = 8 << 20


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
            lines[index] = line_of(index, json.dumps(value, default=str))
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
        remember_in(_PARSED, text, (self._head(), lines, self.loaded_text == text))

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
