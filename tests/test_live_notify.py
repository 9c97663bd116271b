"""Notifications: a real HTTP server on 127.0.0.1 and a real command receive what the
pool says, once per change, with no token in any payload, and never hold a call up."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from simpool import SimPool

from credrot.config import parse_config
from credrot.errors import ConfigError
from credrot.wrapper import QwenWrapper

CREDROT = str(Path(sys.executable).with_name("credrot"))


class Hook:
    """A webhook receiver: records every POST; can fail the first one or hang."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.fail_first = False
        self.hang = False
        self.release = threading.Event()
        self.arrived = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(body)
                hook.arrived.set()
                if hook.hang:
                    hook.release.wait(30)
                status = 500 if hook.fail_first and len(hook.bodies) == 1 else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/credrot"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(b) for b in self.bodies]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path, monkeypatch)


def _configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    monkeypatch.setenv("CREDROT_CONFIG", str(config))


def _run(sim: SimPool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CREDROT, "--home", str(sim.home), "run", "--", "-p", "hi"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_webhook_hears_each_change_once_across_processes(
    sim: SimPool, hook: Hook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary: str
) -> None:
    _configure(tmp_path, monkeypatch, f"notify:\n  webhook: {hook.url}\n  timeout: 5\n")
    sim.add("a", quota=0)
    sim.add("b", quota=0)
    first = _run(sim)
    assert first.returncode == 3, first.stderr
    # Each is sent on its own thread: the order of arrival is not the order of events.
    kinds = sorted((e["event"], e["account"] or 0) for e in hook.events())
    assert kinds == [
        ("account_exhausted", 1),
        ("account_exhausted", 2),
        ("pool_exhausted", 0),
        ("window_above", 1),
        ("window_above", 2),
    ]
    down = next(e for e in hook.events() if e["event"] == "pool_exhausted")
    assert down["tool"] == "qwen" and down["message"].startswith("credrot: every qwen account")
    # Another process finds the pool spent again: not told twice.
    assert _run(sim).returncode == 3
    assert len(hook.bodies) == 5
    # Account b comes back: the first success says the pool answers again.
    sim.backend.set("b", quota=None)
    sim.manager.reset(2)
    assert _run(sim).returncode == 0
    assert [(e["event"], e["account"]) for e in hook.events()[5:]] == [("pool_recovered", 2)]
    # ... and the next time it is spent, that is news again.
    sim.backend.set("b", quota=0)
    sim.backend.set("b", quota=sim.backend.used("b"))
    assert _run(sim).returncode == 3
    assert sorted(e["event"] for e in hook.events()[6:]) == [
        "account_exhausted",
        "pool_exhausted",
        "window_above",
    ]
    assert all(canary not in body.decode() for body in hook.bodies)
    above = next(e for e in hook.events() if e["event"] == "window_above")
    assert (above["window"], above["used"], above["above"]) == ("quota", 1.0, 0.9)


def test_a_failed_post_is_retried_once(
    sim: SimPool, hook: Hook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(
        tmp_path, monkeypatch, f"notify:\n  webhook: {hook.url}\n  on: [account_exhausted]\n"
    )
    hook.fail_first = True
    sim.add("a", quota=0)
    sim.add("b")
    assert _run(sim).returncode == 0
    assert len(hook.bodies) == 2 and hook.bodies[0] == hook.bodies[1]
    assert hook.events()[0]["event"] == "account_exhausted"


def test_a_hanging_webhook_never_holds_a_call(
    sim: SimPool, hook: Hook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(
        tmp_path,
        monkeypatch,
        # Long enough for a loaded machine to start the POST; the call still ends first.
        f"notify:\n  webhook: {hook.url}\n  on: [account_exhausted]\n  timeout: 2\n",
    )
    hook.hang = True
    sim.add("a", quota=0)
    sim.add("b")
    # In the caller's process: the answer comes while the server still holds the POST.
    result = QwenWrapper(home=sim.home).call("hi", timeout=20)
    assert result.success and result.account == 2
    assert hook.arrived.wait(10) and not hook.release.is_set()
    # A short-lived process exits after at most the timeout, the server still hanging.
    sim.manager.reset(1)
    sim.manager.switch_to(1)  # so the next run meets #1's quota error again
    started = time.monotonic()
    done = _run(sim)
    took = time.monotonic() - started
    assert done.returncode == 0 and not hook.release.is_set()
    assert len(hook.bodies) >= 2, done.stderr
    assert took < 30  # the server holds every POST for 30 s: the process did not wait for it


def test_a_command_hook_gets_the_message_and_the_json(
    sim: SimPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, canary: str
) -> None:
    out = tmp_path / "told.jsonl"
    script = tmp_path / "notifier.py"
    script.write_text(
        "import json, os, sys\n"
        f"with open({str(out)!r}, 'a') as fh:\n"
        "    fh.write(json.dumps([sys.argv[1:], os.environ['CREDROT_EVENT'],"
        " json.load(sys.stdin)]) + '\\n')\n"
    )
    _configure(
        tmp_path,
        monkeypatch,
        f"notify:\n  command: [{sys.executable}, {script}]\n  on: [pool_exhausted]\n",
    )
    sim.add("a", quota=0)
    assert _run(sim).returncode == 3
    (argv, event, payload) = json.loads(out.read_text())
    assert event == "pool_exhausted" and payload["event"] == "pool_exhausted"
    assert argv == [
        "credrot: every qwen account is spent, resets "
        + payload["until"][:10]
        + " "
        + payload["until"][11:16]
        + " UTC"
    ]
    assert canary not in out.read_text()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("notify: {webhook: ftp://x}", "notify.webhook: expected an http:// or https:// URL"),
        ("notify: {}", "notify: expected a webhook or a command to notify"),
        ("notify: {command: []}", "notify.command: expected a command as a list of strings"),
        ("notify: {command: [x], on: [later]}", "notify.on[0]: expected a list of events"),
        ("notify: {command: [x], timeout: 0}", "notify.timeout: expected seconds"),
        ("notify: {command: [x], colour: red}", "notify.colour: expected a known key"),
    ],
)
def test_notify_mistakes_are_one_line_errors(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yaml")
    message = str(caught.value)
    assert message.startswith(f"config.yaml: {error}") and "\n" not in message


def test_a_broken_notify_section_leaves_calls_working(
    sim: SimPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(tmp_path, monkeypatch, "notify: {webhook: nowhere}\n")
    sim.add("a")
    done = _run(sim)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr
