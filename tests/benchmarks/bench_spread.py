"""In-flight spreading benchmark (run by ``nox -s bench``; not part of the test suite).

8 caller processes x 6 overlapping calls on 4 simulated accounts of 10 quota each,
through the default strategy: how many tool runs met a spent account (ideal: 8, two in
flight on each account when it runs out), and the wall time against the ideal — the
same 8 processes serving the same 40 answers from accounts with quota to spare,
measured in the same run. The same case with spreading switched off (every caller on
the active account) is printed beside it. Targets: at most 8 quota errors (about 25
without spreading) and at most 2x the ideal wall time (the spent tool runs and the
calls that find the pool spent cost time the ideal does not spend). A refused request
comes back at once (as from the real services), so the moment in which a caller can
start on an account that ran out, before its caller tells credrot, is short; and a
caller among equally busy accounts takes the least used, so they run out together.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from credrot.manager import AccountManager
from credrot_sim import SimBackend, install

PROCS, CALLS, ACCOUNTS, QUOTA = 8, 6, 4, 10
LATENCY = 0.2
MAX_ERRORS = 2 * ACCOUNTS
MAX_RATIO = 2.0

DRIVER = """
import sys
from credrot.pool import select
from credrot.wrapper import Wrapper
home, calls, spread = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "spread"
if not spread:
    select.relieve = lambda order, usable, flying, load, *, chosen, exclude: chosen
w = Wrapper("qwen", home=home, timeout=60, max_retries=6, backoff="none")
for n in range(calls):
    w.call(f"question {n}")
"""


def _round(root: Path, quota: int | None, calls: int, spread: bool) -> tuple[float, int, int]:
    """(wall seconds, answers served, tool runs that met a spent account)."""
    backend = SimBackend(root / "backend")
    install(root / "bin", backend.root)
    manager = AccountManager(home=root / "home")
    for i in range(ACCOUNTS):
        cred = backend.add_account(f"a{i + 1}", quota=quota, latency=LATENCY)
        manager.import_account(json.dumps(cred).encode())
    script = root / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PATH": f"{root / 'bin'}:{os.environ['PATH']}"}
    argv = [sys.executable, str(script), str(root / "home"), str(calls)]
    started = time.perf_counter()
    procs = [
        subprocess.Popen([*argv, "spread" if spread else "off"], env=env) for _ in range(PROCS)
    ]
    for proc in procs:
        proc.wait(timeout=600)
    wall = time.perf_counter() - started
    served = sum(backend.used(f"a{i + 1}") for i in range(ACCOUNTS))
    spent = sum(1 for c in backend.calls() if c["outcome"] == "quota")
    return wall, served, spent


def main() -> int:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # ideal: the 40 answers, 5 per process, from accounts with quota to spare
        results["ideal"] = _round(base / "ideal", None, ACCOUNTS * QUOTA // PROCS, True)
        results["spread"] = _round(base / "spread", QUOTA, CALLS, True)
        results["off"] = _round(base / "off", QUOTA, CALLS, False)
    ideal = results["ideal"][0]
    for name, (wall, served, spent) in results.items():
        print(
            f"{name:>6}: {served} answers, {spent} quota errors, "
            f"wall {wall:.2f} s = {wall / ideal:.2f}x the ideal"
        )
    wall, served, spent = results["spread"]
    ok = served == ACCOUNTS * QUOTA and spent <= MAX_ERRORS and wall / ideal <= MAX_RATIO
    print(
        f"spreading: {spent} quota errors (ideal {2 * ACCOUNTS}, target <= {MAX_ERRORS}; "
        f"without spreading {results['off'][2]}), wall {wall / ideal:.2f}x the ideal "
        f"(target <= {MAX_RATIO}x) {'OK' if ok else 'OVER'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
