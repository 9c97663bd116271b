"""The connection to the store, and what its failures mean to a user, in one line each.

Two kinds of failure, handled differently by the callers: the store cannot be reached
(:class:`StoreDown`: the pool fails open onto its local files and says so once) and the
store refuses us (:class:`StoreRefused`: a wrong password, an ACL without the rights
credrot needs — a setup mistake, reported and not papered over).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from credrot.errors import ConfigError, CredrotError
from credrot.remote.settings import StoreSettings

if TYPE_CHECKING:
    import redis

T = TypeVar("T")

#: Seconds a command may take on loopback or a LAN before the store counts as down.
TIMEOUT = 0.5


class StoreDown(CredrotError, ConnectionError):
    """The store does not answer."""


class StoreRefused(CredrotError, PermissionError):
    """The store answers but will not let credrot in (password, ACL)."""


def connect(settings: StoreSettings, timeout: float = TIMEOUT) -> redis.Redis:
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "the redis store needs the redis package: pip install 'credrot[redis]'"
        ) from None
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        return redis.Redis.from_url(
            settings.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # a store that does not answer is down: fail open
            retry_on_timeout=False,
            health_check_interval=0,
        )
    except ValueError as exc:
        raise ConfigError(f"store {settings.shown}: {exc}") from None


def call(settings: StoreSettings, what: Callable[[], T]) -> T:
    """Run ``what`` and turn the client's errors into :class:`StoreDown`/``StoreRefused``."""
    import redis.exceptions as rx

    try:
        return what()
    except CredrotError:
        raise  # already ours (a wrong key is a PermissionError, not a store that is down)
    except rx.NoPermissionError as exc:
        raise StoreRefused(
            f"store {settings.shown} refused: {_first(exc)} (check its ACL)"
        ) from None
    except rx.AuthenticationError as exc:
        raise StoreRefused(f"store {settings.shown} refused the login: {_first(exc)}") from None
    except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
        raise StoreDown(f"store {settings.shown} is unreachable ({_first(exc)})") from None
    except rx.ResponseError as exc:
        text = _first(exc)
        if text.startswith(("NOPERM", "NOAUTH", "WRONGPASS")):
            raise StoreRefused(f"store {settings.shown} refused: {text} (check its ACL)") from None
        raise StoreRefused(f"store {settings.shown} answered an error: {text}") from None


#: What the client puts before an error inside a pipeline (with the command's first
#: arguments, which a message never repeats).
_PIPELINE_NOTE = re.compile(r"^Command # \d+ \(.*?\) of pipeline caused error: ", re.S)


def _first(exc: BaseException) -> str:
    text = _PIPELINE_NOTE.sub("", str(exc).strip()) or type(exc).__name__
    return text.splitlines()[0][:200]


def run_script(client: Any, source: str, keys: list[str], args: list[Any]) -> Any:
    """EVALSHA with the script cached per client, EVAL the first time."""
    cache: dict[str, Any] = client.__dict__.setdefault("_credrot_scripts", {})
    script = cache.get(source)
    if script is None:
        script = cache[source] = client.register_script(source)
    return script(keys=keys, args=args)


class Batch:
    """Commands and scripts sent to the server in one round trip (a pipeline, not a
    transaction: each script is atomic by itself).

    Scripts go by EVALSHA of their digest, computed here; one the server does not hold
    yet (a new or restarted server) answers NOSCRIPT without running, and is then run
    once more by EVAL, which also caches it there.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._pipe = client.pipeline(transaction=False)
        self._items: list[tuple[str, list[str], list[Any]] | None] = []

    def __len__(self) -> int:
        return len(self._items)

    def script(self, source: str, keys: list[str], args: list[Any]) -> None:
        self._pipe.evalsha(_digest(source), len(keys), *keys, *args)
        self._items.append((source, keys, args))

    def command(self, name: str, *args: Any) -> None:
        getattr(self._pipe, name)(*args)
        self._items.append(None)

    def run(self) -> list[Any]:
        import redis.exceptions as rx

        got: list[Any] = self._pipe.execute(raise_on_error=False)
        for pos, (item, answer) in enumerate(zip(self._items, got, strict=True)):
            if isinstance(answer, rx.NoScriptError) and item is not None:
                source, keys, args = item
                got[pos] = self.client.eval(source, len(keys), *keys, *args)
            elif isinstance(answer, Exception):
                raise answer
        return got


def _digest(source: str) -> str:
    import hashlib

    return hashlib.sha1(source.encode("utf-8"), usedforsecurity=False).hexdigest()
