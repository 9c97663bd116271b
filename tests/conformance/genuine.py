"""What the Claude Code, Codex, Gemini CLI and current Qwen Code tests share.

``Setup`` is one test's world: the CLI's ``bin`` directory from the cache, a started
provider mock, the user's home (``tmp_path/user``), an empty project as the CLI's cwd,
and the pool home inside the user's home. ``wrapper()`` is credrot's real Wrapper with
every attempt recorded; the environment holds nothing of the caller's.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from credrot.manager import AccountManager
from credrot.profile import ToolProfile
from credrot.wrapper import Wrapper

from . import harness, install
from .harness import Attempt

PROMPT = harness.PROMPT


def cli_bin(name: str) -> Path:
    """The CLI's bin directory; skips (fails in CI) when it cannot be had."""
    why = install.missing_node()
    if why:
        pytest.skip(f"conformance suite skipped: {why}")
    try:
        return install.ensure(name)
    except install.InstallError as exc:
        if harness.in_ci():
            pytest.fail(f"conformance: cannot install {name} in CI: {exc}")
        pytest.skip(f"conformance suite skipped: cannot install {name}: {exc}")


@dataclass
class Setup:
    bin_dir: Path
    mock: Any
    profile: ToolProfile
    root: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def user_home(self) -> Path:
        return self.root / "user"

    @property
    def workdir(self) -> Path:
        return self.root / "project"

    @property
    def pool_home(self) -> Path:
        return self.profile.default_home({"HOME": str(self.user_home)})

    def env(self) -> dict[str, str]:
        node = shutil.which("node")
        node_dir = str(Path(node).parent) if node else "/usr/bin"
        env = {
            "PATH": os.pathsep.join(
                dict.fromkeys([str(self.bin_dir), node_dir, "/usr/bin", "/bin"])
            ),
            "HOME": str(self.user_home),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "TERM": "dumb",
            "NO_COLOR": "1",
            "NO_UPDATE_NOTIFIER": "1",
            "BROWSER": "www-browser",
        }
        env.update(self.mock.env())
        env.update(self.extra_env)
        return env

    def pool(self, *credentials: Mapping[str, Any] | bytes) -> AccountManager:
        """A pool with the credentials as accounts 1..n (account 1 active)."""
        for path in (self.user_home, self.workdir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.pool_home.mkdir(mode=0o700, parents=True, exist_ok=True)
        manager = AccountManager(home=self.pool_home, tool=self.profile)
        for number, cred in enumerate(credentials, start=1):
            raw = cred if isinstance(cred, bytes) else json.dumps(cred, indent=2).encode()
            assert manager.import_account(raw) == number
        return manager

    def wrapper(
        self, manager: AccountManager, env_update: Mapping[str, str] | None = None, **kwargs: Any
    ) -> tuple[Wrapper, list[Attempt]]:
        env = {**self.env(), **(env_update or {})}
        return harness.spied_wrapper(manager, env, self.workdir, **kwargs)


def status_of(manager: AccountManager, index: int) -> str:
    return {a.index: a.status for a in manager.list_accounts()}[index]


def slot_json(manager: AccountManager, index: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(manager.slot_path(index).read_bytes())
    return data


def assert_no_secret(tokens: Sequence[str], *texts: object) -> None:
    for number, text in enumerate(texts):
        shown = str(text)
        leaked = sum(1 for token in tokens if token in shown)
        assert leaked == 0, f"{leaked} token(s) appeared in credrot's output #{number}"
