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
