"""What happened, read back from ``rotation.log`` (and its one predecessor).

The audit log is the pool's only history: the live view takes the last switch and its
reason from it, the HTML report draws its timeline from it, the notifier asks it whether
the pool was already known spent. A line that does not parse is skipped, never fatal:
the log may be mid-write by another process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from credrot.fsutil import open_regular
from credrot.pool.layout import LOG_FILE
from credrot.reasons import readable

#: Events that mean an account was found spent or unusable (the audit's names).
HIT_EVENTS = frozenset({"exhausted", "rate_limited", "auth_failed", "disabled", "quota_exhausted"})
#: How much of the end of the log a live view reads per refresh.
TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Record:
    """One audit line, with its time parsed and its account picked out."""

    when: datetime
    event: str
    account: int | None
    reason: str
    until: datetime | None
    raw: dict[str, Any]


def _when(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _account(raw: dict[str, Any]) -> int | None:
    """The account a record is about: the target of a switch or call, the source of a hit."""
    keys = ("from", "to") if raw.get("event") in HIT_EVENTS else ("to", "from")
    for key in keys:
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _needle(event: str) -> bytes:
    return json.dumps({"event": event})[1:-1].encode()  # how the audit log writes it


def parse(lines: Iterable[bytes], events: Iterable[str] | None = None) -> Iterator[Record]:
    """The records among ``lines``; with ``events``, only those (a line of another event
    is skipped before it is parsed: most of a log is calls)."""
    needles = None if events is None else tuple(_needle(e) for e in events)
    for line in lines:
        if needles is not None and not any(n in line for n in needles):
            continue
        try:
            raw = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError):
            continue
        if not isinstance(raw, dict):
            continue
        when = _when(raw.get("time"))
        if when is None or not isinstance(raw.get("event"), str):
            continue
        reason = raw.get("reason")
        reason = reason if isinstance(reason, str) else ""
        if raw["event"] == "switch":
            reason = readable(reason)  # an old line holds only the cause (quota_exhausted)
        yield Record(
            when,
            raw["event"],
            _account(raw),
            reason,
            _when(raw.get("until")),
            raw,
        )


def _read(path: Path, tail: int | None) -> list[bytes]:
    try:
        with open_regular(path) as fh:
            if tail is not None:
                size = os.fstat(fh.fileno()).st_size
                if size > tail:
                    fh.seek(size - tail)
                    fh.readline()  # the first line is cut
            return fh.read().splitlines()
    except OSError:
        return []


def read(
    home: Path,
    *,
    since: datetime | None = None,
    tail: int | None = None,
    events: Iterable[str] | None = None,
) -> list[Record]:
    """The records of ``home`` in order, oldest first; ``tail`` bounds the bytes read
    from the current file (the predecessor is then not read); ``events`` picks some."""
    log = home / LOG_FILE
    lines: list[bytes] = []
    if tail is None:
        lines += _read(log.with_name(LOG_FILE + ".1"), None)
    lines += _read(log, tail)
    records = list(parse(lines, events))
    if since is not None:
        records = [r for r in records if r.when >= since]
    return records


def last_switch(records: Iterable[Record]) -> Record | None:
    found = None
    for record in records:
        if record.event == "switch":
            found = record
    return found


def last_hits(records: Iterable[Record]) -> dict[int, Record]:
    """The latest hit per account: when its current window was found spent."""
    hits: dict[int, Record] = {}
    for record in records:
        if record.event in HIT_EVENTS and record.account is not None:
            hits[record.account] = record
    return hits


@dataclass
class Day:
    """One account's day: calls, hits (quota, rate limit, login), switches to it."""

    calls: int = 0
    hits: int = 0
    switches: int = 0


def per_day(records: Iterable[Record]) -> dict[int, dict[str, Day]]:
    """``{account: {"2026-12-03": Day, ...}}`` (UTC days), for the report."""
    out: dict[int, dict[str, Day]] = {}
    for record in records:
        if record.account is None:
            continue
        day = out.setdefault(record.account, {}).setdefault(f"{record.when:%Y-%m-%d}", Day())
        if record.event == "call":
            day.calls += 1
        elif record.event in HIT_EVENTS:
            day.hits += 1
        elif record.event == "switch":
            day.switches += 1
    return out


class Follower:
    """What was appended to ``rotation.log`` since the last look (a process that keeps
    asking reads each byte once); a rotated or shortened file is read from its tail."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOG_FILE
        self._ino = -1
        self._offset = 0

    def new(self, events: Iterable[str] | None = None) -> list[Record]:
        try:
            with open_regular(self.path) as fh:
                st = os.fstat(fh.fileno())
                if st.st_ino != self._ino or st.st_size < self._offset:
                    self._ino, self._offset = st.st_ino, max(0, st.st_size - TAIL_BYTES)
                    if self._offset:
                        fh.seek(self._offset)
                        self._offset += len(fh.readline())
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return []
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        return list(parse(data[:end].splitlines(), events))
