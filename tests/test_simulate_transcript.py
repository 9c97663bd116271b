"""The simulated ``qwen`` prints what the genuine Qwen Code 0.12.0 printed, without node.

``tests/conformance/transcripts/qwen-0.12.0.json`` holds the real CLI's stdout, stderr and
exit code per mode and output format (recorded by the conformance suite, paths scrubbed
to ``<cache>``). Each entry is replayed here against the installed simulator shim, run as
a real subprocess, so the two cannot drift apart where node is absent: the same exit
code, the same lines in the same order (stack frames and node's own warnings aside),
the same verdict from credrot, and for json output the same messages and result.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import credrot_sim as simulate
from credrot.classify import classify
from credrot.kinds import OutcomeKind, Rule
from credrot.process import RunResult, run_tool
from credrot.profile import ToolProfile
from credrot.tools import QWEN

TRANSCRIPT = Path(__file__).parent / "conformance" / "transcripts" / "qwen-0.12.0.json"
PROMPT = "Reply with one short sentence."  # what the conformance suite sent
#: The profiles the transcripts were recorded with, by output format.
PROFILES: dict[str, ToolProfile] = {
    fmt: replace(QWEN, base_args=("--auth-type", "qwen-oauth", "--output-format", fmt))
    for fmt in ("text", "json", "stream-json")
}
#: The last line of the device-authorization box, where the recorded run was stopped.
BOX_BOTTOM = r"\+-{68}\+"
#: Modes whose recorded run credrot stopped (exit code None), and where it stopped.
STOP_AT = {"refresh_fail": BOX_BOTTOM}

_STACK_FRAME = re.compile(r"^\s+at ")
# node's own process warnings (the 429 retries pile up abort listeners); not the CLI's text
_NODE_WARNING = re.compile(r"^\((?:node:\d+\)|Use `node --trace-warnings)")
_DEVICE_CODE = re.compile(r"user_code=[0-9A-Za-z]{4}-[0-9A-Za-z]{4}")
_CLI_PATH = re.compile(r"file://(?:<cache>|/\S*?)/node_modules/")


def _load() -> dict[str, dict[str, Any]]:
    data = json.loads(TRANSCRIPT.read_text(encoding="utf-8"))
    entries: dict[str, dict[str, Any]] = data["transcripts"]
    return entries


ENTRIES = _load()


def shown_lines(text: str) -> list[str]:
    """Every line but stack frames and node's warnings, with codes and paths normalised."""
    lines = []
    for line in text.split("\n"):
        if _STACK_FRAME.match(line) or _NODE_WARNING.match(line):
            continue
        line = _DEVICE_CODE.sub("user_code=XXXX-XXXX", line)
        lines.append(_CLI_PATH.sub("file://<path>/node_modules/", line))
    return lines


def json_messages(stdout: str, fmt: str) -> list[dict[str, Any]]:
    """``json``: ONE array on one line (0.12.0); ``stream-json``: one object per line."""
    if fmt == "json":
        assert stdout.endswith("\n") and stdout.count("\n") == 1, stdout[:200]
        parsed = json.loads(stdout)
        assert isinstance(parsed, list), f"--output-format json gave a {type(parsed).__name__}"
        return parsed
    lines = stdout.splitlines()
    assert stdout.endswith("\n") and all(lines), stdout[:200]
    return [json.loads(line) for line in lines]


def run_simulator(tmp_path: Path, mode: str, fmt: str, canary: str) -> RunResult:
    backend = simulate.SimBackend(tmp_path / "backend")
    backend.configure(poll_interval=0.2, device_auth_timeout=10.0)
    shims = simulate.install(tmp_path / "bin", backend.root)
    home = tmp_path / "home"
    (home / ".qwen").mkdir(parents=True)
    cred = backend.add_account(
        "sim",
        mode=mode,
        expired=mode == "refresh_fail",
        access_token=f"{canary}-access",
        refresh_token=f"{canary}-refresh",
    )
    (home / ".qwen" / "oauth_creds.json").write_text(json.dumps(cred, indent=2))
    work = tmp_path / "project"
    work.mkdir()
    env = {
        "PATH": os.pathsep.join([str(shims["qwen"].parent), "/usr/bin", "/bin"]),
        "HOME": str(home),
        "QWEN_HOME": str(home / ".qwen"),
        "LANG": "C.UTF-8",
    }
    stop = STOP_AT.get(mode)
    run = run_tool(
        PROFILES[fmt].argv(),
        stdin=PROMPT.encode(),
        env=env,
        timeout=20.0,
        abort_rules=(Rule.of(OutcomeKind.AUTH_FAILED, stop),) if stop else (),
        cwd=str(work),
    )
    assert canary not in run.stdout + run.stderr
    return run


def test_the_transcript_covers_the_error_modes() -> None:
    covered = {(e["mode"], e["output_format"]) for e in ENTRIES.values()}
    assert {
        ("quota", "text"),
        ("auth", "text"),
        ("connection_error", "text"),
        ("rate_limit", "text"),
        ("refresh_fail", "text"),
        ("quota", "json"),
        ("quota", "stream-json"),
    } <= covered


@pytest.mark.parametrize("key", sorted(ENTRIES))
def test_simulator_matches_the_recorded_cli(key: str, tmp_path: Path, canary: str) -> None:
    real = ENTRIES[key]
    mode, fmt = real["mode"], real["output_format"]
    if real["exit_code"] is None:
        assert mode in STOP_AT, f"{key}: recorded as stopped, but where is not known here"

    sim = run_simulator(tmp_path, mode, fmt, canary)

    assert sim.exit_code == real["exit_code"], sim.stderr[-500:]
    profile = PROFILES[fmt]
    sim_kind = classify(profile, sim.exit_code, sim.stdout, sim.stderr).kind
    real_kind = classify(profile, real["exit_code"], real["stdout"], real["stderr"]).kind
    assert sim_kind is real_kind
    assert real_kind.value == real["kind"]
    assert shown_lines(sim.stderr) == shown_lines(real["stderr"])
    if fmt == "text":
        assert sim.stdout == real["stdout"]
        return
    real_msgs, sim_msgs = json_messages(real["stdout"], fmt), json_messages(sim.stdout, fmt)
    assert [m.get("type") for m in sim_msgs] == [m.get("type") for m in real_msgs]
    for sim_msg, real_msg in zip(sim_msgs, real_msgs, strict=True):
        assert list(sim_msg) == list(real_msg), f"fields of the {real_msg['type']} message"
        if "message" in real_msg:
            assert list(sim_msg["message"]) == list(real_msg["message"])
    sim_result, real_result = sim_msgs[-1], real_msgs[-1]
    assert sim_result["type"] == "result"
    for field in ("subtype", "is_error", "result"):
        assert sim_result[field] == real_result[field], field
    # the assistant message carries the same text as the result
    assert sim_msgs[1]["message"]["content"] == real_msgs[1]["message"]["content"]
