"""Which shared store a pool uses, and the key its credentials are sealed with.

The store comes from ``--store`` (or the API's ``store=``), else ``$CREDROT_STORE``, else
the ``store:`` key of the config file; ``file`` (or nothing) keeps the default file store.
The key is ``$CREDROT_STORE_KEY`` (a Fernet key), else the file ``$CREDROT_STORE_KEY_FILE``,
else ``~/.config/credrot/store.key``. A URL is shown only with its password hidden.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from credrot.errors import ConfigError

STORE_ENV = "CREDROT_STORE"
KEY_ENV = "CREDROT_STORE_KEY"
KEY_FILE_ENV = "CREDROT_STORE_KEY_FILE"
SCHEMES = ("redis", "rediss", "unix", "valkey", "valkeys")
#: The namespace of every key when the URL names none (``?prefix=team-a``).
DEFAULT_PREFIX = "credrot"
_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class StoreSettings:
    """A parsed store URL: what the client connects to, and the namespace of its keys."""

    url: str  # as given, without the ``prefix`` parameter (passed to the client)
    prefix: str

    @property
    def shown(self) -> str:
        """The URL with any password replaced by ``***`` (safe to print and log)."""
        return redact(self.url)


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _config_store() -> str | None:
    """The ``store:`` key of the config file, read only when the file exists."""
    from credrot.configpath import config_path

    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    if "store" not in text:
        return None  # no need to load YAML
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # the tool loader reports a broken file, with its line
    value = data.get("store") if isinstance(data, dict) else None
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{path}: store: expected a URL like redis://host:6379/0")
    return value


def resolve(explicit: str | None = None) -> StoreSettings | None:
    """The shared store to use, or None for the file store alone."""
    chosen = explicit if explicit is not None else os.environ.get(STORE_ENV)
    if chosen is None:
        chosen = _config_store()
    if chosen is None or chosen.strip() in ("", "file"):
        return None
    return parse(chosen.strip())


def parse(url: str) -> StoreSettings:
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"store {redact(url)!r}: expected file or a URL like redis://host:6379/0 "
            f"(schemes: {', '.join(SCHEMES)})"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = DEFAULT_PREFIX
    kept = []
    for name, value in query:
        if name == "prefix":
            prefix = value
        else:
            kept.append((name, value))
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(f"store {redact(url)!r}: prefix must be 1-64 of A-Z a-z 0-9 _ . -")
    scheme = parts.scheme.replace("valkey", "redis")
    clean = urlunsplit(parts._replace(scheme=scheme, query=urlencode(kept)))
    return StoreSettings(clean, prefix)


def key_file(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    named = env.get(KEY_FILE_ENV)
    if named:
        return Path(named).expanduser()
    return Path(env.get("HOME") or Path.home()) / ".config" / "credrot" / "store.key"


def load_key() -> tuple[bytes | None, str]:
    """(the key, where it came from); (None, where it was looked for) when there is none."""
    value = os.environ.get(KEY_ENV)
    if value:
        return value.strip().encode("ascii", "replace"), f"${KEY_ENV}"
    path = key_file()
    try:
        return path.read_bytes().strip(), str(path)
    except FileNotFoundError:
        return None, f"${KEY_ENV} or {path}"
    except OSError as exc:
        raise ConfigError(f"store key {path}: cannot be read ({exc.strerror})") from None
