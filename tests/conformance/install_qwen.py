"""Install the genuine Qwen Code CLI once, into a cache outside the repository.

Run it (``python tests/conformance/install_qwen.py``) or import it: the nox session
``conformance`` and the suite's conftest share :func:`ensure_installed`. Version 0.12.0 is
pinned: the newest release before the Qwen OAuth free tier's shutdown that still runs
``--auth-type qwen-oauth`` headless. Nothing is installed globally.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

PACKAGE = "@qwen-code/qwen-code"
VERSION = "0.12.0"
#: Overrides the cache directory (the install lands in ``<cache>/qwen-<version>``).
CACHE_ENV = "CREDROT_CONFORMANCE_CACHE"


class InstallError(RuntimeError):
    """npm could not install the CLI (offline registry, no npm, ...)."""


def cache_root() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        # the account's own home: tests point HOME at temporary directories
        try:
            home = pwd.getpwuid(os.getuid()).pw_dir
        except KeyError:
            home = str(Path.home())
        base = str(Path(home) / ".cache")
    return Path(base) / "credrot-conformance"


def prefix(version: str = VERSION) -> Path:
    return cache_root() / f"qwen-{version}"


def bin_dir(version: str = VERSION) -> Path:
    return prefix(version) / "node_modules" / ".bin"


def package_dir(version: str = VERSION) -> Path:
    return prefix(version) / "node_modules" / "@qwen-code" / "qwen-code"


def missing_node() -> str | None:
    """Why the CLI cannot run here (no node / no npm), or None."""
    missing = [name for name in ("node", "npm") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not found on PATH: the real qwen CLI cannot be run"
    return None


def installed_version(version: str = VERSION) -> str | None:
    """The version of the CLI in the cache, or None when it is not (fully) installed."""
    manifest = package_dir(version) / "package.json"
    if not (bin_dir(version) / "qwen").exists() or not manifest.is_file():
        return None
    try:
        found = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
    return found if isinstance(found, str) else None


def ensure_installed(version: str = VERSION, *, quiet: bool = True) -> Path:
    """The ``bin`` directory holding ``qwen`` at ``version``; installs it on first use.

    Raises :class:`InstallError` with npm's last lines when the install fails.
    """
    if installed_version(version) == version:
        return bin_dir(version)
    why = missing_node()
    if why:
        raise InstallError(why)
    target = prefix(version)
    target.mkdir(parents=True, exist_ok=True)
    # parallel test workers (pytest-xdist) install once: the others wait for the first
    with open(target.parent / f".qwen-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version(version) == version:
            return bin_dir(version)
        _npm_install(version, target)
    if not quiet:
        print(f"installed {PACKAGE}@{version} into {target}")
    return bin_dir(version)


def _npm_install(version: str, target: Path) -> None:
    npm = shutil.which("npm")
    assert npm is not None
    cmd = [
        npm,
        "install",
        "--prefix",
        str(target),
        "--no-audit",
        "--no-fund",
        "--no-save",
        "--ignore-scripts",
        "--loglevel=error",
        f"{PACKAGE}@{version}",
    ]
    env = dict(os.environ, npm_config_update_notifier="false")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"npm install {PACKAGE}@{version} failed: {exc}") from None
    if proc.returncode != 0 or installed_version(version) != version:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise InstallError(
            f"npm install {PACKAGE}@{version} into {target} failed "
            f"(exit {proc.returncode}): {tail or 'no output'}"
        )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    version = args[0] if args else VERSION
    try:
        where = ensure_installed(version, quiet=False)
    except InstallError as exc:
        print(f"install_qwen: {exc}", file=sys.stderr)
        return 1
    print(where / "qwen")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
