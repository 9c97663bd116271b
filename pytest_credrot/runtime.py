"""The plugin's per-run state: the pool and wrappers of the run, the
header line, the summary, and the decision for each test.

Kept apart from :mod:`pytest_credrot.plugin` (the hooks and fixtures pytest sees) so the
decisions can be read, and tested, without the glue.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from credrot.kinds import Outcome
    from credrot.manager import AccountManager
    from credrot.wrapper import Wrapper, WrapperResult

from pytest_credrot.preflight import refuse, unconfigured
from pytest_credrot.tally import (
    _TAKEN_OUT,
    _VERBS,
    FIXTURES,
    HEADER_CACHE_KEY,
    HOOK_MODES,
    MARKER,
    MODES,
    REPORT_ATTR,
    Settings,
    Switch,
    _apply,
    _fingerprint,
    _Record,
    _Tally,
    describe_spent,
)

# ------------------------------------------------------------------ the run state
_RUNTIME = pytest.StashKey["Runtime"]()


_RECORD = pytest.StashKey["_Record"]()


def _record(item: pytest.Item) -> _Record:
    rec = item.stash.get(_RECORD, None)
    if rec is None:
        rec = item.stash[_RECORD] = _Record()
    return rec


class _Observer:
    """A credrot events plugin on one pool: feeds the run's tally and the running test."""

    def __init__(self, runtime: Runtime, manager: AccountManager) -> None:
        self.runtime = runtime
        self.manager = manager

    def credrot_call_finished(self, result: WrapperResult) -> None:
        self.runtime.on_call(self.manager, result)

    def credrot_account_switched(self, from_index: int | None, to_index: int, reason: str) -> None:
        tally = self.runtime.tally(self.manager)
        tally.switches += 1
        tally.switched.append(Switch(time.time(), from_index, to_index, reason))

    def credrot_account_exhausted(self, index: int, outcome: Outcome) -> None:
        label = _TAKEN_OUT.get(outcome.kind.value, outcome.kind.value)
        self.runtime.tally(self.manager).taken_out[index] = label


_OBSERVER_MARKED = False


def _mark_observer() -> None:
    global _OBSERVER_MARKED
    if not _OBSERVER_MARKED:
        from credrot.events import hookimpl

        for name in (
            "credrot_call_finished",
            "credrot_account_switched",
            "credrot_account_exhausted",
        ):
            hookimpl(getattr(_Observer, name))
        _OBSERVER_MARKED = True


class Runtime:
    """Per-run state (``config.stash``) and the run-wide hooks."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self.managers: dict[tuple[str, str], AccountManager] = {}
        self.tallies: dict[tuple[str, str], _Tally] = {}
        self.quota_tests: dict[str, int] = {}
        self.current: pytest.Item | None = None
        self.item_hooks: _ItemHooks | None = None
        self.configured: set[tuple[str, str]] = set()
        self._header_checked = False
        self._header_line: str | None = None

    # --- the pool ------------------------------------------------------------------
    def manager(
        self, tool: str | None = None, home: str | os.PathLike[str] | None = None
    ) -> AccountManager:
        """The run's manager of ``tool``'s pool (one per tool and home, shared by calls)."""
        tool = tool or self.settings.tool
        if home is None and tool == self.settings.tool:
            home = self.settings.home
        key = (tool, os.fspath(home) if home is not None else "")
        manager = self.managers.get(key)
        if manager is None:
            from credrot.manager import AccountManager

            manager = AccountManager(tool=tool, home=home)
            self.managers[key] = manager
        return manager

    def flush(self) -> None:
        """After each test: the counts its calls kept back reach the pool's file (another
        process looking at the pool, ``credrot top``, sees them; never raises)."""
        from credrot.errors import NEVER_RAISED, CredrotError

        for manager in self.managers.values():
            with contextlib.suppress(CredrotError, *NEVER_RAISED):
                manager.flush()

    def observe(self, manager: AccountManager) -> None:
        name = f"pytest-credrot-{id(self)}"
        pm = manager.events.pm
        if pm.get_plugin(name) is None:
            _mark_observer()
            pm.register(_Observer(self, manager), name=name)

    def make_wrapper(self, tool: str | None = None, **kwargs: Any) -> Wrapper:
        home = kwargs.pop("home", None)
        manager = self.manager(tool, home)
        self.observe(manager)
        self.require_configured(manager)
        options: dict[str, Any] = {
            "max_retries": self.settings.max_retries,
            "timeout": self.settings.timeout,
            **kwargs,
        }
        wrapper: Wrapper | None = self.config.hook.pytest_credrot_make_wrapper(
            config=self.config, tool=manager.profile.name, manager=manager, kwargs=dict(options)
        )
        if wrapper is None:
            from credrot.wrapper import Wrapper

            wrapper = Wrapper(manager.profile, manager=manager, **options)
        custom = getattr(wrapper, "manager", None)
        if custom is not None and custom is not manager:
            self.observe(custom)
        return wrapper

    def require_configured(self, manager: AccountManager) -> None:
        """Stop a test whose pool cannot answer at all (checked until it once can)."""
        key = (manager.profile.name, str(manager.home))
        if key in self.configured:
            return
        status = manager.pool_status()
        reason = unconfigured(manager, status)
        if reason is not None:
            refuse(reason, self.settings.unconfigured)
        self.configured.add(key)

    def tally(self, manager: AccountManager) -> _Tally:
        key = (manager.profile.name, str(manager.home))
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = _Tally(*key)
        return tally

    # --- calls -----------------------------------------------------------------------
    def on_call(self, manager: AccountManager, result: WrapperResult) -> None:
        tally = self.tally(manager)
        tally.requests += 1
        tally.runs += result.attempts
        tally.successes += bool(result.success)
        item = self.current
        if result.pool_exhausted:
            tally.pool_exhausted += 1
            if item is not None:
                status = manager.pool_status()
                reason = (
                    f"credrot: {result.error}"  # the pool came back meanwhile
                    if status.usable
                    else describe_spent(status, manager.profile.name, manager.home)
                )
                _record(item).found.append((reason, result))
        self.config.hook.pytest_credrot_call(
            config=self.config, item=item, tool=manager.profile.name, result=result
        )

    def check_start(self, item: pytest.Item, wrapper: Wrapper) -> None:
        """A test about to use the pool: note it as spent already if nothing is usable.

        A wrapper that names its model is judged for that model; one that names none is
        judged as a view is (an account spent only for one model counts as usable), so
        no test is given up on for a window its calls may never meet."""
        manager = getattr(wrapper, "manager", None)
        if manager is None:
            return
        from credrot import windows

        model = windows.call_model(getattr(wrapper, "extra_args", ()) or ())
        status = manager.pool_status(for_call=model is not None, model=model)
        if not status.usable:
            reason = describe_spent(status, manager.profile.name, manager.home)
            _record(item).found.append((reason, None))

    # --- outcomes --------------------------------------------------------------------
    def decide(
        self, item: pytest.Item, found: list[tuple[str, WrapperResult | None]], when: str
    ) -> str:
        reason = found[0][0]
        results = [r for _, r in found if r is not None]
        mode = item.ihook.pytest_credrot_exhausted_outcome(
            item=item, reason=reason, when=when, results=results
        )
        if mode is None:
            mode = self.settings.exhausted
        elif mode not in HOOK_MODES:
            warnings.warn(
                pytest.PytestWarning(
                    f"pytest_credrot_exhausted_outcome returned {mode!r}; expected one of "
                    f"{', '.join(HOOK_MODES)} or None (using {self.settings.exhausted!r})"
                ),
                stacklevel=1,
            )
            mode = self.settings.exhausted
        if mode == "xfail" and getattr(self.config.option, "runxfail", False):
            mode = "fail"
        return str(mode)

    def settle(self, item: pytest.Item, rec: _Record, when: str, rep: pytest.TestReport) -> None:
        new = rec.found[rec.seen :]
        rec.seen = len(rec.found)
        if when == "setup":
            if not new:
                return
            mode = self.decide(item, new, "setup")
            if mode == "keep":
                return
            rec.mode, rec.reason = mode, new[0][0]
            if rep.passed:
                rec.skip_body = True  # the call phase reports it, without running the body
                return
            _apply(item, rep, mode, rec.reason)
        elif rec.skip_body and rec.mode is not None:
            _apply(item, rep, rec.mode, rec.reason)
        elif new:
            mode = self.decide(item, new, "call")
            if mode != "keep":
                _apply(item, rep, mode, new[0][0])

    # --- run-wide hooks ----------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        used = False
        for item in items:
            names = getattr(item, "fixturenames", None)
            if not names:
                continue
            if MARKER in names:
                item.add_marker(MARKER)
                used = True
            elif not used and any(name in names for name in FIXTURES):
                used = True
        if used and self.item_hooks is None:
            self.item_hooks = _ItemHooks(self)
            self.config.pluginmanager.register(self.item_hooks, "credrot-items")

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        if self.is_worker:
            return []
        return [self.header()]

    def header(self) -> str:
        line = self.cached_header()
        if line is not None:
            return line
        tool = self.settings.tool
        home: object = self.settings.home or "?"
        try:
            manager = self.manager()
            home = manager.home
            accounts = manager.list_accounts()
            usable = sum(1 for info in accounts if info.usable)
            line = f"credrot: tool {tool}, home {home}, {usable}/{len(accounts)} accounts usable"
        except Exception as exc:  # the header must never stop a run
            return f"credrot: tool {tool}, home {home}: {exc}"
        self._cache_header(line, manager, [info.until for info in accounts if info.until])
        return line

    # Reading the pool means importing credrot's core, which costs more than the rest of
    # the plugin on a suite that never calls the tool. So the line is kept in pytest's
    # cache with what it depends on: the pool's files (inode, size, mtime — every change
    # credrot or the tool makes replaces a file, touching its directory), the variables
    # that choose the home, and the first time a spent account comes back.
    def _header_ident(self) -> dict[str, Any]:
        home = self.settings.home
        return {"tool": self.settings.tool, "home": str(home) if home is not None else None}

    def cached_header(self) -> str | None:
        if self._header_checked:
            return self._header_line
        self._header_checked = True
        cache = getattr(self.config, "cache", None)
        if cache is None:
            return None
        try:
            entry = cache.get(HEADER_CACHE_KEY, None)
            if (
                isinstance(entry, dict)
                and entry.get("ident") == self._header_ident()
                and time.time() < float(entry["until"])
                and all(os.environ.get(k) == v for k, v in entry["env"].items())
                and _fingerprint(entry["paths"]) == entry["stats"]
            ):
                self._header_line = str(entry["line"])
        except (KeyError, TypeError, ValueError, AttributeError):
            self._header_line = None
        return self._header_line

    def _cache_header(self, line: str, manager: AccountManager, untils: list[Any]) -> None:
        cache = getattr(self.config, "cache", None)
        if cache is None:
            return
        now = time.time()
        until = min([u.timestamp() for u in untils if u.timestamp() > now] + [now + 86400.0])
        env: dict[str, str | None] = {}
        if self.settings.home is None:
            for name in (manager.profile.home_env, "HOME"):
                if name:
                    env[name] = os.environ.get(name)
        paths = [str(p) for p in (manager.home, manager.accounts_dir, manager.state_path)]
        paths += [str(p) for p in manager.slots().values()]
        entry = {
            "ident": self._header_ident(),
            "line": line,
            "until": until,
            "env": env,
            "paths": paths,
            "stats": _fingerprint(paths),
        }
        cache.set(HEADER_CACHE_KEY, entry)  # warns by itself when it cannot write

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        mode = getattr(report, REPORT_ATTR, None)
        if mode:
            self.quota_tests[mode] = self.quota_tests.get(mode, 0) + 1

    def pytest_sessionfinish(self) -> None:
        if self.is_worker:
            output: dict[str, Any] = self.config.workeroutput  # type: ignore[attr-defined]
            output["credrot"] = [t.as_dict() for t in self.tallies.values()]

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any) -> None:
        """pytest-xdist: add up what a worker's calls did."""
        for data in getattr(node, "workeroutput", {}).get("credrot", []):
            key = (str(data["tool"]), str(data["home"]))
            tally = self.tallies.get(key)
            if tally is None:
                tally = self.tallies[key] = _Tally(*key)
            tally.merge(data)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.is_worker:
            return
        tallies = [t for t in self.tallies.values() if t.requests or t.switches or t.taken_out]
        if not tallies and not self.quota_tests:
            return
        write = terminalreporter.write_line
        terminalreporter.write_sep("=", "credrot")
        for t in tallies:
            for line in t.lines():
                write(line)
        modes = [m for m in MODES if self.quota_tests.get(m)] or [self.settings.exhausted]
        for mode in modes:
            write(f"tests {_VERBS[mode]} for quota: {self.quota_tests.get(mode, 0)}")


class _ItemHooks:
    """Per-test hooks, registered only when a collected test uses a credrot fixture."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        self.runtime.current = item
        try:
            return (yield)
        finally:
            self.runtime.current = None
            self.runtime.flush()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> None:
        rec = item.stash.get(_RECORD, None)
        if rec is not None and rec.skip_body:
            pytest.fail(rec.reason, pytrace=False)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        rep = yield
        rec = item.stash.get(_RECORD, None)
        if rec is not None and call.when != "teardown":
            self.runtime.settle(item, rec, call.when, rep)
        return rep
