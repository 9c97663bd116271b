"""Credentials for tests: canary tokens, valid Qwen credential bytes, a leak finder.

A plain module (not conftest) so any test or helper can ``from creds import ...``
whichever conftest pytest imported first. ``tests/conftest.py`` wraps these as fixtures.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

CANARY = "CANARY-" + secrets.token_hex(8)
#: Expiry of version 0 tokens (2100-01-01, epoch ms): fixed, so make_cred is deterministic.
EXPIRY_MS = 4_102_444_800_000
#: Where credential bytes legitimately live inside a tool home.
CREDENTIAL_PLACES = ("accounts", "trash", "backups", "oauth_creds.json")


def make_cred(
    i: int = 1,
    *,
    version: int = 0,
    access_token: str | None = None,
    refresh_token: str | None = None,
    expiry_ms: int | None = None,
    **extra: Any,
) -> bytes:
    data: dict[str, Any] = {
        "access_token": access_token or f"{CANARY}-access-{i}-v{version}",
        "token_type": "Bearer",
        "refresh_token": refresh_token or f"{CANARY}-refresh-{i}",
        "resource_url": "portal.qwen.ai",
        "expiry_date": expiry_ms if expiry_ms is not None else EXPIRY_MS + 3_600_000 * version,
    }
    data.update(extra)
    return json.dumps(data, indent=2).encode("utf-8")


def canary_leaks(home: Path) -> list[str]:
    leaks = []
    for path in sorted(home.rglob("*")):
        rel = path.relative_to(home)
        if rel.parts[0] in CREDENTIAL_PLACES or path.is_symlink() or not path.is_file():
            continue
        if CANARY.encode() in path.read_bytes():
            leaks.append(str(rel))
    return leaks
