"""The network every genuine CLI of the conformance suite sees: one TLS mock on loopback.

Each CLI honours ``HTTPS_PROXY``, so every connection it makes goes through a CONNECT
proxy on 127.0.0.1 that tunnels *every* requested host to one TLS server on 127.0.0.1
and nowhere else. That server presents a certificate for whatever name the client asked
for (SNI), issued by a throwaway CA (``trustme``) the CLIs trust through
``NODE_EXTRA_CA_CERTS`` (Node), ``SSL_CERT_FILE`` and ``CODEX_CA_CERTIFICATE`` (Codex's
Rust client). Nothing leaves loopback; a request that is not a CONNECT is refused and
recorded.

A mock is an :class:`http.server.BaseHTTPRequestHandler` subclass (``MockHandler`` has
the helpers) whose ``self.mock`` is the object given to :class:`Loopback`.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Hit:
    """One request a mock answered."""

    host: str
    method: str
    path: str
    status: int
    account: str | None
    kind: str
    at: float
    #: What the CLI sent as the prompt (chat requests), else "".
    prompt: str = ""


class Loopback:
    """The CA, the TLS server and the CONNECT proxy; ``owner`` is the handlers' ``mock``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], owner: object) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        self.connects: list[str] = []
        self.refused_requests: list[str] = []
        self.ca = trustme.CA()
        self._dir = Path(tempfile.mkdtemp(prefix="credrot-loopback-"))
        self.ca_path = self._dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_path))
        self._contexts: dict[str, ssl.SSLContext] = {}
        self.default_ctx = self._context_for(LOOPBACK)
        self.default_ctx.sni_callback = self._sni
        self.api = _TLSServer((LOOPBACK, 0), handler, self)
        self.proxy = _ProxyServer((LOOPBACK, 0), self)
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for server in (self.api, self.proxy):
            thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def close(self) -> None:
        for server in (self.api, self.proxy):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
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
        """What a CLI's environment needs to reach the mock, and only the mock."""
        return {
            "HTTPS_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
            "HTTP_PROXY": self.proxy_url,
            "http_proxy": self.proxy_url,
            "ALL_PROXY": self.proxy_url,
            "NO_PROXY": "",
            "no_proxy": "",
            "NODE_EXTRA_CA_CERTS": str(self.ca_path),
            "SSL_CERT_FILE": str(self.ca_path),
            "CODEX_CA_CERTIFICATE": str(self.ca_path),
        }

    def reset_log(self) -> None:
        with self.lock:
            self.connects.clear()
            self.refused_requests.clear()

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


class MockHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with the helpers every mock uses; ``self.mock`` is the Loopback's owner."""

    protocol_version = "HTTP/1.1"
    server: _TLSServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def mock(self) -> Any:
        return self.server.loop.owner

    @property
    def host(self) -> str:
        return (self.headers.get("Host") or "").split(":")[0]

    @property
    def route(self) -> str:
        return self.path.split("?")[0]

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def json_body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body() or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def bearer(self) -> str:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else ""

    def send(
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

    def send_json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(obj).encode(), headers=headers)

    def hit(self, status: int, account: str | None, kind: str, prompt: str = "") -> Hit:
        return Hit(self.host, self.command, self.route, status, account, kind, time.time(), prompt)


class _TLSServer(ThreadingHTTPServer):
    """TLS is negotiated in the request's own thread, so a slow client blocks nobody."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler], loop: Loopback
    ) -> None:
        self.loop = loop
        self.handler = handler
        super().__init__(addr, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.loop.default_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.handler(tls, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-answer (a killed CLI) is normal here


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], loop: Loopback) -> None:
        self.loop = loop
        super().__init__(addr, _ProxyHandler)

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
        loop = self.server.loop
        if len(parts) < 2 or parts[0].upper() != "CONNECT":
            with loop.lock:
                loop.refused_requests.append(line[:200])
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        with loop.lock:
            loop.connects.append(parts[1])
        # whatever host was asked for, the tunnel ends at the mock on loopback
        upstream = socket.create_connection((LOOPBACK, loop.api_port), timeout=10)
        upstream.settimeout(None)
        self.wfile.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        self.wfile.flush()
        try:
            _pipe(self.connection, upstream)
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
