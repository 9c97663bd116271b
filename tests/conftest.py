"""Shared fixtures for credrot's tests: real files in a temporary home, never a mocked pool.

Fixtures (all function-scoped):

``canary``
    The per-run secret marker (``CANARY-`` + random hex) that every token made by
    ``make_cred`` contains. Grep any output, log or file for it: it must never appear
    outside credential files.
``make_cred``
    ``make_cred(i=1, *, version=0, access_token=None, refresh_token=None,
    expiry_ms=None, **extra) -> bytes``: a valid Qwen Code credential (FACTS.md fields,
    written the way the CLI writes it: 2-space JSON, no trailing newline). Account ``i``
    gets its own tokens; a higher ``version`` is the same account after a refresh (new
    access token, same refresh token, expiry one hour later per version). The result
    depends only on the arguments, so ``make_cred(3) == make_cred(3)``.
``make_pool``
    ``make_pool(n=5, *, name="qwen", **manager_kwargs) -> AccountManager``: a new home
    ``tmp_path/name`` with ``n`` accounts imported through ``import_account`` (numbered
    1..n, account 1 active).
``pool_home`` / ``manager``
    A home with 5 accounts, and an ``AccountManager`` on it.
``canary_leaks``
    ``canary_leaks(home) -> list[str]``: the files under ``home`` holding the canary,
    except the places credentials belong (``accounts/``, ``trash/``, ``backups/``, the
    pointer). An empty list means no leak.

The plain helpers behind them (``CANARY``, ``make_cred``, ``canary_leaks``) live in
``tests/creds.py``: import them from there (``from creds import CANARY``), not from
``conftest`` -- with more than one conftest in the tree that name is ambiguous.

Every test runs with ``HOME`` pointed at a fresh directory and ``QWEN_HOME`` unset, so
nothing can touch the real ``~/.qwen``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from creds import CANARY as CANARY
from creds import CREDENTIAL_PLACES as CREDENTIAL_PLACES
from creds import EXPIRY_MS as EXPIRY_MS
from creds import canary_leaks as canary_leaks
from creds import make_cred as make_cred

from credrot.manager import AccountManager


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("user-home")))
    monkeypatch.delenv("QWEN_HOME", raising=False)


@pytest.fixture
def canary() -> str:
    return CANARY


@pytest.fixture(name="make_cred")
def make_cred_fixture() -> Callable[..., bytes]:
    return make_cred


@pytest.fixture(name="canary_leaks")
def canary_leaks_fixture() -> Callable[[Path], list[str]]:
    return canary_leaks


@pytest.fixture
def make_pool(tmp_path: Path) -> Callable[..., AccountManager]:
    def make(n: int = 5, *, name: str = "qwen", **manager_kwargs: Any) -> AccountManager:
        home = tmp_path / name
        home.mkdir(mode=0o700, exist_ok=True)
        manager = AccountManager(qwen_dir=home, **manager_kwargs)
        for i in range(1, n + 1):
            manager.import_account(make_cred(i))
        return manager

    return make


@pytest.fixture
def pool_home(make_pool: Callable[..., AccountManager]) -> Path:
    return make_pool(5).home


@pytest.fixture
def manager(pool_home: Path) -> AccountManager:
    return AccountManager(qwen_dir=pool_home)
