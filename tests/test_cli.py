"""``credrot`` and ``account-qwen`` through click's CliRunner: every command and flag.

Real pools on disk, the simulator as the tool; outputs are parsed by real parsers (json,
``prometheus_client``) and checked for the canary token.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from creds import CANARY
from prometheus_client.parser import text_string_to_metric_families
from simpool import SimPool

from credrot import cli
from credrot.manager import AccountManager

MakePool = Callable[..., AccountManager]


def invoke(args: Sequence[str], input: bytes | str | None = None, *, qwen: bool = False) -> Result:
    command = cli.account_qwen if qwen else cli.cli
    result = CliRunner().invoke(command, list(args), input=input, catch_exceptions=False)
    assert CANARY not in result.output, result.output
    assert "Traceback" not in result.output
    return result


def home_args(manager: AccountManager) -> list[str]:
    return ["--home", str(manager.home)]


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path / "sim", monkeypatch)


# --------------------------------------------------------------------- basics
def test_version_and_help_document_exit_codes() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("credrot ")
    help_text = invoke(["--help"]).stdout
    for line in ("0    ok", "1    error", "2    usage error", "3    no usable account"):
        assert line in help_text
    assert "account-qwen --switch-next" in invoke(["--help"], qwen=True).stdout
    assert "3    no usable account" in invoke(["--help"], qwen=True).stdout


def test_main_returns_codes_instead_of_exiting(
    make_pool: MakePool, capsys: pytest.CaptureFixture[str]
) -> None:
    manager = make_pool(2)
    assert cli.main([*home_args(manager), "accounts", "list"]) == 0
    assert cli.main([*home_args(manager), "accounts", "switch", "9"]) == 1
    assert cli.main(["accounts", "frobnicate"]) == 2
    assert cli.account_qwen_main(["--home", str(manager.home), "--list"]) == 0
    assert cli.account_qwen_main([]) == 2
    assert cli.main(["--version"]) == 0
    out = capsys.readouterr()
    assert "credrot: error: no qwen account #9" in out.err
    assert CANARY not in out.out + out.err


def test_unknown_tool_is_a_usage_error(make_pool: MakePool) -> None:
    manager = make_pool(1)
    result = invoke(["--tool", "nope", *home_args(manager), "accounts", "list"])
    assert result.exit_code == 2
    assert "unknown tool 'nope'" in result.stderr


def test_errors_are_one_line_and_debug_shows_the_traceback(make_pool: MakePool) -> None:
    manager = make_pool(1)
    result = invoke([*home_args(manager), "accounts", "remove", "7"])
    assert result.exit_code == 1
    assert result.stderr == "credrot: error: no qwen account #7\n"
    debug = CliRunner().invoke(cli.cli, ["--debug", *home_args(manager), "accounts", "remove", "7"])
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr
    assert "AccountNotFound" in debug.stderr


def test_core_notices_are_printed_as_warnings(make_pool: MakePool) -> None:
    manager = make_pool(2)
    (manager.accounts_dir / "notes.txt").write_text("not an account")
    result = invoke([*home_args(manager), "accounts", "list"])
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line]
    assert len(warnings) == 1
    assert warnings[0].startswith("credrot: warning: ignoring ")
    assert "notes.txt" in warnings[0]


# ---------------------------------------------------------------------- list
def test_list_shows_every_status(make_pool: MakePool, canary: str) -> None:
    manager = make_pool(7)
    until = datetime.now(timezone.utc) + timedelta(hours=3, minutes=5)
    manager.mark(2, "exhausted", until=until, reason="quota")
    manager.mark(3, "needs_login", reason="401")
    manager.mark(6, "rate_limited", until=datetime.now(timezone.utc) + timedelta(seconds=90))
    manager.mark(7, "disabled", reason="free tier discontinued")
    manager.slot_path(4).write_text("{not json")
    os.chmod(manager.slot_path(5), 0o644)
    manager.switch_to(5)
    result = invoke([*home_args(manager), "accounts", "list"])
    assert result.exit_code == 0
    rows = {
        line.split()[1] if line.startswith("  *") else line.split()[0]: line
        for line in result.stdout.splitlines()[2:]
    }
    assert "ready" in rows["1"]
    local = until.astimezone()
    today = datetime.now(timezone.utc).astimezone().date()
    # Today's reset shows the time alone; a reset after midnight shows its date too.
    shown = local.strftime("%H:%M" if local.date() == today else "%Y-%m-%d %H:%M")
    assert f"exhausted until {shown}" in rows["2"]
    assert "(in 3h 0" in rows["2"] or "(in 3h 05m)" in rows["2"]
    assert "needs login" in rows["3"]
    assert "invalid file (not valid JSON)" in rows["4"]
    assert "unsafe permissions 0644" in rows["5"]
    assert rows["5"].startswith("  *")
    assert "rate-limited until" in rows["6"]
    assert re.search(r"\(in \d+[sm]\)", rows["6"])
    assert "disabled" in rows["7"]
    assert "never" in rows["1"]
    assert "in " in rows["1"]  # the token's expiry
    assert canary not in result.output


def test_list_json_parses(make_pool: MakePool) -> None:
    manager = make_pool(3)
    manager.mark(3, "disabled", reason="free tier discontinued")
    result = invoke([*home_args(manager), "accounts", "list", "--json"])
    data = json.loads(result.stdout)
    assert data["tool"] == "qwen"
    assert data["home"] == str(manager.home)
    assert [a["index"] for a in data["accounts"]] == [1, 2, 3]
    assert [a["active"] for a in data["accounts"]] == [True, False, False]
    assert data["accounts"][2]["status"] == "disabled"
    assert data["accounts"][2]["usable"] is False
    assert data["accounts"][0]["token_expiry"].startswith("2100-01-01")


def test_list_of_an_empty_pool(tmp_path: Path) -> None:
    home = tmp_path / "nothing"
    result = invoke(["--home", str(home), "accounts", "list"])
    assert result.exit_code == 0
    assert "no qwen accounts" in result.stdout
    assert "credrot accounts add" in result.stdout
    assert not home.exists()
    assert (
        json.loads(invoke(["--home", str(home), "accounts", "list", "--json"]).stdout)["accounts"]
        == []
    )


def test_home_defaults_to_qwen_home_then_home(
    make_pool: MakePool, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = make_pool(2)
    monkeypatch.setenv("QWEN_HOME", str(manager.home))
    assert "2 usable" in invoke(["accounts", "list"]).stdout
    monkeypatch.delenv("QWEN_HOME")
    assert "no qwen accounts" in invoke(["accounts", "list"]).stdout
    assert str(Path(os.environ["HOME"]) / ".qwen") in invoke(["accounts", "list"]).stdout


# ---------------------------------------------------------------- add/remove
def test_add_from_files_and_stdin(tmp_path: Path, make_cred: Callable[..., bytes]) -> None:
    home = tmp_path / "pool"
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    one.write_bytes(make_cred(1))
    two.write_bytes(make_cred(2))
    result = invoke(
        ["--home", str(home), "accounts", "add", "--from", str(one), "--from", str(two)]
    )
    assert result.exit_code == 0, result.output
    assert "added account #1" in result.stdout
    assert "added account #2" in result.stdout
    result = invoke(["--home", str(home), "accounts", "add", "--from", "-"], input=make_cred(3))
    assert result.exit_code == 0
    assert "added account #3 from stdin" in result.stdout
    for i in (1, 2, 3):
        slot = home / "accounts" / f"oauth_creds_{i}.json"
        assert stat.S_IMODE(slot.stat().st_mode) == 0o600
    assert slot.read_bytes() == make_cred(3)
    assert os.readlink(home / "oauth_creds.json") == "accounts/oauth_creds_1.json"


def test_add_refuses_duplicates_and_invalid_files(
    make_pool: MakePool, tmp_path: Path, make_cred: Callable[..., bytes]
) -> None:
    manager = make_pool(2)
    dup = tmp_path / "dup.json"
    dup.write_bytes(make_cred(2))
    result = invoke([*home_args(manager), "accounts", "add", "--from", str(dup)])
    assert result.exit_code == 1
    assert result.stderr == "credrot: error: this credential is already account #2\n"
    bad = tmp_path / "bad.json"
    bad.write_text('{"access_token": "x"}')
    result = invoke([*home_args(manager), "accounts", "add", "--from", str(bad)])
    assert result.exit_code == 1
    assert "not a valid qwen credential" in result.stderr
    missing = invoke([*home_args(manager), "accounts", "add", "--from", str(tmp_path / "no")])
    assert missing.exit_code == 1
    assert "cannot read" in missing.stderr
    assert sorted(manager.slots()) == [1, 2]
    usage = invoke([*home_args(manager), "accounts", "add", "--from", str(dup), "--count", "2"])
    assert usage.exit_code == 2


def test_remove_moves_to_trash(make_pool: MakePool, make_cred: Callable[..., bytes]) -> None:
    manager = make_pool(3)
    result = invoke([*home_args(manager), "accounts", "remove", "1"])
    assert result.exit_code == 0
    assert "removed account #1" in result.stdout
    trashed = list((manager.home / "trash").iterdir())
    assert len(trashed) == 1
    assert trashed[0].read_bytes() == make_cred(1)
    assert sorted(manager.slots()) == [2, 3]
    assert os.readlink(manager.pointer) == "accounts/oauth_creds_2.json"
    assert invoke([*home_args(manager), "accounts", "remove", "0"]).exit_code == 2


# ----------------------------------------------------------- switch/next/reset
def test_switch_next_and_reset(make_pool: MakePool) -> None:
    manager = make_pool(3)
    args = home_args(manager)
    result = invoke([*args, "accounts", "switch", "3"])
    assert (result.exit_code, result.stdout) == (0, "switched to account #3\n")
    assert os.readlink(manager.pointer) == "accounts/oauth_creds_3.json"
    assert invoke([*args, "accounts", "next"]).stdout == "switched to account #1\n"
    until = datetime.now(timezone.utc) + timedelta(hours=2)
    manager.mark(2, "exhausted", until=until)
    manager.mark(3, "exhausted", until=until)
    result = invoke([*args, "accounts", "next"])
    assert result.exit_code == 3
    assert result.stderr.startswith("credrot: error: no other usable account: ")
    assert "#2 exhausted until" in result.stderr
    result = invoke([*args, "accounts", "switch", "2"])
    assert result.exit_code == 0
    assert "credrot: warning: account #2 is exhausted until" in result.stderr
    result = invoke([*args, "accounts", "reset", "2"])
    assert result.stdout == "ready again: #2\n"
    assert [i.usable for i in manager.list_accounts()] == [True, True, False]
    assert invoke([*args, "accounts", "reset"]).stdout == "ready again: #1, #2, #3\n"
    assert all(i.usable for i in manager.list_accounts())
    assert invoke([*args, "accounts", "switch", "9"]).exit_code == 1
    assert invoke([*args, "accounts", "reset", "9"]).exit_code == 1


def test_next_on_an_empty_pool_exits_3(tmp_path: Path) -> None:
    home = tmp_path / "empty"
    home.mkdir()
    result = invoke(["--home", str(home), "accounts", "next"])
    assert result.exit_code == 3
    assert "no qwen accounts in the pool" in result.stderr


# ---------------------------------------------------------------------- stats
def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_stats_text_json_and_prometheus(
    sim: SimPool, tmp_path: Path, canary_leaks: Callable[[Path], list[str]]
) -> None:
    sim.add("a", quota=1)
    sim.add("b")
    args = ["--home", str(sim.home)]
    for _ in range(3):
        assert invoke([*args, "run", "--", "-p", "hi"]).exit_code == 0
    text = invoke([*args, "stats"])
    assert text.exit_code == 0
    assert "2 accounts, 1 usable, current #2" in text.stdout
    # 3 requests took 4 tool runs (the first one on #1 found its quota spent).
    assert "requests 3, tool runs 4, successes 3, quota hits 1, switches 1" in text.stdout
    assert "most used: #1 (2 tool runs)" in text.stdout  # a tie goes to the lower number
    assert "(#1 -> #2)" in text.stdout

    data = json.loads(invoke([*args, "stats", "--json"]).stdout)
    assert data["calls"] == data["tool_runs"] == 4 and data["requests"] == 3
    assert data["accounts"]["1"]["quota_hits"] == 1
    assert data["accounts"]["2"]["successes"] == 2
    assert data["most_used"] == 1

    prom = invoke([*args, "stats", "--prometheus"])
    assert prom.exit_code == 0
    samples = _samples(prom.stdout)
    qwen = (("tool", "qwen"),)
    assert samples[("credrot_accounts", qwen)] == 2
    assert samples[("credrot_accounts_usable", qwen)] == 1
    assert samples[("credrot_switches_total", qwen)] == 1
    assert samples[("credrot_current_account", qwen)] == 2
    one = (("account", "1"), ("tool", "qwen"))
    two = (("account", "2"), ("tool", "qwen"))
    assert samples[("credrot_calls_total", one)] == 2
    assert samples[("credrot_quota_hits_total", one)] == 1
    assert samples[("credrot_successes_total", two)] == 2
    assert samples[("credrot_account_usable", one)] == 0
    assert samples[("credrot_account_active", two)] == 1
    assert samples[("credrot_account_status", (*one[:1], ("status", "exhausted"), one[1]))] == 1
    assert samples[("credrot_account_until_timestamp_seconds", one)] > time.time()
    names = {name for name, _ in samples}
    assert all(name.startswith("credrot_") for name in names)
    for family in text_string_to_metric_families(prom.stdout):
        for s in family.samples:
            assert set(s.labels) <= {"tool", "account", "status", "window"}

    out = tmp_path / "textfile" / "credrot.prom"
    out.parent.mkdir()
    assert invoke([*args, "stats", "--prometheus", "-o", str(out)]).stdout == ""
    assert _samples(out.read_text()) == samples
    assert [p.name for p in out.parent.iterdir()] == ["credrot.prom"]
    assert invoke([*args, "stats", "--json", "--prometheus"]).exit_code == 2
    assert canary_leaks(sim.home) == []


def test_stats_of_an_empty_pool(tmp_path: Path) -> None:
    args = ["--home", str(tmp_path / "none")]
    assert "0 accounts, 0 usable, current none" in invoke([*args, "stats"]).stdout
    samples = _samples(invoke([*args, "stats", "--prometheus"]).stdout)
    assert samples[("credrot_accounts", (("tool", "qwen"),))] == 0


# ------------------------------------------------------------------------ run
def test_run_passes_stdin_and_prints_the_answer(sim: SimPool) -> None:
    sim.add("a", answer="answer from {account}, prompt of {prompt_len} chars")
    result = invoke(["--home", str(sim.home), "run", "--", "-p", "review"], input=b"the diff")
    assert result.exit_code == 0, result.output
    assert result.stdout == "answer from a, prompt of 16 chars"
    call = sim.backend.calls()[-1]
    assert call["argv"] == ["-p", "review"]
    assert sim.backend.prompt(call["n"]) == "the diff\n\nreview"


def test_run_rotates_and_exits_3_when_every_account_is_spent(sim: SimPool) -> None:
    sim.add("a", quota=1)
    sim.add("b", quota=1)
    args = ["--home", str(sim.home), "run", "--", "-p", "hi"]
    assert invoke(args).exit_code == 0
    second = invoke(args)
    assert second.exit_code == 0
    assert "from b" in second.stdout
    # only the final attempt's output is printed; the switch is said in one line
    assert second.stderr == "credrot: account #1 spent (resets 00:00 UTC); trying #2\n"
    third = invoke(args)
    assert third.exit_code == 3
    lines = third.stderr.splitlines()
    assert lines[:2] == [
        "credrot: account #2 spent (resets 00:00 UTC); no other usable account",
        "qwen: Qwen OAuth quota exceeded: Your free daily quota has been reached.",
    ]
    assert lines[2].startswith("credrot: error: no usable account: all 2 qwen accounts are")
    assert len(lines) == 3
    assert "at file://" not in third.stderr and "critical error" not in third.stderr
    debug = invoke(["--debug", *args])
    assert debug.exit_code == 3  # remembered spent: no run, nothing of the tool's to show
    before = len(sim.backend.calls())
    fourth = invoke(args)
    assert fourth.exit_code == 3
    assert len(sim.backend.calls()) == before  # remembered: no run spent


def test_run_exit_code_is_the_tools(sim: SimPool) -> None:
    sim.add("a")
    result = invoke(["--home", str(sim.home), "run", "--", "--no-such-flag"])
    assert result.exit_code == 42
    assert "Unknown argument" in result.stderr
    result = invoke(["--home", str(sim.home), "run", "--tool", "qwen", "--", "--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("0.12.0")


def test_run_without_the_tool_installed(
    make_pool: MakePool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    manager = make_pool(1)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = invoke([*home_args(manager), "run", "--", "-p", "hi"])
    assert result.exit_code == 1
    assert "qwen is not installed or not on PATH" in result.stderr


def test_run_timeout_and_retries_options(sim: SimPool) -> None:
    sim.add("a", mode="hang")
    started = time.monotonic()
    result = invoke(
        ["--home", str(sim.home), "run", "--timeout", "0.5", "--max-retries", "1", "--", "-p", "hi"]
    )
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert "timed out after 0.5 s" in result.stderr


# --------------------------------------------------------------------- doctor
def test_doctor_on_a_healthy_pool(sim: SimPool) -> None:
    sim.add("a")
    os.chmod(sim.home, 0o700)
    result = invoke(["--home", str(sim.home), "doctor"])
    assert result.exit_code == 0, result.output
    assert "ok     qwen 0.12.0-sim (" in result.stdout
    assert "links to accounts/oauth_creds_1.json" in result.stdout
    assert "no problems found" in result.stdout


def test_doctor_reports_and_fixes(make_pool: MakePool, make_cred: Callable[..., bytes]) -> None:
    manager = make_pool(3)
    home = manager.home
    # the tool refreshed account 1 by rename: the pointer is now a regular file
    manager.pointer.unlink()
    manager.pointer.write_bytes(make_cred(1, version=1))
    os.chmod(manager.slot_path(2), 0o644)
    os.chmod(home, 0o755)
    lock = home / "oauth_creds.lock"
    lock.write_text("someid")
    old = time.time() - 120
    os.utime(lock, (old, old))
    run_dir = home / ".credrot-run" / "999999999-1-abc"
    run_dir.mkdir(parents=True)
    manager.slot_path(3).write_text("[]")

    args = [*home_args(manager), "doctor", "--skip-tool"]
    result = invoke(args)
    assert result.exit_code == 1  # account 3 is not a valid credential
    out = result.stdout
    assert "regular file (the tool refreshed the token by rename)" in out
    assert "account #2: permissions 0644" in out
    assert "has permissions 0755" in out
    assert "oauth_creds.lock is stale" in out
    assert "left by processes that died" in out
    assert "account #3: oauth_creds_3.json is not a valid credential" in out
    assert "fix: log in again: credrot accounts remove 3 && credrot accounts add" in out
    assert "(credrot doctor --fix does this)" in out
    assert not (home / "oauth_creds.json").is_symlink()  # nothing changed without --fix

    fixed = invoke([*args, "--fix"])
    assert fixed.exit_code == 1  # the invalid credential remains: not a safe fix
    assert "fixed" in fixed.stdout
    assert os.readlink(manager.pointer) == "accounts/oauth_creds_1.json"
    assert manager.slot_path(1).read_bytes() == make_cred(1, version=1)  # adopted, not lost
    assert stat.S_IMODE(manager.slot_path(2).stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert not lock.exists()
    assert not run_dir.exists()
    assert manager.slot_path(3).read_text() == "[]"  # never deleted

    report = json.loads(invoke([*args, "--json"]).stdout)
    assert report["ok"] is False
    problems = [f for f in report["findings"] if f["level"] in ("warn", "error")]
    assert [f["check"] for f in problems] == ["accounts"]
    manager.remove_account(3)
    assert invoke(args).exit_code == 0


def test_doctor_dangling_and_missing_pointer(
    make_pool: MakePool, make_cred: Callable[..., bytes]
) -> None:
    manager = make_pool(2)
    manager.pointer.unlink()
    os.symlink("accounts/oauth_creds_9.json", manager.pointer)
    args = [*home_args(manager), "doctor", "--skip-tool"]
    result = invoke(args)
    assert result.exit_code == 1
    assert "is a link to a file that does not exist" in result.stdout
    assert invoke([*args, "--fix"]).exit_code == 0
    assert manager.pointer_state() == "link"
    manager.import_account(make_cred(3, expiry_ms=1_000))
    assert "account #3: access token expired" in invoke(args).stdout
    manager.pointer.unlink()
    assert "is missing" in invoke(args).stdout
    assert invoke([*args, "--fix"]).exit_code == 0
    assert manager.pointer_state() == "link"


def test_doctor_without_the_tool_or_a_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    result = invoke(["--home", str(tmp_path / "none"), "doctor"])
    assert result.exit_code == 1
    assert "error  qwen is not on PATH" in result.stdout
    assert "fix: install it: npm install -g @qwen-code/qwen-code" in result.stdout
    assert "does not exist: no accounts yet" in result.stdout


# ----------------------------------------------------------------------- demo
def test_demo_tells_the_story_without_touching_home() -> None:
    home = Path(os.environ["HOME"])
    before = sorted(home.rglob("*"))
    result = invoke(["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "answered by #1" in out
    assert "#1 hit its quota" in out
    assert "answered by #2" in out
    assert "no tool run at all" in out
    assert "known to be spent, so no run was spent on them" in out
    assert "refreshed" in out
    assert "quota hits 3" in out
    assert sorted(home.rglob("*")) == before


# --------------------------------------------------------------- account-qwen
def test_account_qwen_flags(
    make_pool: MakePool, tmp_path: Path, make_cred: Callable[..., bytes]
) -> None:
    manager = make_pool(2)
    h = ["--home", str(manager.home)]
    listed = invoke([*h, "--list"], qwen=True)
    assert listed.exit_code == 0
    assert "2 usable; * = active" in listed.stdout
    assert (
        json.loads(invoke([*h, "--list", "--json"], qwen=True).stdout)["accounts"][1]["index"] == 2
    )
    assert invoke([*h, "--switch", "2"], qwen=True).stdout == "switched to account #2\n"
    assert invoke([*h, "--switch-next"], qwen=True).stdout == "switched to account #1\n"
    stats = invoke([*h, "--stats"], qwen=True)
    assert "switches 2" in stats.stdout
    assert json.loads(invoke([*h, "--stats", "--json"], qwen=True).stdout)["switches_total"] == 2
    new = tmp_path / "new.json"
    new.write_bytes(make_cred(3))
    added = invoke([*h, "--add", "--from", str(new)], qwen=True)
    assert "added account #3" in added.stdout
    assert invoke([*h, "--add", "--from", str(new)], qwen=True).exit_code == 1
    removed = invoke([*h, "--remove", "3"], qwen=True)
    assert "removed account #3" in removed.stdout
    assert invoke([*h, "--remove", "3"], qwen=True).exit_code == 1
    until = datetime.now(timezone.utc) + timedelta(hours=1)
    manager.mark(2, "exhausted", until=until)
    assert invoke([*h, "--switch-next"], qwen=True).exit_code == 3
    empty = invoke(["--home", str(tmp_path / "none"), "--list"], qwen=True)
    assert "run 'account-qwen --setup' or '--add'" in empty.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "given: none"),
        (["--list", "--stats"], "given: --list, --stats"),
        (["--switch", "1", "--switch-next"], "given: --switch N, --switch-next"),
        (["--list", "--count", "2"], "--count only goes with --setup"),
        (["--list", "--from", "x"], "--from only goes with --add"),
        (["--switch", "1", "--json"], "--json only goes with --list or --stats"),
        (["--stats", "--login-command", "x"], "--login-command only goes with --setup or --add"),
        (["--remove", "zero"], "'zero' is not a valid integer"),
        (["--bogus"], "No such option"),
    ],
)
def test_account_qwen_usage_errors(args: list[str], message: str) -> None:
    result = invoke(args, qwen=True)
    assert result.exit_code == 2
    assert message in result.stderr
    if "given:" in message:
        assert "account-qwen --switch-next" in result.stderr  # the examples are shown


def test_doctor_reports_a_corrupt_state_file(make_pool: MakePool) -> None:
    manager = make_pool(2)
    manager.state_path.write_text("{{{{ not yaml")
    result = invoke([*home_args(manager), "doctor", "--skip-tool"])
    assert "state.yaml is corrupt" in result.stdout, result.stderr
    assert "credrot: warning: state file" in result.stderr  # the core kept it aside
    assert any(p.name.startswith("state.yaml.corrupt-") for p in manager.home.iterdir())
