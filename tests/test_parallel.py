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
from typing import cast

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


# ------------------------------------------------------------ in-flight spreading
#: One caller process that also reports every attempt: (account, outcome, when the
#: tool started, when credrot had settled it), one JSON line each.
SPREAD_DRIVER = """
import json, sys, time
from credrot.wrapper import Wrapper
home, calls = sys.argv[1], int(sys.argv[2])
w = Wrapper("qwen", home=home, timeout=60, max_retries=6, backoff="none")
def seen(index, run, outcome):
    now = time.time()
    start = now - (run.duration if run is not None else 0.0)
    print(json.dumps({"attempt": index, "kind": outcome.kind.value, "start": start,
                      "settled": now}), flush=True)
w.on_attempt = seen
for n in range(calls):
    r = w.call(f"question {n}")
    print(json.dumps({"ok": r.success, "account": r.account, "error": r.error}), flush=True)
"""


def test_parallel_callers_spread_over_the_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 processes x 6 overlapping calls on 4 accounts of 10 quota each, default
    strategy: all 40 units are served, few tool runs meet a spent account, and no tool
    run starts on an account more than a second after credrot knew it was spent."""
    procs, calls, accounts, quota = 8, 6, 4, 10
    pool = SimPool(tmp_path, monkeypatch)
    for _ in range(accounts):
        pool.add(quota=quota, latency=0.2)
    script = pool.root / "spread.py"
    script.write_text(SPREAD_DRIVER)
    running = [
        subprocess.Popen(
            [sys.executable, str(script), str(pool.home), str(calls)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    lines: list[dict[str, object]] = []
    for proc in running:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        lines += [json.loads(line) for line in out.splitlines()]
    results = [r for r in lines if "ok" in r]
    attempts = [a for a in lines if "attempt" in a]
    assert len(results) == procs * calls
    assert sum(1 for r in results if r["ok"]) == accounts * quota
    assert sum(pool.backend.used(f"acct{i}") for i in range(1, accounts + 1)) == 40
    spent_runs = [c for c in pool.backend.calls() if c["outcome"] == "quota"]
    # Two calls in flight per account when they run out together (8; the benchmark holds
    # that target, 6-9 measured), plus on a loaded machine the few calls that start in
    # the moment between an account running out and its caller telling credrot; all
    # callers on one account make about 20.
    assert len(spent_runs) <= 3 * accounts, [c["account"] for c in spent_runs]
    for index in range(1, accounts + 1):
        mine = [a for a in attempts if a["attempt"] == index]
        knew = min(float(str(a["settled"])) for a in mine if a["kind"] == "quota_exhausted")
        late = [float(str(a["start"])) - knew for a in mine if float(str(a["start"])) > knew + 1]
        assert late == [], f"account {index}: runs started {late} s after it was known spent"


# ------------------------------------------------------------------ killed callers
#: A caller that is killed with SIGKILL mid-call; argv[3] == "nodeathsig" runs the tool
#: as a platform without the parent-death signal would (the tool outlives its caller).
KILLED_DRIVER = """
import sys
import credrot.deathsig as deathsig
from credrot.wrapper import Wrapper
if sys.argv[3] == "nodeathsig":
    deathsig.LAUNCHER.broken = True
    deathsig.PDEATHSIG.available = False
Wrapper(sys.argv[1], home=sys.argv[2], timeout=120).call("hi")
"""


FIX = ("doctor", "--fix")


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rpartition(b")")[2].split()[0] != b"Z"


def _until(check: object, what: str) -> None:
    for _ in range(1500):
        if callable(check) and check():
            return
        time.sleep(0.02)
    raise AssertionError(what)


def _call_homes(pool: SimPool) -> list[Path]:
    run_dir = pool.home / ".credrot-run"
    return [p for p in run_dir.iterdir() if p.name[0].isdigit()] if run_dir.exists() else []


def _kill_mid_refresh(pool: SimPool, gate: Path, mode: str) -> int:
    """Start a caller whose tool refreshes the expired token and then waits at the
    gate; kill -9 the caller. Returns the tool's pid."""
    script = pool.root / "killed.py"
    script.write_text(KILLED_DRIVER)
    pool.backend.set("acct1", gate=str(gate))
    caller = subprocess.Popen([sys.executable, str(script), pool.tool, str(pool.home), mode])
    _wait_for_calls(pool.backend, 1)
    pool.backend.set("acct1", gate=None)
    assert pool.backend.calls()[0]["refreshed"]
    caller.kill()
    caller.wait()
    return int(pool.backend.calls()[0]["pid"])


def test_a_killed_callers_tool_dies_with_it_and_its_token_reaches_the_slot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of a caller whose tool has just refreshed a single-use token: the tool
    dies with its caller, and the next call starts from the refreshed token (one
    refresh in all, nothing revoked)."""
    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    pool.add(expired=True)
    tool = _kill_mid_refresh(pool, tmp_path / "gate", "deathsig")
    _until(lambda: not _running(tool), "the tool outlived its killed caller")
    out, err = _start_caller(pool).communicate(timeout=60)
    assert json.loads(out)["ok"], err
    assert pool.token_in_slot(1) == pool.backend.latest_token("acct1")
    assert int(str(pool.backend.account("acct1")["refreshes"])) == 1
    assert not pool.backend.account("acct1").get("revoked")
    assert _call_homes(pool) == []


def test_a_call_home_is_not_reaped_while_a_killed_callers_tool_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the parent-death signal the tool outlives its killed caller: its call
    home stays while it runs, yet the token it refreshed reaches the slot at once, so
    the next caller neither reuses the spent refresh token nor loses the account; once
    the tool is gone the home is reaped."""
    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    pool.add(expired=True)
    gate = tmp_path / "gate"
    tool = _kill_mid_refresh(pool, gate, "nodeathsig")
    assert _running(tool)
    try:
        out, err = _start_caller(pool).communicate(timeout=60)
        assert json.loads(out)["ok"], err
        assert _running(tool)
        assert len(_call_homes(pool)) == 1  # the live tool's home is still there
        assert pool.token_in_slot(1) == pool.backend.latest_token("acct1")
        assert not pool.backend.account("acct1").get("revoked")
    finally:
        gate.touch()
    _until(lambda: not _running(tool), "the tool did not finish")
    done = subprocess.run(
        [sys.executable, "-m", "credrot", "--tool", "claude", "--home", str(pool.home), *FIX],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert CANARY not in done.stdout + done.stderr
    assert _call_homes(pool) == []
    assert int(str(pool.backend.account("acct1")["refreshes"])) == 1
    assert not pool.backend.account("acct1").get("revoked")


# ------------------------------------------------------------ a slot that cannot be written
#: One call; prints whether it was answered and the result's warnings.
WARN_DRIVER = """
import json, sys
from credrot.wrapper import Wrapper
r = Wrapper(sys.argv[1], home=sys.argv[2], timeout=60, backoff="none").call("hi")
print(json.dumps({"ok": r.success, "error": r.error, "warnings": r.warnings}))
"""


def _immutable(path: Path, on: bool) -> bool:
    """``chattr +i`` (or ``-i``): even root cannot create or rename files in ``path``."""
    try:
        done = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
    except FileNotFoundError:
        return False
    return done.returncode == 0


def _one_call(pool: SimPool) -> dict[str, object]:
    script = pool.root / "warn.py"
    script.write_text(WARN_DRIVER)
    done = subprocess.run(
        [sys.executable, str(script), pool.tool, str(pool.home)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert CANARY not in done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_refreshed_token_its_slot_cannot_take_is_kept_and_written_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The accounts folder cannot be written (immutable): a token the tool refreshed is
    kept in a named file, the result says where, the next call starts from it (the
    slot's single-use refresh token is spent), and `doctor --fix` writes it back."""
    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    pool.add(expired=True)
    before = pool.token_in_slot(1)
    folder = pool.home / "accounts"
    if not _immutable(folder, True):
        pytest.skip("chattr +i is not available here")
    try:
        first = _one_call(pool)
        assert first["ok"], first
        warnings = cast("list[str]", first["warnings"])
        assert len(warnings) == 1 and "could not be written to its slot" in warnings[0]
        kept = sorted((pool.home / ".credrot-run").glob("kept-1-*"))
        assert len(kept) == 1 and str(kept[0]) in warnings[0]
        assert kept[0].stat().st_mode & 0o777 == 0o600
        assert pool.backend.latest_token("acct1") in kept[0].read_text()
        assert pool.token_in_slot(1) == before
        second = _one_call(pool)  # starts from the kept token: no second refresh
        assert second["ok"], second
        assert int(str(pool.backend.account("acct1")["refreshes"])) == 1
        doctor = _doctor(pool, "doctor")
        assert "account #1: a refreshed token could not be written" in doctor.stdout
    finally:
        _immutable(folder, False)
    fixed = _doctor(pool, *FIX)
    assert CANARY not in fixed.stdout + fixed.stderr
    assert pool.token_in_slot(1) == pool.backend.latest_token("acct1") != before
    assert list((pool.home / ".credrot-run").glob("kept-*")) == []
    assert not pool.backend.account("acct1").get("revoked")
    assert _one_call(pool)["ok"]
    assert int(str(pool.backend.account("acct1")["refreshes"])) == 1


def _doctor(pool: SimPool, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "credrot", "--tool", pool.tool, "--home", str(pool.home), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


# ------------------------------------------------------------------------ fencing
def _claude_cred(access: str, refresh: str, expires_ms: int) -> bytes:
    oauth = {"accessToken": access, "refreshToken": refresh, "expiresAt": expires_ms}
    return json.dumps({"claudeAiOauth": {**oauth, "scopes": ["user:inference"]}}).encode()


def test_a_write_back_never_overwrites_a_newer_generation_with_an_older_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls A and B start on account 1 at the same generation, in this order:
    B writes back the token its tool refreshed (T1); A then brings back its copy of
    the token it started from, written differently; a later call refreshes again (T2);
    then a dead home's copy of T1 comes back with a later expiry stamped on it, and
    the pointer file is replaced by T1 by hand. The slot keeps T2 each time; only a
    credential really newer than T2 (later expiry, tokens never held) replaces it."""
    from credrot.kinds import Outcome

    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    pool.add()
    manager = pool.manager
    soon = int(time.time() * 1000) + 3_600_000
    a, b = manager.lease(), manager.lease()
    assert a is not None and b is not None and a.generation == b.generation
    t0 = json.loads(a.raw)["claudeAiOauth"]
    t1 = _claude_cred(f"{CANARY}-access-1", f"{CANARY}-refresh-1", soon + 1000)
    manager.settle(b, Outcome.success(), t1)
    assert pool.token_in_slot(1) == f"{CANARY}-access-1"
    again = _claude_cred(t0["accessToken"], t0["refreshToken"], int(t0["expiresAt"]))
    assert again != a.raw  # the tool rewrote the file: same tokens, other bytes
    manager.settle(a, Outcome.success(), again)
    assert pool.token_in_slot(1) == f"{CANARY}-access-1"
    c = manager.lease()
    assert c is not None and c.generation == a.generation + 1
    t2 = _claude_cred(f"{CANARY}-access-2", f"{CANARY}-refresh-2", soon + 2000)
    manager.settle(c, Outcome.success(), t2)
    stale = _claude_cred(f"{CANARY}-access-1", f"{CANARY}-refresh-1", soon + 9000)
    assert not manager.write_back(1, b"", stale)  # later expiry, but tokens it held
    assert pool.token_in_slot(1) == f"{CANARY}-access-2"
    pointer = pool.home / ".credentials.json"
    pointer.unlink()
    pointer.write_bytes(stale)
    assert manager.switch_to(1) == 1  # adopts the pointer file first
    assert pool.token_in_slot(1) == f"{CANARY}-access-2"
    assert list((pool.home / "backups").glob("older-1-*"))
    t3 = _claude_cred(f"{CANARY}-access-3", f"{CANARY}-refresh-3", soon + 3000)
    assert manager.write_back(1, b"", t3)
    assert pool.token_in_slot(1) == f"{CANARY}-access-3"
    assert CANARY not in (pool.home / "state.yaml").read_text()


# ------------------------------------------------------------------- pytest-xdist
def test_xdist_workers_on_expired_single_use_tokens_all_answer(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``pytest -n 4`` through the plugin, 16 tests on 3 claude accounts whose access
    tokens have expired: every test is answered, each account refreshed at most once,
    none revoked."""
    pool = _pool(tmp_path, "claude", monkeypatch, expired=True)
    pytester.makeini(f"[pytest]\ncredrot_home = {pool.home}\ncredrot_tool = claude\n")
    pytester.makepyfile(
        test_many="""
        import pytest

        @pytest.mark.parametrize("i", range(16))
        def test_call(credrot_wrapper, i):
            result = credrot_wrapper().call(f"question {i}")
            assert result.success, result.error
        """
    )
    result = pytester.runpytest_subprocess("-n", "4", "-p", "xdist")
    result.assert_outcomes(passed=16)
    assert _refreshes(pool.backend) <= ACCOUNTS
    assert _revoked(pool.backend) == []
    assert CANARY not in "\n".join(result.outlines + result.errlines)


def test_a_refreshed_token_with_nowhere_to_go_is_kept_in_memory_until_it_can_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the accounts folder nor the call-home base can be written: the refreshed
    token stays in the calling process's memory, the result says so, the next call of
    that process starts from it, and the first call after the folder is writable
    again writes it to its slot."""
    from credrot.wrapper import Wrapper

    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    pool.add(expired=True)
    before = pool.token_in_slot(1)
    folders = [pool.home / "accounts", pool.home / ".credrot-run"]
    folders[1].mkdir(mode=0o700)
    if not all(_immutable(f, True) for f in folders):
        for f in folders:
            _immutable(f, False)
        pytest.skip("chattr +i is not available here")
    wrapper = Wrapper("claude", home=pool.home, timeout=60, backoff="none")
    try:
        first = wrapper.call("hi")
        assert first.success, first.error
        assert len(first.warnings) == 1
        assert f"kept in the memory of process {os.getpid()} only" in first.warnings[0]
        assert CANARY not in first.warnings[0]
        assert pool.token_in_slot(1) == before
        second = wrapper.call("again")
        assert second.success, second.error
        assert second.warnings == []
        assert int(str(pool.backend.account("acct1")["refreshes"])) == 1
    finally:
        for f in folders:
            _immutable(f, False)
    third = wrapper.call("once more")
    assert third.success, third.error
    assert pool.token_in_slot(1) == pool.backend.latest_token("acct1") != before
    assert wrapper.manager.kept_tokens() == []
    assert int(str(pool.backend.account("acct1")["refreshes"])) == 1
    assert not pool.backend.account("acct1").get("revoked")


def test_spreading_leaves_a_lone_caller_on_the_strategy_s_choice() -> None:
    """With no other call in flight the strategy's choice stands (fill-first keeps its
    meaning); with calls in flight a caller goes where fewest are, or where as many are
    but fewer calls were made today (so the accounts run out together), and never to an
    account that is not usable."""
    from credrot.pool.select import relieve

    order = [1, 2, 3, 4]
    calls = {1: 9, 2: 5, 3: 2, 4: 0}

    def pick(flying: dict[int, int], usable: frozenset[int] = frozenset(order)) -> int:
        return relieve(
            order, usable.__contains__, flying, lambda i: (calls[i],), chosen=1, exclude=()
        )

    assert pick({}) == 1
    assert pick({2: 1}) == 1  # the chosen account carries none
    assert pick({1: 1, 2: 1, 3: 1, 4: 1}) == 4  # as many in flight: the least used
    calls[1] = 0
    assert pick({1: 1, 2: 1, 3: 1, 4: 1}) == 1  # nowhere lighter: the choice stands
    calls[1] = 9
    assert pick({1: 2, 2: 1, 3: 1, 4: 2}) == 3  # fewest in flight, then fewest calls
    assert pick({1: 2, 2: 1, 3: 1, 4: 2}, frozenset({1, 2, 4})) == 2
    assert pick({1: 1}, frozenset({1})) == 1
