"""Codex retries a 429 itself, honouring the server's ``retry-after``: it prints
``ERROR: Reconnecting... 1/5`` and then nothing for the whole wait. credrot stops such a
run once it has been silent for ``RECONNECT_SILENCE`` seconds after the line and moves
to the next account, instead of timing the call out; a reconnect that goes on soon (a
dropped connection) is left to finish. Real processes of the simulated ``codex``."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from simpool import SimPool

from credrot.kinds import Outcome, OutcomeKind
from credrot.manager import AccountManager
from credrot.process import RunResult, run_tool
from credrot.profile import ToolProfile
from credrot.tools import CODEX
from credrot.tools.codex import RECONNECT_SILENCE
from credrot.wrapper import Wrapper

QUICK = 1.0  # the silence these tests wait for, in place of the profile's 20 s


def _codex(silence: float = QUICK) -> ToolProfile:
    (rule,) = CODEX.abort_rules
    return replace(CODEX, abort_rules=(replace(rule, silence=silence),))


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path, monkeypatch, tool="codex")


def _wrapper(sim: SimPool) -> tuple[Wrapper, list[tuple[int, RunResult | None, Outcome]]]:
    profile = _codex()
    manager = AccountManager(tool=profile, home=sim.home)
    wrapper = Wrapper(profile, manager=manager, timeout=60)
    seen: list[tuple[int, RunResult | None, Outcome]] = []
    wrapper.on_attempt = lambda index, run, outcome: seen.append((index, run, outcome))
    return wrapper, seen


def test_the_builtin_rule_waits_longer_than_codex_reconnects() -> None:
    (rule,) = CODEX.abort_rules
    assert rule.kind is OutcomeKind.RATE_LIMITED and rule.silence == RECONNECT_SILENCE >= 10
    assert rule.pattern.search("ERROR: Reconnecting... 1/5")
    assert not rule.pattern.search("codex\nthe answer mentions ERROR: Reconnecting... 1/5")


def test_a_wait_codex_sleeps_out_moves_the_call_to_the_next_account(sim: SimPool) -> None:
    sim.add("waiting", mode="rate_limit", retry_after=600)
    sim.add("spare")
    wrapper, seen = _wrapper(sim)
    started = time.monotonic()
    result = wrapper.call("hello")
    took = time.monotonic() - started
    assert result.success, result.error
    assert result.accounts_tried == [1, 2]
    assert took < 30  # the silence and the spare's answer, not the 600 s wait
    index, run, outcome = seen[0]
    assert index == 1 and run is not None and run.exit_code is None  # stopped
    assert run.stderr == "ERROR: Reconnecting... 1/5\n"
    assert outcome.kind is OutcomeKind.RATE_LIMITED
    assert f"printed nothing for {QUICK:g} s after 'ERROR: Reconnecting... 1/5'" in outcome.message
    listed = {
        a.index: a for a in AccountManager(tool=wrapper.profile, home=sim.home).list_accounts()
    }
    assert listed[1].status == "rate_limited"  # left alone for a while, not retried now
    assert [c["account"] for c in sim.backend.calls()] == ["waiting", "spare"]


def test_a_reconnect_that_goes_on_soon_is_not_cut_short(sim: SimPool) -> None:
    sim.add("flaky", mode="rate_limit", retry_after=0.2)  # five quick reconnects, then out
    sim.add("spare")
    wrapper, seen = _wrapper(sim)
    result = wrapper.call("hello")
    assert result.success, result.error
    index, run, outcome = seen[0]
    assert index == 1 and run is not None and run.exit_code == 1  # it ended by itself
    assert run.stderr.count("ERROR: Reconnecting...") == 5
    assert outcome.kind is OutcomeKind.RATE_LIMITED
    assert "printed nothing" not in outcome.message


SILENT_AFTER = r"""
import sys, time
print("ERROR: Reconnecting... 1/5", file=sys.stderr, flush=True)
if sys.argv[1] == "more":
    time.sleep(0.2)
    print("ERROR: Reconnecting... 2/5 (stream disconnected)", file=sys.stderr, flush=True)
    time.sleep(0.2)
    print("the answer", flush=True)
    time.sleep(0.5 * float(sys.argv[2]))  # quiet again, but after an answer: no wait
    sys.exit(0)
time.sleep(600)
"""


@pytest.mark.parametrize("after", ["nothing", "more"])
def test_the_run_loop_stops_only_a_tool_silent_since_the_line(after: str) -> None:
    (rule,) = _codex().abort_rules
    started = time.monotonic()
    run = run_tool(
        [sys.executable, "-c", SILENT_AFTER, after, str(QUICK)],
        stdin=b"",
        env=dict(os.environ),
        timeout=30,
        abort_rules=(rule,),
    )
    took = time.monotonic() - started
    if after == "nothing":
        assert run.aborted is rule and run.exit_code is None and not run.timed_out
        assert QUICK <= took < 10
    else:
        assert run.aborted is None and run.exit_code == 0 and run.stdout == "the answer\n"
    assert not Path(f"/proc/{run.pid}").exists()  # stopped and reaped, or ended
