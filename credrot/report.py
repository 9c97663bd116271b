"""How the pool is shown: the account table, the stats, JSON and Prometheus text.

Pure functions over what :class:`~credrot.manager.AccountManager` reports, so every
surface prints the same thing. Nothing here reads a credential: the inputs hold none.

One vocabulary on every screen: a *request* is what the user asked (one wrapper call, one
prompt); it takes one or more *tool runs* (one per account tried, and per rate-limit
retry); a *success* is a request answered (the run that answered it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from credrot.manager import AccountInfo

#: Every status an account can show, in the order the Prometheus state set lists them.
STATUSES = ("ready", "exhausted", "rate_limited", "needs_login", "disabled", "invalid")


def human_delta(seconds: float) -> str:
    """``40s``, ``5m``, ``3h 12m``, ``2d 4h``: short, for a terminal column."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s}s"
    minutes, _ = divmod(s, 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def relative(when: datetime, now: datetime) -> str:
    """``in 3h 12m`` or ``5m ago``."""
    delta = (when - now).total_seconds()
    return f"in {human_delta(delta)}" if delta >= 0 else f"{human_delta(delta)} ago"


def local_time(when: datetime, now: datetime) -> str:
    """The time in the local zone; the date only when it is not today."""
    local = when.astimezone()
    fmt = "%H:%M %Z" if local.date() == now.astimezone().date() else "%Y-%m-%d %H:%M %Z"
    return local.strftime(fmt).strip()


def status_text(info: AccountInfo, now: datetime) -> str:
    """One account's state in words, e.g. ``exhausted until 01:00 CET (in 17h 48m)``."""
    if not info.valid:
        text = f"invalid file ({info.invalid_reason})" if info.invalid_reason else "invalid file"
    elif info.status in ("exhausted", "rate_limited"):
        text = info.status.replace("_", "-")
        if info.until is not None:
            text += f" until {local_time(info.until, now)} ({relative(info.until, now)})"
    else:
        text = info.status.replace("_", " ")
        if info.model_spent:
            text += f" ({model_spent_text(info.model_spent, now)})"
    if info.unsafe_permissions:
        text += f", unsafe permissions {info.mode:04o}"
    return text


def status_word(status: str, model_spent: Iterable[str] = ()) -> str:
    """``ready``, ``rate limited``...; a usable account spent for one model says which
    window: ``ready (week:opus spent)``."""
    word = str(status).replace("_", " ")
    spent = ", ".join(model_spent)
    return f"{word} ({spent} spent)" if spent else word


def model_spent_text(spent: Mapping[str, datetime | None], now: datetime) -> str:
    """The per-model windows a usable account is spent in: ``week:opus spent until 19:12``."""
    return "; ".join(
        f"{name} spent" + ("" if until is None else f" until {local_time(until, now)}")
        for name, until in spent.items()
    )


def windows_text(shown: Mapping[str, Mapping[str, Any]], now: datetime) -> str:
    """An account's windows in a few words: ``5h spent until 19:12 UTC; week 12 runs``."""
    parts = []
    for name, row in shown.items():
        bits = []
        if row.get("spent_until"):
            until = datetime.fromisoformat(row["spent_until"])
            bits.append(f"spent until {local_time(until, now)}")
        if row.get("calls"):
            bits.append(f"{row['calls']} runs")
        if row.get("used") is not None:
            bits.append(f"{float(row['used']):.0%} used")
        if bits:
            parts.append(f"{name} {', '.join(bits)}")
    return "; ".join(parts) or "-"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines


def accounts_table(infos: Sequence[AccountInfo], now: datetime | None = None) -> list[str]:
    """The lines of ``credrot accounts list``: ``*`` marks the active account."""
    now = now or datetime.now(timezone.utc)
    rows: list[list[str]] = [["", "#", "status", "runs today", "last used", "token expires"]]
    shows_windows = any(info.windows for info in infos)
    if shows_windows:
        rows[0].append("windows")
    for info in infos:
        expires = "-"
        if info.token_expiry is not None:
            expires = relative(info.token_expiry, now)
            if info.token_expiry < now:
                expires = f"expired {expires}"
        rows.append(
            [
                "*" if info.active else "",
                str(info.index),
                status_text(info, now),
                str(info.calls_today),
                relative(info.last_used, now) if info.last_used else "never",
                expires,
            ]
            + ([windows_text(info.windows, now)] if shows_windows else [])
        )
    return _table(rows)


def accounts_json(tool: str, home: str, infos: Iterable[AccountInfo]) -> str:
    accounts = [info.as_dict() for info in infos]
    return json.dumps({"tool": tool, "home": home, "accounts": accounts}, indent=2)


def stats_lines(stats: Mapping[str, Any], now: datetime | None = None) -> list[str]:
    """The human form of ``get_stats()``: totals, then one row per account."""
    now = now or datetime.now(timezone.utc)
    current = stats.get("current_account")
    lines = [
        f"{stats['tool']} pool in {stats['home']}: {stats['total_accounts']} accounts, "
        f"{stats['usable_accounts']} usable, current "
        + (f"#{current}" if current is not None else "none")
        + f" (strategy {stats['strategy']})",
        f"requests {stats.get('requests', 0)}, tool runs {stats['calls']}, "
        f"successes {stats['successes']}, quota hits {stats['quota_hits']}, "
        f"switches {stats['switches_total']}, pool exhausted {stats['pool_exhausted']} times",
    ]
    per: Mapping[str, Mapping[str, Any]] = stats.get("accounts") or {}
    most = stats.get("most_used")
    most_text = "none"
    if most is not None:
        runs = per.get(str(most), {}).get("calls", 0)
        most_text = f"#{most} ({runs} tool run{'s' if runs != 1 else ''})"
    last = stats.get("last_switch")
    last_text = "never"
    if last:
        when = datetime.fromisoformat(last)
        last_text = (
            f"{relative(when, now)} (#{stats.get('last_switch_from')} -> "
            f"#{stats.get('last_switch_to')})"
        )
    lines.append(f"most used: {most_text}; last switch: {last_text}")
    if per:
        rows = [
            ["", "#", "tool runs", "successes", "quota hits", "switches to", "runs today", "status"]
        ]
        shows_windows = any(acct.get("windows") for acct in per.values())
        if shows_windows:
            rows[0].append("windows")
        for key, acct in per.items():
            rows.append(
                [
                    "*" if acct.get("active") else "",
                    key,
                    str(acct["calls"]),
                    str(acct["successes"]),
                    str(acct["quota_hits"]),
                    str(acct["switches_to"]),
                    str(acct["calls_today"]),
                    status_word(acct["status"], acct.get("model_spent") or ()),
                ]
                + ([windows_text(acct.get("windows") or {}, now)] if shows_windows else [])
            )
        lines.append("")
        lines.extend(_table(rows))
    return lines


def stats_json(stats: Mapping[str, Any]) -> str:
    return json.dumps(stats, indent=2, default=str)


# ------------------------------------------------------------------ Prometheus
def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


def _num(value: float | int | bool) -> str:
    return str(int(value)) if isinstance(value, (bool, int)) else repr(float(value))


class _Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self, name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float | int]]
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{labels} {_num(value)}")


def prometheus(
    stats: Mapping[str, Any], infos: Sequence[AccountInfo], now: datetime | None = None
) -> str:
    """The text exposition format (0.0.4), for node_exporter's textfile collector.

    Every metric is named ``credrot_*`` and labelled ``tool`` (and ``account``).
    """
    del now  # the values are absolute times; kept for a uniform signature
    tool = str(stats["tool"])
    pool = _labels(tool=tool)
    out = _Exposition()
    out.family(
        "credrot_accounts", "gauge", "Accounts in the pool.", [(pool, stats["total_accounts"])]
    )
    out.family(
        "credrot_accounts_usable",
        "gauge",
        "Accounts that can take a request now.",
        [(pool, stats["usable_accounts"])],
    )
    current = stats.get("current_account")
    out.family(
        "credrot_current_account",
        "gauge",
        "Number of the active account (0 when none).",
        [(pool, current or 0)],
    )
    out.family(
        "credrot_switches_total",
        "counter",
        "Times the active account changed.",
        [(pool, stats["switches_total"])],
    )
    out.family(
        "credrot_pool_exhausted_total",
        "counter",
        "Requests that found no usable account.",
        [(pool, stats["pool_exhausted"])],
    )
    out.family(
        "credrot_requests_total",
        "counter",
        "Requests made (one per prompt); each takes one or more tool runs.",
        [(pool, stats.get("requests", 0))],
    )
    last = stats.get("last_switch")
    if last:
        out.family(
            "credrot_last_switch_timestamp_seconds",
            "gauge",
            "When the active account last changed (Unix time).",
            [(pool, datetime.fromisoformat(last).timestamp())],
        )

    def per(attr: str) -> list[tuple[str, float | int]]:
        return [(_labels(tool=tool, account=str(i.index)), getattr(i, attr)) for i in infos]

    out.family(
        "credrot_calls_total",
        "counter",
        "Tool runs per account (one per account a request tried).",
        per("calls"),
    )
    out.family(
        "credrot_successes_total",
        "counter",
        "Requests answered, per account (by its tool run).",
        per("successes"),
    )
    out.family(
        "credrot_quota_hits_total", "counter", "Quota exhaustions per account.", per("quota_hits")
    )
    out.family(
        "credrot_switches_to_total",
        "counter",
        "Times the pool moved to the account.",
        per("switches_to"),
    )
    out.family(
        "credrot_calls_today",
        "gauge",
        "Tool runs per account on the current UTC day.",
        per("calls_today"),
    )
    out.family(
        "credrot_account_usable",
        "gauge",
        "1 when the account can take a request now.",
        [(_labels(tool=tool, account=str(i.index)), i.usable) for i in infos],
    )
    out.family(
        "credrot_account_active",
        "gauge",
        "1 for the active account.",
        [(_labels(tool=tool, account=str(i.index)), i.active) for i in infos],
    )
    out.family(
        "credrot_account_status",
        "gauge",
        "The account's status (1 for the current one).",
        [
            (_labels(tool=tool, account=str(i.index), status=s), i.status == s)
            for i in infos
            for s in STATUSES
        ],
    )
    for attr, name, help_text in (
        (
            "until",
            "credrot_account_until_timestamp_seconds",
            "When an exhausted or rate-limited account is usable again (Unix time).",
        ),
        (
            "last_used",
            "credrot_account_last_used_timestamp_seconds",
            "When the account was last used (Unix time).",
        ),
        (
            "token_expiry",
            "credrot_account_token_expiry_timestamp_seconds",
            "When the account's access token expires (Unix time).",
        ),
    ):
        samples = [
            (_labels(tool=tool, account=str(i.index)), moment.timestamp())
            for i in infos
            if (moment := getattr(i, attr)) is not None
        ]
        if samples:
            out.family(name, "gauge", help_text, samples)
    _window_families(out, tool, infos)
    return "\n".join(out.lines) + "\n"


def _window_families(out: _Exposition, tool: str, infos: Sequence[AccountInfo]) -> None:
    """One sample per account and quota window (label ``window``), when any is known."""
    rows = [(i.index, name, row) for i in infos for name, row in i.windows.items()]
    if not rows:
        return

    def labels(index: int, name: str) -> str:
        return _labels(tool=tool, account=str(index), window=name)

    out.family(
        "credrot_window_calls",
        "gauge",
        "Tool runs counted in the window's current period.",
        [(labels(i, n), row["calls"]) for i, n, row in rows],
    )
    used = [(labels(i, n), row["used"]) for i, n, row in rows if row.get("used") is not None]
    if used:
        out.family("credrot_window_used_ratio", "gauge", "The tool's own usage report.", used)
    spent = [
        (labels(i, n), datetime.fromisoformat(row["spent_until"]).timestamp())
        for i, n, row in rows
        if row.get("spent_until")
    ]
    if spent:
        out.family(
            "credrot_window_spent_until_timestamp_seconds",
            "gauge",
            "When a spent window resets (Unix time).",
            spent,
        )
