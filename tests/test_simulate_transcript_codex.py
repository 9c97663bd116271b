"""The simulated ``codex`` prints what the genuine Codex 0.171.0 printed, without node.

``tests/conformance/transcripts/codex-0.171.0.json`` holds the real CLI's streams and
exit code per case (recorded by ``tests/conformance/test_real_codex.py``). Each case is
replayed against the installed simulator shim, run as a real subprocess: the same exit
code, the same answer on stdout, the same ``ERROR:`` lines on stderr (the genuine CLI's
own log noise and progress lines aside), and the same verdict from credrot. What differs
by the moment of the run (the reset time, a request id) is compared by its shape.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

import credrot_sim as simulate
from credrot.classify import classify
from credrot.process import RunResult, run_tool
from credrot.tools import CODEX

TRANSCRIPT = Path(__file__).parent / "conformance" / "transcripts" / "codex-0.171.0.json"
PROMPT = "Reply with one short sentence."  # what the conformance suite sent
ANSWER = "Mock answer from spare."
#: How each recorded case is set up at the simulated server.
SETUPS: dict[str, dict[str, Any]] = {
    "ok": {"answer": ANSWER},
    "quota": {"quota": 0, "resets_in": 3 * 3600.0},
    "quota_long": {"quota": 0, "resets_in": 50 * 3600.0},
    "rate_limit": {"mode": "rate_limit"},
    "revoked": {"mode": "revoked"},
    "unauthorized": {"mode": "auth"},
    "refresh_reused": {"expired": True},
    # after a replay revoked the account, the token the first refresh handed out
    "revoked_family": {"expired": True},
    "refresh_fail": {"mode": "refresh_fail", "expired": True},
    "connection_error": {"mode": "connection_error"},
    # `codex exec --json`: JSONL events on stdout
    "ok_json": {"answer": ANSWER},
    "quota_json": {"quota": 0, "resets_in": 3 * 3600.0},
}
_MOMENT = (
    # `try again at 5:10 PM` / `try again at Dec 5th, 2026 4:10 PM`
    (re.compile(r"\b[A-Z][a-z]{2} \d{1,2}(?:st|nd|rd|th), \d{4} "), "<date> "),
    (re.compile(r"\b\d{1,2}:\d{2} [AP]M\b"), "<time>"),
    (re.compile(r"request id: \S+"), "request id: <id>"),
)


def _load() -> dict[str, dict[str, Any]]:
    data = json.loads(TRANSCRIPT.read_text(encoding="utf-8"))
    assert data["cli"] == "codex" and data["version"] == "0.171.0"
    cases: dict[str, dict[str, Any]] = data["cases"]
    return cases


CASES = _load()


def shape(text: str) -> str:
    for pattern, replacement in _MOMENT:
        text = pattern.sub(replacement, text)
    return text


def _another_day(resets_in: float) -> bool:
    """Whether a reset that far ahead falls on another day in UTC (the runs' zone)."""
    at, now = time.gmtime(time.time() + resets_in), time.gmtime()
    return (at.tm_year, at.tm_yday) != (now.tm_year, now.tm_yday)


def error_lines(stderr: str) -> list[str]:
    """The ``ERROR: ...`` lines a failed run ends with (not its reconnect notes)."""
    return [
        shape(line)
        for line in stderr.splitlines()
        if line.startswith("ERROR: ") and not line.startswith("ERROR: Reconnecting")
    ]


def events(stdout: str) -> list[dict[str, Any]]:
    """``--json`` output: one compact JSON object per line (serde_json's separators)."""
    lines = stdout.splitlines()
    assert stdout.endswith("\n") and all(lines), stdout[:200]
    parsed = [json.loads(line) for line in lines]
    for line, obj in zip(lines, parsed, strict=True):
        assert line == json.dumps(obj, ensure_ascii=False, separators=(",", ":")), line
    return parsed


def run_simulator(tmp_path: Path, case: str, canary: str) -> RunResult:
    backend = simulate.SimBackend(tmp_path / "backend")
    shims = simulate.install(tmp_path / "bin", backend.root, tools=("codex",))
    home = tmp_path / "home" / ".codex"
    home.mkdir(parents=True)
    cred = backend.add_account(
        "spare",
        tool="codex",
        access_token=f"{canary}-access",
        refresh_token=f"{canary}-refresh",
        **SETUPS[case],
    )
    auth = home / "auth.json"
    auth.write_text(json.dumps(cred, indent=2))
    work = tmp_path / "project"
    work.mkdir()
    env = {
        "PATH": os.pathsep.join([str(shims["codex"].parent), "/usr/bin", "/bin"]),
        "HOME": str(tmp_path / "home"),
        "CODEX_HOME": str(home),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
    }

    argv = CODEX.argv(extra=["--json"] if case.endswith("_json") else [])

    def run() -> RunResult:
        return run_tool(argv, stdin=PROMPT.encode(), env=env, timeout=20.0, cwd=str(work))

    if case in ("refresh_reused", "revoked_family"):  # a copy is refreshed elsewhere first
        copy, fresh = tmp_path / "copy.json", tmp_path / "fresh.json"
        shutil.copyfile(auth, copy)
        assert run().exit_code == 0
        shutil.copyfile(auth, fresh)
        shutil.copyfile(copy, auth)
        if case == "revoked_family":  # the replay revokes the family; then the newest token
            assert "already used" in run().stderr
            shutil.copyfile(fresh, auth)
    result = run()
    assert canary not in result.stdout + result.stderr
    return result


def test_the_transcript_covers_the_cases() -> None:
    assert set(SETUPS) <= set(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_credrot_reads_each_recorded_run_as_recorded(case: str) -> None:
    """Also the runs the simulator has no setup for (a quota without a reset)."""
    real = CASES[case]
    outcome = classify(CODEX, real["exit_code"], real["stdout"], real["stderr"])
    assert outcome.kind.value == real["kind"]
    if outcome.kind.value == "quota_exhausted":
        assert outcome.resets_at is not None  # printed, else Codex's 5-hour default


@pytest.mark.parametrize("case", sorted(set(CASES) & set(SETUPS)))
def test_simulator_matches_the_recorded_cli(case: str, tmp_path: Path, canary: str) -> None:
    real = CASES[case]
    sim = run_simulator(tmp_path, case, canary)

    assert sim.exit_code == real["exit_code"], sim.stderr[-500:]
    # recorded on the same day: late in the day the simulator's 3-hour reset is tomorrow
    tomorrow = case in ("quota", "quota_json") and _another_day(SETUPS[case]["resets_in"])

    def sim_shape(text: str) -> str:
        return shape(text).replace("<date> ", "") if tomorrow else shape(text)

    sim_lines = [sim_shape(line) for line in error_lines(sim.stderr)]
    assert sim_lines == error_lines(real["stderr"])
    if case.endswith("_json"):
        sim_events, real_events = events(sim.stdout), events(real["stdout"])
        assert [e["type"] for e in sim_events] == [e["type"] for e in real_events]
        for sim_event, real_event in zip(sim_events, real_events, strict=True):
            assert list(sim_event) == list(real_event), real_event["type"]
            for key in ("item", "usage", "error"):
                if key in real_event:
                    assert list(sim_event[key]) == list(real_event[key]), key
            for key in ("message", "item", "error"):
                if key in real_event:
                    assert sim_shape(json.dumps(sim_event[key])) == shape(
                        json.dumps(real_event[key])
                    )
    else:
        assert sim.stdout == real["stdout"]
    sim_kind = classify(CODEX, sim.exit_code, sim.stdout, sim.stderr).kind
    real_kind = classify(CODEX, real["exit_code"], real["stdout"], real["stderr"]).kind
    assert sim_kind is real_kind
    assert real_kind.value == real["kind"]


def test_the_recorded_reset_parses_to_the_minute() -> None:
    """credrot reads the genuine text's reset (local time, TZ=UTC when recorded)."""
    for case in ("quota", "quota_long"):
        [line, *_] = [ln for ln in CASES[case]["stderr"].splitlines() if "try again at" in ln]
        outcome = classify(CODEX, 1, "", line)
        assert outcome.resets_at is not None, line
        assert outcome.resets_at.second == 0
