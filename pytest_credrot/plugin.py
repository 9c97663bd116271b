"""pytest plugin: tests call a quota-limited AI CLI through credrot's rotating pool.

Fixtures ``qwen`` (a :class:`credrot.wrapper.Wrapper` on the run's pool), ``credrot_pool``
(its :class:`credrot.manager.AccountManager`) and ``credrot_wrapper`` (a factory, for
other tools or other settings). A test whose call finds no usable account left is
reported xfailed (or skipped, or failed: ``credrot_exhausted``) with the reason, instead
of failing the suite because a daily quota ran out; a test that starts when the pool is
already known to be spent does not run its body, so it spends nothing.

Loading the plugin costs next to nothing: credrot's core is imported when a fixture is
used or when the header line must be built (it is kept in pytest's cache while the pool
is unchanged), and the per-test hooks are registered only when a collected test uses
one of the fixtures.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from credrot.manager import AccountManager
    from credrot.wrapper import Wrapper

from pytest_credrot.preflight import UNCONFIGURED_HELP, UNCONFIGURED_MODES
from pytest_credrot.runtime import (
    _RUNTIME,
    Runtime,
)
from pytest_credrot.tally import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_TOOL,
    MARKER,
    MODES,
    Settings,
)

HOME_HELP = (
    "home of the account pool (default: the tool's own, e.g. $QWEN_HOME or ~/.qwen); "
    "a relative path in an ini file is relative to that file"
)


TOOL_HELP = f"tool whose pool the qwen fixture rotates (default: {DEFAULT_TOOL})"


MAX_RETRIES_HELP = (
    f"tool invocations one call may make across accounts (default: {DEFAULT_MAX_RETRIES})"
)


TIMEOUT_HELP = f"seconds allowed per tool invocation (default: {DEFAULT_TIMEOUT:g})"


EXHAUSTED_HELP = (
    "outcome of a test whose call found no usable account: xfail, skip or fail "
    "(default: xfail; --runxfail makes it fail)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("credrot", "credrot: rotate the accounts of a quota-limited AI CLI")
    for name, metavar, help_text in (
        ("home", "PATH", HOME_HELP),
        ("tool", "NAME", TOOL_HELP),
        ("max-retries", "N", MAX_RETRIES_HELP),
        ("timeout", "SECONDS", TIMEOUT_HELP),
        ("exhausted", "|".join(MODES), EXHAUSTED_HELP),
        ("unconfigured", "|".join(UNCONFIGURED_MODES), UNCONFIGURED_HELP),
    ):
        key = "credrot_" + name.replace("-", "_")
        group.addoption(f"--credrot-{name}", dest=key, metavar=metavar, help=help_text)
        parser.addini(key, help_text, default="")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_credrot import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def _raw(config: pytest.Config, key: str) -> tuple[str | None, bool]:
    """The setting's text and whether it came from the ini file (else the command line)."""
    value = config.getoption(key)
    if value is not None:
        return str(value), False
    ini = str(config.getini(key) or "").strip()
    return (ini or None), True


def read_settings(config: pytest.Config) -> Settings:
    """The run's settings: each flag wins over its ini key; bad values are usage errors."""
    tool, _ = _raw(config, "credrot_tool")
    tool = (tool or DEFAULT_TOOL).strip()
    home_text, from_ini = _raw(config, "credrot_home")
    home: Path | None = None
    if home_text:
        home = Path(home_text).expanduser()
        if from_ini and not home.is_absolute():
            base = config.inipath.parent if config.inipath else config.rootpath
            home = base / home
        home = Path(os.path.abspath(home))
    retries_text, _ = _raw(config, "credrot_max_retries")
    try:
        max_retries = int(retries_text) if retries_text else DEFAULT_MAX_RETRIES
    except ValueError:
        max_retries = 0
    if max_retries < 1:
        raise pytest.UsageError(
            f"credrot_max_retries must be a whole number of at least 1 (got {retries_text!r})"
        )
    timeout_text, _ = _raw(config, "credrot_timeout")
    try:
        timeout = float(timeout_text) if timeout_text else DEFAULT_TIMEOUT
    except ValueError:
        timeout = 0.0
    if not timeout > 0:  # also rejects nan
        raise pytest.UsageError(
            f"credrot_timeout must be a number of seconds above 0 (got {timeout_text!r})"
        )
    exhausted_text, _ = _raw(config, "credrot_exhausted")
    exhausted = (exhausted_text or "xfail").strip().lower()
    if exhausted not in MODES:
        raise pytest.UsageError(
            f"credrot_exhausted must be one of {', '.join(MODES)} (got {exhausted_text!r})"
        )
    unconfigured_text, _ = _raw(config, "credrot_unconfigured")
    unconfigured = (unconfigured_text or "error").strip().lower()
    if unconfigured not in UNCONFIGURED_MODES:
        raise pytest.UsageError(
            f"credrot_unconfigured must be one of {', '.join(UNCONFIGURED_MODES)} "
            f"(got {unconfigured_text!r})"
        )
    return Settings(tool, home, max_retries, timeout, exhausted, unconfigured)


def check_tool(tool: str) -> None:
    from credrot.errors import CredrotError
    from credrot.tools import get_profile

    try:
        get_profile(tool)
    except CredrotError as exc:
        raise pytest.UsageError(f"credrot_tool: {exc}") from None


SPACE_FORM_WARNING = (
    "credrot: --credrot-home {path} (space form): pytest also takes {path} as a test path, "
    "which moves its rootdir, so your pytest.ini/pyproject.toml settings are ignored; "
    "write --credrot-home={path}"
)


def warn_space_form(config: pytest.Config) -> None:
    """``--credrot-home DIR`` puts DIR among the arguments pytest finds its rootdir from
    (it does so before any plugin option is known); the ``=`` form does not."""
    args = list(config.invocation_params.args)
    for flag, value in itertools.pairwise(args):
        if flag == "--credrot-home" and os.path.isdir(value):
            config.issue_config_time_warning(
                pytest.PytestConfigWarning(SPACE_FORM_WARNING.format(path=value)), stacklevel=2
            )
            return


def pytest_configure(config: pytest.Config) -> None:
    warn_space_form(config)
    config.addinivalue_line(
        "markers",
        f"{MARKER}: the test calls the AI CLI through credrot "
        "(added to every test that uses the qwen fixture; deselect with -m 'not qwen')",
    )
    runtime = Runtime(config, read_settings(config))
    # A tool the cached header was built for is known to exist: skip importing the core.
    if not runtime.is_worker and runtime.cached_header() is None:
        check_tool(runtime.settings.tool)
    config.stash[_RUNTIME] = runtime
    config.pluginmanager.register(runtime, "credrot-runtime")


def _runtime(config: pytest.Config) -> Runtime:
    return config.stash[_RUNTIME]


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def credrot_pool(pytestconfig: pytest.Config) -> AccountManager:
    """The run's account pool (``--credrot-home``/``--credrot-tool``), shared by all calls."""
    runtime = _runtime(pytestconfig)
    manager = runtime.manager()
    runtime.observe(manager)
    return manager


@pytest.fixture(scope="session")
def credrot_wrapper(pytestconfig: pytest.Config) -> Callable[..., Wrapper]:
    """Factory: ``credrot_wrapper(tool=None, *, home=None, **wrapper_kwargs) -> Wrapper``.

    ``tool`` defaults to the run's tool and ``home`` to that tool's pool for the run;
    other keyword arguments go to :class:`credrot.wrapper.Wrapper` (``max_retries``,
    ``timeout``, ``budget``, ``approval_mode``, ``extra_args``, ...).
    """
    runtime = _runtime(pytestconfig)

    def make(tool: str | None = None, **kwargs: Any) -> Wrapper:
        return runtime.make_wrapper(tool, **kwargs)

    return make


@pytest.fixture
def qwen(request: pytest.FixtureRequest, credrot_wrapper: Callable[..., Wrapper]) -> Wrapper:
    """The rotation wrapper on the run's pool: ``qwen.call(prompt)`` -> ``WrapperResult``,
    ``qwen(prompt)`` -> the answer text (raises ``CallFailed`` when there is none)."""
    wrapper = credrot_wrapper()
    _runtime(request.config).check_start(request.node, wrapper)
    return wrapper
