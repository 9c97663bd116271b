"""Simulated Claude Code (``claude -p``)."""

from __future__ import annotations

import json
import sys
import uuid

from credrot_sim import telemetry
from credrot_sim.base import (
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
    CLAUDE_NO_INPUT_TEXT,
    CLAUDE_VERSION,
)


def _claude_main(args: list[str]) -> int:
    spec = _SPECS["claude"]
    try:
        opts = _flags(
            args,
            {
                "--output-format": "output_format",
                "--model": "model",
                "--permission-mode": "permission_mode",
                "--max-turns": "max_turns",
            },
            {
                "-p": "print",
                "--print": "print",
                "--verbose": "verbose",
                "-v": "version",
                "--version": "version",
            },
            {
                "output_format": ("text", "json", "stream-json"),
                "permission_mode": ("acceptEdits", "bypassPermissions", "default", "plan"),
            },
        )
    except _UsageError as exc:
        _log_usage(spec, args, {})
        _err(f"error: {exc}\n")
        return 1
    if opts.get("version"):
        sys.stdout.write(CLAUDE_VERSION + "\n")
        return 0
    fmt = opts.get("output_format", "text")
    extra = {"output_format": fmt, "model": opts.get("model")}
    stdin_text, _ = _read_stdin()
    prompt = " ".join(opts["positional"])
    if stdin_text:
        prompt = f"{stdin_text}\n{prompt}" if prompt else stdin_text
    if not opts.get("print") or not prompt:
        _log_usage(spec, args, extra)
        _err(CLAUDE_NO_INPUT_TEXT + "\n")
        return 1
    prepared = _other_prepare(spec, args, prompt, extra)
    if isinstance(prepared, int):
        return prepared
    backend, d = prepared
    ok = d.outcome in ("ok", "garbage")
    text, code = (_answer(d, prompt, "claude"), 0) if ok else _other_error(spec, d)
    if fmt == "text":
        # -p prints the result, an error included, on stdout
        _write_out(text + "\n", d.outcome == "garbage")
        return code
    result = {
        "type": "result",
        "subtype": "success" if ok else "error_during_execution",
        "is_error": not ok,
        "duration_ms": int(d.latency * 1000),
        "num_turns": 1,
        "result": text,
        "session_id": str(uuid.uuid4()),
        "total_cost_usd": 0,
    }
    lines = [result]
    if fmt == "stream-json":
        event = telemetry.claude_rate_limit_event(backend, d)
        lines = [
            {
                "type": "system",
                "subtype": "init",
                "session_id": result["session_id"],
                "model": opts.get("model") or "claude-sonnet-sim",
            },
            *([event] if event is not None else []),
            result,
        ]
    _write_out("".join(json.dumps(line) + "\n" for line in lines), d.outcome == "garbage")
    return code
