"""A loopback stand-in for what Claude Code 2.1.332 talks to, on the shared harness.

Served (all under ``api.anthropic.com`` unless named): ``GET /api/oauth/profile`` (must
answer 200 before any call), ``POST /v1/messages`` (an SSE stream of Messages events),
``POST platform.claude.com/v1/oauth/token`` (JSON refresh, single-use refresh tokens).
Everything else (bootstrap, event logging, ...) is a 404, as the CLI tolerates.

Quota is the genuine 429 with ``anthropic-ratelimit-unified-status: rejected``, the
claim (``five_hour``; ``seven_day`` for ``quota_long``) and the reset epoch; a plain 429
is a rate limit; 401 an expired token; 403 ``OAuth token has been revoked``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .book import Account, ProviderMock
from .loopback import MockHandler

RATE_LIMIT_BODY = {
    "type": "error",
    "error": {
        "type": "rate_limit_error",
        "message": "This request would exceed your account's rate limit. Please try again later.",
    },
}
EXPIRED_BODY = {
    "type": "error",
    "error": {
        "type": "authentication_error",
        "message": "OAuth token has expired. Please obtain a new token or refresh your existing "
        "token.",
    },
}
REVOKED_BODY = {
    "type": "error",
    "error": {"type": "permission_error", "message": "OAuth token has been revoked."},
}
PROFILE = {
    "account": {"uuid": "acct-uuid", "email_address": "user@example.com", "full_name": "User"},
    "organization": {"uuid": "org-uuid", "name": "Org", "organization_type": "claude_max"},
}


class MockClaude(ProviderMock):
    def credential(self, acct: Account, *, expires_in: float = 3600.0) -> dict[str, Any]:
        """The account's ``.credentials.json`` as the CLI stores it."""
        return {
            "claudeAiOauth": {
                "accessToken": acct.access_token,
                "refreshToken": acct.refresh_token,
                "expiresAt": int((time.time() + expires_in) * 1000),
                "scopes": ["user:inference", "user:profile"],
                "subscriptionType": "max",
            }
        }

    def add_account(
        self, name: str, *, expires_in: float = 3600.0, **fields: object
    ) -> dict[str, Any]:
        fields.setdefault("resets_at", time.time() + 3 * 3600)
        return self.credential(self.book.add(name, **fields), expires_in=expires_in)


class _Handler(MockHandler):
    def do_GET(self) -> None:
        self.body()
        if self.route == "/api/oauth/profile":
            self.mock.book.record(self.hit(200, None, "profile"))
            self.send_json(200, PROFILE)
            return
        self.mock.book.record(self.hit(404, None, "other"))
        self.send_json(404, {"type": "error", "error": {"type": "not_found_error"}})

    def do_POST(self) -> None:
        if self.route == "/v1/messages":
            self._messages(self.json_body())
        elif self.route == "/v1/oauth/token" and self.host == "platform.claude.com":
            self._token(self.json_body())
        else:
            self.body()
            self.mock.book.record(self.hit(404, None, "other"))
            self.send_json(404, {"type": "error", "error": {"type": "not_found_error"}})

    def _token(self, form: dict[str, Any]) -> None:
        book = self.mock.book
        acct, verdict = book.refresh(str(form.get("refresh_token", "")))
        name = acct.name if acct else None
        if verdict != "ok" or acct is None:
            book.record(self.hit(400, name, "refresh"))
            self.send_json(
                400, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
            )
            return
        book.record(self.hit(200, name, "refresh"))
        self.send_json(
            200,
            {
                "access_token": acct.access_token,
                "refresh_token": acct.refresh_token,
                "expires_in": 3600,
                "token_type": "Bearer",
                "scope": "user:inference user:profile",
            },
        )

    def _messages(self, request: dict[str, Any]) -> None:
        book = self.mock.book
        acct, outcome = book.chat_outcome(self.bearer())
        name = acct.name if acct else None
        prompt = _last_user_text(request)
        if outcome in ("quota", "quota_long"):
            assert acct is not None
            claim = "seven_day" if outcome == "quota_long" else "five_hour"
            headers = {
                "anthropic-ratelimit-unified-status": "rejected",
                "anthropic-ratelimit-unified-representative-claim": claim,
                "anthropic-ratelimit-unified-reset": str(int(acct.resets_at)),
            }
            book.record(self.hit(429, name, "chat", prompt))
            self.send_json(429, RATE_LIMIT_BODY, headers=headers)
        elif outcome == "rate_limit":
            book.record(self.hit(429, name, "chat", prompt))
            self.send_json(429, RATE_LIMIT_BODY, headers={"retry-after": "1"})
        elif outcome == "revoked":
            book.record(self.hit(403, name, "chat", prompt))
            self.send_json(403, REVOKED_BODY)
        elif outcome == "unauthorized":
            book.record(self.hit(401, name, "chat", prompt))
            self.send_json(401, EXPIRED_BODY)
        else:
            book.record(self.hit(200, name, "chat", prompt))
            self._stream(str(request.get("model") or "claude"), f"Mock answer from {name}.")

    def _stream(self, model: str, answer: str) -> None:
        events: list[str] = []

        def event(kind: str, data: dict[str, Any]) -> None:
            events.append(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n")

        usage = {"input_tokens": 5, "output_tokens": 1}
        message = {"id": "msg_mock", "type": "message", "role": "assistant", "model": model}
        event(
            "message_start",
            {"message": {**message, "content": [], "stop_reason": None, "usage": usage}},
        )
        event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": answer}})
        event("content_block_stop", {"index": 0})
        event(
            "message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}}
        )
        event("message_stop", {})
        self.send(200, "".join(events).encode(), "text/event-stream")


MockClaude.handler = _Handler


def _last_user_text(request: dict[str, Any]) -> str:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""
