"""A loopback stand-in for the Qwen backend, and the CONNECT proxy that leads the CLI to it.

The genuine ``qwen`` CLI talks HTTPS to two places: the API at ``https://<resource_url>/v1``
(from the credential) and the OAuth server at the hard-coded ``https://chat.qwen.ai``. It
honours ``HTTPS_PROXY``, so every connection it makes goes through :class:`MockQwen`'s
CONNECT proxy, which tunnels *every* requested host to the mock's TLS server on
127.0.0.1 and nowhere else. The mock presents a certificate for whatever name the client
asked for (SNI), issued by a throwaway CA (``trustme``) that the CLI trusts through
``NODE_EXTRA_CA_CERTS``. Nothing leaves loopback.

Served: ``POST /v1/chat/completions`` (SSE when ``stream`` is true, as the CLI asks),
per-account quotas keyed by access token, the 429 quota body, a non-quota 429, a 401,
``POST /api/v1/oauth2/token`` (refresh, optionally ``400 invalid_grant``; device-code
polling answers ``authorization_pending``) and ``POST /api/v1/oauth2/device/code``.
Everything else is a 404, and every request is recorded.

Stdlib (``http.server``, ``ssl``, threads) plus ``trustme`` for the CA.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import secrets
import select
import socket
import socketserver
import ssl
import tempfile
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

LOOPBACK = "127.0.0.1"
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


@dataclass(frozen=True)
class Hit:
    """One request the mock answered."""

    host: str
    method: str
    path: str
    status: int
    account: str | None
    kind: str  # chat / refresh / device_code / device_poll / other
    at: float
    #: The last user message of a chat request (what the CLI sent as the prompt).
    prompt: str = ""


class MockQwen:
    """The mock backend plus its CONNECT proxy; use as a context manager."""

    def __init__(self, token_prefix: str = "mock") -> None:
        self.token_prefix = token_prefix
        self.lock = threading.Lock()
        self.accounts: dict[str, MockAccount] = {}
        self.hits: list[Hit] = []
        self.connects: list[str] = []
        self.refused_requests: list[str] = []
        self.ca = trustme.CA()
        self._dir = Path(tempfile.mkdtemp(prefix="mockqwen-"))
        self.ca_path = self._dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._default_ctx = self._context_for(LOOPBACK)
        self._default_ctx.sni_callback = self._sni
        self.api = _TLSServer((LOOPBACK, 0), self)
        self.proxy = _ProxyServer((LOOPBACK, 0), _ProxyHandler, self)
        self._threads: list[threading.Thread] = []

    # --- lifecycle --------------------------------------------------------------------
    def __enter__(self) -> MockQwen:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        for server in (self.api, self.proxy):
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        for server in (self.api, self.proxy):
            server.shutdown()
            server.server_close()
        with contextlib.suppress(OSError):
            self.ca_path.unlink()
            self._dir.rmdir()

    @property
    def api_port(self) -> int:
        return int(self.api.server_address[1])

    @property
    def proxy_url(self) -> str:
        return f"http://{LOOPBACK}:{self.proxy.server_address[1]}"

    def env(self) -> dict[str, str]:
        """What the CLI's environment needs to reach the mock (and only the mock)."""
        return {
            "HTTPS_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
            "HTTP_PROXY": self.proxy_url,
            "http_proxy": self.proxy_url,
            "NO_PROXY": "",
            "no_proxy": "",
            "NODE_EXTRA_CA_CERTS": str(self.ca_path),
        }

    # --- TLS --------------------------------------------------------------------------
    def _context_for(self, host: str) -> ssl.SSLContext:
        with self.lock:
            ctx = self._contexts.get(host)
            if ctx is None:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                self.ca.issue_cert(host).configure_cert(ctx)
                ctx.set_alpn_protocols(["http/1.1"])
                self._contexts[host] = ctx
            return ctx

    def _sni(self, sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
        if name:
            sock.context = self._context_for(name)

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
            self.connects.clear()

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


class _TLSServer(ThreadingHTTPServer):
    """TLS is negotiated in the request's own thread, so a slow client blocks nobody."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], mock: MockQwen) -> None:
        self.mock = mock
        super().__init__(addr, _ApiHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.mock._default_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            _ApiHandler(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-answer (a killed CLI) is normal here


class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def mock(self) -> MockQwen:
        return self.server.mock

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _hit(self, status: int, account: str | None, kind: str, prompt: str = "") -> None:
        host = (self.headers.get("Host") or "").split(":")[0]
        path = self.path.split("?")[0]
        hit = Hit(host, self.command, path, status, account, kind, time.time(), prompt)
        self.mock._record(hit)

    def do_GET(self) -> None:
        self._body()
        self._hit(404, None, "other")
        self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = self._body()
        path = self.path.split("?")[0]
        if path.endswith("/chat/completions"):
            self._chat(body)
        elif path == "/api/v1/oauth2/token":
            self._token(body)
        elif path == "/api/v1/oauth2/device/code":
            self._device_code()
        else:
            self._hit(404, None, "other")
            self._json(404, {"error": {"message": "not found"}})

    # --- OAuth -----------------------------------------------------------------------
    def _token(self, body: bytes) -> None:
        form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
        grant = form.get("grant_type", "")
        if grant != "refresh_token":
            # device-code polling: nobody is ever going to approve it
            self._hit(400, None, "device_poll")
            self._json(400, {"error": "authorization_pending", "error_description": "pending"})
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
        self._json(status, payload)

    def _device_code(self) -> None:
        code = secrets.token_hex(4).upper()
        self._hit(200, None, "device_code")
        self._json(
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
            self._json(429, QUOTA_BODY)
        elif outcome == "rate_limit":
            headers = {}
            if fast:
                # the SDK honours retry-after-ms; the CLI's own loop an HTTP date
                soon = email.utils.formatdate(time.time() + 1, usegmt=True)
                headers = {"retry-after-ms": "5", "retry-after": soon}
            self._hit(429, name, "chat", prompt)
            self._json(429, RATE_LIMIT_BODY, headers=headers)
        elif outcome == "unauthorized":
            self._hit(401, name, "chat", prompt)
            self._json(401, UNAUTHORIZED_BODY)
        else:
            self._hit(200, name, "chat", prompt)
            self._answer(request, answer)

    def _answer(self, request: dict[str, Any], answer: str) -> None:
        model = str(request.get("model") or "coder-model")
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
        if not request.get("stream"):
            self._json(
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
        self._send(200, b"".join(events), "text/event-stream", {"Cache-Control": "no-cache"})


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


# --- the CONNECT proxy --------------------------------------------------------------------


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type[Any], mock: MockQwen) -> None:
        self.mock = mock
        super().__init__(addr, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class _ProxyHandler(socketserver.StreamRequestHandler):
    """``CONNECT any-host:any-port`` -> a tunnel to the mock; anything else is refused."""

    server: _ProxyServer
    rbufsize = 0  # unbuffered: no byte of the tunnel may be left behind in a buffer

    def handle(self) -> None:
        line = self.rfile.readline(8192).decode("latin-1").strip()
        while True:  # drop the request headers
            header = self.rfile.readline(8192)
            if header in (b"\r\n", b"\n", b""):
                break
        parts = line.split()
        mock = self.server.mock
        if len(parts) < 2 or parts[0].upper() != "CONNECT":
            with mock.lock:
                mock.refused_requests.append(line[:200])
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with mock.lock:
            mock.connects.append(parts[1])
        # whatever host was asked for, the tunnel ends at the mock on loopback
        upstream = socket.create_connection((LOOPBACK, mock.api_port), timeout=10)
        upstream.settimeout(None)
        self.wfile.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        self.wfile.flush()
        client: socket.socket = self.connection
        try:
            _pipe(client, upstream)
        finally:
            with contextlib.suppress(OSError):
                upstream.close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both sides are done (a half-close is passed on)."""
    peers = {a: b, b: a}
    open_ = [a, b]
    while open_:
        try:
            ready, _, _ = select.select(open_, [], [], 120)
        except (OSError, ValueError):
            return
        if not ready:
            return
        for sock in ready:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                open_.remove(sock)
                with contextlib.suppress(OSError):
                    peers[sock].shutdown(socket.SHUT_WR)
                continue
            try:
                peers[sock].sendall(data)
            except OSError:
                return


def closed_port() -> int:
    """A loopback port nothing listens on (a connection there is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


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
