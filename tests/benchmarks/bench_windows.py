"""Quota-window benchmarks (run by ``nox -s bench``; not part of the test suite).

1. Sequential economics, 5 accounts with a 20-call quota each, 120 requests: without
   caps credrot learns each account is spent by one failed invocation (5 wasted);
   with ``caps: {5h: 20}`` it must serve exactly 100 with **0** wasted invocations.
2. The cost of windows on a call: ``Wrapper.call`` with caps and a tracked window
   against the same call without, interleaved in the same run. Target: at most 1.05x.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from credrot.manager import AccountManager
from credrot.wrapper import Wrapper
from credrot_sim import SimBackend, install

ACCOUNTS, QUOTA, REQUESTS = 5, 20, 120
ROUNDS = 30
TARGET_CAPS_OVERHEAD = 1.05


def build(root: Path, quota: int | None, caps: str | None) -> tuple[SimBackend, AccountManager]:
    backend = SimBackend(root / "backend")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    install(bin_dir, backend.root)
    os.environ["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    config = root / "config.yaml"
    config.write_text(f"limits:\n  qwen:\n    caps: {caps}\n" if caps else "tools: {}\n")
    os.environ["CREDROT_CONFIG"] = str(config)
    home = root / "home"
    home.mkdir()
    manager = AccountManager(home=home)
    for i in range(ACCOUNTS):
        cred = backend.add_account(f"a{i + 1}", quota=quota)
        manager.import_account(json.dumps(cred).encode())
    return backend, manager


def economics(caps: str | None) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as tmp:
        backend, manager = build(Path(tmp), QUOTA, caps)
        wrapper = Wrapper(manager=manager, max_retries=5)
        served = sum(wrapper.call(f"request {i}").success for i in range(REQUESTS))
        wasted = sum(1 for c in backend.calls() if c["outcome"] != "ok")
        return served, wasted


def caps_overhead() -> float:
    times: dict[str, list[float]] = {"plain": [], "caps": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        backend, plain = build(root, None, None)
        plain_config = os.environ["CREDROT_CONFIG"]
        capped_config = root / "caps.yaml"
        capped_config.write_text("limits:\n  qwen:\n    caps: {5h: 100000, day: 100000}\n")
        (root / "capped").mkdir()
        capped = AccountManager(home=root / "capped")
        for i in range(ACCOUNTS):
            capped.import_account(json.dumps(backend.add_account(f"c{i + 1}")).encode())
        wrappers = {
            "plain": (Wrapper(manager=plain), plain_config),
            "caps": (Wrapper(manager=capped), str(capped_config)),
        }
        for wrapper, config in wrappers.values():
            os.environ["CREDROT_CONFIG"] = config
            wrapper.call("warm-up")
        for _ in range(ROUNDS):  # interleaved so drift hits both alike
            for name, (wrapper, config) in wrappers.items():
                os.environ["CREDROT_CONFIG"] = config
                t = time.perf_counter()
                result = wrapper.call("Summarise this change in one line.")
                times[name].append(time.perf_counter() - t)
                assert result.success, result.error
    return statistics.median(times["caps"]) / statistics.median(times["plain"])


def main() -> int:
    served, wasted = economics(None)
    print(
        f"quota economics without caps: {ACCOUNTS} accounts x {QUOTA}, {REQUESTS} requests"
        f" -> {served} served, {wasted} wasted invocations (reported, not gated)"
    )
    capped_served, capped_wasted = economics("{5h: 20}")
    econ_ok = capped_served == ACCOUNTS * QUOTA and capped_wasted == 0
    print(
        f"quota economics with caps {{5h: 20}}: -> {capped_served} served (expected 100),"
        f" {capped_wasted} wasted invocations (target 0; without caps {wasted})"
        f" {'OK' if econ_ok else 'OVER TARGET'}"
    )
    ratio = caps_overhead()
    over_ok = ratio <= TARGET_CAPS_OVERHEAD
    print(
        f"Wrapper.call with caps and two tracked windows vs without: {ratio:.3f}x"
        f" (target <= {TARGET_CAPS_OVERHEAD}x) {'OK' if over_ok else 'OVER TARGET'}"
    )
    return 0 if econ_ok and over_ok else 1


if __name__ == "__main__":
    sys.exit(main())
