"""Caps: with known limits in config, credrot stops sending to an account before the
tool refuses it — no invocation is spent on a spent account."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from simpool import SimPool

from credrot.limits import parse_limits
from credrot.wrapper import Wrapper


def _config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    monkeypatch.setenv("CREDROT_CONFIG", str(path))
    return path


def test_caps_stop_an_account_before_its_quota_refuses_a_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(tmp_path, monkeypatch, "limits:\n  qwen:\n    caps: {5h: 3}\n")
    pool = SimPool(tmp_path, monkeypatch)
    pool.add("a", quota=3)
    pool.add("b", quota=3)
    wrapper = Wrapper(manager=pool.manager)
    results = [wrapper.call(f"request {i}") for i in range(8)]
    assert [r.success for r in results] == [True] * 6 + [False] * 2
    assert [r.account for r in results[:6]] == [1, 1, 1, 2, 2, 2]
    assert all(c["outcome"] == "ok" for c in pool.backend.calls())  # none wasted
    assert len(pool.backend.calls()) == 6
    assert results[6].pool_exhausted and "no usable account" in (results[6].error or "")
    state = json.loads((pool.home / "state.yaml").read_text())
    assert state["accounts"]["1"]["windows"]["5h"]["calls"] == 3

    listed = subprocess.run(
        [sys.executable, "-m", "credrot", "--home", str(pool.home), "accounts", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert "5h 3 runs" in listed.stdout and "exhausted until" in listed.stdout


def test_an_account_cap_overrides_the_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _config(
        tmp_path,
        monkeypatch,
        "limits:\n  qwen:\n    caps: {day: 1}\n    accounts:\n      2: {caps: {day: 3}}\n",
    )
    pool = SimPool(tmp_path, monkeypatch)
    pool.add("a")
    pool.add("b")
    wrapper = Wrapper(manager=pool.manager)
    served = [wrapper.call("hi").account for _ in range(5)]
    assert served == [1, 2, 2, 2, None]
    assert len(pool.backend.calls()) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("limits: [1]\n", "limits: expected a mapping of tool name"),
        ("limits:\n  qwen:\n    caps: {5x: 3}\n", "limits.qwen.caps.5x: expected a window"),
        ("limits:\n  qwen:\n    caps: {5h: 0}\n", "limits.qwen.caps.5h: expected a whole number"),
        ("limits:\n  qwen:\n    rotate_at: 2\n", "limits.qwen.rotate_at: expected a fraction"),
        ("limits:\n  qwen:\n    cap: {5h: 3}\n", "limits.qwen.cap: expected one of caps"),
        ("limits:\n  qwen:\n    accounts: {x: {}}\n", "limits.qwen.accounts.x: expected an"),
    ],
)
def test_a_bad_limit_is_one_line_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    path = _config(tmp_path, monkeypatch, text)
    pool = SimPool(tmp_path, monkeypatch)
    pool.add()
    home = pool.home
    before = sorted(p.name for p in home.iterdir())
    run = subprocess.run(
        [sys.executable, "-m", "credrot", "--home", str(home), "accounts", "list"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], run.stderr
    assert "Traceback" not in run.stderr
    assert sorted(p.name for p in home.iterdir()) == before


def test_limits_default_to_no_caps_and_rotate_at_095() -> None:
    limits = parse_limits("tools: {}\n", "qwen")
    assert limits.caps == {} and limits.rotate_at == 0.95
    off = parse_limits("limits:\n  claude: {rotate_at: null}\n", "claude")
    assert off.rotate_at is None
