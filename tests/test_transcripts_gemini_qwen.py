"""What the genuine Gemini CLI 0.61.0 and the newest Qwen Code printed (the transcripts in
``tests/conformance/transcripts/``, recorded by the conformance suite), held against
credrot and its simulator without node: credrot classifies each recorded run as it did
live, and the simulated ``gemini`` prints the genuine lines with the genuine exit code.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

import credrot_sim as sim
from credrot.classify import classify
from credrot.kinds import OutcomeKind
from credrot.process import run_tool
from credrot.tools import GEMINI, QWEN_KEY, get_profile

TRANSCRIPTS = Path(__file__).parent / "conformance" / "transcripts"
#: transcript case -> (simulator mode, account settings); ``daily`` has no simulated twin
GEMINI_SIM: dict[str, tuple[str, dict[str, Any]]] = {
    "ok": ("ok", {}),
    "quota_long": ("ok", {"quota": 0, "resets_in": 8 * 3600 + 44 * 60 + 7}),
    "rate_limit": ("rate_limit", {}),
    "revoked": ("refresh_fail", {"expired": True}),
    "unauthorized": ("auth", {}),
    "untrusted": ("ok", {}),
}
_VOLATILE = [
    (re.compile(r"Full report available at: \S+"), "Full report available at: <report>"),
    (re.compile(r"reset after (?:\d+h)?(?:\d+m)?\d+s"), "reset after <delay>"),
    (re.compile(r"Retrying after \d+ms"), "Retrying after <ms>"),
]


def _cases(name: str) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(TRANSCRIPTS.glob(f"{name}-[0-9]*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        found += sorted(data["cases"].items())
    return found


def _lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        for pattern, repl in _VOLATILE:
            line = pattern.sub(repl, line)
        out.append(line)
    return out


def _sim(tmp_path: Path, mode: str, account: dict[str, Any], args: list[str]) -> Any:
    backend = sim.SimBackend(tmp_path / "backend")
    shims = sim.install(tmp_path / "bin", backend.root, tools=("gemini",))
    cred = backend.add_account("a", tool="gemini", mode=mode, **account)
    env = {"PATH": f"{shims['gemini'].parent}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    home = GEMINI.point_at(env, tmp_path / "root")
    home.mkdir(parents=True, exist_ok=True)
    (home / GEMINI.credential_name).write_text(json.dumps(cred))
    # as credrot runs it: stopped where the CLI would sleep out a reset or back off
    return run_tool(
        ["gemini", *args],
        stdin=b"Reply with one short sentence.",
        env=env,
        timeout=30.0,
        abort_rules=GEMINI.abort_rules,
        cwd=str(tmp_path),
    )


@pytest.mark.parametrize(("case", "genuine"), _cases("gemini"), ids=lambda v: str(v)[:16])
def test_gemini_transcript_is_classified_as_it_was_live(case: str, genuine: dict[str, Any]) -> None:
    outcome = classify(GEMINI, genuine["exit_code"], genuine["stdout"], genuine["stderr"])
    assert outcome.kind.value == genuine["kind"]


@pytest.mark.parametrize(
    ("case", "genuine"),
    [c for c in _cases("gemini") if c[0] in GEMINI_SIM],
    ids=lambda v: str(v)[:16],
)
def test_simulated_gemini_prints_what_the_genuine_one_printed(
    tmp_path: Path, case: str, genuine: dict[str, Any]
) -> None:
    mode, account = GEMINI_SIM[case]
    args = ["-o", "text"] if case == "untrusted" else GEMINI.argv()[1:]
    run = _sim(tmp_path, mode, account, args)
    assert run.exit_code == genuine["exit_code"]
    assert classify(GEMINI, run.exit_code, run.stdout, run.stderr).kind.value == genuine["kind"]
    if genuine["exit_code"] == 0:
        assert run.stdout.endswith("\n") and run.stdout.strip()
        return
    assert run.stdout == genuine["stdout"] == ""
    ours, theirs = _lines(run.stderr), _lines(genuine["stderr"])
    if genuine["exit_code"] is None:
        # both stopped early: what the genuine one had printed by then, the simulator
        # printed first (it does not sleep its backoff, so it may have said more)
        genuine_attempts = [line for line in theirs if line.startswith("Attempt ")]
        simulated = [line for line in ours if line.startswith("Attempt ")]
        assert genuine_attempts and simulated[: len(genuine_attempts)] == genuine_attempts
    else:
        # the simulator prints the genuine lines (not the warnings and tips around them)
        assert ours and set(ours) <= set(theirs), (ours, theirs)
        assert ours[-1] == theirs[-1]


def test_every_gemini_case_is_recorded() -> None:
    recorded = {case for case, _ in _cases("gemini")}
    assert set(GEMINI_SIM) | {"daily", "no_auth_setting"} <= recorded


@pytest.mark.parametrize(("case", "genuine"), _cases("qwen-current"), ids=lambda v: str(v)[:16])
def test_current_qwen_transcript_is_classified_as_it_was_live(
    case: str, genuine: dict[str, Any]
) -> None:
    outcome = classify(QWEN_KEY, genuine["exit_code"], genuine["stdout"], genuine["stderr"])
    assert outcome.kind.value == genuine["kind"]
    if case.startswith("quota_"):
        assert outcome.kind is OutcomeKind.QUOTA_EXHAUSTED
        assert outcome.window == {"quota_hour": "5h", "quota_week": "week"}[case]


def test_current_qwen_transcripts_are_there() -> None:
    recorded = {case for case, _ in _cases("qwen-current")}
    assert {"ok", "quota_hour", "quota_week", "unauthorized"} <= recorded
    assert get_profile("qwen-key") is QWEN_KEY


def test_simulated_gemini_keeps_its_error_report_in_the_call_home(tmp_path: Path) -> None:
    """0.61 writes a failed request, prompt and all, into ``$TMPDIR``: a call home's."""
    run = _sim(tmp_path, "auth", {}, GEMINI.argv()[1:])
    assert run.exit_code == 1
    reports = list((tmp_path / "root" / "tmp").glob("gemini-client-error-*.json"))
    assert len(reports) == 1
    assert "Reply with one short sentence." in reports[0].read_text(encoding="utf-8")
