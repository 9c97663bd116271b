"""What one run of a tool meant for the pool: classified from exit code and error output.

The answer a model gives is never searched for error words: a review that quotes
"HTTP 429" is a success. Only the tool's error channel (stderr, or stdout when the tool
failed, or an error result in its json output when the run asked for json) is read.
Pure: no I/O, no clock but ``now``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from credrot import windows
from credrot.kinds import Outcome, OutcomeKind
from credrot.resets import clamp_seconds

if TYPE_CHECKING:
    from credrot.process import RunResult
    from credrot.profile import ToolProfile


_RETRY_AFTER = re.compile(
    r"(?:retry|try again)\s+(?:after|in)\s+(\d+(?:\.\d+)?)\s*"
    r"(ms|milliseconds?|s|sec|seconds?|m|min|minutes?)\b",
    re.IGNORECASE,
)


_STACK_FRAME = re.compile(r"at (?:async )?\S+(?: \(.*\))?$")


def parse_retry_after(text: str) -> float | None:
    """The wait in seconds a rate-limit message names, cut to :data:`resets.MAX_AHEAD`
    (``retry after 99999999999999999999 seconds`` is a wait, not an overflow)."""
    m = _RETRY_AFTER.search(text)
    if not m:
        return None
    value = float(m.group(1))
    unit = m.group(2).lower()
    if unit.startswith("m") and unit not in ("m", "min", "mins", "minute", "minutes"):
        value /= 1000.0
    elif unit in ("m", "min", "mins", "minute", "minutes"):
        value *= 60.0
    return clamp_seconds(value)


def _matched_line(text: str, match: re.Match[str]) -> str:
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    line = text[start : end if end != -1 else len(text)].strip()
    return line[:300]


def _json_error_text(profile: ToolProfile, stdout: str) -> str | None:
    """The error a tool reported inside its json/stream-json result on a zero exit, if any."""
    stripped = stdout.strip()
    if stripped.startswith("["):
        # `--output-format json` of Qwen Code 0.12.0 prints one JSON array of all its
        # messages (system, assistant, result), not a single object
        return _json_array_error_text(profile, stripped)
    if not stripped.startswith("{"):
        return None
    result: object = None
    for line in reversed(stripped.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # a nesting bomb is no JSON
            continue
        if isinstance(obj, dict) and obj.get("type") == "result":
            result = obj
            break
    if result is None:
        try:
            result = json.loads(stripped)
        except (ValueError, RecursionError):  # a nesting bomb is no JSON
            return None
    return _result_error_text(profile, result)


def _json_array_error_text(profile: ToolProfile, stripped: str) -> str | None:
    try:
        messages = json.loads(stripped)
    except (ValueError, RecursionError):  # a nesting bomb is no JSON
        return None
    if not isinstance(messages, list):
        return None
    for obj in reversed(messages):
        if isinstance(obj, dict) and obj.get("type") == "result":
            return _result_error_text(profile, obj)
    return None


def _result_error_text(profile: ToolProfile, result: object) -> str | None:
    if not isinstance(result, dict):
        return None
    text = result.get("result")
    text = text if isinstance(text, str) else ""
    if result.get("is_error") is True:
        return text or json.dumps(result)[:300]
    head = text.lstrip()[:400]
    if any(head.startswith(prefix) for prefix in profile.json_error_prefixes):
        return text
    return None


def classify(
    profile: ToolProfile,
    exit_code: int | None,
    stdout: str,
    stderr: str,
    *,
    now: datetime | None = None,
    json_output: bool | None = None,
) -> Outcome:
    """Classify one finished (or stopped) run of ``profile``'s tool.

    ``exit_code`` None or negative means the process was stopped by a signal.
    ``json_output`` says whether the run printed JSON (``profile.json_output(argv)``):
    an exit-0 answer is searched for an error result only then. None (the caller does
    not know the argv) reads stdout as JSON when it parses as the tool's JSON output.
    """
    if exit_code == 0:
        text = None if json_output is False else _json_error_text(profile, stdout)
        if text is None:
            return Outcome.success()
    else:
        text = stderr + "\n" + stdout
    now = now or datetime.now(timezone.utc)

    for rule in profile.rules:
        m = rule.pattern.search(text)
        if m is None:
            continue
        line = _matched_line(text, m)
        if rule.kind is OutcomeKind.QUOTA_EXHAUSTED:
            resets = profile.parse_reset(text, now)
            printed = any(parser(text, now) is not None for parser in profile.reset_parsers)
            if not printed:
                resets = windows.default_reset(rule.window, now) or resets
            return Outcome(rule.kind, line, resets_at=resets, window=rule.window)
        if rule.kind is OutcomeKind.RATE_LIMITED:
            return Outcome(rule.kind, line, retry_after=parse_retry_after(text))
        return Outcome(rule.kind, line)

    if exit_code is not None and exit_code in profile.exit_codes:
        kind = profile.exit_codes[exit_code]
        return Outcome(kind, _last_line(text) or f"exit code {exit_code}")
    detail = _last_line(text)
    code = "stopped by a signal" if exit_code is None or exit_code < 0 else f"exit code {exit_code}"
    return Outcome.error(f"{profile.name} failed ({code})" + (f": {detail}" if detail else ""))


def classify_run(
    profile: ToolProfile, run: RunResult, timeout: float, json_output: bool
) -> Outcome:
    """What one run of the tool found, including a run credrot stopped early."""
    rule = run.aborted
    if rule is not None and rule.kind is OutcomeKind.AUTH_FAILED:
        return Outcome(rule.kind, "the tool asked for an interactive login")
    if rule is not None and rule.silence:
        said = (_last_line(run.stderr) or _last_line(run.stdout))[:200]
        return Outcome(
            rule.kind,
            f"{profile.name} printed nothing for {rule.silence:g} s after {said!r}: "
            "it was waiting out a long retry-after",
        )
    if rule is not None:
        # stopped on purpose (Gemini about to sleep out a quota): the rules read what it
        # printed, so the reset it named is kept
        outcome = classify(profile, run.exit_code, run.stdout, run.stderr, json_output=json_output)
        if outcome.kind is not rule.kind:
            outcome = Outcome(rule.kind, f"{profile.name} was stopped early")
        return outcome
    if run.timed_out:
        return Outcome.error(f"timed out after {timeout:g} s")
    return classify(profile, run.exit_code, run.stdout, run.stderr, json_output=json_output)


def _last_line(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        # Node CLIs end a crash with a stack trace: name the error, not its last frame
        if line and not _STACK_FRAME.match(line):
            return line[:300]
    return ""
