"""Credentials at rest in Redis: sealed with Fernet under a key only the user holds.

Redis sees ciphertext only; a wrong key is told as one line, never with the bytes it
failed on. The key check value (``<prefix>:keycheck``) lets ``doctor`` and every machine
find out that its key differs from the one the pool was written with before it reads a
credential.
"""

from __future__ import annotations

from credrot.errors import ConfigError, CredrotError

#: What the key check value decrypts to.
KEYCHECK = b"credrot store key check v1"


class WrongKey(CredrotError, PermissionError):
    """The store key does not open what the store holds."""


class Sealer:
    def __init__(self, key: bytes, where: str) -> None:
        try:
            from cryptography.fernet import Fernet
        except ImportError:  # pragma: no cover - the extra is not installed
            raise ConfigError(
                "the redis store needs the cryptography package: pip install 'credrot[redis]'"
            ) from None
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                f"store key from {where} is not a Fernet key "
                "(32 url-safe base64 bytes; make one with `credrot store keygen`)"
            ) from None
        self.where = where

    def __repr__(self) -> str:
        return f"Sealer(key from {self.where})"

    def seal(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def open(self, blob: bytes, what: str) -> bytes:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(blob)
        except InvalidToken:
            raise WrongKey(
                f"the store key from {self.where} does not decrypt {what}: "
                "it was written with another key"
            ) from None

    def check(self, blob: bytes | None) -> None:
        """Raise :class:`WrongKey` unless ``blob`` is this key's check value."""
        if blob is not None and self.open(blob, "the pool's key check") != KEYCHECK:
            raise WrongKey(f"the store key from {self.where} is not the pool's key")


def new_key() -> bytes:
    from cryptography.fernet import Fernet

    return Fernet.generate_key()
