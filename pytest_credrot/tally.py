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


#: Switch lines the summary shows at most (the rest are counted; ``rotation.log`` has
#: them all).
MAX_SWITCH_LINES = 20


@dataclass(frozen=True)
class Switch:
    """One move of the pool during the run: when, from, to, and the sentence why."""

    at: float
    source: int | None
    target: int
    reason: str

    def line(self) -> str:
        """``switched #2 -> #3: #2 spent its 5h window (...; resets 19:12 UTC)``."""
        moved = (
            f"#{self.source} -> #{self.target}"
            if self.source is not None
            else (f"to #{self.target}")
        )
        return f"switched {moved}: {self.reason}" if self.reason else f"switched {moved}"


@dataclass
class _Tally:
    """What one pool did during the run, as seen by this process.

    ``requests``: calls the tests made (one prompt each); ``runs``: tool runs they took
    (a request may take several, one per account tried); ``successes``: requests answered.
    """

    tool: str
    home: str
    requests: int = 0
    runs: int = 0
    successes: int = 0
    switches: int = 0
    pool_exhausted: int = 0
    taken_out: dict[int, str] = field(default_factory=dict)
    switched: list[Switch] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """What a pytest-xdist worker sends the controller (``workeroutput``: plain data)."""
        return {
            "tool": self.tool,
            "home": self.home,
            "requests": self.requests,
            "runs": self.runs,
            "successes": self.successes,
            "switches": self.switches,
            "pool_exhausted": self.pool_exhausted,
            "taken_out": sorted([index, label] for index, label in self.taken_out.items()),
            "switched": [[s.at, s.source, s.target, s.reason] for s in self.switched],
        }

    def merge(self, data: dict[str, Any]) -> None:
        for key in ("requests", "runs", "successes", "switches", "pool_exhausted"):
            setattr(self, key, getattr(self, key) + int(data.get(key, 0)))
        for index, label in data.get("taken_out", []):
            self.taken_out.setdefault(int(index), str(label))
        for at, source, target, reason in data.get("switched", []):
            self.switched.append(
                Switch(float(at), None if source is None else int(source), int(target), str(reason))
            )
        self.switched.sort(key=lambda s: s.at)

    def lines(self) -> list[str]:
        """The summary's lines for this pool."""
        out = [
            f"{self.tool} pool {self.home}: requests {self.requests}, tool runs {self.runs}, "
            f"successes {self.successes}, switches {self.switches}"
        ]
        out += [s.line() for s in self.switched[:MAX_SWITCH_LINES]]
        if len(self.switched) > MAX_SWITCH_LINES:
            more = len(self.switched) - MAX_SWITCH_LINES
            out.append(f"... and {more} more switches (every one is in rotation.log)")
        spent = sorted(i for i, label in self.taken_out.items() if label == "exhausted")
        out.append(
            f"accounts exhausted during the run: {len(spent)}"
            + (f" ({', '.join(f'#{i}' for i in spent)})" if spent else "")
        )
        other = sorted((i, label) for i, label in self.taken_out.items() if label != "exhausted")
        if other:
            out.append(
                "accounts taken out for other reasons: "
                + ", ".join(f"#{i} {label}" for i, label in other)
            )
        return out


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
