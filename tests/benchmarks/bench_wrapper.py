"""Wrapper benchmarks (run by ``nox -s bench``; not part of the test suite).

1. ``call`` overhead: ``Wrapper.call`` against a bare ``subprocess.run`` of the same
   simulator with the same prompt, measured in the same run. Target: at most 1.15x.
2. Quota economics: 5 accounts with a 20-call quota each, 120 requests in sequence:
   exactly 100 successes, and at most 5 tool invocations that hit a spent account.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from credrot.manager import AccountManager
from credrot.wrapper import Wrapper
from credrot_sim import SimBackend, install

ROUNDS = 40
TARGET_OVERHEAD = 1.15


def build(root: Path, accounts: int, quota: int | None) -> tuple[SimBackend, AccountManager]:
    backend = SimBackend(root / "backend")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    install(bin_dir, backend.root)
    os.environ["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    home = root / "home"
    home.mkdir()
    manager = AccountManager(home=home)
    for i in range(accounts):
        cred = backend.add_account(f"a{i + 1}", quota=quota)
        manager.import_account(json.dumps(cred).encode())
    return backend, manager


def overhead() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _backend, manager = build(root, 5, None)
        wrapper = Wrapper(manager=manager)
        argv = manager.profile.argv()
        prompt = "Summarise this change in one line."
        env = dict(os.environ, QWEN_HOME=str(manager.home), HOME=str(root))
        # The bare run reads the active credential in place, as a hand-typed `qwen` would.
        wrapper.call(prompt)  # warm-up: imports, plugin loading, page cache
        subprocess.run(argv, input=prompt.encode(), capture_output=True, env=env, check=True)
        bare: list[float] = []
        wrapped: list[float] = []
        for _ in range(ROUNDS):  # interleaved so drift hits both alike
            t = time.perf_counter()
            subprocess.run(argv, input=prompt.encode(), capture_output=True, env=env, check=True)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            result = wrapper.call(prompt)
            wrapped.append(time.perf_counter() - t)
            assert result.success, result.error
        b, w = statistics.median(bare), statistics.median(wrapped)
        ratio = w / b
        ok = ratio <= TARGET_OVERHEAD
        print(
            f"call overhead: bare subprocess.run {b * 1000:.1f} ms, Wrapper.call {w * 1000:.1f} ms"
            f" (+{(w - b) * 1000:.1f} ms) -> {ratio:.3f}x (target <= {TARGET_OVERHEAD}x)"
            f" {'OK' if ok else 'OVER TARGET'}"
        )
        return ok


def economics() -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        backend, manager = build(Path(tmp), 5, 20)
        wrapper = Wrapper(manager=manager, max_retries=5)
        successes = sum(wrapper.call(f"request {i}").success for i in range(120))
        wasted = sum(1 for c in backend.calls() if c["outcome"] != "ok")
        ok = successes == 100 and wasted <= 5
        print(
            f"quota economics: 5 accounts x 20 calls, 120 requests -> {successes} successes"
            f" (expected 100), {wasted} invocations on a spent account (target <= 5)"
            f" {'OK' if ok else 'OVER TARGET'}"
        )
        return ok


def main() -> int:
    results = [overhead(), economics()]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
