"""``credrot report``: the text summary, and the HTML page rendered in headless Chromium
(screenshot non-empty, no console message) where Chromium is installed."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from simpool import SimPool

from credrot.wrapper import QwenWrapper

CREDROT = str(Path(sys.executable).with_name("credrot"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)


def _report(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CREDROT, "--home", str(home), "report", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def used_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimPool:
    """Three accounts after five calls: #1 spent after 1, #2 after 2, #3 answering."""
    sim = SimPool(tmp_path, monkeypatch)
    sim.add(quota=1)
    sim.add(quota=2)
    sim.add()
    answered = [QwenWrapper(manager=sim.manager).call("hi", timeout=20).account for _ in range(5)]
    assert answered == [1, 2, 2, 3, 3]
    sim.manager.flush()  # the counts and lines kept back, as this process's exit writes them
    return sim


def test_text_report_counts_each_day_from_the_log(used_pool: SimPool, canary: str) -> None:
    home = used_pool.home
    then = datetime.now(timezone.utc) - timedelta(days=3)
    old = {"time": f"{then:%Y-%m-%dT%H:%M:%SZ}", "event": "call", "tool": "qwen", "to": 1}
    with open(home / "rotation.log", "a") as fh:
        fh.write(json.dumps(old) + "\n{not json\n")
    done = _report(home, "--days", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"qwen pool in {home}, the last 1 days")
    body = "\n".join(lines[1:])
    assert re.search(r"#1\n  \S+  calls ended here 1, quota hits 1, switches to 0\n#2", body)
    assert re.search(r"#2\n  \S+  calls ended here 2, quota hits 1, switches to 1\n#3", body)
    assert re.search(r"#3\n  \S+  calls ended here 2, quota hits 0, switches to 1$", body)
    assert f"{then:%Y-%m-%d}" not in body  # older than --days
    week = _report(home, "--days", "7").stdout
    assert f"#1\n  {then:%Y-%m-%d}  calls ended here 1, quota hits 0, switches to 0\n" in week
    assert canary not in done.stdout + done.stderr


def test_report_bad_input_is_one_line_and_touches_nothing(
    used_pool: SimPool, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-dir" / "page.html"
    done = _report(used_pool.home, "--html", str(missing))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("credrot: error:")
    assert not missing.parent.exists()
    assert _report(used_pool.home, "--days", "0").returncode == 2


def _self_contained(page: str) -> None:
    for reference in (r"\bsrc\s*=", r"\bhref\s*=", r"url\(", r"https?://", r"<script", "@import"):
        assert not re.search(reference, page, re.I), reference


def test_html_page_is_self_contained_and_escapes_the_log(used_pool: SimPool, canary: str) -> None:
    home = used_pool.home
    hostile = {
        "time": json.loads((home / "rotation.log").read_text().splitlines()[-1])["time"],
        "event": "switch",
        "tool": "qwen",
        "from": 3,
        "to": 1,
        "reason": "<script>alert(1)</script>",
    }
    with open(home / "rotation.log", "a") as fh:
        fh.write(json.dumps(hostile) + "\n")
    done = _report(home, "--html", "-")
    assert done.returncode == 0, done.stderr
    page = done.stdout
    _self_contained(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count(" spent its day window ") >= 2  # the two switches off a spent account
    assert len(re.findall(r"<path [^>]*><title>[^<]* exhausted ", page)) == 2  # the quota hits
    assert len(re.findall(r"<rect [^>]*fill=\"#2e7d32\"><title>", page)) == 5  # calls answered
    assert "resets in" in page and "(active)" in page
    assert canary not in page


def _chromium(page: Path, shot: Path, profile: Path) -> str:
    """Render ``page`` headless; return Chromium's log (console messages appear in it)."""
    assert CHROMIUM is not None
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            "--window-size=1100,800",
            "--enable-logging=stderr",
            "--v=0",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return proc.stderr


def _distinct_bytes(png: bytes) -> int:
    """How varied the decoded pixel data is: a blank page gives a handful of values."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data = 8, b""
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        if png[pos + 4 : pos + 8] == b"IDAT":
            data += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(data)))


@needs_chromium
def test_html_page_renders_in_chromium_without_console_messages(
    used_pool: SimPool, tmp_path: Path
) -> None:
    page, shot = tmp_path / "report.html", tmp_path / "report.png"
    done = _report(used_pool.home, "--html", str(page))
    assert done.returncode == 0 and done.stdout.strip() == (
        f"wrote {page} (one self-contained page; open it in any browser)"
    )
    log = _chromium(page, shot, tmp_path / "profile")
    assert shot.exists(), log[-2000:]
    assert ":CONSOLE" not in log, log
    assert _distinct_bytes(shot.read_bytes()) > 50
    # The same check does see a console message and a blank page (it can fail).
    control, blank = tmp_path / "control.html", tmp_path / "blank.png"
    control.write_text("<!DOCTYPE html><html><body><script>console.error('x')</script></body>")
    control_log = _chromium(control, blank, tmp_path / "profile2")
    assert ":CONSOLE" in control_log
    assert _distinct_bytes(blank.read_bytes()) <= 50
