"""Several real processes, each one credrot Wrapper call on the same pool.

Each caller is its own Python process (its own locks, its own call home) running the
genuine CLI once through credrot, as parallel test workers or hooks would; it prints its
result as one JSON line. Nothing here stands in for credrot or the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .genuine import PROMPT, Setup

REPO = Path(__file__).resolve().parents[2]

_CALLER = """
import json, os, sys
from credrot.manager import AccountManager
from credrot.tools import get_profile
from credrot.wrapper import Wrapper

env = json.loads(os.environ.pop("CREDROT_CALLER_ENV"))
tool, home, cwd, prompt = sys.argv[1:5]
manager = AccountManager(home=home, tool=get_profile(tool))
wrapper = Wrapper(manager=manager, env=env, cwd=cwd, timeout=120.0, backoff="none")
result = wrapper.call(prompt)
print(json.dumps({"success": result.success, "account": result.account,
                  "output": result.output, "error": result.error}))
"""


def run_callers(setup: Setup, count: int, *, timeout: float = 300.0) -> list[dict[str, Any]]:
    """Start ``count`` callers at once on ``setup``'s pool; their results, in order."""
    env = {**os.environ, "CREDROT_CALLER_ENV": json.dumps(setup.env())}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    argv = [
        sys.executable,
        "-c",
        _CALLER,
        setup.profile.name,
        str(setup.pool_home),
        str(setup.workdir),
        PROMPT,
    ]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
        for _ in range(count)
    ]
    results: list[dict[str, Any]] = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err[-1500:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results
