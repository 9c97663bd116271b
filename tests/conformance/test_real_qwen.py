"""The rotation, proven against the genuine Qwen Code CLI (0.12.0) on a loopback mock.

Each scenario drives the real ``qwen`` through credrot's :class:`~credrot.wrapper.Wrapper`
on a pool in a temporary home and asserts what a user would notice: which account
answered, how many CLI runs it cost, what the pool remembers, where a refreshed token
went. The last tests hold credrot's simulator to what the real CLI printed here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from credrot.classify import classify
from credrot.kinds import OutcomeKind
from credrot.manager import AccountManager
from credrot.process import RunResult, run_tool
from credrot.profile import ToolProfile
from credrot.tools import QWEN
from credrot.wrapper import Wrapper, WrapperResult

from .harness import (
    JSON_QWEN,
    PROFILES,
    PROMPT,
    STREAM_JSON_QWEN,
    Attempt,
    RateLimitRun,
    Transcript,
    classify_kind,
    transcript_of,
)
from .mockqwen import MockQwen, closed_port

pytestmark = pytest.mark.conformance

PoolOf = Callable[..., AccountManager]
MakeWrapper = Callable[..., "tuple[Wrapper, list[Attempt]]"]
DEVICE_TITLE = "Qwen OAuth Device Authorization"
#: The last line of the device-authorization box: the whole box has been printed.
BOX_BOTTOM = r"\+-{68}\+"
#: The CLI polls the device flow until the server's expires_in (the mock says 300 s).
DEVICE_POLL_SECONDS = 300


def kinds(attempts: list[Attempt]) -> list[OutcomeKind]:
    return [a.outcome.kind for a in attempts]


def cred_of(manager: AccountManager, index: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(manager.slot_path(index).read_bytes())
    return data


def status_of(manager: AccountManager, index: int) -> str:
    return {a.index: a.status for a in manager.list_accounts()}[index]


def assert_no_secret(mock: MockQwen, *texts: object) -> None:
    tokens = mock.secrets()
    for number, text in enumerate(texts):
        shown = str(text)
        # compare without letting pytest print the token in the failure message
        leaked = sum(1 for token in tokens if token in shown)
        assert leaked == 0, f"{leaked} token(s) appeared in credrot's output #{number}"


def assert_clean(
    mock: MockQwen,
    result: WrapperResult,
    manager: AccountManager,
    canary_leaks: Callable[[Path], list[str]],
) -> None:
    assert_no_secret(
        mock,
        result.output,
        result.stderr,
        result.error,
        repr(result),
        manager.get_stats(),
        [a.as_dict() for a in manager.list_accounts()],
    )
    assert canary_leaks(manager.home) == []


# --- scenarios ------------------------------------------------------------------------------


def test_answer_comes_back_through_credrot(
    mock: MockQwen,
    pool_of: PoolOf,
    make_wrapper: MakeWrapper,
    canary_leaks: Callable[[Path], list[str]],
) -> None:
    manager = pool_of(mock.add_account("a1"), mock.add_account("a2"))
    wrapper, attempts = make_wrapper(manager)

    result = wrapper.call(PROMPT)

    assert result.success, result.error
    assert result.output == "Mock answer from a1."  # stdout as is: no trailing newline
    assert (result.exit_code, result.stderr) == (0, "")
    assert (result.attempts, result.accounts_tried) == (1, [1])
    chats = mock.chat_hits()
    assert [h.account for h in chats] == ["a1"]
    # the prompt went through stdin alone (argv: --auth-type --output-format --approval-mode)
    assert PROMPT in chats[0].prompt
    assert attempts[0].run is not None and PROMPT not in " ".join(QWEN.argv())
    # with usage statistics and update checks off, the API is the only host contacted
    assert set(mock.connects) == {"portal.qwen.ai:443"}
    assert mock.refused_requests == []
    assert manager.pointer_state() == "link" and manager.current() == 1
    assert manager.get_stats()["accounts"]["1"]["successes"] == 1
    assert_clean(mock, result, manager, canary_leaks)


def test_cli_finds_its_home_through_HOME_not_QWEN_HOME(
    mock: MockQwen, cli_env: dict[str, str], workdir: Path, tmp_path: Path
) -> None:
    """0.12.0 resolves ``~/.qwen`` with os.homedir() only: credrot must set HOME too."""
    via_home = tmp_path / "home-a"
    via_qwen_home = tmp_path / "home-b" / ".qwen"
    for home, name in ((via_home / ".qwen", "by-home"), (via_qwen_home, "by-qwen-home")):
        home.mkdir(parents=True)
        (home / "oauth_creds.json").write_text(json.dumps(mock.add_account(name), indent=2))
    env = dict(cli_env, HOME=str(via_home), QWEN_HOME=str(via_qwen_home))

    run = run_tool(QWEN.argv(), stdin=PROMPT.encode(), env=env, timeout=40.0, cwd=str(workdir))

    assert (run.exit_code, run.stdout) == (0, "Mock answer from by-home.")
    assert QWEN.set_home, "the qwen profile must point HOME at the call's private home"


_INET = re.compile(r'sa_family=AF_INET6?, [^}]*?(?:inet_addr|inet_pton\(AF_INET6?,) ?\(?"([^"]+)"')


def test_nothing_leaves_loopback(
    mock: MockQwen, cli_env: dict[str, str], workdir: Path, tmp_path: Path
) -> None:
    """Every socket the CLI connects (default settings: usage statistics on) is loopback."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    home = tmp_path / "plain-home"
    (home / ".qwen").mkdir(parents=True)
    cred = mock.add_account("a1", expired=True)  # the OAuth host and the API host
    (home / ".qwen" / "oauth_creds.json").write_text(json.dumps(cred, indent=2))
    log = tmp_path / "connect.log"
    argv = [strace, "-f", "-qq", "-e", "trace=connect", "-o", str(log), *QWEN.argv()]
    env = dict(cli_env, HOME=str(home))

    run = run_tool(argv, stdin=PROMPT.encode(), env=env, timeout=40.0, cwd=str(workdir))

    if run.exit_code != 0 and "ptrace" in run.stderr:
        pytest.skip(f"strace cannot trace here: {run.stderr.strip()[:200]}")
    assert (run.exit_code, run.stdout) == (0, "Mock answer from a1.")
    trace = log.read_text()
    addresses = _INET.findall(trace)
    assert addresses, "strace saw no connect() at all"
    assert len(addresses) == len(re.findall(r"sa_family=AF_INET6?,", trace))
    assert set(addresses) <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}
    assert {h.kind for h in mock.hits} >= {"refresh", "chat"}


def test_quota_on_two_accounts_answer_from_the_third(
    mock: MockQwen,
    pool_of: PoolOf,
    make_wrapper: MakeWrapper,
    transcripts: dict[str, Transcript],
    canary_leaks: Callable[[Path], list[str]],
) -> None:
    manager = pool_of(
        mock.add_account("a1", mode="quota"),  # spent before today
        mock.add_account("a2", quota=0),  # its per-token quota is used up
        mock.add_account("a3"),
    )
    wrapper, attempts = make_wrapper(manager)

    first = wrapper.call(PROMPT)

    assert first.success, first.error
    assert first.output == "Mock answer from a3."
    assert (first.attempts, first.accounts_tried) == (3, [1, 2, 3])
    assert kinds(attempts) == [OutcomeKind.QUOTA_EXHAUSTED] * 2 + [OutcomeKind.OK]
    assert attempts[0].run is not None and attempts[0].run.exit_code == 1
    # FACTS: the CLI's HTTP client tries each quota'd request 4 times before it gives up
    assert len(mock.chat_hits("a1")) == len(mock.chat_hits("a2")) == 4
    tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date()
    for index in (1, 2):
        info = manager.list_accounts()[index - 1]
        assert info.status == "exhausted"
        assert info.until is not None and info.until.date() <= tomorrow
    assert manager.current() == 3
    assert os.readlink(manager.pointer) == "accounts/oauth_creds_3.json"
    transcripts["quota"] = transcript_of("quota", "text", attempts[0], "quota_exhausted")

    before = len(mock.chat_hits())
    second = wrapper.call(PROMPT)

    assert second.success and second.output == "Mock answer from a3."
    assert (second.attempts, second.accounts_tried) == (1, [3])
    assert [h.account for h in mock.chat_hits()[before:]] == ["a3"]
    assert second.duration < first.duration
    assert_clean(mock, second, manager, canary_leaks)


def test_expired_token_refreshed_by_the_cli_lands_in_its_own_slot(
    mock: MockQwen,
    pool_of: PoolOf,
    make_wrapper: MakeWrapper,
    canary_leaks: Callable[[Path], list[str]],
) -> None:
    expired = mock.add_account("a1", expired=True)
    manager = pool_of(expired, mock.add_account("a2"))
    wrapper, _ = make_wrapper(manager)

    result = wrapper.call(PROMPT)

    assert result.success, result.error
    assert result.output == "Mock answer from a1." and result.attempts == 1
    assert mock.account("a1").refreshed == 1
    slot = cred_of(manager, 1)
    assert slot["access_token"] == mock.account("a1").access_token != expired["access_token"]
    assert slot["refresh_token"] == expired["refresh_token"]  # kept: the server sent none
    assert slot["expiry_date"] > time.time() * 1000
    assert list(slot) == [
        "access_token",
        "token_type",
        "refresh_token",
        "resource_url",
        "expiry_date",
    ]
    raw = manager.slot_path(1).read_bytes()
    assert raw.startswith(b'{\n  "') and not raw.endswith(b"\n")  # the CLI's own format
    assert stat.S_IMODE(manager.slot_path(1).stat().st_mode) == 0o600
    assert cred_of(manager, 2)["access_token"] == mock.account("a2").access_token
    assert manager.pointer_state() == "link"
    assert os.readlink(manager.pointer) == "accounts/oauth_creds_1.json"

    again = wrapper.call(PROMPT)  # the saved token is used: no second refresh

    assert again.success and mock.account("a1").refreshed == 1
    assert_clean(mock, again, manager, canary_leaks)


def test_refresh_by_hand_replaces_the_link_and_credrot_adopts_it(
    mock: MockQwen,
    pool_of: PoolOf,
    make_wrapper: MakeWrapper,
    run_by_hand: Callable[..., RunResult],
    canary_leaks: Callable[[Path], list[str]],
) -> None:
    manager = pool_of(mock.add_account("a1"), mock.add_account("a2", expired=True))
    manager.switch_to(2)
    stale = manager.slot_path(2).read_bytes()

    run = run_by_hand()  # `qwen` typed by the user on the shared ~/.qwen

    assert (run.exit_code, run.stdout) == (0, "Mock answer from a2.")
    # FACTS: the refresh is written by temp file + rename, so the symlink is gone
    assert manager.pointer_state() == "file"
    assert stat.S_IMODE(manager.pointer.stat().st_mode) == 0o600
    assert manager.slot_path(2).read_bytes() == stale

    wrapper, _ = make_wrapper(manager)
    result = wrapper.call(PROMPT)

    assert result.success and result.output == "Mock answer from a2."
    assert (result.attempts, result.accounts_tried) == (1, [2])
    assert manager.pointer_state() == "link"
    assert os.readlink(manager.pointer) == "accounts/oauth_creds_2.json"
    assert cred_of(manager, 2)["access_token"] == mock.account("a2").access_token
    assert mock.account("a2").refreshed == 1  # the adopted token was used, not re-refreshed
    # the CLI's own files in ~/.qwen (debug/, projects/, ...) hold no token either
    assert (manager.home / "debug").is_dir()
    assert_clean(mock, result, manager, canary_leaks)


def test_rejected_refresh_stops_the_device_flow_and_the_next_account_answers(
    mock: MockQwen,
    pool_of: PoolOf,
    make_wrapper: MakeWrapper,
    canary_leaks: Callable[[Path], list[str]],
) -> None:
    manager = pool_of(
        mock.add_account("a1", expired=True, refresh="invalid_grant"), mock.add_account("a2")
    )
    slot_before = manager.slot_path(1).read_bytes()
    wrapper, attempts = make_wrapper(manager)

    result = wrapper.call(PROMPT)

    assert result.success, result.error
    assert result.output == "Mock answer from a2."
    assert (result.attempts, result.accounts_tried) == (2, [1, 2])
    assert kinds(attempts) == [OutcomeKind.AUTH_FAILED, OutcomeKind.OK]
    stopped = attempts[0].run
    assert stopped is not None and stopped.aborted is not None and stopped.exit_code is None
    assert DEVICE_TITLE in stopped.stderr
    assert len(mock.hits_of("device_code")) == 1  # the CLI really entered the device flow
    # stopped at the banner: at most the poll that follows it at once, never a second one
    assert len(mock.hits_of("device_poll")) <= 1
    assert result.duration < DEVICE_POLL_SECONDS / 10  # not the 300 s the flow would wait
    assert status_of(manager, 1) == "needs_login"
    # the CLI deleted only the call's private copy: the account's slot is untouched
    assert manager.slot_path(1).read_bytes() == slot_before
    assert manager.current() == 2 and manager.pointer_state() == "link"
    assert_clean(mock, result, manager, canary_leaks)


def test_rejected_refresh_by_hand_unlinks_only_the_link(
    mock: MockQwen,
    pool_of: PoolOf,
    run_by_hand: Callable[..., RunResult],
    transcripts: dict[str, Transcript],
) -> None:
    manager = pool_of(mock.add_account("a1", expired=True, refresh="invalid_grant"))
    slot_before = manager.slot_path(1).read_bytes()

    run = run_by_hand(stop_at=BOX_BOTTOM, timeout=30.0)

    assert run.aborted is not None, "the CLI did not show the device-authorization box"
    assert DEVICE_TITLE in run.stderr
    assert manager.pointer_state() == "missing"  # FACTS: a 400 unlinks oauth_creds.json
    assert manager.slot_path(1).read_bytes() == slot_before
    manager.repair()
    assert manager.pointer_state() == "link"
    transcripts["refresh_fail"] = transcript_of("refresh_fail", "text", run, "auth_failed")


def test_401_parks_the_account_as_needing_login(
    mock: MockQwen,
    pool_of: PoolOf,
    make_wrapper: MakeWrapper,
    transcripts: dict[str, Transcript],
    canary_leaks: Callable[[Path], list[str]],
) -> None:
    manager = pool_of(mock.add_account("a1", mode="unauthorized"), mock.add_account("a2"))
    wrapper, attempts = make_wrapper(manager)

    result = wrapper.call(PROMPT)

    assert result.success and result.output == "Mock answer from a2."
    assert (result.attempts, result.accounts_tried) == (2, [1, 2])
    assert kinds(attempts) == [OutcomeKind.AUTH_FAILED, OutcomeKind.OK]
    assert attempts[0].run is not None and attempts[0].run.exit_code == 1
    assert "[API Error: 401" in attempts[0].run.stderr
    # FACTS: one forced refresh, one retry
    assert len(mock.chat_hits("a1")) == 2 and mock.account("a1").refreshed == 1
    assert status_of(manager, 1) == "needs_login"
    # the token the CLI refreshed on the way is newer: it was saved to account 1's slot
    assert cred_of(manager, 1)["access_token"] == mock.account("a1").access_token
    assert manager.current() == 2
    transcripts["auth"] = transcript_of("auth", "text", attempts[0], "auth_failed")
    assert_clean(mock, result, manager, canary_leaks)


def test_connection_refused_is_an_error_and_does_not_rotate(
    mock: MockQwen,
    pool_of: PoolOf,
    make_wrapper: MakeWrapper,
    transcripts: dict[str, Transcript],
) -> None:
    manager = pool_of(mock.add_account("a1"), mock.add_account("a2"))
    nowhere = f"http://127.0.0.1:{closed_port()}"
    proxies = {k: nowhere for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")}
    wrapper, attempts = make_wrapper(manager, env_update=proxies)

    result = wrapper.call(PROMPT)

    assert not result.success
    assert result.outcome is not None and result.outcome.kind is OutcomeKind.ERROR
    assert (result.attempts, result.accounts_tried) == (1, [1])
    assert result.error is not None and "Connection error" in result.error
    assert result.exit_code == 1
    assert [a.status for a in manager.list_accounts()] == ["ready", "ready"]
    assert manager.current() == 1 and mock.hits == []
    transcripts["connection_error"] = transcript_of(
        "connection_error", "text", attempts[0], "error"
    )


@pytest.mark.parametrize(
    ("profile", "fmt"),
    [(JSON_QWEN, "json"), (STREAM_JSON_QWEN, "stream-json")],
    ids=["json", "stream-json"],
)
def test_json_output_quota_exits_0_and_still_rotates(
    profile: ToolProfile,
    fmt: str,
    mock: MockQwen,
    pool_of: PoolOf,
    make_wrapper: MakeWrapper,
    transcripts: dict[str, Transcript],
) -> None:
    manager = pool_of(mock.add_account("a1", mode="quota"), mock.add_account("a2"), profile=profile)
    wrapper, attempts = make_wrapper(manager)

    result = wrapper.call(PROMPT)

    assert result.success, result.error
    assert (result.attempts, result.accounts_tried) == (2, [1, 2])
    assert kinds(attempts) == [OutcomeKind.QUOTA_EXHAUSTED, OutcomeKind.OK]
    assert attempts[0].run is not None and attempts[0].run.exit_code == 0  # FACTS
    assert result_message(result.output, fmt)["result"] == "Mock answer from a2."
    assert status_of(manager, 1) == "exhausted" and manager.current() == 2
    transcripts[f"quota-{fmt}"] = transcript_of("quota", fmt, attempts[0], "quota_exhausted")


def test_non_quota_rate_limit_is_backed_off_not_remembered(
    rate_limit_run: RateLimitRun, transcripts: dict[str, Transcript]
) -> None:
    """Started in the background at session start: the CLI retries a 429 for ~80 s."""
    run = rate_limit_run
    result = run.result
    assert result.success, result.error
    assert result.output == "Mock answer from spare."
    assert (result.attempts, result.accounts_tried) == (2, [1, 2])
    assert kinds(run.attempts) == [OutcomeKind.RATE_LIMITED, OutcomeKind.OK]
    first = run.attempts[0].run
    assert first is not None and first.exit_code == 1
    assert "[API Error: 429 Requests rate limit exceeded" in first.stderr
    assert run.rate_limited_requests == 28  # FACTS: 7 tries of 4 requests each
    info = run.after[0]
    assert info.status == "rate_limited"
    # a short back-off, not a day
    assert info.until is not None
    assert info.until - run.read_at < timedelta(minutes=10)
    assert set(run.connects) == {"portal.qwen.ai:443"}
    transcripts["rate_limit"] = transcript_of("rate_limit", "text", run.attempts[0], "rate_limited")


# --- the simulator against what the real CLI printed ---------------------------------------

#: transcript key -> (simulator mode, output format)
SIM_CASES = {
    "quota": ("quota", "text"),
    "auth": ("auth", "text"),
    "connection_error": ("connection_error", "text"),
    "refresh_fail": ("refresh_fail", "text"),
    "rate_limit": ("rate_limit", "text"),
    "quota-json": ("quota", "json"),
    "quota-stream-json": ("quota", "stream-json"),
}
_NOISE = re.compile(r"^(?:at\s|\(node:\d+\)|\(Use `node )")
_DEVICE_CODE = re.compile(r"user_code=[0-9A-Za-z]{4}-[0-9A-Za-z]{4}")


def key_lines(text: str) -> Counter[str]:
    """The lines a user reads: stripped, without stack frames and node's own warnings."""
    lines: Counter[str] = Counter()
    for raw in text.splitlines():
        line = raw.strip()
        if line and not _NOISE.match(line):
            lines[_DEVICE_CODE.sub("user_code=XXXX-XXXX", line)] += 1
    return lines


def json_messages(stdout: str, fmt: str) -> list[dict[str, Any]]:
    if fmt == "json":
        parsed = json.loads(stdout)
        return parsed if isinstance(parsed, list) else [parsed]
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def result_message(stdout: str, fmt: str) -> dict[str, Any]:
    results = [m for m in json_messages(stdout, fmt) if m.get("type") == "result"]
    assert results, f"no result message in the {fmt} output"
    return results[-1]


def _drift(real: Counter[str], sim: Counter[str]) -> str:
    missing = real - sim
    extra = sim - real
    parts = []
    if missing:
        parts.append(
            "printed by the real CLI, not by the simulator:\n  "
            + "\n  ".join(f"{n}x {line!r}" for line, n in missing.items())
        )
    if extra:
        parts.append(
            "printed by the simulator, not by the real CLI:\n  "
            + "\n  ".join(f"{n}x {line!r}" for line, n in extra.items())
        )
    return "\n".join(parts)


def _capture(
    key: str,
    request: pytest.FixtureRequest,
) -> Transcript:
    """The real transcript for ``key`` when its scenario has not run in this session."""
    if key == "rate_limit":
        run: RateLimitRun = request.getfixturevalue("rate_limit_run")
        return transcript_of(key, "text", run.attempts[0], "rate_limited")
    mock: MockQwen = request.getfixturevalue("mock")
    pool_of: PoolOf = request.getfixturevalue("pool_of")
    make_wrapper: MakeWrapper = request.getfixturevalue("make_wrapper")
    mode, fmt = SIM_CASES[key]
    if key == "refresh_fail":
        pool_of(mock.add_account("x", expired=True, refresh="invalid_grant"))
        by_hand: Callable[..., RunResult] = request.getfixturevalue("run_by_hand")
        return transcript_of(key, fmt, by_hand(stop_at=BOX_BOTTOM, timeout=30.0), "auth_failed")
    profile = PROFILES[fmt]
    mock_mode = {"auth": "unauthorized"}.get(mode, mode)
    manager = pool_of(
        mock.add_account("x", mode="ok" if mode == "connection_error" else mock_mode),
        profile=profile,
    )
    update = {}
    if mode == "connection_error":
        nowhere = f"http://127.0.0.1:{closed_port()}"
        update = {k: nowhere for k in ("HTTPS_PROXY", "https_proxy")}
    wrapper, attempts = make_wrapper(manager, max_retries=1, env_update=update)
    wrapper.call(PROMPT)
    return transcript_of(key, fmt, attempts[0], attempts[0].outcome.kind.value)


@pytest.mark.parametrize("key", list(SIM_CASES))
def test_simulator_prints_what_the_real_cli_printed(
    key: str,
    transcripts: dict[str, Transcript],
    simulate: Callable[..., RunResult],
    request: pytest.FixtureRequest,
) -> None:
    real = transcripts.get(key) or _capture(key, request)
    mode, fmt = SIM_CASES[key]
    profile = PROFILES[fmt]
    device = key == "refresh_fail"
    sim = simulate(mode, fmt, expired=device, stop_at=BOX_BOTTOM if device else None)

    # classified alike: the simulator can stand in for the CLI in every other test
    real_run = RunResult(real.exit_code, real.stdout, real.stderr, 0.0)
    assert classify_kind(profile, sim) == classify_kind(profile, real_run) == real.kind
    assert sim.exit_code == real.exit_code
    if fmt == "text":
        assert sim.stdout == real.stdout == ""
        drift = _drift(key_lines(real.stderr), key_lines(sim.stderr))
        assert not drift, f"simulator drifted from qwen 0.12.0 ({key}):\n{drift}"
        return
    # json modes: the same shape, the same message types, the same result
    if fmt == "json":
        shape = type(json.loads(real.stdout)).__name__
        assert type(json.loads(sim.stdout)).__name__ == shape, (
            f"qwen 0.12.0 prints a JSON {shape} for --output-format json"
        )
    real_types = [m.get("type") for m in json_messages(real.stdout, fmt)]
    sim_types = [m.get("type") for m in json_messages(sim.stdout, fmt)]
    assert sim_types == real_types
    real_result, sim_result = result_message(real.stdout, fmt), result_message(sim.stdout, fmt)
    assert sim_result["is_error"] == real_result["is_error"]
    assert sim_result["subtype"] == real_result["subtype"]
    drift = _drift(key_lines(real_result["result"]), key_lines(sim_result["result"]))
    assert not drift, f"simulator drifted from qwen 0.12.0 ({key}):\n{drift}"
    assert classify(profile, 0, sim.stdout, "").kind is classify(profile, 0, real.stdout, "").kind
