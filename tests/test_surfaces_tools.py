"""Every surface takes the tool: the CLI, the pre-commit hook and the pytest fixture
factory rotate a Codex, Claude or Gemini pool exactly as they do Qwen's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from creds import CANARY
from simpool import SimPool

from credrot_hooks.qwen_review import main as review_main

BIN = Path(sys.executable).parent


def test_cli_lists_and_runs_another_tools_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimPool(tmp_path, monkeypatch, tool="claude")
    sim.add(quota=0)
    sim.add()
    listed = subprocess.run(
        [
            str(BIN / "credrot"),
            "--tool",
            "claude",
            "--home",
            str(sim.home),
            "accounts",
            "list",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    listing = json.loads(listed.stdout)
    assert listing["tool"] == "claude"
    assert [a["index"] for a in listing["accounts"]] == [1, 2]
    ran = subprocess.run(
        [
            str(BIN / "credrot"),
            "--tool",
            "claude",
            "--home",
            str(sim.home),
            "run",
            "--",
            "-p",
            "--output-format",
            "text",
        ],
        input="say hi",
        capture_output=True,
        text=True,
    )
    assert ran.returncode == 0, ran.stderr
    assert "acct2" in ran.stdout
    assert CANARY not in ran.stdout + ran.stderr + listed.stdout
    statuses = [a.status for a in sim.manager.list_accounts()]
    assert statuses == ["exhausted", "ready"]


def test_review_hook_with_codex(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = SimPool(tmp_path / "sim", monkeypatch, tool="codex")
    sim.add(quota=0)
    sim.add(answer="Looks fine.\nVERDICT: pass")
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (
        ["init", "-q"],
        ["config", "user.email", "d@example.com"],
        ["config", "user.name", "D"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    (repo / "app.py").write_text("x = 1\n")
    subprocess.run(["git", "add", "app.py"], cwd=repo, check=True)
    monkeypatch.chdir(repo)
    code = review_main(["--tool", "codex", "--home", str(sim.home), "app.py"])
    out, err = capsys.readouterr()
    assert code == 0
    assert "Looks fine." in out + err
    assert "verdict: pass" in out + err
    assert CANARY not in out + err
    (call,) = [c for c in sim.backend.calls() if c["account"] == "acct2"]
    assert "x = 1" in sim.backend.prompt(call["n"])


def test_fixture_factory_rotates_a_gemini_pool(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimPool(tmp_path / "sim", monkeypatch, tool="gemini")
    sim.add(quota=0)
    sim.add()
    pytester.makepyfile(
        f"""
        def test_ask(credrot_wrapper):
            gemini = credrot_wrapper("gemini", home={str(sim.home)!r})
            result = gemini.call("hi")
            assert result.success, result.error
            assert result.accounts_tried == [1, 2]
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    assert CANARY not in "\n".join(result.outlines + result.errlines)
