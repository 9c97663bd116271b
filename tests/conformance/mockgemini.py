"""A loopback stand-in for what Gemini CLI 0.61.0 talks to with a Google login.

Served (on the shared harness, :mod:`.loopback`):

- ``oauth2.googleapis.com``: ``POST /token`` (a form-encoded refresh; Google keeps the
  refresh token, so the answer holds a new access token only; ``invalid_grant`` when
  the account's refresh is refused) and ``/tokeninfo`` (the CLI checks a cached token
  with it before any call; an unknown or revoked token is ``invalid_token``).
- ``www.googleapis.com/oauth2/v2/userinfo``: the account's e-mail.
- ``cloudcode-pa.googleapis.com/v1internal``: ``:loadCodeAssist`` (a standard tier with
  a project), ``:retrieveUserQuota`` (one bucket per model), ``:generateContent`` (the
  model router's JSON classification, or an answer), ``:streamGenerateContent`` (SSE,
  the answer); the metrics, experiments and settings calls answer ``{}``.

What a chat request answers depends on the account's mode: ``ok``; ``quota`` (the
capacity 429 with the reset in its message and ``RetryInfo``, as Code Assist sends it);
``daily`` (a ``PerDay`` quota violation); ``rate_limit`` (a bare 429);
``unauthorized`` (the API's 401 ``UNAUTHENTICATED``); ``revoked`` (the token is refused
by ``tokeninfo`` and its refresh by ``/token``: the CLI wants a new login).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from .book import Account, ProviderMock
from .loopback import MockHandler

MODES = ("ok", "quota", "daily", "rate_limit", "unauthorized", "revoked")
PROJECT = "mock-project-123"
CODE_ASSIST_HOST = "cloudcode-pa.googleapis.com"
SCOPE = (
    "https://www.googleapis.com/auth/cloud-platform "
    "https://www.googleapis.com/auth/userinfo.email "
    "https://www.googleapis.com/auth/userinfo.profile openid"
)
UNAUTHENTICATED_BODY = {
    "error": {
        "code": 401,
        "message": "Request had invalid authentication credentials. Expected OAuth 2 access "
        "token, login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "status": "UNAUTHENTICATED",
    }
}
RATE_LIMIT_BODY = {
    "error": {
        "code": 429,
        "message": "Resource has been exhausted (e.g. check quota).",
        "status": "RESOURCE_EXHAUSTED",
    }
}
INVALID_GRANT_BODY = {
    "error": "invalid_grant",
    "error_description": "Token has been expired or revoked.",
}
#: The model router's classification (both shapes 0.61 has asked for): a simple task.
ROUTER_ANSWER = {
    "complexity_reasoning": "A one-line reply.",
    "complexity_score": 5,
    "reasoning": "A one-line reply.",
    "model_choice": "flash",
}
INVALID_TOKEN_BODY = {"error": "invalid_token", "error_description": "Invalid Value"}


def duration(seconds: float) -> str:
    """``8h44m7s`` as Code Assist writes a reset delay."""
    left = max(0, round(seconds))
    hours, rest = divmod(left, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def capacity_body(model: str, delay: float) -> dict[str, Any]:
    """The 429 of a spent capacity quota, with its reset (message and ``RetryInfo``)."""
    return {
        "error": {
            "code": 429,
            "message": "You have exhausted your capacity on this model. Your quota will reset "
            f"after {duration(delay)}.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "QUOTA_EXHAUSTED",
                    "domain": CODE_ASSIST_HOST,
                    "metadata": {"uiMessage": "true", "model": model},
                },
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{max(delay, 0.001):.6f}s",
                },
            ],
        }
    }


def daily_body(model: str) -> dict[str, Any]:
    return {
        "error": {
            "code": 429,
            "message": f"Quota exceeded for quota metric 'Gemini {model} Requests' and limit "
            "'Gemini Requests per day per user' of service 'cloudcode-pa.googleapis.com'.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "subject": "user",
                            "description": "Gemini Requests per day per user",
                            "quotaId": "GeminiRequestsPerDayPerUser",
                        }
                    ],
                }
            ],
        }
    }


class MockGemini(ProviderMock):
    def credential(self, acct: Account, *, expires_in: float = 3600.0) -> dict[str, Any]:
        """The account's ``oauth_creds.json`` as the CLI writes it."""
        return {
            "access_token": acct.access_token,
            "refresh_token": acct.refresh_token,
            "scope": SCOPE,
            "token_type": "Bearer",
            "id_token": f"{acct.name}-id-token-not-a-secret",
            "expiry_date": int((time.time() + expires_in) * 1000),
        }

    def add_account(
        self, name: str, *, mode: str = "ok", expires_in: float = 3600.0, **fields: object
    ) -> dict[str, Any]:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        fields.setdefault("resets_at", time.time() + 3 * 3600)
        acct = self.book.add(name, **fields)
        acct.mode = mode
        if mode == "revoked":
            acct.refresh = "invalid_grant"
        return self.credential(acct, expires_in=expires_in)

    def refresh(self, token: str) -> Account | None:
        """A Google refresh: a new access token; the refresh token stays valid."""
        book = self.book
        with book.lock:
            for acct in book.accounts.values():
                if token and acct.refresh_token == token:
                    if acct.refresh != "ok" or acct.mode == "revoked":
                        return None
                    acct.old_access.append(acct.access_token)
                    acct.access_token = book.token("access", acct.name)
                    acct.refreshed += 1
                    return acct
        return None

    def api_hits(self, method: str, name: str | None = None) -> list[Any]:
        return self.book.hits_of(method, name)


class _Handler(MockHandler):
    def do_GET(self) -> None:
        self.body()
        self._dispatch({})

    def do_POST(self) -> None:
        raw = self.body()
        ctype = self.headers.get("Content-Type", "")
        form: dict[str, Any]
        if "x-www-form-urlencoded" in ctype:
            form = {k: v[-1] for k, v in urllib.parse.parse_qs(raw.decode()).items()}
        else:
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                data = {}
            form = data if isinstance(data, dict) else {}
        self._dispatch(form)

    # ------------------------------------------------------------------ routing
    def _dispatch(self, form: dict[str, Any]) -> None:
        host, route = self.host, self.route
        book = self.mock.book
        if host == "oauth2.googleapis.com" and route == "/token":
            self._token(form)
        elif host == "oauth2.googleapis.com" and route == "/tokeninfo":
            self._tokeninfo(form)
        elif host == "www.googleapis.com" and route == "/oauth2/v2/userinfo":
            acct = book.by_access(self.bearer())
            if acct is None:
                book.record(self.hit(401, None, "userinfo"))
                self.send_json(401, UNAUTHENTICATED_BODY)
            else:
                book.record(self.hit(200, acct.name, "userinfo"))
                self.send_json(200, {"id": "1", "email": f"{acct.name}@example.com"})
        elif host == CODE_ASSIST_HOST and route.startswith("/v1internal:"):
            self._code_assist(route.split(":", 1)[1], form)
        else:
            book.record(self.hit(404, None, "other"))
            self.send_json(404, {"error": {"code": 404, "message": "Not found"}})

    def _token(self, form: dict[str, Any]) -> None:
        book = self.mock.book
        acct = self.mock.refresh(str(form.get("refresh_token", "")))
        if acct is None:
            owner = next(
                (a for a in book.accounts.values() if a.refresh_token == form.get("refresh_token")),
                None,
            )
            book.record(self.hit(400, owner.name if owner else None, "refresh"))
            self.send_json(400, INVALID_GRANT_BODY)
            return
        book.record(self.hit(200, acct.name, "refresh"))
        self.send_json(
            200,
            {
                "access_token": acct.access_token,
                "expires_in": 3599,
                "scope": SCOPE,
                "token_type": "Bearer",
                "id_token": f"{acct.name}-id-token-not-a-secret",
            },
        )

    def _tokeninfo(self, form: dict[str, Any]) -> None:
        book = self.mock.book
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        token = str(form.get("access_token") or (query.get("access_token") or [""])[0])
        token = token or self.bearer()
        acct = book.by_access(token)
        if acct is None or acct.mode == "revoked":
            book.record(self.hit(400, acct.name if acct else None, "tokeninfo"))
            self.send_json(400, INVALID_TOKEN_BODY)
            return
        book.record(self.hit(200, acct.name, "tokeninfo"))
        self.send_json(
            200,
            {
                "azp": "mock-client",
                "aud": "mock-client",
                "sub": "1",
                "scope": SCOPE,
                "exp": str(int(time.time()) + 3000),
                "expires_in": "3000",
                "email": f"{acct.name}@example.com",
                "email_verified": "true",
                "access_type": "offline",
            },
        )

    def _code_assist(self, method: str, request: dict[str, Any]) -> None:
        book = self.mock.book
        if method in ("generateContent", "streamGenerateContent"):
            self._generate(method, request)
            return
        acct = book.by_access(self.bearer())
        name = acct.name if acct else None
        if acct is None or acct.mode == "revoked":
            book.record(self.hit(401, name, method))
            self.send_json(401, UNAUTHENTICATED_BODY)
            return
        book.record(self.hit(200, name, method))
        if method == "loadCodeAssist":
            tier: dict[str, Any] = {
                "id": "standard-tier",
                "name": "Gemini Code Assist",
                "isDefault": True,
            }
            self.send_json(
                200,
                {
                    "currentTier": dict(tier, hasOnboardedPreviously=True),
                    "allowedTiers": [tier],
                    "cloudaicompanionProject": PROJECT,
                },
            )
        elif method == "retrieveUserQuota":
            reset = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(acct.resets_at))
            spent = acct.mode in ("quota", "daily")
            self.send_json(
                200,
                {
                    "buckets": [
                        {
                            "modelId": model,
                            "tokenType": "REQUESTS",
                            "remainingFraction": 0.0 if spent else 0.75,
                            "remainingAmount": "0" if spent else "750",
                            "resetTime": reset,
                        }
                        for model in ("gemini-3.5-flash", "gemini-3-pro-preview")
                    ]
                },
            )
        else:
            self.send_json(200, {})

    def _generate(self, method: str, request: dict[str, Any]) -> None:
        book = self.mock.book
        model = str(request.get("model") or "gemini")
        found = request.get("request")
        inner: dict[str, Any] = found if isinstance(found, dict) else {}
        system = json.dumps(inner.get("systemInstruction") or {})
        router = "Task Routing" in system or "model_choice" in system
        kind = "router" if router else "chat"
        prompt = _last_user_text(inner)
        acct, outcome = book.chat_outcome(self.bearer())
        name = acct.name if acct else None
        if outcome == "revoked":
            outcome = "unauthorized"
        if outcome == "quota":
            assert acct is not None
            book.record(self.hit(429, name, kind, prompt))
            self.send_json(429, capacity_body(model, acct.resets_at - time.time()))
        elif outcome == "daily":
            book.record(self.hit(429, name, kind, prompt))
            self.send_json(429, daily_body(model))
        elif outcome == "rate_limit":
            book.record(self.hit(429, name, kind, prompt))
            self.send_json(429, RATE_LIMIT_BODY)
        elif outcome == "unauthorized":
            book.record(self.hit(401, name, kind, prompt))
            self.send_json(401, UNAUTHENTICATED_BODY)
        else:
            book.record(self.hit(200, name, kind, prompt))
            text = json.dumps(ROUTER_ANSWER) if router else f"Mock answer from {name}."
            response = _response(text, model)
            if method == "generateContent":
                self.send_json(200, response)
            else:
                self.send(
                    200, f"data: {json.dumps(response)}\r\n\r\n".encode(), "text/event-stream"
                )


MockGemini.handler = _Handler


def _response(text: str, model: str) -> dict[str, Any]:
    return {
        "response": {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
            ],
            "usageMetadata": {
                "promptTokenCount": 5,
                "candidatesTokenCount": 5,
                "totalTokenCount": 10,
            },
            "modelVersion": model,
        },
        "traceId": "mock-trace",
    }


def _last_user_text(request: dict[str, Any]) -> str:
    contents = request.get("contents")
    if not isinstance(contents, list):
        return ""
    for content in reversed(contents):
        if isinstance(content, dict) and content.get("role") == "user":
            parts = content.get("parts")
            if isinstance(parts, list):
                return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
    return ""
