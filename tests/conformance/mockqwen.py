"""A loopback stand-in for the Qwen backend, and the CONNECT proxy that leads the CLI to it.

The genuine ``qwen`` CLI talks HTTPS to two places: the API at ``https://<resource_url>/v1``
(from the credential) and the OAuth server at the hard-coded ``https://chat.qwen.ai``. It
honours ``HTTPS_PROXY``, so every connection it makes goes through the shared loopback
harness (:mod:`.loopback`: a CONNECT proxy sending every tunnel to one TLS mock on
127.0.0.1, a throwaway CA). Nothing leaves loopback.

Served: ``POST /v1/chat/completions`` (SSE when ``stream`` is true, as the CLI asks),
per-account quotas keyed by access token, the 429 quota body, a non-quota 429, a 401,
``POST /api/v1/oauth2/token`` (refresh, optionally ``400 invalid_grant``; device-code
polling answers ``authorization_pending``) and ``POST /api/v1/oauth2/device/code``.
Everything else is a 404, and every request is recorded.

Stdlib (``http.server``, ``ssl``, threads) plus ``trustme`` for the CA.
"""

from __future__ import annotations

import email.utils
import json
import secrets
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from .loopback import Hit, Loopback, MockHandler, closed_port

#: What a real credential holds: the API is reached at https://portal.qwen.ai/v1.
RESOURCE_URL = "portal.qwen.ai"
OAUTH_HOST = "chat.qwen.ai"
MODES = ("ok", "quota", "rate_limit", "unauthorized")
REFRESH_MODES = ("ok", "invalid_grant")

QUOTA_BODY = {
    "error": {
        "message": "Free allocated quota exceeded.",
        "type": "insufficient_quota",
        "code": "insufficient_quota",
    }
}
RATE_LIMIT_BODY = {
    "error": {
        "message": "Requests rate limit exceeded, please try again later.",
        "type": "limit_requests",
        "code": "limit_requests",
    }
}
UNAUTHORIZED_BODY = {
    "error": {
        "message": "Incorrect API key provided.",
        "type": "invalid_request_error",
        "code": "invalid_api_key",
    }
}
INVALID_GRANT_BODY = {
    "error": "invalid_grant",
    "error_description": "The refresh token is invalid or expired.",
}


@dataclass
class MockAccount:
    """One account on the mock server. Tokens are secrets: never print them."""

    name: str
    access_token: str
    refresh_token: str
    mode: str = "ok"
    #: Successful answers left before the account answers the quota 429 (None: no cap).
    quota: int | None = None
    refresh: str = "ok"
    answer: str | None = None
    #: When the rate limit asks the CLI to retry fast (keeps the CLI's ~97 s loop short).
    fast_retry: bool = True
    served: int = 0
    refreshed: int = 0
    old_tokens: list[str] = field(default_factory=list)

    def __repr__(self) -> str:  # no tokens
        return f"MockAccount({self.name!r}, mode={self.mode!r}, quota={self.quota!r})"


class MockQwen:
    """The mock backend plus its CONNECT proxy; use as a context manager."""

    def __init__(self, token_prefix: str = "mock") -> None:
        self.token_prefix = token_prefix
        self.lock = threading.Lock()
        self.accounts: dict[str, MockAccount] = {}
        self.hits: list[Hit] = []
        self.loop = Loopback(_ApiHandler, self)

    # --- lifecycle --------------------------------------------------------------------
    def __enter__(self) -> MockQwen:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.loop.start()

    def close(self) -> None:
        self.loop.close()

    @property
    def connects(self) -> list[str]:
        return self.loop.connects

    @property
    def refused_requests(self) -> list[str]:
        return self.loop.refused_requests

    @property
    def api_port(self) -> int:
        return self.loop.api_port

    @property
    def proxy_url(self) -> str:
        return self.loop.proxy_url

    def env(self) -> dict[str, str]:
        """What the CLI's environment needs to reach the mock (and only the mock)."""
        return self.loop.env()

    # --- accounts ---------------------------------------------------------------------
    def _token(self, kind: str, name: str) -> str:
        return f"{self.token_prefix}-{kind}-{name}-{secrets.token_hex(6)}"

    def add_account(
        self,
        name: str,
        *,
        mode: str = "ok",
        quota: int | None = None,
        refresh: str = "ok",
        expired: bool = False,
        answer: str | None = None,
        resource_url: str = RESOURCE_URL,
    ) -> dict[str, Any]:
        """Create an account and return its credential as the CLI stores it."""
        if mode not in MODES or refresh not in REFRESH_MODES:
            raise ValueError(f"unknown mode {mode!r} / refresh {refresh!r}")
        acct = MockAccount(
            name,
            self._token("access", name),
            self._token("refresh", name),
            mode=mode,
            quota=quota,
            refresh=refresh,
            answer=answer,
        )
        with self.lock:
            self.accounts[name] = acct
        expiry = time.time() - 3600 if expired else time.time() + 3600
        return {
            "access_token": acct.access_token,
            "token_type": "Bearer",
            "refresh_token": acct.refresh_token,
            "resource_url": resource_url,
            "expiry_date": int(expiry * 1000),
        }

    def set(self, name: str, **fields: Any) -> None:
        with self.lock:
            acct = self.accounts[name]
            for key, value in fields.items():
                if not hasattr(acct, key):
                    raise AttributeError(key)
                setattr(acct, key, value)

    def account(self, name: str) -> MockAccount:
        return self.accounts[name]

    def secrets(self) -> list[str]:
        """Every token the mock issued (to grep outputs for leaks)."""
        with self.lock:
            found: list[str] = []
            for acct in self.accounts.values():
                found += [acct.access_token, acct.refresh_token, *acct.old_tokens]
            return found

    def chat_hits(self, name: str | None = None) -> list[Hit]:
        return [h for h in self.hits if h.kind == "chat" and (name is None or h.account == name)]

    def hits_of(self, kind: str) -> list[Hit]:
        return [h for h in self.hits if h.kind == kind]

    def reset_log(self) -> None:
        with self.lock:
            self.hits.clear()
        self.loop.reset_log()

    def _by_access(self, token: str) -> MockAccount | None:
        for acct in self.accounts.values():
            if acct.access_token == token:
                return acct
        return None

    def _by_refresh(self, token: str) -> MockAccount | None:
        for acct in self.accounts.values():
            if acct.refresh_token == token:
                return acct
        return None

    def _record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)


# --- the HTTPS server ---------------------------------------------------------------------


class _ApiHandler(MockHandler):
    def _hit(self, status: int, account: str | None, kind: str, prompt: str = "") -> None:
        self.mock._record(self.hit(status, account, kind, prompt))

    def do_GET(self) -> None:
        self.body()
        self._hit(404, None, "other")
        self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = self.body()
        path = self.path.split("?")[0]
        if path.endswith("/chat/completions"):
            self._chat(body)
        elif path == "/api/v1/oauth2/token":
            self._token(body)
        elif path == "/api/v1/oauth2/device/code":
            self._device_code()
        else:
            self._hit(404, None, "other")
            self.send_json(404, {"error": {"message": "not found"}})

    # --- OAuth -----------------------------------------------------------------------
    def _token(self, body: bytes) -> None:
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        grant = form.get("grant_type", "")
        if grant != "refresh_token":
            # device-code polling: nobody is ever going to approve it
            self._hit(400, None, "device_poll")
            self.send_json(400, {"error": "authorization_pending", "error_description": "pending"})
            return
        mock = self.mock
        payload: dict[str, object]
        with mock.lock:
            acct = mock._by_refresh(form.get("refresh_token", ""))
            if acct is None or acct.refresh == "invalid_grant":
                status, payload = 400, dict(INVALID_GRANT_BODY)
            else:
                acct.old_tokens.append(acct.access_token)
                acct.access_token = mock._token("access", acct.name)
                acct.refreshed += 1
                status = 200
                payload = {
                    "access_token": acct.access_token,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "resource_url": RESOURCE_URL,
                }
        self._hit(status, acct.name if acct else None, "refresh")
        self.send_json(status, payload)

    def _device_code(self) -> None:
        code = secrets.token_hex(4).upper()
        self._hit(200, None, "device_code")
        self.send_json(
            200,
            {
                "device_code": secrets.token_hex(16),
                "user_code": f"{code[:4]}-{code[4:]}",
                "verification_uri": f"https://{OAUTH_HOST}/authorize",
                "verification_uri_complete": (
                    f"https://{OAUTH_HOST}/authorize?user_code={code[:4]}-{code[4:]}"
                    "&client=qwen-code"
                ),
                "expires_in": 300,
            },
        )

    # --- chat --------------------------------------------------------------------------
    def _chat(self, body: bytes) -> None:
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            request = {}
        mock = self.mock
        with mock.lock:
            acct = mock._by_access(token)
            if acct is None:
                outcome = "unauthorized"
            elif acct.mode != "ok":
                outcome = acct.mode
            elif acct.quota is not None and acct.served >= acct.quota:
                outcome = "quota"
            else:
                outcome = "ok"
                acct.served += 1
            who = acct.name if acct else "?"
            answer = (acct.answer if acct else None) or f"Mock answer from {who}."
            fast = acct.fast_retry if acct else False
        name = acct.name if acct else None
        prompt = _last_user_text(request)
        if outcome == "quota":
            self._hit(429, name, "chat", prompt)
            self.send_json(429, QUOTA_BODY)
        elif outcome == "rate_limit":
            headers = {}
            if fast:
                # the SDK honours retry-after-ms; the CLI's own loop an HTTP date
                soon = email.utils.formatdate(time.time() + 1, usegmt=True)
                headers = {"retry-after-ms": "5", "retry-after": soon}
            self._hit(429, name, "chat", prompt)
            self.send_json(429, RATE_LIMIT_BODY, headers=headers)
        elif outcome == "unauthorized":
            self._hit(401, name, "chat", prompt)
            self.send_json(401, UNAUTHORIZED_BODY)
        else:
            self._hit(200, name, "chat", prompt)
            self._answer(request, answer)

    def _answer(self, request: dict[str, Any], answer: str) -> None:
        model = str(request.get("model") or "coder-model")
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        if not request.get("stream"):
            self.send_json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
            return

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            obj = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        events = [
            chunk(
                [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": answer},
                        "finish_reason": None,
                    }
                ]
            ),
            chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
            chunk([], usage=usage),
            b"data: [DONE]\n\n",
        ]
        self.send(200, b"".join(events), "text/event-stream", {"Cache-Control": "no-cache"})


def _last_user_text(request: dict[str, Any]) -> str:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


__all__ = [
    "INVALID_GRANT_BODY",
    "MODES",
    "OAUTH_HOST",
    "QUOTA_BODY",
    "RATE_LIMIT_BODY",
    "RESOURCE_URL",
    "UNAUTHORIZED_BODY",
    "Hit",
    "MockAccount",
    "MockQwen",
    "closed_port",
]
