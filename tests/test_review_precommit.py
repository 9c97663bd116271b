"""``qwen-review`` through the real pre-commit: a real repository, real commits, the simulator.

pre-commit installs the hook the way users get it (``language: python``: a virtualenv
and ``pip install`` of this repository at a ``rev``). The repository under test is a
snapshot of the working tree committed to a temporary git repository, so uncommitted
work is what gets tested. One pre-commit cache (``PRE_COMMIT_HOME``) is shared by the
module, so the hook environment is built once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from creds import CANARY
from simpool import SimPool

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / ".pre-commit-hooks.yaml"
#: The user's pip cache, taken before the tests move HOME (it only speeds the env build).
PIP_CACHE = os.environ.get("PIP_CACHE_DIR") or str(Path.home() / ".cache" / "pip")
IDENTITY = {
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}

pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without git or pre-commit state from an outer hook."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "PRE_COMMIT")) and k != "VIRTUAL_ENV"
    }
    env.update(IDENTITY, GIT_CONFIG_NOSYSTEM="1", PIP_CACHE_DIR=PIP_CACHE, **extra)
    return env


def sh(
    *cmd: str | Path, cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def pre_commit(
    *args: str | Path, cwd: Path, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    return sh(sys.executable, "-m", "pre_commit", *args, cwd=cwd, env=env, check=check)


def snapshot(dest: Path, env: dict[str, str]) -> str:
    """Commit the working tree as git sees it (tracked and untracked, not ignored) at ``dest``."""
    listed = sh(
        "git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT, env=env
    ).stdout
    dest.mkdir()
    for name in filter(None, listed.split("\0")):
        src = ROOT / name
        if not src.is_file():
            continue  # deleted in the working tree
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    sh("git", "init", "-q", cwd=dest, env=env)
    sh("git", "add", "-A", cwd=dest, env=env)
    sh("git", "commit", "-qm", "snapshot of the working tree", cwd=dest, env=env)
    return sh("git", "rev-parse", "HEAD", cwd=dest, env=env).stdout.strip()


class HookRepo:
    """Where the hook comes from: the snapshot, its rev, and the shared pre-commit cache."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache = root / "pre-commit-home"
        self.env = clean_env(HOME=str(root / "home"))
        (root / "home").mkdir()
        self.repo = root / "credrot-snapshot"
        self.rev = snapshot(self.repo, self.env)

    def config(self, args: list[str] | None = None) -> str:
        hook: dict[str, Any] = {"id": "qwen-review"}
        if args:
            hook["args"] = args
        repo = {"repo": str(self.repo), "rev": self.rev, "hooks": [hook]}
        return json.dumps({"repos": [repo]}, indent=2) + "\n"


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> HookRepo:
    if not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of credrot")
    hooks = HookRepo(tmp_path_factory.mktemp("qwen-review-hook"))
    # Build the hook environment once for the module (virtualenv + pip install of the rev).
    warm = hooks.root / "warm"
    warm.mkdir()
    sh("git", "init", "-q", cwd=warm, env=hooks.env)
    (warm / ".pre-commit-config.yaml").write_text(hooks.config())
    pre_commit("install-hooks", cwd=warm, env=dict(hooks.env, PRE_COMMIT_HOME=str(hooks.cache)))
    return hooks


class Project:
    """A user's repository with the hook installed as a git pre-commit hook."""

    def __init__(self, path: Path, hooks: HookRepo, sim: SimPool) -> None:
        self.path = path
        self.hooks = hooks
        self.sim = sim
        path.mkdir()
        self.git("init", "-q")
        self.set_args(None)

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(
            PRE_COMMIT_HOME=str(self.hooks.cache), QWEN_HOME=str(self.sim.home), **extra
        )

    def git(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        return sh("git", *args, cwd=self.path, env=self.env(**env), check=check)

    def set_args(self, args: list[str] | None) -> None:
        (self.path / ".pre-commit-config.yaml").write_text(self.hooks.config(args))
        self.git("add", ".pre-commit-config.yaml")
        self.git("commit", "-qm", "pre-commit config", "--no-verify", "--allow-empty")
        pre_commit("install", cwd=self.path, env=self.env())

    def write(self, files: dict[str, str]) -> None:
        for name, content in files.items():
            path = self.path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)

    def commit(self, files: dict[str, str], **env: str) -> subprocess.CompletedProcess[str]:
        self.write(files)
        self.git("add", "--", *files)
        return self.git("commit", "-m", "change", check=False, **env)

    def head_count(self) -> int:
        return int(self.git("rev-list", "--count", "HEAD").stdout)

    def prompts(self) -> list[str]:
        return [self.sim.backend.prompt(c["n"]) for c in self.sim.backend.calls()]


@pytest.fixture
def project(tmp_path: Path, hook_repo: HookRepo, monkeypatch: pytest.MonkeyPatch) -> Project:
    sim = SimPool(tmp_path / "sim", monkeypatch)  # puts the simulated `qwen` first on PATH
    return Project(tmp_path / "project", hook_repo, sim)


def output(done: subprocess.CompletedProcess[str]) -> str:
    text = done.stdout + done.stderr
    assert CANARY not in text
    return text


def test_manifest_is_valid() -> None:
    done = pre_commit("validate-manifest", MANIFEST, cwd=ROOT, env=clean_env())
    assert done.returncode == 0
    [hook] = yaml.safe_load(MANIFEST.read_text())
    assert hook["id"] == "qwen-review" and hook["entry"] == "qwen-review"
    assert hook["language"] == "python"
    assert hook["require_serial"] is True and hook["verbose"] is True
    assert hook["stages"] == ["pre-commit", "manual"]


def test_review_is_printed_on_commit(project: Project) -> None:
    project.sim.add(answer="- [minor] app.py:2: shadowed name\nVERDICT: minor")
    before = project.head_count()
    done = project.commit({"app.py": "def f(list):\n    return list\n"})
    out = output(done)
    assert done.returncode == 0, out
    assert "- [minor] app.py:2: shadowed name" in out
    assert "qwen-review: verdict: minor" in out
    assert project.head_count() == before + 1
    [prompt] = project.prompts()
    assert "+def f(list):" in prompt
    # `git commit -a` reviews through a temporary index (GIT_INDEX_FILE): its content counts.
    (project.path / "app.py").write_text("def f(items):\n    return items\n")
    done = project.git("commit", "-am", "rename", check=False)
    assert done.returncode == 0, output(done)
    assert "+def f(items):" in project.prompts()[-1]


def test_all_accounts_spent_falls_back_and_commits(project: Project) -> None:
    for _ in range(5):
        project.sim.add(quota=0)
    project.set_args(["--fail-on", "minor"])
    before = project.head_count()
    done = project.commit({"app.py": "x = 1\n"})
    out = output(done)
    assert done.returncode == 0, out
    assert (
        "qwen-review: skipped \N{EM DASH} all 5 qwen accounts exhausted until 00:00 UTC; "
        "commit not blocked"
    ) in out
    assert project.head_count() == before + 1


def test_staged_env_is_never_sent(project: Project) -> None:
    project.sim.add(answer="Fine.\nVERDICT: pass")
    done = project.commit({".env": f"OPENAI_API_KEY={CANARY}-dotenv\n", "app.py": "x = 1\n"})
    out = output(done)
    assert done.returncode == 0, out
    assert "withheld, never sent (likely secrets): .env" in out
    [prompt] = project.prompts()
    assert "+x = 1" in prompt
    assert CANARY not in prompt and ".env" not in prompt


def test_large_diff_is_reviewed_in_parts(project: Project) -> None:
    project.sim.add(answer="Part looked at.\nVERDICT: pass")
    project.set_args(["--max-diff-bytes", "3000", "--max-chunks", "2"])
    body = "".join(f"value_{i} = {i}\n" for i in range(120))
    done = project.commit({f"mod{i}.py": body for i in range(4)})
    out = output(done)
    assert done.returncode == 0, out
    assert "reviewed in 2 parts" in out
    assert "not reviewed (over --max-diff-bytes x --max-chunks): mod2.py, mod3.py" in out
    assert out.count("Part looked at.") == 2
    assert len(project.prompts()) == 2


def test_fail_on_blocks_a_failing_verdict_only(project: Project) -> None:
    project.sim.add(answer="- [major] app.py:1: eval of user input\nVERDICT: major")
    project.set_args(["--fail-on", "major"])
    before = project.head_count()
    done = project.commit({"app.py": "eval(input())\n"})
    out = output(done)
    assert done.returncode != 0, out
    assert "at or above --fail-on major: commit blocked" in out
    assert project.head_count() == before
    project.sim.backend.set("acct1", answer="Fixed.\nVERDICT: pass")
    done = project.commit({"app.py": "print(input())\n"})
    assert done.returncode == 0, output(done)
    assert "qwen-review: verdict: pass; below --fail-on major, commit not blocked" in output(done)
    assert project.head_count() == before + 1


def test_qwen_missing_falls_back(project: Project) -> None:
    project.set_args(["--fail-on", "minor"])
    dirs = os.environ["PATH"].split(os.pathsep)
    path = os.pathsep.join(d for d in dirs if d != str(project.sim.bin))
    assert shutil.which("qwen", path=path) is None
    before = project.head_count()
    done = project.commit({"app.py": "x = 1\n"}, PATH=path)
    out = output(done)
    assert done.returncode == 0, out
    assert "qwen-review: skipped \N{EM DASH} qwen is not installed or not on PATH" in out
    assert project.head_count() == before + 1


def test_try_repo(project: Project, hook_repo: HookRepo) -> None:
    """``pre-commit try-repo`` as a user tries the hook before adding it (its own env build)."""
    project.sim.add(answer="Tried.\nVERDICT: pass")
    project.write({"app.py": "x = 1\n"})
    project.git("add", "app.py")
    done = pre_commit(
        "try-repo", hook_repo.repo, "qwen-review", cwd=project.path, env=project.env(), check=False
    )
    out = output(done)
    assert done.returncode == 0, out
    assert "Tried." in out and "qwen-review: verdict: pass" in out
