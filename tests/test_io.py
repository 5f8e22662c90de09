"""Atomic writes: a write that dies midway leaves the old file (or none), never a half-written one."""

import pytest

from rnngrad.io import atomic_write, file_sha256


def test_failed_write_leaves_previous_content_and_no_temporary(tmp_path):
    target = tmp_path / "table.parquet"
    target.write_text("complete")

    def half_write(tmp):
        tmp.write_text("half")
        raise KeyboardInterrupt  # what a kill between write and rename looks like to the writer

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_write)
    assert target.read_text() == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.parquet"]


def test_write_creates_folders_and_replaces(tmp_path):
    target = tmp_path / "a" / "b" / "file.txt"
    atomic_write(target, lambda tmp: tmp.write_text("one"))
    before = file_sha256(target)
    atomic_write(target, lambda tmp: tmp.write_text("two"))
    assert target.read_text() == "two" and file_sha256(target) != before
