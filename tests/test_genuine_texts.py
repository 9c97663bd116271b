"""The exact texts of the genuine CLIs (Claude Code 2.1.332, Codex 0.171.0, Gemini CLI
0.61.0), on the stream and with the exit code each really uses: how credrot classifies
them, the reset it reads from them, and that the simulator prints them the same way.

The strings are copied from runs of the real npm packages on loopback mocks (FACTS.md,
"Verified against the genuine CLIs" and "More from the genuine CLIs").
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import credrot_sim as sim
from credrot.classify import classify
from credrot.kinds import OutcomeKind
from credrot.tools import CLAUDE, CODEX, GEMINI, get_profile
from credrot_sim import texts

UTC = timezone.utc
#: 14:00 UTC on a Thursday.
NOW = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
Q, R, A, E = (
    OutcomeKind.QUOTA_EXHAUSTED,
    OutcomeKind.RATE_LIMITED,
    OutcomeKind.AUTH_FAILED,
    OutcomeKind.ERROR,
)
CODEX_QUOTA = (
    "You\u2019ve hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit "
    "https://chatgpt.com/settings/usage to purchase more credits or try again at {when}."
)
CODEX_URL = "https://chatgpt.com/backend-api/codex/responses"
GEMINI_CAPACITY = (
    "You have exhausted your capacity on this model. Your quota will reset after {when}."
)

# (tool, stream, exit code, text, kind, reset)
GENUINE: list[tuple[str, str, int, str, OutcomeKind, datetime | None]] = [
    # --- Claude Code: every error on stdout, exit 1, stderr empty
    (
        "claude",
        "stdout",
        1,
        "You've hit your 5-hour limit · resets 7:12pm (UTC)",
        Q,
        NOW.replace(hour=19, minute=12),
    ),
    (
        "claude",
        "stdout",
        1,
        "You've hit your weekly limit · resets 7:12pm (UTC)",
        Q,
        NOW.replace(hour=19, minute=12),
    ),
    (
        "claude",
        "stdout",
        1,
        "You've hit your weekly limit · resets Dec 5, 7:49pm (Europe/Berlin)",
        Q,
        datetime(2026, 12, 5, 18, 49, tzinfo=UTC),
    ),
    (
        "claude",
        "stdout",
        1,
        "API Error: Server is temporarily limiting requests (not your usage limit) · This "
        "request would exceed your account's rate limit. Please try again later.",
        R,
        None,
    ),
    (
        "claude",
        "stdout",
        1,
        "Failed to authenticate. API Error: 401 OAuth token has expired. Please obtain a new "
        "token or refresh your existing token.",
        A,
        None,
    ),
    (
        "claude",
        "stdout",
        1,
        "Failed to authenticate: OAuth token revoked. Please log in again or contact your "
        "administrator.",
        A,
        None,
    ),
    (
        "claude",
        "stdout",
        1,
        "Failed to authenticate: OAuth session expired and could not be refreshed",
        A,
        None,
    ),
    ("claude", "stdout", 1, "Not logged in · Please run /login", A, None),
    # --- Codex: `ERROR: <text>` on stderr, printed twice, exit 1; local times (UTC here)
    ("codex", "stderr", 1, CODEX_QUOTA.format(when="8:05 PM"), Q, NOW.replace(hour=20, minute=5)),
    (
        "codex",
        "stderr",
        1,
        CODEX_QUOTA.format(when="Dec 5th, 2026 1:42 AM"),
        Q,
        datetime(2026, 12, 5, 1, 42, tzinfo=UTC),
    ),
    (
        "codex",
        "stderr",
        1,
        "exceeded retry limit, last status: 429 Too Many Requests, request id: "
        "9c1f2e7a-5b7e-4c51-9a43-2f6d8e0b1c3d",
        R,
        None,
    ),
    (
        "codex",
        "stderr",
        1,
        "unexpected status 401 Unauthorized: Provided authentication token is expired. "
        f"Please try signing in again., url: {CODEX_URL}",
        A,
        None,
    ),
    *(
        (
            "codex",
            "stderr",
            1,
            "Your access token could not be refreshed because your refresh token "
            f"{why}. Please log out and sign in again.",
            A,
            None,
        )
        for why in ("was already used", "has expired", "was revoked")
    ),
    # a 429 without a request id; a connection dropped before the stream answered
    ("codex", "stderr", 1, "exceeded retry limit, last status: 429 Too Many Requests", R, None),
    ("codex", "stderr", 1, "stream disconnected before completion: error sending request", E, None),
    # --- Gemini CLI: stderr, exit 1 (41 auth, 55 untrusted)
    (
        "gemini",
        "stderr",
        1,
        "TerminalQuotaError: " + GEMINI_CAPACITY.format(when="2s"),
        Q,
        NOW + timedelta(seconds=2),
    ),
    (
        "gemini",
        "stderr",
        1,
        "TerminalQuotaError: You have exhausted your daily quota on this model.",
        Q,
        datetime(2026, 12, 4, 8, tzinfo=UTC),  # midnight Pacific
    ),
    ("gemini", "stderr", 1, "Resource has been exhausted (e.g. check quota).", R, None),
    (
        "gemini",
        "stderr",
        1,
        'Error when talking to Gemini API {"error": {"code": 401, "message": "Request had '
        "invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
        'other valid authentication credential.", "status": "UNAUTHENTICATED"}}',
        A,
        None,
    ),
    (
        "gemini",
        "stderr",
        41,
        "Manual authorization is required but the current session is non-interactive. Please "
        "run the Gemini CLI in an interactive terminal to log in, provide a GEMINI_API_KEY, or "
        "ensure Application Default Credentials are configured.",
        A,
        None,
    ),
    (
        "gemini",
        "stderr",
        55,
        "Gemini CLI is not running in a trusted directory. To proceed, either use "
        "`--skip-trust`, set the `GEMINI_CLI_TRUST_WORKSPACE=true` environment variable, or "
        "trust this directory in interactive mode. For more details, see "
        "https://geminicli.com/docs/cli/trusted-folders/#headless-and-automated-environments",
        E,
        None,
    ),
]


def _ids(row: tuple[str, str, int, str, OutcomeKind, datetime | None]) -> str:
    return f"{row[0]}-{row[4].value}-{row[3][:24]}"


@pytest.mark.parametrize(
    ("tool", "stream", "code", "text", "kind", "reset"), GENUINE, ids=map(_ids, GENUINE)
)
def test_genuine_text_is_classified(
    tool: str, stream: str, code: int, text: str, kind: OutcomeKind, reset: datetime | None
) -> None:
    profile = get_profile(tool)
    shown = f"ERROR: {text}\nERROR: {text}\n" if tool == "codex" else text + "\n"
    out, err = (shown, "") if stream == "stdout" else ("", shown)
    outcome = classify(profile, code, out, err, now=NOW)
    assert outcome.kind is kind, outcome
    if kind is Q:
        assert outcome.resets_at == reset


def test_gemini_retry_sleep_is_stopped_as_a_quota_with_its_reset() -> None:
    """0.61 logs the attempt and then sleeps the whole reset: the abort rule stops it, and
    the rules read the reset from what it printed."""
    line = (
        "Attempt 1 failed: You have exhausted your capacity on this model. Your quota will "
        "reset after 8h44m7s.. Retrying after 34110765ms..."
    )
    rule = GEMINI.abort_rules[0]
    assert rule.kind is Q and rule.pattern.search(line)
    outcome = classify(GEMINI, None, "", line + "\n", now=NOW)
    assert outcome.kind is Q
    assert outcome.resets_at == NOW + timedelta(hours=8, minutes=44, seconds=7)
    # a bare 429 retried by the CLI is not a quota: no abort
    assert not rule.pattern.search(
        "Attempt 1 failed: Resource has been exhausted (e.g. check quota).. "
        "Retrying after 5000ms..."
    )


def test_profiles_follow_the_genuine_clis() -> None:
    assert "--skip-trust" in GEMINI.argv()
    assert CLAUDE.tool_lock_name == ".oauth_refresh.lock"
    assert CLAUDE.tmpdir_env == ("CLAUDE_CODE_TMPDIR",)
    assert GEMINI.tmpdir_env == ("TMPDIR",)
    assert {"sessions", "auth.lock", "auth.json.lock", "shell_snapshots"} <= set(CODEX.call_private)
    # all three refresh about five minutes before expiry
    assert CLAUDE.refresh_margin == GEMINI.refresh_margin == CODEX.refresh_margin == 300.0
    # 2.x no longer prints `Claude AI usage limit reached|<epoch>`: no parser trusts it
    assert classify(
        CLAUDE, 1, "Claude AI usage limit reached|1750708800\n", "", now=NOW
    ).resets_at == (NOW + timedelta(hours=5))


# --- the simulator prints the same texts, on the same stream, with the same exit code

SIM_CASES = [
    ("claude", "rate_limit", "stdout", 1, texts.CLAUDE_RATE_LIMIT_TEXT),
    ("claude", "auth", "stdout", 1, texts.CLAUDE_AUTH_TEXT),
    ("claude", "refresh_fail", "stdout", 1, texts.CLAUDE_REFRESH_FAIL_TEXT),
    ("codex", "auth", "stderr", 1, texts.CODEX_AUTH_TEXT),
    ("codex", "refresh_fail", "stderr", 1, texts.CODEX_REFRESH_FAIL_TEXT),
]
# Gemini's failures are several lines (its retries, the error, its last words): the
# simulated ones are held against the recorded transcripts (test_transcripts_gemini_qwen).


def _genuine(tool: str, stream: str, code: int, text: str) -> bool:
    return any(row[:4] == (tool, stream, code, text) for row in GENUINE)


def _run_sim(
    tmp_path: Path, tool: str, mode: str, extra: list[str] | None = None, **account: Any
) -> subprocess.CompletedProcess[str]:
    backend = sim.SimBackend(tmp_path / "backend")
    shims = sim.install(tmp_path / "bin", backend.root, tools=(tool,))
    profile = get_profile(tool)
    cred = backend.add_account("a", tool=tool, mode=mode, **account)
    env = {"PATH": f"{shims[tool].parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    home = profile.point_at(env, tmp_path / "root")
    home.mkdir(parents=True, exist_ok=True)
    (home / profile.credential_name).write_text(json.dumps(cred))
    argv = profile.argv() if extra is None else [profile.executable, *extra]
    return subprocess.run(
        argv,
        input="hello",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=30,
    )


@pytest.mark.parametrize(("tool", "mode", "stream", "code", "text"), SIM_CASES)
def test_simulator_prints_the_genuine_text(
    tmp_path: Path, tool: str, mode: str, stream: str, code: int, text: str
) -> None:
    assert _genuine(tool, stream, code, text), "not a text the genuine CLI prints"
    proc = _run_sim(tmp_path, tool, mode, expired=mode == "refresh_fail")
    assert proc.returncode == code
    shown = f"ERROR: {text}\nERROR: {text}\n" if tool == "codex" else text + "\n"
    assert (proc.stdout if stream == "stdout" else proc.stderr) == shown
    assert (proc.stderr if stream == "stdout" else proc.stdout) == ""


def test_simulated_codex_rate_limit_names_a_request(tmp_path: Path) -> None:
    proc = _run_sim(tmp_path, "codex", "rate_limit")
    assert proc.returncode == 1 and proc.stdout == ""
    first, second = proc.stderr.splitlines()
    assert first == second
    assert first.startswith(
        "ERROR: exceeded retry limit, last status: 429 Too Many Requests, request id: "
    )
    assert "{request_id}" not in first


def test_simulated_gemini_needs_skip_trust(tmp_path: Path) -> None:
    proc = _run_sim(tmp_path, "gemini", "ok", extra=["-o", "text"])
    assert proc.returncode == 55 and proc.stdout == ""
    assert proc.stderr == texts.GEMINI_UNTRUSTED_TEXT + "\n"
    trusted = _run_sim(tmp_path / "again", "gemini", "ok")
    assert trusted.returncode == 0, trusted.stderr


def test_simulated_gemini_logs_the_attempt_before_sleeping(tmp_path: Path) -> None:
    proc = _run_sim(tmp_path, "gemini", "ok", quota=0, resets_in=1.0)
    assert proc.returncode == 1 and proc.stdout == ""
    attempt, final, last = proc.stderr.splitlines()
    assert attempt.startswith(
        "Attempt 1 failed: You have exhausted your capacity on this model. "
        "Your quota will reset after "
    )
    assert attempt.endswith("ms...") and GEMINI.abort_rules[0].pattern.search(attempt)
    assert final.startswith("Error when talking to Gemini API Full report available at: ")
    assert "TerminalQuotaError: You have exhausted your capacity on this model." in final
    assert last == texts.GEMINI_CRITICAL_TEXT


def test_simulated_claude_limit_has_the_window_and_rounds_down(tmp_path: Path) -> None:
    proc = _run_sim(tmp_path, "claude", "ok", quota=0, resets_in=3 * 3600 + 59)
    assert proc.returncode == 1 and proc.stderr == ""
    assert proc.stdout.startswith("You've hit your 5-hour limit · resets ")
    outcome = classify(CLAUDE, 1, proc.stdout, "")
    assert outcome.kind is Q and outcome.resets_at is not None
    left = outcome.resets_at - datetime.now(UTC)
    assert timedelta(hours=2, minutes=58) < left <= timedelta(hours=3, seconds=59)


# --- the simulator against the recorded transcripts of the genuine CLIs (no node needed)

TRANSCRIPTS = Path(__file__).parent / "conformance" / "transcripts"
#: transcript case -> (simulator mode, account settings)
SIM_OF_CASE: dict[str, tuple[str, dict[str, Any]]] = {
    "quota": ("ok", {"quota": 0, "resets_in": 3 * 3600}),
    "quota_long": ("ok", {"quota": 0, "resets_in": 50 * 3600}),
    "rate_limit": ("rate_limit", {}),
    "refresh_fail": ("refresh_fail", {"expired": True}),
    "unauthorized": ("auth", {}),
}
_RESET = re.compile(r"resets (?:[A-Z][a-z]{2} \d{1,2}, )?\d{1,2}(?::\d{2})?[ap]m")


def _recorded(cli: str) -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(TRANSCRIPTS.glob(f"{cli}-*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        cases += [(case, run) for case, run in sorted(data["cases"].items()) if case in SIM_OF_CASE]
    return cases


@pytest.mark.parametrize(("case", "genuine"), _recorded("claude"), ids=lambda v: str(v)[:20])
def test_simulated_claude_prints_what_the_genuine_one_printed(
    tmp_path: Path, case: str, genuine: dict[str, Any]
) -> None:
    mode, account = SIM_OF_CASE[case]
    proc = _run_sim(tmp_path, "claude", mode, **account)
    assert proc.returncode == genuine["exit_code"]
    # the reset's wall time differs from run to run; its shape may not
    assert _RESET.sub("resets <when>", proc.stdout) == _RESET.sub(
        "resets <when>", genuine["stdout"]
    )
    assert proc.stderr == genuine["stderr"]
    assert classify(CLAUDE, proc.returncode, proc.stdout, proc.stderr).kind.value == genuine["kind"]


def test_claude_transcript_is_there() -> None:
    assert len(_recorded("claude")) == len(SIM_OF_CASE)
