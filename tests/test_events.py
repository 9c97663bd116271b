"""Plugins installed as distributions hear a pool's events; without one, a call pays
nothing for the plugin machinery.

Each case is a real process with a real ``*.dist-info`` directory on its ``PYTHONPATH``,
as pip leaves one, so the entry-point discovery is the one a user's install gets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from simpool import SimPool

PLUGIN = """
import json, os
from credrot.events import hookimpl

def _note(**fields):
    with open(os.environ["RECORDER_OUT"], "a", encoding="utf-8") as out:
        out.write(json.dumps(fields) + "\\n")

@hookimpl
def credrot_call_finished(tool, result):
    _note(hook="call_finished", tool=tool, success=result.success)

@hookimpl
def credrot_audit(record):
    _note(hook="audit", event=record["event"])
"""

CALLER = """
import sys
from credrot.manager import AccountManager
from credrot.wrapper import Wrapper
manager = AccountManager(home=sys.argv[1])
result = Wrapper(manager=manager).call("hello")
manager.switch_next()
loaded = sorted(m for m in ("pluggy", "importlib.metadata") if m in sys.modules)
print(result.success, ",".join(loaded) or "-")
"""


def install_plugin(site: Path, module_body: str, *, target: str = "recorder") -> None:
    """A distribution ``recorder`` declaring ``[credrot] recorder = <target>``."""
    site.mkdir(exist_ok=True)
    (site / "recorder.py").write_text(module_body, encoding="utf-8")
    info = site / "recorder-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: recorder\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[credrot]\nrecorder = {target}\n")


def call(pool: SimPool, site: Path | None, out: Path) -> str:
    env = dict(os.environ, RECORDER_OUT=str(out))
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", CALLER, str(pool.home)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def audit_events(pool: SimPool) -> list[str]:
    lines = (pool.home / "rotation.log").read_text().splitlines()
    return [json.loads(line)["event"] for line in lines]


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    pool = SimPool(tmp_path, monkeypatch)
    pool.add("first")
    pool.add("second")
    return pool


def test_an_installed_plugin_hears_calls_and_audit_records(pool: SimPool, tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_plugin(site, PLUGIN)
    out = tmp_path / "heard.jsonl"
    assert call(pool, site, out).startswith("True ")
    heard = [json.loads(line) for line in out.read_text().splitlines()]
    assert {"hook": "call_finished", "tool": "qwen", "success": True} in heard
    assert {"hook": "audit", "event": "switch"} in heard
    assert audit_events(pool)[-1] == "switch"  # the audit log is written as well


def test_without_a_plugin_no_plugin_machinery_is_loaded(pool: SimPool, tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_plugin(site, PLUGIN)
    (site / "recorder-1.0.dist-info" / "entry_points.txt").write_text(
        "[console_scripts]\nrecorder = recorder:main\n"  # another group: not a credrot plugin
    )
    out = tmp_path / "heard.jsonl"
    assert call(pool, site, out) == "True -"
    assert not out.exists()
    assert audit_events(pool)[-1] == "switch"  # the audit log still gets every record


def test_a_plugin_that_fails_to_load_does_not_stop_rotation(pool: SimPool, tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_plugin(site, "raise ImportError('plugin bug')\n")
    out = tmp_path / "heard.jsonl"
    assert call(pool, site, out).startswith("True ")
    assert audit_events(pool)[-1] == "switch"
    assert json.loads((pool.home / "state.yaml").read_text())["current"] == 2
