"""Hook overhead benchmark (run by ``nox -s bench``; not part of the test suite).

``pre-commit run qwen-review`` on a small staged change, with the simulator as ``qwen``,
against invoking the simulator directly with the very prompt the hook sent, measured
in the same run, interleaved. Reports the added milliseconds (pre-commit's own start,
its hook-environment checks, the hook's imports, git, the pool lock and the private
call home all included). Target: under 400 ms. Exits 1 over target. A do-nothing hook
(``true``) run through pre-commit the same way is printed beside it, so pre-commit's
own share is visible.

The hook is installed the way users get it: a snapshot of this working tree committed
to a temporary repository, named with its ``rev`` in ``.pre-commit-config.yaml``.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from credrot.manager import AccountManager
from credrot_sim import SimBackend, install

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 21
TARGET_MS = 400.0
IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def cpu() -> float:
    """CPU seconds used so far by finished child processes (insensitive to machine load)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(cmd: list[str], cwd: Path, env: dict[str, str], stdin: bytes | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, input=stdin, capture_output=True, check=False)
    out = (done.stdout + done.stderr).decode("utf-8", "replace")
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{out}")
    return out


def snapshot(dest: Path, env: dict[str, str]) -> str:
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT, env)
    for name in filter(None, listed.split("\0")):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    run(["git", "init", "-q"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-qm", "snapshot"], dest, env)
    return run(["git", "rev-parse", "HEAD"], dest, env).strip()


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-hook-") as tmp:
        root = Path(tmp)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
        env = dict(base, **IDENTITY, GIT_CONFIG_NOSYSTEM="1")
        env["PRE_COMMIT_HOME"] = str(root / "pre-commit-home")

        snap = root / "credrot"
        snap.mkdir()
        rev = snapshot(snap, env)

        backend = SimBackend(root / "backend")
        install(root / "bin", backend.root)
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env['PATH']}"
        home = root / "qwen-home"
        home.mkdir(mode=0o700)
        env["QWEN_HOME"] = str(home)
        cred = backend.add_account("a1", answer="Looks fine.\nVERDICT: pass")
        AccountManager(home=home).import_account(json.dumps(cred).encode())

        project = root / "project"
        project.mkdir()
        run(["git", "init", "-q"], project, env)
        noop = {"id": "noop", "name": "noop", "entry": "true", "language": "system"}
        config = {
            "repos": [
                {"repo": str(snap), "rev": rev, "hooks": [{"id": "qwen-review"}]},
                {"repo": "local", "hooks": [noop]},  # pre-commit's own cost, for scale
            ]
        }
        (project / ".pre-commit-config.yaml").write_text(json.dumps(config, indent=2))
        (project / "app.py").write_text("def add(a, b):\n    return a + b\n")
        run(["git", "add", "-A"], project, env)
        pre_commit = [sys.executable, "-m", "pre_commit"]

        t = time.perf_counter()
        run([*pre_commit, "install-hooks"], project, env)
        print(f"hook environment built in {time.perf_counter() - t:.1f} s (not counted)")

        hook_cmd = [*pre_commit, "run", "qwen-review"]
        out = run(hook_cmd, project, env)  # warm-up; also records the prompt the hook sends
        assert "qwen-review: verdict: pass" in out, out
        call = backend.calls()[-1]
        prompt = backend.prompt(call["n"]).encode("utf-8")
        direct_cmd = ["qwen", *call["argv"]]
        direct_home = root / "direct-home"
        backend.write_credential("a1", direct_home / "oauth_creds.json")
        direct_env = dict(env, QWEN_HOME=str(direct_home))
        run(direct_cmd, project, direct_env, prompt)

        noop_cmd = [*pre_commit, "run", "noop"]
        run(noop_cmd, project, env)
        hooked: list[float] = []
        direct: list[float] = []
        nooped: list[float] = []
        cpu_hooked = cpu_direct = cpu_noop = 0.0
        for _ in range(ROUNDS):  # interleaved so drift hits both alike
            c, t = cpu(), time.perf_counter()
            run(noop_cmd, project, env)
            nooped.append(time.perf_counter() - t)
            cpu_noop += cpu() - c
            c, t = cpu(), time.perf_counter()
            answer = run(direct_cmd, project, direct_env, prompt)
            direct.append(time.perf_counter() - t)
            cpu_direct += cpu() - c
            assert "VERDICT: pass" in answer
            c, t = cpu(), time.perf_counter()
            out = run(hook_cmd, project, env)
            hooked.append(time.perf_counter() - t)
            cpu_hooked += cpu() - c
            assert "qwen-review: verdict: pass" in out, out
        sent = [backend.prompt(c["n"]) for c in backend.calls()[-ROUNDS * 2 :]]
        assert all(p == sent[0] for p in sent), "the hook and the direct run got other prompts"

    d_med, h_med = statistics.median(direct) * 1000, statistics.median(hooked) * 1000
    added = h_med - d_med
    floor = (min(hooked) - min(direct)) * 1000
    cpu_added = (cpu_hooked - cpu_direct) / ROUNDS * 1000
    n_med = statistics.median(nooped) * 1000
    own_cpu = (cpu_hooked - cpu_direct - cpu_noop) / ROUNDS * 1000
    ok = added < TARGET_MS
    print(
        f"hook overhead: simulator direct {d_med:.0f} ms, pre-commit run qwen-review "
        f"{h_med:.0f} ms (medians of {ROUNDS}) -> +{added:.0f} ms added "
        f"(target < {TARGET_MS:.0f} ms) {'OK' if ok else 'OVER TARGET'}"
    )
    print(
        f"  fastest runs: +{floor:.0f} ms; CPU time added per run: +{cpu_added:.0f} ms "
        f"(both hardly move with machine load; the median does, on a busy machine)"
    )
    print(
        f"  for scale, a do-nothing hook (`true`) through pre-commit: {n_med:.0f} ms, "
        f"CPU {cpu_noop / ROUNDS * 1000:.0f} ms per run; so qwen-review's own part is "
        f"+{added - n_med:.0f} ms (CPU +{own_cpu:.0f} ms)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
