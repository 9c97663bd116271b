"""The skeleton every simulated CLI runs on: stdin, flags, the common error paths, the call log."""

from __future__ import annotations

import os
import select
import sys
import time
from pathlib import Path

from credrot_sim.backend import (
    SimBackend,
    _Decision,
)
from credrot_sim.base import (
    _EXIT_AUTH,
    _STDIN_CAP,
    _STDIN_FIRST_BYTE_WAIT,
    BACKEND_ENV,
    _err,
)
from credrot_sim.creds import (
    _Spec,
)
from credrot_sim.texts import (
    CLAUDE_AUTH_TEXT,
    CLAUDE_CONNECTION_TEXT,
    CLAUDE_NO_CREDENTIAL_TEXT,
    CLAUDE_RATE_LIMIT_TEXT,
    CLAUDE_REFRESH_FAIL_TEXT,
    CLAUDE_REVOKED_TEXT,
    CODEX_AUTH_TEXT,
    CODEX_CONNECTION_TEXT,
    CODEX_NO_CREDENTIAL_TEXT,
    CODEX_RATE_LIMIT_TEXT,
    CODEX_REFRESH_FAIL_TEXT,
    CODEX_REFRESH_REUSED_TEXT,
    CODEX_REVOKED_TEXT,
    GEMINI_AUTH_TEXT,
    GEMINI_CONNECTION_TEXT,
    GEMINI_MANUAL_AUTH_TEXT,
    GEMINI_RATE_LIMIT_TEXT,
    _claude_limit,
    _codex_limit,
    _gemini_limit,
)

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any


class _UsageError(Exception):
    pass


def _read_stdin() -> tuple[str, bool]:
    """Piped stdin like the CLI reads it: empty if nothing within 0.5 s, capped at 8 MiB."""
    stream = sys.stdin
    if stream is None:
        return "", False
    try:
        if stream.isatty():
            return "", False
        fd = stream.fileno()
        ready, _, _ = select.select([fd], [], [], _STDIN_FIRST_BYTE_WAIT)
    except (OSError, ValueError, AttributeError):
        return "", False
    if not ready:
        return "", False
    chunks: list[bytes] = []
    total = 0
    truncated = False
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        if total + len(chunk) > _STDIN_CAP:
            chunks.append(chunk[: _STDIN_CAP - total])
            truncated = True
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace"), truncated


def _answer(d: _Decision, prompt: str, tool: str) -> str:
    account = d.account or "?"
    if d.answer_template is None:
        return f"Simulated {tool} answer from {account} (call {d.served})."
    return (
        d.answer_template.replace("{account}", account)
        .replace("{prompt_len}", str(len(prompt)))
        .replace("{call}", str(d.served))
        .replace("{n}", str(d.n))
    )


def _stdin_is_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):
        return False


def _flags(
    args: list[str],
    values: dict[str, str],
    bools: dict[str, str],
    choices: dict[str, tuple[str, ...]],
) -> dict[str, Any]:
    """A small getopt: ``--opt V``, ``--opt=V``, boolean flags and positionals."""
    opts: dict[str, Any] = {"positional": []}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            opts["positional"].extend(args[i:])
            break
        if arg == "-" or not arg.startswith("-"):
            opts["positional"].append(arg)
            continue
        flag, eq, inline = arg.partition("=")
        if flag in values:
            if eq:
                value = inline
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise _UsageError(f"option '{flag}' needs a value")
            key = values[flag]
            allowed = choices.get(key)
            if allowed is not None and value not in allowed:
                raise _UsageError(
                    f"invalid value '{value}' for '{flag}' (choose from {', '.join(allowed)})"
                )
            opts[key] = value
        elif flag in bools and not eq:
            opts[bools[flag]] = True
        else:
            raise _UsageError(f"unexpected argument '{flag}' found")
    return opts


def _other_error(spec: _Spec, d: _Decision) -> tuple[str, int]:
    """(message, exit code) of a failed call, as the tool prints it."""
    tool = spec.name
    if d.outcome == "quota":
        if d.limit_text:
            return d.limit_text.replace("{epoch}", str(int(d.resets_at))), 1
        limit = {"claude": _claude_limit, "codex": _codex_limit, "gemini": _gemini_limit}
        return limit[tool](d.resets_at), 1
    texts = {
        "claude": {
            "rate_limit": CLAUDE_RATE_LIMIT_TEXT,
            "auth": CLAUDE_AUTH_TEXT,
            "refresh_fail": CLAUDE_REFRESH_FAIL_TEXT,
            "refresh_reused": CLAUDE_REFRESH_FAIL_TEXT,  # the token endpoint refuses it
            "revoked": CLAUDE_REVOKED_TEXT,
            "no_credential": CLAUDE_NO_CREDENTIAL_TEXT,
            "connection_error": CLAUDE_CONNECTION_TEXT,
        },
        "codex": {
            "rate_limit": CODEX_RATE_LIMIT_TEXT,
            "auth": CODEX_AUTH_TEXT,
            "refresh_fail": CODEX_REFRESH_FAIL_TEXT,
            "refresh_reused": CODEX_REFRESH_REUSED_TEXT,
            "revoked": CODEX_REVOKED_TEXT,
            "no_credential": CODEX_NO_CREDENTIAL_TEXT,
            "connection_error": CODEX_CONNECTION_TEXT,
        },
        "gemini": {
            "rate_limit": GEMINI_RATE_LIMIT_TEXT,
            "auth": GEMINI_AUTH_TEXT,
            "refresh_fail": GEMINI_MANUAL_AUTH_TEXT,
            "no_credential": GEMINI_MANUAL_AUTH_TEXT,
            "connection_error": GEMINI_CONNECTION_TEXT,
        },
    }[tool]
    text = texts.get(d.outcome, f"API Error: 403 this {tool} account has no access")
    auth_exit = tool == "gemini" and d.outcome in ("refresh_fail", "no_credential")
    return text, _EXIT_AUTH if auth_exit else 1


def _finish(spec: _Spec, d: _Decision) -> None:
    if d.outcome == "hang":
        sys.stdout.flush()
        sys.stderr.flush()
        while True:
            time.sleep(3600)
    if d.latency > 0:
        time.sleep(d.latency)
    for _ in range(6000):  # a test's gate: at most a minute
        if d.gate is None or os.path.exists(d.gate):
            break
        time.sleep(0.01)


def _other_prepare(
    spec: _Spec, args: list[str], prompt: str, extra: dict[str, Any]
) -> tuple[SimBackend, _Decision] | int:
    backend = _env_backend()
    if backend is None:
        return 2
    home = spec.home()
    extra = {"home": str(home), **extra}
    d = backend._serve(spec, args, prompt, home / spec.cred_file, extra)
    _finish(spec, d)
    return backend, d


def _env_backend() -> SimBackend | None:
    root = os.environ.get(BACKEND_ENV)
    if not root:
        _err(f"credrot_sim: {BACKEND_ENV} is not set (path of a SimBackend directory)\n")
        return None
    return SimBackend(Path(root))


def _log_usage(spec: _Spec, args: list[str], extra: dict[str, Any]) -> None:
    root = os.environ.get(BACKEND_ENV)
    if root:
        SimBackend(Path(root))._log_only(
            {
                "tool": spec.name,
                "account": None,
                "argv": args,
                "outcome": "usage_error",
                "refreshed": False,
                "home": str(spec.home()),
                **extra,
            }
        )


def _write_out(text: str, garbage: bool = False) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write((b"\xff\xfe\xc3(\x80 " if garbage else b"") + text.encode("utf-8"))
    sys.stdout.buffer.flush()
