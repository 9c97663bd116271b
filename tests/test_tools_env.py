"""``env`` accounts: API keys put into the tool's environment, never into any output."""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from creds import CANARY, canary_leaks

from credrot import resets
from credrot.errors import DuplicateAccount, InvalidCredential
from credrot.kinds import OutcomeKind, Rule
from credrot.manager import AccountManager
from credrot.profile import ToolProfile, parse_env_file
from credrot.wrapper import Wrapper

KEYTOOL = ToolProfile(
    name="keytool",
    executable="keytool",
    home_dirname=".keytool",
    credential_name="account.env",
    credential_kind="env",
    rules=(
        Rule.of(OutcomeKind.QUOTA_EXHAUSTED, r"quota exceeded"),
        Rule.of(OutcomeKind.AUTH_FAILED, r"\b401\b"),
    ),
    default_reset=resets.after(timedelta(hours=1)),
)

#: The tool: records a hash of the key it got, then answers, echoing the key everywhere.
SCRIPT = """#!{python} -S
import hashlib, os, sys
key = os.environ.get("KEYTOOL_API_KEY", "")
prompt = sys.stdin.read()
with open({side!r}, "a") as f:
    f.write(hashlib.sha256(key.encode()).hexdigest() + "\\n")
# any credential file in the private call homes while the tool runs?
run = os.environ.get("KEYTOOL_RUN_DIR", "")
files = [d for d, _, names in os.walk(run) if "account.env" in names]
with open({side!r} + ".files", "a") as f:
    f.write("%d\\n" % len(files))
if key.endswith("-spent"):
    sys.stderr.write("Error: quota exceeded for key %s\\n" % key)
    sys.exit(1)
if key.endswith("-bad"):
    sys.stderr.write("HTTP 401: invalid key %s\\n" % key)
    sys.exit(1)
sys.stderr.write("debug: key=%s debug=%s\\n" % (key, os.environ.get("KEYTOOL_DEBUG")))
print("answer to %r with %s via %s" % (prompt, key, os.environ.get("KEYTOOL_BASE_URL")))
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def account(key: str, **extra: str) -> bytes:
    lines = ["# an API-key account", f"export KEYTOOL_API_KEY={key}"]
    lines += [f"{k}={v}" for k, v in extra.items()]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def env_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[AccountManager, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    side = tmp_path / "seen-keys"
    tool = bin_dir / "keytool"
    tool.write_text(SCRIPT.format(python=sys.executable, side=str(side)))
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("KEYTOOL_API_KEY", "from-the-callers-shell")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("KEYTOOL_RUN_DIR", str(home / ".credrot-run"))
    return AccountManager(tool=KEYTOOL, home=home), side


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1\nB=two words\n", {"A": "1", "B": "two words"}),
        ("# comment\n\nexport KEY='quoted value'\n", {"KEY": "quoted value"}),
        ('KEY="x=y"\n', {"KEY": "x=y"}),
        ("  SPACED = v  \n", {"SPACED": "v"}),
    ],
)
def test_parse_env_file(text: str, expected: dict[str, str]) -> None:
    assert parse_env_file(text.encode()) == (expected, None)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no KEY=value lines"),
        ("# only a comment\n", "no KEY=value lines"),
        (f"{CANARY} without equals\n", "line 1 is not KEY=value"),
        (f"1KEY={CANARY}\n", "line 1 is not KEY=value"),
        (f"A={CANARY}\nA={CANARY}\n", "line 2: A is set twice"),
        ("A=\n", "line 1: A is empty"),
        (f"HOME={CANARY}\n", "line 1: HOME cannot be set by an account"),
        (f"PATH={CANARY}\n", "line 1: PATH cannot be set by an account"),
    ],
    ids=lambda value: "" if CANARY in str(value) else None,  # stable across xdist workers
)
def test_bad_env_files_say_why_without_the_value(text: str, why: str) -> None:
    assert parse_env_file(text.encode()) == (None, why)
    assert KEYTOOL.parse_credential(text.encode()) == (None, why)
    assert parse_env_file(b"\xff\xfe") == (None, "not UTF-8 text")


def test_import_identity_and_errors(env_pool: tuple[AccountManager, Path]) -> None:
    manager, _ = env_pool
    base = "https://api.example.test/v1"
    assert manager.import_account(account(f"{CANARY}-k1", KEYTOOL_BASE_URL=base)) == 1
    # the same base URL is not the same account; the same key is
    assert manager.import_account(account(f"{CANARY}-k2", KEYTOOL_BASE_URL=base)) == 2
    with pytest.raises(DuplicateAccount, match="already account #1") as dup:
        manager.import_account(account(f"{CANARY}-k1"))
    assert CANARY not in str(dup.value)
    with pytest.raises(InvalidCredential) as bad:
        manager.import_account(f"KEY {CANARY}\n".encode())
    assert str(bad.value) == "not a valid keytool credential: line 1 is not KEY=value"
    assert sorted(p.name for p in manager.accounts_dir.iterdir()) == [
        "account_1.env",
        "account_2.env",
    ]
    assert (manager.slot_path(1).stat().st_mode & 0o777) == 0o600
    assert [a.valid for a in manager.list_accounts()] == [True, True]


def test_env_account_reaches_the_tool_and_never_any_output(
    env_pool: tuple[AccountManager, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    manager, side = env_pool
    keys = [f"{CANARY}-k1-spent", f"{CANARY}-k2-bad", f"{CANARY}-k3"]
    for key in keys:
        manager.import_account(
            account(key, KEYTOOL_BASE_URL="https://api.example.test", KEYTOOL_DEBUG="1")
        )
    w = Wrapper(KEYTOOL, manager=manager, timeout=20, backoff="none")
    result = w.call("hello")
    assert result.success, result.error
    assert result.accounts_tried == [1, 2, 3]
    # each account's key reached the tool, in order; the caller's own value was replaced
    assert side.read_text().split() == [sha(k) for k in keys]
    # ... and was redacted from everything the tool printed: every value of an env
    # account counts as a secret (the base URL too), except values too short to be one
    assert result.output == "answer to 'hello' with [REDACTED] via [REDACTED]\n"
    assert "key=[REDACTED] debug=1" in result.stderr  # short values are no secrets
    statuses = {a.index: (a.status, a.reason) for a in manager.list_accounts()}
    assert statuses[1] == ("exhausted", "Error: quota exceeded for key [REDACTED]")
    assert statuses[2] == ("needs_login", "HTTP 401: invalid key [REDACTED]")
    # a second call: account 3 at once, and all spent means a clear error, no key
    assert w.call("again").attempts == 1
    manager.mark(3, "disabled", reason="test")
    failed = w.call("third")
    assert not failed.success and failed.pool_exhausted
    for r in (result, failed):
        assert CANARY not in repr(r)
    out, err = capfd.readouterr()
    assert CANARY not in out + err
    assert canary_leaks(manager.home) == []
    # no credential file was in any call home while the tool ran
    assert side.with_name("seen-keys.files").read_text().split() == ["0"] * 4
    assert CANARY not in json.dumps(manager.get_stats())
    assert CANARY not in json.dumps([a.as_dict() for a in manager.list_accounts()])
    assert CANARY not in repr(w) + repr(manager)


def test_env_accounts_in_the_shared_pointer(env_pool: tuple[AccountManager, Path]) -> None:
    """The pointer names the active account for people (`source ~/.keytool/account.env`)."""
    manager, _ = env_pool
    manager.import_account(account(f"{CANARY}-k1"))
    manager.import_account(account(f"{CANARY}-k2"))
    assert manager.pointer.is_symlink()
    manager.switch_to(2)
    assert manager.pointer.read_bytes() == manager.slot_path(2).read_bytes()
