"""A loopback stand-in for the Alibaba Cloud Coding Plan API, as current Qwen Code sees it.

The Coding Plan is OpenAI-compatible at ``https://coding.dashscope.aliyuncs.com/v1`` with
``sk-sp-…`` API keys. Served there (on the shared harness, :mod:`.loopback`):
``POST /v1/chat/completions`` (SSE when ``stream`` is true, as the CLI asks; one JSON
answer otherwise) and ``GET /v1/models``. Everything else is a 404.

What a key's request answers depends on its mode: ``ok``; ``hour`` / ``week`` /
``month`` (HTTP 429 ``hour|week|month allocated quota exceeded``, DashScope's
``Throttling.AllocationQuota``); ``rate_limit`` (429 ``Throttling.RateQuota``, requests
per minute); ``unauthorized`` (401 ``invalid_api_key``). Keys carry the test's canary.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .loopback import Hit, Loopback, MockHandler

HOST = "coding.dashscope.aliyuncs.com"
BASE_URL = f"https://{HOST}/v1"
MODEL = "qwen3-coder-plus"
MODES = ("ok", "hour", "week", "month", "rate_limit", "unauthorized")


def quota_body(window: str) -> dict[str, Any]:
    return {
        "error": {
            "message": f"{window} allocated quota exceeded",
            "type": "Throttling.AllocationQuota",
            "code": "Throttling.AllocationQuota",
        },
        "request_id": str(uuid.uuid4()),
    }


RATE_LIMIT_BODY = {
    "error": {
        "message": "Requests rate limit exceeded, please try again later.",
        "type": "Throttling.RateQuota",
        "code": "Throttling.RateQuota",
    }
}
UNAUTHORIZED_BODY = {
    "error": {
        "message": "Incorrect API key provided. ",
        "type": "invalid_request_error",
        "code": "invalid_api_key",
    }
}


@dataclass
class Key:
    """One API key of the plan. The key is a secret: the repr shows none."""

    name: str
    key: str
    mode: str = "ok"
    served: int = 0

    def __repr__(self) -> str:
        return f"Key({self.name!r}, mode={self.mode!r})"


class MockQwenKey:
    """The Coding Plan API on loopback; a context manager."""

    def __init__(self, token_prefix: str = "mock") -> None:
        self.token_prefix = token_prefix
        self.lock = threading.Lock()
        self.keys: dict[str, Key] = {}
        self.hits: list[Hit] = []
        self.loop = Loopback(_Handler, self)

    def __enter__(self) -> MockQwenKey:
        self.loop.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.close()

    def env(self) -> dict[str, str]:
        return self.loop.env()

    @property
    def connects(self) -> list[str]:
        return self.loop.connects

    def add_key(self, name: str, mode: str = "ok") -> str:
        """A new key; returns its account file (``KEY=value`` lines) as credrot imports it."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        key = Key(name, f"sk-sp-{self.token_prefix}-{name}-{secrets.token_hex(8)}", mode)
        with self.lock:
            self.keys[name] = key
        return f"OPENAI_API_KEY={key.key}\nOPENAI_BASE_URL={BASE_URL}\nOPENAI_MODEL={MODEL}\n"

    def key(self, name: str) -> Key:
        return self.keys[name]

    def by_key(self, token: str) -> Key | None:
        with self.lock:
            return next((k for k in self.keys.values() if k.key == token), None)

    def record(self, hit: Hit) -> None:
        with self.lock:
            self.hits.append(hit)

    def chats(self, name: str | None = None) -> list[Hit]:
        with self.lock:
            return [
                h for h in self.hits if h.kind == "chat" and (name is None or h.account == name)
            ]

    def secrets(self) -> list[str]:
        with self.lock:
            return [k.key for k in self.keys.values()]


class _Handler(MockHandler):
    def do_GET(self) -> None:
        self.body()
        key = self.mock.by_key(self.bearer())
        if self.host == HOST and self.route == "/v1/models" and key is not None:
            self.mock.record(self.hit(200, key.name, "models"))
            self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            return
        self.mock.record(self.hit(404, None, "other"))
        self.send_json(404, {"error": {"message": "Not found", "code": "NotFound"}})

    def do_POST(self) -> None:
        request = self.json_body()
        if self.host != HOST or self.route != "/v1/chat/completions":
            self.mock.record(self.hit(404, None, "other"))
            self.send_json(404, {"error": {"message": "Not found", "code": "NotFound"}})
            return
        key = self.mock.by_key(self.bearer())
        prompt = _last_user_text(request)
        if key is None or key.mode == "unauthorized":
            self.mock.record(self.hit(401, key.name if key else None, "chat", prompt))
            self.send_json(401, UNAUTHORIZED_BODY)
        elif key.mode in ("hour", "week", "month"):
            self.mock.record(self.hit(429, key.name, "chat", prompt))
            self.send_json(429, quota_body(key.mode))
        elif key.mode == "rate_limit":
            self.mock.record(self.hit(429, key.name, "chat", prompt))
            self.send_json(429, RATE_LIMIT_BODY)
        else:
            with self.mock.lock:
                key.served += 1
            self.mock.record(self.hit(200, key.name, "chat", prompt))
            self._answer(request, f"Mock answer from {key.name}.")

    def _answer(self, request: dict[str, Any], answer: str) -> None:
        model = str(request.get("model") or MODEL)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        if not request.get("stream"):
            message = {"role": "assistant", "content": answer}
            self.send_json(
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
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

        delta = {"role": "assistant", "content": answer}
        events = [
            chunk([{"index": 0, "delta": delta, "finish_reason": None}]),
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
