"""A loopback stand-in for what Codex 0.171.0 talks to, on the shared harness.

Served: ``GET chatgpt.com/backend-api/wham/accounts/check`` (the workspace routing
discovery every call starts with: the account list), ``POST
chatgpt.com/backend-api/codex/responses`` (a Responses API SSE stream; the CLI's
WebSocket attempt is answered 404 so it falls back to HTTPS), ``POST
auth.openai.com/oauth/token`` (JSON refresh, single-use refresh tokens: a spent one is
refused as ``refresh_token_reused`` and revokes the family). Everything else is a 404.

Tokens are JWT-shaped (the CLI decodes them): ``header.claims.<canary-tagged id>``, so the
run's canary is visible in every token and a leak is found by grepping for it. The access
token's ``exp`` is the mock's expiry; the id token names the account (``chatgpt_account_id``).

Quota is the genuine 429 ``usage_limit_reached`` with ``resets_at`` (epoch seconds); a
plain 429 (with ``retry-after``) is a rate limit; 401 an expired token (an access token
past its ``exp`` is refused too); ``revoked`` answers 401 and refuses the refresh as
``refresh_token_invalidated``; a refresh mode ``invalid_grant`` as
``refresh_token_expired``. ``drop`` cuts an account's Responses requests off unanswered,
``usage`` sets the usage headers its answers carry.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import time
import uuid
from typing import Any

from .book import Account, ProviderMock
from .loopback import Hit, MockHandler

#: The access token lives this long after a refresh (the CLI refreshes ~5 min before).
ACCESS_LIFETIME = 3600.0
EXPIRED_BODY = {
    "error": {
        "message": "Provided authentication token is expired. Please try signing in again.",
        "type": None,
        "code": "token_expired",
        "param": None,
    }
}
RATE_LIMIT_BODY = {
    "error": {
        "message": "Rate limit reached. Please try again later.",
        "type": "rate_limit_exceeded",
        "code": "rate_limit_exceeded",
    }
}
#: What the token endpoint answers a refused refresh with, by the book's verdict.
REFRESH_ERRORS = {
    "reused": "refresh_token_reused",
    "invalid_grant": "refresh_token_expired",
    "revoked": "refresh_token_invalidated",
}


def _b64(data: object) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwt(claims: dict[str, Any], tag: str) -> str:
    """An unsigned JWT-shaped token; ``tag`` (canary-prefixed) is its signature part."""
    return f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}.{tag}"


def account_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mock-codex/{name}"))


class MockCodex(ProviderMock):
    """The book's accounts behind Codex's three endpoints. ``expires_at`` per access token."""

    def __init__(self, token_prefix: str = "mock") -> None:
        #: exp claim for the next access token made for an account (name -> epoch)
        self.next_exp: dict[str, float] = {}
        #: usage headers per account: slot (primary, secondary) -> (percent, minutes, reset)
        self.usage: dict[str, dict[str, tuple[float, int, float]]] = {}
        #: accounts whose Responses requests are cut off unanswered (a dropped connection)
        self.drop: set[str] = set()
        #: The ``retry-after`` of an account's rate limit, in seconds (1 unless set).
        self.retry_after: dict[str, int] = {}
        super().__init__(token_prefix)

    def make_token(self, kind: str, name: str) -> str:
        tag = f"{self.book.token_prefix}-{kind}-{name}-{secrets.token_hex(6)}"
        if kind == "refresh":  # opaque, as the provider's are
            return f"rt_{tag}"
        now = time.time()
        exp = self.next_exp.pop(name, now + ACCESS_LIFETIME)
        auth = {
            "chatgpt_account_id": account_id(name),
            "chatgpt_plan_type": "plus",
            "chatgpt_user_id": f"user-{name}",
            "user_id": f"user-{name}",
        }
        claims = {
            "iss": "https://auth.openai.com",
            "aud": ["https://api.openai.com/v1"],
            "sub": f"auth0|{name}",
            "iat": int(now),
            "exp": int(exp),
            "https://api.openai.com/auth": auth,
            "https://api.openai.com/profile": {"email": f"{name}@example.com"},
        }
        return jwt(claims, tag)

    def id_token(self, name: str) -> str:
        now = time.time()
        claims = {
            "iss": "https://auth.openai.com",
            "aud": "app_EMoamEEZ73f0CkXaXp7hrann",
            "sub": f"auth0|{name}",
            "email": f"{name}@example.com",
            "email_verified": True,
            "iat": int(now),
            "exp": int(now + ACCESS_LIFETIME),
            "https://api.openai.com/auth": {
                "chatgpt_account_id": account_id(name),
                "chatgpt_plan_type": "plus",
                "chatgpt_user_id": f"user-{name}",
                "user_id": f"user-{name}",
            },
        }
        return jwt(claims, f"{self.book.token_prefix}-id-{name}-{secrets.token_hex(4)}")

    def credential(self, acct: Account, *, last_refresh: float | None = None) -> dict[str, Any]:
        """The account's ``auth.json`` as the CLI writes it after a login."""
        stamp = time.time() if last_refresh is None else last_refresh
        return {
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": None,
            "tokens": {
                "id_token": self.id_token(acct.name),
                "access_token": acct.access_token,
                "refresh_token": acct.refresh_token,
                "account_id": account_id(acct.name),
            },
            "last_refresh": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp))
            + f".{int(stamp * 1e6) % 1_000_000:06d}Z",
        }

    def add_account(
        self,
        name: str,
        *,
        expires_in: float = ACCESS_LIFETIME,
        last_refresh: float | None = None,
        **fields: object,
    ) -> dict[str, Any]:
        fields.setdefault("resets_at", time.time() + 3 * 3600)
        self.next_exp[name] = time.time() + expires_in
        acct = self.book.add(name, **fields)
        return self.credential(acct, last_refresh=last_refresh)

    def requests(self, kind: str | None = None) -> list[Hit]:
        with self.book.lock:
            return [h for h in self.book.hits if kind is None or h.kind == kind]


class _Handler(MockHandler):
    def do_GET(self) -> None:
        self.body()
        if self.route == "/backend-api/wham/accounts/check":
            self._accounts_check()
            return
        if self.route == "/backend-api/codex/responses":
            # the WebSocket upgrade: 426 sends the CLI straight to HTTPS
            self.mock.book.record(self.hit(426, None, "websocket"))
            self.send_json(426, {"detail": "Upgrade Required"})
            return
        self.mock.book.record(self.hit(404, None, "other"))
        self.send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        if self.route == "/backend-api/codex/responses":
            self._responses(self.json_body())
        elif self.route == "/oauth/token" and self.host == "auth.openai.com":
            self._token(self.json_body())
        else:
            self.body()
            self.mock.book.record(self.hit(404, None, "other"))
            self.send_json(404, {"detail": "Not Found"})

    def _account(self) -> Account | None:
        book = self.mock.book
        acct: Account | None = book.by_access(self.bearer())
        return acct

    def _expired(self) -> bool:
        """The bearer is a JWT whose ``exp`` has passed (the backend refuses it)."""
        exp = _claims(self.bearer()).get("exp")
        return isinstance(exp, (int, float)) and exp <= time.time()

    def _accounts_check(self) -> None:
        acct = self._account()
        if acct is None or acct.revoked or acct.mode == "revoked" or self._expired():
            self.mock.book.record(self.hit(401, acct.name if acct else None, "accounts"))
            self.send_json(401, EXPIRED_BODY)
            return
        self.mock.book.record(self.hit(200, acct.name, "accounts"))
        ident = account_id(acct.name)
        self.send_json(
            200,
            {
                "accounts": [
                    {
                        "id": ident,
                        "account_id": ident,
                        "name": None,
                        "structure": "personal",
                        "plan_type": "plus",
                        "is_default": True,
                        "workspace_backend_origin": "https://chatgpt.com",
                        "account_routing_override": "NO_CONSTRAINT",
                    }
                ],
                "account_ordering": [ident],
            },
        )

    def _token(self, form: dict[str, Any]) -> None:
        book = self.mock.book
        token = str(form.get("refresh_token", ""))
        known = next((a for a in book.accounts.values() if a.refresh_token == token), None)
        if known is not None and known.mode == "revoked":
            acct, verdict = known, "revoked"  # revoked at the provider: nothing is spent
        else:
            acct, verdict = book.refresh(token)
            if verdict == "invalid_grant" and acct is not None and acct.revoked:
                verdict = "revoked"
        name = acct.name if acct else None
        if verdict != "ok" or acct is None:
            book.record(self.hit(401, name, "refresh"))
            code = REFRESH_ERRORS.get(verdict, "refresh_token_expired")
            self.send_json(
                401,
                {
                    "error": {
                        "message": "Your refresh token could not be used.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": code,
                    }
                },
            )
            return
        book.record(self.hit(200, name, "refresh"))
        self.send_json(
            200,
            {
                "id_token": self.mock.id_token(acct.name),
                "access_token": acct.access_token,
                "refresh_token": acct.refresh_token,
                "expires_in": int(ACCESS_LIFETIME),
                "token_type": "Bearer",
                "scope": "openid profile email offline_access",
            },
        )

    def _responses(self, request: dict[str, Any]) -> None:
        book = self.mock.book
        if self._expired():
            acct, outcome = self._account(), "unauthorized"
        else:
            acct, outcome = book.chat_outcome(self.bearer())
        name = acct.name if acct else None
        prompt = _last_user_text(request)
        if name in self.mock.drop:
            book.record(self.hit(0, name, "chat", prompt))
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if outcome in ("quota", "quota_long"):
            assert acct is not None
            book.record(self.hit(429, name, "chat", prompt))
            error: dict[str, Any] = {
                "type": "usage_limit_reached",
                "message": "The usage limit has been reached",
                "plan_type": "plus",
            }
            if acct.resets_at > 0:  # 0: the backend names no reset
                error["resets_at"] = int(acct.resets_at)
                error["resets_in_seconds"] = max(0, int(acct.resets_at - time.time()))
            self.send_json(429, {"error": error})
        elif outcome == "rate_limit":
            book.record(self.hit(429, name, "chat", prompt))
            wait = str(self.mock.retry_after.get(name or "", 1))
            self.send_json(429, RATE_LIMIT_BODY, headers={**_request_id(), "retry-after": wait})
        elif outcome in ("unauthorized", "revoked"):
            book.record(self.hit(401, name, "chat", prompt))
            self.send_json(401, EXPIRED_BODY)
        else:
            book.record(self.hit(200, name, "chat", prompt))
            self._stream(str(request.get("model") or "gpt-5"), f"Mock answer from {name}.")

    def _stream(self, model: str, answer: str) -> None:
        rid = f"resp_{secrets.token_hex(8)}"
        mid = f"msg_{secrets.token_hex(8)}"
        usage = {
            "input_tokens": 12,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 5,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 17,
        }
        message = {
            "type": "message",
            "id": mid,
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": answer, "annotations": []}],
        }
        events: list[str] = []

        def event(kind: str, data: dict[str, Any]) -> None:
            events.append(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n")

        response = {"id": rid, "object": "response", "model": model, "status": "in_progress"}
        event("response.created", {"response": response})
        event("response.output_item.added", {"output_index": 0, "item": {**message, "content": []}})
        event(
            "response.output_text.delta",
            {"item_id": mid, "output_index": 0, "content_index": 0, "delta": answer},
        )
        event("response.output_item.done", {"output_index": 0, "item": message})
        event(
            "response.completed",
            {"response": {**response, "status": "completed", "output": [message], "usage": usage}},
        )
        self.send(200, "".join(events).encode(), "text/event-stream", headers=self._usage())

    def _usage(self) -> dict[str, str]:
        """The usage headers the backend sends with an answer (codex keeps them in its
        rollout as ``token_count`` ``rate_limits``)."""
        acct = self._account()
        if acct is None:
            return {}
        usage = self.mock.usage.get(acct.name)
        if usage is None:
            return {}
        headers = {}
        for slot, (percent, minutes, resets_at) in usage.items():
            headers[f"x-codex-{slot}-used-percent"] = str(percent)
            headers[f"x-codex-{slot}-window-minutes"] = str(minutes)
            headers[f"x-codex-{slot}-reset-at"] = str(int(resets_at))
        return headers


MockCodex.handler = _Handler


def _claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def _request_id() -> dict[str, str]:
    return {"x-request-id": f"req_{secrets.token_hex(12)}"}


def _last_user_text(request: dict[str, Any]) -> str:
    items = request.get("input")
    if not isinstance(items, list):
        return ""
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""
