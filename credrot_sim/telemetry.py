"""The usage reports the simulated tools emit about themselves, in the genuine shapes.

- Claude Code, ``--output-format stream-json``: a ``rate_limit_event`` line before the
  result. The shape is NOT CERTAIN (FACTS.md names status, resetsAt and the limit's
  type): here ``{"type": "rate_limit_event", "rate_limit_info": {"status",
  "resetsAt" (epoch s), "rateLimitType": "five_hour", "utilization" (0..1)}}``.
- Codex: a session rollout ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-<time>-<uuid>.jsonl``
  whose ``token_count`` event carries ``rate_limits.primary`` (5 hours) and
  ``rate_limits.secondary`` (a week): ``used_percent``, ``window_minutes``,
  ``resets_at``. The shape follows Codex's rollout files; the values are the simulated
  account's: primary = served / quota, secondary = served / (5 x quota).

Utilization rises with every served call, so a test can watch credrot move at its
threshold before the simulated quota refuses a call.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from credrot_sim.base import _DEFAULT_RESETS_IN

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

    from credrot_sim.backend import SimBackend, _Decision

#: The simulated weekly window holds this many 5-hour quotas.
_WEEK_FACTOR = 5


def _usage(backend: SimBackend, d: _Decision) -> tuple[float, float] | None:
    """(fraction used, reset epoch) of the account after this call; None: unknown."""
    if d.account is None or d.outcome not in ("ok", "garbage", "quota"):
        return None
    acc = backend.account(d.account)
    quota = acc.get("quota")
    if not isinstance(quota, int) or quota <= 0:
        used = 1.0 if d.outcome == "quota" else 0.0
    else:
        served = acc.get("used")
        used = min(1.0, (served if isinstance(served, int) else 0) / quota)
    if d.outcome == "quota":
        used = 1.0
    resets_in = acc.get("resets_in")
    span = _DEFAULT_RESETS_IN if not isinstance(resets_in, (int, float)) else float(resets_in)
    return used, time.time() + span


def claude_rate_limit_event(backend: SimBackend, d: _Decision) -> dict[str, Any] | None:
    usage = _usage(backend, d)
    if usage is None:
        return None
    used, resets = usage
    status = "rejected" if used >= 1.0 else ("allowed_warning" if used >= 0.8 else "allowed")
    info = {
        "status": status,
        "resetsAt": int(resets),
        "rateLimitType": "five_hour",
        "utilization": round(used, 4),
    }
    return {"type": "rate_limit_event", "rate_limit_info": info, "uuid": str(uuid.uuid4())}


def codex_rollout(backend: SimBackend, d: _Decision, codex_home: Path, prompt: str) -> None:
    """Write the call's session rollout with its ``token_count`` event."""
    usage = _usage(backend, d)
    if usage is None:
        return
    used, resets = usage
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    folder = codex_home / "sessions" / time.strftime("%Y/%m/%d", time.gmtime(now))
    folder.mkdir(parents=True, exist_ok=True)
    session = str(uuid.uuid4())
    name = f"rollout-{time.strftime('%Y-%m-%dT%H-%M-%S', time.gmtime(now))}-{session}.jsonl"
    tokens = len(prompt) // 4 + 1
    week = used / _WEEK_FACTOR
    lines = [
        {"timestamp": stamp, "type": "session_meta", "payload": {"id": session}},
        {
            "timestamp": stamp,
            "type": "event_msg",
            "payload": {
                "type": "token_count",
                "info": {
                    "total_token_usage": {"total_tokens": tokens},
                    "last_token_usage": {"input_tokens": tokens, "total_tokens": tokens},
                },
                "rate_limits": {
                    "primary": {
                        "used_percent": round(used * 100, 2),
                        "window_minutes": 300,
                        "resets_at": int(resets),
                    },
                    "secondary": {
                        "used_percent": round(week * 100, 2),
                        "window_minutes": 10080,
                        "resets_at": int(now + 7 * 86400),
                    },
                },
            },
        },
    ]
    path = folder / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(line) + "\n" for line in lines))
