"""``run_tool`` against real processes: scripts written here, run as the tool would be.

Every case spawns a real executable; the hostile ones (a daemon that keeps the pipes,
a 200 MB answer, a caller killed with SIGKILL) are the cases the issue table "Hostile
processes and files" and "Parallel callers" name, each with a row name in its docstring.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from credrot import deathsig, process
from credrot.errors import ToolNotFound
from credrot.kinds import OutcomeKind, Rule
from credrot.process import DEFAULT_MAX_OUTPUT, RunResult, run_tool
from credrot.tools import QWEN

TRANSCRIPT = Path(__file__).parent / "conformance" / "transcripts" / "qwen-0.12.0.json"
BOX = Rule.of(OutcomeKind.AUTH_FAILED, r"Qwen OAuth Device Authorization")
ROOT = Path(__file__).resolve().parent.parent


def script(tmp_path: Path, name: str, body: str, *, python: bool = True) -> str:
    """An executable file in ``tmp_path``; Python unless ``python`` is false (then sh)."""
    path = tmp_path / name
    shebang = f"#!{sys.executable}\n" if python else "#!/bin/sh\n"
    path.write_text(shebang + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has finished: only its parent has not looked)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def members(pgid: int) -> list[int]:
    """The live processes of the process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            with contextlib.suppress(OSError):
                if os.getpgid(pid) == pgid and alive(pid):
                    found.append(pid)
    return found


def group_alive(pgid: int) -> bool:
    return bool(members(pgid))


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def read_pid(path: Path, timeout: float = 15.0) -> int:
    wait_until(lambda: path.exists() and path.read_text().strip().isdigit(), timeout, str(path))
    return int(path.read_text())


@pytest.fixture
def strays() -> Iterator[list[int]]:
    """Pids of processes a test let escape on purpose; killed whatever the outcome."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        wait_until(lambda pid=pid: not alive(pid), 5, f"stray {pid} to die")  # type: ignore[misc]


@pytest.fixture(params=["pidfd", "poll"])
def exit_watch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tool's exit noticed through a pidfd, and (kernels before 5.3) by polling."""
    if request.param == "poll":
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    elif not hasattr(os, "pidfd_open"):
        pytest.skip("no os.pidfd_open here")
    return str(request.param)


@pytest.fixture(params=["launcher", "preexec"])
def spawn_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of setting the parent-death signal: the memfd launcher and ctypes."""
    if request.param == "preexec":
        monkeypatch.setattr(deathsig.LAUNCHER, "broken", True)
    elif deathsig.LAUNCHER.path() is None:
        pytest.skip("the launcher cannot run on this system")
    return str(request.param)


# --- the ordinary run -------------------------------------------------------------------


def test_prompt_in_output_out_and_the_exit_code(
    tmp_path: Path, exit_watch: str, spawn_mode: str
) -> None:
    tool = script(
        tmp_path,
        "tool",
        """
        import sys
        data = sys.stdin.read()
        print("answer:", data)
        print("note", file=sys.stderr)
        sys.exit(3)
    """,
    )
    run = run_tool([tool], stdin="ça va?".encode(), env=None, timeout=20)
    assert run.exit_code == 3
    assert run.stdout == "answer: ça va?\n"
    assert run.stderr == "note\n"
    assert not run.timed_out and run.aborted is None and run.truncated == ()
    assert not run.stray_holder


def test_argv_env_and_cwd_reach_the_tool_unchanged(tmp_path: Path, spawn_mode: str) -> None:
    (tmp_path / "work").mkdir()
    script(
        tmp_path / "work",
        "tool",
        """
        import json, os, sys
        print(json.dumps({"argv": sys.argv, "env": os.environ.get("MARK"), "cwd": os.getcwd(),
                          "path": os.environ.get("PATH")}))
    """,
    )
    env = {"MARK": "é x", "PATH": "/usr/bin:/bin"}
    run = run_tool(
        ["./tool", "a b", "", "ü"], stdin=None, env=env, timeout=20, cwd=str(tmp_path / "work")
    )
    assert run.exit_code == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen == {
        "argv": ["./tool", "a b", "", "ü"],
        "env": "é x",
        "cwd": str(tmp_path / "work"),
        "path": "/usr/bin:/bin",
    }


def test_the_tool_is_found_on_the_path_it_is_given(tmp_path: Path, spawn_mode: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(bin_dir, "mytool", "import sys; print(sys.argv[0])\n")
    run = run_tool(["mytool"], stdin=None, env={"PATH": f"/nonexistent:{bin_dir}"}, timeout=20)
    # The found file, as execvpe passes it to a script's interpreter.
    assert run.exit_code == 0 and run.stdout == f"{bin_dir / 'mytool'}\n"


def test_the_tool_inherits_no_stray_descriptor(tmp_path: Path, spawn_mode: str) -> None:
    tool = script(
        tmp_path,
        "tool",
        """
        import os
        print([fd for fd in range(3, 1024) if os.path.exists(f"/proc/self/fd/{fd}")])
    """,
    )
    run = run_tool([tool], stdin=b"x", env=None, timeout=20)
    assert json.loads(run.stdout) == []  # not the launcher's memfd, not the caller's pipes


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda d: "no-such-tool",
            "no-such-tool is not installed or not on PATH (install it: npm i -g no-such-tool)",
        ),
        (
            lambda d: str(d / "missing"),
            "{d}/missing is not installed or not on PATH (install it: npm i -g no-such-tool)",
        ),
        (lambda d: str(d / "plain"), "{d}/plain is not executable"),
    ],
    ids=["not-on-path", "no-such-file", "not-executable"],
)
def test_a_missing_or_unrunnable_tool_is_one_clear_error(
    tmp_path: Path, spawn_mode: str, make: Callable[[Path], str], message: str
) -> None:
    (tmp_path / "plain").write_text("not a program\n")
    with pytest.raises(ToolNotFound) as caught:
        run_tool(
            [make(tmp_path)],
            stdin=None,
            env={"PATH": str(tmp_path)},
            timeout=5,
            install_hint="npm i -g no-such-tool",
        )
    assert str(caught.value) == message.format(d=tmp_path)


def test_a_launcher_the_system_refuses_falls_back_to_the_slow_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deathsig.LAUNCHER, "broken", False)
    monkeypatch.setattr(process, "_launcher", lambda: str(tmp_path / "refused-launcher"))
    tool = script(tmp_path, "tool", "echo ran\n", python=False)
    run = run_tool([tool], stdin=None, env=None, timeout=20)
    assert run.exit_code == 0 and run.stdout == "ran\n"
    assert deathsig.LAUNCHER.broken  # not tried again in this process


def test_a_large_prompt_arrives_whole_and_at_once(tmp_path: Path, exit_watch: str) -> None:
    """The CLIs treat stdin as empty when nothing arrives within ~500 ms of their start."""
    tool = script(
        tmp_path,
        "tool",
        """
        import hashlib, select, sys
        ready = bool(select.select([sys.stdin], [], [], 0.3)[0])
        data = sys.stdin.buffer.read()
        print(ready, len(data), hashlib.sha256(data).hexdigest())
    """,
    )
    prompt = os.urandom(3 * 1024 * 1024 + 17)
    run = run_tool([tool], stdin=prompt, env=None, timeout=30)
    assert run.stdout.split() == ["True", str(len(prompt)), hashlib.sha256(prompt).hexdigest()]


def test_a_tool_that_ignores_its_stdin_is_not_a_failure(tmp_path: Path) -> None:
    tool = script(tmp_path, "tool", "echo done\n", python=False)
    run = run_tool([tool], stdin=b"p" * (4 * 1024 * 1024), env=None, timeout=20)
    assert run.exit_code == 0 and run.stdout == "done\n"


def test_non_utf8_output_is_decoded_with_replacement(tmp_path: Path) -> None:
    tool = script(tmp_path, "tool", r"printf 'ok \377\376\n'", python=False)
    run = run_tool([tool], stdin=None, env=None, timeout=20)
    assert run.stdout == "ok \ufffd\ufffd\n"


def test_bad_arguments_are_refused_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    tool = script(tmp_path, "tool", f"touch {marker}\n", python=False)
    with pytest.raises(ValueError, match="exceeds 128 KiB"):
        run_tool([tool, "x" * (128 * 1024)], stdin=None, env=None, timeout=5)
    with pytest.raises(ValueError, match="unknown stream 'stdin'"):
        run_tool([tool], stdin=None, env=None, timeout=5, abort_streams=("stdin",))
    with pytest.raises(ValueError, match="max_output"):
        run_tool([tool], stdin=None, env=None, timeout=5, max_output=-1)
    assert not marker.exists()


# --- timeouts and interrupts --------------------------------------------------------------


def test_a_timeout_kills_the_whole_process_group(tmp_path: Path, exit_watch: str) -> None:
    pids = tmp_path / "pids"
    tool = script(
        tmp_path,
        "tool",
        f"""
        sleep 60 &
        echo $$ $! > {pids}
        echo started
        wait
    """,
        python=False,
    )
    started = time.monotonic()
    run = run_tool([tool], stdin=None, env=None, timeout=1.5)
    took = time.monotonic() - started
    assert 1.4 < took < 4
    assert run.timed_out and run.exit_code is None and run.stdout == "started\n"
    for pid in map(int, pids.read_text().split()):
        wait_until(lambda pid=pid: not alive(pid), 2, f"{pid} to die")  # type: ignore[misc]


_INTERRUPTED_CALLER = r"""
import sys
from credrot.process import run_tool
try:
    run_tool([sys.argv[1]], stdin=None, env=None, timeout=60, pid_file=sys.argv[2])
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_in_the_caller_kills_the_group_and_is_raised(tmp_path: Path) -> None:
    tool = script(tmp_path, "tool", "sleep 60 &\nwait\n", python=False)
    pid_file = tmp_path / "tool.pid"
    caller = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED_CALLER, tool, str(pid_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    pid = read_pid(pid_file)
    wait_until(lambda: len(members(pid)) >= 2, 10, "the tool's child")
    caller.send_signal(signal.SIGINT)
    out, _ = caller.communicate(timeout=10)
    assert caller.returncode == 130 and out == "interrupted\n"
    wait_until(lambda: not group_alive(pid), 3, "the tool's group to die")
    assert not pid_file.exists()


# --- abort patterns -----------------------------------------------------------------------


def test_an_abort_pattern_on_stderr_stops_the_tool_at_once(tmp_path: Path, exit_watch: str) -> None:
    tool = script(
        tmp_path,
        "tool",
        """
        import sys, time
        print("partial answer", flush=True)
        sys.stderr.write("+---- Qwen OAuth Device Authorization ----+\\n")
        sys.stderr.flush()
        time.sleep(60)
    """,
    )
    started = time.monotonic()
    run = run_tool([tool], stdin=None, env=None, timeout=30, abort_rules=(BOX,))
    assert time.monotonic() - started < 5
    assert run.aborted is BOX and run.exit_code is None and not run.timed_out
    assert "Device Authorization" in run.stderr and run.stdout == "partial answer\n"
    assert run.pid is not None
    wait_until(lambda: not group_alive(run.pid or 0), 2, "the tool to die")


def test_a_pattern_split_across_two_writes_is_still_seen(tmp_path: Path) -> None:
    tool = script(
        tmp_path,
        "tool",
        """
        import sys, time
        sys.stderr.write("Qwen OAuth Dev"); sys.stderr.flush()
        time.sleep(0.3)
        sys.stderr.write("ice Authorization\\n"); sys.stderr.flush()
        time.sleep(60)
    """,
    )
    run = run_tool([tool], stdin=None, env=None, timeout=30, abort_rules=(BOX,))
    assert run.aborted is BOX and run.duration < 5


def test_an_answer_quoting_the_login_box_is_an_answer(tmp_path: Path) -> None:
    """Row: an answer (stdout, exit 0) quotes the device-authorization box."""
    box = json.loads(TRANSCRIPT.read_text())["transcripts"]["refresh_fail"]["stderr"]
    answer = tmp_path / "answer.txt"
    answer.write_text("When the CLI shows this box, log in again:\n" + box)
    tool = script(tmp_path, "tool", f"cat {answer}\n", python=False)
    run = run_tool(
        [tool],
        stdin=None,
        env=None,
        timeout=20,
        abort_rules=QWEN.abort_rules,
        abort_streams=QWEN.abort_streams,
    )
    assert run.aborted is None and run.exit_code == 0
    assert run.stdout == answer.read_text()
    # A profile whose tool draws its prompt on stdout says so, and then it counts there.
    watched = run_tool(
        [tool],
        stdin=None,
        env=None,
        timeout=20,
        abort_rules=QWEN.abort_rules,
        abort_streams=("stdout", "stderr"),
    )
    assert watched.aborted is QWEN.abort_rules[0]


def test_a_wrapped_answer_quoting_the_login_box_parks_no_account(
    tmp_path: Path, make_cred: Callable[..., bytes]
) -> None:
    """Row: the same answer through ``Wrapper.call``: a success, every account usable."""
    from credrot.manager import AccountManager
    from credrot.wrapper import Wrapper

    box = json.loads(TRANSCRIPT.read_text())["transcripts"]["refresh_fail"]["stderr"]
    (tmp_path / "answer.txt").write_text("The CLI then shows:\n" + box)
    tool = script(tmp_path, "tool", f"cat {tmp_path / 'answer.txt'}\n", python=False)
    manager = AccountManager(
        tool=dataclasses.replace(QWEN, executable=tool), home=tmp_path / "home"
    )
    manager.import_account(make_cred(1))
    manager.import_account(make_cred(2))
    result = Wrapper(manager=manager).call("how do I log in?", timeout=20)
    assert result.success, result.error
    assert "Device Authorization" in result.output
    assert [a.status for a in manager.list_accounts()] == ["ready", "ready"]


def test_the_qwen_profile_still_stops_its_recorded_device_flow(tmp_path: Path) -> None:
    """The genuine qwen 0.12.0 drew the box on stderr, then polled: stopped at once."""
    recorded = json.loads(TRANSCRIPT.read_text())["transcripts"]["refresh_fail"]
    assert recorded["stdout"] == "" and "Device Authorization" in recorded["stderr"]
    (tmp_path / "box.txt").write_text(recorded["stderr"])
    tool = script(
        tmp_path, "tool", f"cat {tmp_path / 'box.txt'} >&2\nexec sleep 60\n", python=False
    )
    run = run_tool(
        [tool],
        stdin=None,
        env=None,
        timeout=30,
        abort_rules=QWEN.abort_rules,
        abort_streams=QWEN.abort_streams,
    )
    assert run.aborted is not None and run.aborted.kind is OutcomeKind.AUTH_FAILED
    assert run.duration < 5


# --- hostile tools ------------------------------------------------------------------------

_DAEMON = """
    import os, sys, time
    print("answer", flush=True)
    if os.fork() == 0:
        os.setsid()  # its own session: the tool's group kill does not reach it
        if os.fork() == 0:
            with open(sys.argv[1] + ".tmp", "w") as f:
                f.write(str(os.getpid()))
            os.rename(sys.argv[1] + ".tmp", sys.argv[1])
            time.sleep(120)  # stdout and stderr stay open all along
        os._exit(0)
    os.wait()
    if "--hang" in sys.argv:
        time.sleep(60)
"""


def test_a_daemon_holding_the_pipes_does_not_hold_the_call(
    tmp_path: Path, exit_watch: str, strays: list[int]
) -> None:
    """Row: the tool starts a daemon (double fork + setsid) that keeps stdout open."""
    tool = script(tmp_path, "tool", _DAEMON)
    daemon_pid = tmp_path / "daemon.pid"
    started = time.monotonic()
    run = run_tool([tool, str(daemon_pid)], stdin=b"hi", env=None, timeout=10)
    took = time.monotonic() - started
    strays.append(read_pid(daemon_pid))
    assert alive(strays[0])  # it really did hold the pipes while the call returned
    assert took < 3
    assert run.exit_code == 0 and run.stdout == "answer\n" and not run.timed_out
    assert run.stray_holder


def test_a_daemon_holding_the_pipes_of_a_hanging_tool_ends_at_the_timeout(
    tmp_path: Path, strays: list[int]
) -> None:
    tool = script(tmp_path, "tool", _DAEMON)
    daemon_pid = tmp_path / "daemon.pid"
    started = time.monotonic()
    run = run_tool([tool, str(daemon_pid), "--hang"], stdin=None, env=None, timeout=2)
    took = time.monotonic() - started
    strays.append(read_pid(daemon_pid))
    assert 1.9 < took < 4
    assert run.timed_out and run.stdout == "answer\n"


def test_a_wrapper_call_with_a_daemonising_tool_returns(
    tmp_path: Path, make_cred: Callable[..., bytes], strays: list[int]
) -> None:
    """Row: the same daemon through ``Wrapper.call(timeout=10)``: an answer, in time."""
    from credrot.manager import AccountManager
    from credrot.wrapper import Wrapper

    daemon_pid = tmp_path / "daemon.pid"
    tool = script(tmp_path, "tool", _DAEMON.replace("sys.argv[1]", repr(str(daemon_pid))))
    home = tmp_path / "home"
    manager = AccountManager(tool=dataclasses.replace(QWEN, executable=tool), home=home)
    manager.import_account(make_cred(1))
    started = time.monotonic()
    result = Wrapper(manager=manager).call("hi", timeout=10)
    took = time.monotonic() - started
    strays.append(read_pid(daemon_pid))
    assert took < 5
    assert result.success, result.error
    assert result.output.strip() == "answer"


def test_output_beyond_the_cap_is_drained_and_dropped(tmp_path: Path) -> None:
    tool = script(
        tmp_path,
        "tool",
        """
        import sys
        sys.stdout.buffer.write(b"o" * 300_000)
        sys.stderr.buffer.write(b"e" * 1000)
    """,
    )
    run = run_tool([tool], stdin=None, env=None, timeout=20, max_output=100_000)
    assert run.exit_code == 0
    assert run.stdout == "o" * 100_000 and run.stderr == "e" * 1000
    assert run.truncated == ("stdout",) and run.max_output == 100_000
    assert run.discarded == 200_000
    assert run.cap_note() == "stdout cut at 100000 bytes (200000 more bytes discarded)"


_BIG_ANSWER_CALLER = r"""
import json, resource, sys
from credrot.process import run_tool
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
run = run_tool([sys.argv[1]], stdin=b"give me 200 MB", env=None, timeout=120)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kib": before, "peak_kib": peak, "kept": len(run.stdout),
                  "truncated": run.truncated, "cap": run.max_output,
                  "discarded": run.discarded, "exit": run.exit_code}))
"""


def test_a_200_mb_answer_keeps_the_callers_memory_bounded(tmp_path: Path) -> None:
    """Row: a 200 MB answer (fully buffered before: 430 MB resident)."""
    tool = script(
        tmp_path,
        "tool",
        """
        import sys
        block = b"y" * (1 << 20)
        for _ in range(200):
            sys.stdout.buffer.write(block)
    """,
    )
    done = subprocess.run(
        [sys.executable, "-c", _BIG_ANSWER_CALLER, tool],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    seen = json.loads(done.stdout)
    assert seen["exit"] == 0
    assert seen["truncated"] == ["stdout"] and seen["cap"] == DEFAULT_MAX_OUTPUT
    assert seen["kept"] == DEFAULT_MAX_OUTPUT
    assert seen["discarded"] == 200 * (1 << 20) - DEFAULT_MAX_OUTPUT
    # The kept bytes, their join and their text: a few times the cap, never the answer.
    grown_mib = (seen["peak_kib"] - seen["before_kib"]) / 1024
    assert grown_mib < 4 * DEFAULT_MAX_OUTPUT / (1 << 20), grown_mib


# --- killed callers -----------------------------------------------------------------------

_KILLED_CALLER = r"""
import sys
from credrot import deathsig, process
if sys.argv[3] == "preexec":
    deathsig.LAUNCHER.broken = True
process.run_tool([sys.argv[1]], stdin=b"hi", env=None, timeout=120, pid_file=sys.argv[2])
"""


def test_the_tool_dies_with_a_caller_killed_by_sigkill(tmp_path: Path, spawn_mode: str) -> None:
    """Row (parallel callers): the caller is killed with SIGKILL mid-call."""
    tool = script(tmp_path, "tool", "exec sleep 120\n", python=False)
    pid_file = tmp_path / "tool.pid"
    caller = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CALLER, tool, str(pid_file), spawn_mode]
    )
    try:
        pid = read_pid(pid_file)
        assert alive(pid) and os.getpgid(pid) == pid  # the tool leads its own group
        caller.kill()
        caller.wait(timeout=10)
        wait_until(lambda: not alive(pid), 5, "the tool to die with its caller")
    finally:
        caller.kill()
        caller.wait()
    assert pid_file.read_text() == f"{pid}\n"  # left for the reaper, which finds it dead


def test_the_launcher_starts_nothing_once_its_caller_is_gone(tmp_path: Path) -> None:
    """Between fork and prctl the caller may die; then the tool must not start at all."""
    launcher = deathsig.LAUNCHER.path()
    if launcher is None:
        pytest.skip("the launcher cannot run on this system")
    marker = tmp_path / "ran"
    tool = script(tmp_path, "tool", f'touch {marker}\necho "$0 $*"\n', python=False)
    here = subprocess.run(
        [launcher, str(os.getpid()), tool, "as-argv0", "a b"], capture_output=True, text=True
    )
    assert (here.returncode, here.stdout) == (0, f"{tool} a b\n")  # argv after the path
    marker.unlink()
    gone = subprocess.run([launcher, "1", tool, "x"], capture_output=True, text=True)
    assert (gone.returncode, gone.stdout, marker.exists()) == (127, "", False)


def test_the_pid_file_tells_a_reaper_the_tools_children_still_run(
    tmp_path: Path, strays: list[int]
) -> None:
    """The parent-death signal reaches the tool only; a child it started lives on in
    the tool's group, and the pid file lets the reaper see the call home is in use."""
    child_file = tmp_path / "child.pid"
    tool = script(tmp_path, "tool", f"sleep 120 &\necho $! > {child_file}\nwait\n", python=False)
    pid_file = tmp_path / "tool.pid"
    caller = subprocess.Popen(
        [sys.executable, "-c", _KILLED_CALLER, tool, str(pid_file), "launcher"]
    )
    try:
        pid = read_pid(pid_file)
        strays.append(read_pid(child_file))
        caller.kill()
        caller.wait(timeout=10)
        wait_until(lambda: not alive(pid), 5, "the tool to die with its caller")
    finally:
        caller.kill()
        caller.wait()
    recorded = int(pid_file.read_text())
    assert group_alive(recorded)  # os.killpg(recorded, 0) is what a reaper would ask
    os.killpg(recorded, signal.SIGKILL)
    wait_until(lambda: not group_alive(recorded), 5, "the group to die")


def test_the_pid_file_lives_exactly_as_long_as_the_call(tmp_path: Path) -> None:
    pid_file = tmp_path / "tool.pid"
    # Written right after the spawn: the tool may start first, so it waits for it.
    tool = script(
        tmp_path,
        "tool",
        f"until [ -s {pid_file} ]; do sleep 0.01; done\ncat {pid_file}\n",
        python=False,
    )
    run: RunResult = run_tool([tool], stdin=None, env=None, timeout=20, pid_file=pid_file)
    assert run.stdout == f"{run.pid}\n"
    assert not pid_file.exists()


def test_importing_the_module_loads_no_subprocess_machinery() -> None:
    """Commands that never run a tool should not pay for what running one needs."""
    code = (
        "import sys, credrot.process; "
        "print(sorted({'subprocess', 'selectors', 'ctypes'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "[]"
