"""The account pool of one tool home: discovery, the active pointer, state, rotation.

Every mutation takes the pool lock, re-reads state inside it, writes atomically and
emits one audit record. The active pointer (``oauth_creds.json`` for Qwen) is a relative
symlink into ``accounts/``; when the tool has replaced it with a regular file (a token
refresh by rename, or a login) the file is *adopted* into its account's slot before the
pointer moves, so a refreshed token is never thrown away.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import stat
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credrot import state as st
from credrot.errors import (
    AccountNotFound,
    ConfigError,
    CredrotError,
    DuplicateAccount,
    InvalidCredential,
    ReadOnlyHome,
)
from credrot.kinds import Outcome, OutcomeKind
from credrot.lock import PoolLock
from credrot.profile import ToolProfile
from credrot.tools import get_profile

if TYPE_CHECKING:
    from credrot.events import Events

log = logging.getLogger(__name__)

STRATEGIES = ("fill-first", "round-robin", "least-used")
ACCOUNTS_DIR = "accounts"
STATE_FILE = "state.yaml"
LOG_FILE = "rotation.log"
LOCK_FILE = ".credrot.lock"
TRASH_DIR = "trash"
BACKUP_DIR = "backups"
RUN_DIR = ".credrot-run"
#: The tool's own refresh lock counts as held for this long (Qwen Code's stale time).
TOOL_LOCK_FRESH = 10.0


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


def _iso(ts: float | None) -> str | None:
    when = _utc(ts)
    return when.isoformat() if when is not None else None


@dataclass
class AccountInfo:
    """One account as ``list_accounts`` sees it. Holds no secret.

    Supports ``info["index"]`` as well as ``info.index`` for callers of the original API.
    """

    index: int
    path: Path
    active: bool
    status: str  # ready | exhausted | rate_limited | needs_login | disabled | invalid
    until: datetime | None
    reason: str
    valid: bool
    invalid_reason: str | None
    unsafe_permissions: bool
    mode: int
    calls: int
    successes: int
    quota_hits: int
    switches_to: int
    calls_today: int
    last_used: datetime | None
    token_expiry: datetime | None

    @property
    def usable(self) -> bool:
        return self.valid and self.status == st.READY

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        data["mode"] = oct(self.mode)
        data["usable"] = self.usable
        for key in ("until", "last_used", "token_expiry"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        return data


#: Plural status words for a pool headline ("all 3 accounts need login").
_STATUS_WORDS = {
    st.EXHAUSTED: "exhausted",
    st.RATE_LIMITED: "rate-limited",
    st.NEEDS_LOGIN: "need login",
    st.DISABLED: "disabled",
    "invalid": "invalid",
    "tried": "tried",
}


@dataclass
class PoolStatus:
    total: int
    usable: list[int]
    unusable: dict[int, tuple[str, datetime | None, str]]
    first_reset: datetime | None

    def headline(self, tool: str) -> str:
        """Why nothing is usable, in a few words: ``all 5 qwen accounts exhausted``,
        ``the only qwen account needs login``, ``all 3 qwen accounts are unusable (1
        disabled, 2 exhausted)``. The surfaces add the reset time in their own format."""
        if self.total == 0:
            return f"no {tool} accounts in the pool (add one with `credrot accounts add`)"
        kinds: dict[str, int] = {}
        for kind, _until, _why in self.unusable.values():
            kinds[kind] = kinds.get(kind, 0) + 1
        single = self.total == 1
        subject = f"the only {tool} account" if single else f"all {self.total} {tool} accounts"
        if len(kinds) == 1:
            kind = next(iter(kinds))
            word = _STATUS_WORDS.get(kind, kind.replace("_", " "))
            if single:
                word = "needs login" if kind == st.NEEDS_LOGIN else f"is {word}"
            return f"{subject} {word}"
        counts = ", ".join(
            f"{n} {_STATUS_WORDS.get(k, k.replace('_', ' '))}" for k, n in sorted(kinds.items())
        )
        return f"{subject} {'is' if single else 'are'} unusable ({counts})"

    def describe(self, tool: str) -> str:
        """A one-line account of why nothing is usable, e.g. for a failed call."""
        if self.total == 0:
            return f"no {tool} accounts in the pool (add one with `credrot accounts add`)"
        parts = []
        for index, (status, until, _reason) in sorted(self.unusable.items()):
            label = status.replace("_", " ")
            if until is not None:
                label += f" until {until.strftime('%Y-%m-%d %H:%M UTC')}"
            parts.append(f"#{index} {label}")
        reset = (
            f"; first reset {self.first_reset.strftime('%Y-%m-%d %H:%M UTC')}"
            if self.first_reset
            else "; none resets by itself"
        )
        if self.usable:
            return f"{len(self.usable)} of {self.total} {tool} accounts usable" + (
                f" ({', '.join(parts)})" if parts else ""
            )
        noun = (
            f"the only {tool} account is"
            if self.total == 1
            else (f"all {self.total} {tool} accounts are")
        )
        return f"{noun} unusable ({', '.join(parts)}){reset}"


class AccountManager:
    """The pool of accounts of one tool home.

    ``AccountManager()`` manages Qwen Code's pool in ``$QWEN_HOME`` or ``~/.qwen``;
    ``AccountManager(qwen_dir=PATH)`` or ``AccountManager(tool="claude", home=PATH)``
    choose another home or tool.
    """

    def __init__(
        self,
        qwen_dir: str | os.PathLike[str] | None = None,
        *,
        tool: str | ToolProfile = "qwen",
        home: str | os.PathLike[str] | None = None,
        strategy: str = "fill-first",
        lock_timeout: float = 30.0,
        in_memory_fallback: bool = False,
        plugins: tuple[object, ...] = (),
    ) -> None:
        self.profile = get_profile(tool)
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {strategy!r} (choose from {', '.join(STRATEGIES)})"
            )
        chosen = home if home is not None else qwen_dir
        self.home = (
            Path(chosen).expanduser() if chosen is not None else self.profile.default_home()
        ).absolute()
        self.strategy = strategy
        self.lock_timeout = lock_timeout
        #: Keep rotating in memory when the home cannot be written (the wrapper's choice).
        self.in_memory_fallback = in_memory_fallback
        #: False once a change could not be written because the home is read-only.
        self.persisted = True
        self._memory: st.PoolState | None = None
        self.notices: list[str] = []
        self._plugins = plugins
        self._events: Events | None = None
        self._slot_paths: dict[int, Path] = {}
        self._reported_invalid: set[tuple[int, str | None]] = set()
        self._slots_cache: tuple[tuple[int, int], dict[int, Path]] | None = None
        self._valid_cache: dict[
            int, tuple[tuple[int, int, int], dict[str, object] | None, str | None]
        ] = {}
        self._slot_re = re.compile(
            rf"^{re.escape(self.profile.account_stem)}_(\d+){re.escape(self.profile.account_suffix)}$"
        )

    def __repr__(self) -> str:
        return f"AccountManager(tool={self.profile.name!r}, home={str(self.home)!r})"

    @property
    def events(self) -> Events:
        """The pool's hooks; pluggy is imported on first use, so read-only commands
        (``account-qwen --list``) start without it."""
        if self._events is None:
            from credrot.events import Events

            self._events = Events(self.profile.name, self.home, self._plugins)
        return self._events

    # ----------------------------------------------------------------- paths
    @functools.cached_property
    def accounts_dir(self) -> Path:
        return self.home / ACCOUNTS_DIR

    @functools.cached_property
    def pointer(self) -> Path:
        return self.home / self.profile.credential_name

    @functools.cached_property
    def state_path(self) -> Path:
        return self.home / STATE_FILE

    @functools.cached_property
    def log_path(self) -> Path:
        return self.home / LOG_FILE

    @functools.cached_property
    def lock_path(self) -> Path:
        return self.home / LOCK_FILE

    def slot_path(self, index: int) -> Path:
        path = self._slot_paths.get(index)
        if path is None:
            path = self._slot_paths[index] = self.accounts_dir / self.profile.slot_name(index)
        return path

    def _rel_target(self, index: int) -> str:
        return f"{ACCOUNTS_DIR}/{self.profile.slot_name(index)}"

    # --------------------------------------------------------------- reading
    def slots(self) -> dict[int, Path]:
        """Account files by number; gaps allowed. Other names are reported, never touched.

        The listing is cached on the directory's (inode, mtime), and only trusted once that
        mtime is older than the filesystem's timestamp granularity, so a change made by
        another process in the same clock tick is never missed.
        """
        try:
            st_dir = os.stat(self.accounts_dir)
        except FileNotFoundError:
            return {}
        except NotADirectoryError:
            self._notice(f"{self.accounts_dir} is not a directory")
            return {}
        key = (st_dir.st_ino, st_dir.st_mtime_ns)
        cached = self._slots_cache
        if cached is not None and cached[0] == key:
            return dict(cached[1])
        found: dict[int, Path] = {}
        try:
            entries = list(os.scandir(self.accounts_dir))
        except (FileNotFoundError, NotADirectoryError):
            return {}
        for entry in entries:
            m = self._slot_re.match(entry.name)
            if m is None:
                if not entry.name.startswith(".") and not entry.name.endswith(".tmp"):
                    self._notice(
                        f"ignoring {entry.path}: not named "
                        f"{self.profile.account_stem}_<number>{self.profile.account_suffix}"
                    )
                continue
            index = int(m.group(1))
            if index > 0:
                found[index] = Path(entry.path)
        result = dict(sorted(found.items()))
        settled = time.time_ns() - st_dir.st_mtime_ns > 50_000_000
        self._slots_cache = (key, result) if settled else None
        return dict(result)

    def _notice(self, message: str) -> None:
        if message not in self.notices:
            self.notices.append(message)
            log.warning("%s", message)

    def _read_slot(self, index: int) -> tuple[dict[str, object] | None, str | None]:
        """Parse a slot's credential, cached on (inode, size, mtime)."""
        path = self.slot_path(index)
        try:
            s = path.stat()
        except FileNotFoundError:
            return None, "file is missing"
        key = (s.st_ino, s.st_size, s.st_mtime_ns)
        cached = self._valid_cache.get(index)
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        try:
            raw = path.read_bytes()
        except OSError as exc:
            return None, f"cannot be read ({exc.strerror})"
        data, why = self.profile.parse_credential(raw)
        self._valid_cache[index] = (key, data, why)
        return data, why

    def read_credential(self, index: int) -> bytes:
        """The raw bytes of an account's credential (for a private call home)."""
        path = self.slot_path(index)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise AccountNotFound(f"no {self.profile.name} account #{index} ({path})") from None

    def _load(self) -> st.PoolState:
        if self._memory is not None:
            return self._memory
        state, why = st.load_state(self.state_path)
        if state is not None:
            return state
        if why is not None:
            aside = None
            if os.access(self.home, os.W_OK):
                aside = st.set_aside(self.state_path, why)
            self._notice(
                f"state file {self.state_path} was corrupt ({why}); "
                + (f"kept as {aside.name}; " if aside else "")
                + "state rebuilt from the accounts on disk"
            )
        return self._rebuild()

    def _rebuild(self) -> st.PoolState:
        state = st.PoolState()
        for index in self.slots():
            state.account(index)
        target = self._pointer_index()
        if target is not None and target in state.accounts:
            state.current = target
        return state

    def _pointer_index(self) -> int | None:
        try:
            target = os.readlink(self.pointer)
        except OSError:
            return None
        m = self._slot_re.match(os.path.basename(target))
        if m is None:
            return None
        index = int(m.group(1))
        return index if self.slot_path(index).exists() else None

    def pointer_state(self) -> str:
        """``link`` (to a slot), ``file`` (a regular file to adopt), ``missing`` or ``dangling``."""
        try:
            s = os.lstat(self.pointer)
        except FileNotFoundError:
            return "missing"
        if stat.S_ISLNK(s.st_mode):
            return "link" if self._pointer_index() is not None else "dangling"
        return "file"

    def current(self) -> int | None:
        return self._load().current

    # --------------------------------------------------------------- writing
    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.home.is_dir():
            raise ConfigError(f"{self.profile.name} home {self.home} does not exist")
        try:
            lock = PoolLock(self.lock_path, self.lock_timeout)
            lock.acquire()
        except ReadOnlyHome:
            if not self.in_memory_fallback:
                raise
            self.persisted = False
            yield
            return
        try:
            yield
        finally:
            lock.release()

    def _save(self, state: st.PoolState) -> None:
        state.generation += 1
        if self._memory is not None:
            self._memory = state
            return
        try:
            st.save_state(self.state_path, state)
        except (ReadOnlyHome, PermissionError, OSError) as exc:
            if not isinstance(exc, ReadOnlyHome) and not (
                isinstance(exc, OSError) and st.is_read_only_error(exc)
            ):
                raise
            if not self.in_memory_fallback:
                raise ReadOnlyHome(f"{self.home} is read-only: nothing was changed") from None
            self.persisted = False
            self._memory = state

    def _writable_home(self) -> None:
        if self._memory is None and not os.access(self.home, os.W_OK):
            if self.in_memory_fallback:
                return
            raise ReadOnlyHome(f"{self.home} is read-only: nothing was changed")

    def _ensure_dirs(self) -> None:
        for path in (self.home, self.accounts_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.accounts_dir, 0o700)

    def _wait_for_tool_lock(self) -> None:
        """Don't move the pointer while the tool itself is refreshing the credential."""
        if not self.profile.tool_lock_name:
            return
        path = self.home / self.profile.tool_lock_name
        deadline = time.monotonic() + TOOL_LOCK_FRESH + 1.0
        while time.monotonic() < deadline:
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                return
            if age >= TOOL_LOCK_FRESH:
                return
            time.sleep(0.05)

    def _home_writable(self) -> bool:
        return self._memory is None and os.access(self.home, os.W_OK)

    def _set_pointer(self, index: int, state: st.PoolState, *, adopt: bool = True) -> None:
        if not self._home_writable():
            if self.in_memory_fallback:
                self.persisted = False
                return
            raise ReadOnlyHome(f"{self.home} is read-only: nothing was changed")
        self._wait_for_tool_lock()
        # The tool may have replaced the link since this operation began: save it first.
        if adopt:
            self._adopt_pointer_file(state)
        tmp = self.home / f".{self.profile.credential_name}.{os.getpid()}.{os.urandom(4).hex()}.lnk"
        os.symlink(self._rel_target(index), tmp)
        try:
            os.replace(tmp, self.pointer)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        # A running CLI reloads the credential only when its mtime is newer.
        slot = self.slot_path(index)
        with suppress(OSError):
            os.utime(slot)
            cached = self._valid_cache.get(index)
            if cached is not None:
                # Only the time changed: keep the parsed credential for the new stat.
                s = slot.stat()
                if (s.st_ino, s.st_size) == cached[0][:2]:
                    self._valid_cache[index] = ((s.st_ino, s.st_size, s.st_mtime_ns), *cached[1:])

    # -------------------------------------------------------------- adoption
    def _owner_of(self, data: Mapping[str, object]) -> int | None:
        # identity, not every secret: two env accounts may share a base URL
        secrets = self.profile.identity_of(data)
        if not secrets:
            return None
        for index in self.slots():
            slot_data, _ = self._read_slot(index)
            if slot_data is not None and secrets & self.profile.identity_of(slot_data):
                return index
        return None

    def _backup(self, raw: bytes, label: str) -> Path:
        backups = self.home / BACKUP_DIR
        backups.mkdir(mode=0o700, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        dest = backups / f"{label}-{stamp}{self.profile.account_suffix}"
        st.atomic_write(dest, raw)
        return dest

    def _adopt_pointer_file(self, state: st.PoolState) -> int | None:
        """Save a regular file at the pointer into the account it belongs to.

        Returns that account's number, or None when the file was kept as a backup.
        """
        try:
            s = os.lstat(self.pointer)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(s.st_mode) or not stat.S_ISREG(s.st_mode):
            return None
        raw = self.pointer.read_bytes()
        data, why = self.profile.parse_credential(raw)
        slots = self.slots()
        if data is None:
            dest = self._backup(raw, "unrecognised")
            self._notice(f"{self.pointer} was not a valid credential ({why}); kept as {dest}")
            self.events.audit("adopted", to=None, reason=f"invalid credential kept as {dest.name}")
            return None
        owner = self._owner_of(data)
        confirmed = owner is not None
        if owner is None and state.current in slots:
            owner = state.current
        if owner is None and not slots:
            self._ensure_dirs()
            owner = 1
        if owner is None:
            dest = self._backup(raw, "unowned")
            self._notice(f"{self.pointer} matched no account; kept as {dest}")
            self.events.audit("adopted", to=None, reason=f"unowned credential kept as {dest.name}")
            return None
        slot = self.slot_path(owner)
        if slot.exists():
            old = slot.read_bytes()
            if old == raw:
                return owner
            old_data, _ = self.profile.parse_credential(old)
            old_exp = self.profile.expiry(old_data) if old_data else None
            new_exp = self.profile.expiry(data)
            if confirmed and old_exp is not None and new_exp is not None and new_exp < old_exp:
                dest = self._backup(raw, f"older-{owner}")
                self.events.audit("adopted", to=owner, reason=f"older copy kept as {dest.name}")
                return owner
            if not confirmed:
                dest = self._backup(old, f"replaced-{owner}")
                self._notice(
                    f"adopted {self.pointer} into account #{owner} (the active one); "
                    f"its previous file is kept as {dest}"
                )
        st.atomic_write(slot, raw)
        self._valid_cache.pop(owner, None)
        state.account(owner)
        self.events.audit("adopted", to=owner, reason="refreshed credential saved to its slot")
        return owner

    def _sync_pointer(self, state: st.PoolState) -> bool:
        """Adopt a regular pointer file and restore a missing or dangling link.

        Returns True when ``state`` changed.
        """
        if not self._home_writable():
            return False
        kind = self.pointer_state()
        if kind == "link":
            target = self._pointer_index()
            if target is not None and target != state.current:
                state.current = target  # the link was moved by hand: the link wins
                return True
            return False
        owner = None
        if kind == "file":
            self._wait_for_tool_lock()
            owner = self._adopt_pointer_file(state)
        slots = self.slots()
        if not slots:
            return owner is not None
        for index in slots:
            state.account(index)
        pick = state.current if state.current in slots else owner
        if pick is None:
            pick = self._pick_next(state, None, exclude=set()) or next(iter(slots))
        state.current = pick
        # A file was adopted just above; adopting it again would back it up twice.
        self._set_pointer(pick, state, adopt=kind != "file")
        if kind != "file":
            self.events.audit("restored", to=pick, reason=f"pointer was {kind}")
        return True

    def repair(self) -> list[str]:
        """Adopt, restore the pointer, fix permissions. Returns what was done."""
        done: list[str] = []
        with self._locked():
            before = self.pointer_state()
            state = self._load()
            self._writable_home()
            changed = self._sync_pointer(state)
            if before != "link" and self.pointer_state() == "link":
                done.append(f"pointer was {before}; now links to account #{self._pointer_index()}")
            for index, path in self.slots().items():
                mode = stat.S_IMODE(path.stat().st_mode)
                if mode & 0o077:
                    os.chmod(path, 0o600)
                    done.append(f"account #{index}: permissions {oct(mode)} -> 0o600")
            if (
                self.accounts_dir.is_dir()
                and stat.S_IMODE(self.accounts_dir.stat().st_mode) & 0o077
            ):
                os.chmod(self.accounts_dir, 0o700)
                done.append(f"{self.accounts_dir}: permissions -> 0o700")
            done += self._clean_stale_temp()
            if changed:
                self._save(state)
        return done

    def _clean_stale_temp(self) -> list[str]:
        """Temporary files of writers that died before their rename (``kill -9``).

        A pointer or state temp file is removed; a credential's is moved to ``backups/``,
        since it may hold the only copy of a token refreshed just before the crash.
        """
        done: list[str] = []
        for folder, keep in ((self.home, False), (self.accounts_dir, True)):
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                m = _STALE_TEMP.match(entry.name)
                if m is None or _pid_alive(int(m.group(2))):
                    continue
                if keep:
                    dest = self._backup(Path(entry.path).read_bytes(), f"unfinished-{m.group(1)}")
                    os.unlink(entry.path)
                    done.append(f"unfinished write {entry.name} kept as {dest}")
                else:
                    os.unlink(entry.path)
                    done.append(f"removed {entry.name}, left by a process that died")
        return done

    # ------------------------------------------------------------- selection
    def _valid(self, index: int) -> bool:
        """Whether a slot holds a usable credential; an invalid one is audited once."""
        data, why = self._read_slot(index)
        if data is None and (index, why) not in self._reported_invalid:
            self._reported_invalid.add((index, why))
            self.events.audit("invalid", to=index, reason=f"never activated: {why}")
        return data is not None

    def _usable(self, state: st.PoolState, index: int, now: float) -> bool:
        acct = state.accounts.get(index)
        if acct is not None and not acct.usable(now):
            return False
        return self._valid(index)

    def _pick_next(
        self, state: st.PoolState, after: int | None, *, exclude: set[int], now: float | None = None
    ) -> int | None:
        """The next usable account after ``after`` in cyclic order, by the strategy."""
        now = time.time() if now is None else now
        slots = list(self.slots())
        if self.strategy == "least-used":
            ranked = sorted(
                (i for i in slots if i not in exclude),
                key=lambda i: (
                    state.account(i).calls_on(now),
                    state.account(i).last_used or 0.0,
                    i,
                ),
            )
            for i in ranked:
                if self._usable(state, i, now):
                    return i
            return None
        start = 0
        if after is not None:
            start = next((pos for pos, i in enumerate(slots) if i > after), len(slots))
        for i in slots[start:] + slots[:start]:
            if i in exclude or i == after:
                continue
            if self._usable(state, i, now):
                return i
        return None

    def _switch(self, state: st.PoolState, to: int, reason: str) -> None:
        before = state.current
        state.current = to
        state.switches_total += 1
        state.last_switch = time.time()
        state.last_switch_from, state.last_switch_to = before, to
        state.account(to).switches_to += 1
        self._set_pointer(to, state)
        self.events.switched(before, to, reason)

    def switch_to(self, index: int) -> int:
        """Make account ``index`` the active one."""
        with self._locked():
            state = self._load()
            self._writable_home()
            self._sync_pointer(state)
            if index not in self.slots():
                raise AccountNotFound(
                    f"no {self.profile.name} account #{index} in {self.accounts_dir}"
                )
            _, why = self._read_slot(index)
            if why is not None:
                raise InvalidCredential(f"account #{index} is not a valid credential: {why}")
            if state.current != index or self.pointer_state() != "link":
                self._switch(state, index, "manual")
            self._save(state)
            return index

    def switch_next(
        self, expected: int | None = None, *, reason: str = "manual"
    ) -> tuple[bool, int]:
        """Move to the next usable account.

        With ``expected``, move only if the pool is still on that account
        (compare-and-swap): N callers that saw the same failure advance it once.
        Returns ``(False, current)`` only when no other usable account exists.
        """
        with self._locked():
            state = self._load()
            self._writable_home()
            changed = self._sync_pointer(state)
            now = time.time()
            current = state.current
            if expected is not None and current is not None and current != expected:
                if changed:
                    self._save(state)
                if self._usable(state, current, now):
                    return True, current
                # The pool already moved, but onto an account that is spent too.
                expected = current
            nxt = self._pick_next(state, current, exclude=set(), now=now)
            if nxt is None:
                if changed:
                    self._save(state)
                return False, current if current is not None else 0
            self._switch(state, nxt, reason)
            self._save(state)
            return True, nxt

    # ------------------------------------------------------------ for calls
    def acquire(self, exclude: set[int] | frozenset[int] = frozenset()) -> int | None:
        """The account the next call should use, moving the pool there if needed.

        Returns None when no usable account is left (beside ``exclude``).
        """
        with self._locked():
            state = self._load()
            changed = self._sync_pointer(state)
            now = time.time()
            current = state.current
            current_ok = (
                current is not None
                and current not in exclude
                and current in self.slots()
                and self._usable(state, current, now)
            )
            pick: int | None
            if self.strategy == "fill-first" and current_ok:
                pick = current
            elif self.strategy == "least-used":
                pick = self._pick_next(state, None, exclude=set(exclude), now=now)
            else:
                pick = self._pick_next(state, current, exclude=set(exclude), now=now)
                if pick is None and current_ok:
                    pick = current
            if pick is not None and pick != current:
                reason = "round-robin" if current_ok else "current unusable"
                if self.strategy == "least-used" and current_ok:
                    reason = "least-used"
                self._switch(state, pick, reason)
                changed = True
            if changed:
                self._save(state)
            return pick

    def record(
        self,
        index: int,
        outcome: Outcome,
        *,
        count_call: bool = True,
        until: datetime | None = None,
        mark: bool = True,
    ) -> int | None:
        """Record what a call on ``index`` found; mark it and move the pool off it if spent.

        With ``mark=False`` only the counters change (a rate limit about to be retried).
        Returns the account the pool is on afterwards.
        """
        with self._locked():
            state = self._load()
            now = time.time()
            acct = state.account(index)
            before = acct.effective_status(now)
            if count_call:
                acct.count_call(now)
            acct.last_outcome = outcome.kind.value
            kind = outcome.kind
            if kind is OutcomeKind.OK:
                acct.successes += 1
                if before != st.READY or acct.status != st.READY:
                    acct.status, acct.until, acct.reason = st.READY, None, ""
                    if before != st.READY:
                        self.events.audit("recovered", to=index, reason="call succeeded")
            elif kind is OutcomeKind.ERROR:
                acct.errors += 1
            elif not mark:
                if kind is OutcomeKind.RATE_LIMITED:
                    acct.rate_limits += 1
            else:
                if kind is OutcomeKind.QUOTA_EXHAUSTED:
                    acct.quota_hits += 1
                    when = (
                        until
                        or outcome.resets_at
                        or self.profile.default_reset(_utc(now) or datetime.now(timezone.utc))
                    )
                    self._mark(acct, st.EXHAUSTED, when, outcome.message)
                elif kind is OutcomeKind.RATE_LIMITED:
                    acct.rate_limits += 1
                    if until is None:
                        wait = outcome.retry_after
                        if wait is None:
                            wait = self.profile.rate_limit_window.total_seconds()
                        until = datetime.fromtimestamp(now + wait, timezone.utc)
                    self._mark(acct, st.RATE_LIMITED, until, outcome.message)
                elif kind is OutcomeKind.AUTH_FAILED:
                    acct.auth_failures += 1
                    self._mark(acct, st.NEEDS_LOGIN, None, outcome.message)
                elif kind is OutcomeKind.DISABLED:
                    self._mark(acct, st.DISABLED, None, outcome.message)
                self.events.exhausted(index, outcome, _utc(acct.until))
                if state.current == index or state.current is None:
                    self._sync_pointer(state)
                    nxt = self._pick_next(state, index, exclude=set(), now=now)
                    if nxt is not None and self._memory is None:
                        self._switch(state, nxt, kind.value)
                    elif nxt is not None:
                        state.current = nxt
            self._save(state)
            return state.current

    @staticmethod
    def _mark(acct: st.AccountState, status: str, until: datetime | None, reason: str) -> None:
        acct.status = status
        acct.until = until.timestamp() if until is not None else None
        acct.reason = reason[:200]

    def mark(
        self, index: int, status: str, *, until: datetime | None = None, reason: str = ""
    ) -> None:
        """Set an account's status by hand: ``exhausted``/``rate_limited`` (until T),
        ``needs_login``, ``disabled`` or ``ready`` (recovered)."""
        if status not in st.STATUSES:
            raise ConfigError(f"unknown status {status!r} (choose from {', '.join(st.STATUSES)})")
        if status in st.TIMED and until is None:
            raise ConfigError(f"status {status!r} needs an until time")
        with self._locked():
            state = self._load()
            self._writable_home()
            if index not in self.slots():
                raise AccountNotFound(f"no {self.profile.name} account #{index}")
            self._mark(state.account(index), status, until if status in st.TIMED else None, reason)
            self.events.audit(
                "marked" if status != st.READY else "recovered",
                to=index,
                reason=f"{status} {reason}".strip(),
            )
            self._save(state)

    def reset(self, index: int | None = None) -> list[int]:
        """Forget what is known about one account (or all): they are ready again."""
        with self._locked():
            state = self._load()
            self._writable_home()
            slots = self.slots()
            if index is not None and index not in slots:
                raise AccountNotFound(f"no {self.profile.name} account #{index}")
            targets = [index] if index is not None else list(slots)
            for i in targets:
                acct = state.account(i)
                acct.status, acct.until, acct.reason = st.READY, None, ""
                self.events.audit("reset", to=i, reason="manual reset")
            self._save(state)
            return targets

    def write_back(self, index: int, original: bytes, refreshed: bytes) -> bool:
        """Save a credential the tool refreshed during a call into *its own* slot.

        Written only if the slot still holds what the call started from, or the refreshed
        token expires later than what the slot holds now. Returns True when written.
        """
        data, _ = self.profile.parse_credential(refreshed)
        if data is None:
            return False
        with self._locked():
            if self._memory is not None or not os.access(self.accounts_dir, os.W_OK):
                return False
            slot = self.slot_path(index)
            try:
                now_raw = slot.read_bytes()
            except FileNotFoundError:
                return False  # the account was removed meanwhile; don't resurrect it
            if now_raw == refreshed:
                return False
            if now_raw != original:
                now_data, _ = self.profile.parse_credential(now_raw)
                old_exp = self.profile.expiry(now_data) if now_data else None
                new_exp = self.profile.expiry(data)
                if old_exp is not None and (new_exp is None or new_exp <= old_exp):
                    return False
            st.atomic_write(slot, refreshed)
            self._valid_cache.pop(index, None)
            self.events.audit("refreshed", to=index, reason="token refreshed during a call")
            return True

    # ------------------------------------------------------ adding/removing
    def import_account(
        self, source: str | os.PathLike[str] | bytes, index: int | None = None
    ) -> int:
        """Add a credential (a file path or its bytes) as a new account; returns its number."""
        if isinstance(source, bytes):
            raw = source
        else:
            try:
                raw = Path(source).read_bytes()
            except OSError as exc:
                raise InvalidCredential(f"cannot read {source}: {exc.strerror}") from None
        data, why = self.profile.parse_credential(raw)
        if data is None:
            raise InvalidCredential(f"not a valid {self.profile.name} credential: {why}")
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._locked():
            state = self._load()
            self._writable_home()
            self._sync_pointer(state)
            self._ensure_dirs()
            slots = self.slots()
            owner = self._owner_of(data)
            if owner is not None:
                raise DuplicateAccount(f"this credential is already account #{owner}")
            if index is None:
                index = max(slots, default=0) + 1
            elif index < 1:
                raise ConfigError("account numbers start at 1")
            elif index in slots:
                raise DuplicateAccount(f"account #{index} already exists")
            st.atomic_write(self.slot_path(index), raw)
            state.accounts[index] = st.AccountState()
            self.events.audit("added", to=index, reason="imported")
            if state.current is None or state.current not in slots:
                state.current = index
                self._set_pointer(index, state)
            self._save(state)
            return index

    def remove_account(self, index: int) -> Path:
        """Move an account's file into ``trash/`` (never unlinked); returns where it went."""
        with self._locked():
            state = self._load()
            self._writable_home()
            self._sync_pointer(state)
            slots = self.slots()
            if index not in slots:
                raise AccountNotFound(f"no {self.profile.name} account #{index}")
            trash = self.home / TRASH_DIR
            trash.mkdir(mode=0o700, exist_ok=True)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            dest = (
                trash / f"{self.profile.account_stem}_{index}.{stamp}{self.profile.account_suffix}"
            )
            n = 1
            while dest.exists():
                n += 1
                dest = dest.with_name(
                    f"{self.profile.account_stem}_{index}.{stamp}.{n}{self.profile.account_suffix}"
                )
            os.replace(slots[index], dest)
            self._valid_cache.pop(index, None)
            state.accounts.pop(index, None)
            self.events.audit(
                "removed", **{"from": index, "reason": f"moved to {TRASH_DIR}/{dest.name}"}
            )
            if state.current == index:
                nxt = self._pick_next(state, index, exclude={index})
                if nxt is None:
                    nxt = next((i for i in self.slots()), None)
                if nxt is not None:
                    self._switch(state, nxt, "removed")
                else:
                    state.current = None
                    if os.path.islink(self.pointer):
                        os.unlink(self.pointer)  # only the link: its target is in the trash
            self._save(state)
            return dest

    # --------------------------------------------------------------- reports
    def list_accounts(self) -> list[AccountInfo]:
        state = self._load()
        now = time.time()
        active = self._pointer_index()
        if active is None:
            active = state.current
        infos: list[AccountInfo] = []
        for index, path in self.slots().items():
            acct = state.accounts.get(index) or st.AccountState()
            data, why = self._read_slot(index)
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
            except OSError:
                mode = 0
            status = acct.effective_status(now) if data is not None else "invalid"
            until = _utc(acct.until) if status in st.TIMED else None
            expiry = self.profile.expiry(data) if data is not None else None
            infos.append(
                AccountInfo(
                    index=index,
                    path=path,
                    active=index == active,
                    status=status,
                    until=until,
                    reason=acct.reason if status != st.READY else "",
                    valid=data is not None,
                    invalid_reason=why,
                    unsafe_permissions=bool(mode & 0o077),
                    mode=mode,
                    calls=acct.calls,
                    successes=acct.successes,
                    quota_hits=acct.quota_hits,
                    switches_to=acct.switches_to,
                    calls_today=acct.calls_on(now),
                    last_used=_utc(acct.last_used),
                    token_expiry=_utc(expiry),
                )
            )
        return infos

    def pool_status(self, exclude: set[int] | frozenset[int] = frozenset()) -> PoolStatus:
        infos = self.list_accounts()
        usable = [i.index for i in infos if i.usable and i.index not in exclude]
        unusable: dict[int, tuple[str, datetime | None, str]] = {}
        for info in infos:
            if info.index in usable:
                continue
            if info.index in exclude and info.usable:
                unusable[info.index] = ("tried", None, "")
            else:
                unusable[info.index] = (info.status, info.until, info.invalid_reason or info.reason)
        resets = [u for (_s, u, _r) in unusable.values() if u is not None]
        return PoolStatus(len(infos), usable, unusable, min(resets) if resets else None)

    def get_stats(self) -> dict[str, Any]:
        state = self._load()
        infos = self.list_accounts()
        per = {
            str(i.index): {
                "calls": i.calls,
                "successes": i.successes,
                "quota_hits": i.quota_hits,
                "switches_to": i.switches_to,
                "calls_today": i.calls_today,
                "status": i.status,
                "active": i.active,
                "last_used": i.last_used.isoformat() if i.last_used else None,
            }
            for i in infos
        }
        most = max(infos, key=lambda i: (i.calls, -i.index), default=None)
        return {
            "tool": self.profile.name,
            "home": str(self.home),
            "total_accounts": len(infos),
            "usable_accounts": sum(1 for i in infos if i.usable),
            "current_account": state.current,
            "strategy": self.strategy,
            "calls": sum(i.calls for i in infos),
            "successes": sum(i.successes for i in infos),
            "quota_hits": sum(i.quota_hits for i in infos),
            "switches_total": state.switches_total,
            "pool_exhausted": state.pool_exhausted,
            "most_used": most.index if most is not None and most.calls else None,
            "last_switch": _iso(state.last_switch),
            "last_switch_from": state.last_switch_from,
            "last_switch_to": state.last_switch_to,
            "accounts": per,
        }

    def note_pool_exhausted(self, message: str, first_reset: datetime | None) -> None:
        try:
            with self._locked():
                state = self._load()
                state.pool_exhausted += 1
                self._save(state)
        except ReadOnlyHome:
            pass
        self.events.pool_exhausted(message, first_reset)

    def dead_run_dirs(self) -> list[Path]:
        """Private call homes whose process has died (each may hold a token copy)."""
        try:
            entries = list(os.scandir(self.home / RUN_DIR))
        except OSError:
            return []
        dead = []
        for entry in entries:
            pid = entry.name.split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                dead.append(Path(entry.path))
        return dead

    def clean_run_dirs(self) -> int:
        """Remove private call homes left by processes that died.

        Such a home may hold the only copy of a token the tool refreshed before the crash:
        it is written back to its own slot first (if newer than the slot), then removed.
        """
        dead = self.dead_run_dirs()
        for root in dead:
            parts = root.name.split("-", 2)
            index = parts[1] if len(parts) > 1 else ""
            if index.isdigit() and not self.profile.env_kind:
                cred = self.profile.private_home(root) / self.profile.credential_name
                with suppress(OSError, CredrotError):
                    self.write_back(int(index), b"", cred.read_bytes())
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        return len(dead)


#: ``atomic_write`` and ``_set_pointer`` temp names: ``.<name>.<pid>.<hex>.tmp|lnk``.
_STALE_TEMP = re.compile(r"^\.(.+)\.(\d+)\.[0-9a-f]{8}\.(?:tmp|lnk)$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

