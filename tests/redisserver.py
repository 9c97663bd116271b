"""A real ``redis-server`` (or ``valkey-server``) for tests, on a free loopback port.

``RedisServer(tmp_path)`` starts one with no persistence in its own directory;
``stop()`` ends it (``kill()`` with SIGKILL, as a crash would) and ``start()`` brings it
back on the same port, empty. Tests skip, saying why, when no server binary exists.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from creds import CANARY


def server_binary() -> str | None:
    return shutil.which("redis-server") or shutil.which("valkey-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    def __init__(self, root: Path, *, extra: tuple[str, ...] = ()) -> None:
        binary = server_binary()
        if binary is None:
            pytest.skip("no redis-server or valkey-server on PATH (apt-get install redis-server)")
        self.binary = binary
        self.dir = root / "redis"
        self.dir.mkdir(exist_ok=True)
        self.port = _free_port()
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--logfile",
            str(self.dir / "server.log"),
            *self.extra,
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.binary} did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A server for this test, and a store key for the credentials in ``$CREDROT_STORE_KEY``."""
    from cryptography.fernet import Fernet

    server = RedisServer(tmp_path)
    monkeypatch.setenv("CREDROT_STORE_KEY", Fernet.generate_key().decode())
    monkeypatch.delenv("CREDROT_STORE", raising=False)
    try:
        yield server
    finally:
        server.stop()


def dump(server: RedisServer) -> bytes:
    """Every key and value the server holds, as one blob to grep."""
    import redis

    client = redis.Redis(port=server.port)
    out = []
    for key in client.scan_iter():
        kind = client.type(key)
        if kind == b"hash":
            value = repr(client.hgetall(key))
        elif kind == b"zset":
            value = repr(client.zrange(key, 0, -1, withscores=True))
        else:
            value = repr(client.get(key))
        out.append(key + b" " + value.encode())
    client.close()
    return b"\n".join(out)


CREDROT = str(Path(sys.executable).parent / "credrot")


def machine(root: Path, name: str) -> Path:
    """One "machine": a tool home of its own (the store is all machines share)."""
    home = root / "machines" / name
    home.mkdir(parents=True)
    return home


def credrot_on(
    home: Path, store: str, *args: str, tool: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``credrot [--tool T] --home HOME --store STORE ARGS`` as a real process; what it
    printed never holds the canary token nor a traceback."""
    proc = subprocess.run(
        [
            CREDROT,
            *(("--tool", tool) if tool else ()),
            "--home",
            str(home),
            "--store",
            store,
            *args,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
        env=dict(os.environ),
    )
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert CANARY not in out + err
    assert "Traceback" not in err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
