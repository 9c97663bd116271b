"""Tools described in YAML: loading, one-line errors, and such a tool rotated end to end."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from creds import CANARY, canary_leaks

from credrot import config, resets
from credrot.classify import classify
from credrot.errors import ConfigError, InvalidCredential
from credrot.kinds import OutcomeKind
from credrot.manager import AccountManager
from credrot.tools import BUILTIN, get_profile, known_tools
from credrot.wrapper import Wrapper
from credrot_sim import SimBackend, install

NOW = datetime(2026, 11, 28, 15, 30, tzinfo=timezone.utc)


def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Path:
    path = tmp_path / "credrot.yaml"
    path.write_text(textwrap.dedent(text))
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    return path


FULL = r"""
tools:
  mytool:
    executable: mytool-bin
    home: ~/.config/mytool
    home_env: MYTOOL_HOME
    credential: auth.json
    args: [--print, --max-turns, 3]
    approval_flag: --mode
    default_approval: safe
    patterns:
      quota_exhausted: ["quota exceeded", "out of credits"]
      rate_limited: '\b429\b'
      auth_failed: ["please log in"]
      disabled: ["plan cancelled"]
    abort_patterns: ["Open this URL to log in"]
    exit_codes: {41: auth_failed, 42: error}
    resets: [gemini_after, codex]
    reset_window: 90m
    rate_limit_window: 2m
    required_keys: [token.access, token.refresh]
    expiry_key: token.expires
    expiry_unit: s
    replaces_symlink: false
    tool_lock: auth.lock
    install_hint: pip install mytool
    json_error_prefixes: ["Error:"]
"""


def test_a_full_description(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, FULL)
    p = get_profile("mytool")
    assert (p.name, p.executable, p.home_dirname, p.credential_name) == (
        "mytool",
        "mytool-bin",
        ".config/mytool",
        "auth.json",
    )
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MYTOOL_HOME", raising=False)
    assert p.default_home() == tmp_path / ".config/mytool"
    monkeypatch.setenv("MYTOOL_HOME", str(tmp_path / "elsewhere"))
    assert p.default_home() == tmp_path / "elsewhere"
    assert p.invocation("hi") == (
        ["mytool-bin", "--print", "--max-turns", "3", "--mode", "safe"],
        b"hi",
    )
    assert p.tool_lock_name == "auth.lock" and not p.replaces_symlink
    assert p.rate_limit_default == 120.0
    assert p.default_reset(NOW) == NOW + timedelta(minutes=90)
    assert p.parse_reset("quota exceeded: reset after 1h2s", NOW) == NOW + timedelta(
        hours=1, seconds=2
    )
    cases = [
        ("Error: quota exceeded", 1, OutcomeKind.QUOTA_EXHAUSTED),
        ("HTTP 429", 1, OutcomeKind.RATE_LIMITED),
        ("Please log in again", 1, OutcomeKind.AUTH_FAILED),
        ("your plan cancelled", 1, OutcomeKind.DISABLED),
        ("something", 41, OutcomeKind.AUTH_FAILED),
        ("something", 42, OutcomeKind.ERROR),
        ("quota exceeded, as the answer explains", 0, OutcomeKind.OK),
    ]
    for text, code, kind in cases:
        assert classify(p, code, "", text, now=NOW).kind is kind, text
    assert p.abort_rules[0].pattern.search("Open this URL to log in: https://x")
    good = {"token": {"access": "a" * 10, "refresh": "r" * 10, "expires": 1_900_000_000}}
    data, why = p.parse_credential(json.dumps(good).encode())
    assert why is None and data is not None and p.expiry(data) == 1_900_000_000.0
    assert p.parse_credential(b'{"token": {"access": "x"}}') == (
        None,
        "'token.refresh' is missing or not a string",
    )
    assert "mytool" in known_tools() and known_tools()[: len(BUILTIN)] == list(BUILTIN)


def test_no_config_file_is_no_tools(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    assert config.config_path() == Path(os.environ["HOME"]) / ".config/credrot/config.yaml"
    assert config.load_tools() == {}
    with pytest.raises(ConfigError) as err:
        get_profile("aider")
    assert str(err.value) == (
        "unknown tool 'aider' (known: claude, codex, gemini, qwen, qwen-key; describe others in "
        f"{config.config_path()})"
    )


def test_the_default_path_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    path = config.config_path()
    path.parent.mkdir(parents=True)
    path.write_text("tools:\n  aider:\n    credential: key.env\n    credential_kind: env\n")
    assert get_profile("aider").credential_kind == "env"


def test_a_missing_file_named_by_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(config.CONFIG_ENV, str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match=r"nope.yaml: no such config file$"):
        get_profile("mytool")
    # built-in names never read the file
    assert get_profile("claude").name == "claude"


def test_changes_are_picked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, monkeypatch, "tools:\n  one:\n    credential: a.json\n")
    assert list(config.load_tools()) == ["one"]
    path.write_text("tools:\n  two:\n    credential: a.json\n  three:\n    credential: b.json\n")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert sorted(config.load_tools()) == ["three", "two"]


ERRORS = [
    (
        "tools: [a, b",
        "not valid YAML (line 1, column 13: expected ',' or ']', but got '<stream end>')",
    ),
    ("- a\n- b\n", "(top level): expected a mapping with a 'tools' key"),
    (
        "tool: {}\n",
        "tool: expected only 'tools', 'limits', 'notify', 'store' (and 'version') at the top level",
    ),
    ("version: 2\n", "version: expected 1"),
    ("tools: [x]\n", "tools: expected a mapping of tool name to its description"),
    (
        "tools:\n  My Tool: {}\n",
        "tools.My Tool: expected a tool name of lowercase letters, digits, '-', '_', '.'",
    ),
    (
        "tools:\n  claude: {credential: a.json}\n",
        "tools.claude: expected a name that is not built in (choose another name)",
    ),
    ("tools:\n  t: [1]\n", "tools.t: expected a mapping of settings"),
    (
        "tools:\n  t: {credential: a.json, homedir: x}\n",
        "tools.t.homedir: expected a known key (" + ", ".join(config.TOOL_KEYS) + ")",
    ),
    (
        "tools:\n  t: {}\n",
        "tools.t.credential: expected the credential file name (this key is required)",
    ),
    (
        "tools:\n  t: {credential: a/b.json}\n",
        "tools.t.credential: expected a file name, like auth.json (a/b.json)",
    ),
    ("tools:\n  t: {credential: 5}\n", "tools.t.credential: expected a file name, like auth.json"),
    (
        "tools:\n  t: {credential: a.json, credential_kind: keychain}\n",
        "tools.t.credential_kind: expected file or env (keychain)",
    ),
    (
        "tools:\n  t: {credential: a.json, home: /etc/t}\n",
        "tools.t.home: expected a path under "
        "your home directory, like .mytool or ~/.config/mytool (/etc/t)",
    ),
    (
        "tools:\n  t: {credential: a.json, home: ../t}\n",
        "tools.t.home: expected a path under "
        "your home directory, like .mytool or ~/.config/mytool (../t)",
    ),
    (
        "tools:\n  t: {credential: a.json, home_env: 'MY-HOME'}\n",
        "tools.t.home_env: expected an environment variable name (MY-HOME)",
    ),
    (
        "tools:\n  t: {credential: a.json, home_env_is_parent: true}\n",
        "tools.t.home_env_is_parent: expected home_env to be set as well",
    ),
    (
        "tools:\n  t: {credential: a.json, set_home: 'yes'}\n",
        "tools.t.set_home: expected true or false",
    ),
    (
        "tools:\n  t: {credential: a.json, args: [-p, {x: 1}]}\n",
        "tools.t.args[1]: expected a string",
    ),
    (
        "tools:\n  t: {credential: a.json, args: ['{prompt}']}\n",
        "tools.t.args: expected no {prompt} when the prompt goes through stdin",
    ),
    (
        "tools:\n  t: {credential: a.json, prompt: pipe}\n",
        "tools.t.prompt: expected stdin or argument (pipe)",
    ),
    (
        "tools:\n  t: {credential: a.json, patterns: [a]}\n",
        "tools.t.patterns: expected a mapping of outcome to regular expressions",
    ),
    (
        "tools:\n  t: {credential: a.json, patterns: {quota: [x]}}\n",
        "tools.t.patterns.quota: expected one of disabled, auth_failed, quota_exhausted, "
        "rate_limited",
    ),
    (
        "tools:\n  t: {credential: a.json, patterns: {rate_limited: ['ok', '(unclosed']}}\n",
        "tools.t.patterns.rate_limited[1]: expected a regular expression (missing ), "
        "unterminated subpattern at position 0)",
    ),
    (
        "tools:\n  t: {credential: a.json, patterns: {rate_limited: [3]}}\n",
        "tools.t.patterns.rate_limited[0]: expected a string",
    ),
    (
        "tools:\n  t: {credential: a.json, abort_patterns: ['[']}\n",
        "tools.t.abort_patterns[0]: expected a regular expression (unterminated character set "
        "at position 0)",
    ),
    (
        "tools:\n  t: {credential: a.json, exit_codes: {0: error}}\n",
        "tools.t.exit_codes.0: expected an exit code from 1 to 255",
    ),
    (
        "tools:\n  t: {credential: a.json, exit_codes: {41: login}}\n",
        "tools.t.exit_codes.41: expected one of disabled, auth_failed, quota_exhausted, "
        "rate_limited, error",
    ),
    (
        "tools:\n  t: {credential: a.json, resets: [claude, moon]}\n",
        "tools.t.resets[1]: expected one of " + ", ".join(resets.PARSERS) + " (moon)",
    ),
    (
        "tools:\n  t: {credential: a.json, reset_window: tomorrow}\n",
        "tools.t.reset_window: expected a duration like 5h or 24h, or midnight [zone]",
    ),
    (
        "tools:\n  t: {credential: a.json, reset_window: -5}\n",
        "tools.t.reset_window: expected a duration like 5h or 24h, or midnight [zone]",
    ),
    (
        "tools:\n  t: {credential: a.json, reset_window: midnight Mars/Base}\n",
        "tools.t.reset_window: expected midnight followed by a known time zone (Mars/Base)",
    ),
    (
        "tools:\n  t: {credential: a.json, rate_limit_window: soon}\n",
        "tools.t.rate_limit_window: expected a duration like 60s",
    ),
    (
        "tools:\n  t: {credential: a.json, expiry_unit: h}\n",
        "tools.t.expiry_unit: expected ms or s (h)",
    ),
    (
        "tools:\n  t: {credential: a.json, tool_lock: a/b}\n",
        "tools.t.tool_lock: expected a file name (a/b)",
    ),
    (
        "tools:\n  t: {credential: a.json, per_model_windows: 'yes'}\n",
        "tools.t.per_model_windows: expected true or false "
        "(true: a window like week:opus limits that model only)",
    ),
    (
        "tools:\n  t: {credential: a.json, patterns: {quota_exhausted: {fortnight: [x]}}}\n",
        "tools.t.patterns.quota_exhausted.fortnight: expected a window name: day, week, month "
        "or a length like 5h, then maybe :model",
    ),
    (
        "tools:\n  t: {credential: a.json, patterns: {quota_exhausted: {'week:': [x]}}}\n",
        "tools.t.patterns.quota_exhausted.week:: expected a window name: day, week, month "
        "or a length like 5h, then maybe :model",
    ),
    (
        "tools:\n  t: {credential: a.json, patterns: {quota_exhausted: {'week:opus': 3}}}\n",
        "tools.t.patterns.quota_exhausted.week:opus: expected a list of strings",
    ),
    (
        "tools:\n  t: {credential: a.json, patterns: {quota_exhausted: {5h: ['(']}}}\n",
        "tools.t.patterns.quota_exhausted.5h[0]: expected a regular expression (missing ), "
        "unterminated subpattern at position 0)",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_errors_name_the_file_the_key_and_what_was_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    path = write_config(tmp_path, monkeypatch, text)
    with pytest.raises(ConfigError) as err:
        get_profile("t")
    assert str(err.value) == f"{path}: {message}"
    assert "\n" not in str(err.value)


def test_not_utf8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(tmp_path, monkeypatch, "")
    path.write_bytes(b"tools:\n  t: {credential: \xff}\n")
    with pytest.raises(ConfigError, match=r"credrot.yaml: not UTF-8 text$"):
        config.load_tools()


def test_empty_file_and_empty_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, monkeypatch, "")
    assert config.load_tools() == {}
    write_config(tmp_path, monkeypatch, "version: 1\ntools:\n")
    assert config.load_tools() == {}


# ---------------------------------------------------------------- end to end

SIM_TOOL = r"""
tools:
  mytool:
    home: .mytool
    home_env: QWEN_HOME
    set_home: true
    credential: oauth_creds.json
    args: [--auth-type, qwen-oauth]
    patterns:
      quota_exhausted: ["free daily quota has been reached"]
      rate_limited: ['\[API Error: 429']
      auth_failed: ['\[API Error: 401']
    abort_patterns: ["Device Authorization"]
    reset_window: 6h
    required_keys: [access_token, refresh_token]
    expiry_key: expiry_date
"""


def test_a_yaml_tool_rotated_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The Qwen simulator installed under another name, known to credrot only by YAML."""
    write_config(tmp_path, monkeypatch, SIM_TOOL)
    backend = SimBackend(tmp_path / "backend")
    bin_dir = tmp_path / "bin"
    shim = install(bin_dir, backend.root)["qwen"]
    shutil.move(shim, bin_dir / "mytool")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    manager = AccountManager(tool="mytool")
    assert manager.home == tmp_path / "user/.mytool"
    settings: list[dict[str, Any]] = [{"quota": 0}, {"mode": "auth"}, {"expired": True}]
    for i, sim in enumerate(settings, start=1):
        cred = backend.add_account(
            f"a{i}", access_token=f"{CANARY}-a{i}", refresh_token=f"{CANARY}-r{i}", **sim
        )
        assert manager.import_account(json.dumps(cred).encode()) == i
    started = datetime.now(timezone.utc)
    w = Wrapper(tool="mytool", timeout=20)
    result = w.call("hello from yaml")
    assert result.success, result.error
    assert result.accounts_tried == [1, 2, 3] and "a3" in result.output
    info = {a.index: a for a in manager.list_accounts()}
    assert (info[1].status, info[2].status, info[3].status) == ("exhausted", "needs_login", "ready")
    assert info[1].until is not None
    assert abs(info[1].until - (started + timedelta(hours=6))) < timedelta(minutes=1)
    # the refresh the tool did during the call is in slot 3
    slot3 = json.loads(manager.slot_path(3).read_bytes())
    assert slot3["access_token"] == backend.latest_token("a3")
    assert w.call("again").attempts == 1
    calls = backend.calls()
    assert calls[-1]["argv"] == ["--auth-type", "qwen-oauth"]
    assert calls[-1]["home"].endswith("/.mytool")  # its private call home
    out, err = capfd.readouterr()
    assert CANARY not in out + err + repr(result)
    assert canary_leaks(manager.home) == []


ARG_TOOL = """
tools:
  echoer:
    executable: echoer
    credential: token.json
    args: [--ask, "{prompt}", --plain]
    prompt: argument
    patterns:
      quota_exhausted: ["out of credits"]
    reset_window: midnight Europe/Paris
    required_keys: [token]
  keyed:
    executable: echoer
    credential_kind: env
    prompt: argument
    required_keys: [ECHOER_TOKEN]
    patterns:
      quota_exhausted: ["out of credits"]
"""

ECHOER = """#!{python} -S
import json, os, sys
token = os.environ.get("ECHOER_TOKEN")
if token is None:
    home = os.environ["HOME"]
    token = json.load(open(os.path.join(home, ".echoer", "token.json")))["token"]
stdin = "tty" if sys.stdin.isatty() else repr(sys.stdin.read())
if token.endswith("-spent"):
    sys.stderr.write("out of credits for %s\\n" % token)
    sys.exit(3)
print("argv=%r stdin=%s token=%s" % (sys.argv[1:], stdin, token))
"""


def test_a_yaml_tool_taking_the_prompt_as_an_argument(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(tmp_path, monkeypatch, ARG_TOOL)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "echoer").write_text(ECHOER.format(python=sys.executable))
    (bin_dir / "echoer").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    manager = AccountManager(tool="echoer")
    manager.import_account(json.dumps({"token": f"{CANARY}-1-spent"}).encode())
    manager.import_account(json.dumps({"token": f"{CANARY}-2"}).encode())
    result = Wrapper(tool="echoer", timeout=20).call("what's new?")
    assert result.success and result.accounts_tried == [1, 2], result.error
    # the prompt was an argument in place; stdin was not a terminal and empty
    assert result.output == (
        "argv=['--ask', \"what's new?\", '--plain'] stdin='' token=[REDACTED]\n"
    )
    until = {a.index: a.until for a in manager.list_accounts()}[1]
    assert until is not None and until.astimezone(timezone.utc).hour in (22, 23)  # Paris 0:00
    # an argument is capped at 128 KiB: a clear error, no call, no rotation
    big = Wrapper(tool="echoer").call("x" * 200_000)
    assert not big.success and big.attempts == 0
    assert big.error is not None and "takes it as an argument" in big.error
    assert "128 KiB" in big.error

    # the env flavour: the key from the account file, the prompt appended last
    keyed = AccountManager(tool="keyed")
    keyed.import_account(f"ECHOER_TOKEN={CANARY}-k1\n".encode())
    with pytest.raises(InvalidCredential, match=r"credential: ECHOER_TOKEN is not set$"):
        keyed.import_account(b"OTHER=1234567\n")
    answer = Wrapper(tool="keyed", timeout=20).call("hi")
    assert answer.output == "argv=['hi'] stdin='' token=[REDACTED]\n"


MODEL_TOOL = """
tools:
  modeler:
    executable: modeler
    credential: token.json
    per_model_windows: true
    patterns:
      quota_exhausted:
        "week:opus": ["opus limit reached"]
        5h: ["session limit reached"]
    required_keys: [token]
"""

MODELER = """#!{python} -S
import json, os, sys
token = json.load(open(os.path.join(os.environ["HOME"], ".modeler", "token.json")))["token"]
args = sys.argv[1:]
model = args[args.index("--model") + 1] if "--model" in args else "opus"
if model == "opus" and "-opus-spent" in token:
    sys.stderr.write("opus limit reached\\n")
    sys.exit(3)
print("answer from %s with %s" % (token[-1], model))
"""


def test_a_yaml_tool_with_per_model_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, monkeypatch, MODEL_TOOL)
    profile = get_profile("modeler")
    assert profile.per_model_windows
    assert [r.window for r in profile.rules if r.kind is OutcomeKind.QUOTA_EXHAUSTED] == [
        "week:opus",
        "5h",
    ]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "modeler").write_text(MODELER.format(python=sys.executable))
    (bin_dir / "modeler").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    manager = AccountManager(tool="modeler")
    manager.import_account(json.dumps({"token": f"{CANARY}-opus-spent-1"}).encode())
    manager.import_account(json.dumps({"token": f"{CANARY}-2"}).encode())

    opus = Wrapper(tool="modeler", timeout=20, extra_args=("--model", "opus"))
    first = opus.call("hi")
    assert first.success and first.accounts_tried == [1, 2], first.error
    one = {a.index: a for a in manager.list_accounts()}[1]
    assert one.status == "ready" and one.usable and list(one.model_spent) == ["week:opus"]
    manager.switch_to(1)
    sonnet = Wrapper(tool="modeler", timeout=20, extra_args=("--model", "sonnet"))
    assert sonnet.call("hi").output == "answer from 1 with sonnet\n"
    again = opus.call("hi")
    assert again.accounts_tried == [2] and again.attempts == 1  # #1 skipped without a run

    # without the key, the same text takes the whole account out
    path.write_text(MODEL_TOOL.replace("per_model_windows: true", "per_model_windows: false"))
    other = tmp_path / "other"
    monkeypatch.setenv("HOME", str(other))
    plain = AccountManager(tool="modeler")
    plain.import_account(json.dumps({"token": f"{CANARY}-opus-spent-1"}).encode())
    plain.import_account(json.dumps({"token": f"{CANARY}-2"}).encode())
    assert Wrapper(tool="modeler", timeout=20, extra_args=("--model", "opus")).call("hi").success
    assert {a.index: a.status for a in plain.list_accounts()}[1] == "exhausted"
