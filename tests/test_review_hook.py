"""The ``qwen-review`` hook's ``main(argv)`` called directly: real git, the simulator on PATH."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from creds import CANARY
from simpool import SimPool

from credrot_hooks.qwen_review import main

SECRET_LINE = f"API_TOKEN={CANARY}-in-dotenv"


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, env=env
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "Dev")
    (repo / "base.py").write_text("print('base')\n")
    git(repo, "add", "base.py")
    git(repo, "commit", "-qm", "base")
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
def sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    pool = SimPool(tmp_path / "sim", monkeypatch)
    monkeypatch.setenv("QWEN_HOME", str(pool.home))
    return pool


def stage(repo: Path, files: dict[str, str | bytes]) -> list[str]:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    git(repo, "add", "--", *files)
    return list(files)


def prompts(sim: SimPool) -> list[str]:
    calls = sim.backend.calls()
    return [sim.backend.prompt(c["n"]) for c in calls if c["outcome"] != "usage_error"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert CANARY not in out + err
    return code, out + err


def test_review_is_printed_with_a_verdict(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add(answer="- [minor] app.py:1: print in library code; use logging\nVERDICT: minor")
    files = stage(repo, {"app.py": "def f():\n    print('hello')\n"})
    code, out = run(files, capsys)
    assert code == 0
    assert "- [minor] app.py:1: print in library code" in out
    assert out.rstrip().splitlines()[-1] == "qwen-review: verdict: minor"
    [prompt] = prompts(sim)
    assert "+    print('hello')" in prompt
    assert "VERDICT: pass|minor|major|critical" in prompt
    call = sim.backend.calls()[0]
    assert "--approval-mode" in call["argv"] and "plan" in call["argv"]
    assert not any("print('hello')" in arg for arg in call["argv"])  # stdin, never argv


def test_secret_files_are_never_sent(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add(answer="Fine.\nVERDICT: pass")
    key = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{CANARY}-key\n-----END OPENSSH PRIVATE KEY-----\n"
    files = stage(
        repo,
        {
            ".env": SECRET_LINE + "\n",
            "config/.env.production": SECRET_LINE + "\n",
            "deploy/id_rsa": key,
            "notes/backup.txt": key,  # an innocent name, but a private key inside
            "oauth_creds_2.json": f'{{"access_token": "{CANARY}-x"}}\n',
            "app.py": "x = 1\n",
        },
    )
    code, out = run(files, capsys)
    assert code == 0
    withheld = next(line for line in out.splitlines() if "withheld" in line)
    for name in (".env", "config/.env.production", "deploy/id_rsa", "oauth_creds_2.json"):
        assert name in withheld
    assert "notes/backup.txt (holds a private key)" in withheld
    [prompt] = prompts(sim)
    assert "+x = 1" in prompt
    assert CANARY not in prompt
    assert "backup.txt" not in prompt and ".env" not in prompt


def test_pathspecs_are_literal(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file named ``*`` must not pull every staged file (and so ``.env``) into the diff."""
    sim.add(answer="VERDICT: pass")
    stage(repo, {".env": SECRET_LINE + "\n", "*": "star\n"})
    code, _ = run(["*", ".env"], capsys)
    assert code == 0
    [prompt] = prompts(sim)
    assert "+star" in prompt and CANARY not in prompt


def test_all_staged_files_when_none_given(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add(answer="VERDICT: pass")
    stage(repo, {"a.py": "a = 1\n", ".env": SECRET_LINE + "\n"})
    code, out = run([], capsys)
    assert code == 0 and "withheld, never sent (likely secrets): .env" in out
    [prompt] = prompts(sim)
    assert "+a = 1" in prompt and CANARY not in prompt


def test_binary_files_are_skipped(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add(answer="VERDICT: pass")
    files = stage(repo, {"logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", "a.py": "a = 1\n"})
    code, out = run(files, capsys)
    assert code == 0 and "skipped binary files: logo.png" in out
    [prompt] = prompts(sim)
    assert "logo.png" not in prompt


def test_nothing_to_review_makes_no_call(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add()
    files = stage(repo, {".env": SECRET_LINE + "\n"})
    code, out = run([*files, "base.py"], capsys)  # base.py is committed: nothing staged
    assert code == 0 and "nothing to review" in out
    assert sim.backend.calls() == []


def test_git_index_file_is_honoured(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``git commit -a`` runs hooks against a temporary index named by GIT_INDEX_FILE."""
    sim.add(answer="VERDICT: pass")
    stage(repo, {"a.py": "in the real index\n"})
    other = repo / ".git" / "other-index"
    env = dict(os.environ, GIT_INDEX_FILE=str(other))
    git(repo, "read-tree", "HEAD", env=env)
    (repo / "a.py").write_text("in the other index\n")
    git(repo, "add", "a.py", env=env)
    monkeypatch.setenv("GIT_INDEX_FILE", str(other))
    code, _ = run(["a.py"], capsys)
    assert code == 0
    [prompt] = prompts(sim)
    assert "+in the other index" in prompt and "in the real index" not in prompt


@pytest.mark.parametrize(
    ("answer", "fail_on", "code"),
    [
        ("Bug.\nVERDICT: major", "major", 1),
        ("Hole.\nVERDICT: critical", "minor", 1),
        ("Nit.\nVERDICT: minor", "major", 0),
        ("Fine.\nVERDICT: pass", "minor", 0),
        ("I could not decide.", "minor", 0),
        ("Bug.\nVERDICT: critical", None, 0),
    ],
)
def test_fail_on(
    repo: Path,
    sim: SimPool,
    capsys: pytest.CaptureFixture[str],
    answer: str,
    fail_on: str | None,
    code: int,
) -> None:
    sim.add(answer=answer)
    files = stage(repo, {"a.py": "a = 1\n"})
    argv = [*files] if fail_on is None else ["--fail-on", fail_on, *files]
    got, out = run(argv, capsys)
    assert got == code
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("qwen-review: verdict: ")
    if code:
        assert "commit blocked" in last
    elif "VERDICT" not in answer:
        assert last == (
            "qwen-review: verdict: none (the review gave no VERDICT line); commit not blocked"
        )


def test_all_accounts_spent_falls_back(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(5):
        sim.add(quota=0)
    files = stage(repo, {"a.py": "a = 1\n"})
    code, out = run(["--fail-on", "minor", *files], capsys)
    assert code == 0
    assert out.strip() == (
        "qwen-review: skipped \N{EM DASH} all 5 qwen accounts exhausted until 00:00 UTC; "
        "commit not blocked"
    )
    assert len(sim.backend.calls()) == 5
    # Known-spent accounts cost nothing the next time.
    code, out = run(files, capsys)
    assert code == 0 and "all 5 qwen accounts exhausted" in out
    assert len(sim.backend.calls()) == 5


def test_rotates_past_a_spent_account(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add(quota=0)
    sim.add(answer="From the second account.\nVERDICT: pass")
    files = stage(repo, {"a.py": "a = 1\n"})
    code, out = run(files, capsys)
    assert code == 0 and "From the second account." in out and "account #2" in out


def test_tool_missing_falls_back(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.add()
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    files = stage(repo, {"a.py": "a = 1\n"})
    code, out = run(["--fail-on", "minor", *files], capsys)
    assert code == 0
    assert out.startswith("qwen-review: skipped \N{EM DASH} qwen is not installed or not on PATH")
    assert out.rstrip().endswith("; commit not blocked")


def test_network_error_falls_back(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add(mode="connection_error")
    files = stage(repo, {"a.py": "a = 1\n"})
    code, out = run(["--fail-on", "minor", *files], capsys)
    assert code == 0
    assert out.startswith("qwen-review: skipped \N{EM DASH} qwen failed (exit code 1): ")
    assert "Connection error" in out and out.rstrip().endswith("; commit not blocked")


def test_no_pool_falls_back(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    files = stage(repo, {"a.py": "a = 1\n"})
    code, out = run(["--home", str(tmp_path / "nowhere"), *files], capsys)
    nowhere = tmp_path / "nowhere"
    assert code == 0 and out.startswith(
        f"qwen-review: skipped \N{EM DASH} no accounts configured for qwen "
        f"({nowhere} does not exist"
    )
    assert "commit not blocked" in out and "exhausted" not in out
    code, out = run(files, capsys)  # the home exists but holds no account
    assert code == 0 and "no accounts configured for qwen (add one" in out
    assert "exhausted" not in out
    (sim.home / "accounts").mkdir(exist_ok=True)
    (sim.home / "accounts" / "oauth_creds_1.json").write_text('{"not": "a credential"}')
    code, out = run(files, capsys)  # accounts, but none valid
    assert code == 0 and "no accounts configured for qwen: none of the 1 is a valid" in out
    assert "exhausted" not in out


def test_timeout_falls_back_within_the_budget(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add(mode="hang")
    files = stage(repo, {"a.py": "a = 1\n"})
    started = time.monotonic()
    code, out = run(["--timeout", "1", "--budget", "10", "--fail-on", "minor", *files], capsys)
    assert time.monotonic() - started < 8
    assert code == 0
    assert "qwen-review: skipped \N{EM DASH} qwen gave no answer (timed out after 1 s)" in out


def test_overall_budget_bounds_a_slow_pool(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add(latency=30)
    files = stage(repo, {"a.py": "a = 1\n"})
    started = time.monotonic()
    code, out = run(["--budget", "3", *files], capsys)
    assert time.monotonic() - started < 6
    assert code == 0 and "skipped" in out and "commit not blocked" in out


def test_custom_fallback_message(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add(quota=0)
    files = stage(repo, {"a.py": "a = 1\n"})
    code, out = run(["--fallback-message", "AI review unavailable ({reason})", *files], capsys)
    assert code == 0
    assert out.strip() == (
        "AI review unavailable (the only qwen account is exhausted until 00:00 UTC)"
    )


def test_large_diff_is_reviewed_in_parts(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add(answer="Part reviewed.\nVERDICT: {call}")  # {call} is not a level: no verdict
    sim.backend.set("acct1", answer="Part reviewed.\nVERDICT: minor")
    body = "".join(f"line_{i} = {i}\n" for i in range(150))
    files = stage(repo, {f"m{i}.py": body for i in range(5)})
    code, out = run(["--max-diff-bytes", "4000", "--max-chunks", "3", *files], capsys)
    assert code == 0
    assert "over --max-diff-bytes 4000: reviewed in 3 parts" in out
    assert "not reviewed (over --max-diff-bytes x --max-chunks): m3.py, m4.py" in out
    assert out.count("Part reviewed.") == 3
    assert "part 1 of 3: m0.py" in out
    sent = prompts(sim)
    assert len(sent) == 3
    for i, prompt in enumerate(sent):
        assert f"part {i + 1} of 3" in prompt
        assert "m3.py" not in prompt and "m4.py" not in prompt
    assert out.rstrip().splitlines()[-1].startswith("qwen-review: verdict: minor (part 1: minor")


def test_prompt_file(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sim.add(answer="VERDICT: pass")
    template = tmp_path / "prompt.txt"
    template.write_text("Only look for SQL injection in {files}.\n---\n{diff}---\nVERDICT: level\n")
    files = stage(repo, {"db.py": "q = 'select ' + x\n"})
    code, _ = run(["--prompt-file", str(template), *files], capsys)
    assert code == 0
    [prompt] = prompts(sim)
    assert prompt.startswith("Only look for SQL injection in db.py.\n---\ndiff --git a/db.py")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--prompt-file", "/nonexistent/prompt.txt", "a.py"], "cannot read --prompt-file"),
        (["--tool", "nosuchtool", "a.py"], "unknown tool"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    repo: Path, sim: SimPool, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out = run(argv, capsys)
    assert code == 2
    assert out.strip().startswith("qwen-review: error: ") and message in out
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["--fail-on", "blocker"], ["--timeout", "-1"], ["--budget", "x"]])
def test_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "qwen-review: error:" in capsys.readouterr().err


def test_outside_a_git_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    code, out = run(["a.py"], capsys)
    assert code == 2 and "is not inside a git work tree" in out
