"""Rotating Coding Plan API keys, proven against the newest Qwen Code the registry serves.

The genuine ``qwen`` (``install.CLIS["qwen-current"]``) runs through credrot's Wrapper
with the ``qwen-key`` profile: each account is ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL`` /
``OPENAI_MODEL`` lines put into the call's environment, and the CLI reaches the Coding
Plan's base URL on a loopback mock. The pool home's ``settings.json`` turns off what
would spend a second request per call (managed auto-memory) and the CLI's own
rate-limit retries (``model.generationConfig.maxRetries: 0``; without it a spent key is
retried silently for tens of minutes).
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from credrot.manager import AccountManager
from credrot.process import RunResult
from credrot.tools import QWEN_KEY
from credrot.wrapper import WrapperResult

from . import install
from .genuine import PROMPT, Setup, assert_no_secret, cli_bin, status_of
from .harness import Attempt
from .mockqwenkey import MockQwenKey
from .transcribe import record

pytestmark = pytest.mark.conformance

#: What the pool home's settings.json holds for headless key rotation (README).
SETTINGS = {
    "$version": 3,
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"enableAutoUpdate": False},
    "memory": {"enableManagedAutoMemory": False, "enableManagedAutoDream": False},
    "model": {"generationConfig": {"maxRetries": 0}},
}
#: window -> (the window credrot names, its length)
WINDOWS = {"hour": ("5h", timedelta(hours=5)), "week": ("week", timedelta(days=7))}
#: A spent key costs the CLI's remaining HTTP retries (~1 min) plus its start-up.
QUOTA_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def qwen_current_bin() -> Path:
    return cli_bin("qwen-current")


@pytest.fixture
def mock(canary: str) -> Iterator[MockQwenKey]:
    with MockQwenKey(token_prefix=canary) as server:
        yield server


def _kept(run: RunResult) -> RunResult:
    """What a transcript keeps of a run: the cache's path on this machine is left out."""
    where = str(install.cache_root())
    return replace(
        run,
        stdout=run.stdout.replace(where, "<cache>"),
        stderr=run.stderr.replace(where, "<cache>"),
    )


def _setup(bin_dir: Path, mock: MockQwenKey, root: Path) -> Setup:
    return Setup(bin_dir, mock, QWEN_KEY, root)


def _pool(setup: Setup, *accounts: str) -> AccountManager:
    setup.pool_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (setup.pool_home / "settings.json").write_text(json.dumps(SETTINGS, indent=2))
    return setup.pool(*(a.encode() for a in accounts))


@dataclass
class Scenario:
    """One pool of a spent key and a spare one, asked twice."""

    window: str
    result: WrapperResult
    again: WrapperResult
    attempts: list[Attempt]
    manager: AccountManager
    #: Requests the spent key got by the end of the first call / of the second.
    spent_after_first: int
    spent_after_again: int
    started: datetime


def _spent_then_spare(setup: Setup, window: str) -> Scenario:
    mock = setup.mock
    spent = f"{window}-spent"
    manager = _pool(setup, mock.add_key(spent, window), mock.add_key(f"{window}-spare"))
    wrapper, attempts = setup.wrapper(manager, timeout=QUOTA_TIMEOUT)
    started = datetime.now(timezone.utc)
    first = wrapper.call(PROMPT)
    after_first = len(mock.chats(spent))
    again = wrapper.call(PROMPT)
    return Scenario(
        window, first, again, attempts, manager, after_first, len(mock.chats(spent)), started
    )


def test_spent_keys_rotate_and_each_quota_lands_in_its_window(
    qwen_current_bin: Path, mock: MockQwenKey, tmp_path: Path
) -> None:
    """An hour-spent key and a week-spent key, in two pools at once (the CLI's own
    retries of a 429 take about a minute each)."""
    setups = [_setup(qwen_current_bin, mock, tmp_path / w) for w in WINDOWS]
    with concurrent.futures.ThreadPoolExecutor(len(WINDOWS)) as threads:
        scenarios = list(threads.map(_spent_then_spare, setups, WINDOWS))
    for sc in scenarios:
        window, named, length = sc.window, *WINDOWS[sc.window]
        assert sc.result.success, sc.result.error
        assert sc.result.output.strip() == f"Mock answer from {window}-spare."
        assert sc.result.accounts_tried == [1, 2]
        run = sc.attempts[0].run
        assert run is not None and run.exit_code == 1 and run.stdout == ""
        assert f"[API Error: 429 {window} allocated quota exceeded]" in run.stderr
        record("qwen-current", f"quota_{window}", _kept(run), sc.attempts[0].outcome.kind.value)
        assert sc.attempts[0].outcome.window == named
        info = {a.index: a for a in sc.manager.list_accounts()}
        assert info[1].status == "exhausted" and info[1].until is not None
        # no reset is printed: the key waits one whole window of its kind
        assert sc.started + length <= info[1].until <= datetime.now(timezone.utc) + length
        assert set(info[1].windows) == {named}
        # the spent key is never sent again: the next call goes straight to the spare
        assert sc.again.success and sc.again.attempts == 1 and sc.again.account == 2
        assert sc.spent_after_again == sc.spent_after_first >= 1
        assert_no_secret(mock.secrets(), sc.result, sc.again, run.stderr, run.stdout)


def test_a_refused_key_needs_a_new_one_and_the_next_key_answers(
    qwen_current_bin: Path, mock: MockQwenKey, tmp_path: Path
) -> None:
    setup = _setup(qwen_current_bin, mock, tmp_path)
    manager = _pool(setup, mock.add_key("revoked", "unauthorized"), mock.add_key("good"))
    wrapper, attempts = setup.wrapper(manager, timeout=QUOTA_TIMEOUT)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2, result.error
    assert result.output.strip() == "Mock answer from good."
    run = attempts[0].run
    assert run is not None and run.exit_code == 1
    assert "[API Error: 401 Incorrect API key provided." in run.stderr
    record("qwen-current", "unauthorized", _kept(run), attempts[0].outcome.kind.value)
    ok = attempts[1].run
    assert ok is not None
    record("qwen-current", "ok", _kept(ok), attempts[1].outcome.kind.value)
    assert status_of(manager, 1) == "needs_login"
    # the prompt reached the plan once, with the good key; no file holds a key
    assert [PROMPT in h.prompt for h in mock.chats("good")] == [True]
    # Only this process's idle home is left, holding no key and nothing the CLI wrote
    # (its links to the pool's shared files, and a pid file saying no tool runs there).
    homes = list(setup.pool_home.glob(".credrot-run/*"))
    assert all("-idle-" in home.name for home in homes)
    left = [p for home in homes for p in home.rglob("*") if p.is_file() and not p.is_symlink()]
    assert [p.name for p in left] in ([], [".credrot-tool.pid"])
    assert_no_secret(mock.secrets(), result, run.stderr)


def test_a_rate_limited_key_is_backed_off_not_marked_spent(
    qwen_current_bin: Path, mock: MockQwenKey, tmp_path: Path
) -> None:
    """A plain 429 (requests per minute, not a quota) is a short back-off: the key is not
    taken out for a window, and the call is answered by the next key meanwhile."""
    setup = _setup(qwen_current_bin, mock, tmp_path)
    manager = _pool(setup, mock.add_key("busy", "rate_limit"), mock.add_key("spare"))
    wrapper, attempts = setup.wrapper(manager, timeout=QUOTA_TIMEOUT, max_rate_limits=0)
    result = wrapper.call(PROMPT)
    read_at = datetime.now(timezone.utc)
    assert result.success and result.account == 2, result.error
    assert result.output.strip() == "Mock answer from spare."
    run = attempts[0].run
    assert run is not None and run.exit_code == 1
    assert "429" in run.stderr and "rate limit exceeded" in run.stderr.lower()
    assert attempts[0].outcome.kind.value == "rate_limited"
    record("qwen-current", "rate_limit", _kept(run), attempts[0].outcome.kind.value)
    busy = {a.index: a for a in manager.list_accounts()}[1]
    assert busy.status == "rate_limited" and busy.until is not None
    assert busy.until - read_at < timedelta(minutes=10)  # a back-off, not a window
    assert not busy.windows
    assert_no_secret(mock.secrets(), result, run.stderr)
