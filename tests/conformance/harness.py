"""What the conformance fixtures and tests share: the CLI's environment, pools, a spied wrapper.

Nothing here is a fake of credrot: pools are real homes, the wrapper is the real
:class:`~credrot.wrapper.Wrapper` running the real CLI; the spy only records each attempt
(the run's output and credrot's verdict) on one wrapper instance.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from credrot.classify import classify
from credrot.kinds import Outcome
from credrot.manager import AccountInfo, AccountManager
from credrot.process import RunResult
from credrot.profile import ToolProfile
from credrot.tools import QWEN
from credrot.wrapper import Wrapper, WrapperResult

from . import install
from .mockqwen import MockQwen

#: The test that needs the slow rate-limit run (started in the background).
RATE_LIMIT_TEST = "test_non_quota_rate_limit_is_backed_off_not_remembered"
PROMPT = "Reply with one short sentence."
#: Settings for the pool home: no usage statistics, no telemetry, no update check.
QUIET_SETTINGS = {
    "$version": 3,
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"enableAutoUpdate": False},
}
JSON_QWEN = replace(QWEN, base_args=("--auth-type", "qwen-oauth", "--output-format", "json"))
STREAM_JSON_QWEN = replace(
    QWEN, base_args=("--auth-type", "qwen-oauth", "--output-format", "stream-json")
)
PROFILES = {"text": QWEN, "json": JSON_QWEN, "stream-json": STREAM_JSON_QWEN}
#: Set to a file path to keep the real CLI's outputs of a run (for the simulator's authors).
RECORD_ENV = "CREDROT_CONFORMANCE_RECORD"


@dataclass
class Attempt:
    """One run of the real CLI inside a wrapper call, and credrot's verdict on it."""

    index: int
    run: RunResult | None
    outcome: Outcome


@dataclass
class Transcript:
    """What the real CLI printed in one mode, and how credrot classified it."""

    mode: str
    output_format: str
    exit_code: int | None
    stdout: str
    stderr: str
    kind: str


@dataclass
class RateLimitRun:
    result: WrapperResult
    attempts: list[Attempt]
    manager: AccountManager
    rate_limited_requests: int
    connects: list[str]
    #: The pool as the call left it (the run is in the background: when a test reads it,
    #: the short back-off may be over), and when it was read.
    after: list[AccountInfo]
    read_at: datetime


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def cli_env(qwen_bin: Path, mock: MockQwen, user_home: Path) -> dict[str, str]:
    """The whole environment of a real CLI run: nothing is inherited from the caller."""
    node = shutil.which("node")
    node_dir = str(Path(node).parent) if node else "/usr/bin"
    env = {
        "PATH": os.pathsep.join(dict.fromkeys([str(qwen_bin), node_dir, "/usr/bin", "/bin"])),
        "HOME": str(user_home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        # never open a browser for the device flow; never ask npm for a newer version
        "BROWSER": "www-browser",
        "NO_UPDATE_NOTIFIER": "1",
        "QWEN_TELEMETRY_ENABLED": "false",
    }
    env.update(mock.env())
    return env


def make_pool_at(
    home: Path, credentials: Sequence[Mapping[str, Any]], profile: ToolProfile = QWEN
) -> AccountManager:
    """A pool home with ``credentials`` imported as accounts 1..n (account 1 active)."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (home / "settings.json").write_text(json.dumps(QUIET_SETTINGS, indent=2))
    manager = AccountManager(home=home, tool=profile)
    for number, cred in enumerate(credentials, start=1):
        index = manager.import_account(json.dumps(cred, indent=2).encode())
        assert index == number
    return manager


def spied_wrapper(
    manager: AccountManager, env: Mapping[str, str], cwd: Path, **kwargs: Any
) -> tuple[Wrapper, list[Attempt]]:
    """A real Wrapper whose attempts are recorded (on this instance only)."""
    kwargs.setdefault("timeout", 60.0)
    kwargs.setdefault("backoff", "none")
    wrapper = Wrapper(manager=manager, env=env, cwd=cwd, **kwargs)
    attempts: list[Attempt] = []

    def attempt(index: int, run: RunResult | None, outcome: Outcome) -> None:
        attempts.append(Attempt(index, run, outcome))

    wrapper.on_attempt = attempt
    return wrapper, attempts


def transcript_of(
    mode: str, output_format: str, attempt: Attempt | RunResult, kind: str
) -> Transcript:
    run = attempt.run if isinstance(attempt, Attempt) else attempt
    assert run is not None
    return Transcript(mode, output_format, run.exit_code, run.stdout, run.stderr, kind)


def write_transcripts(path: Path, transcripts: Mapping[str, Transcript]) -> None:
    """Save what the real CLI printed, keyed by mode. Refuses anything token-like."""
    out = {key: asdict(t) for key, t in sorted(transcripts.items())}
    text = json.dumps(out)
    qwen = install.CLIS["qwen"]
    cache = str(install.prefix(qwen, qwen.version))
    out = json.loads(text.replace(json.dumps(cache)[1:-1], "<cache>"))
    text = json.dumps({"qwen": qwen.version, "transcripts": out}, indent=2)
    if "CANARY-" in text:
        raise AssertionError("a token would have been written to the transcript file")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def classify_kind(profile: ToolProfile, run: RunResult) -> str:
    return classify(profile, run.exit_code, run.stdout, run.stderr).kind.value


def rate_limit_scenario(qwen_bin: Path, root: Path, token_prefix: str) -> RateLimitRun:
    """Account 1 answers a non-quota 429 (the CLI retries ~80 s), account 2 answers."""
    with MockQwen(token_prefix=token_prefix) as server:
        limited = server.add_account("limited", mode="rate_limit")
        spare = server.add_account("spare")
        user = root / "user"
        user.mkdir(mode=0o700, parents=True)
        work = root / "project"
        work.mkdir()
        manager = make_pool_at(user / ".qwen", [limited, spare])
        wrapper, attempts = spied_wrapper(
            manager, cli_env(qwen_bin, server, user), work, max_rate_limits=0, timeout=170.0
        )
        result = wrapper.call(PROMPT)
        return RateLimitRun(
            result,
            attempts,
            manager,
            len([h for h in server.chat_hits("limited") if h.status == 429]),
            list(server.connects),
            manager.list_accounts(),
            datetime.now(timezone.utc),
        )
