"""Which state writes wait for the disk: a call that only counts does not fsync the state
file; one that marks an account spent or moves the pool does.

Each call is a real process (the wrapper on the simulator) traced with ``strace``, so the
system calls counted are the ones the user's process makes; the state file is then read
back to show that what was written without fsync is there all the same.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from simpool import SimPool

STRACE = shutil.which("strace")

CALL = """
import sys
from credrot.manager import AccountManager
from credrot.wrapper import Wrapper
result = Wrapper(manager=AccountManager(home=sys.argv[1])).call("hello")
print(result.success, result.account)
"""


def _strace_works() -> bool:
    if STRACE is None:
        return False
    done = subprocess.run([STRACE, "-qq", "-o", os.devnull, "true"], check=False)
    return done.returncode == 0


pytestmark = pytest.mark.skipif(not _strace_works(), reason="needs a working strace")


def traced_call(pool: SimPool, log: Path) -> tuple[str, list[str]]:
    """One wrapper call in a new process: (its output, the files it fsynced)."""
    assert STRACE is not None
    argv = [STRACE, "-f", "-qq", "-y", "-e", "trace=fsync,fdatasync", "-e", "signal=none"]
    done = subprocess.run(
        [*argv, "-o", str(log), sys.executable, "-c", CALL, str(pool.home)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    synced = [line.split("<", 1)[1].split(">", 1)[0] for line in log.read_text().splitlines()]
    return done.stdout.strip(), synced


def state_syncs(synced: list[str]) -> list[str]:
    return [path for path in synced if Path(path).name.startswith(".state.yaml.")]


def accounts(pool: SimPool) -> dict[str, dict[str, object]]:
    text = (pool.home / "state.yaml").read_text()
    data: dict[str, dict[str, object]] = json.loads(text)["accounts"]
    return data


def test_a_counting_call_skips_fsync_a_spent_account_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = SimPool(tmp_path, monkeypatch)
    pool.add("first", quota=1)
    pool.add("second")

    out, synced = traced_call(pool, tmp_path / "one.trace")
    assert out == "True 1"
    assert state_syncs(synced) == []
    first = accounts(pool)["1"]
    assert (first["status"], first["calls"], first["successes"]) == ("ready", 1, 1)

    # account 1 is now out of quota: marked spent, the pool moves to 2, which answers
    out, synced = traced_call(pool, tmp_path / "two.trace")
    assert out == "True 2"
    assert state_syncs(synced), f"no fsync of the state file among {synced}"
    after = accounts(pool)
    assert after["1"]["status"] == "exhausted"
    assert after["2"]["successes"] == 1
    assert json.loads((pool.home / "state.yaml").read_text())["current"] == 2

    # a further success on account 2 only counts again
    out, synced = traced_call(pool, tmp_path / "three.trace")
    assert out == "True 2"
    assert state_syncs(synced) == []
    assert accounts(pool)["2"]["successes"] == 2
