"""One account's Redis hash and its local :class:`~credrot.state.AccountState`, both ways.

Redis keeps each window's mark apart (an exhausted deadline and a rate-limit deadline
can both stand); the local state keeps one status. :func:`to_local` picks the one that
rules now: disabled, then needs-login, then the timed mark with the latest deadline,
and each quota window's mark (``w:<name>:until`` ...; a window's usage counters stay
per machine). :func:`change` turns what one transaction did to an account into the
arguments of the ``APPLY`` script: counter deltas, one mark operation and the window
marks made or cleared.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

from credrot import state as st
from credrot import windows
from credrot.remote.scripts import COUNTERS, TIMED, UNTIMED

Hash = dict[bytes, bytes]


def _text(h: Hash, name: str) -> str:
    value = h.get(name.encode())
    return value.decode("utf-8", "replace") if value is not None else ""


def _num(h: Hash, name: str) -> float:
    try:
        return float(_text(h, name) or 0)
    except ValueError:
        return 0.0


def to_local(h: Hash, acct: st.AccountState, now: float) -> None:
    """Overwrite ``acct`` with what the store knows (it holds every machine's view)."""
    for name in COUNTERS:
        setattr(acct, name, int(_num(h, name)))
    acct.day = _text(h, "day")
    acct.calls_today = int(_num(h, "calls_today"))
    last = _num(h, "last_used")
    acct.last_used = last or None
    acct.last_outcome = _text(h, "last_outcome")
    status, until, reason = st.READY.value, None, ""
    for name in UNTIMED:
        if f"{name}_at".encode() in h:
            status, reason = name, _text(h, f"{name}_reason")
            break
    else:
        best = 0.0
        for name in TIMED:
            deadline = _num(h, f"{name}_until")
            if deadline > best:
                status, until, reason, best = name, deadline, _text(h, f"{name}_reason"), deadline
        if until is not None and until <= now:
            status, until, reason = st.READY.value, None, ""
    acct.status, acct.until, acct.reason = status, until, reason
    _windows_to_local(h, acct)


#: A window mark's fields (``w:<name>:<field>`` in the store); its counters stay local.
_MARK = ("until", "seen", "signal", "reason")


def _windows_to_local(h: Hash, acct: st.AccountState) -> None:
    """Install the store's window marks: the later deadline wins, and a mark the store
    does not hold was cleared elsewhere (a success, a reset, a hand mark)."""
    held: dict[str, dict[str, str]] = {}
    for key, value in h.items():
        name = key.decode("utf-8", "replace")
        if name.startswith("w:"):
            window, _, part = name[2:].rpartition(":")
            held.setdefault(window, {})[part] = value.decode("utf-8", "replace")
    entries = windows.entries(acct)
    for name, entry in entries.items():
        if "until" in entry and _float(held.get(name, {}).get("until")) is None:
            for part in _MARK:
                entry.pop(part, None)
    for name, got in held.items():
        until = _float(got.get("until"))
        if until is None:
            continue
        entry = entries.setdefault(name, {})
        mine = _float(entry.get("until"))
        seen = _float(got.get("seen")) or 0.0
        if mine is None or until > mine:
            entry.update(until=until, seen=seen, signal=got.get("signal") or "text")
            entry["reason"] = got.get("reason", "")
            ends = _float(got.get("ends"))
            if ends:
                entry["ends"] = ends
        elif until == mine and seen > (_float(entry.get("seen")) or 0.0):
            entry["seen"] = seen


def _float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _window_ops(before: st.AccountState, after: st.AccountState, at: float) -> list[str]:
    """Per window whose mark changed: (name, mark, until, seen, signal, reason, ends), or
    (name, clear, 0, at, '', '', 0) for a mark this transaction cleared."""
    old, new = windows.entries(before), windows.entries(after)
    ops: list[str] = []
    for name, entry in sorted(new.items()):
        until = _float(entry.get("until"))
        was = old.get(name, {})
        if until is None or (entry.get("until"), entry.get("seen")) == (
            was.get("until"),
            was.get("seen"),
        ):
            continue
        ends = _float(entry.get("ends")) or until
        ops += [name, "mark", repr(until), repr(_float(entry.get("seen")) or 0.0)]
        ops += [str(entry.get("signal") or "text"), str(entry.get("reason") or ""), repr(ends)]
    for name, was in sorted(old.items()):
        if "until" in was and "until" not in new.get(name, {}):
            ops += [name, "clear", "0", repr(at), "", "", "0"]
    return ops


def change(
    index: int, before: st.AccountState, after: st.AccountState, now: float, started: float | None
) -> list[str] | None:
    """The ``APPLY`` arguments for what changed on one account, or None if nothing did."""
    if vars(before) == vars(after):
        return None
    op, status, until, at = "none", after.status, 0.0, now
    moved = (before.status, before.until, before.reason) != (
        after.status,
        after.until,
        after.reason,
    )
    if moved:
        if after.status == st.READY.value:
            succeeded = after.successes > before.successes and after.last_outcome == "ok"
            op = "success" if succeeded else "clear"
            if succeeded and started is not None:
                at = started  # a success clears only marks seen before its call began
        else:
            op = "mark"
            until = after.until or 0.0
    delta = [str(getattr(after, n) - getattr(before, n)) for n in COUNTERS]
    last = after.last_used if after.last_used != before.last_used else None
    healed = after.successes > before.successes and after.last_outcome == "ok"
    cleared_at = started if healed and started is not None else now
    return [
        str(index),
        repr(now),
        op,
        status,
        repr(until),
        repr(at),
        after.reason,
        after.day if after.calls != before.calls else "",
        repr(last) if last is not None else "",
        after.last_outcome,
        *delta,
        *_window_ops(before, after, cleared_at),
    ]


def pending_mark(index: int, acct: st.AccountState, now: float) -> list[str] | None:
    """A mark made while the store was down, replayed when it answers (counters are
    not: they were counted locally); window marks still in force go with it."""
    live = {
        name: dict(entry)
        for name, entry in windows.entries(acct).items()
        if (_float(entry.get("until")) or 0.0) > now
    }
    if acct.effective_status(now) is st.READY and not live:
        return None
    blank = replace(acct, status=st.READY.value, until=None, reason="", windows={})
    return change(index, blank, replace(acct, windows=live), now, None)


def push_args(index: int, acct: st.AccountState) -> list[str]:
    """The ``PUSH_ACCT`` arguments for one account as this machine knows it."""
    at = acct.marked_at or (acct.until or 0.0)
    args = [
        str(index),
        acct.status,
        repr(acct.until or 0.0),
        repr(at),
        acct.reason,
        acct.day,
        str(acct.calls_today),
        repr(acct.last_used) if acct.last_used is not None else "",
        acct.last_outcome,
        *(str(getattr(acct, n)) for n in COUNTERS),
    ]
    for name, window in sorted(acct.windows.items()):
        if isinstance(window, dict):
            args += [name, json.dumps(window, sort_keys=True), repr(_newest(window))]
    return args


def _newest(window: dict[str, object]) -> float:
    """A window's newest moment: what two machines' copies of it are ordered by."""
    times = [v for k, v in window.items() if k in _TIMES and isinstance(v, (int, float))]
    return float(max(times, default=0.0))


_TIMES = ("until", "seen", "read", "since", "resets")


def windows_into(h: Hash, acct: st.AccountState) -> list[str]:
    """Take each window the store holds a newer copy of; the names taken."""
    taken = []
    for key, value in h.items():
        name = key.decode("utf-8", "replace")
        if not name.startswith("win:") or name.endswith(":t"):
            continue
        name = name[4:]
        try:
            window = json.loads(value)
        except ValueError:
            continue
        mine = acct.windows.get(name)
        if isinstance(window, dict) and (
            not isinstance(mine, dict) or _newest(window) > _newest(mine)
        ):
            acct.windows[name] = window
            taken.append(name)
    return taken


def pairs(flat: list[bytes]) -> Hash:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


def today(now: float | None = None) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if now is None else now))
