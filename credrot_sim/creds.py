"""Each tool's credential file: how the simulator writes one for an account and reads its
tokens back.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from credrot_sim.base import (
    _QWEN_CRED_FILE,
    _QWEN_RESOURCE_URL,
    _TOKEN_LIFETIME_MS,
    _atomic_write,
)

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def _iso_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}000Z"


def _iso_to_ms(text: str) -> int | None:
    from datetime import datetime  # only Codex credentials need it

    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, TypeError):
        return None


def _str_fields(holder: object, *keys: str) -> tuple[str, ...] | None:
    if not isinstance(holder, dict):
        return None
    values: list[str] = []
    for key in keys:
        value = holder.get(key)
        if not isinstance(value, str):
            return None
        values.append(value)
    return tuple(values)


def _number(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value in (float("inf"), float("-inf")):  # NaN, infinities
        return None
    return int(value)


def _qwen_credential(
    acc: dict[str, Any], name: str, old: dict[str, Any] | None
) -> dict[str, object]:
    if old is None:  # key order of a first login (device flow), as the CLI writes it
        return {
            "access_token": acc["access_token"],
            "refresh_token": acc["refresh_token"],
            "token_type": "Bearer",
            "resource_url": _QWEN_RESOURCE_URL,
            "expiry_date": acc["expiry_date"],
        }
    return {  # a refresh: the CLI's key order; unknown keys are dropped
        "access_token": acc["access_token"],
        "token_type": "Bearer",
        "refresh_token": old["refresh_token"],  # kept: the server sends none
        "resource_url": _QWEN_RESOURCE_URL,
        "expiry_date": acc["expiry_date"],
    }


def _qwen_tokens(cred: object) -> tuple[str, str, float] | None:
    fields = _str_fields(cred, "access_token", "refresh_token", "token_type")
    expiry = cred.get("expiry_date") if isinstance(cred, dict) else None
    if fields is None or isinstance(expiry, bool) or not isinstance(expiry, (int, float)):
        return None
    return fields[0], fields[1], expiry  # as the file has it (a float stays one)


def _claude_credential(
    acc: dict[str, Any], name: str, old: dict[str, Any] | None
) -> dict[str, object]:
    prev = old.get("claudeAiOauth") if isinstance(old, dict) else None
    prev = prev if isinstance(prev, dict) else {}
    return {
        "claudeAiOauth": {
            "accessToken": acc["access_token"],
            "refreshToken": acc["refresh_token"],
            "expiresAt": acc["expiry_date"],
            "scopes": prev.get("scopes", ["user:inference", "user:profile"]),
            "subscriptionType": prev.get("subscriptionType", "pro"),
        }
    }


def _claude_tokens(cred: object) -> tuple[str, str, int] | None:
    oauth = cred.get("claudeAiOauth") if isinstance(cred, dict) else None
    pair = _str_fields(oauth, "accessToken", "refreshToken")
    expiry = _number(oauth.get("expiresAt")) if isinstance(oauth, dict) else None
    if pair is None or expiry is None:
        return None
    return pair[0], pair[1], expiry


#: Codex without a JWT ``exp``: it refreshes once ``last_refresh`` is this old.
_CODEX_LAST_REFRESH_MAX_AGE_MS = 8 * 86_400_000


def _b64url(raw: bytes) -> str:
    import base64  # only Codex credentials need it

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _codex_jwt(claims: dict[str, object], token: str) -> str:
    """A JWT-shaped token, as 0.171.0 needs: the simulated server's token as its third
    part, the claims (``exp``) readable by anyone, like the real ones."""
    header = _b64url(b'{"alg":"RS256","typ":"JWT"}')
    return f"{header}.{_b64url(json.dumps(claims, separators=(',', ':')).encode())}.{token}"


def _jwt_claims(token: str) -> dict[str, Any] | None:
    import base64

    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def _codex_credential(
    acc: dict[str, Any], name: str, old: dict[str, Any] | None
) -> dict[str, object]:
    account_id = hashlib.sha256(name.encode()).hexdigest()[:32]
    expiry_ms = int(acc["expiry_date"])
    auth = {"chatgpt_account_id": account_id, "chatgpt_plan_type": "plus"}
    claims = {"exp": expiry_ms // 1000, "https://api.openai.com/auth": auth}
    return {
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": None,
        "tokens": {
            "id_token": _codex_jwt({**claims, "email": f"{name}@example.com"}, "idt"),
            "access_token": _codex_jwt(claims, acc["access_token"]),
            "refresh_token": acc["refresh_token"],
            "account_id": account_id,
        },
        # the simulated server's tokens live an hour: last_refresh is an hour before expiry
        "last_refresh": _iso_ms(expiry_ms - _TOKEN_LIFETIME_MS),
    }


def _codex_tokens(cred: object) -> tuple[str, str, int] | None:
    """(server token, refresh token, when the CLI refreshes): the JWT's ``exp``, else
    ``last_refresh`` + 8 days, as 0.171.0 decides."""
    tokens = cred.get("tokens") if isinstance(cred, dict) else None
    pair = _str_fields(tokens, "access_token", "refresh_token")
    if pair is None:
        return None
    access, refresh = pair
    claims = _jwt_claims(access)
    exp = _number(claims.get("exp")) if claims is not None else None
    if claims is not None and exp is not None:
        return access.split(".")[2], refresh, exp * 1000
    last = cred.get("last_refresh") if isinstance(cred, dict) else None
    refreshed = _iso_to_ms(last) if isinstance(last, str) else None
    if refreshed is None:
        return None
    return access, refresh, refreshed + _CODEX_LAST_REFRESH_MAX_AGE_MS


def _gemini_credential(
    acc: dict[str, Any], name: str, old: dict[str, Any] | None
) -> dict[str, object]:
    return {
        "access_token": acc["access_token"],
        "refresh_token": acc["refresh_token"],
        "scope": "https://www.googleapis.com/auth/cloud-platform openid",
        "token_type": "Bearer",
        "id_token": f"idt.{acc['access_token']}",
        "expiry_date": acc["expiry_date"],
    }


def _gemini_tokens(cred: object) -> tuple[str, str, int] | None:
    pair = _str_fields(cred, "access_token", "refresh_token")
    expiry = _number(cred.get("expiry_date")) if isinstance(cred, dict) else None
    if pair is None or expiry is None:
        return None
    return pair[0], pair[1], expiry


def _write_beside_target(path: Path, text: str) -> None:
    """Codex 0.171.0: resolve a symlink, write a temp file beside its target, rename it
    over the target (the link survives, the target is a new file), and leave the 0-byte
    ``<target>.lock`` it took meanwhile."""
    target = Path(os.path.realpath(path))
    lock = os.open(target.with_name(f"{target.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        _atomic_write(target, text)
    finally:
        os.close(lock)


def _write_in_place(path: Path, text: str) -> None:
    """Truncate and write through the path (a symlink there is followed), mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


class _Spec:
    """What one simulated tool does differently; :class:`SimBackend` serves them all.

    ``missing_outcome``: what a call without a usable credential records.
    ``refresh_fail_deletes``: a failed refresh deletes the credential file (qwen).
    ``refresh_on_401``: a 401 costs one forced refresh before the call gives up (qwen).
    ``beside_target``: a refresh that does not ``renames`` the path writes temp + rename
    beside a symlink's target (codex) instead of truncating through the path (gemini).
    """

    def __init__(
        self,
        name: str,
        home_env: str,
        home_dir: str,
        cred_file: str,
        *,
        env_is_parent: bool,
        renames: bool,
        rotates_refresh: bool,
        credential: Callable[[dict[str, Any], str, dict[str, Any] | None], dict[str, object]],
        tokens: Callable[[object], tuple[str, str, float] | None],
        missing_outcome: str = "no_credential",
        refresh_fail_deletes: bool = False,
        refresh_on_401: bool = False,
        beside_target: bool = False,
    ) -> None:
        self.name = name
        self.home_env = home_env
        self.home_dir = home_dir
        self.cred_file = cred_file
        self.env_is_parent = env_is_parent
        self.renames = renames
        self.rotates_refresh = rotates_refresh
        self.credential = credential
        self.tokens = tokens
        self.missing_outcome = missing_outcome
        self.refresh_fail_deletes = refresh_fail_deletes
        self.refresh_on_401 = refresh_on_401
        self.beside_target = beside_target

    def home(self) -> Path:
        value = os.environ.get(self.home_env)
        if value:
            return Path(value) / self.home_dir if self.env_is_parent else Path(value)
        return Path(os.path.expanduser("~")) / self.home_dir

    def read(self, path: Path) -> tuple[dict[str, Any], tuple[str, str, float]] | None:
        """The credential file and its tokens, or None (missing or malformed)."""
        cred = _read_json(path)
        toks = self.tokens(cred) if cred is not None else None
        return None if cred is None or toks is None else (cred, toks)

    def write(self, path: Path, cred: dict[str, object]) -> None:
        text = json.dumps(cred, indent=2)
        if self.renames:
            _atomic_write(path, text)  # temp + rename: a symlink is replaced
        elif self.beside_target:
            _write_beside_target(path, text)
        else:
            _write_in_place(path, text)


_SPECS: dict[str, _Spec] = {
    "qwen": _Spec(
        "qwen",
        "QWEN_HOME",
        ".qwen",
        _QWEN_CRED_FILE,
        env_is_parent=False,
        renames=True,
        rotates_refresh=False,
        credential=_qwen_credential,
        tokens=_qwen_tokens,
        missing_outcome="device_auth",
        refresh_fail_deletes=True,
        refresh_on_401=True,
    ),
    "claude": _Spec(
        "claude",
        "CLAUDE_CONFIG_DIR",
        ".claude",
        ".credentials.json",
        env_is_parent=False,
        renames=True,
        rotates_refresh=True,
        credential=_claude_credential,
        tokens=_claude_tokens,
    ),
    "codex": _Spec(
        "codex",
        "CODEX_HOME",
        ".codex",
        "auth.json",
        env_is_parent=False,
        renames=False,
        rotates_refresh=True,
        credential=_codex_credential,
        tokens=_codex_tokens,
        beside_target=True,
        # 0.171.0 refreshes on a 401 and writes the new tokens, even though the call fails
        refresh_on_401=True,
    ),
    # GEMINI_CLI_HOME holds .gemini (it replaces the user's home for the CLI)
    "gemini": _Spec(
        "gemini",
        "GEMINI_CLI_HOME",
        ".gemini",
        "oauth_creds.json",
        env_is_parent=True,
        renames=False,
        rotates_refresh=False,
        credential=_gemini_credential,
        tokens=_gemini_tokens,
    ),
}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
