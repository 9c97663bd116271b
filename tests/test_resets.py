"""Reset times read from the tools' limit messages (FACTS.md), with a fixed ``now``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from credrot import resets
from credrot.tools import CLAUDE, CODEX, GEMINI

UTC = timezone.utc
#: Saturday 2026-11-28 15:30 UTC: 15:30 in Lisbon, 16:30 in Berlin, 19:30 in Muscat,
#: 00:30 the next day in Seoul, 07:30 in Los Angeles, 10:30 in New York.
NOW = datetime(2026, 11, 28, 15, 30, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


CLAUDE_CASES = [
    # a time of day already past today (13:00 < 15:30 in Lisbon) means tomorrow
    ("You've hit your limit · resets 1pm (Europe/Lisbon)", NOW, utc(2026, 11, 29, 13, 0)),
    # later today in Lisbon
    ("You've hit your limit · resets 11pm (Europe/Lisbon)", NOW, utc(2026, 11, 28, 23, 0)),
    # Muscat is UTC+4: 2:50am local tomorrow is still today in UTC
    ("You've hit your session limit · resets 2:50am (Asia/Muscat)", NOW, utc(2026, 11, 28, 22, 50)),
    # Seoul is already on the 29th (00:30): 10am there is the same local day
    (
        "Weekly limit reached · resets 10am (Asia/Seoul) · /upgrade to Max or turn on /extra-usage",
        NOW,
        utc(2026, 11, 29, 1, 0),
    ),
    # 12am is midnight, 12pm is noon
    ("You've hit your limit · resets 12am (UTC)", NOW, utc(2026, 11, 29, 0, 0)),
    ("You've hit your limit · resets 12pm (America/New_York)", NOW, utc(2026, 11, 28, 17, 0)),
    # dated form, this year
    ("resets Apr 23 at 4pm (Europe/Berlin)", utc(2026, 4, 20, 10, 0), utc(2026, 4, 23, 14, 0)),
    # dated form across the new year
    ("resets Jan 2 at 9am (Europe/Berlin)", utc(2026, 12, 30, 12, 0), utc(2027, 1, 2, 8, 0)),
    # a curly apostrophe and no separator dot
    ("You\u2019ve hit your limit resets 4:05pm (Europe/Lisbon)", NOW, utc(2026, 11, 28, 16, 5)),
]


@pytest.mark.parametrize(("text", "now", "expected"), CLAUDE_CASES)
def test_claude_resets(text: str, now: datetime, expected: datetime) -> None:
    assert resets.claude_resets(text, now) == expected
    assert CLAUDE.parse_reset(text, now) == expected


def test_claude_epoch_after_the_bar() -> None:
    text = "Claude AI usage limit reached|1750708800"
    assert resets.claude_epoch(text, NOW) == utc(2025, 6, 23, 20, 0)
    assert resets.claude_epoch("Claude AI usage limit reached|1750708800000", NOW) == utc(
        2025, 6, 23, 20, 0
    )
    # Claude Code 2.x no longer prints it: the built-in profile waits its 5-hour window
    assert CLAUDE.parse_reset(text, NOW) == NOW + timedelta(hours=5)


def test_a_reset_that_just_passed_is_now_not_tomorrow() -> None:
    text = "You've hit your limit · resets 1pm (Europe/Lisbon)"
    two_past = utc(2026, 11, 28, 13, 2)
    assert resets.claude_resets(text, two_past) == utc(2026, 11, 28, 13, 0)
    ten_past = utc(2026, 11, 28, 13, 10)
    assert resets.claude_resets(text, ten_past) == utc(2026, 11, 29, 13, 0)


def test_daylight_saving_days() -> None:
    # Berlin falls back on 2026-10-25 at 3:00 CEST: 2:30 happens twice, the first counts.
    fall = utc(2026, 10, 24, 20, 0)
    got = resets.claude_resets("resets 2:30am (Europe/Berlin)", fall)
    assert got == utc(2026, 10, 25, 0, 30)
    # The next day the offset is +1 again: the same wall time is an hour later in UTC.
    after = resets.claude_resets("resets 2:30am (Europe/Berlin)", utc(2026, 10, 25, 20, 0))
    assert after == utc(2026, 10, 26, 1, 30)
    # Spring forward (2026-03-29): 2:30 does not exist; the answer is still within a day.
    spring = utc(2026, 3, 28, 22, 0)
    got = resets.claude_resets("resets 2:30am (Europe/Berlin)", spring)
    assert got is not None and spring < got <= spring + timedelta(hours=25)


@pytest.mark.parametrize(
    "text",
    [
        "You've hit your limit · resets 1pm (Mars/Olympus_Mons)",
        "You've hit your limit · resets 13pm (Europe/Lisbon)",
        "You've hit your limit · resets 1:75pm (Europe/Lisbon)",
        "resets Feb 30 at 4pm (Europe/Berlin)",
        "resets Foo 3 at 4pm (Europe/Berlin)",
        "resets (Europe/Lisbon)",
        "You've hit your limit",
    ],
)
def test_claude_unparsable_falls_back_to_the_profile_window(text: str) -> None:
    assert resets.claude_resets(text, NOW) is None
    assert CLAUDE.parse_reset(text, NOW) == NOW + timedelta(hours=5)


def test_a_dated_reset_months_away_is_not_believed() -> None:
    # Apr 23 has passed in November: next year's would be five months away.
    assert resets.claude_resets("resets Apr 23 at 4pm (Europe/Berlin)", NOW) is None


CODEX_LIMIT = (
    "You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit "
    "https://chatgpt.com/codex/settings/usage to purchase more credits or try again at {}."
)
CODEX_CASES = [
    # New York (EST, 10:30): later today
    ("3:51 PM", "America/New_York", utc(2026, 11, 28, 20, 51)),
    # Berlin (CET, 16:30): 3:51 PM has passed -> tomorrow
    ("3:51 PM", "Europe/Berlin", utc(2026, 11, 29, 14, 51)),
    ("12:05 AM", "UTC", utc(2026, 11, 29, 0, 5)),
    # the dated form `%b %-d{st}, %Y %-I:%M %p`
    ("Dec 1st, 2026 9:05 AM", "Asia/Tokyo", utc(2026, 12, 1, 0, 5)),
    ("Dec 2nd, 2026 12:00 PM", "UTC", utc(2026, 12, 2, 12, 0)),
    ("Dec 3rd, 2026 1:00 AM", "Europe/Lisbon", utc(2026, 12, 3, 1, 0)),
    ("Dec 11th, 2026 11:59 PM", "America/Los_Angeles", utc(2026, 12, 12, 7, 59)),
    ("Jan 4th, 2027 8:00 AM", "UTC", utc(2027, 1, 4, 8, 0)),
]


@pytest.mark.parametrize(("when", "zone", "expected"), CODEX_CASES)
def test_codex_try_again_at(when: str, zone: str, expected: datetime) -> None:
    text = CODEX_LIMIT.format(when)
    assert resets.codex_try_again(text, NOW, tz=ZoneInfo(zone)) == expected
    # the CLI's other wording starts a sentence
    other = f"You've hit your usage limit. Try again at {when}."
    assert resets.codex_try_again(other, NOW, tz=ZoneInfo(zone)) == expected


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone")
def test_codex_uses_this_machines_zone_like_the_cli() -> None:
    # Kolkata is UTC+5:30: 21:00 there; 11:15 PM is later today
    assert CODEX.parse_reset(CODEX_LIMIT.format("11:15 PM"), NOW) == utc(2026, 11, 28, 17, 45)
    assert CODEX.parse_reset(CODEX_LIMIT.format("8:00 PM"), NOW) == utc(2026, 11, 29, 14, 30)


@pytest.mark.parametrize(
    "text",
    [
        "You've hit your usage limit. Try again later.",
        "You've hit your usage limit. Upgrade to Pro (...) or try again later.",
        "try again at 13:51 PM.",
        "try again at Dec 32nd, 2026 1:00 AM.",
        "try again at Dec 3rd, 2031 1:00 AM.",  # years away: not a quota window
    ],
)
def test_codex_unparsable_falls_back_to_the_profile_window(text: str) -> None:
    assert resets.codex_try_again(text, NOW, tz=UTC) is None
    assert CODEX.parse_reset(text, NOW) == NOW + timedelta(hours=5)


GEMINI_AFTER = "You have exhausted your capacity on this model. Your quota will reset after {}."


@pytest.mark.parametrize(
    ("duration", "delta"),
    [
        ("8h44m7s", timedelta(hours=8, minutes=44, seconds=7)),
        ("44m7s", timedelta(minutes=44, seconds=7)),
        ("7s", timedelta(seconds=7)),
        ("12h22m45s", timedelta(hours=12, minutes=22, seconds=45)),
        ("1d2h", timedelta(days=1, hours=2)),
        ("1.5s", timedelta(seconds=1.5)),
        ("900ms", timedelta(milliseconds=900)),
    ],
)
def test_gemini_reset_after(duration: str, delta: timedelta) -> None:
    assert resets.gemini_reset_after(GEMINI_AFTER.format(duration), NOW) == NOW + delta
    wrapped = f"[API Error: {GEMINI_AFTER.format(duration)}]"
    assert GEMINI.parse_reset(wrapped, NOW) == NOW + delta


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # GMT+2 is 17:30 now: 11:00 AM has passed -> tomorrow
        (
            "Usage limit reached for all Pro models.\nAccess resets at 11:00 AM GMT+2.",
            utc(2026, 11, 29, 9, 0),
        ),
        ("Access resets at 9:00 PM PST.", utc(2026, 11, 29, 5, 0)),
        ("Access resets at 4:15 PM UTC.", utc(2026, 11, 28, 16, 15)),
        ("Access resets at 11:30 PM GMT-03:30.", utc(2026, 11, 29, 3, 0)),
        ("Access resets at 6:00 PM Europe/Paris.", utc(2026, 11, 28, 17, 0)),
    ],
)
def test_gemini_access_resets_at(text: str, expected: datetime) -> None:
    assert resets.gemini_resets_at(text, NOW) == expected
    assert GEMINI.parse_reset(text, NOW) == expected


@pytest.mark.parametrize(
    "text",
    [
        "You have exhausted your daily quota on this model.",
        "Usage limit reached for all Pro models.",
        "Access resets at 11:00 AM XYZ.",
        "Your quota will reset after soon.",
    ],
)
def test_gemini_without_a_time_waits_for_midnight_pacific(text: str) -> None:
    assert resets.gemini_reset_after(text, NOW) is None
    assert resets.gemini_resets_at(text, NOW) is None
    # 07:30 PST now: the next midnight in Los Angeles is 08:00 UTC tomorrow
    assert GEMINI.parse_reset(text, NOW) == utc(2026, 11, 29, 8, 0)


def test_default_windows() -> None:
    assert resets.after(timedelta(hours=5))(NOW) == utc(2026, 11, 28, 20, 30)
    assert resets.next_midnight(UTC)(NOW) == utc(2026, 11, 29, 0, 0)
    assert resets.next_midnight(UTC)(utc(2026, 11, 29, 0, 0)) == utc(2026, 11, 30, 0, 0)
    assert resets.next_midnight(ZoneInfo("Asia/Seoul"))(NOW) == utc(2026, 11, 29, 15, 0)
    # summer time in Los Angeles: midnight is 07:00 UTC
    la = resets.next_midnight(ZoneInfo("America/Los_Angeles"))
    assert la(utc(2026, 7, 1, 12, 0)) == utc(2026, 7, 2, 7, 0)


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("UTC", timedelta(0)),
        ("GMT+2", timedelta(hours=2)),
        ("GMT-3:30", timedelta(hours=-3, minutes=-30)),
        ("UTC+05:45", timedelta(hours=5, minutes=45)),
        ("PDT", timedelta(hours=-7)),
    ],
)
def test_fixed_zones(name: str, offset: timedelta) -> None:
    tz = resets.zone(name)
    assert tz is not None and tz.utcoffset(None) == offset


@pytest.mark.parametrize("name", ["GMT+15", "Nowhere/City", "../etc/passwd", "", "a b"])
def test_unknown_zones(name: str) -> None:
    assert resets.zone(name) is None


def test_every_result_is_aware_utc() -> None:
    texts = [c[0] for c in CLAUDE_CASES] + [CODEX_LIMIT.format("3:51 PM")]
    for text in texts:
        for profile in (CLAUDE, CODEX, GEMINI):
            got = profile.parse_reset(text, NOW)
            assert got.tzinfo is not None and got.utcoffset() == timedelta(0)


@pytest.mark.usefixtures("local_zone")
def test_a_time_without_a_zone_is_local() -> None:
    # Kolkata (UTC+5:30) is at 21:00
    assert resets.claude_resets("You've hit your limit · resets 11pm", NOW) == utc(
        2026, 11, 28, 17, 30
    )
    assert resets.gemini_resets_at("Access resets at 9:30 PM then try again.", NOW) == utc(
        2026, 11, 28, 16, 0
    )
