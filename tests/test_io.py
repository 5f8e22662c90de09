"""Atomic writes: a write that dies midway leaves the old file (or none), never a half-written one."""

import os
from pathlib import Path

import pytest

from rnngrad.io import atomic_write, file_sha256, write_json


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


def test_write_is_synced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """Durability (a node crash cannot be staged here, so the order of the calls that give it is checked, through
    wrappers that still make them): the data is fsync'ed before the rename, the folder's entry after it."""
    events = []
    fsync, replace = os.fsync, os.replace

    def recorded_fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def recorded_replace(source, target):
        events.append(("replace", str(source), str(target)))
        replace(source, target)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(os, "replace", recorded_replace)
    target = tmp_path / "status.json"
    write_json(target, {"status": "completed"})
    assert len(events) == 3 and events[0][0] == "fsync"
    tmp = events[0][1]
    assert Path(tmp).parent == tmp_path and Path(tmp).name.startswith(".status.json.")
    assert events == [("fsync", tmp), ("replace", tmp, str(target)), ("fsync", str(tmp_path))]


def test_written_files_get_the_umasks_mode_so_a_group_can_read_them(tmp_path):
    umask = os.umask(0o027)
    try:
        target = atomic_write(tmp_path / "status.json", lambda tmp: tmp.write_text("{}"))
    finally:
        os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o640
