"""``qwen-review``: an AI review of the staged changes, as a pre-commit hook.

The staged diff of the files pre-commit passes goes to the tool through credrot's
wrapper (stdin, rotating across the pool); the review and a one-line verdict are
printed. Nothing here blocks a commit except ``--fail-on``: when no account can answer
the hook says why in one line and exits 0. Exit 1 means a verdict at or above
``--fail-on``; exit 2 means the hook was misconfigured (bad option, unreadable prompt
file, not a git repository).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from credrot.errors import CredrotError
from credrot.profile import ToolProfile
from credrot.tools import BUILTIN, get_profile
from credrot_hooks import review

if TYPE_CHECKING:
    from credrot.manager import AccountManager

PROG = "qwen-review"
DEFAULT_TIMEOUT = 90.0
DEFAULT_BUDGET = 120.0
DEFAULT_MAX_DIFF_BYTES = 100_000
DEFAULT_MAX_CHUNKS = 4
DEFAULT_FALLBACK = "{prog}: skipped \N{EM DASH} {reason}; commit not blocked"
#: Time kept back from the budget for git, start-up and printing.
_RESERVE = 1.0
_GIT_TIMEOUT = 30.0


class UsageError(Exception):
    """The hook was called wrongly: one line to print, exit 2."""


@dataclass
class Review:
    chunk: review.Chunk
    number: int
    text: str
    verdict: str | None
    account: int | None
    duration: float


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if number <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {value!r}")
        return number

    return parse


class _Formatter(argparse.HelpFormatter):
    """argparse's own, told the width as ``shutil`` would say it (argparse imports
    ``shutil`` for it on every option added, and a hook run never prints help)."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
            except (AttributeError, ValueError, OSError):
                columns = 80
        super().__init__(prog, width=max(columns, 1) - 2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Review the staged changes of FILES with an AI CLI through credrot's "
        "account pool. Never blocks a commit unless --fail-on is given.",
        formatter_class=_Formatter,
    )
    from credrot import __version__

    parser.add_argument(
        "-V", "--version", action="version", version=f"{PROG} (credrot) {__version__}"
    )
    parser.add_argument("--tool", default="qwen", help=f"tool to ask ({', '.join(BUILTIN)})")
    parser.add_argument(
        "--home", help="the tool's credrot pool (default: the tool's home, e.g. $QWEN_HOME)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=DEFAULT_TIMEOUT,
        help=f"seconds one tool run may take (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--budget",
        type=_positive(float),
        default=DEFAULT_BUDGET,
        help=f"seconds the whole hook may take, retries included (default {DEFAULT_BUDGET:g})",
    )
    parser.add_argument(
        "--max-diff-bytes",
        type=_positive(int),
        default=DEFAULT_MAX_DIFF_BYTES,
        help="a bigger diff is reviewed in parts of at most this size "
        f"(default {DEFAULT_MAX_DIFF_BYTES})",
    )
    parser.add_argument(
        "--max-chunks",
        type=_positive(int),
        default=DEFAULT_MAX_CHUNKS,
        help="at most this many parts (one request each); the rest is listed by name "
        f"(default {DEFAULT_MAX_CHUNKS})",
    )
    parser.add_argument(
        "--fail-on",
        choices=review.LEVELS[1:],
        metavar="LEVEL",
        help="exit 1 on a verdict at or above LEVEL (minor, major, critical); "
        "a review without a verdict never blocks",
    )
    parser.add_argument(
        "--prompt-file", help="prompt template ({diff}, {files}, {notes}); default: built in"
    )
    parser.add_argument(
        "--fallback-message",
        help="line printed when no account can answer; {reason} is replaced by why",
    )
    parser.add_argument("filenames", nargs="*", help="files to review (default: all staged)")
    return parser


def load_template(prompt_file: str | None) -> str:
    if prompt_file is None:
        shipped = Path(__file__).with_name("review_prompt.txt")
        if shipped.is_file():  # an installed package: no need for importlib.resources
            return shipped.read_text(encoding="utf-8")
        from importlib.resources import files

        return (files("credrot_hooks") / "review_prompt.txt").read_text(encoding="utf-8")
    try:
        return Path(prompt_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read --prompt-file {prompt_file}: {why}") from None


def _git(args: Sequence[str], timeout: float) -> bytes:
    cmd = ["git", "--literal-pathspecs", "-c", "core.quotePath=false", *args]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise UsageError("git is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"`git {args[0]}` took over {timeout:g} s") from None
    if done.returncode != 0:
        inside = subprocess.run(
            ["git", "rev-parse", "--is-inside-work-tree"], capture_output=True, check=False
        )
        if inside.returncode != 0:
            raise UsageError(f"{os.getcwd()} is not inside a git work tree")
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UsageError(f"`git {args[0]}` failed: {err[-1] if err else done.returncode}")
    return done.stdout


def staged_files(timeout: float) -> list[str]:
    out = _git(["diff", "--cached", "--name-only", "-z", "--no-renames"], timeout)
    return [name for name in out.decode("utf-8", "surrogateescape").split("\0") if name]


def staged_diff(paths: Sequence[str], timeout: float) -> str:
    """``git diff --cached`` of ``paths`` (GIT_INDEX_FILE is honoured by git itself).

    Pathspecs are literal (a file named ``*`` must not pull in ``.env``), external diff
    and textconv drivers are off (a textconv could decrypt a git-crypt file), and the
    ``a/``/``b/`` prefixes are fixed whatever the user's diff config says.
    """
    if not paths:
        return ""
    args = [
        "diff", "--cached", "--no-ext-diff", "--no-color", "--no-textconv",
        "--src-prefix=a/", "--dst-prefix=b/", "--", *paths,
    ]  # fmt: skip
    return _git(args, timeout).decode("utf-8", "replace")


def _names(paths: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _kb(size: int) -> str:
    return f"{size / 1000:.1f} kB" if size >= 1000 else f"{size} bytes"


def _notes(plan: review.Plan, chunk_no: int) -> str:
    if len(plan.chunks) <= 1 and not plan.split:
        return ""
    return (
        f"\nThe staged diff is {_kb(plan.total_bytes)}, too big for one review: this is "
        f"part {chunk_no} of {len(plan.chunks)}. Review this part on its own.\n"
    )


class _Out:
    """Everything the hook prints goes through here (stdout; pre-commit shows it)."""

    def __init__(self) -> None:
        self.stream = sys.stdout
        if isinstance(self.stream, io.TextIOWrapper):
            with contextlib.suppress(ValueError, io.UnsupportedOperation):
                self.stream.reconfigure(errors="replace")

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        self.line(f"{PROG}: {text}")


def _fallback(out: _Out, message: str | None, reason: str) -> int:
    template = DEFAULT_FALLBACK if message is None else message
    out.line(template.replace("{prog}", PROG).replace("{reason}", reason))
    return 0


def _pool_reason(profile: ToolProfile, manager: AccountManager, error: str | None) -> str:
    status = None
    with contextlib.suppress(CredrotError, OSError):
        status = manager.pool_status()
    return review.unavailable_reason(profile.name, status, error)


def main(argv: Sequence[str] | None = None) -> int:
    started = time.monotonic()
    parser = build_parser()
    args = parser.parse_args(argv)
    out = _Out()
    try:
        profile = get_profile(args.tool)
        template = load_template(args.prompt_file)
        return _review(args, profile, template, out, started + args.budget)
    except (UsageError, CredrotError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def _review(
    args: argparse.Namespace, profile: ToolProfile, template: str, out: _Out, deadline: float
) -> int:
    git_timeout = max(1.0, min(_GIT_TIMEOUT, deadline - time.monotonic()))
    paths = list(dict.fromkeys(args.filenames)) or staged_files(git_timeout)
    secret = {p: review.secret_name(p) for p in paths}
    withheld = [(p, "") for p in paths if secret[p]]
    candidates = [p for p in paths if not secret[p]]
    diffs = review.split_diff(staged_diff(candidates, git_timeout), candidates)

    binary: list[str] = []
    reviewable: list[review.FileDiff] = []
    for diff in diffs:
        if diff.binary:
            binary.append(diff.path)
            continue
        kind = review.secret_content(diff.text)
        if kind is not None:
            withheld.append((diff.path, f"holds {kind}"))
            continue
        reviewable.append(diff)

    if withheld:
        out.note(
            "withheld, never sent (likely secrets): "
            + ", ".join(f"{p} ({why})" if why else p for p, why in withheld)
        )
    if binary:
        out.note(f"skipped binary files: {_names(binary)}")
    if not reviewable:
        out.note("nothing to review in the staged changes")
        return 0

    plan = review.plan_chunks(reviewable, args.max_diff_bytes, args.max_chunks)
    if plan.split:
        out.note(
            f"staged diff is {_kb(plan.total_bytes)}, over --max-diff-bytes "
            f"{args.max_diff_bytes}: reviewed in {len(plan.chunks)} "
            f"part{'s' if len(plan.chunks) != 1 else ''} of at most that size"
        )
    if plan.partial:
        out.note(f"partly reviewed (some hunks over the size cap): {_names(plan.partial)}")
    if plan.left_out:
        out.note(f"not reviewed (over --max-diff-bytes x --max-chunks): {_names(plan.left_out)}")
    if not plan.chunks:
        return 0

    if not _on_path(profile.executable):
        hint = f" (install it: {profile.install_hint})" if profile.install_hint else ""
        reason = f"{profile.name} is not installed or not on PATH{hint}"
        return _fallback(out, args.fallback_message, reason)
    home = Path(args.home).expanduser() if args.home else profile.default_home()
    if not home.is_dir():
        reason = (
            f"no accounts configured for {profile.name} ({home} does not exist; "
            "add one with `credrot accounts add`)"
        )
        return _fallback(out, args.fallback_message, reason)

    reviews, failure = _ask(args, profile, home, template, plan, deadline)
    if not reviews:
        return _fallback(out, args.fallback_message, failure or f"{profile.name} gave no answer")
    for item in reviews:
        files_part = f": {_names(item.chunk.files, 5)}" if len(plan.chunks) > 1 else ""
        part = f", part {item.number} of {len(plan.chunks)}{files_part}" if files_part else ""
        who = f"account #{item.account}, " if item.account is not None else ""
        out.line(f"--- {profile.name} review{part} ({who}{item.duration:.1f} s) ---")
        out.line(item.text.rstrip("\n"))
    if len(reviews) < len(plan.chunks):
        missing = [str(n) for n in range(len(reviews) + 1, len(plan.chunks) + 1)]
        plural = "s" if len(missing) > 1 else ""
        out.note(f"part{plural} {', '.join(missing)} not reviewed: {failure}")
    return _verdict(out, reviews, args.fail_on)


def _on_path(command: str) -> bool:
    """Whether ``command`` can be run (what ``shutil.which`` says, without its imports)."""
    if os.name != "posix":
        import shutil

        return shutil.which(command) is not None
    if os.sep in command:
        return os.access(command, os.X_OK) and not os.path.isdir(command)
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(folder or ".", command)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return True
    return False


@contextlib.contextmanager
def _scratch() -> Iterator[str]:
    """A new empty private folder, removed afterwards (``tempfile`` costs the hook's
    start more than this)."""
    from credrot.fsutil import remove_tree

    base = os.environ.get("TMPDIR") or "/tmp"
    if os.name != "posix" or not os.path.isdir(base):
        import tempfile

        with tempfile.TemporaryDirectory(prefix=f"{PROG}-") as tmp:
            yield tmp
        return
    path = os.path.join(base, f"{PROG}-{os.getpid()}-{os.urandom(6).hex()}")
    os.mkdir(path, 0o700)
    try:
        yield path
    finally:
        remove_tree(path)


def _ask(
    args: argparse.Namespace,
    profile: ToolProfile,
    home: Path,
    template: str,
    plan: review.Plan,
    deadline: float,
) -> tuple[list[Review], str | None]:
    from credrot.manager import AccountManager
    from credrot.wrapper import Wrapper

    reviews: list[Review] = []
    manager = AccountManager(tool=profile, home=home)
    try:
        retries = max(5, len(manager.slots()))
        wrapper = Wrapper(tool=profile, manager=manager, max_retries=retries, timeout=args.timeout)
        with _scratch() as scratch:
            # An empty working directory: the tool sees the diff and nothing of the tree.
            wrapper.cwd = scratch
            for number, chunk in enumerate(plan.chunks, 1):
                remaining = deadline - time.monotonic() - _RESERVE
                if remaining <= 1.0:
                    return reviews, f"the time budget of {args.budget:g} s is spent"
                prompt = review.render_prompt(
                    template, chunk.text, chunk.files, _notes(plan, number)
                )
                result = wrapper.call(
                    prompt, timeout=min(args.timeout, remaining), budget=remaining
                )
                if not result.success:
                    return reviews, _pool_reason(profile, manager, result.error)
                text = review.clean_output(result.output)
                verdict = review.parse_verdict(text)
                reviews.append(
                    Review(chunk, number, text, verdict, result.account, result.duration)
                )
    except (CredrotError, OSError) as exc:
        return reviews, f"{profile.name} could not be asked ({exc})"
    return reviews, None


def _verdict(out: _Out, reviews: Sequence[Review], fail_on: str | None) -> int:
    verdict = review.worst(r.verdict for r in reviews)
    detail = ""
    if len(reviews) > 1:
        detail = " (" + ", ".join(f"part {r.number}: {r.verdict or 'none'}" for r in reviews) + ")"
    if verdict is None:
        out.note("verdict: none (the review gave no VERDICT line); commit not blocked")
        return 0
    if review.blocks(verdict, fail_on):
        out.note(
            f"verdict: {verdict}{detail} \N{EM DASH} at or above --fail-on {fail_on}: "
            "commit blocked"
        )
        return 1
    suffix = f"; below --fail-on {fail_on}, commit not blocked" if fail_on else ""
    out.note(f"verdict: {verdict}{detail}{suffix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
