"""The selector loop of one tool run: read both pipes, feed stdin, watch for abort
patterns, notice the exit — in one thread, never blocking on a pipe a stranger holds.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

    from credrot.kinds import Rule


#: How long the pipes may still deliver after the tool's group is gone. Only a process
#: outside the group (a detached daemon) can keep them open longer, and it is not waited for.
DRAIN_SECONDS = 0.1

#: How long a SIGKILLed tool gets to be reaped; only a process stuck in the kernel takes longer.
REAP_SECONDS = 2.0
_MAX_POLL_MS = 2**31 - 1
#: How long the tool runs before the caller's ``meanwhile`` work is done (a tool that
#: answers sooner leaves it for later: see :mod:`credrot.pool.batch`).
MEANWHILE_AFTER = 0.01

#: Characters of each watched stream kept between reads, so that a pattern split across
#: two reads is still seen.
_TAIL_CHARS = 512

_READ_SIZE = 65536
_F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, missing from Python 3.10's fcntl


class _Stream:
    """One output pipe: what was kept of it, and the watch for abort patterns."""

    __slots__ = (
        "cap",
        "data",
        "decoder",
        "discarded",
        "fd",
        "name",
        "rules",
        "tail",
        "truncated",
    )

    def __init__(self, name: str, fd: int, cap: int, rules: Sequence[Rule]) -> None:
        self.name = name
        self.fd = fd
        self.data = bytearray()  # grows in place: no list of chunks to join at the end
        self.cap = cap
        self.truncated = False
        self.discarded = 0
        self.rules = rules
        self.tail = ""
        self.decoder: Callable[[bytes], str] | None = None
        if rules:
            import codecs

            self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace").decode

    def feed(self, data: bytes) -> Rule | None:
        room = self.cap - len(self.data)
        if len(data) <= room:
            self.data += data
        else:
            if room > 0:
                self.data += data[:room]
            self.truncated = True
            self.discarded += len(data) - max(room, 0)
        if self.decoder is None:
            return None
        fresh = self.decoder(data)
        text = self.tail + fresh
        found = next((r for r in self.rules if not r.silence and r.pattern.search(text)), None)
        if found is None:
            # a line waiting for silence counts when printed now (the tail still holds
            # it) and when nothing was printed after it
            recent = self.tail[self.tail.rfind("\n") + 1 :] + fresh
            found = next((r for r in self.rules if r.silence and _last(r, recent)), None)
        self.tail = text[-_TAIL_CHARS:]
        return found

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def _last(rule: Rule, text: str) -> bool:
    """Whether ``rule`` matches the last line of ``text`` that is not blank."""
    last = ""
    for line in text.splitlines():
        if line.strip():
            last = line
    return bool(last) and rule.pattern.search(last) is not None


class _Run:
    """The state of one run between spawn and result; ``loop`` is the whole I/O."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        data: bytes | None,
        rules: Sequence[Rule],
        abort_streams: Sequence[str],
        cap: int,
    ) -> None:
        import select

        self.proc = proc
        self.pid = proc.pid
        self.exit_code: int | None = None
        self.reaped = False
        #: credrot killed the tool before it exited by itself (a timeout or an abort)
        self.stopped = False
        self.timed_out = False
        self.matched: Rule | None = None
        self.stray_holder = False
        #: A rule that stops the tool if it stays silent, and until when (see ``Rule``).
        self.quiet: tuple[Rule, float] | None = None
        assert proc.stdout is not None
        assert proc.stderr is not None
        watch = tuple(rules)
        self.out = _Stream(
            "stdout", proc.stdout.fileno(), cap, watch if "stdout" in abort_streams else ()
        )
        self.err = _Stream(
            "stderr", proc.stderr.fileno(), cap, watch if "stderr" in abort_streams else ()
        )
        # poll(2) needs no kernel object of its own, unlike epoll: cheaper for three fds.
        self.poller = select.poll()
        self.readers: dict[int, _Stream] = {}
        for stream in (self.out, self.err):
            os.set_blocking(stream.fd, False)
            self.poller.register(stream.fd, select.POLLIN)
            self.readers[stream.fd] = stream
        self.in_fd = -1
        self.pending = memoryview(data if data is not None else b"")
        self.grown = False
        if proc.stdin is not None:
            self.in_fd = proc.stdin.fileno()
            os.set_blocking(self.in_fd, False)
            self.poller.register(self.in_fd, select.POLLOUT)
            self._write()
        self.pidfd = -1
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                self.pidfd = pidfd_open(self.pid)
            except OSError:  # a kernel before 5.3, or a seccomp filter that refuses it
                self.pidfd = -1
        if self.pidfd >= 0:
            self.poller.register(self.pidfd, select.POLLIN)

    def loop(self, deadline: float, meanwhile: Callable[[], None] | None = None) -> None:
        """Until the tool exits, prints an abort pattern or runs out of time; once it has
        run :data:`MEANWHILE_AFTER` seconds, ``meanwhile`` is called (its errors are the
        caller's to keep: it must not raise)."""
        poll = 0.001  # without a pidfd the exit is looked for at a growing interval
        work_at = time.monotonic() + MEANWHILE_AFTER if meanwhile is not None else None
        while not self.reaped and self.matched is None:
            now = time.monotonic()
            if now >= deadline:
                self.timed_out = True
                break
            if work_at is not None and now >= work_at and meanwhile is not None:
                work_at = None
                meanwhile()
                continue
            if self.quiet is not None and now >= self.quiet[1]:
                self.matched = self.quiet[0]  # silent since the line: stopped below
                break
            wait = deadline - now
            if work_at is not None:
                wait = min(wait, max(work_at - now, 0.0))
            if self.quiet is not None:
                wait = min(wait, max(self.quiet[1] - now, 0.0))
            if self.pidfd < 0:
                wait = min(wait, poll)
                poll = min(poll * 2, 0.05)
            self._pump(self._poll(wait))
            if self.pidfd < 0 and not self.reaped and self._exited():
                self._reap()
        if not self.reaped:
            self.stopped = True
            self._kill_group()
            self._reap(wait=REAP_SECONDS)
        # The group is gone; what is still in the pipes is read for a short while, within
        # the call's own deadline when the tool ended in time. Only a process outside the
        # group (a daemon the tool detached) can hold them open longer.
        now = time.monotonic()
        if self.timed_out:
            end = now + 0.01  # already late: only what the kill itself lets through
        elif self.stopped:
            end = now + DRAIN_SECONDS
        else:
            end = min(now + DRAIN_SECONDS, max(deadline, now))
        while self.readers:
            wait = end - time.monotonic()
            if wait <= 0:
                break
            self._pump(self._poll(wait))
        if self.readers:
            self._sweep()
            self.stray_holder = bool(self.readers)

    def _poll(self, wait: float) -> list[tuple[int, int]]:
        """What is ready within ``wait`` seconds (at most 24 days: poll takes an int of ms)."""
        return self.poller.poll(min(math.ceil(max(wait, 0.0) * 1000), _MAX_POLL_MS))

    def _pump(self, events: list[tuple[int, int]]) -> None:
        for fd, _mask in events:
            if fd == self.pidfd:
                self._reap()
            elif fd == self.in_fd:
                self._write()
            else:
                stream = self.readers.get(fd)
                if stream is not None:
                    self._read(stream)

    def _read(self, stream: _Stream) -> bool:
        """One read; False at the end of the stream or when nothing was there."""
        try:
            data = os.read(stream.fd, _READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        if not data:
            self._forget(stream.fd)
            del self.readers[stream.fd]
            return False
        rule = stream.feed(data)
        if rule is not None and rule.silence:
            self.quiet = (rule, time.monotonic() + rule.silence)
            return True
        self.quiet = None  # it printed more: not sleeping out a wait
        if rule is not None and self.matched is None:
            self.matched = rule
            self.out.decoder = self.err.decoder = None  # one match is enough
            if not self.reaped:
                self.stopped = True
                self._kill_group()
        return True

    def _sweep(self) -> None:
        """Take what is already in the pipes without waiting (a few reads at most: a
        stranger may keep writing)."""
        for stream in list(self.readers.values()):
            for _ in range(16):
                if not self._read(stream):
                    break

    def _write(self) -> None:
        """Write as much of the prompt as the pipe takes now (the tool treats stdin as
        empty if nothing arrives within ~500 ms, so it goes out before anything else)."""
        while self.pending:
            try:
                n = os.write(self.in_fd, self.pending)
            except BlockingIOError:
                if self.grown or len(self.pending) <= _READ_SIZE:
                    return
                self.grown = True
                try:  # let the pipe hold the whole prompt, where the system allows it
                    import fcntl

                    fcntl.fcntl(self.in_fd, _F_SETPIPE_SZ, min(len(self.pending), 1 << 20))
                except OSError:
                    return
                continue
            except OSError:  # the tool closed its stdin: it does not want the rest
                break
            self.pending = self.pending[n:]
        self._close_stdin()

    def _close_stdin(self) -> None:
        if self.in_fd >= 0:
            self._forget(self.in_fd)
            self.in_fd = -1
            self.pending = memoryview(b"")
            assert self.proc.stdin is not None
            self.proc.stdin.close()

    def _forget(self, fd: int) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.poller.unregister(fd)

    def _exited(self) -> bool:
        """Whether the tool has exited, without reaping it (its pid keeps the group id)."""
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _reap(self, wait: float = 0.0) -> None:
        """Collect the tool's exit status. The group is killed first, while the exited
        tool still holds its pid, so the signal cannot reach a newcomer that took it."""
        if self.reaped or (wait and not self._wait_exit(wait)):
            return
        self._kill_group()
        try:
            _, status = os.waitpid(self.pid, 0)
            self.exit_code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped by someone else (a SIGCHLD handler)
            self.exit_code = 0
        self.reaped = True
        self.proc.returncode = self.exit_code
        if self.pidfd >= 0:
            self._forget(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = -1

    def _wait_exit(self, wait: float) -> bool:
        end = time.monotonic() + wait
        delay = 0.001
        while not self._exited():
            left = end - time.monotonic()
            if left <= 0:
                return False
            if self.pidfd >= 0:
                import select

                select.select([self.pidfd], [], [], left)
            else:
                time.sleep(min(delay, left))
                delay = min(delay * 2, 0.05)
        return True

    def _kill_group(self) -> None:
        if not self.reaped:  # once reaped, the id may belong to someone else
            killpg(self.pid)

    def stop(self) -> None:
        """The caller is leaving early: nothing of the tool may stay behind."""
        if not self.reaped:
            self.stopped = True
            self._kill_group()
            self._reap(wait=0.5)

    def close(self) -> None:
        self._close_stdin()
        for fd in list(self.readers):
            self._forget(fd)
        self.readers.clear()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        if self.pidfd >= 0:
            self._forget(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = -1


def killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
