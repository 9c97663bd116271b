"""One moment of the pool, as the live view and the report show it.

Built from what the pool records, without the pool lock: ``list_accounts`` reads
``state.yaml`` as it is, the call homes tell which calls are in flight, and the end of
``rotation.log`` tells the last switch and when each spent window began. A view a moment
old is fine; a view that makes callers wait is not.

An account has a list of quota windows. Today the pool knows one per account (the
"exhausted until" of its status); the view draws every window it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from credrot import inflight
from credrot.live import timeline
from credrot.pool.layout import Layout

if TYPE_CHECKING:
    from credrot.manager import AccountManager
    from credrot.pool.views import AccountInfo


@dataclass(frozen=True)
class Window:
    """One quota window of an account: how much of it is spent, and when it resets.

    ``used`` is the spent share (0..1) when known, ``None`` when nothing says; ``since``
    is when it was found spent (the start of the wait until ``until``).
    """

    name: str
    used: float | None
    until: datetime | None = None
    since: datetime | None = None

    def blocked(self, now: datetime) -> float:
        """The share of the wait still ahead (1 just spent, 0 at the reset); the bar."""
        if self.until is None:
            return self.used or 0.0
        if self.until <= now:
            return 0.0
        if self.since is None or self.since >= self.until:
            return 1.0
        return min(1.0, (self.until - now) / (self.until - self.since))


@dataclass(frozen=True)
class AccountRow:
    index: int
    active: bool
    status: str
    usable: bool
    windows: tuple[Window, ...]
    calls_today: int
    in_flight: int
    switched_in: timeline.Record | None
    info: AccountInfo


@dataclass(frozen=True)
class Snapshot:
    tool: str
    home: str
    taken: datetime
    accounts: tuple[AccountRow, ...]
    last_switch: timeline.Record | None
    notices: tuple[str, ...] = field(default=())

    @property
    def usable(self) -> int:
        return sum(1 for row in self.accounts if row.usable)


def in_flight(layout: Layout) -> dict[int, int]:
    """Calls running now, per account: the call homes of live callers or tools."""
    return inflight.in_flight(layout)


def _when(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def windows_of(info: AccountInfo, hit: timeline.Record | None) -> tuple[Window, ...]:
    """The account's windows: each one the pool tracks (5h, week, ...), else the one its
    status holds (a mark by hand, a rate limit)."""
    since = hit.when if hit is not None and hit.account == info.index else None
    tracked = []
    for wname, row in sorted(info.windows.items()):
        until = _when(row.get("spent_until"))
        used = row.get("used")
        share = (
            1.0 if until is not None else (float(used) if isinstance(used, (int, float)) else None)
        )
        tracked.append(Window(wname, share, until, since if until is not None else None))
    if tracked and info.status != "rate_limited" and any(w.until for w in tracked):
        return tuple(tracked)
    if tracked and info.status == "ready":
        return tuple(tracked)
    name = "quota" if info.status != "rate_limited" else "rate limit"
    if info.status in ("exhausted", "rate_limited"):
        return (Window(name, 1.0, info.until, since),)
    if info.status in ("needs_login", "disabled") or not info.valid:
        return (Window(name, None),)
    return (Window(name, 0.0 if info.usable else None),)


#: The records a view needs: switches, and the hits that start a window's wait.
VIEW_EVENTS = ("switch", *timeline.HIT_EVENTS)


class Watcher:
    """Snapshots of one pool that remember what the log said, so each refresh reads only
    what was appended since the last (the first reads the end of the log)."""

    def __init__(self, manager: AccountManager) -> None:
        self.manager = manager
        self.follower = timeline.Follower(manager.home)
        self.hits: dict[int, timeline.Record] = {}
        self.switches: dict[int, timeline.Record] = {}
        self.last: timeline.Record | None = None

    def _catch_up(self) -> None:
        for record in self.follower.new(VIEW_EVENTS):
            if record.account is None:
                continue
            if record.event == "switch":
                self.switches[record.account] = self.last = record
            else:
                self.hits[record.account] = record

    def take(self, now: datetime | None = None) -> Snapshot:
        now = now or datetime.now(timezone.utc)
        manager = self.manager
        infos = manager.list_accounts()
        self._catch_up()
        flying = in_flight(manager.pool.layout)
        rows = tuple(
            AccountRow(
                index=info.index,
                active=info.active,
                status=str(info.status) if info.valid else "invalid",
                usable=info.usable,
                windows=windows_of(info, self.hits.get(info.index)),
                calls_today=info.calls_today,
                in_flight=flying.get(info.index, 0),
                switched_in=self.switches.get(info.index),
                info=info,
            )
            for info in infos
        )
        return Snapshot(
            tool=manager.profile.name,
            home=str(manager.home),
            taken=now,
            accounts=rows,
            last_switch=self.last,
            notices=tuple(manager.notices),
        )


def take(manager: AccountManager, now: datetime | None = None) -> Snapshot:
    """One snapshot (the end of the log read once)."""
    return Watcher(manager).take(now)
