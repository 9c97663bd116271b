"""``--tool qwen-key``: Coding Plan keys as accounts, from the command line, without node.

The tool is a small stand-in ``qwen`` script (a real subprocess) that answers like current
Qwen Code: a key named ``spent`` gets the Coding Plan's hour quota, any other key an
answer naming which key it was given and where its home is. It proves what reaches the
CLI (the key in the environment, never in argv), what the pool remembers, and that no
output shows a key.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from credrot import cli
from credrot.tools import QWEN_KEY

SPENT = "sk-sp-CANARY-spent-0123456789abcdef"
GOOD = "sk-sp-CANARY-good-fedcba9876543210"
BASE = "https://coding.dashscope.aliyuncs.com/v1"
#: Answers like Qwen Code 0.24.4 on the Coding Plan (the recorded transcript's texts).
TOOL = """#!/bin/sh
cat > /dev/null
printf '%s\\n' "$*" > "$ARGV_SEEN"
case "$OPENAI_API_KEY" in
  *spent*) printf '%s\\n' '[API Error: 429 hour allocated quota exceeded]' \\
      'Possible quota limitations in place or slow response times detected.'"$WAIT" \\
      "(key $OPENAI_API_KEY)" >&2
    exit 1 ;;
esac
[ -n "$OPENAI_BASE_URL" ] && [ -n "$OPENAI_MODEL" ] || { echo 'no base URL' >&2; exit 1; }
echo "answer from key ${OPENAI_API_KEY#sk-sp-CANARY-}"
"""


def invoke(args: Sequence[str]) -> Result:
    result = CliRunner().invoke(cli.cli, list(args), catch_exceptions=False)
    assert "CANARY" not in result.output, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def keys_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "qwen"
    tool.write_text(TOOL)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("QWEN_HOME", raising=False)
    monkeypatch.setenv("ARGV_SEEN", str(tmp_path / "argv-seen"))
    monkeypatch.setenv("WAIT", " Please wait and try again later.")
    home = Path(os.environ["HOME"]) / ".qwen-keys"
    for number, key in enumerate((SPENT, GOOD), start=1):
        account = tmp_path / f"key{number}.env"
        account.write_text(
            f"OPENAI_API_KEY={key}\nOPENAI_BASE_URL={BASE}\nOPENAI_MODEL=qwen3-coder-plus\n"
        )
        added = invoke(["--tool", "qwen-key", "accounts", "add", "--from", str(account)])
        assert added.exit_code == 0, added.output
    return home


def test_keys_are_added_to_their_own_pool_home(keys_home: Path) -> None:
    assert QWEN_KEY.default_home({"HOME": os.environ["HOME"]}) == keys_home
    slots = sorted(p.name for p in (keys_home / "accounts").iterdir())
    assert slots == ["api_key_1.env", "api_key_2.env"]
    assert all(((keys_home / "accounts" / s).stat().st_mode & 0o077) == 0 for s in slots)
    # the OAuth pool's home is not touched
    assert not (Path(os.environ["HOME"]) / ".qwen").exists()


def test_a_spent_key_rotates_and_its_hour_quota_is_remembered(keys_home: Path) -> None:
    # --debug shows all the tool printed, its key redacted (invoke greps for the canary)
    result = invoke(["--debug", "--tool", "qwen-key", "run", "--", "-p", "hello"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "answer from key good-fedcba9876543210"
    state = json.loads((keys_home / "state.yaml").read_text())
    spent = state["accounts"]["1"]
    assert spent["status"] == "exhausted"
    assert set(spent["windows"]) == {"5h"}
    # the key went through the environment: argv is the caller's, with no key
    assert Path(os.environ["ARGV_SEEN"]).read_text() == "-p hello\n"
    again = invoke(["--tool", "qwen-key", "run", "--", "-p", "hello"])
    assert again.exit_code == 0 and "good" in again.stdout


def test_a_key_file_without_its_base_url_is_refused_in_one_line(
    keys_home: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare.env"
    bare.write_text(f"OPENAI_API_KEY={GOOD}-other\n")
    result = invoke(["--tool", "qwen-key", "accounts", "add", "--from", str(bare)])
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "OPENAI_BASE_URL is not set" in lines[0]
    assert len(list((keys_home / "accounts").iterdir())) == 2
    no_model = tmp_path / "no-model.env"
    no_model.write_text(f"OPENAI_API_KEY={GOOD}-third\nOPENAI_BASE_URL={BASE}\n")
    result = invoke(["--tool", "qwen-key", "accounts", "add", "--from", str(no_model)])
    assert result.exit_code != 0 and "OPENAI_MODEL is not set" in result.stderr


def test_a_key_the_tool_prints_is_redacted(keys_home: Path, tmp_path: Path) -> None:
    other = tmp_path / "only-spent"
    account = tmp_path / "spent.env"
    account.write_text(f"OPENAI_API_KEY={SPENT}-2\nOPENAI_BASE_URL={BASE}\nOPENAI_MODEL=m\n")
    home = ["--tool", "qwen-key", "--home", str(other)]
    assert invoke([*home, "accounts", "add", "--from", str(account)]).exit_code == 0
    result = invoke(["--debug", *home, "run", "--", "-p", "hello"])
    assert result.exit_code == 3  # no usable account left
    # all the tool printed is shown, its key redacted (invoke greps for the canary)
    assert "hour allocated quota exceeded" in result.stderr
    assert "(key " in result.stderr


def test_a_users_qwen_home_names_the_oauth_pool_never_the_key_pool(tmp_path: Path) -> None:
    """Both profiles drive the same CLI; a user's ``QWEN_HOME`` is where the OAuth pool
    lives, so the key pool stays in ``~/.qwen-keys`` and the two never share a home."""
    from credrot.tools import QWEN, QWEN_KEY

    env = {"HOME": str(tmp_path), "QWEN_HOME": str(tmp_path / "oauth-pool")}
    assert QWEN.default_home(env) == tmp_path / "oauth-pool"
    assert QWEN_KEY.default_home(env) == tmp_path / ".qwen-keys"
