"""The table of simulated tools, the ``python -m credrot_sim`` entry and the shim installer."""

from __future__ import annotations

import sys
from pathlib import Path

from credrot_sim.backend import (
    SimBackend,
)
from credrot_sim.base import (
    _err,
)
from credrot_sim.claude import (
    _claude_main,
)
from credrot_sim.codex import (
    _codex_main,
)
from credrot_sim.creds import (
    _SPECS,
)
from credrot_sim.gemini import (
    _gemini_main,
)
from credrot_sim.qwen import (
    _qwen_main,
)

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


class ToolSim:
    """How one tool is simulated: its home variable and directory, credential and entry."""

    def __init__(
        self,
        name: str,
        home_env: str,
        home_dir: str,
        credential_file: str,
        run: Callable[[list[str]], int],
    ) -> None:
        self.name = name
        self.home_env = home_env
        self.home_dir = home_dir
        self.credential_file = credential_file
        self.run = run

    def __repr__(self) -> str:
        return f"ToolSim({self.name!r})"


_RUNS: dict[str, Callable[[list[str]], int]] = {
    "qwen": _qwen_main,
    "claude": _claude_main,
    "codex": _codex_main,
    "gemini": _gemini_main,
}


TOOLS: dict[str, ToolSim] = {
    name: ToolSim(name, spec.home_env, spec.home_dir, spec.cred_file, _RUNS[name])
    for name, spec in _SPECS.items()
}


def main(argv: list[str] | None = None) -> int:
    """``python -m credrot_sim TOOL [ARGS...]``: run one simulated invocation."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in TOOLS:
        _err(f"usage: python -m credrot_sim {{{','.join(TOOLS)}}} [ARGS...]\n")
        return 2
    return TOOLS[args[0]].run(args[1:])


_SHIM = """\
#!{python} -S
# Simulated `{tool}` written by credrot_sim.install(): for tests and the demo only.
import os
import sys

os.environ.setdefault("CREDROT_SIM_BACKEND", {backend!r})
# bytecode beside the shim, not in the source tree (and PYTHONDONTWRITEBYTECODE aside)
sys.dont_write_bytecode = False
sys.pycache_prefix = {cache!r}
sys.path.insert(0, {root!r})
from credrot_sim.table import main

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing typing costs start-up time

sys.exit(main([{tool!r}, *sys.argv[1:]]))
"""


def install(bin_dir: Path, backend: Path, tools: Sequence[str] = ("qwen",)) -> dict[str, Path]:
    """Write an executable per tool into ``bin_dir`` (put it first on PATH).

    The shim runs the simulator without ``site`` (no site-packages scan), with its
    bytecode cached in ``bin_dir`` (the source tree stays free of bytecode and
    PYTHONDONTWRITEBYTECODE does not matter), so a call starts in a few tens of ms.
    """
    bin_dir = Path(bin_dir).resolve()
    bin_dir.mkdir(parents=True, exist_ok=True)
    backend_root = Path(backend).resolve()
    SimBackend(backend_root)
    written: dict[str, Path] = {}
    for tool in tools:
        if tool not in TOOLS:
            raise ValueError(f"no simulator for {tool!r}; known: {', '.join(TOOLS)}")
        path = bin_dir / tool
        path.write_text(
            _SHIM.format(
                python=sys.executable,
                tool=tool,
                backend=str(backend_root),
                root=str(Path(__file__).resolve().parent.parent),
                cache=str(bin_dir / ".credrot-sim-pycache"),
            ),
            encoding="utf-8",
        )
        path.chmod(0o755)
        written[tool] = path
    return written
