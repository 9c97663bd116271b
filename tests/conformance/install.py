"""Install the genuine CLIs once, into a cache outside the repository, keyed by version.

Run it (``python tests/conformance/install.py [NAME ...]``) or import it: the nox session
``conformance`` and the suite's fixtures share :func:`ensure`. Each CLI lands in
``<cache>/<name>-<version>`` (``~/.cache/credrot-conformance`` unless
``CREDROT_CONFORMANCE_CACHE`` says otherwise), so a second run finds it and downloads
nothing. Nothing is installed globally.

Pinned: the versions the recordings in FACTS.md were made with, and Qwen Code 0.12.0
(the last release that runs ``--auth-type qwen-oauth`` headless). ``qwen-current`` is
the newest Qwen Code the registry serves, asked once per run (``npm view``); offline,
the newest one already in the cache is used.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: Overrides the cache directory.
CACHE_ENV = "CREDROT_CONFORMANCE_CACHE"


@dataclass(frozen=True)
class Cli:
    name: str
    package: str
    #: A version, or ``latest`` (resolved with ``npm view`` when installing).
    version: str
    executable: str
    #: Node script (relative to the package) that puts the native binary in place; npm
    #: runs it as a postinstall, which ``--ignore-scripts`` skips.
    postinstall: str | None = None


CLIS: dict[str, Cli] = {
    "qwen": Cli("qwen", "@qwen-code/qwen-code", "0.12.0", "qwen"),
    "qwen-current": Cli("qwen-current", "@qwen-code/qwen-code", "latest", "qwen"),
    "claude": Cli(
        "claude", "@anthropic-ai/claude-code", "2.1.332", "claude", postinstall="install.cjs"
    ),
    "codex": Cli("codex", "@openai/codex", "0.171.0", "codex"),
    "gemini": Cli("gemini", "@google/gemini-cli", "0.61.0", "gemini"),
}

_resolved: dict[str, str] = {}


class InstallError(RuntimeError):
    """npm could not install a CLI (offline registry, no npm, ...)."""


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


def prefix(cli: Cli, version: str) -> Path:
    short = cli.name.removesuffix("-current")
    return cache_root() / f"{short}-{version}"


def bin_dir(cli: Cli, version: str) -> Path:
    return prefix(cli, version) / "node_modules" / ".bin"


def package_dir(cli: Cli, version: str) -> Path:
    return prefix(cli, version) / "node_modules" / Path(*cli.package.split("/"))


def missing_node() -> str | None:
    """Why the CLIs cannot run here (no node / no npm), or None."""
    missing = [name for name in ("node", "npm") if shutil.which(name) is None]
    if missing:
        return f"{' and '.join(missing)} not found on PATH: the genuine CLIs cannot be run"
    return None


def installed_version(cli: Cli, version: str) -> str | None:
    """The version in the cache, or None when it is not (fully) installed."""
    manifest = package_dir(cli, version) / "package.json"
    done = prefix(cli, version) / ".credrot-installed"
    if not (bin_dir(cli, version) / cli.executable).exists() or not done.is_file():
        return None
    try:
        found = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
    return found if isinstance(found, str) else None


def version_of(cli: Cli) -> str:
    """The version to use: the pin, or the registry's newest (once per process)."""
    if cli.version != "latest":
        return cli.version
    if cli.name in _resolved:
        return _resolved[cli.name]
    version = _npm_view(cli) or _newest_cached(cli)
    if version is None:
        raise InstallError(f"cannot ask the registry for the newest {cli.package}")
    _resolved[cli.name] = version
    return version


def _npm_view(cli: Cli) -> str | None:
    npm = shutil.which("npm")
    if npm is None:
        return None
    try:
        proc = subprocess.run(
            [npm, "view", cli.package, "version"],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, npm_config_update_notifier="false"),
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = proc.stdout.strip()
    return found if proc.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+", found) else None


def _newest_cached(cli: Cli) -> str | None:
    short = cli.name.removesuffix("-current")
    found: list[tuple[int, ...]] = []
    for path in cache_root().glob(f"{short}-*"):
        m = re.fullmatch(rf"{re.escape(short)}-(\d+)\.(\d+)\.(\d+)", path.name)
        if m and installed_version(cli, path.name[len(short) + 1 :]):
            found.append(tuple(int(g) for g in m.groups()))
    return ".".join(map(str, max(found))) if found else None


def ensure(name: str, *, quiet: bool = True) -> Path:
    """The ``bin`` directory holding CLI ``name``; installs it on first use.

    Raises :class:`InstallError` with npm's last lines when the install fails.
    """
    cli = CLIS[name]
    why = missing_node()
    if why:
        raise InstallError(why)
    version = version_of(cli)
    if installed_version(cli, version) == version:
        return bin_dir(cli, version)
    target = prefix(cli, version)
    target.mkdir(parents=True, exist_ok=True)
    # parallel test workers (pytest-xdist) install once: the others wait for the first
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version(cli, version) != version:
            _npm_install(cli, version, target)
    if not quiet:
        print(f"installed {cli.package}@{version} into {target}")
    return bin_dir(cli, version)


def _npm_install(cli: Cli, version: str, target: Path) -> None:
    npm = shutil.which("npm")
    node = shutil.which("node")
    assert npm is not None and node is not None
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
        f"{cli.package}@{version}",
    ]
    env = dict(os.environ, npm_config_update_notifier="false")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode == 0 and cli.postinstall:
            proc = subprocess.run(
                [node, cli.postinstall],
                cwd=package_dir(cli, version),
                capture_output=True,
                text=True,
                env=env,
                timeout=300,
            )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"npm install {cli.package}@{version} failed: {exc}") from None
    if proc.returncode == 0:
        (target / ".credrot-installed").write_text(version + "\n")
    if proc.returncode != 0 or installed_version(cli, version) != version:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise InstallError(
            f"npm install {cli.package}@{version} into {target} failed "
            f"(exit {proc.returncode}): {tail or 'no output'}"
        )


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or list(CLIS)
    unknown = [n for n in names if n not in CLIS]
    if unknown:
        print(f"install: unknown CLI {unknown[0]!r} (known: {', '.join(CLIS)})", file=sys.stderr)
        return 2
    failed = 0
    for name in names:
        try:
            where = ensure(name, quiet=False)
        except InstallError as exc:
            print(f"install: {name}: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: {where / CLIS[name].executable}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
