"""One attempt's private home: the account's credential copied, every other entry of
the real home linked, the tool pointed at it by its home variable.

Parallel callers can then use different accounts at once, the tool's chat history of a
headless call stays out of the user's, and a token the tool refreshed during the call
can be read back and written to the slot it came from. For an ``env`` account no file
is written: its variables go into the tool's environment and nothing comes back.

What the call homes say about the pool (the calls in flight, the dead homes) is read by
:mod:`credrot.inflight`. A home is reserved under the pool lock when its account is
chosen, so the next caller's choice already counts it.

A finished home is not removed but kept idle for the next call of this process: the
credential copy and all the tool wrote are removed, the folders and the links stay, and
it is renamed ``<pid>-idle-<random>`` (no account: never counted in flight; reaped like
any home once its process has gone, and removed when the process exits). Making and
removing folders is what a call home costs most on a busy disk.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from credrot.fsutil import (
    DIR_FLAGS,
    NotARegularFile,
    clear_dir,
    my_pid,
    own_dir,
    read_regular,
    remove_tree,
)
from credrot.pool.layout import POOL_ENTRIES, Layout
from credrot.profile import ToolProfile

#: In a call home's root: the tool's pid (also its process group) while it may run.
TOOL_PID = ".credrot-tool.pid"
#: The account field of an idle home's name.
IDLE = "idle"
#: Idle homes kept per process and call-home base (one per parallel caller).
MAX_IDLE = 8
_IDLE: dict[tuple[int, str], list[str]] = {}
#: Homes of this process reserved and not yet parked or removed, by base.
_ACTIVE: dict[tuple[int, str], set[str]] = {}
#: What an idle home of this process holds (its links, by name and target), when it was
#: parked with nothing else and every link where it was made: reused with the same
#: links, it needs no second look (what a tool leaves is looked at once it has ended).
_PARKED: dict[tuple[str, str], frozenset[tuple[str, str]]] = {}


def _split(root: Path) -> tuple[str, str]:
    """(the folder, the name) of a home's root, as text."""
    head, _, name = str(root).rpartition(os.sep)
    return head, name


def in_base(layout: Layout, root: Path) -> bool:
    """Whether ``root`` is in the pool's call-home base (not a fallback elsewhere)."""
    return _split(root)[0] == layout.run_base


def _own_part(root: Path) -> tuple[str, str]:
    """What names a home of this process whether idle or in use: its base and the
    random end of its name (``<pid>-<account or idle>-<random>``)."""
    head, name = _split(root)
    return head, name.rsplit("-", 1)[-1]


def reserve(layout: Layout, index: int) -> Path:
    """A call home root for account ``index`` (counted in flight at once): an idle one
    of this process renamed, else a new, empty one."""
    base, text = layout.run_dir, layout.run_base
    idle = _IDLE.get((my_pid(), text))
    with contextlib.suppress(OSError):
        if idle and not stat.S_ISDIR(os.lstat(text).st_mode):  # a link planted meanwhile
            idle.clear()  # its homes are not followed; own_dir below moves it aside
    while idle:
        name = idle.pop()
        tail = name.split("-", 2)[2]
        taken = f"{layout.call_dir_prefix(index)}{tail}"
        try:
            os.rename(f"{text}{os.sep}{name}", f"{text}{os.sep}{taken}")
        except OSError:
            _PARKED.pop((text, tail), None)
            continue  # removed by hand meanwhile
        _ACTIVE.setdefault((my_pid(), text), set()).add(taken)
        return base / taken
    try:
        own_dir(base)
        os.chmod(base, 0o700)  # a real folder (own_dir): never a link's target
        for _ in range(100):
            root = base / f"{layout.call_dir_prefix(index)}{os.urandom(6).hex()}"
            try:
                os.mkdir(root, 0o700)
            except FileExistsError:
                continue
            _ACTIVE.setdefault((my_pid(), str(base)), set()).add(root.name)
            return root
        raise FileExistsError(f"no free call home name in {base}")
    except OSError:
        import tempfile  # here, not at the top: a pool's own folder is the usual place

        return Path(tempfile.mkdtemp(prefix=f"credrot-{layout.call_dir_prefix(index)}"))


def discard(root: Path | None) -> None:
    """Give back a reserved root no tool ran in."""
    if root is not None:
        _done(root)
        _PARKED.pop(_own_part(root), None)
        remove_tree(root)


def _done(root: Path) -> None:
    head, name = _split(root)
    _ACTIVE.get((my_pid(), head), set()).discard(name)


def beside_mine(layout: Layout) -> int | None:
    """How many folders the call-home base holds besides this process's own homes, told
    by one ``stat`` (a folder's link count is 2 and one per subfolder); None where the
    count says nothing (a file system that keeps it at 1). A kept token is a file: this
    does not tell of one."""
    base = layout.run_base
    try:
        s = os.lstat(base)
    except OSError:
        return None
    if not stat.S_ISDIR(s.st_mode) or s.st_nlink < 2:
        return None
    key = (my_pid(), base)
    return s.st_nlink - 2 - len(_IDLE.get(key, ())) - len(_ACTIVE.get(key, ()))


def _park(
    layout: Layout,
    root: Path,
    tool_home: Path,
    links: set[str],
    linked: frozenset[tuple[str, str]] | None,
) -> bool:
    """Keep a finished home idle (see the module's text); False when it cannot be,
    and then the caller removes it."""
    base, pid = layout.run_base, my_pid()
    idle = _IDLE.setdefault((pid, base), [])
    head, own = _split(root)
    parts = own.split("-", 2)
    if head != base or len(idle) >= MAX_IDLE or len(parts) < 3 or parts[0] != str(pid):
        return False

    targets = dict(linked) if linked is not None else None
    opened = [-1]  # the folder being cleared
    moved: list[str] = []  # links the tool replaced or pointed elsewhere
    kept: list[str] = []  # links still where they were made

    def link(entry: os.DirEntry[str]) -> bool:
        if entry.name == TOOL_PID and tool_home == root:
            return entry.is_file(follow_symlinks=False)
        if entry.name not in links:
            return False
        if not entry.is_symlink():  # the tool put a file in its place
            moved.append(entry.name)
            return False
        if targets is None:
            return True  # looked at again when the home is reused
        try:
            right = os.readlink(entry.name, dir_fd=opened[0]) == targets.get(entry.name)
        except OSError:
            right = False
        (kept if right else moved).append(entry.name)
        return right

    def folder(entry: os.DirEntry[str]) -> bool:
        if entry.name == TOOL_PID:  # says 0 once the run is over (run_tool)
            return entry.is_file(follow_symlinks=False)
        return entry.name == tool_home.name and entry.is_dir(follow_symlinks=False)

    name = f"{pid}-{IDLE}-{parts[2]}"
    try:
        fd = opened[0] = os.open(root, DIR_FLAGS)
        try:
            cleared = clear_dir(fd, link if tool_home == root else folder)
        finally:
            os.close(fd)
        if tool_home != root:
            fd = opened[0] = os.open(tool_home, DIR_FLAGS)
            try:
                cleared = clear_dir(fd, link) and cleared
            finally:
                os.close(fd)
        if not cleared:
            return False
        os.rename(f"{base}{os.sep}{own}", f"{base}{os.sep}{name}")
    except OSError:
        return False
    if linked is not None and not moved and len(kept) == len(linked):
        # it holds just these links, every one of them: no second look at its reuse
        _PARKED[_own_part(root)] = linked
    if not _IDLE_AT_EXIT:
        _IDLE_AT_EXIT.append(True)
        atexit.register(_remove_idle)
    idle.append(name)
    return True


_IDLE_AT_EXIT: list[bool] = []


def _remove_idle() -> None:
    """At exit: this process's idle homes go (a process killed leaves them to the reaper)."""
    for (pid, base), names in list(_IDLE.items()):
        if pid == my_pid():
            while names:
                remove_tree(os.path.join(base, names.pop()))


def run_entries(layout: Layout) -> list[os.DirEntry[str]]:
    """What the call-home base holds; nothing when it is a link (planted: what is
    behind it is never reaped, adopted or removed)."""
    try:
        if not stat.S_ISDIR(os.lstat(layout.run_base).st_mode):
            return []
        return list(os.scandir(layout.run_base))
    except OSError:
        return []


# ---------------------------------------------------- tokens that found no slot
#: A refreshed token that could not be written to its slot (read-only home, disk
#: full): ``kept-<N>-g<generation>-<random>`` in the call-home base, else in memory.
KEPT_PREFIX = "kept-"
_KEPT_IN_MEMORY: dict[tuple[str, int], tuple[int, bytes]] = {}


@dataclass(frozen=True)
class Kept:
    index: int
    generation: int
    raw: bytes
    path: Path | None  # None: held in this process's memory


def keep(layout: Layout, index: int, generation: int, raw: bytes) -> Kept:
    """Keep ``raw`` where it survives until its slot can take it; never lost silently."""
    tail = f"{os.urandom(4).hex()}{layout.profile.account_suffix}"
    name = f"{KEPT_PREFIX}{index}-g{generation}-{tail}"
    path = layout.run_dir / name
    try:
        own_dir(layout.run_dir)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            path.unlink(missing_ok=True)
            raise
    except OSError:
        _KEPT_IN_MEMORY[(str(layout.home), index)] = (generation, raw)
        return Kept(index, generation, raw, None)
    return Kept(index, generation, raw, path)


def kept(layout: Layout) -> list[Kept]:
    """Every token kept for this home (files in the call-home base, and memory), the
    one expiring last at the end."""
    found: list[Kept] = []
    entries = [e for e in run_entries(layout) if e.name.startswith(KEPT_PREFIX)]
    for entry in entries:
        parts = entry.name[len(KEPT_PREFIX) :].split("-", 2)
        if len(parts) < 3 or not parts[0].isdigit() or not parts[1][1:].isdigit():
            continue
        try:
            raw = read_regular(entry.path)
        except (OSError, NotARegularFile):
            continue
        found.append(Kept(int(parts[0]), int(parts[1][1:]), raw, Path(entry.path)))
    for (home, index), (generation, raw) in list(_KEPT_IN_MEMORY.items()):
        if home == str(layout.home):
            found.append(Kept(index, generation, raw, None))
    return sorted(found, key=lambda item: _expiry(layout.profile, item.raw))


def _expiry(profile: ToolProfile, raw: bytes) -> float:
    data, _ = profile.parse_credential(raw)
    expiry = profile.expiry(data) if data is not None else None
    return 0.0 if expiry is None else expiry


def kept_in_memory(layout: Layout) -> bool:
    """Whether this process holds a refreshed token of the pool that found no slot."""
    return any(home == str(layout.home) for home, _ in _KEPT_IN_MEMORY)


def drop_kept(layout: Layout, item: Kept) -> None:
    """Forget a kept token once its slot has it (or holds something newer)."""
    if item.path is not None:
        item.path.unlink(missing_ok=True)
    elif _KEPT_IN_MEMORY.get((str(layout.home), item.index), (0, b""))[1] == item.raw:
        del _KEPT_IN_MEMORY[(str(layout.home), item.index)]


class CallHome:
    def __init__(
        self,
        layout: Layout,
        profile: ToolProfile,
        index: int,
        raw: bytes,
        data: Mapping[str, object],
        root: Path | None = None,
    ) -> None:
        self.profile = profile
        self.layout = layout
        #: The names linked into the tool home (kept when the home is parked idle).
        self.links: set[str] = set()
        #: All the links of the home, by name and target, when every one was made.
        self.linked: frozenset[tuple[str, str]] | None = None
        self.root = root if root is not None else reserve(layout, index)
        self.pid_file = self.root / TOOL_PID
        try:
            self._make(layout, raw, data)
        except BaseException:
            self.close()
            raise

    def _make(self, layout: Layout, raw: bytes, data: Mapping[str, object]) -> None:
        profile = self.profile
        self.tool_home = profile.private_home(self.root)
        parked = _PARKED.pop(_own_part(self.root), None)
        reused = True if parked is not None else self._mkdir()
        self._link_shared(layout.home, reused, parked)
        self.credential = self.tool_home / profile.credential_name
        self.variables: dict[str, str] = {}
        if profile.env_kind:
            self.variables = profile.env_of(data)
            return
        try:
            self._write_credential(raw)
        except FileNotFoundError:
            if parked is None:
                raise
            reused = self._mkdir()  # its tool folder was removed by hand meanwhile
            self._link_shared(layout.home, reused, None)
            self._write_credential(raw)

    def _mkdir(self) -> bool:
        """The tool's folder in the home; True when it was there already (reused)."""
        try:
            os.mkdir(self.tool_home, 0o700)
            return False
        except FileExistsError:  # an idle home, or the root itself
            if not stat.S_ISDIR(os.lstat(self.tool_home).st_mode):
                raise NotADirectoryError(f"{self.tool_home} is not a folder") from None
            return True

    def _write_credential(self, raw: bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.credential, flags, 0o600)
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def _link_shared(
        self, home: Path, reused: bool, parked: frozenset[tuple[str, str]] | None
    ) -> None:
        """Link what the tool shares across calls (settings, caches); never the pool's
        files, the credential, the tool's own lock, or what the profile keeps private.
        In a reused home the links still right are kept, the others removed; ``parked``:
        what this process left in it, when that is all it holds."""
        try:
            entries = list(os.scandir(home))
        except OSError:
            entries = []
        profile = self.profile
        skip = POOL_ENTRIES | {profile.credential_name} | set(profile.call_private)
        if profile.tool_lock_name:
            skip = skip | {profile.tool_lock_name}
        want = {e.name: e.path for e in entries if e.name not in skip and ".tmp" not in e.name}
        if parked is not None and parked == frozenset(want.items()):
            self.links = set(want)
        elif reused:
            fd = os.open(self.tool_home, DIR_FLAGS)
            try:
                clear_dir(fd, lambda entry: self._still_right(entry, fd, want))
            finally:
                os.close(fd)
        tool_home = str(self.tool_home)
        for name, target in want.items():
            if name in self.links:
                continue
            try:
                os.symlink(target, os.path.join(tool_home, name))
            except OSError:
                continue
            self.links.add(name)
        if self.links == want.keys():
            self.linked = frozenset(want.items())

    def _still_right(self, entry: os.DirEntry[str], fd: int, want: Mapping[str, str]) -> bool:
        """A link of an idle home that points where it should (it is kept)."""
        if entry.name == TOOL_PID and self.tool_home == self.root:
            return entry.is_file(follow_symlinks=False)
        if entry.name not in want or not entry.is_symlink():
            return False
        try:
            right = os.readlink(entry.name, dir_fd=fd) == want[entry.name]
        except OSError:
            return False
        if right:
            self.links.add(entry.name)
        return right

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        self.profile.point_at(env, self.root)
        env.update(self.variables)
        return env

    def read_back(self) -> bytes | None:
        """The credential as the tool left it (None for ``env`` accounts or when gone)."""
        if self.profile.env_kind:
            return None
        try:
            return read_regular(self.credential)  # a FIFO or a link the tool left: None
        except OSError:
            return None

    def close(self) -> None:
        """The credential copy and all the tool left are gone (the home idle or removed)."""
        _done(self.root)
        tool_home = getattr(self, "tool_home", self.root)
        if not _park(self.layout, self.root, tool_home, self.links, self.linked):
            remove_tree(self.root)
