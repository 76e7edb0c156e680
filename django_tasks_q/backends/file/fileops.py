"""Reading and removing the file storage's files safely.

Message files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` before a byte is read, so a
symbolic link, a FIFO, a device or a file over the size limit never blocks a worker or fills its memory.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat


class Unreadable(Exception):
    """A message's name points at something that is not a regular file of an acceptable size."""


_SAFE_OPEN = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)

_FILE_TYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


def _kind_of(mode: int) -> str:
    return next((what for test, what in _FILE_TYPES if test(mode)), "not a regular file")


def read_file(path: str) -> bytes | None:
    """Return the file's bytes, or ``None`` when it does not exist (any more)."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def read_message(path: str, limit: int) -> bytes | None:
    """Return a message file's bytes, ``None`` when it does not exist (any more), or raise :class:`Unreadable`.

    Opened without following a symbolic link and without blocking (a FIFO would wait for a writer forever),
    then checked with ``fstat`` before reading, so neither a special file nor a huge one is ever read.
    """
    try:
        fd = os.open(path, _SAFE_OPEN)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Unreadable("a symbolic link") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR, errno.EOPNOTSUPP):
            with contextlib.suppress(OSError):
                raise Unreadable(_kind_of(os.lstat(path).st_mode)) from None
            raise Unreadable("not a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unreadable(_kind_of(info.st_mode))
        if info.st_size > limit:
            raise Unreadable(f"a file of {info.st_size} bytes, over the limit of {limit} bytes")
        chunks = []
        size = 0
        want = info.st_size + 1
        while True:  # to the end, never past the limit (the file may grow while it is read)
            want = min(want, limit - size + 1)
            chunk = os.read(fd, want)
            size += len(chunk)
            if size > limit:
                raise Unreadable(f"a file growing past the limit of {limit} bytes")
            chunks.append(chunk)
            if len(chunk) < want:  # a short read of a regular file is its end
                break
            want = 64 * 1024
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def remove(path: str) -> bool:
    """Remove a file, a symbolic link (not its target) or a folder tree; whether something was there."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def unlink(path: str) -> bool:
    """Unlink a file; whether it was there (only the caller whose unlink succeeds gets ``True``)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
