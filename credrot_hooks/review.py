"""What an AI review of staged changes may send, in what pieces, and what came back.

Pure functions for any surface that asks a tool to review a diff (the pre-commit hook
``qwen-review`` first): which files are likely secrets and must never leave the machine,
how ``git diff`` output splits per file, how a diff over a size cap is cut into parts,
how the prompt is filled in, how the final ``VERDICT:`` line is read, and how "no account
could answer" is said in one line. No git, no subprocess, no rotation here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from credrot_hooks.withheld import SECRET_NAMES as SECRET_NAMES
from credrot_hooks.withheld import SECRET_PATHS as SECRET_PATHS
from credrot_hooks.withheld import secret_content as secret_content
from credrot_hooks.withheld import secret_name as secret_name

if TYPE_CHECKING:
    from credrot.manager import PoolStatus

#: Verdict levels, least severe first.
LEVELS = ("pass", "minor", "major", "critical")

_HUNK = "@@"
_BINARY = re.compile(r"^(?:Binary files .* differ|GIT binary patch)$")
_VERDICT = re.compile(r"^verdict\s*[:=\-\u2013\u2014]\s*(pass|minor|major|critical)\s*[.!]?$", re.I)
_DECOR = re.compile(r"[*_`]")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PLACEHOLDER = re.compile(r"\{(diff|files|notes)\}")
#: How many of the last non-empty lines of an answer may hold the verdict.
VERDICT_TAIL = 3


# ---------------------------------------------------------------- diff parts
@dataclass
class FileDiff:
    """One file's part of a ``git diff``."""

    path: str
    text: str
    binary: bool = False

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))


def _cquote(name: str) -> str:
    """Quote a path the way git does with ``core.quotePath=false``."""
    special = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\t": "\\t",
               "\n": "\\n", "\v": "\\v", "\f": "\\f", "\r": "\\r"}  # fmt: skip
    if not any(c in special or ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return name
    out = []
    for c in name:
        if c in special:
            out.append(special[c])
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\{ord(c):03o}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def split_diff(text: str, paths: Iterable[str] = ()) -> list[FileDiff]:
    """Split ``git diff`` output (with ``a/``, ``b/`` prefixes) into one part per file.

    ``paths`` are the files asked for; each part is labelled with the one its header
    names (a header matching none keeps its own text as the label).
    """
    known = list(dict.fromkeys(paths))
    exact = {f"{_cquote('a/' + p)} {_cquote('b/' + p)}": p for p in known}
    blocks: list[list[str]] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("diff --git ") or not blocks:
            blocks.append([])
        blocks[-1].append(line)
    diffs = []
    for block in blocks:
        head = block[0].rstrip("\n")
        if not head.startswith("diff --git "):
            continue
        rest = head[len("diff --git ") :]
        path = exact.get(rest)
        if path is None:
            path = next((p for p in known if rest.endswith(" " + _cquote("b/" + p))), None)
        if path is None:
            path = rest.split(" b/", 1)[-1] if " b/" in rest else rest
        binary = False
        for line in block[1:]:
            if line.startswith(_HUNK):
                break
            if _BINARY.match(line.rstrip("\n")):
                binary = True
                break
        diffs.append(FileDiff(path, "".join(block), binary))
    return diffs


@dataclass
class Piece:
    """All of one file's diff, or some of its hunks (``part`` of ``parts``)."""

    path: str
    text: str
    part: int = 1
    parts: int = 1
    truncated: bool = False

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))


@dataclass
class Chunk:
    """What one call reviews: whole pieces, at most the size cap in all."""

    pieces: list[Piece] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.pieces)

    @property
    def files(self) -> list[str]:
        return list(dict.fromkeys(p.path for p in self.pieces))


@dataclass
class Plan:
    """The chunks to review, and which files they leave partly or wholly unreviewed."""

    chunks: list[Chunk]
    total_bytes: int
    max_bytes: int
    #: Files of which only some hunks (or a cut hunk) are reviewed.
    partial: list[str] = field(default_factory=list)
    #: Files of which nothing is reviewed.
    left_out: list[str] = field(default_factory=list)

    @property
    def split(self) -> bool:
        return self.total_bytes > self.max_bytes


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


_CONTINUED = "\\ [credrot: this hunk continues in the next part]\n"
_CUT_LINE = "\\ [credrot: the line above is cut at the size cap]\n"


def _split_hunk(hunk: Sequence[str], room: int) -> list[tuple[str, bool]]:
    """Cut a hunk bigger than ``room`` bytes into runs of whole lines that fit.

    A single line longer than a run (minified code, data) is cut itself: the piece is
    then marked truncated.
    """
    limit = room - max(_size(_CONTINUED), _size(_CUT_LINE))
    out: list[tuple[str, bool]] = []
    run: list[str] = []
    used = 0
    for line in hunk:
        size = _size(line)
        if size > limit:
            if used > limit // 2:
                out.append(("".join(run) + _CONTINUED, False))
                run, used = [], 0
            head = line.encode("utf-8")[: max(0, limit - used - 1)].decode("utf-8", "ignore")
            out.append(("".join(run) + head + "\n" + _CUT_LINE, True))
            run, used = [], 0
            continue
        if run and used + size > limit:
            out.append(("".join(run) + _CONTINUED, False))
            run, used = [], 0
        run.append(line)
        used += size
    if run:
        out.append(("".join(run), False))
    return out


def _pieces(diff: FileDiff, max_bytes: int) -> list[Piece]:
    """The file's diff whole, or split at hunks (and lines) into pieces within ``max_bytes``.

    Every piece repeats the file's diff header, so each part reads as a diff on its own.
    """
    if diff.size <= max_bytes:
        return [Piece(diff.path, diff.text)]
    lines = diff.text.splitlines(keepends=True)
    first = next((i for i, line in enumerate(lines) if line.startswith(_HUNK)), len(lines))
    header = "".join(lines[:first])
    room = max_bytes - _size(header)
    if room <= 2 * _size(_CUT_LINE):
        return []
    hunks: list[list[str]] = []
    for line in lines[first:]:
        if line.startswith(_HUNK) or not hunks:
            hunks.append([])
        hunks[-1].append(line)
    texts: list[tuple[str, bool]] = []
    current: list[str] = []
    used = 0
    for hunk in hunks:
        size = sum(_size(line) for line in hunk)
        if current and used + size > room:
            texts.append(("".join(current), False))
            current, used = [], 0
        if size > room:
            texts.extend(_split_hunk(hunk, room))
            continue
        current.extend(hunk)
        used += size
    if current:
        texts.append(("".join(current), False))
    n = len(texts)
    return [Piece(diff.path, header + t, i + 1, n, cut) for i, (t, cut) in enumerate(texts)]


def plan_chunks(diffs: Sequence[FileDiff], max_bytes: int, max_chunks: int) -> Plan:
    """Pack per-file diffs into at most ``max_chunks`` chunks of at most ``max_bytes``.

    A file over the cap is split at hunk boundaries (a single hunk over it is cut at a
    line); whatever does not fit in ``max_chunks`` chunks is reported, never silently
    dropped.
    """
    total = sum(d.size for d in diffs)
    plan = Plan([], total, max_bytes)
    all_pieces: list[Piece] = []
    unsplittable: list[str] = []
    for diff in diffs:
        pieces = _pieces(diff, max_bytes)
        if not pieces:
            unsplittable.append(diff.path)
        all_pieces.extend(pieces)
    chunks: list[Chunk] = []
    for piece in all_pieces:
        if not chunks or chunks[-1].size + piece.size > max_bytes:
            chunks.append(Chunk())
        chunks[-1].pieces.append(piece)
    plan.chunks = chunks[: max(0, max_chunks)]
    reviewed: dict[str, int] = {}
    cut: set[str] = set()
    for chunk in plan.chunks:
        for piece in chunk.pieces:
            reviewed[piece.path] = reviewed.get(piece.path, 0) + 1
            if piece.truncated:
                cut.add(piece.path)
    expected: dict[str, int] = {}
    for piece in all_pieces:
        expected[piece.path] = piece.parts
    for diff in diffs:
        got = reviewed.get(diff.path, 0)
        if diff.path in unsplittable or got == 0:
            plan.left_out.append(diff.path)
        elif got < expected[diff.path] or diff.path in cut:
            plan.partial.append(diff.path)
    return plan


# ------------------------------------------------------------------- prompts
VERDICT_INSTRUCTION = (
    "\n\nEnd your answer with exactly one final line of the form\n"
    "VERDICT: pass|minor|major|critical\n"
)


def render_prompt(template: str, diff: str, files: Sequence[str], notes: str = "") -> str:
    """Fill ``{diff}``, ``{files}`` and ``{notes}`` in one pass (the diff is never re-read).

    A template without ``{diff}`` gets the diff appended; one that never mentions a
    verdict gets the verdict instruction, so ``--fail-on`` works with any prompt file.
    """
    if "verdict" not in template.lower():
        template = template.rstrip("\n") + VERDICT_INSTRUCTION
    if "{diff}" not in template:
        template = template.rstrip("\n") + "\n\n{diff}"
    values = {"diff": diff, "files": ", ".join(files), "notes": notes}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


# ------------------------------------------------------------------ verdicts
def parse_verdict(text: str) -> str | None:
    """The level named by the answer's final ``VERDICT:`` line, or None when there is none."""
    tail = [line for line in text.splitlines() if line.strip()][-VERDICT_TAIL:]
    for line in reversed(tail):
        cleaned = _DECOR.sub("", line).strip().lstrip("#>- ").strip()
        m = _VERDICT.match(cleaned)
        if m:
            return m.group(1).lower()
    return None


def rank(level: str) -> int:
    return LEVELS.index(level)


def worst(levels: Iterable[str | None]) -> str | None:
    """The most severe of the levels given (None ones ignored)."""
    found = [lv for lv in levels if lv is not None]
    return max(found, key=rank) if found else None


def blocks(verdict: str | None, fail_on: str | None) -> bool:
    """Whether ``verdict`` is at or above ``fail_on``; no verdict never blocks."""
    return verdict is not None and fail_on is not None and rank(verdict) >= rank(fail_on)


def clean_output(text: str) -> str:
    """A tool's answer made safe for a terminal: escape sequences and controls removed."""
    return _CONTROL.sub("", _ANSI.sub("", text.replace("\r\n", "\n")))


# ------------------------------------------------------------------ fallback
def when(moment: datetime, now: datetime | None = None) -> str:
    """``00:00 UTC`` within a day from now, else ``2026-11-30 00:00 UTC``."""
    now = now or datetime.now(timezone.utc)
    moment = moment.astimezone(timezone.utc)
    if timedelta(0) <= moment - now <= timedelta(hours=24):
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def unavailable_reason(
    tool: str, status: PoolStatus | None, error: str | None, now: datetime | None = None
) -> str:
    """Why no account could answer, in a few words for one line. A pool with nothing
    in it (or nothing valid) is said to be unconfigured, never spent."""
    if status is not None and status.total == 0:
        return f"no accounts configured for {tool} (add one with `credrot accounts add`)"
    if (
        status is not None
        and not status.usable
        and all(kind == "invalid" for kind, _until, _why in status.unusable.values())
    ):
        return (
            f"no accounts configured for {tool}: none of the {status.total} is a valid "
            "credential (see `credrot doctor`)"
        )
    if status is not None and not status.usable:
        text = status.headline(tool)
        if status.first_reset is None or status.total == 0:
            return text
        joiner = " until " if " unusable (" not in text else "; first reset "
        return f"{text}{joiner}{when(status.first_reset, now)}"
    if not error:
        return f"{tool} gave no answer"
    if error.startswith(f"{tool} "):
        return error
    return f"{tool} gave no answer ({error})"
