"""Simulated Gemini CLI (``gemini``)."""

from __future__ import annotations

import json
import os
import random
import sys
import time

from credrot_sim.base import (
    _EXIT_AUTH,
    _EXIT_INPUT,
    _STDIN_JOINER,
    _err,
)
from credrot_sim.cli import (
    _answer,
    _flags,
    _log_usage,
    _other_error,
    _other_prepare,
    _read_stdin,
    _UsageError,
    _write_out,
)
from credrot_sim.creds import (
    _SPECS,
)
from credrot_sim.texts import (
    GEMINI_API_ERROR_TEXT,
    GEMINI_BACKOFF_TEXT,
    GEMINI_CRITICAL_TEXT,
    GEMINI_MAX_ATTEMPTS_TEXT,
    GEMINI_NO_INPUT_TEXT,
    GEMINI_RETRY_TEXT,
    GEMINI_TERMINAL_QUOTA_TEXT,
    GEMINI_UNTRUSTED_TEXT,
    GEMINI_VERSION,
)

#: Exit code of 0.61 in a directory nobody trusted (no --skip-trust).
_EXIT_UNTRUSTED = 55

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any


def _gemini_main(args: list[str]) -> int:
    spec = _SPECS["gemini"]
    try:
        opts = _flags(
            args,
            {
                "-p": "prompt",
                "--prompt": "prompt",
                "-o": "output_format",
                "--output-format": "output_format",
                "-m": "model",
                "--model": "model",
                "--approval-mode": "approval_mode",
            },
            {
                "-y": "yolo",
                "--yolo": "yolo",
                "-v": "version",
                "--version": "version",
                "--skip-trust": "skip_trust",
            },
            {
                "output_format": ("text", "json", "stream-json"),
                "approval_mode": ("default", "auto_edit", "yolo", "plan"),
            },
        )
    except _UsageError as exc:
        _log_usage(spec, args, {})
        _err(f"{exc}\n")
        return _EXIT_INPUT
    if opts.get("version"):
        sys.stdout.write(GEMINI_VERSION + "\n")
        return 0
    fmt = opts.get("output_format", "text")
    extra = {"output_format": fmt, "model": opts.get("model")}
    trusted = os.environ.get("GEMINI_CLI_TRUST_WORKSPACE", "").lower() == "true"
    if not (opts.get("skip_trust") or trusted):
        _log_usage(spec, args, extra)
        _err(GEMINI_UNTRUSTED_TEXT + "\n")
        return _EXIT_UNTRUSTED
    stdin_text, _ = _read_stdin()
    prompt = opts.get("prompt") or " ".join(opts["positional"])
    if stdin_text:  # the -p text is appended to stdin
        prompt = f"{stdin_text}{_STDIN_JOINER}{prompt}" if prompt else stdin_text
    if not prompt:
        _log_usage(spec, args, extra)
        _err(GEMINI_NO_INPUT_TEXT + "\n")
        return _EXIT_INPUT
    prepared = _other_prepare(spec, args, prompt, extra)
    if isinstance(prepared, int):
        return prepared
    _, d = prepared
    ok = d.outcome in ("ok", "garbage")
    text, code = (_answer(d, prompt, "gemini"), 0) if ok else _other_error(spec, d)
    if d.outcome == "quota" and not d.limit_text:
        text = _quota(text, d.resets_at)
    if fmt == "text":
        if ok:
            _write_out(text + "\n", d.outcome == "garbage")
        else:
            _err(_failure(d.outcome, text, code, prompt, bool(d.limit_text)))
        return code
    body: dict[str, Any] = (
        {"response": text, "stats": {"models": {}}}
        if ok
        else {"error": {"type": "Error", "message": text, "code": code}}
    )
    _write_out(json.dumps(body, indent=2) + "\n", d.outcome == "garbage")
    return code


def _failure(outcome: str, text: str, code: int, prompt: str, verbatim: bool) -> str:
    """What 0.61 prints on stderr when a call fails (text mode), without the stack traces
    and object dumps it adds between these lines (the recorded transcript)."""
    if verbatim:  # a test's own limit text
        return text + "\n"
    if code == _EXIT_AUTH:  # no usable login: before any request
        return f"Error authenticating: FatalAuthenticationError: {text}\n{text}\n"
    lines = []
    if outcome == "rate_limit":
        # its own backoff: up to ten attempts over a minute and more (not slept here)
        lines += [
            GEMINI_BACKOFF_TEXT.format(attempt=1, message=text),
            GEMINI_MAX_ATTEMPTS_TEXT.format(attempt=2, message=text),
        ]
        text = f"RetryableQuotaError: {text}"
    elif outcome == "auth":
        text = f"_GaxiosError: {text}"
    elif outcome == "connection_error":
        return text + "\n"
    report = _report(text, prompt)
    lines += [GEMINI_API_ERROR_TEXT.format(report=report, error=text), GEMINI_CRITICAL_TEXT]
    return "".join(line + "\n" for line in lines)


def _report(error: str, prompt: str) -> str:
    """0.61 writes each failed request, the prompt with it, into its temp directory."""
    folder = os.environ.get("TMPDIR")
    if not folder:
        return "/tmp/gemini-client-error-Turn.run-sendMessageStream.json"
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    path = os.path.join(
        folder, f"gemini-client-error-Turn.run-sendMessageStream-{stamp}-{os.getpid()}.json"
    )
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "error": {"message": error},
                    "context": [{"role": "user", "parts": [{"text": prompt}]}],
                },
                fh,
            )
    except OSError:
        pass
    return path


def _quota(message: str, resets_at: float) -> str:
    """A capacity quota: 0.61 logs the attempt and sleeps until the reset (plus jitter),
    then gives up with ``TerminalQuotaError``."""
    delay = resets_at - time.time()
    if delay > 0:
        ms = round(delay * 1000 * (1 + 0.2 * random.random()))
        _err(GEMINI_RETRY_TEXT.format(attempt=1, message=message, ms=ms) + "\n")
        time.sleep(ms / 1000)
    return GEMINI_TERMINAL_QUOTA_TEXT.format(message=message)
