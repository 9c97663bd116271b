"""Usage the tools report about themselves during a call, read from what the call left.

No extra request is ever made for it (usage endpoints are rate-limited and polling them
raises ban risk): credrot reads what the run already produced.

- **Claude Code**, with ``--output-format stream-json``, prints ``rate_limit_event``
  lines. Their exact shape is NOT CERTAIN (FACTS.md names status, resetsAt and the
  limit's type; utilization is read when present): the fields are looked for both at
  the top level and under ``rate_limit_info``, ``resetsAt`` in epoch seconds or ms, a
  utilization as a fraction or a percent.
- **Codex** writes ``token_count`` events with ``rate_limits`` (``primary`` and
  ``secondary``: ``used_percent``, ``window_minutes``, ``resets_at`` or
  ``resets_in_seconds``) into the session rollout JSONL under ``$CODEX_HOME/sessions``
  — inside the call's private home, so one call never reads another's. The shape is
  taken from Codex's rollout files and may change between versions: anything not in
  this shape is ignored, never an error.

Readers are tried on every call; a tool that prints neither costs a ``startswith``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credrot.fsutil import open_regular
from credrot.resets import MAX_AHEAD, clamp_seconds

#: Epoch seconds of the last second ``datetime`` can hold (9999-12-31).
_LAST_TIME = 253_402_300_799.0

#: Claude Code's names of its limits, as the window names credrot uses.
CLAUDE_WINDOWS = {
    "five_hour": "5h",
    "seven_day": "week",
    "seven_day_opus": "week:opus",
    "seven_day_sonnet": "week:sonnet",
}
#: Newest rollout files read per call (a call writes one).
_MAX_ROLLOUTS = 4
#: Bytes read from the end of a rollout (the last ``token_count`` is near its end).
_TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Reading:
    """One window's usage as the tool reported it: 0..1, reset in epoch seconds."""

    window: str
    used: float | None
    resets: float | None = None
    source: str = ""
    tokens: int = 0


def read(stdout: str, tool_home: Path | None, started: float) -> list[Reading]:
    """Every reading the call left: in its output (pass ``""`` for a text-mode answer:
    it is the model's words), and in its home's session rollouts. A reset further out
    than the longest window is cut to it."""
    found = list(claude_events(stdout))
    if tool_home is not None:
        found += codex_rollouts(tool_home, started)
    latest = started + MAX_AHEAD.total_seconds()
    return [
        dataclasses.replace(r, resets=latest) if r.resets is not None and r.resets > latest else r
        for r in found
    ]


# ------------------------------------------------------------------ Claude Code
def claude_events(stdout: str) -> Iterator[Reading]:
    if "rate_limit_event" not in stdout:
        return
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{") or "rate_limit_event" not in line:
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # a nesting bomb is no JSON
            continue
        if not isinstance(obj, dict) or obj.get("type") != "rate_limit_event":
            continue
        info = obj.get("rate_limit_info")
        fields: dict[str, Any] = {**obj, **(info if isinstance(info, dict) else {})}
        kind = fields.get("rateLimitType") or fields.get("rate_limit_type") or "5h"
        window = CLAUDE_WINDOWS.get(str(kind), str(kind))
        used = _fraction(fields.get("utilization"))
        if str(fields.get("status")) == "rejected":
            used = 1.0
        yield Reading(window, used, _epoch(fields.get("resetsAt")), "claude stream-json")


# ------------------------------------------------------------------------ Codex
def codex_rollouts(tool_home: Path, started: float) -> list[Reading]:
    sessions = os.path.join(tool_home, "sessions")
    try:
        if not stat.S_ISDIR(os.lstat(sessions).st_mode):
            return []  # a link: a shared sessions folder holds other calls' rollouts
    except OSError:
        return []
    files: list[tuple[float, Path]] = []
    for folder, _dirs, names in os.walk(sessions):
        for name in names:
            if name.startswith("rollout-") and name.endswith(".jsonl"):
                path = Path(folder, name)
                try:
                    mtime = path.stat().st_mtime
                except OSError:
                    continue
                if mtime >= started - 1.0:
                    files.append((mtime, path))
    for _mtime, path in sorted(files, reverse=True)[:_MAX_ROLLOUTS]:
        found = _last_rate_limits(path)
        if found:
            return found
    return []


def _last_rate_limits(path: Path) -> list[Reading]:
    try:
        # The tool's own file: a FIFO or a link left there must not block or lead out.
        with open_regular(path) as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - _TAIL_BYTES))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    for line in reversed(text.splitlines()):
        if "rate_limits" not in line:
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # a nesting bomb is no JSON
            continue
        payload = obj.get("payload") if isinstance(obj, dict) else None
        if not isinstance(payload, dict) or payload.get("type") != "token_count":
            continue
        limits = payload.get("rate_limits")
        if not isinstance(limits, dict):
            continue
        tokens = _tokens(payload.get("info"))
        readings = []
        for slot in ("primary", "secondary"):
            reading = _codex_window(limits.get(slot), slot, obj.get("timestamp"), tokens)
            if reading is not None:
                readings.append(reading)
                tokens = 0  # counted once per call
        return readings
    return []


def _codex_window(value: object, slot: str, stamp: object, tokens: int) -> Reading | None:
    if not isinstance(value, Mapping):
        return None
    used = _fraction(value.get("used_percent"), percent=True)
    minutes = value.get("window_minutes")
    finite = isinstance(minutes, (int, float)) and 0 < minutes < 1e9
    window = _window_name(minutes) if finite and isinstance(minutes, (int, float)) else slot
    resets = _epoch(value.get("resets_at"))
    if resets is None:
        after = value.get("resets_in_seconds")
        base = _epoch(stamp)
        if isinstance(after, (int, float)) and base is not None:
            resets = base + clamp_seconds(float(after))
    return Reading(window, used, resets, f"codex rollout ({slot})", tokens)


def _tokens(info: object) -> int:
    if not isinstance(info, Mapping):
        return 0
    last = info.get("last_token_usage")
    if isinstance(last, Mapping):
        total = last.get("total_tokens")
        if isinstance(total, int) and not isinstance(total, bool):
            return total
    return 0


# ---------------------------------------------------------------------- values
def _window_name(minutes: float) -> str:
    """300 -> ``5h``, 10080 -> ``week``, 1440 -> ``day``, else ``<n>m``/``<n>h``/``<n>d``."""
    whole = int(minutes)
    if whole == 10080:
        return "week"
    if whole == 1440:
        return "day"
    if whole % 1440 == 0:
        return f"{whole // 1440}d"
    if whole % 60 == 0:
        return f"{whole // 60}h"
    return f"{whole}m"


def _fraction(value: object, *, percent: bool = False) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    if number != number or number < 0:  # NaN, negative: not a reading
        return None
    if percent or number > 1.0:
        number /= 100.0
    return min(number, 1.0)


def _epoch(value: object) -> float | None:
    """Epoch seconds (or ms) as a number, or an ISO 8601 text; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
        number = number / 1000.0 if number > 1e11 else number
        return number if 0 <= number < _LAST_TIME else None  # NaN, inf: not a time
    if isinstance(value, str) and value:
        from datetime import datetime, timezone

        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    return None
