"""Crash-safe writes: a file or a folder appears whole under its final name, or not at all.

Everything is written under a temporary name in the same folder, flushed to the disk (``fsync`` of the files,
then of the folder that holds them) and renamed; a rename within one file system is atomic, so a process
killed at any point (``kill -9``, power loss after the ``fsync``) leaves either the old state or the new one,
plus at most a ``.tmp-*`` leftover that ``remove_leftovers`` deletes on the next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from typing import Callable, Iterator

import numpy as np

TMP_PREFIX = ".tmp-"


def fsync_folder(folder: str) -> None:
    """Makes the folder's entries (a rename into it) durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_file(path: str | os.PathLike, write: Callable) -> str:
    """``write(file_object)`` into a temporary file beside ``path``, fsync, rename onto ``path``."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=TMP_PREFIX)
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    fsync_folder(folder)
    return path


def write_json(path: str | os.PathLike, data) -> str:
    return write_file(path, lambda f: f.write(json.dumps(data, indent=1, default=float).encode()))


def read_json(path: str | os.PathLike, default=None):
    """The JSON document at ``path``; ``default`` when there is none."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def write_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> str:
    """An uncompressed ``.npz`` of ``arrays``, atomically."""
    return write_file(path, lambda f: np.savez(f, **arrays))


@contextlib.contextmanager
def folder_commit(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary folder beside ``path``; when the block ends normally, every file in it is fsync'ed
    and the folder renamed to ``path`` (which must not exist). On an exception the temporary folder is removed."""
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    temporary = tempfile.mkdtemp(dir=parent, prefix=TMP_PREFIX)
    try:
        yield temporary
        for name in os.listdir(temporary):
            with open(os.path.join(temporary, name), "rb") as f:
                os.fsync(f.fileno())
        fsync_folder(temporary)
        os.rename(temporary, path)
        fsync_folder(parent)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)


def remove_leftovers(folder: str | os.PathLike) -> int:
    """Deletes the ``.tmp-*`` files and folders a killed writer left in ``folder``; returns how many."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return 0
    count = 0
    for name in os.listdir(folder):
        if name.startswith(TMP_PREFIX):
            target = os.path.join(folder, name)
            shutil.rmtree(target, ignore_errors=True) if os.path.isdir(target) else os.remove(target)
            count += 1
    return count


class IndexBusyError(RuntimeError):
    """Another process is writing the same index."""


@contextlib.contextmanager
def writer_lock(folder: str | os.PathLike) -> Iterator[None]:
    """One writer per index at a time (an advisory ``flock`` on ``folder/lock``, released by the kernel when
    the process dies, so a killed writer never leaves the index locked)."""
    import fcntl

    os.makedirs(folder, exist_ok=True)
    handle = os.open(os.path.join(folder, "lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise IndexBusyError(f"{folder}: another artdup process is writing this index") from None
        yield
    finally:
        os.close(handle)
