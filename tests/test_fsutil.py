"""credrot.fsutil: atomic writes (old file or new, never a mix; 0600), read-only errors."""

from __future__ import annotations

import errno
import multiprocessing
import os
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from credrot import fsutil as st

FORK = multiprocessing.get_context("fork")


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "inside").write_text("keep")
    with pytest.raises(OSError):
        st.atomic_write(target, b"new")  # cannot replace a non-empty directory
    assert (target / "inside").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_a_missing_directory_is_not_called_read_only(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        st.atomic_write(tmp_path / "nope" / "file", b"x")


def _flipper(path: str, a: bytes, b: bytes, stop: Event) -> None:
    target = Path(path)
    while not stop.is_set():
        st.atomic_write(target, a, fsync=False)
        st.atomic_write(target, b, fsync=False)


def test_a_reader_sees_the_old_file_or_the_new_one_never_a_mix(tmp_path: Path) -> None:
    path = tmp_path / "state.yaml"
    a, b = b"a" * 200_000, b"b" * 300_000
    st.atomic_write(path, a)
    stop = FORK.Event()
    writer = FORK.Process(target=_flipper, args=(str(path), a, b, stop))
    writer.start()
    seen: set[int] = set()
    deadline = time.monotonic() + 0.5
    try:
        while time.monotonic() < deadline:
            data = path.read_bytes()
            assert data in (a, b)
            seen.add(len(data))
    finally:
        stop.set()
        writer.join(10)
    assert seen == {len(a), len(b)}
    assert [p.name for p in tmp_path.iterdir()] == ["state.yaml"]


@pytest.mark.parametrize(
    ("code", "read_only"),
    [(errno.EROFS, True), (errno.EACCES, True), (errno.EPERM, True), (errno.ENOSPC, False)],
)
def test_which_errors_mean_read_only(code: int, read_only: bool) -> None:
    assert st.is_read_only_error(OSError(code, os.strerror(code))) is read_only
