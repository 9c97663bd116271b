"""What a new user meets first, through the real ``credrot`` command (click's runner or a
subprocess): the demo for every tool, ``credrot sim``, config mistakes, the switch lines
of ``credrot run``, options after the subcommand and ``--json`` on every change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from creds import CANARY
from simpool import SimPool

from credrot import cli
from credrot.manager import AccountManager


def invoke(args: Sequence[str], input: bytes | str | None = None) -> Result:
    result = CliRunner().invoke(cli.cli, list(args), input=input, catch_exceptions=False)
    assert CANARY not in result.output, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    return SimPool(tmp_path / "sim", monkeypatch)


# ----------------------------------------------------------------------- demo
@pytest.mark.parametrize("tool", ["claude", "codex", "gemini"])
def test_demo_runs_for_every_simulated_tool(tool: str) -> None:
    home = Path(os.environ["HOME"])
    before = sorted(home.rglob("*"))
    result = invoke(["--tool", tool, "demo"])
    assert result.exit_code == 0, result.output
    assert f"3 simulated {tool} accounts" in result.stdout
    assert f"Simulated {tool} answer from alice" in result.stdout
    # Codex reports its usage with each answer: the pool moves off #1 before it fails.
    if tool != "codex":
        assert "#1 hit its quota" in result.stdout
    assert "answered by #2" in result.stdout
    assert sorted(home.rglob("*")) == before


def test_demo_of_a_yaml_tool_says_it_cannot_be_simulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("tools:\n  mytool:\n    credential: auth.json\n", encoding="utf-8")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    result = invoke(["--tool", "mytool", "demo"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "credrot: error: 'mytool' cannot be simulated: "
        "the simulator plays qwen, claude, codex, gemini only"
    ]
    assert "internal error" not in result.output


# ------------------------------------------------------------------------ sim
@pytest.mark.parametrize(
    ("tool", "variable", "pool"),
    [
        ("qwen", "QWEN_HOME", "home"),
        ("claude", "CLAUDE_CONFIG_DIR", "home"),
        ("gemini", "GEMINI_CLI_HOME", "home/.gemini"),
    ],
)
def test_sim_writes_a_tool_and_a_pool_and_prints_the_exports(
    tmp_path: Path, tool: str, variable: str, pool: str
) -> None:
    where = tmp_path / "try"
    result = invoke(["--tool", tool, "sim", str(where), "--accounts", "2", "--quota", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f'export PATH={where / "bin"}:"$PATH"',
        f"export {variable}={where / 'home'}",
    ]
    assert f"2 simulated {tool} accounts (1 answers each)" in result.stderr
    assert os.access(where / "bin" / tool, os.X_OK)
    listed = invoke(["--tool", tool, "--home", str(where / pool), "accounts", "list", "--json"])
    assert [a["index"] for a in json.loads(listed.stdout)["accounts"]] == [1, 2]


def test_sim_refuses_a_used_directory_and_a_yaml_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    result = invoke(["sim", str(used)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"credrot: error: {used} is not an empty directory; name a new one"
    ]
    assert sorted(p.name for p in used.iterdir()) == ["notes.txt"]
    config = tmp_path / "config.yaml"
    config.write_text("tools:\n  mytool:\n    credential: auth.json\n", encoding="utf-8")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    result = invoke(["--tool", "mytool", "sim", str(tmp_path / "new")])
    assert result.exit_code == 1
    assert "'mytool' cannot be simulated" in result.stderr
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------------ run
def _credrot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "credrot"
    proc = subprocess.run(
        [str(exe), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert CANARY not in proc.stdout + proc.stderr
    return proc


def test_run_says_each_switch_and_keeps_the_tools_noise_for_debug(sim: SimPool) -> None:
    sim.add("a", quota=0)
    sim.add("b", quota=0)
    sim.add("c", quota=0)
    env = {**os.environ, "QWEN_HOME": str(sim.home)}
    spent = _credrot("run", "--max-retries", "2", "--", "-p", "hi", env=env)
    assert spent.returncode == 1  # not an exhausted pool: --max-retries stopped it
    assert spent.stderr.splitlines()[:2] == [
        "credrot: account #1 spent (resets 00:00 UTC); trying #2",
        "credrot: account #2 spent (resets 00:00 UTC); no more tries (--max-retries 2)",
    ]
    assert spent.stderr.count("Qwen OAuth quota exceeded") == 1  # said once, not four times
    assert "Traceback" not in spent.stderr and "at file://" not in spent.stderr
    debug = _credrot("--debug", "run", "--", "-p", "hi", env=env)
    assert debug.returncode == 3
    assert "credrot: account #3 spent (resets 00:00 UTC); no other usable account" in debug.stderr
    assert "An unexpected critical error occurred:" in debug.stderr  # all of the tool's output
    assert "at file://" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("credrot: error: no usable account")


# --------------------------------------------------------------------- config
BROKEN = "tools:\n  mytool:\n    credential: auth.json\n    args: {print: true}\n"


@pytest.mark.parametrize(
    "args",
    [
        ["accounts", "list"],
        ["accounts", "next"],
        ["stats"],
        ["run", "--", "-p", "hi"],
        ["demo"],
        ["--tool", "claude", "accounts", "list"],
    ],
)
def test_a_broken_config_stops_every_command_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(BROKEN, encoding="utf-8")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    result = invoke(["--home", str(tmp_path / "pool"), *args])
    assert result.exit_code == 1
    assert result.stderr == (
        f"credrot: error: {config}: tools.mytool.args: expected a list of strings\n"
    )
    assert result.stdout == ""
    assert not (tmp_path / "pool").exists()


def test_account_qwen_and_doctor_report_a_broken_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(BROKEN, encoding="utf-8")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    legacy = CliRunner().invoke(cli.account_qwen, ["--list"], catch_exceptions=False)
    assert legacy.exit_code == 1
    assert legacy.stderr.startswith(f"credrot: error: {config}: tools.mytool.args: expected")
    doctor = invoke(["doctor", "--skip-tool"])
    assert doctor.exit_code == 1
    assert f"  error  {config}: tools.mytool.args: expected a list of strings" in doctor.stdout
    assert "fix: correct that key" in doctor.stdout
    assert "no problems found" not in doctor.stdout
    as_json = json.loads(invoke(["doctor", "--skip-tool", "--json"]).stdout)
    assert as_json["ok"] is False
    assert as_json["findings"][0]["check"] == "config"


def test_a_named_config_file_that_is_missing_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nonexistent.yaml"
    monkeypatch.setenv("CREDROT_CONFIG", str(missing))
    result = invoke(["stats"])
    assert result.exit_code == 1
    assert result.stderr == f"credrot: error: {missing}: no such config file\n"
    doctor = invoke(["doctor", "--skip-tool"])
    assert f"error  {missing}: no such config file" in doctor.stdout
    assert "fix: create it, or unset CREDROT_CONFIG" in doctor.stdout


def test_xdg_config_home_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "credrot").mkdir(parents=True)
    (xdg / "credrot" / "config.yaml").write_text(
        "tools:\n  mytool:\n    credential: auth.json\n", encoding="utf-8"
    )
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    result = invoke(["--tool", "mytool", "--home", str(tmp_path / "pool"), "accounts", "list"])
    assert result.exit_code == 0, result.output
    assert f"no mytool accounts in {tmp_path / 'pool'}" in result.stdout
    doctor = invoke(["--tool", "mytool", "--home", str(tmp_path / "pool"), "doctor"])
    assert f"ok     {xdg / 'credrot' / 'config.yaml'} describes mytool" in doctor.stdout
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # the spec: absolute only
    result = invoke(["--tool", "mytool", "accounts", "list"])
    assert result.exit_code == 2 and "unknown tool 'mytool'" in result.stderr


def test_a_broken_notify_section_is_a_warning_and_calls_still_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("notify: {webhook: nowhere}\n", encoding="utf-8")
    monkeypatch.setenv("CREDROT_CONFIG", str(config))
    result = invoke(["--home", str(tmp_path / "pool"), "accounts", "list"])
    assert result.exit_code == 0
    assert result.stderr == (
        f"credrot: warning: {config}: notify.webhook: expected an http:// or https:// URL\n"
    )


# --------------------------------------------------------------------- doctor
def _as_other_user() -> list[str]:
    """A prefix that makes permissions bite: root ignores them, except in a user
    namespace of its own (there it is only the files' owner, without its privileges)."""
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("running as root and unshare(1) is not installed")
    probe = subprocess.run([unshare, "--user", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"user namespaces are not available: {probe.stderr.decode().strip()}")
    return [unshare, "--user"]


@pytest.mark.parametrize("what", ["home", "state"])
def test_doctor_on_an_unreadable_home_gives_findings_not_a_bare_error(
    make_pool: Callable[..., AccountManager], what: str
) -> None:
    manager = make_pool(2)
    manager.list_accounts()
    manager.switch_to(2)  # state.yaml exists
    target = manager.home if what == "home" else manager.state_path
    exe = Path(sys.executable).parent / "credrot"
    target.chmod(0)
    try:
        proc = subprocess.run(
            [*_as_other_user(), str(exe), "--home", str(manager.home), "doctor", "--skip-tool"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        target.chmod(0o700 if what == "home" else 0o600)
    assert proc.returncode == 1
    assert "credrot: error" not in proc.stderr and "Traceback" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"credrot doctor: qwen in {manager.home}"
    cannot = f"{target} cannot be read"
    assert any(line.startswith(f"  error  {cannot}") for line in lines), proc.stdout
    assert any(line.strip().startswith("fix: run as") for line in lines), proc.stdout
    assert lines[-1] == "1 problem"
    assert CANARY not in proc.stdout + proc.stderr


def test_doctor_says_a_corrupt_state_was_rebuilt(make_pool: Callable[..., AccountManager]) -> None:
    manager = make_pool(2)
    manager.state_path.write_text("{{{{ not yaml")
    assert invoke(["--home", str(manager.home), "accounts", "list"]).exit_code == 0  # rebuilt
    result = invoke(["--home", str(manager.home), "doctor", "--skip-tool"])
    assert "no problems found" not in result.stdout
    assert "warn   state.yaml was corrupt and replaced (1 time, last kept as" in result.stdout
    assert "by its last flushed save" in result.stdout
    assert "fix: find what wrote it" in result.stdout
    assert "rm " in result.stdout and "state.yaml.corrupt-*" in result.stdout


def test_doctor_warns_when_no_account_is_usable_now(
    make_pool: Callable[..., AccountManager],
) -> None:
    manager = make_pool(2)
    until = datetime.now(timezone.utc) + timedelta(hours=2)
    for index in (1, 2):
        manager.mark(index, "exhausted", until=until)
    result = invoke(["--home", str(manager.home), "doctor", "--skip-tool"])
    assert (
        "warn   2 accounts, 0 usable now: all 2 qwen accounts exhausted (first reset "
        f"{until.strftime('%Y-%m-%d %H:%M UTC')})"
    ) in result.stdout
    assert f"fix: wait until {until.strftime('%H:%M UTC')}, or add an account" in result.stdout
    assert "ok     2 accounts" not in result.stdout
    assert "no problems found" not in result.stdout


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_doctor_reports_and_fix_clears_stale_temp_files_and_dead_call_homes(
    make_pool: Callable[..., AccountManager],
) -> None:
    manager = make_pool(2)
    pid = _dead_pid()
    stale_state = manager.home / f".state.yaml.{pid}.0123abcd.tmp"
    stale_state.write_text("{}")
    stale_cred = manager.accounts_dir / f".oauth_creds_1.json.{pid}.89abcdef.tmp"
    stale_cred.write_bytes(manager.slot_path(1).read_bytes())
    call_home = manager.home / ".credrot-run" / f"{pid}-1-x"
    call_home.mkdir(parents=True)
    home = ["--home", str(manager.home)]
    result = invoke([*home, "doctor", "--skip-tool"])
    assert result.exit_code == 0  # warnings only
    assert "warn   2 unfinished temporary files left by processes that died" in result.stdout
    assert "1 private call homes in .credrot-run/ were left by processes that died" in result.stdout
    assert "no problems found" not in result.stdout
    fixed = invoke([*home, "doctor", "--skip-tool", "--fix"])
    assert "  fixed  removed .state.yaml." in fixed.stdout
    assert "  fixed  unfinished write .oauth_creds_1.json." in fixed.stdout
    assert "removed 1 private call homes left by dead processes" in fixed.stdout
    assert fixed.stdout.rstrip().endswith("no problems found")
    assert not stale_state.exists() and not stale_cred.exists() and not call_home.exists()
    kept = list((manager.home / "backups").iterdir())
    assert [p.read_bytes() for p in kept] == [manager.slot_path(1).read_bytes()]


# ------------------------------------------------ options after the subcommand
def _leaf_commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.append((*path, name))
            found.extend(_leaf_commands(command, (*path, name)))
        else:
            found.append((*path, name))
    return found


def test_tool_and_home_after_the_subcommand_mean_the_same_and_the_later_wins(
    make_pool: Callable[..., AccountManager],
) -> None:
    two = make_pool(2, name="two").home
    three = make_pool(3, name="three").home

    def listed(*args: str) -> int:
        result = invoke(list(args))
        assert result.exit_code == 0, result.output
        return len(json.loads(result.stdout)["accounts"])

    assert listed("accounts", "list", "--home", str(two), "--json") == 2
    assert listed("--home", str(three), "accounts", "list", "--home", str(two), "--json") == 2
    assert listed("--home", str(two), "accounts", "--home", str(three), "list", "--json") == 3
    assert listed("--home", str(three), "accounts", "list", "--json") == 3
    stats = invoke(["stats", "--json", "--home", str(two)])
    assert json.loads(stats.stdout)["total_accounts"] == 2
    doctor = invoke(["doctor", "--skip-tool", "--json", "--home", str(three)])
    assert json.loads(doctor.stdout)["home"] == str(three)
    top = invoke(["top", "--once", "--home", str(two)])
    assert str(two) in top.stdout
    claude = invoke(["accounts", "list", "--json", "--tool", "claude", "--home", str(two)])
    assert json.loads(claude.stdout)["tool"] == "claude"
    # No subcommand answers "No such option" for either of them.
    for path in _leaf_commands(cli.cli):
        helped = invoke([*path, "--tool", "qwen", "--home", str(two), "--help"])
        assert helped.exit_code == 0, (path, helped.output)
        assert "--home DIR" in helped.stdout, path


# ------------------------------------------------------ --json on every change
def test_every_command_that_changes_the_pool_says_what_it_did_as_json(sim: SimPool) -> None:
    for name in ("a", "b", "c"):
        sim.add(name, quota=1)
    home = ["--home", str(sim.home)]

    def as_json(*args: str, code: int = 0) -> dict[str, object]:
        result = invoke([*args, "--json", *home] if "--" not in args else list(args))
        assert result.exit_code == code, result.output
        document = json.loads(result.stdout)
        assert isinstance(document, dict)
        assert document["tool"] == "qwen" and document["home"] == str(sim.home)
        return document

    answered = as_json("run", "--json", *home, "--", "-p", "hi")
    assert answered["ok"] is True and answered["account"] == 1 and answered["exit_code"] == 0
    assert answered["output"] == "Simulated qwen answer from a (call 1)."
    assert answered["outcome"] == "ok" and answered["accounts_tried"] == [1]

    rotated = as_json("run", "--json", *home, "--", "-p", "again")
    assert rotated["ok"] is True and rotated["account"] == 2
    assert rotated["accounts_tried"] == [1, 2] and rotated["attempts"] == 2

    moved = as_json("accounts", "next")
    assert moved == {**moved, "ok": True, "previous": 2, "active": 3}
    switched = as_json("accounts", "switch", "1")
    assert switched == {**switched, "ok": True, "active": 1, "previous": 3, "usable": False}
    reset = as_json("accounts", "reset", "1")
    assert reset["reset"] == [1]
    source = sim.root / "third.json"
    source.write_bytes(sim.manager.slot_path(3).read_bytes())
    removed = as_json("accounts", "remove", "3")
    assert removed["removed"] == 3 and Path(str(removed["moved_to"])).is_file()
    added = as_json("accounts", "add", "--from", str(source))
    assert added["added"] == [
        {"index": 3, "path": str(sim.manager.slot_path(3)), "from": str(source)}
    ]
    refused = as_json("accounts", "add", "--from", str(source), code=1)
    assert refused["ok"] is False and refused["added"] == []

    for _ in range(3):  # spend what is left
        invoke(["run", *home, "--", "-p", "spend"])
    spent = as_json("run", "--json", *home, "--", "-p", "none left", code=3)
    assert spent["ok"] is False and spent["pool_exhausted"] is True
    assert str(spent["error"]).startswith("no usable account")
    assert spent["first_reset"] is not None
    stuck = as_json("accounts", "next", code=3)
    assert stuck["ok"] is False and str(stuck["error"]).startswith("no other usable account")


# ------------------------------------------------ completion and --version
@pytest.mark.parametrize(("shell", "marker"), [("bash", "complete -o"), ("zsh", "compdef")])
def test_the_documented_completion_line_prints_a_completion_script(shell: str, marker: str) -> None:
    proc = _credrot(env={**os.environ, "_CREDROT_COMPLETE": f"{shell}_source"})
    assert proc.returncode == 0, proc.stderr
    assert "_credrot_completion" in proc.stdout and marker in proc.stdout
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"_CREDROT_COMPLETE={shell}_source credrot" in readme


def test_qwen_review_prints_its_version() -> None:
    from credrot import __version__

    exe = Path(sys.executable).parent / "qwen-review"
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"qwen-review (credrot) {__version__}"


# ------------------------------------------------------------------ packaging
@pytest.mark.slow
def test_the_wheel_carries_a_license_expression_and_the_project_urls(tmp_path: Path) -> None:
    import zipfile
    from email.parser import HeaderParser

    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        path = root / name.decode()
        if path.is_file():
            (source / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, source / name.decode())
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("credrot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        headers = HeaderParser().parsestr(archive.read(metadata).decode("utf-8"))
        licence = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    assert headers["License-Expression"] == "MIT"
    assert headers.get_all("License-File") == ["LICENSE"] and licence
    assert headers["License"] is None
    assert not [c for c in headers.get_all("Classifier") or [] if c.startswith("License ::")]
    urls = dict(u.split(", ", 1) for u in headers.get_all("Project-URL") or [])
    assert sorted(urls) == ["Changelog", "Homepage", "Issues", "Source"]
    # The README's pre-commit snippet names the same repository.
    readme = (root / "README.md").read_text()
    assert f"repo: {urls['Source']}" in readme
    assert all(url.startswith(urls["Source"]) for url in urls.values())


# ----------------------------------------------------------------- vocabulary
def test_the_demo_and_stats_count_requests_tool_runs_and_successes_alike(
    tmp_path: Path,
) -> None:
    import re

    result = invoke(["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    told = [line for line in out.splitlines() if re.match(r"request \d+: ", line)]
    runs_told = sum(
        int(m.group(1)) for line in told if (m := re.search(r"\((\d+) tool runs?\)", line))
    )
    answered_told = sum(" answered by #" in line for line in told)
    summary = re.search(r"^(\d+) requests: (\d+) answered, (\d+) not; (\d+) tool runs", out, re.M)
    assert summary is not None, out
    requests, answered, _, runs = map(int, summary.groups())
    assert (requests, answered, runs) == (len(told), answered_told, runs_told)
    stats = re.search(r"^requests (\d+), tool runs (\d+), successes (\d+),", out, re.M)
    assert stats is not None, out
    assert tuple(map(int, stats.groups())) == (requests, runs, answered)
    assert requests > answered and runs > answered  # rotation and a spent pool were shown
    assert "calls" not in out.replace("(call ", "")  # the simulator's answers say "call N"


def test_prometheus_help_texts_speak_of_requests_and_tool_runs(sim: SimPool) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    sim.add("a", quota=1)
    sim.add("b")
    for _ in range(2):
        assert invoke(["--home", str(sim.home), "run", "--", "-p", "hi"]).exit_code == 0
    text = invoke(["stats", "--prometheus", "--home", str(sim.home)]).stdout
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["credrot_requests"].samples[0].value == 2
    runs = {s.labels["account"]: s.value for s in families["credrot_calls"].samples}
    assert runs == {"1": 2, "2": 1}
    for family in families.values():
        assert "call" not in family.documentation.lower(), family.documentation
    assert "Tool runs" in families["credrot_calls"].documentation


# ------------------------------------------------- account-qwen --list, fast
def test_account_qwen_list_says_the_same_with_or_without_click(
    make_pool: Callable[..., AccountManager], tmp_path: Path
) -> None:
    manager = make_pool(3)
    manager.switch_to(2)
    exe = str(Path(sys.executable).parent / "account-qwen")
    env = {k: v for k, v in os.environ.items() if k != "CREDROT_CONFIG"}
    config = tmp_path / "config.yaml"
    config.write_text("tools: {}\n", encoding="utf-8")
    with_config = {**env, "CREDROT_CONFIG": str(config)}  # the click command checks it

    def run(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([exe, *args], env=environ, capture_output=True, text=True)
        assert CANARY not in proc.stdout + proc.stderr
        return proc

    for args in (
        ["--list"],
        ["--list", "--json"],
        ["--json", "--list", f"--home={manager.home}"],
        ["--home", str(manager.home), "--list"],
    ):
        if not any(a.startswith("--home") for a in args):
            args = [*args, "--home", str(manager.home)]
        fast, full = run(args, env), run(args, with_config)
        assert fast.returncode == full.returncode == 0, (fast.stderr, full.stderr)
        assert fast.stdout == full.stdout and fast.stderr == full.stderr == ""
    assert "(3, 3 usable; * = active)" in fast.stdout
    empty = run(["--list", "--home", str(tmp_path / "nothing")], env)
    assert empty.stdout.endswith("run 'account-qwen --setup' or '--add'\n")
    config.write_text("tools:\n  x:\n    args: {a: 1}\n", encoding="utf-8")
    broken = run(["--list", "--home", str(manager.home)], with_config)
    assert broken.returncode == 1 and broken.stdout == ""
    assert broken.stderr.startswith("credrot: error: ") and len(broken.stderr.splitlines()) == 1
    both = run(["--list", "--stats"], env)
    assert both.returncode == 2 and "give exactly one of" in both.stderr


def test_account_qwen_list_loads_neither_click_nor_logging_nor_yaml(
    make_pool: Callable[..., AccountManager],
) -> None:
    manager = make_pool(2)
    probe = (
        "import sys\n"
        "from credrot.cli import account_qwen_main\n"
        f"code = account_qwen_main(['--list', '--home', {str(manager.home)!r}])\n"
        "heavy = sorted(m for m in ('click', 'logging', 'yaml', 'pluggy') if m in sys.modules)\n"
        "print('loaded:', heavy, 'exit:', code)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "(2, 2 usable; * = active)" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "loaded: [] exit: 0"
