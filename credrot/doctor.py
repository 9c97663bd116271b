"""``credrot doctor``: what is wrong with a pool, how to fix it, and the fixes that are safe.

Safe fixes never delete credential bytes: adopting a regular-file pointer into its slot,
restoring the link, tightening permissions, removing a lock the tool itself already
treats as stale, and removing private call homes of processes that died. Anything else
(an invalid credential, a read-only home, a missing tool) is reported with what to do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from credrot.manager import RUN_DIR, TOOL_LOCK_FRESH
from credrot.pool import upkeep
from credrot.pool.pointer import TOOL_LOCK_SKEW, tool_lock_fresh
from credrot.report import relative
from credrot.state import load_state

if TYPE_CHECKING:
    from credrot.manager import AccountManager

LEVELS = ("ok", "info", "warn", "error")
VERSION_TIMEOUT = 20.0


@dataclass
class Finding:
    check: str
    level: str  # ok | info | warn | error
    message: str
    fix: str = ""
    fixable: bool = False  # ``doctor --fix`` applies it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mode(path: os.PathLike[str] | str) -> int | None:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def check_tool(manager: AccountManager) -> list[Finding]:
    profile = manager.profile
    path = shutil.which(profile.executable)
    if path is None:
        fix = f"install it: {profile.install_hint}" if profile.install_hint else "install it"
        return [Finding("tool", "error", f"{profile.executable} is not on PATH", fix)]
    try:
        proc = subprocess.run(
            [path, "--version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=VERSION_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        why = "timed out" if isinstance(exc, subprocess.TimeoutExpired) else exc.strerror
        return [Finding("tool", "warn", f"{path} --version failed ({why})", "reinstall the tool")]
    version = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not version:
        return [
            Finding(
                "tool",
                "warn",
                f"{path} --version failed (exit code {proc.returncode})",
                "reinstall the tool",
            )
        ]
    return [Finding("tool", "ok", f"{profile.executable} {version[0][:80]} ({path})")]


def _check_home(manager: AccountManager) -> tuple[list[Finding], bool]:
    home = manager.home
    if not home.exists():
        return [
            Finding(
                "home",
                "warn",
                f"{home} does not exist: no accounts yet",
                "add accounts: credrot accounts add",
            )
        ], False
    if not home.is_dir():
        return [Finding("home", "error", f"{home} is not a directory", "move it away")], False
    if not os.access(home, os.R_OK | os.X_OK):
        return [
            Finding(
                "home",
                "error",
                f"{home} cannot be read by you (permissions {_mode(home) or 0:04o}, "
                f"owner uid {home.stat().st_uid}); nothing in it can be checked",
                f"run as its owner, or: sudo chown -R {os.getuid()} {home} && chmod 700 {home}",
            )
        ], False
    found: list[Finding] = []
    mode = _mode(home)
    if mode is not None and mode & 0o077:
        found.append(
            Finding(
                "home",
                "warn",
                f"{home} has permissions {mode:04o}: other users can look inside",
                "chmod 700 the home",
                fixable=True,
            )
        )
    if not os.access(home, os.W_OK):
        found.append(
            Finding(
                "home",
                "error",
                f"{home} is read-only: switches and account state cannot be saved "
                "(calls still rotate, in memory only)",
                "mount or chmod the home read-write",
            )
        )
    else:
        found.append(Finding("home", "ok", f"{home} is writable"))
    accounts = manager.accounts_dir
    amode = _mode(accounts)
    if amode is not None and amode & 0o077:
        found.append(
            Finding(
                "home",
                "warn",
                f"{accounts} has permissions {amode:04o}",
                "chmod 700 the accounts folder",
                fixable=True,
            )
        )
    return found, True


def _check_state(manager: AccountManager) -> list[Finding]:
    name = manager.state_path.name
    _state, why = load_state(manager.state_path)
    if why is not None:
        return [
            Finding(
                "state",
                "warn",
                f"{name} is corrupt ({why}); credrot keeps it aside and takes its last "
                "flushed save (else rebuilds the state from the accounts on disk)",
                "nothing to do (counters since that save start again)",
            )
        ]
    kept = sorted(p.name for p in manager.home.glob(f"{name}.corrupt-*"))
    if not kept:
        return []
    return [
        Finding(
            "state",
            "warn",
            f"{name} was corrupt and replaced ({len(kept)} time{'s' if len(kept) != 1 else ''},"
            f" last kept as {kept[-1]}) by its last flushed save or, without one, by a state "
            "rebuilt from the accounts on disk: what it learnt after that was forgotten",
            "find what wrote it (a full disk, a hand edit, another program), then delete the "
            f"kept copies: rm {manager.home}/{name}.corrupt-*",
        )
    ]


def _check_accounts(manager: AccountManager, now: datetime) -> list[Finding]:
    infos = manager.list_accounts()
    if not infos:
        return [Finding("accounts", "warn", "no accounts in the pool", "credrot accounts add")]
    usable = sum(1 for i in infos if i.usable)
    summary = f"{len(infos)} accounts, {usable} usable now"
    if usable:
        found = [Finding("accounts", "ok", summary)]
    else:
        status = manager.pool_status()
        reset = status.first_reset
        found = [
            Finding(
                "accounts",
                "warn",
                f"{summary}: {status.headline(manager.profile.name)}"
                + (f" (first reset {reset.strftime('%Y-%m-%d %H:%M UTC')})" if reset else ""),
                (f"wait until {reset.strftime('%H:%M UTC')}, or " if reset else "")
                + "add an account: credrot accounts add",
            )
        ]
    for info in infos:
        name = f"account #{info.index}"
        if not info.valid:
            found.append(
                Finding(
                    "accounts",
                    "error",
                    f"{name}: {info.path.name} is not a valid credential ({info.invalid_reason})",
                    f"log in again: credrot accounts remove {info.index} && credrot accounts add",
                )
            )
        if info.unsafe_permissions:
            found.append(
                Finding(
                    "accounts",
                    "warn",
                    f"{name}: permissions {info.mode:04o} (other users may read the token)",
                    "chmod 600 the file",
                    fixable=True,
                )
            )
        if info.status == "needs_login":
            found.append(
                Finding(
                    "accounts",
                    "warn",
                    f"{name} needs a new login ({info.reason or 'authentication failed'})",
                    f"credrot accounts remove {info.index} && credrot accounts add",
                )
            )
        elif info.status == "disabled":
            found.append(
                Finding(
                    "accounts",
                    "warn",
                    f"{name} is disabled ({info.reason or 'entitlement ended'})",
                    f"remove it: credrot accounts remove {info.index}",
                )
            )
        if info.valid and info.token_expiry is not None and info.token_expiry < now:
            found.append(
                Finding(
                    "expiry",
                    "info",
                    f"{name}: access token expired {relative(info.token_expiry, now)} "
                    f"(the tool refreshes it on its next use)",
                )
            )
    return found


def _check_pointer(manager: AccountManager) -> list[Finding]:
    name = manager.pointer.name
    kind = manager.pointer_state()
    if kind == "link":
        target = os.readlink(manager.pointer)
        return [Finding("pointer", "ok", f"{name} links to {target}")]
    if not manager.slots():
        if kind == "file":
            return [
                Finding(
                    "pointer",
                    "warn",
                    f"{name} is a regular file and the pool is empty",
                    "import it: credrot accounts add --from " + str(manager.pointer),
                )
            ]
        return []
    if kind == "file" and manager.pointer.is_dir() and not manager.pointer.is_symlink():
        kind = "folder"
    text = {
        "folder": f"{name} is a folder, not a link to an account: no switch can happen",
        "file": f"{name} is a regular file (the tool refreshed the token by rename)",
        "missing": f"{name} is missing (the tool deletes it when a refresh fails)",
        "dangling": f"{name} is a link to a file that does not exist",
    }[kind]
    fix = {
        "folder": "move it aside (kept whole) and restore the link",
        "file": "adopt it into its account's slot and restore the link",
        "missing": "restore the link to the active account",
        "dangling": "restore the link to a usable account",
    }[kind]
    level = "error" if kind == "dangling" else "warn"
    return [Finding("pointer", level, text, fix, fixable=True)]


def _lock_held(path: os.PathLike[str] | str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def _check_locks(manager: AccountManager) -> list[Finding]:
    found: list[Finding] = []
    if manager.lock_path.exists() and _lock_held(manager.lock_path):
        found.append(
            Finding("lock", "info", f"{manager.lock_path.name} is held by a running credrot")
        )
    tool_lock = manager.profile.tool_lock_name
    if tool_lock:
        path = manager.home / tool_lock
        try:
            age = time.time() - path.stat().st_mtime
        except OSError:
            age = None
        if age is not None and age < -TOOL_LOCK_SKEW:
            found.append(
                Finding(
                    "lock",
                    "warn",
                    f"{tool_lock} is dated {int(-age)} s in the future (the clock was set "
                    "back?); it cannot be told from a refresh in progress",
                    "delete it",
                    fixable=True,
                )
            )
        elif age is not None and age >= TOOL_LOCK_FRESH:
            found.append(
                Finding(
                    "lock",
                    "warn",
                    f"{tool_lock} is stale ({int(age)} s old; "
                    f"{manager.profile.name} ignores it after {TOOL_LOCK_FRESH:g} s)",
                    "delete it",
                    fixable=True,
                )
            )
        elif age is not None:
            found.append(
                Finding("lock", "info", f"{manager.profile.name} is refreshing a token right now")
            )
    return found


def _check_run_dirs(manager: AccountManager) -> list[Finding]:
    found = [Finding("run", "warn", kept, "write it back", True) for kept in manager.kept_tokens()]
    dead = len(manager.dead_run_dirs())
    if dead:
        where = f"{dead} private call homes in {RUN_DIR}/ were left by processes that died"
        found.append(
            Finding("run", "warn", f"{where} (they hold token copies)", "remove them", True)
        )
    return found


def check_config() -> list[Finding]:
    """A broken config file, or one ``$CREDROT_CONFIG`` names that is not there."""
    from credrot import config
    from credrot.errors import ConfigError

    try:
        tools = config.load_tools()
    except ConfigError as exc:
        missing = "no such config file" in str(exc)
        fix = (
            f"create it, or unset {config.CONFIG_ENV}"
            if missing
            else "correct that key (the README's 'Describing another CLI' lists every key)"
        )
        level = "warn" if str(exc).startswith(f"{config.config_path()}: notify") else "error"
        return [Finding("config", level, str(exc), fix)]
    if not tools:
        return []
    names = ", ".join(sorted(tools))
    return [Finding("config", "ok", f"{config.config_path()} describes {names}")]


def _check_temp(manager: AccountManager) -> list[Finding]:
    stale = [path.name for path, _, _ in upkeep.stale_temp(manager.pool)]
    if not stale:
        return []
    return [
        Finding(
            "temp",
            "warn",
            f"{len(stale)} unfinished temporary files left by processes that died "
            f"({', '.join(sorted(stale)[:3])}{', ...' if len(stale) > 3 else ''})",
            "remove them (a credential's is kept in backups/ first)",
            fixable=True,
        )
    ]


def _check_store(manager: AccountManager) -> list[Finding]:
    """The shared store, when one is set: it answers, this user may, the key opens."""
    from credrot.remote.check import diagnose as store_findings

    settings = getattr(manager.pool.store.shared, "settings", None)
    found = store_findings(settings, manager.profile.name) if settings is not None else []
    return [Finding("store", *f) for f in found]


def diagnose(manager: AccountManager, *, tool: bool = True) -> list[Finding]:
    """Every finding about the pool of ``manager`` (and its tool, unless ``tool=False``)."""
    now = datetime.now(timezone.utc)
    found: list[Finding] = check_config()
    found += check_tool(manager) if tool else []
    home_found, exists = _check_home(manager)
    found += home_found
    if not exists:
        return found
    found += _check_state(manager)
    store = _check_store(manager)
    found += store
    if any(f.level in ("warn", "error") for f in store):
        manager.pool.store.shared = None  # the rest looks at this machine's files alone
    found += _check_accounts(manager, now)
    found += _check_pointer(manager)
    found += _check_locks(manager)
    found += _check_temp(manager)
    found += _check_run_dirs(manager)
    return found


def diagnose_safely(manager: AccountManager, *, tool: bool = True) -> list[Finding]:
    """:func:`diagnose`, with a file that cannot be read reported as a finding."""
    try:
        return diagnose(manager, tool=tool)
    except OSError as exc:
        where = exc.filename or manager.home
        return [
            *check_config(),
            Finding(
                "home",
                "error",
                f"{where} cannot be read ({exc.strerror or exc}); the rest was not checked",
                f"run as the owner of {manager.home}, or give your user read and write "
                f"access: sudo chown -R {os.getuid()} {manager.home}",
            ),
        ]


def apply_fixes(manager: AccountManager, findings: list[Finding]) -> list[str]:
    """Apply the safe fixes among ``findings``; returns what was done."""
    todo = {f.check for f in findings if f.fixable}
    done: list[str] = []
    if not todo:
        return done
    mode = _mode(manager.home)
    if "home" in todo and mode is not None and mode & 0o077:
        os.chmod(manager.home, 0o700)
        done.append(f"{manager.home}: permissions {mode:04o} -> 0700")
    if todo & {"home", "accounts", "pointer", "temp"}:
        done += manager.repair()
    if "lock" in todo and manager.profile.tool_lock_name:
        path = manager.home / manager.profile.tool_lock_name
        with contextlib.suppress(OSError):
            if not tool_lock_fresh(time.time() - path.stat().st_mtime):
                path.unlink()
                done.append(f"removed the stale {path.name}")
    if "run" in todo:
        done += manager.restore_kept()
        removed = manager.clean_run_dirs()
        if removed:
            done.append(f"removed {removed} private call homes left by dead processes")
    return done
