"""Constants and tiny helpers every simulated tool shares (clock, tokens, atomic writes)."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time


BACKEND_ENV = "CREDROT_SIM_BACKEND"


#: Account behaviours a test can choose (see :meth:`SimBackend.add_account`).
MODES = frozenset(
    {
        "ok",
        "quota",
        "rate_limit",
        "auth",
        "disabled",
        "connection_error",
        "hang",
        "refresh_fail",
        "garbage",
        # claude and codex: the provider revoked the account (API and refresh refuse it)
        "revoked",
    }
)


_QWEN_CRED_FILE = "oauth_creds.json"


_QWEN_RESOURCE_URL = "portal.qwen.ai"


_TOKEN_LIFETIME_MS = 3_600_000


_REFRESH_BUFFER_MS = 30_000  # a CLI refreshes a token this close to expiry


_STDIN_CAP = 8 * 1024 * 1024


_STDIN_FIRST_BYTE_WAIT = 0.5  # the CLI treats stdin as empty if nothing came by then


_STDIN_JOINER = "\n\n"  # the CLI builds `${stdin}\n\n${prompt}`


_EXIT_INPUT = 42


_EXIT_AUTH = 41


#: ``gate``: a path; a call decided while it is set waits for that file before it answers
#: (tests sequence parallel callers with it).
_ACCOUNT_FIELDS = (
    "quota",
    "mode",
    "refresh_every",
    "answer",
    "latency",
    "resets_in",
    "limit_text",
    "gate",
    "retry_after",
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _new_token() -> str:
    return os.urandom(24).hex()


def _check_mode(mode: object) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {sorted(MODES)}")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.tmp.{uuid.uuid4()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _err(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text)
    sys.stderr.flush()


_DEFAULT_RESETS_IN = 5 * 3600.0


_EXIT_USAGE_CLAP = 2


_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clock(t: time.struct_time, *, compact: bool) -> str:
    hour = t.tm_hour % 12 or 12
    if compact:  # Claude: "1pm", "2:50am"
        ampm = "am" if t.tm_hour < 12 else "pm"
        return f"{hour}{ampm}" if t.tm_min == 0 else f"{hour}:{t.tm_min:02d}{ampm}"
    return f"{hour}:{t.tm_min:02d} {'AM' if t.tm_hour < 12 else 'PM'}"  # Codex: %-I:%M %p


def _day_suffix(day: int) -> str:
    if 11 <= day <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
