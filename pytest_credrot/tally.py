"""The plugin's vocabulary: settings, the call tally, and what a spent pool makes of a test."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from credrot.manager import PoolStatus
    from credrot.wrapper import WrapperResult


#: Outcomes a test can be given when the pool is spent (``credrot_exhausted``).
MODES = ("xfail", "skip", "fail")


#: What ``pytest_credrot_exhausted_outcome`` may answer: a mode, or keep the test's own.
HOOK_MODES = (*MODES, "keep")


MARKER = "qwen"


FIXTURES = ("qwen", "credrot_pool", "credrot_wrapper")


DEFAULT_TOOL = "qwen"


DEFAULT_MAX_RETRIES = 5


DEFAULT_TIMEOUT = 45.0


#: Report attribute naming the outcome a test was given because the pool was spent.
REPORT_ATTR = "credrot_exhausted"


HEADER_CACHE_KEY = "credrot/header"


_VERBS = {"xfail": "xfailed", "skip": "skipped", "fail": "failed"}


_TAKEN_OUT = {
    "quota_exhausted": "exhausted",
    "rate_limited": "rate limited",
    "auth_failed": "needs login",
    "disabled": "disabled",
}


# ---------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    tool: str
    home: Path | None
    max_retries: int
    timeout: float
    exhausted: str
    unconfigured: str = "error"


@dataclass
class _Tally:
    """What one pool did during the run, as seen by this process."""

    tool: str
    home: str
    calls: int = 0
    runs: int = 0
    successes: int = 0
    switches: int = 0
    pool_exhausted: int = 0
    taken_out: dict[int, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "home": self.home,
            "calls": self.calls,
            "runs": self.runs,
            "successes": self.successes,
            "switches": self.switches,
            "pool_exhausted": self.pool_exhausted,
            "taken_out": sorted([index, label] for index, label in self.taken_out.items()),
        }

    def merge(self, data: dict[str, Any]) -> None:
        for key in ("calls", "runs", "successes", "switches", "pool_exhausted"):
            setattr(self, key, getattr(self, key) + int(data.get(key, 0)))
        for index, label in data.get("taken_out", []):
            self.taken_out.setdefault(int(index), str(label))


@dataclass
class _Record:
    """The pool-spent findings of one test: (reason, result or None when known at start)."""

    found: list[tuple[str, WrapperResult | None]] = field(default_factory=list)
    seen: int = 0
    mode: str | None = None
    reason: str = ""
    skip_body: bool = False


def describe_spent(status: PoolStatus, tool: str, home: Path) -> str:
    """``credrot: all 5 qwen accounts exhausted (first reset 2026-11-29 00:00 UTC)``."""
    if status.total == 0:
        return f"credrot: no {tool} accounts in {home} (add one with `credrot accounts add`)"
    reset = (
        f"first reset {status.first_reset.strftime('%Y-%m-%d %H:%M UTC')}"
        if status.first_reset is not None
        else "none resets by itself"
    )
    return f"credrot: {status.headline(tool)} ({reset})"


def _fingerprint(paths: list[str]) -> list[list[int] | None]:
    stats: list[list[int] | None] = []
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            stats.append(None)
        else:
            stats.append([st.st_ino, st.st_size, st.st_mtime_ns])
    return stats


def _apply(item: pytest.Item, rep: pytest.TestReport, mode: str, reason: str) -> None:
    """Turn ``rep`` into the outcome chosen for a test that found the pool spent."""
    if mode == "xfail":
        rep.outcome = "skipped"
        rep.wasxfail = reason
    else:
        if hasattr(rep, "wasxfail"):
            del rep.wasxfail
        if mode == "skip":
            path, lineno, _ = item.reportinfo()
            rep.outcome = "skipped"
            rep.longrepr = (os.fspath(path), (lineno or 0) + 1, f"Skipped: {reason}")
        elif not rep.failed:
            rep.outcome = "failed"
            rep.longrepr = reason
        elif reason not in str(rep.longrepr):
            rep.sections.append(("credrot", reason))
    setattr(rep, REPORT_ATTR, mode)
