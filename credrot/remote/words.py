"""Every sentence ``credrot store`` and the store section of ``doctor`` say, in one place."""

from __future__ import annotations

from credrot.remote.settings import KEY_ENV, KEY_FILE_ENV

NO_STORE = (
    "no shared store is set: pass --store redis://HOST:PORT/DB, set $CREDROT_STORE, "
    "or put store: in the config file"
)
INVALID_SLOT = "not a valid credential here: left out"
LOGIN_FIX = "check the user and password in the store URL (redis://USER:PASSWORD@HOST:PORT/DB)"
#: The rights a store user needs, as an ``ACL SETUSER`` line (``{user}``, ``{prefix}``).
ACL_GRANT = "ACL SETUSER {user} on ~{prefix}:* +@read +@write +@scripting +ping"


def no_key(store: str, where: str) -> str:
    return (
        f"the store {store} needs a key for the credentials: set {where} "
        "(make one with `credrot store keygen`)"
    )


def pushed(what: str, gen: int | None) -> str:
    return {
        "created": f"credential stored as generation {gen}",
        "updated": f"credential stored as generation {gen} (newer here)",
        "same": f"credential already in the store (generation {gen})",
        "kept-store": f"the store's generation {gen} is newer: kept it (pull takes it)",
    }.get(what, what)


def pulled(what: str, gen: int | None) -> str:
    return {
        "taken": f"credential generation {gen} written to the slot",
        "same": f"credential already here (generation {gen})",
        "kept-local": f"the slot is newer than the store's generation {gen}: kept "
        "(the next call or `credrot store push` offers it)",
        "invalid": f"the store's generation {gen} is not a valid credential: slot kept",
        "-": "no credential in the store",
    }.get(what, what)


def keygen_hint(path: str) -> list[str]:
    return [
        "Keep this key secret and give the same key to every machine of the pool:",
        f"  in the environment:  export {KEY_ENV}=<the key>",
        f"  or in a file (0600): {path}  (another file: ${KEY_FILE_ENV})",
        "`credrot store keygen --write` puts a new key in that file.",
    ]


def key_written(path: str) -> str:
    return f"wrote a new store key to {path} (mode 0600); copy it to every machine of the pool"


def key_exists(path: str) -> str:
    return f"{path} already holds a key: not overwritten (remove it first to replace it)"


# ------------------------------------------------------------------ doctor
def answers(store: str, server: str, version: str, ms: float) -> str:
    return f"store {store} answers: {server} {version}, {ms:.1f} ms round trip"


def unreachable_fix() -> str:
    return "start the server or correct the URL; calls use the local pool until it answers"


def acl_missing(store: str, user: str, commands: list[str], keys: bool, prefix: str) -> str:
    parts = []
    if commands:
        parts.append("commands " + ", ".join(commands))
    if keys:
        parts.append(f"keys {prefix}:*")
    return f"store {store}: user {user!r} may not use {' and '.join(parts)}"


def acl_ok(user: str, prefix: str) -> str:
    return f"user {user!r} may run every command credrot uses on {prefix}:*"


def key_missing(where: str) -> str:
    return f"no store key: set {where}"


def key_fix() -> str:
    return f"make one with `credrot store keygen --write`, or set ${KEY_ENV} on this machine"


def key_ok(where: str, sealed: int) -> str:
    return f"the store key from {where} opens the pool's key check and {sealed} credentials"


def key_new(where: str) -> str:
    return f"the store holds no credential yet; the key from {where} is stored at the first push"


def wrong_key_fix() -> str:
    return "use the key the pool was pushed with (every machine needs the same one)"
