"""Live view and notification benchmarks (run by ``nox -s bench``).

1. ``Wrapper.call`` on a 1 ms tool with notifications configured (a webhook on
   127.0.0.1, every event) against the same call without, in the same run: what the
   notifier costs a call that changes nothing (it reads what the log gained). Target:
   at most 1.10x.
2. One ``credrot top`` refresh (accounts, call homes, what a full ``rotation.log``
   gained) against ``list_accounts`` alone, on 5 accounts. Target: at most 3x: the view
   may read more than the list, but never lock or rescan the log. The first look (the
   end of the log, parsed for switches and hits) is printed beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from credrot.live import snapshot
from credrot.manager import AccountManager
from credrot.tools import QWEN
from credrot.wrapper import Wrapper

ROUNDS = 300
TARGET_NOTIFY = 1.10
TARGET_SNAPSHOT = 3.0


class _Quiet(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _interleaved(rounds: int, *runs: Callable[[], object]) -> list[float]:
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _row(name: str, base_name: str, base: float, timed: float, target: float) -> bool:
    ratio = timed / base
    ok = ratio <= target
    print(
        f"{name}: {base_name} {base * 1000:.3f} ms, {timed * 1000:.3f} ms -> {ratio:.3f}x"
        f" (target <= {target}x) {'ok' if ok else 'OVER TARGET'}"
    )
    return ok


def _quick_manager(root: Path, name: str, cred: bytes) -> AccountManager:
    quick = root / "quick-tool"
    if not quick.exists():
        quick.write_text('#!/bin/sh\nread -r line\necho "$line"\n')
        quick.chmod(0o755)
    manager = AccountManager(tool=replace(QWEN, executable=str(quick)), home=root / name)
    manager.import_account(cred)
    return manager


def notify_overhead(root: Path) -> bool:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cred = json.dumps(
        {
            "access_token": "bench-access",
            "refresh_token": "bench-refresh",
            "token_type": "Bearer",
            "resource_url": "portal.qwen.ai",
            "expiry_date": int(time.time() * 1000) + 86_400_000,
        }
    ).encode()
    try:
        config = root / "config.yaml"
        config.write_text(f"notify:\n  webhook: http://127.0.0.1:{server.server_port}/x\n")
        os.environ["CREDROT_CONFIG"] = str(root / "none.yaml")
        plain = Wrapper(manager=_quick_manager(root, "plain", cred))
        plain.call("warm")  # its events are built without notify
        os.environ["CREDROT_CONFIG"] = str(config)
        told = Wrapper(manager=_quick_manager(root, "told", cred))
        told.call("warm")  # ... and these with it
        assert any(type(p).__name__ == "Notifier" for p in told.manager.events.pm.get_plugins())
        base, timed = _interleaved(ROUNDS, lambda: plain.call("hi"), lambda: told.call("hi"))
        return _row("Wrapper.call, notify on", "notify off", base, timed, TARGET_NOTIFY)
    finally:
        os.environ.pop("CREDROT_CONFIG", None)
        server.shutdown()
        server.server_close()


def snapshot_cost(root: Path) -> bool:
    manager = AccountManager(home=root / "pool")
    for i in range(1, 6):
        manager.import_account(
            json.dumps(
                {
                    "access_token": f"a{i}",
                    "refresh_token": f"r{i}",
                    "token_type": "Bearer",
                    "resource_url": "portal.qwen.ai",
                    "expiry_date": int(time.time() * 1000) + 86_400_000,
                }
            ).encode()
        )
    line = {"time": "2026-12-01T00:00:00Z", "event": "call", "tool": "qwen", "to": 1}
    with open(manager.log_path, "a") as fh:
        while fh.tell() < 990_000:
            fh.write(json.dumps(line) + "\n")
    watcher = snapshot.Watcher(manager)
    watcher.take()  # the first look reads the end of the log; a refresh reads what it gained
    base, timed = _interleaved(ROUNDS, manager.list_accounts, watcher.take)
    (first,) = _interleaved(20, lambda: snapshot.take(manager))
    print(f"credrot top first look (end of a full log): {first * 1000:.2f} ms (not gated)")
    return _row(
        "credrot top refresh (5 accounts, full log)", "list_accounts", base, timed, TARGET_SNAPSHOT
    )


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        results = [notify_overhead(Path(tmp)), snapshot_cost(Path(tmp))]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
