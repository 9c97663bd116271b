"""``doctor`` with a shared store: it answers, this user may do what credrot does, the key
opens what the store holds — each problem one finding naming what is missing, and no
token in any of it. A real server, real ACL users, real keys."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from creds import CANARY
from cryptography.fernet import Fernet
from redisserver import RedisServer, redis_server

from credrot.cli import main
from credrot.manager import AccountManager

__all__ = ["redis_server"]


@pytest.fixture
def pushed(
    tmp_path: Path,
    redis_server: RedisServer,
    make_cred: Callable[..., bytes],
    capsys: pytest.CaptureFixture[str],
) -> Path:
    """A home of two accounts, pushed into the store with this run's key."""
    home = tmp_path / "home"
    manager = AccountManager(home=home)
    manager.import_account(make_cred(1))
    manager.import_account(make_cred(2))
    assert main(["--home", str(home), "--store", redis_server.url, "store", "push"]) == 0
    capsys.readouterr()
    return home


def doctor(
    capsys: pytest.CaptureFixture[str], home: Path, url: str
) -> tuple[int, list[dict[str, Any]], str]:
    """(exit code, the store's findings, everything printed — text and JSON runs)."""
    argv = ["--home", str(home), "--store", url, "doctor", "--skip-tool"]
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    found = [f for f in json.loads(out)["findings"] if f["check"] == "store"]
    text_code = main(argv)
    text, text_err = capsys.readouterr()
    assert text_code == code
    printed = out + err + text + text_err
    assert CANARY not in printed
    assert "Traceback" not in printed
    return code, found, text


def acl_user(server: RedisServer, name: str, *rules: str) -> str:
    client: Any = redis.Redis(port=server.port)
    client.acl_setuser(name, enabled=True, passwords=["+pw-of-" + name], reset=True)
    client.execute_command("ACL", "SETUSER", name, *rules)
    client.close()
    return f"redis://{name}:pw-of-{name}@127.0.0.1:{server.port}/0"


def test_a_healthy_store_is_three_ok_lines(
    pushed: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code, found, text = doctor(capsys, pushed, redis_server.url)
    assert [f["level"] for f in found] == ["ok", "ok", "ok"]
    assert found[0]["message"].startswith(f"store {redis_server.url} answers: redis ")
    assert found[2]["message"].endswith("opens the pool's key check and 2 credentials")
    assert code == 0, text


def test_the_rights_the_readme_grants_are_enough(
    pushed: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = acl_user(redis_server, "ci", "~credrot:*", "+@read", "+@write", "+@scripting", "+ping")
    code, found, _ = doctor(capsys, pushed, url)
    assert [f["level"] for f in found] == ["ok", "ok", "ok"], found
    assert code == 0
    # and a call through that user works
    again = AccountManager(home=pushed, store=url)
    assert again.lease() is not None


def test_a_user_without_the_write_commands_is_one_line_naming_them(
    pushed: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = acl_user(redis_server, "reader", "~credrot:*", "+@read", "+ping")
    code, found, text = doctor(capsys, pushed, url)
    assert code == 1
    errors = [f for f in found if f["level"] == "error"]
    assert len(errors) == 1
    message = errors[0]["message"]
    shown = f"redis://reader:***@127.0.0.1:{redis_server.port}/0"
    assert message.startswith(f"store {shown}: user 'reader' may not use commands set, incr,")
    assert "hset" in message and "evalsha" in message and "eval" in message
    assert errors[0]["fix"] == ("ACL SETUSER reader on ~credrot:* +@read +@write +@scripting +ping")
    assert "pw-of-reader" not in text
    # the rest of the report still looks at the local pool
    assert "2 accounts, 2 usable now" in text


def test_a_user_limited_to_other_keys_is_told_the_key_pattern(
    pushed: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    url = acl_user(redis_server, "other", "~team-b:*", "+@all")
    code, found, _ = doctor(capsys, pushed, url)
    assert code == 1
    assert found[-1]["level"] == "error"
    assert found[-1]["message"].endswith("user 'other' may not use keys credrot:*")


def test_a_wrong_password_is_one_line(
    pushed: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    acl_user(redis_server, "ci", "~credrot:*", "+@all")
    url = f"redis://ci:not-the-password@127.0.0.1:{redis_server.port}/0"
    code, found, text = doctor(capsys, pushed, url)
    assert code == 1
    assert [f["level"] for f in found] == ["error"]
    assert "refused the login" in found[0]["message"]
    assert "not-the-password" not in text


def test_a_wrong_key_is_one_line_and_shows_no_token(
    pushed: Path,
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CREDROT_STORE_KEY", Fernet.generate_key().decode())
    code, found, _ = doctor(capsys, pushed, redis_server.url)
    assert code == 1
    assert found[-1] == {
        "check": "store",
        "level": "error",
        "message": "the store key from $CREDROT_STORE_KEY does not decrypt the pool's key "
        "check: it was written with another key",
        "fix": "use the key the pool was pushed with (every machine needs the same one)",
        "fixable": False,
    }
    monkeypatch.delenv("CREDROT_STORE_KEY")
    monkeypatch.setenv("CREDROT_STORE_KEY_FILE", str(pushed / "no-such.key"))
    code, found, _ = doctor(capsys, pushed, redis_server.url)
    assert code == 1
    assert found[-1]["message"] == f"no store key: set $CREDROT_STORE_KEY or {pushed}/no-such.key"


def test_a_credential_sealed_with_another_key_is_named_by_account(
    pushed: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = Fernet(Fernet.generate_key()).encrypt(f"{CANARY}-token".encode())
    redis.Redis(port=redis_server.port).hset("credrot:qwen:cred:2", "blob", stranger)
    code, found, _ = doctor(capsys, pushed, redis_server.url)
    assert code == 1
    assert found[-1]["message"] == (
        "the store key from $CREDROT_STORE_KEY does not decrypt the credential of "
        "account #2: it was written with another key"
    )


def test_a_store_that_is_down_is_a_warning_and_the_pool_still_checks(
    pushed: Path, redis_server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_server.stop()
    code, found, text = doctor(capsys, pushed, redis_server.url)
    assert [f["level"] for f in found] == ["warn"]
    assert found[0]["message"].startswith(f"store {redis_server.url} is unreachable")
    assert "calls use the local pool until it answers" in found[0]["fix"]
    assert "2 accounts, 2 usable now" in text
    assert code == 0


# ------------------------------------------------------------- and for a call
def test_a_call_through_a_refused_user_or_with_another_key_is_one_line(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import subprocess
    import sys

    from simpool import SimPool

    sim = SimPool(tmp_path / "sim", monkeypatch)
    sim.add(answer="hello")
    credrot = str(Path(sys.executable).parent / "credrot")

    def run(store: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [credrot, "--home", str(sim.home), "--store", store, "run", "--", "-p", "x"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=dict(os.environ),
        )

    first = run(redis_server.url)
    assert (first.returncode, first.stdout) == (0, "hello"), first.stderr
    reader = acl_user(redis_server, "reader", "~credrot:*", "+@read", "+ping")
    monkeypatch.setenv("CREDROT_STORE_KEY", Fernet.generate_key().decode())
    for store, says in (
        (reader, "refused: this user has no permissions to run the 'set' command (check its ACL)"),
        (
            redis_server.url,
            "does not decrypt the pool's key check: it was written with another key",
        ),
    ):
        got = run(store)
        assert got.returncode == 1 and got.stdout == ""
        assert len(got.stderr.splitlines()) == 1, got.stderr
        assert got.stderr.startswith("credrot: error: ") and says in got.stderr
        assert CANARY not in got.stderr and "pw-of-reader" not in got.stderr
    assert sim.backend.account("acct1")["calls"] == 1  # no call ran without its store
