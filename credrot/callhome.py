"""One attempt's private home: the account's credential copied, every other entry of
the real home linked, the tool pointed at it by its home variable.

Parallel callers can then use different accounts at once, the tool's chat history of a
headless call stays out of the user's, and a token the tool refreshed during the call
can be read back and written to the slot it came from. For an ``env`` account no file
is written: its variables go into the tool's environment and nothing comes back.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from credrot.pool.layout import POOL_ENTRIES, Layout
from credrot.profile import ToolProfile


class CallHome:
    def __init__(
        self,
        layout: Layout,
        profile: ToolProfile,
        index: int,
        raw: bytes,
        data: Mapping[str, object],
    ) -> None:
        self.profile = profile
        base = layout.run_dir
        try:
            base.mkdir(mode=0o700, exist_ok=True)
            os.chmod(base, 0o700)
            root = Path(tempfile.mkdtemp(prefix=layout.call_dir_prefix(index), dir=base))
        except OSError:
            root = Path(tempfile.mkdtemp(prefix=f"credrot-{layout.call_dir_prefix(index)}"))
        self.root = root
        self.tool_home = profile.private_home(root)
        self.tool_home.mkdir(mode=0o700, exist_ok=True)
        self._link_shared(layout.home)
        self.credential = self.tool_home / profile.credential_name
        self.variables: dict[str, str] = {}
        if profile.env_kind:
            self.variables = profile.env_of(data)
            return
        fd = os.open(self.credential, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(raw)

    def _link_shared(self, home: Path) -> None:
        """Link what the tool shares across calls (settings, caches); never the pool's
        files, the credential, the tool's own lock, or what the profile keeps private."""
        try:
            entries = list(os.scandir(home))
        except OSError:
            return
        profile = self.profile
        skip = POOL_ENTRIES | {profile.credential_name} | set(profile.call_private)
        if profile.tool_lock_name:
            skip = skip | {profile.tool_lock_name}
        for entry in entries:
            if entry.name in skip or ".tmp" in entry.name:
                continue
            try:
                os.symlink(entry.path, self.tool_home / entry.name)
            except OSError:
                continue

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
            return self.credential.read_bytes()
        except OSError:
            return None

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
