"""What the README shows must work as shown."""

from __future__ import annotations

import re
from pathlib import Path

from credrot.classify import classify
from credrot.config import parse_config
from credrot.kinds import OutcomeKind

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.DOTALL)


def test_setup_commands_come_first() -> None:
    bash = _blocks("bash")
    assert bash[0].split("\n")[:2] == ['python3 -m pip install -e ".[dev]"', "python3 -m pytest"]
    assert bash[1].strip() == "credrot demo"


def test_the_config_example_is_a_valid_tool() -> None:
    (example,) = [b for b in _blocks("yaml") if b.startswith("tools:")]
    tools = parse_config(example, "README.md")
    profile = tools["mytool"]
    assert profile.executable == "mytool"
    assert classify(profile, 1, "", "Error: quota exceeded").kind is OutcomeKind.QUOTA_EXHAUSTED
    assert classify(profile, 1, "", "HTTP 429").kind is OutcomeKind.RATE_LIMITED
    assert classify(profile, 0, "quota exceeded, 429", "").kind is OutcomeKind.OK


def test_the_python_example_uses_the_public_api() -> None:
    (example,) = [b for b in _blocks("python") if "QwenWrapper" in b]
    assert "from credrot import QwenWrapper" in example
    import credrot

    assert credrot.QwenWrapper.__name__ == "QwenWrapper"


def _runnable(block: str) -> list[str]:
    """The block's commands, comments cut, without the logins (they need a human)."""
    lines = [line.split("  #")[0].strip() for line in block.splitlines()]
    return [line for line in lines if line and "--setup" not in line and "accounts add" not in line]


def test_the_usage_examples_run_against_credrot_sim(tmp_path: Path) -> None:
    """`credrot sim` as "See it work" shows it, then every usage example in one shell."""
    import os
    import subprocess
    import sys

    bash = _blocks("bash")
    (sim_block,) = [b for b in bash if "credrot sim" in b]
    manage = next(b for b in bash if b.startswith("account-qwen --list"))
    command_line = next(b for b in bash if b.startswith("credrot accounts add --count 3"))
    (python_example,) = [b for b in _blocks("python") if "QwenWrapper" in b]
    where = tmp_path / "try"
    commands = [line.replace("/tmp/credrot-try", str(where)) for line in _runnable(sim_block)]
    commands += _runnable(manage) + _runnable(command_line)
    (tmp_path / "example.py").write_text(python_example, encoding="utf-8")
    commands.append(f"{sys.executable} {tmp_path / 'example.py'}")
    script = "set -e\n" + "\n".join(f"echo '$ {c}'; {c}" for c in commands) + "\n"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        ["bash", "-c", script],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert f"qwen accounts in {where / 'home'} (3, 3 usable; * = active)" in out
    assert "switched to account #3" in out
    assert "Simulated qwen answer from account" in out
    assert "Analysis unavailable" not in out
    assert (where / "home" / "accounts" / "oauth_creds_3.json").is_file()
