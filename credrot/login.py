"""Adding accounts: the tool's own login, run against a private temporary home.

The seed's setup let the tool log in against the real home, where the credential path
is a symlink into an existing account's slot: the new login was written *through* the
link and silently replaced that account. Here the login never sees the real home. Its
``HOME`` (and the tool's home variable) point at a fresh 0700 temporary directory; the
credential it writes there is validated, refused if it is already in the pool, and
imported into the next free slot by :meth:`AccountManager.import_account` (atomic,
0600). Whatever happens — a failed login, a timeout, Ctrl-C, SIGTERM — the temporary
home is removed and no partial file is left in the pool.

How the login starts is data: ``LOGIN_COMMANDS`` per tool, overridden by the
``CREDROT_LOGIN_COMMAND`` environment variable or the ``login_command`` argument (the
tests use the simulator this way).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from credrot.errors import CredrotError, ToolNotFound
from credrot.fsutil import read_regular

if TYPE_CHECKING:
    from credrot.manager import AccountManager
    from credrot.profile import ToolProfile

LOGIN_ENV = "CREDROT_LOGIN_COMMAND"
DEFAULT_TIMEOUT = 600.0


class LoginFailed(CredrotError, RuntimeError):
    """The login ended, or timed out, without leaving a valid credential."""


@dataclass
class Added:
    """One account added by :func:`enrol` (never holds the credential)."""

    index: int
    path: Path
    token_expiry: datetime | None


#: ``on_event(kind, message)``; kinds: ``start``, ``waiting``, ``added``.
Reporter = Callable[[str, str], None]


def login_command(
    profile: ToolProfile,
    override: str | Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    """The argv that logs ``profile``'s tool in: the override, the env var, or the default."""
    env = os.environ if environ is None else environ
    chosen: str | Sequence[str] | None = override or env.get(LOGIN_ENV) or None
    if chosen is None:
        if profile.login_args is None:
            raise CredrotError(
                f"no login command known for {profile.name}; pass one with --login-command"
            )
        return [profile.executable, *profile.login_args]
    argv = shlex.split(chosen) if isinstance(chosen, str) else list(chosen)
    if not argv:
        raise CredrotError("the login command is empty")
    return argv


def private_env(
    profile: ToolProfile, root: Path, base: Mapping[str, str] | None = None
) -> tuple[dict[str, str], Path]:
    """An environment whose only tool home is ``root``; returns it and the credential path."""
    env = dict(os.environ if base is None else base)
    # A login always gets HOME too: the tool must not find the real home by any route.
    env["HOME"] = str(root)
    tool_home = profile.point_at(env, root)
    tool_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return env, tool_home / profile.credential_name


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into KeyboardInterrupt so the cleanup below always runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous: list[tuple[signal.Signals, Any]] = []
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous.append((sig, signal.signal(sig, handler)))
    except ValueError:  # not the main thread: signals cannot be handled here
        pass
    try:
        yield
    finally:
        for sig, old in previous:
            if old is not None:
                signal.signal(sig, old)


@contextlib.contextmanager
def _terminal_kept() -> Iterator[None]:
    """Give the terminal back as it was: a killed full-screen login may leave raw mode."""
    saved = None
    fd = -1
    try:
        import termios

        if sys.stdin is not None and sys.stdin.isatty():
            fd = sys.stdin.fileno()
            saved = termios.tcgetattr(fd)
    except (ImportError, OSError, ValueError, AttributeError):
        saved = None
    try:
        yield
    finally:
        if saved is not None:
            with contextlib.suppress(OSError, ValueError):
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _stop(proc: subprocess.Popen[bytes], own_group: bool) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if own_group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    try:
        proc.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if own_group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        proc.wait()
    if own_group:  # children the login left behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def _stderr_fd() -> int | None:
    try:
        return sys.__stderr__.fileno() if sys.__stderr__ is not None else None
    except (OSError, ValueError):
        return None


def _read_valid(profile: ToolProfile, path: Path) -> tuple[bytes | None, str | None]:
    try:
        raw = read_regular(path)  # what the login left: never a FIFO, a link, a huge file
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror})"
    data, why = profile.parse_credential(raw)
    return (raw, None) if data is not None else (None, why)


def login_once(
    profile: ToolProfile,
    command: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    poll: float = 0.2,
    interactive: bool | None = None,
    base_env: Mapping[str, str] | None = None,
    on_event: Reporter | None = None,
) -> bytes:
    """Run the login in a private home; return the credential bytes it wrote.

    ``interactive`` (default: stdin is a terminal) keeps the login in the foreground
    with the terminal; otherwise its stdin is /dev/null and it runs in its own process
    group, so everything it started can be stopped.
    """
    if shutil.which(command[0], path=(base_env or os.environ).get("PATH")) is None:
        hint = f" (install it: {profile.install_hint})" if profile.install_hint else ""
        raise ToolNotFound(f"{command[0]} is not installed or not on PATH{hint}")
    if interactive is None:
        interactive = bool(sys.stdin is not None and sys.stdin.isatty())
    report = on_event or (lambda kind, message: None)
    with (
        tempfile.TemporaryDirectory(prefix=f"credrot-login-{profile.name}-") as tmp,
        _signals_interrupt(),
        _terminal_kept(),
    ):
        root = Path(tmp)
        os.chmod(root, 0o700)
        env, cred_path = private_env(profile, root, base_env)
        proc = subprocess.Popen(
            list(command),
            env=env,
            cwd=root,
            stdin=None if interactive else subprocess.DEVNULL,
            # Unattended, the tool's stdout goes to stderr: ours stays for results.
            stdout=None if interactive else _stderr_fd(),
            start_new_session=not interactive,
        )
        try:
            report("waiting", f"waiting for {profile.name} to write {profile.credential_name} ...")
            deadline = time.monotonic() + timeout
            last_why: str | None = None
            while True:
                raw, why = _read_valid(profile, cred_path)
                if raw is not None:
                    report("logged-in", f"logged in; closing {command[0]}")
                    return raw
                last_why = why or last_why
                code = proc.poll()
                if code is not None:
                    raw, why = _read_valid(profile, cred_path)
                    if raw is not None:
                        return raw
                    detail = (
                        f": the credential is not valid ({why or last_why})"
                        if (why or last_why)
                        else " without writing a credential"
                    )
                    raise LoginFailed(f"the login ended (exit code {code}){detail}")
                if time.monotonic() >= deadline:
                    raise LoginFailed(
                        f"no valid credential after {timeout:g} s; the login was stopped"
                    )
                time.sleep(poll)
        finally:
            _stop(proc, own_group=not interactive)


def enrol(
    manager: AccountManager,
    count: int = 1,
    *,
    command: str | Sequence[str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    poll: float = 0.2,
    interactive: bool | None = None,
    base_env: Mapping[str, str] | None = None,
    on_event: Reporter | None = None,
) -> list[Added]:
    """Log in ``count`` accounts one after another and add each to the pool.

    Stops at the first failure (a duplicate credential is refused with
    :class:`~credrot.errors.DuplicateAccount`); the accounts added before it stay.
    """
    profile = manager.profile
    argv = login_command(profile, command, base_env)
    report = on_event or (lambda kind, message: None)
    added: list[Added] = []
    for n in range(1, count + 1):
        step = f"[{n}/{count}] " if count > 1 else ""
        report(
            "start",
            f"{step}starting `{shlex.join(argv)}` with a private home: log in with the "
            f"account to add (your existing accounts are not touched)",
        )

        def relay(kind: str, message: str, step: str = step) -> None:
            report(kind, step + message)

        try:
            raw = login_once(
                profile,
                argv,
                timeout=timeout,
                poll=poll,
                interactive=interactive,
                base_env=base_env,
                on_event=relay,
            )
        except LoginFailed as exc:
            at_terminal = interactive
            if at_terminal is None:
                at_terminal = bool(sys.stdin is not None and sys.stdin.isatty())
            if (
                at_terminal
                or profile.login_args is None
                or argv
                != [
                    profile.executable,
                    *profile.login_args,
                ]
            ):
                raise
            # Without a terminal the tool starts no interactive session to log in with.
            raise LoginFailed(
                f"{exc}; without a terminal give a login that runs headless, e.g. "
                f"--login-command {shlex.quote(shlex.join([*argv, '-p', 'hi']))}"
            ) from None
        index = manager.import_account(raw)
        data, _ = profile.parse_credential(raw)
        expiry = profile.expiry(data) if data is not None else None
        del raw
        when = datetime.fromtimestamp(expiry, timezone.utc) if expiry is not None else None
        added.append(Added(index, manager.slot_path(index), when))
        report("added", f"{step}saved as account #{index} ({manager.slot_path(index)})")
    return added
