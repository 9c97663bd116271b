"""credrot.fsutil: atomic writes (old file or new, never a mix; 0600), read-only errors."""

from __future__ import annotations

import errno
import multiprocessing
import os
import stat
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


@pytest.mark.parametrize("swap", [True, False], ids=["exchange", "rename"])
def test_a_write_of_counters_replaces_the_file_whole_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, swap: bool
) -> None:
    """Without fsync the new file is swapped in (or renamed over the old one where the
    system cannot swap): the path holds the new bytes in a new file, nothing else stays."""
    if not swap:
        monkeypatch.setattr(st, "_RENAMEAT2", [None])
    path = tmp_path / "state.yaml"
    st.atomic_write(path, b"old")
    before = os.stat(path).st_ino
    reader = path.open("rb")  # a reader that opened the old file keeps reading it
    st.atomic_write(path, b"new", fsync=False)
    assert path.read_bytes() == b"new"
    assert os.stat(path).st_ino != before
    assert reader.read() == b"old"
    reader.close()
    assert [p.name for p in tmp_path.iterdir()] == ["state.yaml"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.parametrize("fsync", [True, False])
def test_a_folder_or_link_in_place_of_the_file_is_never_swapped_away(
    tmp_path: Path, fsync: bool
) -> None:
    folder = tmp_path / "state.yaml"
    folder.mkdir()
    (folder / "inside").write_text("keep")
    with pytest.raises(OSError):
        st.atomic_write(folder, b"new", fsync=fsync)
    assert (folder / "inside").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.yaml"]
    outside = tmp_path / "outside"
    outside.write_bytes(b"theirs")
    link = tmp_path / "linked.yaml"
    link.symlink_to(outside)
    st.atomic_write(link, b"new", fsync=fsync)  # the link is replaced, never followed
    assert outside.read_bytes() == b"theirs"
    assert not link.is_symlink() and link.read_bytes() == b"new"
