"""Rotation proven against the genuine Codex 0.171.0 (npm) on a loopback mock.

Each test drives the real ``codex exec`` through credrot's Wrapper on a pool in a
temporary ``~/.codex`` (``CODEX_HOME`` points each call at its private home) and asserts
what a user would notice: which account answered, which the pool remembers as spent and
until when, that a spent account is not called again, where a refreshed token went, and
that parallel callers never spend a single-use refresh token twice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from credrot.classify import classify
from credrot.kinds import OutcomeKind
from credrot.process import RunResult, run_tool
from credrot.tools import CODEX

from .callers import run_callers
from .genuine import PROMPT, Setup, assert_no_secret, cli_bin, slot_json, status_of
from .mockcodex import MockCodex
from .transcribe import record

pytestmark = pytest.mark.conformance


@pytest.fixture(scope="module")
def codex_bin() -> Path:
    return cli_bin("codex")


@pytest.fixture
def setup(codex_bin: Path, canary: str, tmp_path: Path) -> Iterator[Setup]:
    with MockCodex(token_prefix=canary) as mock:
        yield Setup(codex_bin, mock, CODEX, tmp_path)


#: codex retries a 429 with ``retry-after`` five times on its own ("Reconnecting... n/5").
#: The built-in ``openai`` provider's retry settings cannot be overridden (config error:
#: "reserved built-in provider IDs"), so the same backend is named as a provider of its
#: own, with ChatGPT sign-in and no retries.
_P = "model_providers.chatgpt"
_NO_RETRY_SETTINGS = (
    ("model_provider", '"chatgpt"'),
    (f"{_P}.name", '"ChatGPT"'),
    (f"{_P}.base_url", '"https://chatgpt.com/backend-api/codex"'),
    (f"{_P}.wire_api", '"responses"'),
    (f"{_P}.requires_openai_auth", "true"),
    (f"{_P}.request_max_retries", "0"),
    (f"{_P}.stream_max_retries", "0"),
)
NO_RETRIES = [arg for key, value in _NO_RETRY_SETTINGS for arg in ("-c", f"{key}={value}")]


def _minute(epoch: float) -> datetime:
    return datetime.fromtimestamp(int(epoch) // 60 * 60, timezone.utc)


def _try_again_at(epoch: float) -> str:
    """How 0.171.0 prints a reset in UTC: ``5:10 PM``, another day ``Dec 5th, 2026 4:10 PM``."""
    at, now = time.gmtime(epoch), time.gmtime()
    when = time.strftime("%-I:%M %p", at)
    if (at.tm_year, at.tm_yday) == (now.tm_year, now.tm_yday):
        return when
    day = at.tm_mday
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{time.strftime('%b', at)} {day}{suffix}, {at.tm_year} {when}"


def classify_kind(run: RunResult) -> str:
    return classify(CODEX, run.exit_code, run.stdout, run.stderr).kind.value


def _errors(stderr: str) -> list[str]:
    """The ``ERROR: ...`` lines codex ends a failed run with (its reconnect notes aside)."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith("ERROR: ") and not line.startswith("ERROR: Reconnecting")
    ]


@pytest.mark.parametrize(("mode", "hours"), [("quota", 3), ("quota_long", 50)])
def test_spent_account_is_skipped_until_its_printed_reset(
    setup: Setup, mode: str, hours: int
) -> None:
    resets = time.time() + hours * 3600
    mock = setup.mock
    manager = setup.pool(
        mock.add_account("spent", mode=mode, resets_at=resets), mock.add_account("spare")
    )
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success, result.error
    assert result.output.strip() == "Mock answer from spare."
    assert result.accounts_tried == [1, 2]
    first = attempts[0].run
    assert first is not None and first.exit_code == 1 and first.stdout == ""
    # printed twice, in the process's zone (TZ=UTC here); another day names the date
    when = _try_again_at(resets)
    line = (
        "ERROR: You\u2019ve hit your usage limit. Upgrade to Pro "
        "(https://chatgpt.com/explore/pro), visit https://chatgpt.com/settings/usage "
        "to purchase more credits or try again at "
        f"{when}."
    )
    assert _errors(first.stderr) == [line, line]
    record("codex", mode, first, attempts[0].outcome.kind.value)
    answered = attempts[1].run
    assert answered is not None and answered.stdout == "Mock answer from spare.\n"
    record("codex", "ok", answered, attempts[1].outcome.kind.value)
    info = {a.index: a for a in manager.list_accounts()}
    assert info[1].status == "exhausted"
    assert info[1].until == _minute(resets)
    again = wrapper.call(PROMPT)
    assert again.success and again.attempts == 1 and again.account == 2
    assert len(mock.chats("spent")) == 1  # never asked again
    assert_no_secret(mock.secrets(), result, again, first.stderr)


def test_credrot_run_rotates_codex_as_a_user_types_it(setup: Setup) -> None:
    """``credrot --tool codex run -- exec --skip-git-repo-check -`` with the prompt piped
    in: the answer alone on stdout, the switch said on stderr, the pool remembers."""
    mock = setup.mock
    resets = time.time() + 3 * 3600
    setup.pool(mock.add_account("spent", mode="quota", resets_at=resets), mock.add_account("spare"))
    env = setup.env()
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
    argv = ["credrot", "--tool", "codex", "run", "--", "exec", "--skip-git-repo-check", "-"]
    done = subprocess.run(
        argv,
        input=PROMPT,
        env=env,
        cwd=setup.workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout == "Mock answer from spare.\n"
    said = [line for line in done.stderr.splitlines() if line.startswith("credrot:")]
    spent_until = _minute(resets).strftime("%H:%M")
    assert said == [f"credrot: account #1 spent (resets {spent_until} UTC); trying #2"]
    listed = subprocess.run(
        ["credrot", "--tool", "codex", "accounts", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    accounts = {a["index"]: a for a in json.loads(listed.stdout)["accounts"]}
    assert accounts[1]["status"] == "exhausted" and accounts[2]["active"]
    assert accounts[1]["until"] == _minute(resets).isoformat()
    assert mock.book.token_prefix not in listed.stdout + done.stdout + done.stderr
    assert len(mock.chats("spent")) == 1


def test_json_events_carry_the_quota_and_the_answer(setup: Setup) -> None:
    """``codex exec --json``: JSONL events on stdout, nothing on stderr but a warning;
    the quota is in an ``error`` and a ``turn.failed`` event, exit 1."""
    mock = setup.mock
    resets = time.time() + 3 * 3600
    manager = setup.pool(
        mock.add_account("spent", mode="quota", resets_at=resets), mock.add_account("spare")
    )
    wrapper, attempts = setup.wrapper(manager, extra_args=["--json"])
    result = wrapper.call(PROMPT)
    assert result.success and result.accounts_tried == [1, 2], result.error
    spent, answered = (a.run for a in attempts)
    assert spent is not None and answered is not None
    assert spent.exit_code == 1 and not _errors(spent.stderr)
    events = [json.loads(line) for line in spent.stdout.splitlines()]
    assert [e["type"] for e in events] == ["thread.started", "turn.started", "error", "turn.failed"]
    assert events[2]["message"].startswith("You\u2019ve hit your usage limit.")
    assert events[3]["error"]["message"] == events[2]["message"]
    record("codex", "quota_json", spent, attempts[0].outcome.kind.value)
    assert status_of(manager, 1) == "exhausted"
    assert manager.list_accounts()[0].until == _minute(resets)
    events = [json.loads(line) for line in answered.stdout.splitlines()]
    assert [e["type"] for e in events][-2:] == ["item.completed", "turn.completed"]
    assert events[-2]["item"] == {
        "id": "item_0",
        "type": "agent_message",
        "text": "Mock answer from spare.",
    }
    record("codex", "ok_json", answered, attempts[1].outcome.kind.value)


def test_quota_without_a_reset_is_remembered_for_the_default_window(setup: Setup) -> None:
    """No reset from the backend: codex says ``try again later``; credrot keeps the
    account spent for Codex's 5-hour window."""
    mock = setup.mock
    manager = setup.pool(
        mock.add_account("spent", mode="quota", resets_at=0), mock.add_account("spare")
    )
    wrapper, attempts = setup.wrapper(manager)
    before = datetime.now(timezone.utc)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2, result.error
    first = attempts[0].run
    assert first is not None and first.exit_code == 1
    errors = _errors(first.stderr)
    assert len(errors) == 2 and errors[0].endswith("purchase more credits or try again later.")
    record("codex", "quota_no_reset", first, attempts[0].outcome.kind.value)
    info = manager.list_accounts()[0]
    assert info.status == "exhausted" and info.until is not None
    hours = (info.until - before).total_seconds() / 3600
    assert 4.9 < hours < 5.1


def test_usage_codex_reports_moves_the_pool_before_its_limit(setup: Setup) -> None:
    """The backend's usage headers land in codex's own rollout (``token_count``
    ``rate_limits``) inside the call home; credrot reads them from there, and an account
    at 97 % of its 5-hour window is left before the tool ever refuses it."""
    mock = setup.mock
    manager = setup.pool(mock.add_account("busy"), mock.add_account("spare"))
    five_reset, week_reset = time.time() + 3600, time.time() + 3 * 86400
    mock.usage["busy"] = {"primary": (97.0, 300, five_reset), "secondary": (7.5, 10080, week_reset)}
    wrapper, _ = setup.wrapper(manager)
    first = wrapper.call(PROMPT)
    assert first.success and first.account == 1, first.error
    state = json.loads((setup.pool_home / "state.yaml").read_text())
    windows = state["accounts"]["1"]["windows"]
    assert windows["5h"]["used"] == pytest.approx(0.97)
    assert windows["5h"]["resets"] == pytest.approx(int(five_reset), abs=1)
    assert windows["week"]["used"] == pytest.approx(0.075)
    assert windows["week"]["resets"] == pytest.approx(int(week_reset), abs=1)
    again = wrapper.call(PROMPT)
    assert again.success and again.account == 2 and again.attempts == 1
    assert len(mock.chats("busy")) == 1
    # the rollouts (they hold the prompt) stayed in the call homes
    assert not (setup.pool_home / "sessions").exists()


def test_rate_limit_is_backed_off_not_remembered(setup: Setup) -> None:
    mock = setup.mock
    manager = setup.pool(mock.add_account("busy", mode="rate_limit"), mock.add_account("spare"))
    wrapper, attempts = setup.wrapper(manager, max_rate_limits=0, extra_args=NO_RETRIES)
    result = wrapper.call(PROMPT)
    assert result.success, result.error
    assert [a.outcome.kind for a in attempts] == [OutcomeKind.RATE_LIMITED, OutcomeKind.OK]
    first = attempts[0].run
    assert first is not None and first.exit_code == 1
    errors = _errors(first.stderr)
    assert len(errors) == 2 and errors[0] == errors[1]
    assert errors[0].startswith("ERROR: exceeded retry limit, last status: 429 Too Many Requests")
    record("codex", "rate_limit", first, "rate_limited")
    assert len(mock.chats("busy")) == 1
    info = manager.list_accounts()[0]
    assert info.status == "rate_limited"
    assert info.until is not None
    assert (info.until - datetime.now(timezone.utc)).total_seconds() < 600


def test_dropped_connection_is_an_error_not_a_rotation(setup: Setup) -> None:
    mock = setup.mock
    manager = setup.pool(mock.add_account("cut"), mock.add_account("spare"))
    mock.drop.add("cut")
    wrapper, attempts = setup.wrapper(manager, extra_args=NO_RETRIES)
    result = wrapper.call(PROMPT)
    assert not result.success and result.accounts_tried == [1]
    assert [a.outcome.kind for a in attempts] == [OutcomeKind.ERROR]
    first = attempts[0].run
    assert first is not None and first.exit_code == 1
    line = "ERROR: stream disconnected before completion: error sending request"
    assert _errors(first.stderr) == [line, line]
    record("codex", "connection_error", first, "error")
    assert status_of(manager, 1) == "ready"
    assert not mock.chats("spare")


def test_a_long_retry_after_codex_sleeps_out_moves_the_call_on(setup: Setup) -> None:
    """With its own retries on (the default), codex honours a 429's ``retry-after``: one
    reconnect note, then silence for the whole wait. credrot stops it after
    ``RECONNECT_SILENCE`` seconds and answers from the next account."""
    mock = setup.mock
    manager = setup.pool(mock.add_account("busy", mode="rate_limit"), mock.add_account("spare"))
    mock.retry_after["busy"] = 900
    wrapper, attempts = setup.wrapper(manager)
    started = time.monotonic()
    result = wrapper.call(PROMPT)
    assert result.success and result.accounts_tried == [1, 2], result.error
    assert time.monotonic() - started < 120  # not the 900 s wait, nor the call's timeout
    first = attempts[0].run
    assert first is not None and first.exit_code is None  # stopped
    notes = [line for line in first.stderr.splitlines() if line.startswith("ERROR: ")]
    assert len(notes) == 1 and notes[0].startswith("ERROR: Reconnecting... 1/5"), notes
    assert attempts[0].outcome.kind is OutcomeKind.RATE_LIMITED
    assert "waiting out a long retry-after" in attempts[0].outcome.message
    assert len(mock.chats("busy")) == 1
    assert status_of(manager, 1) == "rate_limited"


def test_reconnects_after_a_dropped_connection_are_left_to_run(setup: Setup) -> None:
    """The same note after a dropped connection: codex reconnects within seconds, five
    times, and ends with its own error, which credrot returns (no rotation)."""
    mock = setup.mock
    manager = setup.pool(mock.add_account("cut"), mock.add_account("spare"))
    mock.drop.add("cut")
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert not result.success and result.accounts_tried == [1]
    first = attempts[0].run
    assert first is not None and first.exit_code == 1  # it ended by itself
    assert first.stderr.count("ERROR: Reconnecting...") == 5
    assert attempts[0].outcome.kind is OutcomeKind.ERROR
    assert status_of(manager, 1) == "ready" and not mock.chats("spare")


def test_revoked_token_parks_the_account_as_needing_login(setup: Setup) -> None:
    mock = setup.mock
    manager = setup.pool(mock.add_account("gone", mode="revoked"), mock.add_account("spare"))
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2, result.error
    first = attempts[0].run
    assert first is not None and first.exit_code == 1
    line = (
        "ERROR: Your access token could not be refreshed because your refresh token was "
        "revoked. Please log out and sign in again."
    )
    assert _errors(first.stderr) == [line, line]
    record("codex", "revoked", first, "auth_failed")
    assert status_of(manager, 1) == "needs_login"
    again = wrapper.call(PROMPT)
    assert again.success and again.attempts == 1 and again.account == 2


def test_expired_refresh_token_parks_the_account_and_keeps_its_slot(setup: Setup) -> None:
    mock = setup.mock
    manager = setup.pool(
        mock.add_account("lapsed", expires_in=-60, refresh="invalid_grant"),
        mock.add_account("spare"),
    )
    before = manager.slot_path(1).read_bytes()
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2, result.error
    first = attempts[0].run
    assert first is not None and first.exit_code == 1
    line = (
        "ERROR: Your access token could not be refreshed because your refresh token has "
        "expired. Please log out and sign in again."
    )
    assert _errors(first.stderr) == [line, line]
    record("codex", "refresh_fail", first, "auth_failed")
    assert status_of(manager, 1) == "needs_login"
    assert manager.slot_path(1).read_bytes() == before  # nothing of the failed call kept


def test_replayed_refresh_token_parks_the_account_and_revokes_nothing_else(setup: Setup) -> None:
    """A slot holding a refresh token that was already spent (a copy refreshed elsewhere):
    codex presents it, the provider refuses it and revokes the account's family; credrot
    parks that account as needing login and the call moves on."""
    mock = setup.mock
    cred = mock.add_account("copied", expires_in=-60)
    acct = mock.account("copied")
    assert mock.book.refresh(acct.refresh_token)[1] == "ok"  # spent by someone else
    manager = setup.pool(cred, mock.add_account("spare"))
    wrapper, attempts = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2, result.error
    first = attempts[0].run
    assert first is not None and first.exit_code == 1
    line = (
        "ERROR: Your access token could not be refreshed because your refresh token was "
        "already used. Please log out and sign in again."
    )
    assert _errors(first.stderr) == [line, line]
    record("codex", "refresh_reused", first, "auth_failed")
    assert acct.revoked and not mock.account("spare").revoked
    assert status_of(manager, 1) == "needs_login"
    # the newest token of the revoked family (the copy that refreshed) is dead too
    other = setup.root / "other-copy"
    other.mkdir()
    (other / "auth.json").write_text(json.dumps(mock.credential(acct)))
    env = {**setup.env(), "CODEX_HOME": str(other)}
    run = run_tool(
        CODEX.argv(), stdin=PROMPT.encode(), env=env, timeout=60.0, cwd=str(setup.workdir)
    )
    revoked = line.replace("was already used", "was revoked")
    assert run.exit_code == 1 and _errors(run.stderr) == [revoked, revoked]
    record("codex", "revoked_family", run, classify_kind(run))


def test_expired_api_token_fails_as_auth(setup: Setup) -> None:
    """A 401 the refresh does not cure: codex refreshes, retries, then gives up."""
    mock = setup.mock
    manager = setup.pool(mock.add_account("stale"), mock.add_account("spare"))
    mock.account("stale").mode = "unauthorized"
    wrapper, attempts = setup.wrapper(manager, extra_args=NO_RETRIES)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 2, result.error
    first = attempts[0].run
    assert first is not None and first.exit_code == 1
    errors = _errors(first.stderr)
    assert errors and errors[-1].startswith(
        "ERROR: unexpected status 401 Unauthorized: Provided authentication token is expired."
    )
    record("codex", "unauthorized", first, "auth_failed")
    acct = mock.account("stale")
    assert acct.refreshed >= 1 and not acct.revoked
    # the token codex got last is in the slot, not the spent one
    assert slot_json(manager, 1)["tokens"]["refresh_token"] == acct.refresh_token
    assert status_of(manager, 1) == "needs_login"


def test_expired_token_is_refreshed_into_its_own_slot(setup: Setup) -> None:
    mock = setup.mock
    manager = setup.pool(mock.add_account("old", expires_in=-60), mock.add_account("other"))
    other_before = manager.slot_path(2).read_bytes()
    wrapper, _ = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success and result.account == 1, result.error
    acct = mock.account("old")
    assert acct.refreshed == 1
    saved = slot_json(manager, 1)
    # what codex wrote into its private copy, read back into account 1's slot
    assert saved["tokens"]["access_token"] == acct.access_token
    assert saved["tokens"]["refresh_token"] == acct.refresh_token
    assert CODEX.expiry(saved) == pytest.approx(time.time() + 3600, abs=120)
    assert manager.slot_path(2).read_bytes() == other_before
    # the next call uses the new token: no second refresh (a spent token is never reused)
    assert wrapper.call(PROMPT).success
    assert acct.refreshed == 1 and not acct.revoked
    assert_no_secret(mock.secrets(), result)


def test_opaque_token_is_refreshed_by_the_age_of_last_refresh(setup: Setup) -> None:
    """Without a JWT ``exp`` codex refreshes once ``last_refresh`` is 8 days old; credrot
    sees that coming and lets one caller do it (the refresh lease)."""
    mock = setup.mock
    cred = mock.add_account("aged", last_refresh=time.time() - 9 * 86400)
    acct = mock.account("aged")
    acct.access_token = cred["tokens"]["access_token"] = f"{mock.book.token_prefix}-opaque"
    manager = setup.pool(cred)
    assert CODEX.expiry(cred) == pytest.approx(time.time() - 86400, abs=60)
    wrapper, _ = setup.wrapper(manager)
    result = wrapper.call(PROMPT)
    assert result.success, result.error
    assert acct.refreshed == 1
    assert slot_json(manager, 1)["tokens"]["refresh_token"] == acct.refresh_token


def test_refresh_by_hand_writes_beside_the_link_target(setup: Setup) -> None:
    """``codex`` typed by hand on the pool's home: its refresh resolves credrot's link,
    writes temp + rename beside the account's slot, and the link survives; credrot's
    next call starts from that token instead of the spent one."""
    mock = setup.mock
    manager = setup.pool(mock.add_account("mine", expires_in=-60), mock.add_account("other"))
    link = setup.pool_home / "auth.json"
    slot = manager.slot_path(1)
    assert link.is_symlink() and link.resolve() == slot.resolve()
    inode = slot.stat().st_ino
    env = {**setup.env(), "CODEX_HOME": str(setup.pool_home)}
    run = run_tool(
        CODEX.argv(), stdin=PROMPT.encode(), env=env, timeout=60.0, cwd=str(setup.workdir)
    )
    assert run.exit_code == 0 and run.stdout == "Mock answer from mine.\n", run.stderr[-800:]
    acct = mock.account("mine")
    assert acct.refreshed == 1
    assert link.is_symlink() and link.resolve() == slot.resolve()
    assert slot.stat().st_ino != inode  # a new file: temp + rename, not written in place
    assert slot.stat().st_mode & 0o777 == 0o600
    assert slot_json(manager, 1)["tokens"]["refresh_token"] == acct.refresh_token
    assert (slot.parent / f"{slot.name}.lock").exists()  # codex's lock beside the target
    wrapper, _ = setup.wrapper(manager)
    assert wrapper.call(PROMPT).success
    assert acct.refreshed == 1 and not acct.revoked


def test_parallel_callers_spend_each_refresh_token_once(setup: Setup) -> None:
    """Six processes, two accounts whose access tokens have expired: codex's refresh
    tokens are single-use (a replay revokes the account), so an account is refreshed by
    one caller at most and every other caller starts from the token it got."""
    mock = setup.mock
    manager = setup.pool(
        mock.add_account("left", expires_in=-60), mock.add_account("right", expires_in=-60)
    )
    results = run_callers(setup, 6)
    assert all(r["success"] for r in results), results
    for name in ("left", "right"):
        acct = mock.account(name)
        assert not acct.revoked, f"{name}: a spent refresh token was presented"
        assert acct.refreshed <= 1, f"{name} refreshed {acct.refreshed} times"
    assert sum(mock.account(n).refreshed for n in ("left", "right")) >= 1
    assert not [h for h in mock.refreshes() if h.status != 200]
    for index, name in ((1, "left"), (2, "right")):
        acct = mock.account(name)
        if acct.refreshed:
            assert slot_json(manager, index)["tokens"]["refresh_token"] == acct.refresh_token
    assert_no_secret(mock.secrets(), *(json.dumps(r) for r in results))
