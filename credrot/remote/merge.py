"""One account's Redis hash and its local :class:`~credrot.state.AccountState`, both ways.

Redis keeps each window's mark apart (an exhausted deadline and a rate-limit deadline
can both stand); the local state keeps one status. :func:`to_local` picks the one that
rules now: disabled, then needs-login, then the timed mark with the latest deadline.
:func:`change` turns what one transaction did to an account into the arguments of the
``APPLY`` script: counter deltas and one mark operation.
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
    if status == st.READY.value:
        # The store holds every machine's marks: none there means this machine's window
        # marks were cleared elsewhere (a success, a reset, a hand mark).
        windows.heal(acct, None)


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
    ]


def pending_mark(index: int, acct: st.AccountState, now: float) -> list[str] | None:
    """A mark made while the store was down, replayed when it answers (counters are
    not: they were counted locally)."""
    if acct.effective_status(now) is st.READY:
        return None
    blank = replace(acct, status=st.READY.value, until=None, reason="")
    return change(index, blank, replace(acct, calls=blank.calls), now, None)


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
