"""credrot_hooks.review: secrets, diff splitting and chunking, prompts, verdicts, fallback."""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from credrot.manager import PoolStatus
from credrot_hooks import review

NOW = datetime(2026, 11, 28, 15, 30, tzinfo=timezone.utc)
MIDNIGHT = datetime(2026, 11, 29, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.local",
        ".env.example",
        "deploy/prod.env",
        "app/.ENV",
        ".envrc",
        "certs/server.pem",
        "tls.key",
        "id_rsa",
        "keys/id_ed25519.pub",
        "oauth_creds.json",
        "backup/oauth_creds_3.json",
        ".credentials.json",
        "codex/auth.json",
        "home/.ssh/config",
        ".aws/credentials",
        "x/.docker/config.json",
        ".netrc",
        ".git-credentials",
        "infra/terraform.tfstate",
        "client_secret_123.apps.json",
        "store.p12",
    ],
)
def test_secret_names(path: str) -> None:
    assert review.secret_name(path)


@pytest.mark.parametrize(
    "path",
    [
        "environment.py",
        "src/env.py",
        "keys.py",
        "src/auth.py",
        "auth.json.md",
        "key.txt",
        "README.md",
        "docs/ssh.md",
        "monkey.json",
        "credrot/review.py",
        "tests/oauth_test.py",
    ],
)
def test_ordinary_names(path: str) -> None:
    assert not review.secret_name(path)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("+-----BEGIN RSA PRIVATE KEY-----\n+MIIE\n", "a private key"),
        ("+-----BEGIN OPENSSH PRIVATE KEY-----\n", "a private key"),
        ("+-----BEGIN PRIVATE KEY-----\n", "a private key"),
        ('+aws_key = "AKIAABCDEFGHIJKLMNOP"\n', "an AWS access key id"),
        ("+token = ghp_" + "a" * 36 + "\n", "a GitHub token"),
        ('+  "refresh_token": "abcdefghijklmnop1234"\n', "an OAuth token"),
        ("+OPENAI=sk-" + "x" * 40 + "\n", "an API secret key"),
    ],
)
def test_secret_content(text: str, kind: str) -> None:
    assert review.secret_content(text) == kind


def test_ordinary_content_is_not_secret() -> None:
    text = (
        "+def refresh_token(self) -> str:\n"
        "+    key = os.environ['API_KEY']\n"
        '+    return self.data["access_token"]\n'
        "+# -----BEGIN PUBLIC KEY-----\n"
    )
    assert review.secret_content(text) is None


# ------------------------------------------------------------------ diffs
def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, check=True, text=True
    )
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    return repo


def test_split_diff_from_real_git(repo: Path) -> None:
    names = ["plain.py", "with space.txt", 'quote"d.txt', "ünïcode.md", "tab\there.txt"]
    for name in names:
        (repo / name).write_text(f"content of {name}\n")
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    _git(repo, "add", "-A")
    paths = [*names, "logo.png"]
    out = _git(
        repo, "-c", "core.quotePath=false", "diff", "--cached", "--no-color",
        "--src-prefix=a/", "--dst-prefix=b/", "--", *paths,
    )  # fmt: skip
    diffs = review.split_diff(out, paths)
    by_path = {d.path: d for d in diffs}
    assert set(by_path) == set(paths)
    assert by_path["logo.png"].binary
    for name in names:
        assert not by_path[name].binary
        assert f"+content of {name}" in by_path[name].text
    assert sum(len(d.text) for d in diffs) == len(out)


def test_split_diff_empty() -> None:
    assert review.split_diff("", ["a.py"]) == []


def _file_diff(path: str, hunks: int, lines_per_hunk: int = 5, width: int = 20) -> review.FileDiff:
    text = f"diff --git a/{path} b/{path}\nindex 1..2 100644\n--- a/{path}\n+++ b/{path}\n"
    for h in range(hunks):
        text += f"@@ -{h * 100},0 +{h * 100},{lines_per_hunk} @@\n"
        text += "".join(f"+{'x' * width} {h}.{i}\n" for i in range(lines_per_hunk))
    return review.FileDiff(path, text)


def test_small_diff_is_one_chunk() -> None:
    diffs = [_file_diff("a.py", 1), _file_diff("b.py", 2)]
    plan = review.plan_chunks(diffs, 100_000, 4)
    assert len(plan.chunks) == 1
    assert not plan.split and not plan.partial and not plan.left_out
    assert plan.chunks[0].files == ["a.py", "b.py"]
    assert plan.chunks[0].text == diffs[0].text + diffs[1].text


def test_files_are_packed_into_chunks_under_the_cap() -> None:
    diffs = [_file_diff(f"f{i}.py", 1) for i in range(10)]
    cap = diffs[0].size * 3 + 10
    plan = review.plan_chunks(diffs, cap, 10)
    assert plan.split
    assert [len(c.pieces) for c in plan.chunks] == [3, 3, 3, 1]
    assert all(c.size <= cap for c in plan.chunks)
    assert not plan.partial and not plan.left_out


def test_a_big_file_is_split_at_hunks() -> None:
    big = _file_diff("big.py", 6)
    cap = big.size // 2
    plan = review.plan_chunks([big], cap, 10)
    assert len(plan.chunks) >= 2
    assert all(c.size <= cap for c in plan.chunks)
    for chunk in plan.chunks:  # every part is a valid diff: the file header comes along
        assert chunk.text.startswith("diff --git a/big.py b/big.py\n")
    body = "".join(line for c in plan.chunks for line in c.text.splitlines(True) if line[0] == "+")
    assert body.count("+x") == 30  # every added line reviewed once
    assert not plan.partial and not plan.left_out


def test_a_hunk_over_the_cap_is_split_at_lines() -> None:
    big = _file_diff("huge.py", 1, lines_per_hunk=200)
    plan = review.plan_chunks([big], 2_000, 10)
    assert len(plan.chunks) == 3
    assert all(c.size <= 2_000 for c in plan.chunks)
    assert "hunk continues in the next part" in plan.chunks[0].text
    added = [line for c in plan.chunks for line in c.text.splitlines() if line.startswith("+x")]
    assert len(added) == 200
    assert not plan.partial and not plan.left_out


def test_a_line_over_the_cap_is_cut_and_reported_partial() -> None:
    minified = review.FileDiff(
        "app.min.js", "diff --git a/app.min.js b/app.min.js\n@@ -0,0 +1 @@\n+" + "y" * 50_000 + "\n"
    )
    plan = review.plan_chunks([minified], 2_000, 4)
    [chunk] = plan.chunks
    assert chunk.size <= 2_000
    assert chunk.text.startswith("diff --git a/app.min.js b/app.min.js\n@@ -0,0 +1 @@\n+yyy")
    assert chunk.text.endswith("the line above is cut at the size cap]\n")
    assert plan.partial == ["app.min.js"]


def test_what_does_not_fit_is_listed_by_name() -> None:
    diffs = [_file_diff(f"f{i}.py", 1) for i in range(5)]
    plan = review.plan_chunks(diffs, diffs[0].size + 1, 2)
    assert [c.files for c in plan.chunks] == [["f0.py"], ["f1.py"]]
    assert plan.left_out == ["f2.py", "f3.py", "f4.py"]


def test_a_split_file_cut_short_by_max_chunks_is_partial() -> None:
    big = _file_diff("big.py", 8)
    plan = review.plan_chunks([big], big.size // 4, 2)
    assert len(plan.chunks) == 2
    assert plan.partial == ["big.py"] and plan.left_out == []


# ---------------------------------------------------------------- prompts
def test_render_prompt_fills_once() -> None:
    template = "Files: {files}\n{notes}Diff:\n{diff}\nVERDICT: pass|minor|major|critical\n"
    prompt = review.render_prompt(template, "+evil {files} {notes}\n", ["a.py", "b.py"], "N\n")
    assert prompt.startswith("Files: a.py, b.py\nN\nDiff:\n+evil {files} {notes}\n")


def test_render_prompt_without_placeholders() -> None:
    prompt = review.render_prompt("Check for SQL injection.", "+x = 1\n", ["a.py"])
    assert prompt.index("Check for SQL injection.") < prompt.index("VERDICT:")
    assert prompt.index("VERDICT:") < prompt.index("+x = 1")


# --------------------------------------------------------------- verdicts
@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("All good.\nVERDICT: pass", "pass"),
        ("- [major] a.py:3: bug\n\nVERDICT: major\n\n", "major"),
        ("**VERDICT: CRITICAL**", "critical"),
        ("**VERDICT:** minor.", "minor"),
        ("### Verdict - major", "major"),
        ("`VERDICT: minor`", "minor"),
        ("VERDICT: major\nVERDICT: pass", "pass"),
        ("VERDICT: critical\nthanks\nmore\nand more", None),
        ("VERDICT: pass|minor|major|critical", None),
        ("Looks fine to me.", None),
        ("", None),
        ("verdict: probably fine", None),
    ],
)
def test_parse_verdict(answer: str, verdict: str | None) -> None:
    assert review.parse_verdict(answer) == verdict


def test_blocks_only_at_or_above_the_level() -> None:
    assert review.blocks("major", "major")
    assert review.blocks("critical", "minor")
    assert not review.blocks("minor", "major")
    assert not review.blocks("pass", "minor")
    assert not review.blocks(None, "minor")
    assert not review.blocks("critical", None)
    assert review.worst(["minor", None, "major", "pass"]) == "major"
    assert review.worst([None]) is None


def test_clean_output_strips_terminal_controls() -> None:
    text = "\x1b[31mred\x1b[0m\r\nline\x07 two\x1b]0;title\x07\tTab"
    assert review.clean_output(text) == "red\nline two\tTab"


# --------------------------------------------------------------- fallback
def _status(n: int, kinds: list[str], until: datetime | None = MIDNIGHT) -> PoolStatus:
    unusable = {i + 1: (k, until if k == "exhausted" else None, "") for i, k in enumerate(kinds)}
    resets = [u for (_k, u, _r) in unusable.values() if u is not None]
    return PoolStatus(n, [], unusable, min(resets) if resets else None)


def test_all_exhausted_reason() -> None:
    status = _status(5, ["exhausted"] * 5)
    assert (
        review.unavailable_reason("qwen", status, "no usable account: ...", NOW)
        == "all 5 qwen accounts exhausted until 00:00 UTC"
    )
    later = datetime(2026, 12, 3, 0, 0, tzinfo=timezone.utc)
    assert review.unavailable_reason("qwen", _status(2, ["exhausted"] * 2, later), None, NOW) == (
        "all 2 qwen accounts exhausted until 2026-12-03 00:00 UTC"
    )


def test_mixed_and_single_reasons() -> None:
    mixed = _status(3, ["exhausted", "needs_login", "disabled"])
    assert review.unavailable_reason("qwen", mixed, None, NOW) == (
        "all 3 qwen accounts are unusable (1 disabled, 1 exhausted, 1 need login); "
        "first reset 00:00 UTC"
    )
    assert review.unavailable_reason("qwen", _status(1, ["needs_login"]), None, NOW) == (
        "the only qwen account needs login"
    )
    assert review.unavailable_reason("qwen", _status(1, ["exhausted"]), None, NOW) == (
        "the only qwen account is exhausted until 00:00 UTC"
    )
    empty = PoolStatus(0, [], {}, None)
    assert review.unavailable_reason("qwen", empty, None).startswith(
        "no accounts configured for qwen"
    )


def test_error_reasons() -> None:
    usable = PoolStatus(2, [1, 2], {}, None)
    assert review.unavailable_reason("qwen", usable, "timed out after 5 s") == (
        "qwen gave no answer (timed out after 5 s)"
    )
    missing = "qwen is not installed or not on PATH"
    assert review.unavailable_reason("qwen", None, missing) == missing
    assert review.unavailable_reason("qwen", usable, None) == "qwen gave no answer"
