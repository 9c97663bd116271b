"""What an outcome makes of an account's state: counters, and a status with its deadline.

Pure over one :class:`~credrot.state.AccountState`: no lock, no file, no clock but
``now`` — :mod:`.rotation` applies it inside a transaction.
"""

from __future__ import annotations

from datetime import datetime, timezone

from credrot import state as st
from credrot.kinds import STATUS_FOR, AccountStatus, Outcome, OutcomeKind
from credrot.profile import ToolProfile

#: Longest reason kept in the state file.
REASON_CAP = 200


def set_status(
    acct: st.AccountState, status: AccountStatus, until: datetime | None, reason: str
) -> None:
    acct.status = status.value
    acct.until = until.timestamp() if until is not None else None
    acct.reason = reason[:REASON_CAP]


def apply(
    acct: st.AccountState,
    outcome: Outcome,
    profile: ToolProfile,
    now: float,
    *,
    count_call: bool = True,
    until: datetime | None = None,
    mark: bool = True,
) -> bool:
    """Count the run and apply ``outcome``. True when the account is now marked unusable
    (the pool should move off it); a success clears a mark, an error changes no status.

    With ``mark=False`` only the counters change (a rate limit about to be retried).
    """
    if count_call:
        acct.count_call(now)
    acct.last_outcome = outcome.kind.value
    kind = outcome.kind
    if kind is OutcomeKind.OK:
        acct.successes += 1
        if acct.status != AccountStatus.READY:
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
    set_status(acct, STATUS_FOR[kind], when, outcome.message)
    return True


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)
