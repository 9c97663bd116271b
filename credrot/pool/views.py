"""What the pool reports: one :class:`AccountInfo` per account, a :class:`PoolStatus`
for "why is nothing usable", and the stats counters. Holds no secret.
"""

from __future__ import annotations

import stat
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from credrot import state as st
from credrot import windows
from credrot.kinds import AccountStatus
from credrot.pool.context import Pool


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


def _iso(ts: float | None) -> str | None:
    when = _utc(ts)
    return when.isoformat() if when is not None else None


def _iso_dt(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _read(pool: Pool, index: int) -> tuple[dict[str, object] | None, str | None]:
    slot = pool.slots.read(index)
    return slot.data, slot.why


@dataclass
class AccountInfo:
    """One account as ``list_accounts`` sees it. Holds no secret.

    Supports ``info["index"]`` as well as ``info.index`` for callers of the original API.
    """

    index: int
    path: Path
    active: bool
    status: AccountStatus
    until: datetime | None
    reason: str
    valid: bool
    invalid_reason: str | None
    unsafe_permissions: bool
    mode: int
    calls: int
    successes: int
    quota_hits: int
    switches_to: int
    calls_today: int
    last_used: datetime | None
    token_expiry: datetime | None
    #: Quota windows as :func:`credrot.windows.summary` shows them (plain data).
    windows: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Per-model windows that keep only their model's calls off a usable account now
    #: (``week:opus``), each with when it is free again.
    model_spent: dict[str, datetime | None] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.valid and self.status == AccountStatus.READY

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["mode"] = oct(self.mode)
        data["usable"] = self.usable
        for key in ("until", "last_used", "token_expiry"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        data["model_spent"] = {k: _iso_dt(v) for k, v in self.model_spent.items()}
        return data


#: Plural status words for a pool headline ("all 3 accounts need login").
_STATUS_WORDS: dict[str, str] = {
    st.EXHAUSTED: "exhausted",
    st.RATE_LIMITED: "rate-limited",
    st.NEEDS_LOGIN: "need login",
    st.DISABLED: "disabled",
    AccountStatus.INVALID: "invalid",
    AccountStatus.TRIED: "tried",
}


@dataclass
class PoolStatus:
    total: int
    usable: list[int]
    unusable: dict[int, tuple[str, datetime | None, str]]
    first_reset: datetime | None

    def headline(self, tool: str) -> str:
        """Why nothing is usable, in a few words: ``all 5 qwen accounts exhausted``,
        ``the only qwen account needs login``, ``all 3 qwen accounts are unusable (1
        disabled, 2 exhausted)``. The surfaces add the reset time in their own format."""
        if self.total == 0:
            return f"no {tool} accounts in the pool (add one with `credrot accounts add`)"
        kinds: dict[str, int] = {}
        for kind, _until, _why in self.unusable.values():
            kinds[kind] = kinds.get(kind, 0) + 1
        single = self.total == 1
        subject = f"the only {tool} account" if single else f"all {self.total} {tool} accounts"
        if len(kinds) == 1:
            kind = next(iter(kinds))
            word = _STATUS_WORDS.get(kind, kind.replace("_", " "))
            if single:
                word = "needs login" if kind == st.NEEDS_LOGIN else f"is {word}"
            return f"{subject} {word}"
        counts = ", ".join(
            f"{n} {_STATUS_WORDS.get(k, k.replace('_', ' '))}" for k, n in sorted(kinds.items())
        )
        return f"{subject} {'is' if single else 'are'} unusable ({counts})"

    def describe(self, tool: str) -> str:
        """A one-line account of why nothing is usable, e.g. for a failed call."""
        if self.total == 0:
            return f"no {tool} accounts in the pool (add one with `credrot accounts add`)"
        parts = []
        for index, (status, until, _reason) in sorted(self.unusable.items()):
            label = status.replace("_", " ")
            if until is not None:
                label += f" until {until.strftime('%Y-%m-%d %H:%M UTC')}"
            parts.append(f"#{index} {label}")
        reset = (
            f"; first reset {self.first_reset.strftime('%Y-%m-%d %H:%M UTC')}"
            if self.first_reset
            else "; none resets by itself"
        )
        if self.usable:
            return f"{len(self.usable)} of {self.total} {tool} accounts usable" + (
                f" ({', '.join(parts)})" if parts else ""
            )
        noun = (
            f"the only {tool} account is"
            if self.total == 1
            else (f"all {self.total} {tool} accounts are")
        )
        return f"{noun} unusable ({', '.join(parts)}){reset}"


def list_accounts(
    pool: Pool, *, for_call: bool = False, model: str | None = None
) -> list[AccountInfo]:
    """Every account with what is known of it (no lock: a moment-old view is fine).

    With no call in view, a per-model window (``week:opus``) leaves its account usable,
    named in ``model_spent``: some model may still use it. ``for_call`` judges for a call
    that asks for ``model`` (None: the tool's default, which may be that very model)."""
    state = pool.store.load()
    now = time.time()
    per_model = pool.profile.per_model_windows
    active = pool.slots.linked()
    if active is None:
        active = state.current
    infos: list[AccountInfo] = []
    for index, path in pool.slots.listing().items():
        acct = state.accounts.get(index) or st.AccountState()
        data, why = _read(pool, index)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            mode = 0
        status = acct.effective_status(now) if data is not None else AccountStatus.INVALID
        until = _utc(acct.until) if status in st.TIMED else None
        reason = acct.reason if status != st.READY else ""
        block = None
        if status is st.READY:
            block = windows.blocked(
                acct,
                index,
                now,
                pool.limits,
                model=model,
                per_model=per_model,
                any_model=not for_call,
            )
        model_spent: dict[str, datetime | None] = {}
        if block is None and status is st.READY and not for_call:
            model_spent = {
                b.window: _utc(b.until)
                for b in windows.model_blocks(acct, index, now, pool.limits, per_model=per_model)
            }
        if block is not None:  # a window keeps it out: spent, at its cap, or over rotate_at
            status, until, reason = (
                AccountStatus.EXHAUSTED,
                _utc(block.until),
                block.sentence(index),
            )
        expiry = pool.profile.expiry(data) if data is not None else None
        infos.append(
            AccountInfo(
                index=index,
                path=path,
                active=index == active,
                status=status,
                until=until,
                reason=reason,
                valid=data is not None,
                invalid_reason=why,
                unsafe_permissions=bool(mode & 0o077),
                mode=mode,
                calls=acct.calls,
                successes=acct.successes,
                quota_hits=acct.quota_hits,
                switches_to=acct.switches_to,
                calls_today=acct.calls_on(now),
                last_used=_utc(acct.last_used),
                token_expiry=_utc(expiry),
                windows=windows.summary(acct, now),
                model_spent=model_spent,
            )
        )
    return infos


def pool_status(
    pool: Pool,
    exclude: set[int] | frozenset[int] = frozenset(),
    *,
    for_call: bool = False,
    model: str | None = None,
) -> PoolStatus:
    """Which accounts a call could still use, and why each other one cannot; with
    ``for_call``, for a call that asks for ``model`` (see :func:`list_accounts`)."""
    infos = list_accounts(pool, for_call=for_call, model=model)
    usable = [i.index for i in infos if i.usable and i.index not in exclude]
    unusable: dict[int, tuple[str, datetime | None, str]] = {}
    for info in infos:
        if info.index in usable:
            continue
        if info.index in exclude and info.usable:
            unusable[info.index] = (AccountStatus.TRIED, None, "")
        else:
            unusable[info.index] = (info.status, info.until, info.invalid_reason or info.reason)
    resets = [u for (_s, u, _r) in unusable.values() if u is not None]
    return PoolStatus(len(infos), usable, unusable, min(resets) if resets else None)


def stats(pool: Pool) -> dict[str, Any]:
    """The counters ``credrot stats`` shows (no secrets)."""
    state = pool.store.load()
    infos = list_accounts(pool)
    per = {
        str(i.index): {
            "tool_runs": i.calls,
            "calls": i.calls,
            "successes": i.successes,
            "quota_hits": i.quota_hits,
            "switches_to": i.switches_to,
            "calls_today": i.calls_today,
            "status": i.status,
            "active": i.active,
            "last_used": i.last_used.isoformat() if i.last_used else None,
            "windows": i.windows,
            "model_spent": {k: _iso_dt(v) for k, v in i.model_spent.items()},
        }
        for i in infos
    }
    most = max(infos, key=lambda i: (i.calls, -i.index), default=None)
    return {
        "tool": pool.profile.name,
        "home": str(pool.home),
        "total_accounts": len(infos),
        "usable_accounts": sum(1 for i in infos if i.usable),
        "current_account": state.current,
        "strategy": pool.strategy,
        # requests: what was asked (wrapper calls); tool_runs: the runs they took, one per
        # account tried (``calls`` is the older name of tool_runs); successes: answers.
        "requests": state.requests,
        "tool_runs": sum(i.calls for i in infos),
        "calls": sum(i.calls for i in infos),
        "successes": sum(i.successes for i in infos),
        "quota_hits": sum(i.quota_hits for i in infos),
        "switches_total": state.switches_total,
        "pool_exhausted": state.pool_exhausted,
        "most_used": most.index if most is not None and most.calls else None,
        "last_switch": _iso(state.last_switch),
        "last_switch_from": state.last_switch_from,
        "last_switch_to": state.last_switch_to,
        "accounts": per,
    }
