"""The pytest plugin, run for real with ``pytester`` against the simulator on PATH as ``qwen``.

Each test builds a pool in a temporary home (``SimPool``), writes a small project that
uses the plugin and runs pytest on it: in-process where that is enough, in a subprocess
for pytest-xdist.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from creds import CANARY
from simpool import SimPool

RESET = re.escape("(first reset ") + r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\)"


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path, monkeypatch)


def use_pool(pytester: pytest.Pytester, sim: SimPool, **ini: object) -> None:
    lines = [f"credrot_home = {sim.home}", *(f"{k} = {v}" for k, v in ini.items())]
    pytester.makeini("[pytest]\n" + "\n".join(lines) + "\n")


def spend_all(sim: SimPool) -> None:
    until = datetime.now(timezone.utc) + timedelta(hours=3)
    for index in sim.names:
        sim.manager.mark(index, "exhausted", until=until, reason="spent by the test")


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def assert_no_canary(result: pytest.RunResult) -> None:
    assert CANARY not in output(result)


def summary(result: pytest.RunResult, home: Path, tool: str = "qwen") -> list[str]:
    """The lines of the credrot terminal summary section."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if re.match(r"^=+ credrot =+$", line))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("=")), len(lines))
    section = lines[start + 1 : end]
    assert section[0].startswith(f"{tool} pool {home}: "), section
    return section


#: How the summary says a switch off an account whose daily quota the simulator spent.
DAY_SPENT = (
    "switched #{0} -> #{1}: #{0} spent its day window (the tool's quota message; resets 00:00 UTC)"
)


# ------------------------------------------------------------------------- outcomes
def test_good_pool_passes_with_header_and_summary(pytester: pytest.Pytester, sim: SimPool) -> None:
    sim.add()
    sim.add()
    use_pool(pytester, sim)
    pytester.makepyfile(
        test_good="""
        from credrot.wrapper import Wrapper, WrapperResult

        def test_text(qwen):
            assert isinstance(qwen, Wrapper)
            assert qwen("say hi").startswith("Simulated qwen answer from acct1")

        def test_result(qwen):
            result = qwen.call("say hi")
            assert isinstance(result, WrapperResult)
            assert result.success and result.account == 1

        def test_pool(credrot_pool):
            assert [a.index for a in credrot_pool.list_accounts()] == [1, 2]
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)
    assert f"credrot: tool qwen, home {sim.home}, 2/2 accounts usable" in result.outlines
    assert summary(result, sim.home) == [
        f"qwen pool {sim.home}: requests 2, tool runs 2, successes 2, switches 0",
        "accounts exhausted during the run: 0",
        "tests xfailed for quota: 0",
    ]
    assert sim.backend.used("acct1") == 2
    assert_no_canary(result)


def test_rotation_in_the_middle_of_a_suite(pytester: pytest.Pytester, sim: SimPool) -> None:
    sim.add(quota=1)
    sim.add()
    use_pool(pytester, sim)
    pytester.makepyfile(
        test_rotate="""
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_ask(qwen, n):
            assert "answer" in qwen(f"question {n}")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)
    assert summary(result, sim.home) == [
        f"qwen pool {sim.home}: requests 3, tool runs 4, successes 3, switches 1",
        DAY_SPENT.format(1, 2),
        "accounts exhausted during the run: 1 (#1)",
        "tests xfailed for quota: 0",
    ]
    assert (sim.backend.used("acct1"), sim.backend.used("acct2")) == (1, 2)
    assert_no_canary(result)


def test_spent_pool_makes_tests_xfail_and_known_spent_bodies_do_not_run(
    pytester: pytest.Pytester, sim: SimPool
) -> None:
    sim.add(quota=0)
    sim.add(quota=0)
    # max retries = accounts: the first call ends on its retry limit having spent both,
    # which must count as "no usable account" just like the next call's refusal.
    use_pool(pytester, sim, credrot_max_retries=2)
    pytester.makepyfile(
        test_spent="""
        from pathlib import Path
        import pytest

        def test_body_call(qwen):
            result = qwen.call("one")
            assert result.success, result.error  # fails, yet the test is xfailed

        def test_known_spent(qwen):
            Path("body-ran").write_text("x")
            qwen("two")

        @pytest.fixture
        def review(credrot_wrapper):
            return credrot_wrapper()("review this")  # raises CallFailed

        def test_fixture_call_raises(review):
            Path("raises-body-ran").write_text("x")

        @pytest.fixture
        def soft_review(credrot_wrapper):
            return credrot_wrapper().call("review this")  # no usable account, no raise

        def test_fixture_call_soft(soft_review):
            Path("soft-body-ran").write_text("x")

        def test_unrelated():
            pass
        """
    )
    result = pytester.runpytest("-rx")
    result.assert_outcomes(passed=1, xfailed=4)
    reason = r"credrot: all 2 qwen accounts exhausted " + RESET
    result.stdout.re_match_lines(
        [
            rf"XFAIL test_spent.py::test_body_call - {reason}$",
            rf"XFAIL test_spent.py::test_known_spent - {reason}$",
            rf"XFAIL at setup of test_spent.py::test_fixture_call_raises - {reason}$",
            rf"XFAIL test_spent.py::test_fixture_call_soft - {reason}$",
        ],
        consecutive=False,
    )
    for name in ("body-ran", "raises-body-ran", "soft-body-ran"):
        assert not (pytester.path / name).exists(), name
    assert len(sim.backend.calls()) == 2  # only the first call reached the tool
    assert summary(result, sim.home) == [
        f"qwen pool {sim.home}: requests 3, tool runs 2, successes 0, switches 1",
        DAY_SPENT.format(1, 2),
        "accounts exhausted during the run: 2 (#1, #2)",
        "tests xfailed for quota: 4",
    ]
    assert_no_canary(result)


CLOCK = r"\d\d:\d\d UTC"


def test_summary_says_each_switch_with_its_window_signal_and_reset(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimPool(tmp_path, monkeypatch, tool="claude")
    sim.add(quota=1, resets_in=7200)  # its 5-hour limit, printed by the tool
    sim.add(quota=10)  # its configured cap of 2 calls per 5 hours
    sim.add(quota=10)
    config = tmp_path / "config.yaml"
    config.write_text("limits:\n  claude:\n    accounts:\n      2: {caps: {5h: 2}}\n")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    use_pool(pytester, sim, credrot_tool="claude")
    pytester.makepyfile(
        test_switch="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_ask(qwen, n):
            assert "answer" in qwen(f"question {n}")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=4)
    lines = summary(result, sim.home, "claude")
    assert lines[0] == f"claude pool {sim.home}: requests 4, tool runs 5, successes 4, switches 2"
    assert re.fullmatch(
        rf"switched #1 -> #2: #1 spent its 5h window \(the tool's quota message; resets {CLOCK}\)",
        lines[1],
    ), lines[1]
    assert re.fullmatch(
        r"switched #2 -> #3: #2 reached the cap of its 5h window "
        rf"\(the configured cap, 2/2 calls; resets {CLOCK}\)",
        lines[2],
    ), lines[2]
    assert lines[3:] == ["accounts exhausted during the run: 1 (#1)", "tests xfailed for quota: 0"]
    assert [sim.backend.used(n) for n in sim.names.values()] == [1, 2, 1]
    assert_no_canary(result)


def test_summary_says_a_switch_the_tools_own_usage_report_made(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = SimPool(tmp_path, monkeypatch, tool="claude")
    sim.add(quota=2)  # 2 of 2 used: the tool's stream-json reports 100%, before any limit
    sim.add(quota=10)
    use_pool(pytester, sim, credrot_tool="claude")
    pytester.makepyfile(
        test_usage="""
        import pytest

        @pytest.fixture
        def claude(credrot_wrapper):
            return credrot_wrapper(extra_args=("--output-format", "stream-json"))

        @pytest.mark.parametrize("n", range(3))
        def test_ask(claude, n):
            assert claude.call(f"question {n}").success
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=3)
    lines = summary(result, sim.home, "claude")
    assert lines[0] == f"claude pool {sim.home}: requests 3, tool runs 3, successes 3, switches 1"
    assert re.fullmatch(
        rf"switched #1 -> #2: #1's 5h window is at 100% \(the tool's own usage report; "
        rf"resets {CLOCK}\)",
        lines[1],
    ), lines[1]
    assert all(c["outcome"] == "ok" for c in sim.backend.calls())  # no call wasted on a 429


def test_a_pool_spent_for_one_model_still_runs_the_tests_of_another(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_windows import _opus_spent_pool

    sim = _opus_spent_pool(tmp_path, monkeypatch)  # both accounts: Opus week spent
    before = len(sim.backend.calls())
    use_pool(pytester, sim, credrot_tool="claude")
    pytester.makeconftest(
        """
        import os
        from credrot.wrapper import Wrapper

        def pytest_credrot_make_wrapper(config, tool, manager, kwargs):
            model = os.environ.get("SUITE_MODEL", "sonnet")  # the suite's own model
            kwargs.setdefault("extra_args", ("--model", model))
            return Wrapper(manager.profile, manager=manager, **kwargs)
        """
    )
    pytester.makepyfile(
        test_models="""
        def test_sonnet(qwen):
            assert "answer" in qwen("hello")

        def test_opus(credrot_wrapper):
            result = credrot_wrapper(extra_args=("--model", "opus")).call("hello")
            assert result.success, result.error
        """
    )
    result = pytester.runpytest("-rx")
    result.assert_outcomes(passed=1, xfailed=1)
    result.stdout.re_match_lines(
        [
            r"^credrot: tool claude, home .*, 2/2 accounts usable$",
            r"XFAIL test_models.py::test_opus - credrot: no usable account: all 2 claude "
            r"accounts are unusable \(#1 exhausted until .*",
        ],
        consecutive=False,
    )
    assert len(sim.backend.calls()) == before + 1  # the sonnet test ran; opus did not
    assert_no_canary(result)

    monkeypatch.setenv("SUITE_MODEL", "opus")  # now the fixture's wrapper asks for opus
    again = pytester.runpytest("-rx", "-k", "sonnet")
    again.assert_outcomes(xfailed=1)
    again.stdout.re_match_lines([r"XFAIL test_models.py::test_sonnet - credrot: all 2 claude"])
    assert len(sim.backend.calls()) == before + 1  # known spent for opus: no tool run


SPENT_TESTS = """
from pathlib import Path

def test_known_spent(qwen):
    Path("body-ran").write_text("x")

def test_body_raises(credrot_wrapper):
    credrot_wrapper()("hi")

def test_body_ignores_the_result(credrot_wrapper):
    credrot_wrapper().call("hi")
"""


@pytest.mark.parametrize("how", ["ini", "flag"])
@pytest.mark.parametrize("mode", ["skip", "fail"])
def test_exhausted_outcome_skip_or_fail(
    pytester: pytest.Pytester, sim: SimPool, mode: str, how: str
) -> None:
    sim.add()
    sim.add()
    spend_all(sim)
    if how == "ini":
        use_pool(pytester, sim, credrot_exhausted=mode)
        args: list[str] = []
    else:
        use_pool(pytester, sim, credrot_exhausted="xfail")  # the flag wins
        args = [f"--credrot-exhausted={mode}"]
    pytester.makepyfile(test_modes=SPENT_TESTS)
    result = pytester.runpytest("-rsf", *args)
    reason = r"credrot: all 2 qwen accounts exhausted " + RESET
    if mode == "skip":
        result.assert_outcomes(skipped=3)
        result.stdout.re_match_lines([rf"SKIPPED \[1\] test_modes.py:\d+: {reason}$"] * 3)
    else:
        result.assert_outcomes(failed=3)
        result.stdout.re_match_lines([r"FAILED test_modes.py::test_\w+ - .*(credrot|usable).*"] * 3)
        assert len(re.findall(reason, output(result))) >= 3
    verb = {"skip": "skipped", "fail": "failed"}[mode]
    assert f"tests {verb} for quota: 3" in result.outlines
    assert not (pytester.path / "body-ran").exists()
    assert sim.backend.calls() == []


def test_runxfail_makes_spent_tests_fail(pytester: pytest.Pytester, sim: SimPool) -> None:
    sim.add()
    spend_all(sim)
    use_pool(pytester, sim)
    pytester.makepyfile(test_runx=SPENT_TESTS)
    result = pytester.runpytest("--runxfail")
    result.assert_outcomes(failed=3)
    assert "tests failed for quota: 3" in result.outlines
    assert "credrot: the only qwen account is exhausted" in output(result)
    assert not (pytester.path / "body-ran").exists()


def test_other_tool_errors_are_ordinary_failures(pytester: pytest.Pytester, sim: SimPool) -> None:
    sim.add(mode="connection_error")
    sim.add()
    use_pool(pytester, sim)
    pytester.makepyfile(
        test_err="""
        def test_ask(qwen):
            qwen("hi")
        """
    )
    result = pytester.runpytest("-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["FAILED test_err.py::test_ask - credrot.wrapper.CallFailed: *"])
    assert re.search(r"CallFailed: .*\[API Error: Connection error\.\]", output(result))
    assert "tests xfailed for quota: 0" in result.outlines
    assert len(sim.backend.calls()) == 1  # an error never rotates
    assert_no_canary(result)


WRONG_POOL_TESTS = """
from pathlib import Path

def test_ask(qwen):
    Path("body-ran").write_text("x")

def test_factory_in_the_body(credrot_wrapper):
    credrot_wrapper().call("hi")
    Path("body-ran").write_text("x")
"""


@pytest.mark.parametrize("pool", ["missing", "empty", "invalid"])
def test_a_wrong_pool_is_a_configuration_error_not_a_spent_pool(
    pytester: pytest.Pytester, tmp_path: Path, pool: str
) -> None:
    home = tmp_path / "nowhere"
    if pool != "missing":
        (home / "accounts").mkdir(parents=True)
    if pool == "invalid":
        (home / "accounts" / "oauth_creds_1.json").write_text('{"nothing": "useful"}')
    pytester.makepyfile(test_none=WRONG_POOL_TESTS)
    result = pytester.runpytest(f"--credrot-home={home}", "-rEfx")
    result.assert_outcomes(errors=1, failed=1)
    why = {
        "missing": f"the qwen pool {home} does not exist",
        "empty": f"no qwen accounts in {home}",
        "invalid": f"none of the 1 qwen accounts in {home} is a valid credential",
    }[pool]
    lines = "\n".join(result.outlines)
    assert "ERROR at setup of test_ask" in lines
    assert "FAILED test_none.py::test_factory_in_the_body" in lines
    # One failure section per test; pytest's short summary (full width under CI) repeats
    # it after "ERROR"/"FAILED", so count only the lines the sections start with.
    starts = [ln for ln in result.outlines if ln.startswith("credrot: configuration error: ")]
    assert len(starts) == 2
    assert all(why in ln for ln in starts)
    assert "xfail" not in lines.lower().replace("tests xfailed for quota: 0", "")
    assert result.ret != 0
    assert not (pytester.path / "body-ran").exists()
    assert not home.exists() or pool != "missing"  # nothing created where nothing was


@pytest.mark.parametrize("how", ["ini", "flag"])
def test_a_wrong_pool_is_skipped_only_when_asked(
    pytester: pytest.Pytester, tmp_path: Path, how: str
) -> None:
    home = tmp_path / "nowhere"
    pytester.makepyfile(test_none=WRONG_POOL_TESTS)
    if how == "ini":
        pytester.makeini(f"[pytest]\ncredrot_home = {home}\ncredrot_unconfigured = skip\n")
        args: list[str] = []
    else:
        args = [f"--credrot-home={home}", "--credrot-unconfigured=skip"]
    result = pytester.runpytest("-rs", *args)
    result.assert_outcomes(skipped=2)
    assert result.ret == 0
    assert f"credrot: configuration error: the qwen pool {home} does not exist" in output(result)
    assert pytester.runpytest("--credrot-unconfigured=maybe").ret == pytest.ExitCode.USAGE_ERROR


# --------------------------------------------------------------------------- marker
def test_marker_is_registered_and_applied_through_fixtures(
    pytester: pytest.Pytester, sim: SimPool
) -> None:
    sim.add()
    use_pool(pytester, sim)
    pytester.makepyfile(
        test_marks="""
        import pytest

        def test_direct(qwen):
            pass

        @pytest.fixture
        def helper(qwen):
            return qwen

        def test_through_a_fixture(helper):
            pass

        @pytest.mark.qwen
        def test_marked_by_hand():
            pass

        def test_plain(request):
            assert request.node.get_closest_marker("qwen") is None
        """
    )
    result = pytester.runpytest("--strict-markers", "-m", "not qwen")
    result.assert_outcomes(passed=1, deselected=3)
    result = pytester.runpytest("--strict-markers", "-m", "qwen")
    result.assert_outcomes(passed=3, deselected=1)
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.qwen: *"])


# ---------------------------------------------------------------------------- xdist
def test_xdist_workers_share_the_pool_and_the_summary_adds_up(
    pytester: pytest.Pytester, sim: SimPool
) -> None:
    for _ in range(3):
        sim.add(quota=2)
    use_pool(pytester, sim)
    pytester.makepyfile(
        test_par="""
        import os
        from pathlib import Path
        import pytest

        @pytest.mark.parametrize("i", range(8))
        def test_call(qwen, i):
            Path(f"called-{i}").write_text(os.environ.get("PYTEST_XDIST_WORKER", "-"))
            qwen(f"prompt {i}")
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-rx")
    result.assert_outcomes(passed=6, xfailed=2)
    called = list(pytester.path.glob("called-*"))
    assert {p.read_text() for p in called} == {"gw0", "gw1"}
    runs = len(sim.backend.calls())
    assert sum(sim.backend.used(name) for name in sim.names.values()) == 6
    assert f"credrot: tool qwen, home {sim.home}, 3/3 accounts usable" in result.outlines
    lines = summary(result, sim.home)
    # Which switches the pool makes depends on how the two workers interleave: an account
    # a spread caller spends while the pool is elsewhere is never switched to (#1 -> #2,
    # then #3 spent by the caller spread there, then #2: no switch is left to make). The
    # switch lines, made in whichever worker saw them, come in its workeroutput.
    switches = lines[1:-2]
    assert len(switches) <= 2
    assert set(switches) <= {DAY_SPENT.format(1, 2), DAY_SPENT.format(2, 3), DAY_SPENT.format(1, 3)}
    assert lines[0] == (
        f"qwen pool {sim.home}: requests {len(called)}, tool runs {runs}, successes 6,"
        f" switches {len(switches)}"
    )
    assert lines[-2:] == [
        "accounts exhausted during the run: 3 (#1, #2, #3)",
        "tests xfailed for quota: 2",
    ]
    assert_no_canary(result)


# ---------------------------------------------------------------------------- hooks
def test_hook_overrides_the_outcome_of_a_spent_test(
    pytester: pytest.Pytester, sim: SimPool
) -> None:
    sim.add()
    sim.add()
    spend_all(sim)
    use_pool(pytester, sim)
    pytester.makeconftest(
        """
        from pathlib import Path

        def pytest_credrot_exhausted_outcome(item, reason, when, results):
            with Path("seen.txt").open("a") as f:
                f.write(f"{item.name}|{when}|{len(results)}|{reason}\\n")
            return {"test_keep": "keep", "test_skip": "skip"}.get(item.name)
        """
    )
    pytester.makepyfile(
        test_hook="""
        from pathlib import Path

        def test_keep(qwen):
            Path("keep-ran").write_text("x")

        def test_skip(qwen):
            pass

        def test_default(qwen):
            pass

        def test_default_in_body(credrot_wrapper):
            credrot_wrapper().call("hi")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, skipped=1, xfailed=2)
    assert (pytester.path / "keep-ran").exists()
    seen = (pytester.path / "seen.txt").read_text().splitlines()
    assert [line.rsplit("|", 1)[0] for line in seen] == [
        "test_keep|setup|0",
        "test_skip|setup|0",
        "test_default|setup|0",
        "test_default_in_body|call|1",
    ]
    reason = r"credrot: all 2 qwen accounts exhausted " + RESET
    assert all(re.fullmatch(reason, line.rsplit("|", 1)[1]) for line in seen)
    assert "tests xfailed for quota: 2" in result.outlines
    assert "tests skipped for quota: 1" in result.outlines


def test_hooks_supply_the_wrapper_and_observe_every_call(
    pytester: pytest.Pytester, sim: SimPool
) -> None:
    sim.add(quota=1)
    sim.add()
    use_pool(pytester, sim)
    pytester.makeconftest(
        """
        from pathlib import Path
        from credrot.wrapper import Wrapper

        class Tagged(Wrapper):
            pass

        def pytest_credrot_make_wrapper(config, tool, manager, kwargs):
            assert tool == "qwen" and kwargs["max_retries"] == 5
            return Tagged(tool, manager=manager, **{**kwargs, "max_retries": 2})

        def pytest_credrot_call(config, item, tool, result):
            with Path("calls.txt").open("a") as f:
                f.write(f"{item.name}|{tool}|{result.success}|{result.account}\\n")
        """
    )
    pytester.makepyfile(
        test_custom="""
        def test_custom(qwen):
            assert type(qwen).__name__ == "Tagged" and qwen.max_retries == 2
            assert qwen("one")
            assert qwen("two")

        def test_factory(credrot_wrapper):
            assert type(credrot_wrapper()).__name__ == "Tagged"
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=2)
    assert (pytester.path / "calls.txt").read_text().splitlines() == [
        "test_custom|qwen|True|1",
        "test_custom|qwen|True|2",
    ]
    assert summary(result, sim.home)[0] == (
        f"qwen pool {sim.home}: requests 2, tool runs 3, successes 2, switches 1"
    )


# ------------------------------------------------------------------ options, disabling
def test_disabled_with_p_no_credrot(pytester: pytest.Pytester, sim: SimPool) -> None:
    sim.add()
    pytester.makepyfile(
        test_off="""
        def test_uses_qwen(qwen):
            pass

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:credrot")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'qwen' not found*"])
    assert not [line for line in result.outlines if line.startswith("credrot:")]  # no header
    assert not [line for line in result.outlines if re.match(r"^=+ credrot =+$", line)]


def test_options_are_flags_and_ini_keys(pytester: pytest.Pytester, sim: SimPool) -> None:
    sim.add()
    home = os.path.relpath(sim.home, pytester.path)  # relative to the ini file
    pytester.makeini(
        f"""
        [pytest]
        credrot_home = {home}
        credrot_tool = qwen
        credrot_max_retries = 2
        credrot_timeout = 7.5
        """
    )
    pytester.makepyfile(
        test_opts="""
        def test_settings(qwen, credrot_pool, pytestconfig):
            assert qwen.max_retries == int(pytestconfig.getoption("credrot_max_retries") or 2)
            assert qwen.timeout == 7.5
            assert qwen.manager is credrot_pool
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert f"credrot: tool qwen, home {sim.home}, 1/1 accounts usable" in result.outlines
    result = pytester.runpytest("--credrot-max-retries=4", "--credrot-tool", "qwen")
    result.assert_outcomes(passed=1)

    result = pytester.runpytest("--help")
    text = output(result)
    for name in ("home", "tool", "max-retries", "timeout", "exhausted"):
        assert f"--credrot-{name}" in text
        assert re.search(rf"^  credrot_{name.replace('-', '_')} \(string\):", text, re.M), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-o", "credrot_exhausted=maybe"],
            "credrot_exhausted must be one of xfail, skip, fail (got 'maybe')",
        ),
        (
            ["--credrot-max-retries=0"],
            "credrot_max_retries must be a whole number of at least 1 (got '0')",
        ),
        (
            ["--credrot-timeout=soon"],
            "credrot_timeout must be a number of seconds above 0 (got 'soon')",
        ),
        (["--credrot-tool=nope"], "credrot_tool: unknown tool 'nope'"),
    ],
)
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in output(result)


def test_header_is_cached_while_the_pool_is_unchanged(
    pytester: pytest.Pytester, sim: SimPool
) -> None:
    sim.add()
    sim.add()
    use_pool(pytester, sim)
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    expect = f"credrot: tool qwen, home {sim.home}, {{}}/2 accounts usable"
    assert expect.format(2) in pytester.runpytest().outlines
    entry_path = pytester.path / ".pytest_cache" / "v" / "credrot" / "header"
    entry = json.loads(entry_path.read_text())
    assert entry["line"] == expect.format(2)

    # the pool changes: the line is built again
    sim.manager.mark(1, "exhausted", until=datetime.now(timezone.utc) + timedelta(hours=1))
    assert expect.format(1) in pytester.runpytest().outlines

    # unchanged pool: the cached line is what shows (proved with a doctored entry)
    entry = json.loads(entry_path.read_text())
    entry["line"] = "credrot: from the cache"
    entry_path.write_text(json.dumps(entry))
    assert "credrot: from the cache" in pytester.runpytest().outlines

    # a spent account's reset time passing makes the entry stale
    entry["until"] = 0
    entry_path.write_text(json.dumps(entry))
    assert expect.format(1) in pytester.runpytest().outlines


def test_space_form_of_credrot_home_warns_that_the_ini_file_is_ignored(
    pytester: pytest.Pytester, sim: SimPool, tmp_path: Path
) -> None:
    sim.add()
    project = pytester.mkdir("project")
    (project / "pytest.ini").write_text("[pytest]\ncredrot_max_retries = 3\n")
    (project / "test_it.py").write_text(
        "def test_retries(qwen):\n    assert qwen.max_retries == 3\n"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(project)
        spaced = pytester.runpytest_subprocess("--credrot-home", str(sim.home))
        joined = pytester.runpytest_subprocess(f"--credrot-home={sim.home}")
    warning = (
        f"credrot: --credrot-home {sim.home} (space form): pytest also takes {sim.home} as a "
        "test path, which moves its rootdir"
    )
    assert warning in output(spaced)
    assert f"write --credrot-home={sim.home}" in output(spaced)
    spaced.assert_outcomes(failed=1)  # the ini file was indeed not read
    joined.assert_outcomes(passed=1)
    assert "space form" not in output(joined)


def test_the_summary_shows_at_most_twenty_switch_lines_and_counts_the_rest() -> None:
    from pytest_credrot.tally import MAX_SWITCH_LINES, Switch, _Tally

    worker = _Tally("qwen", "/pool", requests=30, runs=30, successes=30, switches=25)
    worker.switched = [
        Switch(float(t), t % 2 + 1, (t + 1) % 2 + 1, "round-robin") for t in range(25)
    ]
    controller = _Tally("qwen", "/pool")
    controller.merge(json.loads(json.dumps(worker.as_dict())))  # as workeroutput carries it
    lines = controller.lines()
    assert lines[0] == "qwen pool /pool: requests 30, tool runs 30, successes 30, switches 25"
    assert lines[1:3] == ["switched #1 -> #2: round-robin", "switched #2 -> #1: round-robin"]
    assert lines[MAX_SWITCH_LINES + 1] == ("... and 5 more switches (every one is in rotation.log)")
    assert lines[-1] == "accounts exhausted during the run: 0"
