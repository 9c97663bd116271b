"""``credrot store push|pull|status|keygen`` against a real server: a pool moved into the
store and into another machine's home, nothing counted twice, a newer credential never
replaced, and no token in any output or in the store."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import redis
from creds import CANARY
from cryptography.fernet import Fernet
from redisserver import RedisServer, dump, redis_server

from credrot.cli import main
from credrot.manager import AccountManager
from credrot.remote import leases
from credrot.remote.scripts import Keys

__all__ = ["redis_server"]

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def go(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert CANARY not in out + err
        assert "Traceback" not in err
        return code, out, err

    return go


def store_json(run: Run, home: Path, url: str, *argv: str) -> Any:
    code, out, err = run("--home", str(home), "--store", url, "store", *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def slot(home: Path, index: int) -> bytes:
    return (home / "accounts" / f"oauth_creds_{index}.json").read_bytes()


def test_push_then_pull_moves_a_pool_to_another_machine(
    tmp_path: Path, redis_server: RedisServer, run: Run, make_cred: Callable[..., bytes]
) -> None:
    here, there = tmp_path / "here", tmp_path / "new-machine" / ".qwen"  # not made yet
    pool = AccountManager(home=here)
    pool.import_account(make_cred(1))
    pool.import_account(make_cred(2))
    until = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=3)
    pool.mark(2, "exhausted", until=until, reason="quota spent")
    url = redis_server.url
    pushed = store_json(run, here, url, "push")
    assert [(a["account"], a["credential"], a["generation"]) for a in pushed["accounts"]] == [
        (1, "created", 1),
        (2, "created", 1),
    ]
    again = store_json(run, here, url, "push")  # nothing is counted or stored twice
    assert [a["credential"] for a in again["accounts"]] == ["same", "same"]
    status = store_json(run, here, url, "status")
    assert [(a["account"], a["generation"], a["status"]) for a in status["accounts"]] == [
        (1, 1, "ready"),
        (2, 1, "exhausted"),
    ]
    assert status["keys"]["credential"] == "credrot:qwen:cred:<n>"
    pulled = store_json(run, there, url, "pull")
    assert [a["credential"] for a in pulled["accounts"]] == ["taken", "taken"]
    for i in (1, 2):
        assert slot(there, i) == slot(here, i)
        assert stat.S_IMODE((there / "accounts" / f"oauth_creds_{i}.json").stat().st_mode) == 0o600
    seen = {a.index: a for a in AccountManager(home=there).list_accounts()}
    assert (seen[2].status.value, seen[2].until) == ("exhausted", until)
    assert os.readlink(there / "oauth_creds.json") == "accounts/oauth_creds_1.json"
    blob = dump(redis_server)
    assert CANARY.encode() not in blob and b"refresh_token" not in blob


def test_counters_and_windows_are_pushed_once_and_pulled_back(
    tmp_path: Path, redis_server: RedisServer, run: Run, make_cred: Callable[..., bytes]
) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    there.mkdir()
    pool = AccountManager(home=here)
    pool.import_account(make_cred(1))
    text = json.loads((here / "state.yaml").read_text())
    deadline = datetime.now(timezone.utc).timestamp() + 7200
    text["accounts"]["1"].update(
        calls=7, successes=6, windows={"week": {"until": deadline, "seen": deadline - 10}}
    )
    (here / "state.yaml").write_text(json.dumps(text))
    url = redis_server.url
    for _ in range(2):
        store_json(run, here, url, "push")
    assert store_json(run, here, url, "status")["accounts"][0]["calls"] == 7
    store_json(run, there, url, "pull")
    got = json.loads((there / "state.yaml").read_text())["accounts"]["1"]
    assert (got["calls"], got["successes"]) == (7, 6)
    assert got["windows"]["week"]["until"] == deadline


def test_pull_never_overwrites_a_newer_credential(
    tmp_path: Path, redis_server: RedisServer, run: Run, make_cred: Callable[..., bytes]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    b.mkdir()
    AccountManager(home=a).import_account(make_cred(1))
    url = redis_server.url
    store_json(run, a, url, "push")
    store_json(run, b, url, "pull")
    # B's tool refreshed the token while B was cut off from the store
    (b / "accounts" / "oauth_creds_1.json").write_bytes(make_cred(1, version=1))
    kept = store_json(run, b, url, "pull")["accounts"][0]
    assert (kept["credential"], kept["generation"]) == ("kept-local", 1)
    assert slot(b, 1) == make_cred(1, version=1)
    assert store_json(run, b, url, "push")["accounts"][0]["generation"] == 2
    # A pushes its stale copy: refused, the store keeps generation 2
    stale = store_json(run, a, url, "push")["accounts"][0]
    assert (stale["credential"], stale["generation"]) == ("kept-store", 2)
    taken = store_json(run, a, url, "pull")["accounts"][0]
    assert (taken["credential"], taken["generation"]) == ("taken", 2)
    assert slot(a, 1) == make_cred(1, version=1)
    assert [p.read_bytes() for p in (a / "backups").iterdir()] == [make_cred(1)]
    # a machine that never synced, holding a copy that expires later, keeps it too
    c = tmp_path / "c"
    AccountManager(home=c).import_account(make_cred(1, version=5))
    assert store_json(run, c, url, "pull")["accounts"][0]["credential"] == "kept-local"
    assert slot(c, 1) == make_cred(1, version=5)


def test_status_shows_calls_in_flight_and_who_holds_a_refresh(
    tmp_path: Path, redis_server: RedisServer, run: Run, make_cred: Callable[..., bytes]
) -> None:
    home = tmp_path / "home"
    AccountManager(home=home).import_account(make_cred(1))
    url = redis_server.url
    store_json(run, home, url, "push")
    client = redis.Redis(port=redis_server.port)
    keys = Keys("credrot", "qwen")
    leases.begin(client, keys, 1, "call-1", 60_000)
    held = leases.take_refresh(client, keys, 1, 60_000, holder="runner-7:4242:ab")
    assert held is not None
    row = store_json(run, home, url, "status")["accounts"][0]
    assert (row["in_flight"], row["refreshing"], row["fence"]) == (1, "runner-7:4242:ab", 1)
    code, out, _ = run("--home", str(home), "--store", url, "store", "status")
    assert code == 0
    assert out.splitlines()[0].startswith(f"store {url}: redis ")
    assert "#1   generation 1, ready, 0 calls, 1 in flight, refreshing (runner-7:4242:ab" in out


def test_keygen_prints_a_key_and_writes_one_only_where_none_is(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CREDROT_STORE_KEY", raising=False)
    code, out, err = run("store", "keygen")
    assert code == 0
    Fernet(out.strip().encode())  # a valid key, alone on stdout
    assert "export CREDROT_STORE_KEY=" in err
    key_file = tmp_path / "keys" / "store.key"
    monkeypatch.setenv("CREDROT_STORE_KEY_FILE", str(key_file))
    code, out, _ = run("store", "keygen", "--write")
    assert code == 0 and str(key_file) in out
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = key_file.read_bytes()
    Fernet(first.strip())
    code, out, _ = run("store", "keygen", "--json")
    shown = json.loads(out)
    assert (shown["env"], shown["file"], shown["written"]) == (
        "CREDROT_STORE_KEY",
        str(key_file),
        False,
    )
    Fernet(shown["key"].encode())
    code, out, err = run("store", "keygen", "--write")
    assert code == 1 and out == ""
    assert err == f"credrot: error: {key_file} already holds a key: not overwritten " + (
        "(remove it first to replace it)\n"
    )
    assert key_file.read_bytes() == first


def test_bad_setups_are_one_line(
    tmp_path: Path, redis_server: RedisServer, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    code, _, err = run("--home", str(home), "store", "push")
    assert code == 1 and err.startswith("credrot: error: no shared store is set")
    assert err.count("\n") == 1
    redis_server.stop()
    code, _, err = run("--home", str(home), "--store", redis_server.url, "store", "status")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"credrot: error: store {redis_server.url} is unreachable")
    monkeypatch.setenv("CREDROT_STORE_KEY", "not-a-key")
    redis_server.start()
    code, _, err = run("--home", str(home), "--store", redis_server.url, "store", "push")
    assert code == 1 and err.count("\n") == 1
    assert "is not a Fernet key" in err
