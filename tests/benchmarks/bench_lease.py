"""Refresh-lease benchmark (run by ``nox -s bench``; not part of the test suite).

A call whose token is fresh must not pay for the refresh lease: ``Wrapper.call`` on a
fresh token, with the lease check, against the same call with the check switched off
(``refresh.due`` answering False and ``hold_refresh`` passing the lease through),
interleaved in the same run. Target: at most 1.05x. The cost of taking and releasing
a lease (a call whose token is due) is printed beside it, not gated.
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
from credrot.pool import refresh, rotation
from credrot.pool.refresh import RefreshLease
from credrot.wrapper import Wrapper
from credrot_sim import SimBackend, install

ROUNDS = 40
TARGET = 1.05


def _without_lease() -> tuple[object, object]:
    saved = (refresh.due, rotation.hold_refresh)
    refresh.due = lambda *args: False
    rotation.hold_refresh = lambda pool, got, deadline: (got, None)
    return saved


def _restore(saved: tuple[object, object]) -> None:
    refresh.due, rotation.hold_refresh = saved  # type: ignore[assignment]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        backend = SimBackend(root / "backend")
        install(root / "bin", backend.root)
        os.environ["PATH"] = f"{root / 'bin'}:{os.environ['PATH']}"
        manager = AccountManager(home=root / "home")
        for i in range(3):
            cred = backend.add_account(f"a{i + 1}")
            manager.import_account(json.dumps(cred).encode())
        wrapper = Wrapper(manager=manager, backoff="none")
        prompt = "Summarise this change in one line."
        assert wrapper.call(prompt).success  # warm-up
        with_lease: list[float] = []
        without: list[float] = []
        for _ in range(ROUNDS):  # interleaved so drift hits both alike
            t = time.perf_counter()
            assert wrapper.call(prompt).success
            with_lease.append(time.perf_counter() - t)
            saved = _without_lease()
            try:
                t = time.perf_counter()
                assert wrapper.call(prompt).success
                without.append(time.perf_counter() - t)
            finally:
                _restore(saved)
        lease = RefreshLease(manager.pool.layout, 1)
        took: list[float] = []
        for _ in range(200):
            t = time.perf_counter()
            assert lease.acquire(time.monotonic() + 5)
            lease.release()
            took.append(time.perf_counter() - t)
    ratio = statistics.median(with_lease) / statistics.median(without)
    ok = ratio <= TARGET
    print(
        f"lease check on a fresh-token call: {ratio:.3f}x "
        f"({statistics.median(with_lease) * 1e3:.1f} ms vs "
        f"{statistics.median(without) * 1e3:.1f} ms; target <= {TARGET}x) "
        f"{'OK' if ok else 'OVER'}"
    )
    print(f"taking and releasing a lease: {statistics.median(took) * 1e6:.0f} us (not gated)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
