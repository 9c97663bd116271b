"""When a spent account comes back, read from the tool's own limit message.

Every parser takes the tool's error text and the current time (aware) and returns an
aware UTC datetime, or None when the text holds no time it understands: the profile's
default window then applies. Remembering the real reset matters because each call spent
on a known-exhausted account costs seconds and, for some tools, a request.

Rules shared by all parsers:

- A time of day without a date that has already passed today means tomorrow (the tool
  printed the *next* reset). A time that passed less than :data:`GRACE` ago is kept as
  is: it is the reset happening right now (tools print minutes, not seconds), and
  pushing it a day away would park a working account for 24 hours.
- Zones are IANA names through :mod:`zoneinfo` (``Europe/Lisbon``), a fixed offset
  (``GMT+2``, ``UTC-05:30``) or a US abbreviation Node prints (``PST``). An unknown zone
  makes the time unparsable rather than wrongly placed.
- A time with no zone at all is the local time of this machine (Codex formats with the
  system zone, and the tool runs here); parsers take ``tz`` for tests.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

ResetParser = Callable[[str, datetime], "datetime | None"]
Window = Callable[[datetime], datetime]


def next_utc_midnight(now: datetime) -> datetime:
    """The default reset of a daily quota whose tool does not say when (peers assume UTC)."""
    day = now.astimezone(timezone.utc).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


#: How far in the past a printed reset may be and still count as "now", not tomorrow.
GRACE = timedelta(minutes=5)
#: A dated reset further away than this is not a quota window: treat it as unparsable.
#: A printed wait longer than this (``reset after 99999999999d``) is cut to it: no quota
#: window is longer, and a time that far out would overflow a date.
MAX_AHEAD = timedelta(days=62)

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
#: Short zone names Node's ``Intl`` prints for en-US (others come out as ``GMT+N``).
_ABBREVIATIONS = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
    "AKST": -9,
    "AKDT": -8,
    "HST": -10,
}


# ------------------------------------------------------------------ building blocks
def zone(name: str) -> tzinfo | None:
    """An IANA zone, a ``GMT+2``/``UTC-05:30`` offset or a known abbreviation; else None."""
    name = name.strip()
    m = re.fullmatch(r"(?:GMT|UTC)\s*([+-])\s*(\d{1,2})(?::?(\d{2}))?", name, re.IGNORECASE)
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
        if minutes > 14 * 60:
            return None
        sign = -1 if m.group(1) == "-" else 1
        return timezone(sign * timedelta(minutes=minutes))
    if name.upper() in _ABBREVIATIONS:
        return timezone(timedelta(hours=_ABBREVIATIONS[name.upper()]))
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-]*(?:/[A-Za-z0-9_+\-]+)*", name):
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only for a named zone

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _utc(when: datetime) -> datetime:
    return when.astimezone(timezone.utc)


def _local(day: date, hour: int, minute: int, tz: tzinfo | None) -> datetime | None:
    """``day hour:minute`` on the wall clock of ``tz`` (None: this machine's zone)."""
    try:
        if tz is None:
            return datetime(day.year, day.month, day.day, hour, minute).astimezone()
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz)
    except (ValueError, OverflowError):
        return None


def _today(now: datetime, tz: tzinfo | None) -> date:
    return (now.astimezone(tz) if tz is not None else now.astimezone()).date()


def next_time_of_day(now: datetime, hour: int, minute: int, tz: tzinfo | None) -> datetime | None:
    """The next ``hour:minute`` in ``tz`` at or after ``now`` (allowing :data:`GRACE`)."""
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    today = _today(now, tz)
    for offset in (0, 1, 2):  # 2: a wall time skipped by a DST change tomorrow
        when = _local(today + timedelta(days=offset), hour, minute, tz)
        if when is not None and when >= now - GRACE:
            return _utc(when)
    return None


def _dated(
    now: datetime,
    month: int,
    day: int,
    year: int | None,
    hour: int,
    minute: int,
    tz: tzinfo | None,
) -> datetime | None:
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        return None
    years = [year] if year is not None else [_today(now, tz).year, _today(now, tz).year + 1]
    for y in years:
        try:
            when = _local(date(y, month, day), hour, minute, tz)
        except ValueError:
            return None
        if when is None:
            return None
        if when >= now - GRACE or year is not None:
            if when - now > MAX_AHEAD:
                return None
            return _utc(when)
    return None


def _hour24(hour: int, ampm: str) -> int:
    """12-hour clock to 24: 12am is 0, 12pm is 12; an out-of-range hour stays invalid."""
    if not 1 <= hour <= 12:
        return 99
    hour %= 12
    return hour + 12 if ampm.lower() == "pm" else hour


class _Lazy:
    """A regular expression compiled on its first use: a command that never reads a
    limit message (a listing of the pool) pays for none of them at start-up."""

    __slots__ = ("_compiled", "_flags", "_source")

    def __init__(self, source: str, flags: int = 0) -> None:
        self._source, self._flags = source, flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self._source, self._flags)
        return self._compiled

    def search(self, text: str) -> re.Match[str] | None:
        return self.compiled.search(text)

    def findall(self, text: str) -> list[Any]:
        return self.compiled.findall(text)


# ------------------------------------------------------------------------- Claude
_CLAUDE_EPOCH = _Lazy(r"usage limit reached\s*\|\s*(\d{9,13})\b", re.IGNORECASE)
_CLAUDE_RESETS = _Lazy(
    r"\bresets\s+(?:(?P<mon>[A-Za-z]{3})[a-z]*\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,?\s+"
    r"(?:at\s+)?)?(?P<hour>\d{1,2})(?::(?P<min>\d{2}))?\s*(?P<ampm>am|pm)\b"
    r"(?:\s*\((?P<tz>[^()\s]+)\))?",
    re.IGNORECASE,
)


def claude_epoch(text: str, now: datetime) -> datetime | None:
    """``Claude AI usage limit reached|1750708800``: epoch seconds after the bar."""
    m = _CLAUDE_EPOCH.search(text)
    if not m:
        return None
    value = int(m.group(1))
    if value > 10**11:  # milliseconds
        value //= 1000
    try:
        when = datetime.fromtimestamp(value, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return min(when, _utc(now + MAX_AHEAD))


def claude_resets(text: str, now: datetime) -> datetime | None:
    """``resets 1pm (Europe/Lisbon)``, ``resets 2:50am (...)``, ``resets Apr 23 at 4pm (...)``.

    Without a zone the time is this machine's local time.
    """
    m = _CLAUDE_RESETS.search(text)
    if not m:
        return None
    tz = zone(m.group("tz")) if m.group("tz") else None  # no zone: this machine's
    if m.group("tz") and tz is None:
        return None
    hour = _hour24(int(m.group("hour")), m.group("ampm"))
    minute = int(m.group("min") or 0)
    if m.group("mon"):
        month = _MONTHS.get(m.group("mon")[:3].lower())
        if month is None:
            return None
        return _dated(now, month, int(m.group("day")), None, hour, minute, tz)
    return next_time_of_day(now, hour, minute, tz)


# -------------------------------------------------------------------------- Codex
_CODEX_AT = _Lazy(
    r"try again at\s+(?:(?P<mon>[A-Za-z]{3})\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?,\s*"
    r"(?P<year>\d{4})\s+)?(?P<hour>\d{1,2}):(?P<min>\d{2})\s*(?P<ampm>AM|PM)",
    re.IGNORECASE,
)


def codex_try_again(text: str, now: datetime, tz: tzinfo | None = None) -> datetime | None:
    """``try again at 3:51 PM`` or ``try again at Apr 23rd, 2026 3:51 PM`` (local time)."""
    m = _CODEX_AT.search(text)
    if not m:
        return None
    hour = _hour24(int(m.group("hour")), m.group("ampm"))
    minute = int(m.group("min"))
    if m.group("mon"):
        month = _MONTHS.get(m.group("mon").lower())
        if month is None:
            return None
        return _dated(now, month, int(m.group("day")), int(m.group("year")), hour, minute, tz)
    return next_time_of_day(now, hour, minute, tz)


# ------------------------------------------------------------------------- Gemini
_DURATION_PART = _Lazy(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)", re.IGNORECASE)
_GEMINI_AFTER = _Lazy(r"reset after\s+((?:\d+(?:\.\d+)?(?:ms|d|h|m|s))+)\b", re.IGNORECASE)
_GEMINI_AT = _Lazy(
    r"resets at\s+(?P<hour>\d{1,2}):(?P<min>\d{2})\s*(?P<ampm>AM|PM)"
    r"(?:\s+(?P<tz>(?:GMT|UTC)\s*[+-]\s*\d{1,2}(?::?\d{2})?|(?-i:[A-Z]{1,5})\b"
    r"|[A-Za-z_]+/[A-Za-z_/+\-]+))?",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> timedelta | None:
    """``8h44m7s``, ``90s``, ``1d2h``, ``500ms`` -> timedelta; anything else None.

    A duration past :data:`MAX_AHEAD` comes back as :data:`MAX_AHEAD`.
    """
    text = text.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts).lower() != text.lower():
        return None
    return timedelta(
        seconds=clamp_seconds(sum(float(n) * _UNIT_SECONDS[u.lower()] for n, u in parts))
    )


def clamp_seconds(seconds: float) -> float:
    """A wait a tool printed, cut to ``0 .. MAX_AHEAD``; a NaN counts as no wait."""
    limit = MAX_AHEAD.total_seconds()
    if seconds != seconds:  # NaN
        return 0.0
    return min(max(seconds, 0.0), limit)


def gemini_reset_after(text: str, now: datetime) -> datetime | None:
    """``Your quota will reset after 8h44m7s.``"""
    m = _GEMINI_AFTER.search(text)
    if not m:
        return None
    delta = parse_duration(m.group(1))
    return None if delta is None else _utc(now + delta)


def gemini_resets_at(text: str, now: datetime, tz: tzinfo | None = None) -> datetime | None:
    """``Access resets at 11:00 AM GMT+2.`` (no zone: local time)."""
    m = _GEMINI_AT.search(text)
    if not m:
        return None
    if m.group("tz"):
        tz = zone(m.group("tz"))
        if tz is None:
            return None
    hour = _hour24(int(m.group("hour")), m.group("ampm"))
    return next_time_of_day(now, hour, int(m.group("min")), tz)


# ---------------------------------------------------------------- default windows
def after(delta: timedelta) -> Window:
    """A default window: the account comes back ``delta`` after the limit was seen."""

    def window(now: datetime) -> datetime:
        return _utc(now + delta)

    window.__doc__ = f"{delta} after the limit was seen"
    return window


def next_midnight(tz: tzinfo) -> Window:
    """A default window: the next midnight on the wall clock of ``tz``."""

    def window(now: datetime) -> datetime:
        when = next_time_of_day(now + GRACE + timedelta(seconds=1), 0, 0, tz)
        assert when is not None
        return when

    window.__doc__ = f"the next midnight ({tz})"
    return window


#: Parsers by name, for tools described in the config file (``resets: [claude, ...]``).
PARSERS: dict[str, ResetParser] = {
    "claude_epoch": claude_epoch,
    "claude": claude_resets,
    "codex": codex_try_again,
    "gemini_after": gemini_reset_after,
    "gemini_at": gemini_resets_at,
}
