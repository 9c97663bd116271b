"""The wrapper against the simulator as a real subprocess: rotation, memory, isolation."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from creds import CANARY
from simpool import SimPool

from credrot.errors import ReadOnlyHome
from credrot.kinds import OutcomeKind
from credrot.manager import AccountManager
from credrot.wrapper import CallFailed, QwenWrapper, Wrapper


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path, monkeypatch)


def wrapper(sim: SimPool, **kw: object) -> QwenWrapper:
    return QwenWrapper(manager=sim.manager, **kw)  # type: ignore[arg-type]


def test_spent_accounts_are_skipped_and_remembered(sim: SimPool) -> None:
    sim.add(quota=0)
    sim.add(quota=0)
    sim.add()
    w = wrapper(sim, max_retries=5)
    first = w.call("hello", timeout=20)
    assert first.success, first.error
    assert first.attempts == 3
    assert first.accounts_tried == [1, 2, 3]
    assert "acct3" in first.output
    second = w.call("again", timeout=20)
    assert second.success and second.attempts == 1 and second.accounts_tried == [3]
    # A new wrapper (a new process would be the same) starts on the usable account too.
    third = QwenWrapper(home=sim.home).call("third", timeout=20)
    assert third.attempts == 1 and third.account == 3
    # The two spent accounts were each called exactly once in all.
    spent_calls = [c for c in sim.backend.calls() if c["account"] in ("acct1", "acct2")]
    assert len(spent_calls) == 2
    statuses = {a.index: a.status for a in sim.manager.list_accounts()}
    assert statuses == {1: "exhausted", 2: "exhausted", 3: "ready"}


def test_wraps_around_to_lower_numbered_accounts(sim: SimPool) -> None:
    """The original gave up from account 3 of 5 after 3, 4 and 5 without trying 1 and 2."""
    for i in range(1, 6):
        sim.add(quota=0 if i >= 3 else None)
    sim.manager.switch_to(3)
    result = wrapper(sim, max_retries=5).call("hi", timeout=20)
    assert result.success, result.error
    assert result.accounts_tried == [3, 4, 5, 1]
    assert result.account == 1


def test_all_spent_says_why_and_falls_back(sim: SimPool) -> None:
    for _ in range(3):
        sim.add(quota=0)
    w = wrapper(sim)
    result = w.call("hi", timeout=20)
    assert not result.success and result.pool_exhausted
    assert result.attempts == 3
    assert result.error is not None
    assert "all 3 qwen accounts" in result.error
    for i in (1, 2, 3):
        assert f"#{i} exhausted until" in result.error
    assert "first reset" in result.error and result.first_reset is not None
    # Known spent: the fallback costs no tool invocation at all.
    before = len(sim.backend.calls())
    assert w.call_with_fallback("hi", fallback_message="Analysis unavailable") == (
        "Analysis unavailable"
    )
    assert w.call_with_fallback("hi") is None
    assert len(sim.backend.calls()) == before
    with pytest.raises(CallFailed, match="no usable account"):
        w("hi")


def test_answer_that_mentions_errors_is_not_a_false_alarm(sim: SimPool) -> None:
    sim.add(answer="Returns HTTP 429 when the rate limit is hit: quota exceeded.")
    sim.add()
    result = wrapper(sim).call("review this")
    assert result.success and result.attempts == 1
    assert "HTTP 429" in result.output
    assert sim.manager.get_stats()["switches_total"] == 0


def test_large_prompt_reaches_the_tool_through_stdin(sim: SimPool) -> None:
    sim.add()
    prompt = ("diff --git a/x b/x\n+" + "y" * 79 + "\n") * (1024 * 1024 // 100)
    result = wrapper(sim).call(prompt, timeout=30)
    assert result.success, result.error
    call = sim.backend.calls()[-1]
    assert call["prompt_sha256"] == hashlib.sha256(prompt.encode()).hexdigest()
    assert all(len(a) < 1000 for a in call["argv"])  # never on the command line


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_timeout_kills_the_whole_process_group(sim: SimPool) -> None:
    sim.add(mode="hang")
    started = time.monotonic()
    result = wrapper(sim).call("hi", timeout=2)
    assert time.monotonic() - started < 6
    assert not result.success
    assert result.error == "timed out after 2 s"
    assert result.outcome is not None and result.outcome.kind is OutcomeKind.ERROR
    assert sim.manager.get_stats()["switches_total"] == 0  # a timeout never rotates
    calls = sim.backend.calls()
    pids = [c["pid"] for c in calls] + [c["child_pid"] for c in calls if c.get("child_pid")]
    assert len(pids) == 2  # the tool and the child it spawned
    time.sleep(0.2)
    for pid in pids:
        assert not _alive(pid), f"process {pid} outlived the call"


def test_device_authorization_is_stopped_at_once_and_rotates(sim: SimPool) -> None:
    sim.add(mode="refresh_fail", expired=True)
    sim.add()
    started = time.monotonic()
    result = wrapper(sim).call("hi", timeout=30)
    assert time.monotonic() - started < 10
    assert result.success and result.account == 2
    info = {a.index: a for a in sim.manager.list_accounts()}
    assert info[1].status == "needs_login"


@pytest.mark.parametrize(("mode", "status"), [("auth", "needs_login"), ("disabled", "disabled")])
def test_auth_and_entitlement_failures_park_the_account(
    sim: SimPool, mode: str, status: str
) -> None:
    sim.add(mode=mode)
    sim.add()
    result = wrapper(sim).call("hi")
    assert result.success and result.accounts_tried == [1, 2]
    assert {a.index: a.status for a in sim.manager.list_accounts()}[1] == status


def test_errors_never_rotate(sim: SimPool) -> None:
    sim.add(mode="connection_error")
    sim.add()
    result = wrapper(sim).call("hi")
    assert not result.success and result.attempts == 1
    assert result.error is not None and "Connection error" in result.error
    assert sim.manager.current() == 1
    assert sim.manager.get_stats()["switches_total"] == 0


def test_rate_limit_backs_off_then_moves_on(sim: SimPool) -> None:
    sim.add(mode="rate_limit")
    sim.add()
    w = wrapper(sim, backoff="constant", max_rate_limits=2)
    w.backoff = type(w.backoff)(kind="constant", base=0.05)
    result = w.call("hi")
    assert result.success and result.account == 2
    assert result.attempts == 4  # 3 tries on the throttled account, then the next one
    acct1 = {a.index: a for a in sim.manager.list_accounts()}[1]
    assert acct1.status == "rate_limited"
    assert acct1.until is not None
    # A short rate limit is not remembered for a day.
    assert (acct1.until.timestamp() - time.time()) < 3600


def test_refreshed_token_is_written_back_to_its_own_slot(sim: SimPool) -> None:
    sim.add(expired=True)
    sim.add()
    before = sim.token_in_slot(1)
    result = wrapper(sim).call("hi")
    assert result.success and result.account == 1
    after = sim.token_in_slot(1)
    assert after != before and after == sim.backend.latest_token("acct1")
    assert sim.manager.pointer.is_symlink()  # a call never writes the shared pointer
    run_dir = sim.home / ".credrot-run"
    # No token copy (nor anything the tool wrote) is left: only the idle home this
    # process keeps for its next call: folders, links and the tool's pid file saying 0.
    files = [p for p in run_dir.rglob("*") if not p.is_symlink() and not p.is_dir()]
    assert [(p.name, p.read_text().strip()) for p in files] == [(".credrot-tool.pid", "0")]
    assert all("-idle-" in p.name for p in run_dir.iterdir())


def test_missing_tool_is_a_clear_error(sim: SimPool, monkeypatch: pytest.MonkeyPatch) -> None:
    sim.add()
    monkeypatch.setenv("PATH", "/nonexistent")
    result = wrapper(sim).call("hi")
    assert not result.success
    assert result.error == (
        "qwen is not installed or not on PATH (install it: npm install -g @qwen-code/qwen-code)"
    )
    assert sim.manager.get_stats()["switches_total"] == 0


def test_non_utf8_output_is_decoded_with_replacement(sim: SimPool) -> None:
    sim.add(mode="garbage")
    result = wrapper(sim).call("hi")
    assert result.success
    assert "\ufffd" in result.output


def test_no_pool_is_a_clear_error(tmp_path: Path) -> None:
    result = Wrapper(home=tmp_path / "absent").call("hi")
    assert not result.success
    assert result.error is not None and "does not exist" in result.error


def test_canary_never_leaks(sim: SimPool, capfd: pytest.CaptureFixture[str]) -> None:
    from creds import canary_leaks

    sim.add(quota=0)
    sim.add(expired=True, refresh_every=1)
    sim.add(mode="auth")
    w = wrapper(sim)
    results = [w.call("hi"), w.call("hi"), w.call("hi")]
    sim.backend.set("acct2", quota=0)
    results.append(w.call("hi"))
    for r in results:
        assert CANARY not in repr(r) and CANARY not in (r.error or "")
        assert CANARY not in r.output and CANARY not in r.stderr
    assert CANARY not in repr(w) and CANARY not in repr(w.manager)
    out, err = capfd.readouterr()
    assert CANARY not in out + err
    assert canary_leaks(sim.home) == []
    assert CANARY not in json.dumps(sim.manager.get_stats())


_PARALLEL_WORKER = r"""
import sys
from credrot.wrapper import QwenWrapper
w = QwenWrapper(home=sys.argv[1], max_retries=5)
ok = 0
for i in range(int(sys.argv[2])):
    r = w.call(f"call {i}", timeout=30)
    ok += r.success
print(ok)
"""


@pytest.mark.slow
def test_parallel_calls_with_refresh_never_poison_a_slot(sim: SimPool) -> None:
    """8 processes x 20 calls while the tool refreshes the token on every other call."""
    for _ in range(4):
        sim.add(refresh_every=2)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PARALLEL_WORKER, str(sim.home), "20"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    successes = sum(int(p.communicate(timeout=300)[0].strip() or 0) for p in procs)
    assert successes == 160
    refreshed = [c for c in sim.backend.calls() if c.get("refreshed")]
    assert len(refreshed) >= 40
    for index, name in sim.names.items():
        token = sim.token_in_slot(index)
        assert sim.backend.account_for_token(token) == name, f"slot {index} poisoned"
        assert token == sim.backend.latest_token(name), f"slot {index} is not the newest"
    assert sim.manager.pointer.is_symlink()


@pytest.fixture
def make_read_only(sim: SimPool) -> Iterator[Callable[[], Path]]:
    """Turns the pool's home into a read-only bind mount, like ``~/.qwen:/root/.qwen:ro``."""
    home = str(sim.home)
    mounted = False

    def mount() -> Path:
        nonlocal mounted
        if subprocess.run(["mount", "--bind", home, home], capture_output=True).returncode:
            pytest.skip("bind mounts are not permitted here")
        mounted = True
        remount = ["mount", "-o", "remount,bind,ro", home]
        if subprocess.run(remount, capture_output=True).returncode:
            pytest.skip("read-only remount is not permitted here")
        return sim.home

    yield mount
    if mounted:
        subprocess.run(["umount", home], check=True)


def test_read_only_home_rotates_in_memory(sim: SimPool, make_read_only: Callable[[], Path]) -> None:
    sim.add(quota=0)
    sim.add()
    sim.add()
    home = make_read_only()
    state_before = (home / "state.yaml").read_bytes()
    w = QwenWrapper(home=home)
    first = w.call("hi")
    assert first.success and first.account == 2
    assert not first.persisted
    assert first.warnings == [f"state could not be persisted: {home} is read-only"]
    # The process remembers: account 1 costs nothing on the next call.
    second = w.call("again")
    assert second.success and second.attempts == 1 and second.account == 2
    assert (home / "state.yaml").read_bytes() == state_before
    assert len([c for c in sim.backend.calls() if c["account"] == "acct1"]) == 1
    # A command that must write says so and changes nothing.
    with pytest.raises(ReadOnlyHome, match="read-only: nothing was changed"):
        AccountManager(home=home).switch_next()


def test_last_try_on_the_last_account_reports_an_exhausted_pool(sim: SimPool) -> None:
    for _ in range(3):
        sim.add(quota=0)
    result = wrapper(sim, max_retries=3).call("hi")
    assert result.attempts == 3
    assert result.pool_exhausted
    assert result.error is not None and "all 3 qwen accounts are unusable" in result.error


def test_max_retries_caps_the_tool_runs_of_one_call(sim: SimPool) -> None:
    for _ in range(4):
        sim.add(quota=0)
    sim.add()
    result = wrapper(sim, max_retries=2).call("hi")
    assert not result.success and result.attempts == 2
    assert not result.pool_exhausted
    assert result.error is not None and result.error.startswith("gave up after 2 attempts")
    # The next call goes on from where the pool is, not from the spent accounts.
    assert wrapper(sim, max_retries=5).call("hi").attempts == 3


def test_the_tool_sees_its_settings_but_writes_no_history_into_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The private call home links the user's settings; chat history stays private."""
    import dataclasses

    from creds import make_cred

    from credrot.tools import QWEN

    home = tmp_path / "home"
    home.mkdir()
    (home / "settings.json").write_text('{"privacy": {"usageStatisticsEnabled": false}}')
    (home / "projects").mkdir()
    tool = tmp_path / "fake-qwen"
    tool.write_text(
        f"#!{sys.executable}\n"
        "import os, pathlib\n"
        "home = pathlib.Path(os.environ['HOME']) / '.qwen'\n"
        "print(sorted(p.name for p in home.iterdir()))\n"
        "print((home / 'settings.json').read_text())\n"
        "(home / 'projects').mkdir(exist_ok=True)\n"
        "(home / 'projects' / 'chat.json').write_text('the prompt')\n"
    )
    tool.chmod(0o755)
    manager = AccountManager(tool=dataclasses.replace(QWEN, executable=str(tool)), home=home)
    manager.import_account(make_cred(1))
    result = Wrapper(manager=manager).call("a secret diff")
    assert result.success, result.error
    seen = result.output.splitlines()
    assert seen[0] == "['oauth_creds.json', 'settings.json']"
    assert "usageStatisticsEnabled" in seen[1]
    assert list((home / "projects").iterdir()) == []


_KILLED_WORKER = r"""
import sys
from credrot.wrapper import QwenWrapper
QwenWrapper(home=sys.argv[1]).call("hi", timeout=60)
"""


def test_a_token_refreshed_before_a_crash_is_saved_to_its_slot(sim: SimPool) -> None:
    """kill -9 of a caller while the tool runs: its private home holds the refreshed
    token; the next call writes it back to the account's own slot and removes the rest."""
    sim.add(expired=True, latency=30)
    sim.add()
    before = sim.token_in_slot(1)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WORKER, str(sim.home)])
    run_dir = sim.home / ".credrot-run"
    sim.kill_mid_call(proc)  # a home is never reaped while a process of its tool runs
    assert any(run_dir.iterdir())
    assert sim.token_in_slot(1) == before  # not yet written back
    assert sim.manager.clean_run_dirs() == 1
    assert sim.token_in_slot(1) == sim.backend.latest_token("acct1") != before
    assert not any(run_dir.iterdir())


def test_repair_clears_temp_files_of_dead_writers(sim: SimPool) -> None:
    from creds import make_cred

    sim.add()
    dead = 99_999_999  # above any pid_max: no such process
    (sim.home / f".state.yaml.{dead}.deadbeef.tmp").write_text("half a state")
    unfinished = sim.manager.accounts_dir / f".oauth_creds_1.json.{dead}.0badcafe.tmp"
    unfinished.write_bytes(make_cred(1, version=3))
    done = sim.manager.repair()
    assert not (sim.home / f".state.yaml.{dead}.deadbeef.tmp").exists()
    assert not unfinished.exists()
    (kept,) = (sim.home / "backups").iterdir()
    assert kept.read_bytes() == make_cred(1, version=3)  # a credential is never just deleted
    assert any("unfinished write" in line for line in done)


_INTERRUPTED_WORKER = r"""
import sys
from credrot.wrapper import QwenWrapper
try:
    QwenWrapper(home=sys.argv[1]).call("hi", timeout=60)
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_in_the_caller_stops_the_tool_too(sim: SimPool) -> None:
    import signal

    sim.add(mode="hang")
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_WORKER, str(sim.home)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not sim.backend.calls():
        time.sleep(0.05)
    calls = sim.backend.calls()
    assert calls, "the tool never started"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    time.sleep(0.2)
    for pid in (calls[0]["pid"], calls[0]["child_pid"]):
        assert not _alive(pid), f"process {pid} outlived the interrupted call"
    assert not any((sim.home / ".credrot-run").iterdir())


def test_ctrl_c_after_a_refresh_keeps_the_refreshed_token(sim: SimPool) -> None:
    import signal

    sim.add(expired=True, latency=30)
    before = sim.token_in_slot(1)
    proc = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_WORKER, str(sim.home)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not sim.backend.calls():
        time.sleep(0.05)
    assert sim.backend.calls(), "the tool never started"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 130
    assert sim.token_in_slot(1) == sim.backend.latest_token("acct1") != before
    assert not any((sim.home / ".credrot-run").iterdir())


def test_the_tool_sees_the_environment_as_it_is_at_each_call(
    tmp_path: Path, make_cred: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment is copied again only when it changed: a variable set, changed or
    removed between two calls of one process reaches the tool's next run."""
    import dataclasses

    from credrot.tools import QWEN

    tool = tmp_path / "tool"
    tool.write_text('#!/bin/sh\ncat >/dev/null\necho "answer:${CREDROT_TEST_VAR-unset}"\n')
    tool.chmod(0o755)
    manager = AccountManager(
        tool=dataclasses.replace(QWEN, executable=str(tool)), home=tmp_path / "home"
    )
    manager.import_account(make_cred(1))
    wrapper = Wrapper(manager=manager)
    monkeypatch.delenv("CREDROT_TEST_VAR", raising=False)
    seen = [wrapper("hi").strip()]
    for value in ("one", "two"):
        monkeypatch.setenv("CREDROT_TEST_VAR", value)
        seen.append(wrapper("hi").strip())
    monkeypatch.delenv("CREDROT_TEST_VAR")
    seen.append(wrapper("hi").strip())
    assert seen == ["answer:unset", "answer:one", "answer:two", "answer:unset"]


def test_a_state_file_emptied_by_a_power_cut_still_knows_the_spent_account(
    sim: SimPool,
) -> None:
    """A save of counters is not flushed, so a power cut soon after it can leave the
    state file empty (what ext4 keeps of a file not yet written out). The spent mark of
    the save before it, which was flushed, must survive: no call is spent on it again."""
    sim.add("spent", quota=0)
    sim.add("fine")
    wrapper = Wrapper(manager=sim.manager)
    first = wrapper.call("one")
    assert first.success and first.accounts_tried == [1, 2], first.error
    assert wrapper.call("two").success
    sim.manager.flush()  # its counters: swapped in, not flushed
    (sim.home / "state.yaml").write_bytes(b"")  # the power cut
    after = subprocess.run(
        [sys.executable, "-m", "credrot", "--home", str(sim.home), "accounts", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert after.returncode == 0, after.stderr
    assert "taken from its last flushed save" in after.stderr
    listed = {a["index"]: a for a in json.loads(after.stdout)["accounts"]}
    assert listed[1]["status"] == "exhausted" and not listed[1]["usable"]
    assert listed[2]["usable"]
    (aside,) = sim.home.glob("state.yaml.corrupt-*")
    assert aside.read_bytes() == b""
    third = Wrapper(manager=AccountManager(home=sim.home)).call("three")
    assert third.success and third.accounts_tried == [2], third.error
