"""Simulated Codex CLI (``codex exec``)."""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

from credrot_sim import telemetry
from credrot_sim.base import (
    _EXIT_USAGE_CLAP,
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
    CODEX_NO_INPUT_TEXT,
    CODEX_NOT_GIT_TEXT,
    CODEX_VERSION,
)

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any


def _in_git_repo() -> bool:
    here = Path.cwd()
    return any((p / ".git").exists() for p in (here, *here.parents))


def _codex_main(args: list[str]) -> int:
    spec = _SPECS["codex"]
    if args[:1] in (["--version"], ["-V"]):
        sys.stdout.write(CODEX_VERSION + "\n")
        return 0
    if not args or args[0] not in ("exec", "e"):
        _log_usage(spec, args, {})
        _err("credrot_sim: only `codex exec` is simulated\n")
        return _EXIT_USAGE_CLAP
    try:
        opts = _flags(
            args[1:],
            {
                "-m": "model",
                "--model": "model",
                "-s": "sandbox",
                "--sandbox": "sandbox",
                "--color": "color",
                "-C": "cd",
                "--cd": "cd",
            },
            {"--json": "json", "--skip-git-repo-check": "skip_git", "--full-auto": "full_auto"},
            {
                "sandbox": ("read-only", "workspace-write", "danger-full-access"),
                "color": ("always", "never", "auto"),
            },
        )
        if len(opts["positional"]) > 1:
            raise _UsageError(f"unexpected argument '{opts['positional'][1]}' found")
    except _UsageError as exc:
        _log_usage(spec, args, {})
        _err(f"error: {exc}\n")
        return _EXIT_USAGE_CLAP
    extra = {"output_format": "json" if opts.get("json") else "text", "model": opts.get("model")}
    if not opts.get("skip_git") and not _in_git_repo():
        _log_usage(spec, args, extra)
        _err(CODEX_NOT_GIT_TEXT + "\n")
        return 1
    prompt = opts["positional"][0] if opts["positional"] else "-"
    if prompt == "-":  # `-` or no prompt: read it all from stdin
        prompt, _ = _read_stdin()
        if not prompt.strip():
            _log_usage(spec, args, extra)
            _err(CODEX_NO_INPUT_TEXT + "\n")
            return 1
    prepared = _other_prepare(spec, args, prompt, extra)
    if isinstance(prepared, int):
        return prepared
    backend, d = prepared
    telemetry.codex_rollout(backend, d, spec.home(), prompt)
    ok = d.outcome in ("ok", "garbage")
    text, code = (_answer(d, prompt, "codex"), 0) if ok else _other_error(spec, d)
    text = text.replace("{request_id}", str(uuid.uuid4()))
    if not opts.get("json"):
        if ok:  # progress goes to stderr, the last message to stdout
            _err("codex\n")
            _write_out(text + "\n", d.outcome == "garbage")
        else:  # 0.171.0 prints the error twice
            if d.outcome == "rate_limit" and d.retry_after > 0:
                for attempt in range(1, 6):  # it honours the server's retry-after, silently
                    _err(f"ERROR: Reconnecting... {attempt}/5\n")
                    time.sleep(d.retry_after)
            _err(f"ERROR: {text}\nERROR: {text}\n")
        return code
    events: list[dict[str, Any]] = [
        {"type": "thread.started", "thread_id": str(uuid.uuid4())},
        {"type": "turn.started"},
    ]
    if ok:
        events += [
            {
                "type": "item.completed",
                "item": {"id": "item_0", "type": "agent_message", "text": text},
            },
            {
                "type": "turn.completed",
                "usage": {
                    "input_tokens": len(prompt) // 4 + 1,
                    "cached_input_tokens": 0,
                    "cache_write_input_tokens": 0,
                    "output_tokens": len(text) // 4 + 1,
                    "reasoning_output_tokens": 0,
                },
            },
        ]
    else:
        events += [
            {"type": "error", "message": text},
            {"type": "turn.failed", "error": {"message": text}},
        ]
    # serde_json: compact, UTF-8 as is (the limit text's typographic apostrophe)
    lines = "".join(json.dumps(e, ensure_ascii=False, separators=(",", ":")) + "\n" for e in events)
    _write_out(lines, d.outcome == "garbage")
    return code
