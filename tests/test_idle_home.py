"""A finished call home is kept idle for the process's next call: the next call sees
none of what the previous one's tool wrote nor its credential copy, links follow the
shared home, and an idle home never outlives its process (exit, or the reaper after
``kill -9``) nor counts as a call in flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from creds import make_cred

from credrot import inflight
from credrot.manager import AccountManager
from credrot.tools import QWEN
from credrot.wrapper import Wrapper

#: Prints what its home holds, then leaves a private note and a folder there.
TOOL = """#!/bin/sh
read -r line
cd "$HOME/.qwen" || exit 3
ls -A | tr '\\n' ' '
echo "$line" > note.txt
mkdir -p tmp/deep && echo x > tmp/deep/file
[ "$line" = redirect ] && ln -sfn "$HOME/elsewhere" settings.json
[ "$line" = rewrite ] && rm settings.json && echo '{"migrated": 1}' > settings.json
[ "$line" = delete ] && rm settings.json
exit 0
"""


def _manager(tmp_path: Path) -> AccountManager:
    tool = tmp_path / "tool"
    tool.write_text(TOOL)
    tool.chmod(0o755)
    manager = AccountManager(tool=replace(QWEN, executable=str(tool)), home=tmp_path / "home")
    manager.import_account(make_cred(1))
    (manager.home / "settings.json").write_text("{}")
    return manager


def _run_dir(manager: AccountManager) -> Path:
    return manager.home / ".credrot-run"


def test_the_next_call_reuses_the_home_and_sees_nothing_of_the_last(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    wrapper = Wrapper(manager=manager)
    first = wrapper.call("first")
    assert first.success, first.error
    assert set(first.output.split()) == {"oauth_creds.json", "settings.json"}
    (idle,) = _run_dir(manager).iterdir()
    assert "-idle-" in idle.name
    assert not (idle / ".qwen" / "oauth_creds.json").exists()  # no token copy left
    assert not (idle / ".qwen" / "note.txt").exists()
    assert (idle / ".credrot-tool.pid").read_text().strip() == "0"  # no tool runs there
    assert inflight.in_flight(manager.pool.layout) == {}
    inode = (idle / ".qwen").stat().st_ino
    (manager.home / "settings.json").unlink()
    (manager.home / "extensions").mkdir()  # the shared home changed between the calls
    second = wrapper.call("second")
    assert second.success, second.error
    assert set(second.output.split()) == {"oauth_creds.json", "extensions"}
    (again,) = _run_dir(manager).iterdir()
    assert (again / ".qwen").stat().st_ino == inode  # the same folder, not a new one
    assert (again / ".qwen" / "extensions").is_symlink()


def test_a_link_the_tool_redirected_is_not_kept(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    wrapper = Wrapper(manager=manager)
    assert wrapper.call("first").success
    assert wrapper.call("redirect").success  # the tool points settings.json elsewhere
    (idle,) = _run_dir(manager).iterdir()
    assert not os.path.lexists(idle / ".qwen" / "settings.json")
    assert wrapper.call("second").success
    (again,) = _run_dir(manager).iterdir()
    assert os.readlink(again / ".qwen" / "settings.json") == str(manager.home / "settings.json")


@pytest.mark.parametrize("change", ["rewrite", "delete"])
def test_a_link_the_tool_replaced_or_removed_is_made_again(tmp_path: Path, change: str) -> None:
    """Qwen Code rewrites its settings file in place of the link, for one."""
    manager = _manager(tmp_path)
    wrapper = Wrapper(manager=manager)
    assert wrapper.call("first").success
    assert wrapper.call(change).success
    second = wrapper.call("second")
    assert set(second.output.split()) == {"oauth_creds.json", "settings.json"}
    (idle,) = _run_dir(manager).iterdir()
    assert os.readlink(idle / ".qwen" / "settings.json") == str(manager.home / "settings.json")
    assert (manager.home / "settings.json").read_text() == "{}"  # the shared one, as it was


def test_an_idle_home_changed_under_its_process_is_looked_at_again(tmp_path: Path) -> None:
    """A link in the shared home that is new, or gone, since the home was parked."""
    manager = _manager(tmp_path)
    wrapper = Wrapper(manager=manager)
    assert wrapper.call("first").success
    (manager.home / "settings.json").unlink()
    (manager.home / "extensions").mkdir()
    second = wrapper.call("second")
    assert set(second.output.split()) == {"oauth_creds.json", "extensions"}
    (idle,) = _run_dir(manager).iterdir()
    assert not os.path.lexists(idle / ".qwen" / "settings.json")
    assert os.readlink(idle / ".qwen" / "extensions") == str(manager.home / "extensions")


EXITING = """
import sys
from dataclasses import replace
from credrot.manager import AccountManager
from credrot.tools import QWEN
from credrot.wrapper import Wrapper
manager = AccountManager(tool=replace(QWEN, executable=sys.argv[1]), home=sys.argv[2])
assert Wrapper(manager=manager).call("hi").success
print("done", flush=True)
if sys.argv[3] == "hang":
    sys.stdin.read()
"""


def _caller(manager: AccountManager, tmp_path: Path, mode: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", EXITING, str(tmp_path / "tool"), str(manager.home), mode]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_an_idle_home_goes_when_its_process_exits(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    proc = _caller(manager, tmp_path, "exit")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "done" in out
    assert list(_run_dir(manager).iterdir()) == []


def test_an_idle_home_of_a_killed_process_is_reaped(tmp_path: Path) -> None:
    manager = _manager(tmp_path)
    proc = _caller(manager, tmp_path, "hang")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "done"
        (idle,) = _run_dir(manager).iterdir()
        assert "-idle-" in idle.name
        assert inflight.in_flight(manager.pool.layout) == {}  # never a call in flight
        assert manager.clean_run_dirs() == 0  # its process lives: left alone
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.stdout is not None:
            proc.stdout.close()
    assert manager.clean_run_dirs() == 1
    assert list(_run_dir(manager).iterdir()) == []
