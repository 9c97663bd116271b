"""How fast ``switch_next`` is, against a floor measured in the same run.

Run: ``.venv/bin/python tests/benchmarks/bench_pool.py [--rounds N] [--per-round N]``.

The floor is the least any correct switch must do: take an flock, replace the pointer
symlink with ``os.replace``, and write about 1 KB atomically with fsync (the state).
Targets (from issue 2): ``switch_next`` at most 2x the floor; with 1,000 accounts at most
3x the same with 5 accounts. Measurements are interleaved in rounds so a noisy moment
hits all three alike; the medians are compared. Exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from credrot.manager import AccountManager

FLOOR_TARGET = 2.0
SCALE_TARGET = 3.0


def credential(i: int) -> bytes:
    data = {
        "access_token": f"bench-access-token-{i:06d}-" + "a" * 40,
        "token_type": "Bearer",
        "refresh_token": f"bench-refresh-token-{i:06d}-" + "r" * 40,
        "resource_url": "portal.qwen.ai",
        "expiry_date": 4_102_444_800_000,
    }
    return json.dumps(data, indent=2).encode()


def make_pool(home: Path, n: int) -> AccountManager:
    """A home with ``n`` accounts on disk, as a long-used pool would have them."""
    accounts = home / "accounts"
    accounts.mkdir(parents=True, mode=0o700)
    for i in range(1, n + 1):
        path = accounts / f"oauth_creds_{i}.json"
        path.write_bytes(credential(i))
        path.chmod(0o600)
    manager = AccountManager(qwen_dir=home)
    manager.switch_to(1)  # creates the pointer and a state.yaml listing every account
    return manager


class Floor:
    """flock + one symlink os.replace + one 1 KB atomic write with fsync."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir()
        (home / "a").write_bytes(b"x")
        (home / "b").write_bytes(b"y")
        self.payload = b"s" * 1024
        self.flip = False

    def __call__(self) -> None:
        fd = os.open(self.home / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.flip = not self.flip
            link_tmp = self.home / ".link.tmp"
            os.symlink("a" if self.flip else "b", link_tmp)
            os.replace(link_tmp, self.home / "pointer")
            tmp = self.home / ".state.tmp"
            wfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.write(wfd, self.payload)
                os.fsync(wfd)
            finally:
                os.close(wfd)
            os.replace(tmp, self.home / "state")
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def timed(fn: Callable[[], object], count: int) -> list[float]:
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=60)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="credrot-bench-") as tmp:
        root = Path(tmp)
        floor = Floor(root / "floor")
        small = make_pool(root / "five", 5)
        big = make_pool(root / "thousand", 1000)
        cases: dict[str, Callable[[], object]] = {
            "floor": floor,
            "switch_next (5 accounts)": small.switch_next,
            "switch_next (1000 accounts)": big.switch_next,
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for fn in cases.values():
            timed(fn, 10)  # warm caches and the page cache
        for _ in range(args.rounds):
            for name, fn in cases.items():
                samples[name] += timed(fn, args.per_round)
        assert big.get_stats()["switches_total"] > args.rounds * args.per_round

    med = {name: statistics.median(times) for name, times in samples.items()}
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1) * 0.5:
        print(f"note: load average {load:.1f}; disk contention inflates the fsync-bound floor")
    print(f"{'case':<30} {'median':>10} {'p90':>10}   ({args.rounds}x{args.per_round} runs)")
    for name, times in samples.items():
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{name:<30} {med[name] * 1e3:>8.3f}ms {p90 * 1e3:>8.3f}ms")
    vs_floor = med["switch_next (5 accounts)"] / med["floor"]
    scale = med["switch_next (1000 accounts)"] / med["switch_next (5 accounts)"]
    ok_floor, ok_scale = vs_floor <= FLOOR_TARGET, scale <= SCALE_TARGET
    print()
    print(
        f"switch_next / floor           = {vs_floor:5.2f}x  (target <= {FLOOR_TARGET:g}x)  "
        + ("OK" if ok_floor else "MISSED")
    )
    print(
        f"1000 accounts / 5 accounts    = {scale:5.2f}x  (target <= {SCALE_TARGET:g}x)  "
        + ("OK" if ok_scale else "MISSED")
    )
    return 0 if ok_floor and ok_scale else 1


if __name__ == "__main__":
    sys.exit(main())
