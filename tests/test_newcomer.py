"""What a new user meets first, through the real ``credrot`` command (click's runner or a
subprocess): the demo for every tool, ``credrot sim``, config mistakes, the switch lines
of ``credrot run``, options after the subcommand and ``--json`` on every change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from creds import CANARY
from simpool import SimPool

from credrot import cli


def invoke(args: Sequence[str], input: bytes | str | None = None) -> Result:
    result = CliRunner().invoke(cli.cli, list(args), input=input, catch_exceptions=False)
    assert CANARY not in result.output, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path / "sim", monkeypatch)


# ----------------------------------------------------------------------- demo
@pytest.mark.parametrize("tool", ["claude", "codex", "gemini"])
def test_demo_runs_for_every_simulated_tool(tool: str) -> None:
    home = Path(os.environ["HOME"])
    before = sorted(home.rglob("*"))
    result = invoke(["--tool", tool, "demo"])
    assert result.exit_code == 0, result.output
    assert f"3 simulated {tool} accounts" in result.stdout
    assert f"Simulated {tool} answer from alice" in result.stdout
    assert "#1 hit its quota" in result.stdout
    assert "answered by #2" in result.stdout
    assert sorted(home.rglob("*")) == before


def test_demo_of_a_yaml_tool_says_it_cannot_be_simulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("tools:\n  mytool:\n    credential: auth.json\n", encoding="utf-8")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    result = invoke(["--tool", "mytool", "demo"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "credrot: error: 'mytool' cannot be simulated: "
        "the simulator plays qwen, claude, codex, gemini only"
    ]
    assert "internal error" not in result.output


# ------------------------------------------------------------------------ sim
@pytest.mark.parametrize(
    ("tool", "variable", "pool"),
    [
        ("qwen", "QWEN_HOME", "home"),
        ("claude", "CLAUDE_CONFIG_DIR", "home"),
        ("gemini", "GEMINI_CLI_HOME", "home/.gemini"),
    ],
)
def test_sim_writes_a_tool_and_a_pool_and_prints_the_exports(
    tmp_path: Path, tool: str, variable: str, pool: str
) -> None:
    where = tmp_path / "try"
    result = invoke(["--tool", tool, "sim", str(where), "--accounts", "2", "--quota", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f'export PATH={where / "bin"}:"$PATH"',
        f"export {variable}={where / 'home'}",
    ]
    assert f"2 simulated {tool} accounts (1 answers each)" in result.stderr
    assert os.access(where / "bin" / tool, os.X_OK)
    listed = invoke(["--tool", tool, "--home", str(where / pool), "accounts", "list", "--json"])
    assert [a["index"] for a in json.loads(listed.stdout)["accounts"]] == [1, 2]


def test_sim_refuses_a_used_directory_and_a_yaml_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    result = invoke(["sim", str(used)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"credrot: error: {used} is not an empty directory; name a new one"
    ]
    assert sorted(p.name for p in used.iterdir()) == ["notes.txt"]
    config = tmp_path / "config.yaml"
    config.write_text("tools:\n  mytool:\n    credential: auth.json\n", encoding="utf-8")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    result = invoke(["--tool", "mytool", "sim", str(tmp_path / "new")])
    assert result.exit_code == 1
    assert "'mytool' cannot be simulated" in result.stderr
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------------ run
def _credrot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "credrot"
    proc = subprocess.run(
        [str(exe), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert CANARY not in proc.stdout + proc.stderr
    return proc


def test_run_says_each_switch_and_keeps_the_tools_noise_for_debug(sim: SimPool) -> None:
    sim.add("a", quota=0)
    sim.add("b", quota=0)
    sim.add("c", quota=0)
    env = {**os.environ, "QWEN_HOME": str(sim.home)}
    spent = _credrot("run", "--max-retries", "2", "--", "-p", "hi", env=env)
    assert spent.returncode == 1  # not an exhausted pool: --max-retries stopped it
    assert spent.stderr.splitlines()[:2] == [
        "credrot: account #1 spent (resets 00:00 UTC); trying #2",
        "credrot: account #2 spent (resets 00:00 UTC); no more tries (--max-retries 2)",
    ]
    assert spent.stderr.count("Qwen OAuth quota exceeded") == 1  # said once, not four times
    assert "Traceback" not in spent.stderr and "at file://" not in spent.stderr
    debug = _credrot("--debug", "run", "--", "-p", "hi", env=env)
    assert debug.returncode == 3
    assert "credrot: account #3 spent (resets 00:00 UTC); no other usable account" in debug.stderr
    assert "An unexpected critical error occurred:" in debug.stderr  # all of the tool's output
    assert "at file://" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("credrot: error: no usable account")
