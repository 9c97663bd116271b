"""``credrot top``: the plain snapshot through a pipe, and the live view in a real
terminal (tmux: fixed size, keys sent, the pane read back)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from simpool import SimPool

from credrot.wrapper import QwenWrapper

CREDROT = str(Path(sys.executable).with_name("credrot"))
needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _top(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CREDROT, "--home", str(home), "top", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path, monkeypatch)


def test_piped_top_prints_one_plain_snapshot(sim: SimPool, canary: str) -> None:
    sim.add(quota=0)
    sim.add(latency=4.0)
    sim.add()
    first = QwenWrapper(manager=sim.manager).call("hello", timeout=20)
    assert first.success and first.account == 2
    # A call in flight on account 2 while the view is taken.
    slow = threading.Thread(target=lambda: QwenWrapper(home=sim.home).call("slow", timeout=20))
    slow.start()
    try:
        deadline = time.monotonic() + 10
        while not any((sim.home / ".credrot-run").glob("*-2-*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        result = _top(sim.home)
    finally:
        slow.join()
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b[" not in out  # plain text: no rich, no escape codes
    assert out.splitlines()[0] == f"qwen pool in {sim.home}: 3 accounts, 2 usable"
    spent = r"#1 spent its day window \(the tool's quota message; resets \d\d:\d\d UTC\)"
    assert re.search(rf"last switch #1 -> #2 \d+s ago: {spent}", out)
    row = {line.split()[0 if line[0] != "*" else 1]: line for line in out.splitlines()[3:]}
    # the day window resets at midnight UTC: "in 55m" in the last hour of the day
    assert re.search(r"exhausted +#+ day spent, resets in \d+[hm]", row["1"])  # its window
    assert row["2"].startswith("*")  # the active account
    assert re.search(rf"ready +-+ quota not spent +1 +1 +from #1 \d+s ago \({spent}\)", row["2"])
    assert re.search(r"ready +-+ quota not spent +0 +0 +-$", row["3"])
    assert canary not in out + result.stderr


def test_piped_top_with_an_empty_home_says_how_to_add(tmp_path: Path) -> None:
    result = _top(tmp_path / "nothing")
    assert result.returncode == 0
    assert "no qwen accounts in" in result.stdout and "credrot accounts add" in result.stdout
    assert not (tmp_path / "nothing").exists()  # a view creates nothing


# ------------------------------------------------------------------ a real terminal
class Tmux:
    """One private tmux server (its own socket) with one fixed-size pane."""

    def __init__(self, env: dict[str, str]) -> None:
        self.socket = f"credrot-test-{uuid.uuid4().hex[:8]}"
        self.env = env

    def tmux(self, *args: str) -> str:
        proc = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            env=self.env,
        )
        return proc.stdout

    def start(self, command: str) -> None:
        self.tmux("new-session", "-d", "-x", "120", "-y", "30", command)

    def pane(self, escapes: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if escapes else []))

    def wait_for(self, check: Callable[[str], bool], escapes: bool = False) -> str:
        deadline = time.monotonic() + 60  # a loaded CI machine starts rich slowly
        text = self.pane(escapes)
        # A long home path wraps the header line: match on the text with its breaks joined.
        while not (check(text) or check(" ".join(text.split()))):
            if time.monotonic() > deadline:
                raise AssertionError(f"the pane never showed it:\n{text}")
            time.sleep(0.1)
            text = self.pane(escapes)
        return text

    def kill(self) -> None:
        self.tmux("kill-server")


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[..., Tmux]]:
    made: list[Tmux] = []

    def make(**env: str) -> Tmux:
        base = {
            k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TMUX", "COLUMNS", "LINES")
        }
        base.update(TERM="xterm-256color", TMUX_TMPDIR=str(tmp_path), **env)
        made.append(Tmux(base))
        return made[-1]

    yield make
    for t in made:
        t.kill()


def _wait_file(path: Path) -> str:
    deadline = time.monotonic() + 60
    while not path.exists() or not path.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was never written")
        time.sleep(0.1)
    return path.read_text().strip()


@needs_tmux
def test_live_view_refreshes_in_a_terminal_and_q_quits(
    make_pool: Callable[..., object], terminal: Callable[..., Tmux], tmp_path: Path, canary: str
) -> None:
    from credrot.manager import AccountManager

    manager = make_pool(3)
    assert isinstance(manager, AccountManager)
    done = tmp_path / "exit-code"
    term = terminal()
    term.start(f"{CREDROT} --home {manager.home} top --interval 0.3; echo $? > {done}")
    first = term.wait_for(lambda t: "3 accounts, 3 usable" in t)
    assert "q quits" in first and "█" not in first.split("windows")[-1].split("\n")[1]
    # The pool changes under the view: the next refresh shows it, no restart.
    manager.mark(2, "exhausted", until=datetime.now(timezone.utc) + timedelta(hours=5))
    later = term.wait_for(lambda t: "3 accounts, 2 usable" in t)
    line = next(row for row in later.splitlines() if re.search(r"│ +2 +│", row))
    assert "exhausted" in line and "█" in line and re.search(r"resets in 4h 5\dm", line)
    assert canary not in later
    term.tmux("send-keys", "q")
    assert _wait_file(done) == "0"


@needs_tmux
def test_live_view_is_coloured_unless_no_color(
    make_pool: Callable[..., object], terminal: Callable[..., Tmux], tmp_path: Path
) -> None:
    from credrot.manager import AccountManager

    manager = make_pool(2)
    assert isinstance(manager, AccountManager)
    colour = re.compile(r"\x1b\[[0-9;]*(?:3[0-8]|9[0-7])[;m]")
    seen = {}
    for name, extra in (("colour", {}), ("plain", {"NO_COLOR": "1"})):
        term = terminal(**extra)
        term.start(f"{CREDROT} --home {manager.home} top --interval 0.3")
        seen[name] = term.wait_for(lambda t: "2 usable" in t, escapes=True)
        term.tmux("send-keys", "q")
    assert colour.search(seen["colour"])
    assert not colour.search(seen["plain"])
    assert "ready" in seen["plain"]


@needs_tmux
def test_live_view_without_rich_says_how_to_install_it(
    make_pool: Callable[..., object], terminal: Callable[..., Tmux], tmp_path: Path
) -> None:
    from credrot.manager import AccountManager

    manager = make_pool(1)
    assert isinstance(manager, AccountManager)
    blocker = tmp_path / "no-rich"
    (blocker / "rich").mkdir(parents=True)
    (blocker / "rich" / "__init__.py").write_text("raise ImportError('rich is not installed')\n")
    out, done = tmp_path / "stderr", tmp_path / "exit-code"
    term = terminal(PYTHONPATH=str(blocker))
    term.start(f"{CREDROT} --home {manager.home} top 2> {out}; echo $? > {done}")
    assert _wait_file(done) == "1"
    lines = out.read_text().splitlines()
    assert len(lines) == 1
    assert "pip install 'credrot[live]'" in lines[0] and lines[0].startswith("credrot: error:")


def test_the_view_never_waits_for_the_pool_lock(
    make_pool: Callable[..., object], tmp_path: Path
) -> None:
    """Another process holds the pool lock (a long transaction): the view still shows."""
    from credrot.manager import AccountManager

    manager = make_pool(2)
    assert isinstance(manager, AccountManager)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys\n"
            f"fh = open({str(manager.lock_path)!r}, 'a')\n"
            "fcntl.flock(fh, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        # The lock wait would be 30 s; the run's own timeout is 20 s.
        shown = _top(manager.home)
        assert shown.returncode == 0 and "2 accounts, 2 usable" in shown.stdout
        assert holder.poll() is None  # still holding it
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)


def test_each_tracked_window_is_drawn_with_its_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from credrot.classify import classify
    from credrot.tools import get_profile

    pool = SimPool(tmp_path, monkeypatch, tool="claude")
    pool.add()
    pool.add()
    spent = classify(
        get_profile("claude"), 1, "You've hit your weekly limit · resets 7:12pm (UTC)\n", ""
    )
    pool.manager.record(1, spent)
    shown = subprocess.run(
        [CREDROT, "--tool", "claude", "--home", str(pool.home), "top", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    row = next(line for line in shown.stdout.splitlines() if re.match(r"\s+1\s", line))
    assert "week spent, resets in" in row
