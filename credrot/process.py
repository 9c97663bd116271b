"""Run a tool once: prompt on stdin, its own process group, a timeout, no orphans.

The tool is never run through a shell. Its output is watched while it runs so that a
tool that starts waiting for a human (Qwen Code's device-authorization flow, even in
headless mode) is stopped at once instead of at the timeout.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from credrot.errors import ToolNotFound
from credrot.kinds import Rule

#: Linux caps one argv string at 128 KiB; anything near that goes through stdin.
MAX_ARG_BYTES = 128 * 1024


@dataclass
class RunResult:
    exit_code: int | None  # None when credrot stopped the process
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    aborted: Rule | None = None


class _Reader(threading.Thread):
    def __init__(self, stream: object, watcher: _Watcher) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.chunks: list[bytes] = []
        self.watcher = watcher

    def run(self) -> None:
        read = getattr(self.stream, "read1", None) or self.stream.read  # type: ignore[attr-defined]
        try:
            while True:
                chunk = read(65536)
                if not chunk:
                    break
                self.chunks.append(chunk)
                self.watcher.feed(chunk)
        except (OSError, ValueError):
            pass

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


class _Watcher:
    """Looks for abort patterns in the live output of both streams."""

    def __init__(self, rules: Sequence[Rule], on_match: threading.Event) -> None:
        self.rules = rules
        self.tail = ""
        self.lock = threading.Lock()
        self.matched: Rule | None = None
        self.event = on_match

    def feed(self, chunk: bytes) -> None:
        if not self.rules or self.matched is not None:
            return
        with self.lock:
            text = self.tail + chunk.decode("utf-8", errors="replace")
            for rule in self.rules:
                if rule.pattern.search(text):
                    self.matched = rule
                    self.event.set()
                    return
            self.tail = text[-512:]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def run_tool(
    argv: Sequence[str],
    *,
    stdin: bytes | None,
    env: Mapping[str, str] | None,
    timeout: float,
    abort_rules: Sequence[Rule] = (),
    cwd: str | None = None,
    install_hint: str = "",
) -> RunResult:
    for arg in argv:
        if len(arg.encode("utf-8", errors="surrogateescape")) >= MAX_ARG_BYTES:
            raise ValueError("an argument exceeds 128 KiB; pass large prompts through stdin")
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    except FileNotFoundError:
        hint = f" (install it: {install_hint})" if install_hint else ""
        raise ToolNotFound(f"{argv[0]} is not installed or not on PATH{hint}") from None
    except PermissionError:
        raise ToolNotFound(f"{argv[0]} is not executable") from None

    stop = threading.Event()
    watcher = _Watcher(abort_rules, stop)
    out = _Reader(proc.stdout, watcher)
    err = _Reader(proc.stderr, watcher)
    out.start()
    err.start()
    writer: threading.Thread | None = None
    if stdin is not None:
        writer = threading.Thread(target=_feed, args=(proc, stdin), daemon=True)
        writer.start()

    def _wait() -> None:
        proc.wait()
        stop.set()

    waiter = threading.Thread(target=_wait, daemon=True)
    waiter.start()
    # ``stop`` is set by the process's exit or by an abort pattern in its output.
    try:
        timed_out = not stop.wait(timeout=max(timeout, 0.0))
    except BaseException:
        # Ctrl-C or SIGTERM in the caller: the tool runs in its own session, so the
        # terminal's signal never reached it; it must not live on as an orphan.
        _kill_group(proc)
        raise
    # Whatever happened, nothing the tool started may outlive the call.
    _kill_group(proc)
    proc.wait()
    out.join(timeout=2.0)
    err.join(timeout=2.0)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    if writer is not None:
        writer.join(timeout=1.0)
    stopped = timed_out or watcher.matched is not None
    return RunResult(
        exit_code=None if stopped else proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        duration=time.monotonic() - start,
        timed_out=timed_out,
        aborted=watcher.matched,
    )


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Write the prompt at once (the tool treats stdin as empty after ~500 ms)."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
    except (BrokenPipeError, OSError, ValueError):
        pass
    finally:
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            proc.stdin.close()
