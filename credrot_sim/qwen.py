"""Simulated Qwen Code 0.12.0 (``qwen``): flags, device-authorization flow,
text/json/stream-json output.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from pathlib import Path

from credrot_sim.backend import (
    SimBackend,
    _Decision,
)
from credrot_sim.base import (
    _EXIT_AUTH,
    _EXIT_INPUT,
    _STDIN_CAP,
    _STDIN_JOINER,
    _err,
)
from credrot_sim.cli import (
    _answer,
    _env_backend,
    _finish,
    _read_stdin,
    _stdin_is_terminal,
    _UsageError,
)
from credrot_sim.creds import (
    _SPECS,
)
from credrot_sim.texts import (
    _QWEN_JSON_ERROR_RESULT,
    QWEN_DEVICE_AUTH_TIMEOUT_TEXT,
    QWEN_DEVICE_AUTH_TITLE,
    QWEN_DEVICE_AUTH_WAITING_TEXT,
    QWEN_ERROR_OUTPUT,
    QWEN_NO_INPUT_TEXT,
    QWEN_VERSION,
)

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from typing import Any

_QWEN_VALUE_OPTS = {
    "-p": "prompt",
    "--prompt": "prompt",
    "-o": "output_format",
    "--output-format": "output_format",
    "--auth-type": "auth_type",
    "-m": "model",
    "--model": "model",
    "--approval-mode": "approval_mode",
    "--channel": "channel",
    "--max-session-turns": "max_session_turns",
    "--proxy": "proxy",
}


_QWEN_BOOL_OPTS = {
    "-y": "yolo",
    "--yolo": "yolo",
    "--chat-recording": "chat_recording",
    "-v": "version",
    "--version": "version",
    "-h": "help",
    "--help": "help",
}


_QWEN_CHOICES = {
    "output_format": ("text", "json", "stream-json"),
    "approval_mode": ("plan", "default", "auto-edit", "yolo"),
}


_QWEN_HELP = """\
Usage: qwen [options] [query..]

Simulated Qwen Code (credrot_sim) for tests and demos.

Options:
  -p, --prompt             Prompt (deprecated: use the positional prompt)
  -o, --output-format      text | json | stream-json
      --auth-type          qwen-oauth | openai | ...
  -m, --model              Model
  -y, --yolo               Approve every action
      --approval-mode      plan | default | auto-edit | yolo
      --chat-recording     Record chat history (boolean)
      --channel            Channel (e.g. CI)
      --max-session-turns  Maximum session turns
      --proxy              Proxy URL
  -v, --version            Show version number
  -h, --help               Show help
"""


def _parse_qwen_args(args: list[str]) -> dict[str, Any]:
    opts: dict[str, Any] = {"output_format": "text", "positional": []}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            opts["positional"].extend(args[i:])
            break
        if not arg.startswith("-") or arg == "-":
            opts["positional"].append(arg)
            continue
        flag, eq, inline = arg.partition("=")
        if flag in _QWEN_VALUE_OPTS:
            key = _QWEN_VALUE_OPTS[flag]
            if eq:
                value = inline
            elif i < len(args):
                value = args[i]
                i += 1
            else:
                raise _UsageError(f"Not enough arguments following: {flag.lstrip('-')}")
            choices = _QWEN_CHOICES.get(key)
            if choices is not None and value not in choices:
                raise _UsageError(
                    f"Invalid values:\n  Argument: {flag.lstrip('-')}, Given: {value!r}, "
                    f"Choices: {', '.join(repr(c) for c in choices)}"
                )
            if key == "max_session_turns":
                try:
                    opts[key] = int(value)
                except ValueError:
                    raise _UsageError(
                        f"--max-session-turns expects a number, got {value!r}"
                    ) from None
                continue
            opts[key] = value
            continue
        negated = flag.startswith("--no-") and "--" + flag[5:] in _QWEN_BOOL_OPTS
        bool_flag = "--" + flag[5:] if negated else flag
        if bool_flag in _QWEN_BOOL_OPTS:
            state = not negated
            if eq:
                if inline not in ("true", "false"):
                    raise _UsageError(f"{flag} expects true or false, got {inline!r}")
                state = (inline == "true") != negated
            elif i < len(args) and args[i] in ("true", "false"):  # yargs: `--flag false`
                state = (args[i] == "true") != negated
                i += 1
            opts[_QWEN_BOOL_OPTS[bool_flag]] = state
            continue
        raise _UsageError(f"Unknown argument: {arg.lstrip('-').partition('=')[0]}")
    if opts["positional"] and opts.get("prompt") is not None:
        raise _UsageError("Cannot use both a positional prompt and the --prompt (-p) flag together")
    return opts


def _device_box(url: str) -> str:
    """The box the CLI writes to stderr when it falls into the device flow."""
    width = 70
    inner = width - 4
    title = f" {QWEN_DEVICE_AUTH_TITLE} "
    dashes = width - 2 - len(title)
    top = "+" + "-" * (dashes // 2) + title + "-" * (dashes - dashes // 2) + "+"
    empty = "|" + " " * (width - 2) + "|"

    def row(text: str) -> str:
        return f"| {text.ljust(inner)} |"

    url_rows = [row(url[i : i + inner]) for i in range(0, len(url), inner)]
    lines = [
        "",
        top,
        empty,
        row("Please visit the following URL in your browser to authorize:"),
        empty,
        *url_rows,
        empty,
        row(QWEN_DEVICE_AUTH_WAITING_TEXT),
        empty,
        "+" + "-" * (width - 2) + "+",
        "",
        "",
    ]
    return "\n".join(lines)


def _qwen_device_flow(backend: SimBackend, cred_path: Path) -> bool:
    """Print the box and poll like the headless CLI; True once a login was approved."""
    code = os.urandom(4).hex().upper()
    url = f"https://chat.qwen.ai/authorize?user_code={code[:4]}-{code[4:]}&client=qwen-code"
    _err(_device_box(url))
    settings = backend._settings()
    interval = float(settings.get("poll_interval", 2.0))
    deadline = time.monotonic() + float(settings.get("device_auth_timeout", 300.0))
    while True:
        cred = backend._claim_login()
        if cred is not None:
            # a first login writes through the path: a symlink there is followed
            cred_path.parent.mkdir(parents=True, exist_ok=True)
            with open(cred_path, "w", encoding="utf-8") as f:
                f.write(json.dumps(cred, indent=2))
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(interval, remaining))


def _qwen_emit(d: _Decision, opts: dict[str, Any], prompt: str, started: float) -> int:
    fmt = opts["output_format"]
    ok = d.outcome in ("ok", "garbage")
    garbage = b"\xff\xfe\xc3(\x80 " if d.outcome == "garbage" else b""
    if fmt == "text":
        if ok:
            sys.stdout.flush()
            sys.stdout.buffer.write(garbage + _answer(d, prompt, "qwen").encode("utf-8"))
            sys.stdout.buffer.flush()
            return 0
        _err(QWEN_ERROR_OUTPUT[d.outcome])
        return 1
    # json modes: API errors end with exit 0 and the message in `result` (FACTS)
    result = _answer(d, prompt, "qwen") if ok else _QWEN_JSON_ERROR_RESULT[d.outcome]
    messages = _qwen_json_messages(d, opts, prompt, result, ok, started)
    if fmt == "json":  # 0.12.0: ONE JSON array of every message, on one line
        out = _js_json(messages) + "\n"
    else:  # stream-json: one object per line
        out = "".join(_js_json(m) + "\n" for m in messages)
    sys.stdout.flush()
    sys.stdout.buffer.write(garbage + out.encode("utf-8", "replace"))
    sys.stdout.buffer.flush()
    return 0


def _js_json(value: object) -> str:
    """``JSON.stringify(value)``: no spaces, non-ASCII kept as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_QWEN_JSON_TOOLS = [
    "task",
    "skill",
    "list_directory",
    "read_file",
    "grep_search",
    "glob",
    "save_memory",
    "todo_write",
    "ask_user_question",
    "exit_plan_mode",
    "web_fetch",
    "web_search",
]


def _qwen_json_messages(
    d: _Decision, opts: dict[str, Any], prompt: str, result: str, ok: bool, started: float
) -> list[dict[str, Any]]:
    """``[system init, assistant, result]`` with the fields and key order of 0.12.0."""
    session = str(uuid.uuid4())
    turn = str(uuid.uuid4())
    model = opts.get("model") or "coder-model"
    tokens_in = len(prompt) // 4 + 1 if ok else 0  # a failed request counts no tokens
    tokens_out = len(result) // 4 + 1 if ok else 0
    system = {
        "type": "system",
        "subtype": "init",
        "uuid": session,
        "session_id": session,
        "cwd": os.getcwd(),
        "tools": list(_QWEN_JSON_TOOLS),
        "mcp_servers": [],
        "model": model,
        "permission_mode": opts.get("approval_mode") or "default",
        "slash_commands": ["bug", "compress", "init", "summary"],
        "qwen_code_version": QWEN_VERSION,
        "agents": ["general-purpose"],
    }
    assistant = {
        "type": "assistant",
        "uuid": turn,
        "session_id": session,
        "parent_tool_use_id": None,
        "message": {
            "id": turn,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": result}],
            "stop_reason": None,
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        },
    }
    api_ms = int(d.latency * 1000)
    final: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "uuid": str(uuid.uuid4()),
        "session_id": session,
        "is_error": False,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "duration_api_ms": api_ms,
        "num_turns": 1,
        "result": result,
        "usage": {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "cache_read_input_tokens": 0,
        },
        "permission_denials": [],
    }
    if opts["output_format"] == "json":  # only the array's result carries stats
        final["stats"] = {
            "models": {
                model: {
                    "api": {
                        "totalRequests": 1,
                        "totalErrors": 0 if ok else 1,
                        "totalLatencyMs": api_ms,
                    },
                    "tokens": {
                        "prompt": tokens_in,
                        "candidates": tokens_out,
                        "total": tokens_in + tokens_out,
                        "cached": 0,
                        "thoughts": 0,
                        "tool": 0,
                    },
                }
            },
            "tools": {
                "totalCalls": 0,
                "totalSuccess": 0,
                "totalFail": 0,
                "totalDurationMs": 0,
                "totalDecisions": {"accept": 0, "reject": 0, "modify": 0, "auto_accept": 0},
                "byName": {},
            },
            "files": {"totalLinesAdded": 0, "totalLinesRemoved": 0},
        }
    return [system, assistant, final]


def _qwen_interactive(
    backend: SimBackend, cred_path: Path, args: list[str], extra: dict[str, Any]
) -> int:
    """No prompt and a terminal: the interactive session, which is how a person logs in.

    Without a valid credential it runs the device flow first (like ``--auth-type
    qwen-oauth``), then waits for the user until ``/quit``, end of input or a signal.
    """
    if _SPECS["qwen"].read(cred_path) is None:
        backend._log_only(
            {
                "tool": "qwen",
                "account": None,
                "argv": args,
                "outcome": "device_auth",
                "refreshed": False,
                **extra,
            }
        )
        if not _qwen_device_flow(backend, cred_path):
            _err(QWEN_DEVICE_AUTH_TIMEOUT_TEXT + "\n")
            return _EXIT_AUTH
    sys.stdout.write("Simulated qwen interactive session: logged in. Type /quit to leave.\n")
    sys.stdout.flush()
    try:
        for line in sys.stdin:
            if line.strip() in ("/quit", "/exit"):
                break
    except KeyboardInterrupt:
        return 130
    return 0


def _qwen_main(args: list[str]) -> int:
    started = time.monotonic()
    usage: str | None = None
    opts: dict[str, Any] = {"output_format": "text", "positional": []}
    try:
        opts = _parse_qwen_args(args)
    except _UsageError as exc:
        usage = str(exc)
    if usage is None and opts.get("version"):
        sys.stdout.write(QWEN_VERSION + "\n")
        return 0
    if usage is None and opts.get("help"):
        sys.stdout.write(_QWEN_HELP)
        return 0
    backend = _env_backend()
    if backend is None:
        return 2
    spec = _SPECS["qwen"]
    home = spec.home()
    extra = {"home": str(home), "output_format": opts["output_format"], "model": opts.get("model")}
    if usage is not None:
        backend._log_only(
            {
                "tool": "qwen",
                "account": None,
                "argv": args,
                "outcome": "usage_error",
                "refreshed": False,
                **extra,
            }
        )
        _err(f"{_QWEN_HELP}\n{usage}\n")
        return _EXIT_INPUT
    stdin_text, truncated = _read_stdin()
    if truncated:
        _err(f"Warning: stdin input truncated to {_STDIN_CAP} bytes.\n")
    prompt = opts.get("prompt") or " ".join(opts["positional"])
    if stdin_text:
        prompt = f"{stdin_text}{_STDIN_JOINER}{prompt}" if prompt else stdin_text
    cred_path = home / spec.cred_file
    if not prompt and _stdin_is_terminal():
        return _qwen_interactive(backend, cred_path, args, extra)
    if not prompt:
        backend._log_only(
            {
                "tool": "qwen",
                "account": None,
                "argv": args,
                "outcome": "usage_error",
                "refreshed": False,
                **extra,
            },
            prompt,
        )
        _err(QWEN_NO_INPUT_TEXT + "\n")
        return _EXIT_INPUT
    while True:
        d = backend._serve(spec, args, prompt, cred_path, extra)
        if d.outcome in ("device_auth", "refresh_fail"):
            if not _qwen_device_flow(backend, cred_path):
                _err(QWEN_DEVICE_AUTH_TIMEOUT_TEXT + "\n")
                return _EXIT_AUTH
            continue  # logged in: the CLI goes on with the prompt
        break
    _finish(spec, d)
    try:
        return _qwen_emit(d, opts, prompt, started)
    except BrokenPipeError:
        return 1
