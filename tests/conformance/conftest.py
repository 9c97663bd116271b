"""Fixtures for the conformance suite: the genuine ``qwen`` CLI, driven through credrot.

The CLI comes from ``install`` (npm, into a cache outside the repository, once). When
node or npm is missing every test here is skipped with a reason saying so; when npm
cannot install the CLI the tests are skipped too, except in CI (``CI`` set), where that
is a failure. The CLI reaches only :class:`~.mockqwen.MockQwen`, through its loopback
CONNECT proxy.

Fixtures:

``qwen_bin``       the directory holding the real ``qwen`` (session).
``mock``           a started :class:`MockQwen` whose tokens carry the run's canary.
``cli_env``        the environment of every real CLI run (nothing from the caller's).
``pool_of``        ``pool_of(*credentials, profile=QWEN) -> AccountManager`` in
                   ``tmp_path/user/.qwen`` (``HOME=tmp_path/user`` is the user's home).
``make_wrapper``   ``make_wrapper(manager, env_update={}, **kw) -> (Wrapper, attempts)``:
                   ``attempts`` fills with one ``Attempt`` per CLI run of that wrapper.
``run_by_hand``    ``qwen`` as a user types it, on the shared ``~/.qwen``.
``simulate``       credrot's simulator, run for a mode and output format.
``transcripts``    real outputs seen so far, keyed by mode (for the simulator checks).
``rate_limit_run`` the slow non-quota 429 scenario, started in the background when the
                   session starts (the CLI retries such a 429 for ~80 s on its own).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from credrot.kinds import OutcomeKind, Rule
from credrot.manager import AccountManager
from credrot.process import RunResult, run_tool
from credrot.profile import ToolProfile
from credrot.tools import QWEN
from credrot.wrapper import Wrapper

from . import harness, install, transcribe
from .harness import PROMPT, RECORD_ENV, Attempt, RateLimitRun, Transcript
from .mockqwen import MockQwen


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "conformance: drives a genuine CLI (npm) against a loopback mock; "
        "skipped when node/npm is missing",
    )


@pytest.fixture(scope="session")
def qwen_bin() -> Path:
    why = install.missing_node()
    if why:
        pytest.skip(f"conformance suite skipped: {why}")
    try:
        return install.ensure("qwen")
    except install.InstallError as exc:
        if harness.in_ci():
            pytest.fail(f"conformance: cannot install the real qwen CLI in CI: {exc}")
        pytest.skip(f"conformance suite skipped: cannot install the real qwen CLI: {exc}")


@pytest.fixture
def mock(canary: str) -> Iterator[MockQwen]:
    with MockQwen(token_prefix=canary) as server:
        yield server


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    home = tmp_path / "user"
    home.mkdir(mode=0o700)
    return home


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """The CLI's cwd: an empty project, so nothing of the repository is read."""
    work = tmp_path / "project"
    work.mkdir()
    return work


@pytest.fixture
def cli_env(qwen_bin: Path, mock: MockQwen, user_home: Path) -> dict[str, str]:
    return harness.cli_env(qwen_bin, mock, user_home)


@pytest.fixture
def pool_of(user_home: Path) -> Callable[..., AccountManager]:
    def make(*credentials: Mapping[str, Any], profile: ToolProfile = QWEN) -> AccountManager:
        return harness.make_pool_at(user_home / ".qwen", credentials, profile)

    return make


@pytest.fixture
def make_wrapper(
    cli_env: dict[str, str], workdir: Path
) -> Callable[..., tuple[Wrapper, list[Attempt]]]:
    def make(
        manager: AccountManager, *, env_update: Mapping[str, str] | None = None, **kwargs: Any
    ) -> tuple[Wrapper, list[Attempt]]:
        env = {**cli_env, **(env_update or {})}
        return harness.spied_wrapper(manager, env, workdir, **kwargs)

    return make


@pytest.fixture
def run_by_hand(cli_env: dict[str, str], workdir: Path) -> Callable[..., RunResult]:
    """``run(stop_at=REGEX, timeout=S)``: the real CLI with ``HOME`` the user's home."""

    def run(*, stop_at: str | None = None, timeout: float = 40.0) -> RunResult:
        rules = (Rule.of(OutcomeKind.AUTH_FAILED, stop_at),) if stop_at else ()
        return run_tool(
            QWEN.argv(),
            stdin=PROMPT.encode(),
            env=cli_env,
            timeout=timeout,
            abort_rules=rules,
            cwd=str(workdir),
        )

    return run


@pytest.fixture
def simulate(tmp_path: Path) -> Callable[..., RunResult]:
    """``simulate(mode, output_format="text", *, expired=False, stop_at=None) -> RunResult``."""
    import credrot_sim as sim

    def run(
        mode: str,
        output_format: str = "text",
        *,
        expired: bool = False,
        stop_at: str | None = None,
    ) -> RunResult:
        root = tmp_path / f"sim-{mode}-{output_format}"
        backend = sim.SimBackend(root / "backend")
        backend.configure(poll_interval=0.2, device_auth_timeout=5.0)
        shims = sim.install(root / "bin", root / "backend")
        cred = backend.add_account("sim", mode=mode, expired=expired)
        home = root / "home"
        (home / ".qwen").mkdir(parents=True)
        (home / ".qwen" / "oauth_creds.json").write_text(json.dumps(cred, indent=2))
        env = {
            "PATH": os.pathsep.join([str(shims["qwen"].parent), "/usr/bin", "/bin"]),
            "HOME": str(home),
            "QWEN_HOME": str(home / ".qwen"),
            "LANG": "C.UTF-8",
        }
        rules = (Rule.of(OutcomeKind.AUTH_FAILED, stop_at),) if stop_at else ()
        return run_tool(
            harness.PROFILES[output_format].argv(),
            stdin=PROMPT.encode(),
            env=env,
            timeout=20.0,
            abort_rules=rules,
            cwd=str(root),
        )

    return run


@pytest.fixture(scope="session")
def transcripts() -> Iterator[dict[str, Transcript]]:
    """Real outputs by mode; written to ``$CREDROT_CONFORMANCE_RECORD`` (a file) if set."""
    seen: dict[str, Transcript] = {}
    yield seen
    target = os.environ.get(RECORD_ENV)
    if target and seen:
        harness.write_transcripts(Path(target), seen)


@pytest.fixture(scope="session", autouse=True)
def _rate_limit_background(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[concurrent.futures.Future[RateLimitRun] | None]:
    """Start the ~80 s rate-limit run at once, so it overlaps the rest of the suite.

    Not under pytest-xdist (every worker would start one): there the test runs it itself.
    """
    wanted = any(item.name == harness.RATE_LIMIT_TEST for item in request.session.items)
    xdist_worker = hasattr(request.config, "workerinput")
    if not wanted or xdist_worker or install.missing_node():
        yield None
        return
    try:
        bin_dir: Path = request.getfixturevalue("qwen_bin")
    except (pytest.skip.Exception, pytest.fail.Exception):
        yield None  # the tests themselves report why
        return
    executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rate-limit")
    future = executor.submit(
        harness.rate_limit_scenario,
        bin_dir,
        tmp_path_factory.mktemp("rate-limit"),
        f"CANARY-rate-limit-{secrets.token_hex(6)}",
    )
    yield future
    executor.shutdown(wait=True)


@pytest.fixture
def rate_limit_run(
    _rate_limit_background: concurrent.futures.Future[RateLimitRun] | None,
    qwen_bin: Path,
    tmp_path: Path,
) -> RateLimitRun:
    if _rate_limit_background is None:
        token_prefix = f"CANARY-rate-limit-{secrets.token_hex(6)}"
        return harness.rate_limit_scenario(qwen_bin, tmp_path / "rate-limit", token_prefix)
    return _rate_limit_background.result(timeout=240)


@pytest.fixture(scope="session", autouse=True)
def _write_genuine_transcripts() -> Iterator[None]:
    """Saves what the genuine CLIs printed (``CREDROT_CONFORMANCE_RECORD_DIR``)."""
    yield
    transcribe.write_all()
