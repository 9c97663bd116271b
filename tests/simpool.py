"""A simulated pool for tests: the simulator on PATH as the tool, accounts imported.

``SimPool(tmp_path, monkeypatch)`` builds a backend, puts the ``qwen`` shim first on PATH,
and makes a tool home; ``add(name, **sim_kw)`` registers an account at the backend and
imports its credential into the pool (numbered in order). ``SimPool(..., tool="claude")``
does the same for another simulated tool (credentials in that tool's own format).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from creds import CANARY

from credrot.manager import AccountManager
from credrot_sim import SimBackend, install

#: Where each tool's credential keeps its access token.
ACCESS_TOKEN_PATH: dict[str, tuple[str, ...]] = {
    "qwen": ("access_token",),
    "claude": ("claudeAiOauth", "accessToken"),
    "codex": ("tokens", "access_token"),
    "gemini": ("access_token",),
}


class SimPool:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, tool: str = "qwen") -> None:
        self.root = root
        self.backend = SimBackend(root / "backend")
        self.bin = root / "bin"
        self.bin.mkdir(exist_ok=True)
        install(self.bin, self.backend.root, tools=(tool,))
        monkeypatch.setenv("PATH", f"{self.bin}:{os.environ['PATH']}")
        self.home = root / "home"
        self.home.mkdir(exist_ok=True)
        self.tool = tool
        self.manager = AccountManager(tool=tool, home=self.home)
        self.names: dict[int, str] = {}

    def add(self, name: str | None = None, **sim: Any) -> int:
        name = name or f"acct{len(self.names) + 1}"
        n = len(self.names) + 1
        sim.setdefault("access_token", f"{CANARY}-access-{name}")
        sim.setdefault("refresh_token", f"{CANARY}-refresh-{name}")
        cred = self.backend.add_account(name, tool=self.tool, **sim)
        index = self.manager.import_account(json.dumps(cred, indent=2).encode())
        assert index == n
        self.names[index] = name
        return index

    def token_in_slot(self, index: int) -> str:
        """The access token of slot ``index`` as the simulated server knows it."""
        token: Any = json.loads(self.manager.slot_path(index).read_bytes())
        for key in ACCESS_TOKEN_PATH[self.tool]:
            token = token[key]
        assert isinstance(token, str)
        if self.tool == "codex" and token.count(".") == 2:
            return str(token.split(".")[2])  # JWT-shaped: the server's token is its last part
        return token

    @contextlib.contextmanager
    def other_caller(self) -> Iterator[Callable[[int], Path]]:
        """A live process standing for another caller: ``home(index)`` gives it a call
        home on account ``index`` (in flight there until the process is stopped)."""
        other = subprocess.Popen(["sleep", "60"])
        run_dir = self.home / ".credrot-run"

        def home(index: int) -> Path:
            run_dir.mkdir(mode=0o700, exist_ok=True)
            root = run_dir / f"{other.pid}-{index}-0123456789ab"
            root.mkdir()
            return root

        try:
            yield home
        finally:
            other.kill()
            other.wait()

    def kill_mid_call(self, proc: subprocess.Popen[Any]) -> int:
        """``kill -9`` of a caller once its tool has started. The tool dies with it (the
        parent-death signal); what else ran in its group would live on, so the group is
        stopped here as a reaper would. Returns the tool's pid, once it has exited."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not self.backend.calls():
            time.sleep(0.05)
        assert self.backend.calls(), "the tool never started"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tool_pid = int(self.backend.calls()[0]["pid"])
        with contextlib.suppress(ProcessLookupError):
            os.killpg(tool_pid, signal.SIGKILL)
        wait_dead(tool_pid)
        return tool_pid


def wait_dead(pid: int) -> None:
    """Until ``pid`` has exited (gone, or a zombie nobody reaped yet)."""
    for _ in range(1000):
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            return
        if stat.rpartition(b")")[2].split()[0] == b"Z":
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still runs")
