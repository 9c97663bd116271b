"""``credrot demo``: rotation shown end to end, with simulated accounts, in a throwaway pool.

Everything lives in one temporary directory: the simulated tool (``credrot_sim``),
its "server", and the pool's home. The real :class:`~credrot.wrapper.Wrapper` runs the
calls; the tool's environment is built from scratch for the demo (``HOME`` inside the
temporary directory, the tool's home variable removed), so the user's real home and
accounts are never read or written. No network, no real account.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from credrot import report
from credrot.errors import CredrotError

if TYPE_CHECKING:
    from credrot.manager import AccountManager
    from credrot.wrapper import WrapperResult

#: (name, answers it gives before its quota is spent, refresh its token every N calls)
ACCOUNTS = (("alice", 2, 0), ("bob", 3, 2), ("carol", 1, 0))
CALLS = 8
PROMPT = "Summarise this change in one line."


def _fmt(when: datetime | None) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC") if when is not None else "its reset"


def check_simulated(tool: str) -> None:
    """Refuse, in one line, a tool the simulator does not play (a YAML-described one)."""
    from credrot_sim import TOOLS

    if tool not in TOOLS:
        raise CredrotError(
            f"{tool!r} cannot be simulated: the simulator plays {', '.join(TOOLS)} only"
        )


def build_sim(root: Path, *, tool: str = "qwen", accounts: int = 3, quota: int = 2) -> list[str]:
    """Write a simulated ``tool`` and a pool of ``accounts`` simulated accounts (``quota``
    answers each before their quota is spent) under ``root``, which must be new or empty.

    Returns the shell lines that put them to use: the shim first on ``PATH``, the tool's
    home variable at the pool. The shim knows its "server" directory by itself, so these
    two are all a shell needs.
    """
    import shlex

    import credrot_sim as simulate
    from credrot.manager import AccountManager
    from credrot.tools import get_profile

    check_simulated(tool)
    profile = get_profile(tool)
    root = Path(os.path.abspath(root))
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise CredrotError(f"{root} is not an empty directory; name a new one")
    root.mkdir(parents=True, exist_ok=True)
    backend = simulate.SimBackend(root / "backend")
    bin_dir = root / "bin"
    simulate.install(bin_dir, backend.root, tools=(tool,))
    base = root / "home"
    pool_home = base / profile.home_dirname if profile.home_env_is_parent else base
    pool_home.mkdir(mode=0o700, parents=True, exist_ok=True)
    manager = AccountManager(tool=profile, home=pool_home)
    for n in range(1, accounts + 1):
        cred = backend.add_account(f"account{n}", quota=quota, tool=tool)
        manager.import_account(json.dumps(cred, indent=2).encode("utf-8"))
    lines = [f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"']
    if profile.home_env:
        lines.append(f"export {profile.home_env}={shlex.quote(str(base))}")
    return lines


def run_demo(
    write: Callable[[str], None],
    *,
    root: Path | None = None,
    tool: str = "qwen",
    calls: int = CALLS,
) -> int:
    """Tell the story to ``write`` (one line per request). ``root`` keeps the files (tests)."""
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        return _story(write, Path(root), tool, calls)
    with tempfile.TemporaryDirectory(prefix="credrot-demo-") as tmp:
        return _story(write, Path(tmp), tool, calls)


def _story(write: Callable[[str], None], root: Path, tool: str, calls: int) -> int:
    import credrot_sim as simulate
    from credrot.manager import AccountManager
    from credrot.wrapper import Wrapper

    check_simulated(tool)
    backend = simulate.SimBackend(root / "backend")
    bin_dir = root / "bin"
    simulate.install(bin_dir, backend.root, tools=(tool,))
    user_home = root / "home"
    user_home.mkdir(mode=0o700, exist_ok=True)
    pool_home = root / "pool"
    pool_home.mkdir(mode=0o700, exist_ok=True)

    manager = AccountManager(tool=tool, home=pool_home)
    env = dict(os.environ)
    profile = manager.profile
    if profile.home_env:
        env.pop(profile.home_env, None)
    env["HOME"] = str(user_home)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env[simulate.BACKEND_ENV] = str(backend.root)

    write(
        f"credrot demo: {len(ACCOUNTS)} simulated {tool} accounts in a throwaway pool "
        f"({pool_home});"
    )
    write("your real home and accounts are not touched, nothing goes over the network.")
    write("")
    for name, quota, refresh in ACCOUNTS:
        cred = backend.add_account(name, quota=quota, refresh_every=refresh, tool=tool)
        index = manager.import_account(json.dumps(cred, indent=2).encode("utf-8"))
        extra = f"; its token gets refreshed every {refresh} tool runs" if refresh else ""
        answers = f"{quota} answer" + ("s" if quota != 1 else "")
        write(f"  account #{index} ({name}): {answers} left today{extra}")
    write("")

    wrapper = Wrapper(tool, manager=manager, env=env, backoff="none", timeout=30.0)
    total_runs = answered = 0
    for n in range(1, calls + 1):
        runs_before = len(backend.calls())
        result = wrapper.call(PROMPT)
        runs = len(backend.calls()) - runs_before
        total_runs += runs
        answered += result.success
        write(_narrate(n, result, runs, manager))
    write("")
    write(
        f"{calls} request{'s' if calls != 1 else ''}: {answered} answered, "
        f"{calls - answered} not; {total_runs} tool run{'s' if total_runs != 1 else ''} "
        "(one per account a request tried)"
    )

    write("")
    write("what the pool knows now:")
    for line in report.accounts_table(manager.list_accounts()):
        write("  " + line)
    write("")
    for line in report.stats_lines(manager.get_stats()):
        write(line)
    events = Counter(
        json.loads(line).get("event", "?")
        for line in manager.log_path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    )
    write("")
    write(
        "audit log (rotation.log): "
        + ", ".join(f"{count} {event}" for event, count in sorted(events.items()))
    )
    if events.get("refreshed"):
        write(
            "  'refreshed': the tool renewed a token during a call (temp file + rename); "
            "credrot saved it into that account's own slot."
        )
    write("")
    write("Try it for real: `credrot accounts add`, then `credrot run -- -p 'hello'`.")
    return 0


def _narrate(n: int, result: WrapperResult, runs: int, manager: AccountManager) -> str:
    infos = {i.index: i for i in manager.list_accounts()}
    spent = [i for i in result.accounts_tried if i != result.account or not result.success]
    parts = []
    for index in spent:
        info = infos.get(index)
        until = info.until if info is not None else None
        parts.append(f"#{index} hit its quota (skipped until {_fmt(until)})")
    run_text = f"{runs} tool run" + ("s" if runs != 1 else "")
    if result.success:
        answer = result.output.strip().splitlines()[0] if result.output.strip() else ""
        head = "; ".join(parts) + " -> " if parts else ""
        return f"request {n}: {head}answered by #{result.account} ({run_text}): {answer}"
    known = sorted(
        i for i, info in infos.items() if not info.usable and i not in result.accounts_tried
    )
    memo = ""
    if known:
        memo = (
            f"; {', '.join(f'#{i}' for i in known)} known to be spent, so no run was spent on them"
        )
    if runs == 0:
        reset = result.first_reset or datetime.now(timezone.utc)
        return (
            f"request {n}: no tool run at all: every account is remembered as spent "
            f"(first reset {_fmt(reset)}); `credrot run` would exit 3"
        )
    head = "; ".join(parts) if parts else "failed"
    return f"request {n}: {head}{memo} -> no usable account ({run_text}); `credrot run` exits 3"
