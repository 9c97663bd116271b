"""Run the tool for one prompt, rotating across the pool's accounts when one is spent.

Each attempt runs against a private copy of its account's credential (a shallow copy
of the tool home, the tool pointed at it by its home variable), so parallel callers can
use different accounts, and a token the tool refreshed during the call is written back
to the slot it came from — never to whichever account is active by then.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from credrot import inflight, telemetry, windows
from credrot.backoff import BACKOFF_KINDS as BACKOFF_KINDS
from credrot.backoff import Backoff as Backoff
from credrot.callhome import CallHome
from credrot.classify import classify_run
from credrot.errors import NEVER_RAISED, CredrotError, ReadOnlyHome, ToolNotFound, call_failure
from credrot.kinds import Outcome, OutcomeKind
from credrot.manager import AccountManager, Lease, PoolStatus
from credrot.pool import rotation
from credrot.pool.refresh import RefreshLease
from credrot.process import DEFAULT_MAX_OUTPUT, RunResult, environ, run_tool
from credrot.profile import PromptTooLarge, ToolProfile


@dataclass
class WrapperResult:
    """What a call produced. ``output`` is the tool's answer; nothing here holds a token."""

    success: bool
    output: str
    error: str | None = None
    attempts: int = 0
    accounts_tried: list[int] = field(default_factory=list)
    outcome: Outcome | None = None
    account: int | None = None
    exit_code: int | None = None
    stderr: str = ""
    duration: float = 0.0
    persisted: bool = True
    pool_exhausted: bool = False
    first_reset: datetime | None = None
    switches: int = 0
    warnings: list[str] = field(default_factory=list)
    #: The streams of the last run cut at ``max_output`` bytes (``"stdout"``,
    #: ``"stderr"``); a warning says it too.
    truncated: tuple[str, ...] = ()
    #: Bytes kept of each output stream.
    max_output: int = DEFAULT_MAX_OUTPUT

    def __bool__(self) -> bool:
        return self.success


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, "[REDACTED]")
    return text


class Wrapper:
    """Run one tool with automatic rotation across its pool of accounts.

    ``max_retries`` caps the tool invocations of one call (the seed's name for it);
    ``timeout`` is per invocation, ``budget`` bounds the whole call including back-off.
    ``max_output`` caps the bytes kept of each output stream of a run (default: the
    profile's, else 16 MiB); the rest is read and discarded, and the result says so.

    A call never raises for a full disk, a state file it cannot read, or a time a tool
    printed that is out of range: it returns a failed :class:`WrapperResult` saying why.
    """

    def __init__(
        self,
        tool: str | ToolProfile = "qwen",
        *,
        manager: AccountManager | None = None,
        home: str | os.PathLike[str] | None = None,
        max_retries: int = 5,
        timeout: float = 45.0,
        budget: float | None = None,
        approval_mode: str | None = None,
        extra_args: Sequence[str] = (),
        backoff: Backoff | str = "exponential",
        max_rate_limits: int = 2,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        strategy: str = "fill-first",
        max_output: int | None = None,
    ) -> None:
        if manager is None:
            manager = AccountManager(tool=tool, home=home, strategy=strategy)
        self.manager = manager
        manager.in_memory_fallback = True
        self.profile = manager.profile
        self.max_retries = max(1, int(max_retries))
        self.timeout = timeout
        self.budget = budget
        self.approval_mode = approval_mode
        self.extra_args = tuple(extra_args)
        if isinstance(backoff, str):
            if backoff not in BACKOFF_KINDS:
                raise CredrotError(
                    f"unknown backoff {backoff!r} (choose from {', '.join(BACKOFF_KINDS)})"
                )
            backoff = Backoff(kind=backoff)
        self.backoff = backoff
        self.max_rate_limits = max_rate_limits
        if max_output is None:
            max_output = self.profile.max_output
        if max_output is None:
            max_output = DEFAULT_MAX_OUTPUT
        if max_output < 0:
            raise CredrotError("max_output must not be negative")
        self.max_output = max_output
        self.env = env
        self.cwd = str(cwd) if cwd is not None else None
        #: Called after every run of the tool with (account, run, outcome): for tests
        #: and tools that want each attempt, not only the call's result.
        self.on_attempt: Callable[[int, RunResult | None, Outcome], None] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tool={self.profile.name!r}, home={str(self.manager.home)!r})"

    # ------------------------------------------------------------------ API
    def call(
        self, prompt: str, timeout: float | None = None, *, budget: float | None = None
    ) -> WrapperResult:
        """Send ``prompt`` (through stdin, unless the profile takes it as an argument)
        and return the first real answer."""
        try:
            argv, stdin = self.profile.invocation(prompt, self.approval_mode, self.extra_args)
        except PromptTooLarge as exc:
            return WrapperResult(success=False, output="", error=str(exc))
        return self._run(argv, stdin, timeout, budget)

    def run_args(
        self,
        args: Sequence[str],
        stdin: bytes | None = None,
        timeout: float | None = None,
        *,
        budget: float | None = None,
    ) -> WrapperResult:
        """Run the tool with the caller's own ``args`` (``credrot run -- ARGS``)."""
        return self._run([self.profile.executable, *args], stdin, timeout, budget)

    def call_with_fallback(
        self,
        prompt: str,
        fallback_message: str | None = None,
        timeout: float | None = None,
    ) -> str | None:
        """The answer, or ``fallback_message`` when no account could give one."""
        result = self.call(prompt, timeout=timeout)
        return result.output if result.success else fallback_message

    def __call__(self, prompt: str, timeout: float | None = None) -> str:
        """The answer text; raises :class:`CallFailed` when there is none."""
        result = self.call(prompt, timeout=timeout)
        if not result.success:
            raise CallFailed(result)
        return result.output

    # ------------------------------------------------------------ internals
    def _run(
        self,
        argv: list[str],
        stdin: bytes | None,
        timeout: float | None,
        budget: float | None,
    ) -> WrapperResult:
        """The retry loop: lease an account -> run in its call home -> classify ->
        settle (record + write-back) -> next account, until an answer or a stop."""
        started = time.monotonic()
        result = WrapperResult(success=False, output="", max_output=self.max_output)
        tried: list[int] = []
        kept = self.manager.pool.store.batch
        added = kept.added
        try:
            self._loop(result, tried, argv, stdin, timeout, budget, started)
        except NEVER_RAISED as exc:
            result.success = False
            result.error = call_failure(exc, self.manager.home)
        result.accounts_tried = tried
        result.warnings += self.manager.pool.unsaved  # where a token without a slot is
        self.manager.pool.unsaved.clear()
        result.duration = time.monotonic() - started
        result.persisted = self.manager.persisted
        if not result.persisted:
            note = f"state could not be persisted: {self.manager.home} is read-only"
            result.warnings.append(note)
            if result.error:
                result.error = f"{result.error}; {note}"
        later = kept.later if result.success and kept.added > added and len(kept) else None
        with contextlib.suppress(*NEVER_RAISED):
            self.manager.events.call_finished(result, later)
        return result

    def _loop(
        self,
        result: WrapperResult,
        tried: list[int],
        argv: list[str],
        stdin: bytes | None,
        timeout: float | None,
        budget: float | None,
        started: float,
    ) -> None:
        per_try = self.timeout if timeout is None else timeout
        total = budget if budget is not None else self.budget
        if total is None:
            total = per_try * self.max_retries + 60.0
        deadline = started + total
        excluded: set[int] = set()
        rate_limits: dict[int, int] = {}
        base_env = environ() if self.env is None else self.env
        model = windows.call_model(argv)

        while result.attempts < self.max_retries:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                result.error = f"gave up: the call's time budget of {total:g} s is spent"
                break
            try:
                lease = self.manager.lease(excluded, reserve=True, model=model)
            except CredrotError as exc:
                result.error = str(exc)
                break
            if lease is None:
                self._pool_exhausted(result, excluded, model)
                break
            held = rotation.hold_refresh(self.manager.pool, lease, deadline)
            if held is None:  # another caller's refresh outlasted the budget, or it failed
                excluded.add(lease.index)
                continue
            lease, refresh_lease = held
            index = lease.index
            if index not in tried:
                tried.append(index)
            result.attempts += 1
            result.account = index
            attempt = _Attempt(self, lease, rate_limits, deadline, refresh_lease)
            attempt.first = result.attempts == 1
            run, outcome, now_on = attempt.run(argv, stdin, base_env, min(per_try, remaining))
            if self.on_attempt is not None:
                self.on_attempt(index, run, outcome)
            if run is None:  # the tool is not installed
                result.error = outcome.message
                result.outcome = outcome
                break
            result.output = _redact(run.stdout, attempt.secrets)
            result.stderr = _redact(run.stderr, attempt.secrets)
            result.exit_code = run.exit_code
            result.outcome = outcome
            result.truncated = run.truncated
            if attempt.unsaved is not None:
                result.warnings.append(f"the outcome was not recorded: {attempt.unsaved}")
            if run.truncated:
                note = f"the answer was cut: {run.cap_note()}"
                result.warnings.append(note)
                self.manager.pool.notice(note)
            if attempt.retry_wait is not None:
                time.sleep(attempt.retry_wait)
                continue
            if outcome.ok:
                result.success = True
                result.error = None
                break
            if outcome.kind is OutcomeKind.ERROR:
                result.error = outcome.message
                break
            if now_on is not None and now_on != index:
                result.switches += 1
            excluded.add(index)
            result.error = f"account #{index}: {outcome.kind.value}: {outcome.message}"
        else:
            if not result.success and result.outcome is not None and result.outcome.rotates:
                left = self.manager.pool_status(exclude=excluded, for_call=True, model=model)
                if not left.usable:
                    # The last try spent the last usable account: that is an exhausted pool.
                    self._pool_exhausted(result, excluded, model)
                else:
                    result.error = (
                        f"gave up after {result.attempts} attempts "
                        f"(max_retries={self.max_retries}); last: {result.error}"
                    )

    def _pool_exhausted(self, result: WrapperResult, excluded: set[int], model: str | None) -> None:
        status: PoolStatus = self.manager.pool_status(exclude=excluded, for_call=True, model=model)
        message = status.describe(self.profile.name)
        result.pool_exhausted = True
        result.first_reset = status.first_reset
        result.error = f"no usable account: {message}"
        # A call that found no account before any tool run is still a request.
        self.manager.note_pool_exhausted(message, status.first_reset, result.attempts == 0)


class _Attempt:
    """One run of the tool on a leased account, from its call home to its settlement."""

    def __init__(
        self,
        wrapper: Wrapper,
        lease: Lease,
        rate_limits: dict[int, int],
        deadline: float,
        refresh_lease: RefreshLease | None = None,
    ) -> None:
        self.wrapper = wrapper
        self.lease = lease
        #: Held while this attempt may refresh the account's token; released once the
        #: refreshed token is back in its slot.
        self.refresh_lease = refresh_lease
        self.rate_limits = rate_limits
        self.deadline = deadline
        self.secrets: list[str] = wrapper.profile.secrets_of(lease.data)
        #: Set when the account is only rate-limited and worth one more try after a wait.
        self.retry_wait: float | None = None
        #: The call's first tool run: its settlement counts the request.
        self.first = False
        #: Why the outcome could not be recorded (a full disk), if it could not.
        self.unsaved: str | None = None
        #: The tool was stopped for its silence after a line (``Rule.silence``).
        self.silenced = False

    def run(
        self, argv: list[str], stdin: bytes | None, base_env: Mapping[str, str], timeout: float
    ) -> tuple[RunResult | None, Outcome, int | None]:
        wrapper, lease = self.wrapper, self.lease
        manager, profile = wrapper.manager, wrapper.profile
        home = CallHome(
            manager.pool.layout, profile, lease.index, lease.raw, lease.data, lease.home
        )
        settled = False
        try:
            try:
                run = run_tool(
                    argv,
                    stdin=stdin,
                    env=home.env(base_env),
                    timeout=timeout,
                    abort_rules=profile.abort_rules,
                    abort_streams=profile.abort_streams,
                    cwd=wrapper.cwd,
                    install_hint=profile.install_hint,
                    max_output=wrapper.max_output,
                    pid_file=home.pid_file,
                    keep_pid_file=True,
                    meanwhile=manager.pool.store.batch.meanwhile(),
                )
            except ToolNotFound as exc:
                return None, Outcome.error(str(exc)), None
            refreshed = self._refreshed(home)
            json_output = profile.json_output(argv)
            outcome = self._classify(run, timeout, json_output)
            mark = self._should_mark(outcome)
            shown = run.stdout if json_output else ""  # text: the model's words
            readings = telemetry.read(shown, home.tool_home, lease.started)
            notice = self._announce(outcome, mark)
            try:
                now_on = manager.settle(
                    lease, outcome, refreshed, mark=mark, readings=readings, request=self.first
                )
            except ReadOnlyHome:
                manager.persisted = False
                now_on = None
            except NEVER_RAISED as exc:  # a full disk: the answer is kept, the token below
                self.unsaved = call_failure(exc, manager.home, "")
                return run, outcome, None
            finally:
                inflight.refused_done(notice)
            settled = True
            return run, outcome, now_on
        finally:
            kept = False
            if not settled:
                # Interrupted (Ctrl-C, an error): a token the tool refreshed must reach
                # its slot before the private home, its only copy, is removed.
                refreshed = home.read_back()
                if refreshed is not None and refreshed != lease.raw:
                    kept = self.unsaved is not None  # a full disk: kept for the reaper
                    try:
                        manager.write_back(lease.index, lease.raw, refreshed, lease.generation)
                    except ReadOnlyHome:
                        manager.persisted = False
                    except NEVER_RAISED:
                        kept = True
            if not kept:
                home.close()
            if self.refresh_lease is not None:
                self.refresh_lease.release()

    def _announce(self, outcome: Outcome, mark: bool) -> Path | None:
        """Tell the other callers at once that this account refused the run, while its
        mark waits for the pool lock (a per-model window bars only its model: no)."""
        per_model = self.wrapper.profile.per_model_windows
        if not mark or not outcome.rotates or windows.model_only(outcome, per_model):
            return None
        return inflight.refusing(self.wrapper.manager.pool.layout, self.lease.index)

    def _refreshed(self, home: CallHome) -> bytes | None:
        refreshed: bytes | None = home.read_back()
        if refreshed is None or refreshed == self.lease.raw:
            return None
        data, _ = self.wrapper.profile.parse_credential(refreshed)
        if data is not None:
            self.secrets += self.wrapper.profile.secrets_of(data)
        return refreshed

    def _classify(self, run: RunResult, timeout: float, json_output: bool) -> Outcome:
        outcome = classify_run(self.wrapper.profile, run, timeout, json_output)
        self.silenced = run.aborted is not None and run.aborted.silence > 0
        message = _redact(outcome.message, self.secrets)
        return outcome if message == outcome.message else replace(outcome, message=message)

    def _should_mark(self, outcome: Outcome) -> bool:
        """A rate limit is retried after a back-off while the call can afford it, unless
        the tool itself was waiting one out (``Rule.silence``); anything else is marked."""
        if outcome.kind is not OutcomeKind.RATE_LIMITED or self.silenced:
            return True
        index = self.lease.index
        count = self.rate_limits.get(index, 0) + 1
        self.rate_limits[index] = count
        wait = self.wrapper.backoff.delay(count - 1, outcome.retry_after)
        room = self.deadline - time.monotonic()
        if count <= self.wrapper.max_rate_limits and wait < room:
            self.retry_wait = wait
            return False
        return True


class QwenWrapper(Wrapper):
    """The seed's wrapper: ``QwenWrapper(max_retries=5).call_with_fallback(prompt, ...)``."""

    def __init__(self, max_retries: int = 5, **kwargs: Any) -> None:
        kwargs.setdefault("tool", "qwen")
        super().__init__(max_retries=max_retries, **kwargs)


class CallFailed(CredrotError):
    """Raised by ``wrapper(prompt)`` when no answer came back."""

    def __init__(self, result: WrapperResult) -> None:
        super().__init__(result.error or "the call failed")
        self.result = result
