"""What the genuine CLIs printed in this run, kept for the simulator's texts.

``record(cli, case, run, kind)`` keeps one run's exit code and streams; at the end of
the session :func:`write_all` saves them as ``<dir>/<cli>-<version>.json`` when
``CREDROT_CONFORMANCE_RECORD_DIR`` names a directory (the files in ``transcripts/``
were made so). A token-shaped string (the run's canary) is never written.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from credrot.process import RunResult

from . import install

RECORD_DIR_ENV = "CREDROT_CONFORMANCE_RECORD_DIR"
_SEEN: dict[str, dict[str, dict[str, object]]] = {}


def record(cli: str, case: str, run: RunResult, kind: str) -> None:
    _SEEN.setdefault(cli, {})[case] = {
        "exit_code": run.exit_code,
        "stdout": run.stdout,
        "stderr": run.stderr,
        "kind": kind,
    }


def write_all() -> list[Path]:
    target = os.environ.get(RECORD_DIR_ENV)
    if not target:
        return []
    written = []
    for cli, cases in sorted(_SEEN.items()):
        version = install.version_of(install.CLIS[cli])
        text = json.dumps(
            {"cli": cli, "version": version, "cases": cases}, indent=2, sort_keys=True
        )
        # in the JSON text: a path ends at a quote or at an escape (``\"``, ``\n``)
        text = re.sub(r"/tmp/[^\s\"'\\]+", "<tmp>", text)
        if "CANARY" in text:
            raise AssertionError(f"a token would have been written to the {cli} transcript")
        path = Path(target) / f"{install.CLIS[cli].name}-{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
        written.append(path)
    return written
