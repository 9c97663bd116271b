"""Quota windows: each account's limits, one entry per window, and what blocks a call.

Subscriptions meter several windows at once (a 5-hour session and a week for Claude
Code; a primary and a secondary window for Codex; 5 hours, a week and a month for the
Qwen Coding Plan). One "exhausted until" per account cannot say which of them is spent,
so each account keeps ``AccountState.windows``: a plain mapping of window name to a
plain dict (JSON in ``state.yaml``, readable by any view without this module):

``until``   epoch seconds the window is spent until (the tool said so), or absent
``seen``    when that mark was made; ``signal`` what made it (``text``, ``telemetry``)
``reason``  the tool's line that made it
``calls`` / ``tokens``  usage counted in the current period, which ``since`` .. ``ends`` bound
``used``    the tool's own utilization reading (0..1), ``resets`` its reset (epoch s),
            ``read`` when it was read; ``over`` the threshold state (with hysteresis)

All deadlines are absolute UTC epoch seconds, so a mark never drifts with the clock's
zone and a passed one is simply ignored: the next call re-probes the account.
Everything here is pure over one account's state and ``now``.

**Per model.** A window named ``base:model`` (``week:opus``: Claude's weekly limit of one
model family) limits calls for that model only when the profile says its windows are
per model (``ToolProfile.per_model_windows``): a call that names another model
(``--model sonnet``) may still use the account, and such a mark leaves the account's
own status alone. A call whose model is unknown (none named: the tool's default, which
depends on the plan) is kept off the account, as it may be that very model.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from credrot import resets
from credrot.kinds import Outcome, OutcomeKind

#: The window a limit text falls in when its rule names none.
UNNAMED = "quota"
#: Rotate away from a window whose own reading is at or above this (``rotate_at``).
DEFAULT_ROTATE_AT = 0.95
#: A window over ``rotate_at`` counts as spent until a reading falls this far below it,
#: so an account hovering at the threshold does not flap in and out of the rotation.
HYSTERESIS = 0.05
#: A reading with no reset time of its own stays trusted this long.
READING_LIFETIME = timedelta(hours=1)
#: Fixed lengths of the window names the built-in profiles use (others: ``90m``, ``2d``).
LENGTHS: dict[str, timedelta] = {
    "5h": timedelta(hours=5),
    "week": timedelta(days=7),
    "month": timedelta(days=30),
}


@dataclass(frozen=True)
class Limits:
    """Caps (calls per window) per tool and per account, and the telemetry threshold."""

    caps: Mapping[str, int] = field(default_factory=dict)
    account_caps: Mapping[int, Mapping[str, int]] = field(default_factory=dict)
    rotate_at: float | None = DEFAULT_ROTATE_AT

    def caps_for(self, index: int) -> dict[str, int]:
        merged = dict(self.caps)
        merged.update(self.account_caps.get(index, {}))
        return merged


NO_LIMITS = Limits()


@dataclass(frozen=True)
class Block:
    """Why one window keeps an account out of the rotation now."""

    window: str
    signal: str  # "text", "cap" or "telemetry"
    until: float | None
    detail: str

    def sentence(self, index: int) -> str:
        """One line for a person: which window, what signal, until when."""
        when = "" if self.until is None else f" until {_clock(self.until)}"
        return f"account #{index}: {self.window} window {self.detail}{when}"


def length(name: str) -> timedelta | None:
    """How long a window lasts (``5h``, ``week``, ``90m``...); None when unknown."""
    base = name.partition(":")[0]
    if base in LENGTHS:
        return LENGTHS[base]
    return resets.parse_duration(base) if base and base[0].isdigit() else None


#: What a window's name may be (the config's words for it).
NAME_HELP = "a window name: day, week, month or a length like 5h, then maybe :model"
_NAME = re.compile(r"[a-z0-9.]+(?::[a-z0-9][a-z0-9._-]*)?")


def is_name(name: str) -> bool:
    """Whether ``name`` is a window: ``day``, ``week``, ``month``, a length (``5h``),
    optionally with ``:model`` for one model family's window (``week:opus``)."""
    base = name.partition(":")[0]
    return bool(_NAME.fullmatch(name)) and (base == "day" or length(base) is not None)


def period_end(name: str, now: float) -> float | None:
    """When a usage period that starts at ``now`` ends: ``day`` at UTC midnight, a named
    length after ``now``, an unknown window never (it restarts when its mark passes)."""
    if name.partition(":")[0] == "day":
        return resets.next_utc_midnight(_utc(now)).timestamp()
    span = length(name)
    return None if span is None else now + span.total_seconds()


def entries(acct: Any) -> dict[str, dict[str, Any]]:
    """The account's windows; anything in ``state.yaml`` that is not a window is dropped."""
    raw = getattr(acct, "windows", None)
    if not isinstance(raw, dict):
        acct.windows = raw = {}
    for name in [k for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, dict)]:
        del raw[name]
    return raw


def _entry(acct: Any, name: str) -> dict[str, Any]:
    return entries(acct).setdefault(name, {})


def _num(entry: Mapping[str, Any], key: str) -> float | None:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


# ------------------------------------------------------------------ per model
#: The options that name a call's model, in the built-in tools and most others.
MODEL_FLAGS = ("--model", "-m")


def window_model(name: str) -> str | None:
    """The model family a window is about (``week:opus`` -> ``opus``), or None."""
    _base, _, model = (name or "").partition(":")
    return model.strip().lower() or None


def call_model(argv: Iterable[str]) -> str | None:
    """The model a tool run asks for (``--model X``, ``--model=X``, ``-m X``), or None."""
    args = list(argv)
    found: str | None = None
    for pos, arg in enumerate(args):
        if arg in MODEL_FLAGS and pos + 1 < len(args):
            found = args[pos + 1]
        elif arg.startswith("--model="):
            found = arg.partition("=")[2]
    if found is None:
        return None
    return found.strip().lower() or None


def concerns(name: str, model: str | None, per_model: bool) -> bool:
    """Whether window ``name`` limits a call for ``model``.

    Every window does, unless the profile keeps windows per model, the window names
    one, and the call names another (``opus`` is found in ``claude-opus-4-5``).
    """
    own = window_model(name)
    if not per_model or own is None or model is None:
        return True
    return own in model.lower()


def account_wide(name: str, per_model: bool) -> bool:
    """Whether a quota hit in window ``name`` takes the whole account out (its status),
    or only that model's calls (its window mark)."""
    return not per_model or window_model(name) is None


def model_only(outcome: Outcome, per_model: bool) -> bool:
    """A quota hit that bars only one model's calls: the account's status stays."""
    return outcome.kind is OutcomeKind.QUOTA_EXHAUSTED and not account_wide(
        outcome.window, per_model
    )


# ----------------------------------------------------------------- recording
def mark(
    acct: Any, name: str, until: float, now: float, *, signal: str = "text", reason: str = ""
) -> None:
    """The tool said ``name`` is spent until ``until``; its usage period restarts then."""
    entry = _entry(acct, name or UNNAMED)
    entry.update(until=until, seen=now, signal=signal, reason=reason[:200], ends=until)


def count(acct: Any, now: float, windows: Iterable[str], tokens: int | None = None) -> None:
    """One invocation on the account, counted in every window it is tracked in."""
    for name in {*windows, *(n for n, e in entries(acct).items() if "calls" in e)}:
        entry = _entry(acct, name)
        ends = _num(entry, "ends")
        if "calls" not in entry or (ends is not None and now >= ends):
            end = _num(entry, "resets") if "used" in entry else None
            entry.update(calls=0, tokens=0, since=now, ends=end or period_end(name, now))
        entry["calls"] = int(_num(entry, "calls") or 0) + 1
        if tokens:
            entry["tokens"] = int(_num(entry, "tokens") or 0) + tokens


def observe(
    acct: Any,
    name: str,
    used: float,
    resets_at: float | None,
    now: float,
    rotate_at: float | None,
) -> None:
    """A utilization reading the tool printed itself; moves the threshold state with
    hysteresis: over at ``rotate_at``, back only below ``rotate_at - HYSTERESIS``."""
    entry = _entry(acct, name)
    entry.update(used=round(max(0.0, used), 4), read=now)
    if resets_at is not None:
        entry["resets"] = resets_at
    else:
        entry.pop("resets", None)
    if rotate_at is None:
        entry.pop("over", None)
    elif used >= rotate_at:
        entry["over"] = True
    elif used < rotate_at - HYSTERESIS:
        entry.pop("over", None)


def heal(
    acct: Any, started: float | None, *, model: str | None = None, per_model: bool = False
) -> list[str]:
    """A success proves the account's marks made before the call started are over; a
    mark made after it started (by a parallel caller) stands. Returns the cleared names.

    With ``per_model``, a success for one model says nothing of another model's window:
    such a mark is cleared only by a call that named its model."""
    cleared: list[str] = []
    for name, entry in entries(acct).items():
        own = window_model(name) if per_model else None
        if own is not None and (model is None or not concerns(name, model, per_model)):
            continue
        seen = _num(entry, "seen")
        if "until" in entry and (started is None or seen is None or seen <= started):
            for key in ("until", "seen", "signal", "reason"):
                entry.pop(key, None)
            cleared.append(name)
    return cleared


def after_call(
    acct: Any,
    index: int,
    outcome: Outcome,
    now: float,
    *,
    started: float | None,
    limits: Limits,
    readings: Iterable[Any] = (),
    counted: bool = True,
    per_model: bool = False,
    model: str | None = None,
) -> None:
    """Everything one settled attempt teaches about the account's windows.

    A quota hit marks its window until the account's deadline (the status just set),
    or, for a per-model window that leaves the status alone, until the reset the tool
    printed (else one window's length).
    """
    readings = list(readings)
    for reading in readings:
        if reading.used is not None:
            observe(acct, reading.window, reading.used, reading.resets, now, limits.rotate_at)
    if counted:
        tokens = sum(int(getattr(r, "tokens", 0) or 0) for r in readings) or None
        count(acct, now, [*limits.caps_for(index), *(r.window for r in readings)], tokens)
    if outcome.kind is OutcomeKind.OK:
        heal(acct, started, model=model, per_model=per_model)
    elif outcome.kind is OutcomeKind.QUOTA_EXHAUSTED:
        name = outcome.window  # else the window the tool itself reports full (Codex)
        full = [r.window for r in readings if r.used is not None and r.used >= 0.999]
        name = name or (full[0] if full else "")
        until = getattr(acct, "until", None)
        if not account_wide(name, per_model):
            reset = outcome.resets_at or default_reset(name, _utc(now))
            until = None if reset is None else reset.timestamp()
        if isinstance(until, (int, float)):
            mark(acct, name, float(until), now, reason=outcome.message)


def default_reset(name: str, now: datetime) -> datetime | None:
    """When a named window ends if the tool printed no time: one window's length from
    now (a 5-hour or weekly limit); None for a window of unknown length."""
    span = length(name) if name else None
    return None if span is None else now + span


# ------------------------------------------------------------------- reading
def blocked(
    acct: Any,
    index: int,
    now: float,
    limits: Limits = NO_LIMITS,
    *,
    model: str | None = None,
    per_model: bool = False,
    any_model: bool = False,
) -> Block | None:
    """The window that keeps the account out of the rotation now, or None; with
    ``per_model``, a window of another model than the call's ``model`` does not.

    ``any_model`` is for a view that knows no call (a list, a pytest run's start): only
    a window that bars every model keeps the account out; a per-model window does not
    (see :func:`model_blocks`)."""
    found = entries(acct)
    if not found:
        return None
    caps = limits.caps_for(index)

    def skip(name: str) -> bool:
        if any_model and not account_wide(name, per_model):
            return True
        return not concerns(name, model, per_model)

    for name, entry in found.items():
        if skip(name):
            continue
        until = _num(entry, "until")
        if until is not None and until > now:
            signal = str(entry.get("signal") or "text")
            said = "the tool's message" if signal == "text" else "the tool's usage report"
            return Block(name, signal, until, f"is spent ({said})")
    for name, cap in caps.items():
        if skip(name):
            continue
        entry = found.get(name, {})
        ends = _num(entry, "ends")
        calls = int(_num(entry, "calls") or 0)
        if calls >= cap and (ends is None or ends > now):
            return Block(name, "cap", ends, f"reached its cap ({calls}/{cap} calls)")
    for name, entry in found.items():
        if not entry.get("over") or limits.rotate_at is None:
            continue
        if skip(name):
            continue
        read = _num(entry, "read") or 0.0
        ends = _num(entry, "resets") or read + READING_LIFETIME.total_seconds()
        if ends > now:
            used = _num(entry, "used") or 0.0
            return Block(
                name,
                "telemetry",
                ends,
                f"is at {used:.0%} by the tool's own report (rotate_at {limits.rotate_at:g})",
            )
    return None


def model_blocks(
    acct: Any, index: int, now: float, limits: Limits = NO_LIMITS, *, per_model: bool = False
) -> list[Block]:
    """The per-model windows that keep their model's calls off the account now (spent,
    at a cap, or over ``rotate_at``), in name order; none unless ``per_model``."""
    if not per_model:
        return []
    names = {*entries(acct), *limits.caps_for(index)}
    found: list[Block] = []
    for model in sorted({m for n in names if (m := window_model(n)) is not None}):
        block = blocked(acct, index, now, limits, model=model, per_model=True)
        if block is not None and window_model(block.window) == model:
            found.append(block)
    return found


def summary(acct: Any, now: float) -> dict[str, dict[str, Any]]:
    """Each window as a view shows it: spent until, usage, reading (passed marks left out)."""
    shown: dict[str, dict[str, Any]] = {}
    for name, entry in sorted(entries(acct).items()):
        until = _num(entry, "until")
        ends = _num(entry, "ends")
        row: dict[str, Any] = {
            "spent_until": _iso(until) if until is not None and until > now else None,
            "calls": int(_num(entry, "calls") or 0) if ends is None or ends > now else 0,
            "tokens": int(_num(entry, "tokens") or 0) if ends is None or ends > now else 0,
            "used": _num(entry, "used"),
            "resets": _iso(_num(entry, "resets")),
            "signal": entry.get("signal") if until is not None and until > now else None,
        }
        shown[name] = row
    return shown


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else _utc(ts).isoformat()


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
