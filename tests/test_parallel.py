"""Parallel callers on accounts with single-use refresh tokens: real processes of the
simulator and of credrot, sharing a backend, a pool and its locks.

The numbers are the ones a user sees: how many calls were answered, how many refreshes
the provider served, whether it revoked an account.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from creds import CANARY, canary_leaks
from simpool import SimPool

from credrot.kinds import AccountStatus
from credrot.manager import AccountInfo, AccountManager
from credrot_sim import SimBackend, install

PROCS, CALLS, ACCOUNTS = 8, 3, 3
#: The argv of one headless call of each simulated tool (the prompt on stdin).
ARGV = {
    "qwen": ["qwen"],
    "claude": ["claude", "-p"],
    "codex": ["codex", "exec", "--skip-git-repo-check", "-"],
}
HOME_ENV = {"qwen": "QWEN_HOME", "claude": "CLAUDE_CONFIG_DIR", "codex": "CODEX_HOME"}
CRED_FILE = {"qwen": "oauth_creds.json", "claude": ".credentials.json", "codex": "auth.json"}


def _backend(tmp_path: Path, tool: str) -> tuple[SimBackend, Path, list[dict[str, object]]]:
    backend = SimBackend(tmp_path / "backend")
    bin_dir = tmp_path / "bin"
    install(bin_dir, backend.root, tools=(tool,))
    creds = [
        backend.add_account(f"acct{i}", tool=tool, expired=True) for i in range(1, ACCOUNTS + 1)
    ]
    return backend, bin_dir, creds


def _bare_cli_round(tool: str, bin_dir: Path, homes: list[Path]) -> list[int]:
    """PROCS shells at once, each running the bare CLI CALLS times, call j of shell p
    in home (p + j) % len(homes): every home is shared by several processes."""
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    argv = " ".join(ARGV[tool])
    procs = []
    for p in range(PROCS):
        script = "; ".join(
            f"echo hi | {HOME_ENV[tool]}={homes[(p + j) % len(homes)]} {argv} >/dev/null"
            " 2>&1; echo $?"
            for j in range(CALLS)
        )
        procs.append(subprocess.Popen(["sh", "-c", script], env=env, stdout=subprocess.PIPE))
    codes: list[int] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        codes += [int(line) for line in out.split()]
    return codes


def _refreshes(backend: SimBackend) -> int:
    return sum(int(str(backend.account(f"acct{i}")["refreshes"])) for i in range(1, ACCOUNTS + 1))


def _revoked(backend: SimBackend) -> list[str]:
    names = [f"acct{i}" for i in range(1, ACCOUNTS + 1)]
    return [n for n in names if backend.account(n).get("revoked")]


@pytest.mark.parametrize("tool", ["claude", "codex"])
def test_bare_cli_sharing_one_home_refreshes_once_per_account(tmp_path: Path, tool: str) -> None:
    """The baseline: the genuine CLI locks its home and re-reads the credential before
    refreshing, so processes sharing a home spend each refresh token once."""
    backend, bin_dir, creds = _backend(tmp_path, tool)
    homes = []
    for i, cred in enumerate(creds, 1):
        home = tmp_path / f"home{i}"
        home.mkdir()
        (home / CRED_FILE[tool]).write_text(json.dumps(cred, indent=2))
        homes.append(home)
    codes = _bare_cli_round(tool, bin_dir, homes)
    assert codes == [0] * (PROCS * CALLS)
    assert _refreshes(backend) == ACCOUNTS
    assert _revoked(backend) == []


@pytest.mark.parametrize("tool", ["claude", "codex"])
def test_a_reused_refresh_token_revokes_the_account(tmp_path: Path, tool: str) -> None:
    """Two copies of one expired credential in two homes: the second refresh presents a
    spent token, the CLI says so and the provider revokes the whole account."""
    backend, bin_dir, creds = _backend(tmp_path, tool)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    runs = []
    for copy in ("a", "b", "a"):
        home = tmp_path / f"copy-{copy}"
        home.mkdir(exist_ok=True)
        if not (home / CRED_FILE[tool]).exists():
            (home / CRED_FILE[tool]).write_text(json.dumps(creds[0], indent=2))
        runs.append(
            subprocess.run(
                ARGV[tool],
                input=b"hi",
                env={**env, HOME_ENV[tool]: str(home)},
                capture_output=True,
                timeout=60,
            )
        )
    first, reused, after = runs
    assert first.returncode == 0
    assert reused.returncode == 1
    said = (reused.stdout + reused.stderr).decode()
    if tool == "codex":
        assert "refresh token was already used. Please log out and sign in again." in said
    else:
        assert "could not be refreshed" in said
    assert _revoked(backend) == ["acct1"]
    # revoked means every token: the copy the first call refreshed is dead too
    assert after.returncode == 1


def test_qwen_refresh_tokens_are_not_single_use(tmp_path: Path) -> None:
    """Qwen keeps its refresh token across refreshes: two copies both refresh, nothing
    is revoked (the cost there is only the extra refreshes)."""
    backend, bin_dir, creds = _backend(tmp_path, "qwen")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for copy in ("a", "b"):
        home = tmp_path / f"copy-{copy}"
        home.mkdir()
        (home / "oauth_creds.json").write_text(json.dumps(creds[0], indent=2))
        run = subprocess.run(
            ["qwen"], input=b"hi", env={**env, "QWEN_HOME": str(home)}, capture_output=True
        )
        assert run.returncode == 0, run.stderr
    assert int(str(backend.account("acct1")["refreshes"])) == 2
    assert _revoked(backend) == []


# ------------------------------------------------------------- through credrot
#: One caller process: CALLS calls through the Wrapper, one JSON line per result.
DRIVER = """
import json, sys
from credrot.wrapper import Wrapper
tool, home, calls, strategy = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
w = Wrapper(tool, home=home, timeout=60, max_retries=4, strategy=strategy, backoff="none")
for n in range(calls):
    r = w.call(f"question {n}")
    print(json.dumps({"ok": r.success, "account": r.account, "error": r.error,
                      "output": r.output, "stderr": r.stderr}), flush=True)
"""


def _pool(tmp_path: Path, tool: str, monkeypatch: pytest.MonkeyPatch, **sim: object) -> SimPool:
    pool = SimPool(tmp_path, monkeypatch, tool=tool)
    for _ in range(ACCOUNTS):
        pool.add(**sim)  # type: ignore[arg-type]
    return pool


def _callers(
    pool: SimPool, procs: int, calls: int, strategy: str = "fill-first"
) -> tuple[list[dict[str, object]], str]:
    """``procs`` real caller processes at once; (every result, everything they printed)."""
    script = pool.root / "driver.py"
    script.write_text(DRIVER)
    running = [
        subprocess.Popen(
            [sys.executable, str(script), pool.tool, str(pool.home), str(calls), strategy],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    results: list[dict[str, object]] = []
    printed = ""
    for proc in running:
        out, err = proc.communicate(timeout=300)
        printed += out + err
        assert proc.returncode == 0, err
        results += [json.loads(line) for line in out.splitlines()]
    return results, printed


@pytest.mark.parametrize("tool", ["qwen", "claude", "codex"])
def test_parallel_callers_on_expired_tokens_refresh_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tool: str
) -> None:
    """8 processes x 3 calls on 3 accounts whose access tokens have expired: every call
    is answered, each account is refreshed at most once, none is revoked."""
    pool = _pool(tmp_path, tool, monkeypatch, expired=True)
    results, printed = _callers(pool, PROCS, CALLS)
    assert [r["ok"] for r in results] == [True] * (PROCS * CALLS), results
    assert _refreshes(pool.backend) <= ACCOUNTS
    assert _revoked(pool.backend) == []
    assert CANARY not in printed
    assert canary_leaks(pool.home) == []


# -------------------------------------------------------------- ordered marks
def _status(pool: SimPool, index: int) -> AccountInfo:
    fresh = AccountManager(tool=pool.tool, home=pool.home)
    return next(a for a in fresh.list_accounts() if a.index == index)


def _start_caller(pool: SimPool, strategy: str = "fill-first") -> subprocess.Popen[str]:
    script = pool.root / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen(
        [sys.executable, str(script), pool.tool, str(pool.home), "1", strategy],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_calls(backend: SimBackend, n: int) -> None:
    for _ in range(3000):
        if len(backend.calls()) >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"the simulator never saw {n} calls")


def test_a_success_that_started_before_a_quota_mark_does_not_clear_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caller A starts on account 1 and is held (a gate file) after its tool was served;
    caller C is held the same way on account 2, so both carry one call in flight;
    caller B then finds account 1 spent and moves on; A's success arrives last. The
    account stays spent, and the next round-robin call spends no tool run on it."""
    pool = SimPool(tmp_path, monkeypatch)
    gate, gate2 = tmp_path / "gate", tmp_path / "gate2"
    pool.add(quota=1)
    pool.add()
    pool.backend.set("acct1", gate=str(gate))
    first = _start_caller(pool)
    _wait_for_calls(pool.backend, 1)  # A's call was served and waits at the gate
    pool.backend.set("acct1", gate=None)
    pool.backend.set("acct2", gate=str(gate2))
    other = _start_caller(pool)
    _wait_for_calls(pool.backend, 2)  # C runs on account 2, the one with none in flight
    pool.backend.set("acct2", gate=None)
    second = _start_caller(pool)
    out, err = second.communicate(timeout=60)
    assert json.loads(out)["account"] == 2, err
    assert _status(pool, 1).status is AccountStatus.EXHAUSTED
    gate.touch()
    out, err = first.communicate(timeout=60)
    assert json.loads(out) | {"output": ""} == {
        "ok": True,
        "account": 1,
        "error": None,
        "output": "",
        "stderr": "",
    }, err
    gate2.touch()
    assert json.loads(other.communicate(timeout=60)[0])["account"] == 2
    assert _status(pool, 1).status is AccountStatus.EXHAUSTED
    third = _start_caller(pool, "round-robin")
    out, _ = third.communicate(timeout=60)
    assert json.loads(out)["account"] == 2
    calls = [c["account"] for c in pool.backend.calls()]
    assert calls == ["acct1", "acct2", "acct1", "acct2", "acct2"]


def test_a_success_that_started_after_the_mark_clears_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: a mark whose deadline passed, then a call that started after it
    succeeds on the account: the mark is cleared."""
    pool = SimPool(tmp_path, monkeypatch)
    pool.add()
    pool.add()
    soon = datetime.now(timezone.utc) + timedelta(seconds=0.3)
    pool.manager.mark(1, "exhausted", until=soon)
    time.sleep(0.4)
    out, _ = _start_caller(pool).communicate(timeout=60)
    assert json.loads(out)["account"] == 1
    state = json.loads((pool.home / "state.yaml").read_text())
    assert state["accounts"]["1"]["status"] == "ready"


def test_a_second_quota_mark_keeps_the_later_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Caller A is told account 1 resets in an hour and is held before it reports;
    caller C is held on account 2 (so both carry a call in flight); caller B is told
    five hours on account 1 and reports first. A's report keeps B's later reset."""
    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    gate, gate2 = tmp_path / "gate", tmp_path / "gate2"
    pool.add(quota=0, resets_in=3600)
    pool.add()
    pool.backend.set("acct1", gate=str(gate))
    first = _start_caller(pool)
    _wait_for_calls(pool.backend, 1)
    pool.backend.set("acct1", gate=None, resets_in=5 * 3600)
    pool.backend.set("acct2", gate=str(gate2))
    other = _start_caller(pool)
    _wait_for_calls(pool.backend, 2)
    pool.backend.set("acct2", gate=None)
    out, _ = _start_caller(pool).communicate(timeout=60)
    assert json.loads(out)["account"] == 2
    late = _status(pool, 1).until
    assert late is not None
    assert late > datetime.now(timezone.utc) + timedelta(hours=4)
    gate.touch()
    out, _ = first.communicate(timeout=60)
    assert json.loads(out)["account"] == 2  # A moved on too
    assert _status(pool, 1).until == late
    gate2.touch()
    assert json.loads(other.communicate(timeout=60)[0])["account"] == 2
