"""Cold start of ``account-qwen --list`` against the original package's ``account-qwen --list``.

Run: ``python tests/benchmarks/bench_cli.py`` (or ``nox -s bench``). Prints the ratio and
exits 1 when it is over the target (1.0: no slower than the package it replaces).

The baseline is the original implementation, ``credential-rotation`` 0.1.0 from the
package index (``pip download`` once, unpacked into ``~/.cache/credrot-bench``;
``CREDROT_BENCH_CACHE`` moves it), started by the same console-script wrapper pip
writes, with the same interpreter, on the same pool of 5 accounts (it reads credrot's
``state.yaml``, which is JSON, as its own). Both run as fresh processes, interleaved, in
the same run. Bytecode is cached for both in a private PYTHONPYCACHEPREFIX (as after any
first run of an installed package). The figure judged is the median of the per-pair
ratios of CPU time (user + system of the child), which a busy machine hardly moves; the
ratio of the wall-clock medians is printed beside it.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

TARGET = 1.0
ROUNDS = 25
WARMUP = 3
ORIGINAL = "credential-rotation==0.1.0"
WRAPPER = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
sys.path.insert(0, {path!r})
from {module} import {function}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({function}())
"""


def _cache() -> Path:
    default = Path.home() / ".cache" / "credrot-bench"
    return Path(os.environ.get("CREDROT_BENCH_CACHE", default)) / ORIGINAL.replace("==", "-")


def original_package() -> Path | None:
    """The original implementation, unpacked (downloaded once); None when unavailable."""
    target = _cache()
    if (target / "credential_rotation" / "qwen" / "cli.py").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        got = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary",
                ":all:",
                "-d",
                tmp,
                ORIGINAL,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if got.returncode != 0 or not wheels:
            print(f"cannot get {ORIGINAL}: {got.stderr.strip()[-300:]}", file=sys.stderr)
            return None
        part = target.with_name(target.name + ".part")
        with zipfile.ZipFile(wheels[0]) as wheel:
            wheel.extractall(part)
        part.rename(target)
    return target


def _pool(home: Path) -> None:
    from credrot.manager import AccountManager

    manager = AccountManager(home=home / ".qwen")
    for i in range(1, 6):
        cred = {
            "access_token": f"bench-access-{i}-{os.urandom(8).hex()}",
            "token_type": "Bearer",
            "refresh_token": f"bench-refresh-{i}-{os.urandom(8).hex()}",
            "resource_url": "portal.qwen.ai",
            "expiry_date": int((time.time() + 3600) * 1000),
        }
        manager.import_account(json.dumps(cred, indent=2).encode())


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run."""
    cpu, start = _cpu(), time.perf_counter()
    proc = subprocess.run(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    elapsed, used = time.perf_counter() - start, _cpu() - cpu
    if proc.returncode != 0 or b"account" not in proc.stdout.lower():
        sys.exit(f"{cmd} failed: {proc.stderr.decode(errors='replace')}")
    return elapsed, used


def main() -> int:
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "account-qwen").exists():
        print("account-qwen not found: install the project (pip install -e .)", file=sys.stderr)
        return 2
    original = original_package()
    if original is None:
        return 2
    with tempfile.TemporaryDirectory(prefix="credrot-bench-") as tmp:
        root = Path(tmp)
        home = root / "home"
        home.mkdir()
        _pool(home)
        scripts = {}
        for name, path, module, function in (
            ("original", str(original), "credential_rotation.qwen.cli", "main"),
            ("credrot", "", "credrot.cli", "account_qwen_main"),
        ):
            script = root / f"account-qwen-{name}"
            text = WRAPPER.format(
                python=sys.executable, path=path, module=module, function=function
            )
            if not path:  # credrot's own: exactly what pip wrote
                text = (bin_dir / "account-qwen").read_text()
            script.write_text(text)
            script.chmod(0o755)
            scripts[name] = [str(script), "--list"]
        env = dict(os.environ)
        env["HOME"] = str(home)
        env.pop("QWEN_HOME", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        for _ in range(WARMUP):
            _time(scripts["original"], env)
            _time(scripts["credrot"], env)
        base: list[tuple[float, float]] = []
        ours: list[tuple[float, float]] = []
        for _ in range(ROUNDS):
            base.append(_time(scripts["original"], env))
            ours.append(_time(scripts["credrot"], env))
    wall_base = statistics.median(w for w, _ in base)
    wall_ours = statistics.median(w for w, _ in ours)
    cpu_base = statistics.median(c for _, c in base)
    cpu_ours = statistics.median(c for _, c in ours)
    ratio = statistics.median(o[1] / b[1] for o, b in zip(ours, base, strict=True) if b[1] > 0)
    print(
        f"original account-qwen --list: {wall_base * 1000:.1f} ms ({cpu_base * 1000:.1f} ms CPU)"
        f"   credrot account-qwen --list: {wall_ours * 1000:.1f} ms ({cpu_ours * 1000:.1f} ms CPU)"
        f"   (medians of {ROUNDS})"
    )
    ok = ratio <= TARGET
    print(
        f"account-qwen --list vs the original: CPU {ratio:.2f}x (median of paired runs), "
        f"wall {wall_ours / wall_base:.2f}x; target <= {TARGET}x {'OK' if ok else 'OVER TARGET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
