"""What ``doctor`` and ``credrot store status`` ask the store: does it answer, may this
user do what credrot does, does this machine's key open what it holds.

The rights are probed, not read from the ACL (reading it needs admin rights): every
command credrot sends, on throw-away keys under the pool's prefix, in one pipeline; a
refusal names the command (or the key pattern) it was about. Nothing here prints a
credential: a blob that does not decrypt is reported by account number.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from credrot.remote import merge, scripts, words
from credrot.remote.client import StoreDown, StoreRefused, call
from credrot.remote.seal import WrongKey
from credrot.remote.settings import StoreSettings, load_key

#: (level, message, fix), as doctor's findings are.
Found = tuple[str, str, str]

_NOPERM_COMMAND = re.compile(r"no permissions to run the '([^']+)' command", re.I)
_NOPERM_KEY = re.compile(r"no permissions to access .*key", re.I)


def _user(settings: StoreSettings) -> str:
    name = urlsplit(settings.url).username
    return unquote(name) if name else "default"


def _probe(client: Any, keys: scripts.Keys) -> tuple[list[str], bool]:
    """(the commands refused, whether a key was refused) — every command credrot uses."""
    import redis.exceptions as rx

    base = keys.base + "doctor-probe:"
    s, n, h, z = base + "s", base + "n", base + "h", base + "z"
    source = "return redis.call('GET', KEYS[1])"
    digest = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
    probes: list[tuple[str, Callable[[Any], Any]]] = [
        ("ping", lambda p: p.ping()),
        ("get", lambda p: p.get(s)),
        ("set", lambda p: p.set(s, "1", px=5000, nx=True)),
        ("incr", lambda p: p.execute_command("INCR", n)),
        ("pexpire", lambda p: p.pexpire(n, 5000)),
        ("hset", lambda p: p.hset(h, "f", "1")),
        ("hsetnx", lambda p: p.hsetnx(h, "g", "1")),
        ("hincrby", lambda p: p.hincrby(h, "f", 1)),
        ("hget", lambda p: p.hget(h, "f")),
        ("hmget", lambda p: p.hmget(h, ["f", "g"])),
        ("hgetall", lambda p: p.hgetall(h)),
        ("hdel", lambda p: p.hdel(h, "g")),
        ("zadd", lambda p: p.zadd(z, {"m": 1})),
        ("zcard", lambda p: p.zcard(z)),
        ("zcount", lambda p: p.zcount(z, "-inf", "+inf")),
        ("zrange", lambda p: p.zrange(z, 0, -1)),
        ("zrangebyscore", lambda p: p.zrangebyscore(z, "-inf", "+inf")),
        ("zremrangebyscore", lambda p: p.zremrangebyscore(z, "-inf", "0")),
        ("zrem", lambda p: p.zrem(z, "m")),
        ("script|load", lambda p: p.script_load(source)),
        ("script|exists", lambda p: p.script_exists(digest)),
        ("evalsha", lambda p: p.evalsha(digest, 1, s)),
        ("eval", lambda p: p.eval(source, 1, s)),
        ("get", lambda p: p.get(keys.keycheck)),
        ("del", lambda p: p.delete(s, n, h, z)),
    ]
    pipe = client.pipeline(transaction=False)
    for _name, probe in probes:
        probe(pipe)
    answers = pipe.execute(raise_on_error=False)
    refused: list[str] = []
    key_refused = False
    for (name, _probe_fn), answer in zip(probes, answers, strict=True):
        if isinstance(answer, rx.AuthenticationError):
            raise answer
        if not isinstance(answer, rx.ResponseError):
            continue
        text = str(answer)
        match = _NOPERM_COMMAND.search(text)
        if match:
            command = match.group(1).replace("|", " ")
            if command not in refused:
                refused.append(command)
        elif _NOPERM_KEY.search(text) or "can't access" in text:
            key_refused = True
        elif text.startswith(("NOPERM", "NOAUTH", "WRONGPASS")):
            refused.append(name.replace("|", " "))
    return refused, key_refused


def diagnose(settings: StoreSettings, tool: str) -> list[Found]:
    """The store's findings for ``doctor``: connection, rights, key."""
    from credrot.remote.client import connect

    shown = settings.shown
    keys = scripts.Keys(settings.prefix, tool)
    found: list[Found] = []
    try:
        client = connect(settings)
        call(settings, client.ping)  # (connects)
        started = time.perf_counter()
        call(settings, client.ping)
        ms = (time.perf_counter() - started) * 1000
        server, version = call(settings, lambda: server_version(client))
        found.append(("ok", words.answers(shown, server, version, ms), ""))
        refused, key_refused = call(settings, lambda: _probe(client, keys))
    except StoreDown as exc:
        return [("warn", str(exc), words.unreachable_fix())]
    except StoreRefused as exc:
        login = "refused the login" in str(exc)
        return [*found, ("error", str(exc), words.LOGIN_FIX if login else _grant(settings))]
    user = _user(settings)
    if refused or key_refused:
        message = words.acl_missing(shown, user, refused, key_refused, settings.prefix)
        return [*found, ("error", message, _grant(settings))]
    found.append(("ok", words.acl_ok(user, settings.prefix), ""))
    try:
        found.append(call(settings, lambda: _check_key(client, keys)))
    except StoreDown as exc:
        found.append(("warn", str(exc), words.unreachable_fix()))
    except StoreRefused as exc:
        found.append(("error", str(exc), _grant(settings)))
    return found


def _grant(settings: StoreSettings) -> str:
    return words.ACL_GRANT.format(user=_user(settings), prefix=settings.prefix)


def _check_key(client: Any, keys: scripts.Keys) -> Found:
    from credrot.errors import ConfigError
    from credrot.remote.seal import Sealer

    key, where = load_key()
    if key is None:
        return ("error", words.key_missing(where), words.key_fix())
    try:
        sealer = Sealer(key, where)
        check = client.get(keys.keycheck)
        sealer.check(check)
        opened = 0
        indexes = sorted(int(i) for i in client.zrange(keys.changes, 0, -1))
        pipe = client.pipeline(transaction=False)
        for index in indexes:
            pipe.hget(keys.cred(index), "blob")
        for index, blob in zip(indexes, pipe.execute(), strict=True):
            if blob is not None:
                sealer.open(blob, f"the credential of account #{index}")
                opened += 1
    except ConfigError as exc:
        return ("error", str(exc), words.key_fix())
    except WrongKey as exc:
        return ("error", str(exc), words.wrong_key_fix())
    if check is None:
        return ("info", words.key_new(where), "")
    return ("ok", words.key_ok(where, opened), "")


def server_version(client: Any) -> tuple[str, str]:
    """(redis or valkey, its version); the version is not needed to work, so a user
    that may not run INFO is not refused for it."""
    import redis.exceptions as rx

    try:
        info = client.info("server")
    except rx.ResponseError:
        return "server", "(version not shown: INFO is not allowed)"
    if "valkey_version" in info:
        return "valkey", str(info["valkey_version"])
    return "redis", str(info.get("redis_version", "?"))


# ------------------------------------------------------------------ status
def status(settings: StoreSettings, tool: str, client: Any) -> dict[str, Any]:
    """What the store holds for one tool's pool (no secret: generations, not tokens)."""
    keys = scripts.Keys(settings.prefix, tool)

    def look() -> dict[str, Any]:
        client.ping()  # (connects)
        started = time.perf_counter()
        client.ping()
        ms = (time.perf_counter() - started) * 1000
        server, version = server_version(client)
        rev, epoch, check = client.mget(keys.rev, keys.epoch, keys.keycheck)
        indexes = sorted(int(i) for i in client.zrange(keys.changes, 0, -1))
        now_ms = int(time.time() * 1000)
        pipe = client.pipeline(transaction=False)
        for i in indexes:
            pipe.hgetall(keys.acct(i))
            pipe.hget(keys.cred(i), "gen")
            pipe.zcount(keys.inflight(i), f"({now_ms}", "+inf")
            pipe.get(keys.refresh(i))
            pipe.get(keys.fence(i))
        got = pipe.execute()
        accounts = []
        for pos, i in enumerate(indexes):
            h, gen, flight, holder, fence = got[pos * 5 : pos * 5 + 5]
            accounts.append(_account_row(i, h, gen, flight, holder, fence))
        return {
            "store": settings.shown,
            "server": server,
            "version": version,
            "round_trip_ms": round(ms, 2),
            "prefix": settings.prefix,
            "keys": _key_names(keys),
            "revision": int(rev or 0),
            "epoch": epoch.decode() if epoch else None,
            "key_check": check is not None,
            "accounts": accounts,
        }

    return call(settings, look)


def _account_row(
    index: int, h: merge.Hash, gen: Any, flight: Any, holder: Any, fence: Any
) -> dict[str, Any]:
    from credrot import state as st

    acct = st.AccountState()
    if h:
        merge.to_local(h, acct, time.time())
    return {
        "account": index,
        "generation": int(gen) if gen is not None else None,
        "status": acct.status,
        "until": acct.until,
        "calls": acct.calls,
        "in_flight": int(flight or 0),
        "refreshing": holder.decode("utf-8", "replace") if holder else None,
        "fence": int(fence) if fence else 0,
    }


def _key_names(keys: scripts.Keys) -> dict[str, str]:
    return {
        "revision": keys.rev,
        "epoch": keys.epoch,
        "changes": keys.changes,
        "account": keys.acct(0).replace(":0", ":<n>"),
        "credential": keys.cred(0).replace(":0", ":<n>"),
        "in_flight": keys.inflight(0).replace(":0", ":<n>"),
        "refresh_lease": keys.refresh(0).replace(":0", ":<n>"),
        "fence": keys.fence(0).replace(":0", ":<n>"),
        "key_check": keys.keycheck,
    }
