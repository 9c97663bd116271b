"""The accounts a provider mock serves, and what it saw: shared by every genuine-CLI mock.

An account is found by its access token (the CLI's ``Authorization`` header) or its
refresh token (the CLI's refresh request). Refresh tokens are **single-use**, as
Claude's and Codex's are: presenting one that was already spent is refused and, like
the real providers, revokes the account's whole token family (``revoked`` is then set
and every later request of that account fails). Tokens carry the test's canary prefix
so a leak anywhere is found by grepping for it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .loopback import Hit, Loopback, MockHandler

#: What a chat request of an account answers.
MODES = ("ok", "quota", "quota_long", "rate_limit", "unauthorized", "revoked")
REFRESH_MODES = ("ok", "invalid_grant")


@dataclass
class Account:
    """One account at the provider. Tokens are secrets: the repr shows none."""

    name: str
    access_token: str
    refresh_token: str
    mode: str = "ok"
    #: Successful answers left before the account answers its quota (None: no cap).
    quota: int | None = None
    refresh: str = "ok"
    #: Epoch seconds the quota resets at (the mock's own clock).
    resets_at: float = 0.0
    served: int = 0
    refreshed: int = 0
    #: A spent refresh token came back: the whole family is dead.
    revoked: bool = False
    spent_refresh: list[str] = field(default_factory=list)
    old_access: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"Account({self.name!r}, mode={self.mode!r}, quota={self.quota!r})"


class Book:
    """The mock's accounts, its request log and its tokens; thread-safe."""

    def __init__(self, token_prefix: str, make_token: Callable[[str, str], str] | None = None):
        self.token_prefix = token_prefix
        self.lock = threading.Lock()
        self.accounts: dict[str, Account] = {}
        self.hits: list[Hit] = []
        self._make = make_token or self._plain

    def _plain(self, kind: str, name: str) -> str:
        return f"{self.token_prefix}-{kind}-{name}-{secrets.token_hex(6)}"

    def token(self, kind: str, name: str) -> str:
        return self._make(kind, name)

    def add(self, name: str, **fields: object) -> Account:
        acct = Account(name, self.token("access", name), self.token("refresh", name))
        for key, value in fields.items():
            if not hasattr(acct, key):
                raise AttributeError(key)
            setattr(acct, key, value)
        if acct.mode not in MODES or acct.refresh not in REFRESH_MODES:
            raise ValueError(f"unknown mode {acct.mode!r} / refresh {acct.refresh!r}")
        with self.lock:
            self.accounts[name] = acct
        return acct

    def by_access(self, token: str) -> Account | None:
        with self.lock:
            return next((a for a in self.accounts.values() if a.access_token == token), None)

    def chat_outcome(self, token: str) -> tuple[Account | None, str]:
        """(account, outcome) of a chat request: counts the answer when it is one."""
        with self.lock:
            acct = next((a for a in self.accounts.values() if a.access_token == token), None)
            if acct is None:
                return None, "unauthorized"
            if acct.revoked:
                return acct, "revoked"
            if acct.mode != "ok":
                return acct, acct.mode
            if acct.quota is not None and acct.served >= acct.quota:
                return acct, "quota"
            acct.served += 1
            return acct, "ok"

    def refresh(self, token: str) -> tuple[Account | None, str]:
        """Spend a refresh token: (account, ``ok`` | ``invalid_grant`` | ``reused``).

        On ``ok`` the account has new access and refresh tokens.
        """
        with self.lock:
            for acct in self.accounts.values():
                if token and token in acct.spent_refresh:
                    acct.revoked = True  # a replayed token kills the family
                    return acct, "reused"
                if acct.refresh_token == token:
                    if acct.revoked or acct.refresh == "invalid_grant":
                        return acct, "invalid_grant"
                    acct.spent_refresh.append(acct.refresh_token)
                    acct.old_access.append(acct.access_token)
                    acct.access_token = self._make("access", acct.name)
                    acct.refresh_token = self._make("refresh", acct.name)
                    acct.refreshed += 1
                    return acct, "ok"
            return None, "invalid_grant"

    def record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)

    def hits_of(self, kind: str, name: str | None = None) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.kind == kind and (name is None or h.account == name)]

    def secrets(self) -> list[str]:
        with self.lock:
            found: list[str] = []
            for a in self.accounts.values():
                found += [a.access_token, a.refresh_token, *a.spent_refresh, *a.old_access]
            return found


class ProviderMock:
    """A :class:`Book` behind the shared loopback harness; a context manager."""

    handler: type[MockHandler]

    def __init__(self, token_prefix: str = "mock") -> None:
        self.book = Book(token_prefix, self.make_token)
        self.loop = Loopback(self.handler, self)

    def make_token(self, kind: str, name: str) -> str:
        return f"{self.book.token_prefix}-{kind}-{name}-{secrets.token_hex(6)}"

    def __enter__(self) -> ProviderMock:
        self.loop.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.close()

    def env(self) -> dict[str, str]:
        return self.loop.env()

    @property
    def connects(self) -> list[str]:
        return self.loop.connects

    def account(self, name: str) -> Account:
        return self.book.accounts[name]

    def secrets(self) -> list[str]:
        return self.book.secrets()

    def chats(self, name: str | None = None) -> list[Hit]:
        return self.book.hits_of("chat", name)

    def refreshes(self, name: str | None = None) -> list[Hit]:
        return self.book.hits_of("refresh", name)
