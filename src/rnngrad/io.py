"""Atomic, durable writes and run-folder locks: a killed job never leaves a half-written file that looks complete,
a crashed node never leaves a renamed file whose data did not reach the disk, a full disk is reported by path,
and two processes never write into one run folder."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pandas as pd

LOCK_NAME = ".rnngrad.lock"  # in each run folder while a training process writes into it


class DiskFullError(OSError):
    """A write failed for lack of space (or quota): nothing was written under the file's name."""


class FolderLockedError(RuntimeError):
    """A run folder is being written by another live process."""


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary name in the same folder, then rename it to ``path``.

    Durable on POSIX: the file's data is fsync'ed before the rename and the folder after it, so after a node crash
    the name holds the old content or the new one, whole. A full disk raises :class:`DiskFullError` naming ``path``,
    and leaves neither the temporary file nor anything new under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # Created with mode 0o666 less the umask, as any new file (mkstemp's 0o600 would hide results from a group)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(
                err.errno,
                f"no space left on the device (or quota exceeded) while writing {path}; nothing was written under "
                f"that name. Free space there (df -h {path.parent}) and rerun: finished runs are kept and the "
                "others resume from their last checkpoints",
            ) from err
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's data and metadata to the disk (a read-only descriptor is enough on POSIX)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str | Path, obj) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def write_parquet(path: str | Path, frame: pd.DataFrame) -> Path:
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mismatched_files(folder: str | Path, sha256: dict[str, str]) -> list[str]:
    """Names of the files in ``folder`` that are missing or differ from their recorded sha256."""
    folder = Path(folder)
    return [
        name
        for name, expected in sha256.items()
        if not (folder / name).exists() or file_sha256(folder / name) != expected
    ]


@contextmanager
def locked_folders(folders: list[str | Path]) -> Iterator[None]:
    """Hold every folder's lock (created where missing) for the block, or raise :class:`FolderLockedError` naming
    the folder and the process holding it, having taken none.

    The lock is ``flock`` on ``folder/.rnngrad.lock``, which holds the owner's pid and host for the message. The
    kernel drops it when its process ends, however it ends, so a killed job's lock never blocks a rerun; the file
    is removed when the block ends. Across nodes this needs a filesystem that supports flock (NFSv4 and most
    cluster filesystems; Lustre only when mounted with ``-o flock``)."""
    with ExitStack() as held:
        for folder in folders:
            held.enter_context(_folder_lock(Path(folder)))
        yield


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 256).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise FolderLockedError(
                f"{folder} is being written by {holder} (it holds {path}); not writing into it. Wait for that job "
                "to end (or stop it) and rerun"
            ) from None
        try:  # the file may have been removed by its last holder between our open and flock: then take a new one
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held: a waiting process then sees a removed file and retries
        os.close(fd)
