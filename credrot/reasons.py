"""Why an account is out of the rotation, and why the pool moved: one sentence each.

Every ``switch`` line of ``rotation.log`` carries one of these sentences as its
``reason`` (with ``cause``, ``window``, ``signal`` and ``until`` beside it), the pytest
summary repeats it, and ``credrot explain`` says it per account. A sentence names the
window, the signal that spent it (the tool's quota text, its own usage report, a cap,
a mark by hand) and when it ends:

``#2 spent its 5h window (the tool's quota message; resets 19:12 UTC)``

Pure over one account's state and ``now``; the words live here and nowhere else.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from credrot import windows
from credrot.kinds import AccountStatus

#: What each signal is called in a sentence.
SIGNALS: Mapping[str, str] = {
    "text": "the tool's quota message",
    "telemetry": "the tool's own usage report",
    "cap": "the configured cap",
    "hand": "marked by hand",
    "status": "the tool's message",
}
#: The causes a switch is made for (``cause`` in the audit line), and what an old log
#: line that held only the cause as its reason meant.
CAUSES: Mapping[str, str] = {
    "manual": "asked for by hand",
    "removed": "the active account was removed",
    "round-robin": "round-robin: each call takes the next account",
    "least-used": "least-used: the account with the fewest calls today",
    "current unusable": "the active account was unusable",
    "quota_exhausted": "the active account's quota was spent",
    "rate_limited": "the active account was rate limited",
    "auth_failed": "the active account needed a new login",
    "disabled": "the active account was disabled",
}
#: Causes that mean "the account the pool was on could not take the call".
OUT_CAUSES = frozenset(
    {"current unusable", "quota_exhausted", "rate_limited", "auth_failed", "disabled", "removed"}
)


@dataclass(frozen=True)
class Why:
    """One sentence and what it is made of (kept beside it in the audit line)."""

    sentence: str
    window: str | None = None
    signal: str | None = None
    until: float | None = None

    def fields(self) -> dict[str, Any]:
        """The audit line's fields besides ``reason`` (only those known)."""
        out: dict[str, Any] = {}
        if self.window:
            out["window"] = self.window
        if self.signal:
            out["signal"] = self.signal
        if self.until is not None:
            out["until"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(self.until))
        return out


def when(until: float, now: float) -> str:
    """``19:12 UTC`` within a day from now, else ``2026-12-05 19:12 UTC``."""
    if 0 <= until - now <= 86400:
        return time.strftime("%H:%M UTC", time.gmtime(until))
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(until))


def window_label(name: str) -> str:
    """``5h window``, ``week window for opus``, ``quota`` (a window the tool did not name)."""
    if not name or name == windows.UNNAMED:
        return "quota"
    base, _, model = name.partition(":")
    return f"{base} window for {model}" if model else f"{base} window"


def _tail(signal: str, until: float | None, now: float, extra: str = "") -> str:
    said = SIGNALS.get(signal, signal)
    if extra:
        said = f"{said}, {extra}"
    if until is None:
        return f"({said})"
    verb = "resets" if signal in ("text", "telemetry", "cap") else "until"
    return f"({said}; {verb} {when(until, now)})"


def of_block(
    index: int, block: windows.Block, now: float, entry: Mapping[str, Any], cap: int | None
) -> Why:
    """The sentence for a window that keeps account ``index`` out."""
    label = window_label(block.window)
    if block.signal == "cap":
        calls = entry.get("calls")
        counted = f"{calls}/{cap} calls" if isinstance(calls, int) and cap else ""
        tail = _tail("cap", block.until, now, counted)
        return Why(
            f"#{index} reached the cap of its {label} {tail}", block.window, "cap", block.until
        )
    if block.signal == "telemetry":
        used = entry.get("used")
        share = f"{used:.0%}" if isinstance(used, (int, float)) else "over its threshold"
        tail = _tail("telemetry", block.until, now)
        return Why(
            f"#{index}'s {label} is at {share} {tail}", block.window, "telemetry", block.until
        )
    tail = _tail(block.signal, block.until, now)
    return Why(f"#{index} spent its {label} {tail}", block.window, block.signal, block.until)


def of_status(index: int, acct: Any, now: float) -> Why | None:
    """The sentence for an account its status keeps out (None: the status lets it in)."""
    status = acct.effective_status(now)
    if status is AccountStatus.READY:
        return None
    until = acct.until if status.timed and isinstance(acct.until, (int, float)) else None
    by_tool = acct.last_outcome == _OUTCOME_OF.get(status)
    signal = ("text" if status is AccountStatus.EXHAUSTED else "status") if by_tool else "hand"
    if status is AccountStatus.EXHAUSTED:
        return Why(f"#{index} spent its quota {_tail(signal, until, now)}", None, signal, until)
    if status is AccountStatus.RATE_LIMITED:
        return Why(f"#{index} is rate limited {_tail(signal, until, now)}", None, signal, until)
    if status is AccountStatus.NEEDS_LOGIN:
        said = "the tool refused its credential" if by_tool else SIGNALS["hand"]
        return Why(f"#{index} needs a new login ({said})", None, signal)
    said = "the tool says the plan is gone" if by_tool else SIGNALS["hand"]
    return Why(f"#{index} is disabled ({said}; waiting will not bring it back)", None, signal)


_OUTCOME_OF = {
    AccountStatus.EXHAUSTED: "quota_exhausted",
    AccountStatus.RATE_LIMITED: "rate_limited",
    AccountStatus.NEEDS_LOGIN: "auth_failed",
    AccountStatus.DISABLED: "disabled",
}


def out(
    acct: Any,
    index: int,
    now: float,
    limits: windows.Limits = windows.NO_LIMITS,
    *,
    model: str | None = None,
    per_model: bool = False,
) -> Why | None:
    """Why account ``index`` cannot take a call now, or None when it can.

    A window mark says more than the account's status (which window, which signal), so
    it comes first while the status is a spent quota; a login or entitlement problem
    comes before any window.
    """
    status = acct.effective_status(now)
    if status not in (AccountStatus.READY, AccountStatus.EXHAUSTED):
        return of_status(index, acct, now)
    block = windows.blocked(acct, index, now, limits, model=model, per_model=per_model)
    if block is not None:
        entry = windows.entries(acct).get(block.window, {})
        cap = limits.caps_for(index).get(block.window)
        return of_block(index, block, now, entry, cap)
    return of_status(index, acct, now)


def switch(
    cause: str,
    before: int | None,
    acct: Any | None,
    to: int,
    now: float,
    limits: windows.Limits = windows.NO_LIMITS,
    *,
    model: str | None = None,
    per_model: bool = False,
    invalid: str | None = None,
) -> Why:
    """Why the pool moves from ``before`` to ``to``: the cause said as a sentence, with
    the window, signal and deadline of the account left behind when it was out (for a
    call naming ``model``); ``invalid``: why its file is no credential, if it is not."""
    if cause in OUT_CAUSES:
        if before is None:
            return Why(f"no account was active; #{to} is the first usable one")
        if cause == "removed":
            return Why(f"#{before} was removed")
        if invalid is not None:
            return Why(f"#{before} is not a valid credential ({invalid})")
        found = None
        if acct is not None:
            found = out(acct, before, now, limits, model=model, per_model=per_model)
        if found is not None:
            return found
        if cause == "current unusable":
            return Why(f"#{before} was already tried by this call")
    return Why(CAUSES.get(cause, cause))


def readable(reason: str) -> str:
    """A reason from the log as a sentence: an old line held only the cause's code."""
    return CAUSES.get(reason, reason)


# ------------------------------------------------------------------ explain
NO_ACCOUNTS = "no {tool} accounts in {home}; add one with `credrot accounts add`"


def pool_headline(tool: str, home: str, total: int, usable: int, current: int | None) -> str:
    """``credrot explain``'s first line."""
    on = f", on #{current}" if current is not None else ""
    return f"{tool} pool in {home}: {total} accounts, {usable} usable{on}"


@dataclass(frozen=True)
class LastSwitch:
    """The latest switch of the log that left or reached one account."""

    ago: str  # ``12m`` (see :func:`credrot.report.human_delta`)
    source: int | None
    target: int
    reason: str  # as the log holds it (a sentence, or an old line's cause)
    until: float | None = None


def headroom(
    acct: Any, index: int, now: float, limits: windows.Limits = windows.NO_LIMITS
) -> str | None:
    """How close a usable account is to being kept out: its fullest window, by its cap
    (calls counted in the current period) or by the tool's own reading; None if unknown."""
    best: tuple[float, str] | None = None
    caps = limits.caps_for(index)
    for name, entry in windows.entries(acct).items():
        label = window_label(name)
        ends, calls = entry.get("ends"), entry.get("calls")
        live = not isinstance(ends, (int, float)) or ends > now
        cap = caps.get(name)
        if cap and isinstance(calls, int) and live:
            share = calls / cap
            said = f"{calls}/{cap} calls of its {name} cap"
            if best is None or share > best[0]:
                best = (share, said)
        used = entry.get("used")
        resets = entry.get("resets")
        fresh = not isinstance(resets, (int, float)) or resets > now
        if isinstance(used, (int, float)) and not isinstance(used, bool) and fresh:
            said = f"its {label} at {used:.0%} by the tool's own usage report"
            if best is None or used > best[0]:
                best = (float(used), said)
    return None if best is None else best[1]


def explain(
    index: int,
    now: float,
    *,
    invalid: str | None = None,
    why: Why | None = None,
    active: bool = False,
    last: LastSwitch | None = None,
    per_model: bool = False,
    room: str | None = None,
) -> str:
    """One sentence for ``credrot explain``: why account ``index`` is skipped or used (with
    ``room``, how full its fullest window is), and what the last switch that concerned it
    said."""
    if invalid is not None:
        head = f"#{index} is not a valid credential ({invalid}), so it is never used"
    elif why is not None and per_model and windows.window_model(why.window or ""):
        model = windows.window_model(why.window or "")
        head = (
            f"{why.sentence}, so calls for {model} skip it (a call naming another model may use it)"
        )
    elif why is not None:
        head = f"{why.sentence}, so calls skip it"
    elif last is not None and last.source == index and last.until is not None and last.until <= now:
        passed = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last.until))
        head = f"#{index} is usable again (what kept it out ended {passed})"
        head += " and active: the next call starts on it" if active else ""
    elif active:
        head = f"#{index} is usable and active: the next call starts on it"
    else:
        head = f"#{index} is usable"
    if room is not None and why is None and invalid is None:
        head += f" ({room})"
    if last is None:
        return head
    said = readable(last.reason)
    if last.source == index:
        if why is not None and said == why.sentence:
            return f"{head}; the pool left it {last.ago} ago for that reason"
        return f"{head}; the pool left it {last.ago} ago: {said}"
    came = f" from #{last.source}" if last.source is not None else ""
    return f"{head}; the pool moved here{came} {last.ago} ago: {said}"


__all__ = [
    "CAUSES",
    "SIGNALS",
    "LastSwitch",
    "Why",
    "explain",
    "headroom",
    "out",
    "pool_headline",
    "readable",
    "switch",
    "when",
    "window_label",
]
