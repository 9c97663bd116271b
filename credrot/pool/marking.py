"""What an outcome makes of an account's state: counters, and a status with its deadline.

Pure over one :class:`~credrot.state.AccountState`: no lock, no file, no clock but
``now`` — :mod:`.rotation` applies it inside a transaction.

Outcomes of parallel calls arrive out of order, so marks are ordered by when they were
observed: a success clears only a mark observed before that call *started* (a call
that started earlier knows nothing of what another caller saw meanwhile), and a second
mark never shortens the deadline of one still in force.
"""

from __future__ import annotations

from datetime import datetime, timezone

from credrot import state as st
from credrot.kinds import STATUS_FOR, AccountStatus, Outcome, OutcomeKind
from credrot.profile import ToolProfile

#: Longest reason kept in the state file.
REASON_CAP = 200


def set_status(
    acct: st.AccountState,
    status: AccountStatus,
    until: datetime | None,
    reason: str,
    at: float | None = None,
) -> None:
    """Set the status as given (by hand, or a reset); ``at``: when it was observed."""
    acct.status = status.value
    acct.until = until.timestamp() if until is not None else None
    acct.reason = reason[:REASON_CAP]
    acct.marked_at = None if status is AccountStatus.READY else at


def _mark(
    acct: st.AccountState, status: AccountStatus, until: datetime | None, reason: str, now: float
) -> None:
    """A mark observed at ``now``; one still in force keeps its later deadline, and a
    parked account (needs login, disabled) stays parked by a timed mark."""
    held = AccountStatus(acct.status)
    in_force = acct.effective_status(now) is not AccountStatus.READY
    if in_force and not held.timed and status.timed:
        acct.marked_at = now
        return
    later = acct.until is not None and (until is None or until.timestamp() < acct.until)
    if in_force and held.timed and status.timed and later and acct.until is not None:
        until = _utc(acct.until)
    set_status(acct, status, until, reason, now)


def clears(acct: st.AccountState, started: float | None) -> bool:
    """Whether a success of a call that started at ``started`` clears the mark."""
    if acct.status == AccountStatus.READY:
        return False
    return started is None or acct.marked_at is None or acct.marked_at < started


def apply(
    acct: st.AccountState,
    outcome: Outcome,
    profile: ToolProfile,
    now: float,
    *,
    count_call: bool = True,
    until: datetime | None = None,
    mark: bool = True,
    started: float | None = None,
) -> bool:
    """Count the run and apply ``outcome``. True when the account is now marked unusable
    (the pool should move off it); a success clears a mark observed before the call
    ``started``, an error changes no status.

    With ``mark=False`` only the counters change (a rate limit about to be retried).
    """
    if count_call:
        acct.count_call(now)
    acct.last_outcome = outcome.kind.value
    kind = outcome.kind
    if kind is OutcomeKind.OK:
        acct.successes += 1
        if clears(acct, started):
            set_status(acct, AccountStatus.READY, None, "")
        return False
    if kind is OutcomeKind.ERROR:
        acct.errors += 1
        return False
    if kind is OutcomeKind.RATE_LIMITED:
        acct.rate_limits += 1
    if not mark:
        return False
    when: datetime | None = None
    if kind is OutcomeKind.QUOTA_EXHAUSTED:
        acct.quota_hits += 1
        when = until or outcome.resets_at or profile.default_reset(_utc(now))
    elif kind is OutcomeKind.RATE_LIMITED:
        when = until
        if when is None:
            wait = outcome.retry_after
            if wait is None:
                wait = profile.rate_limit_window.total_seconds()
            when = datetime.fromtimestamp(now + wait, timezone.utc)
    elif kind is OutcomeKind.AUTH_FAILED:
        acct.auth_failures += 1
    _mark(acct, STATUS_FOR[kind], when, outcome.message, now)
    return True


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)
