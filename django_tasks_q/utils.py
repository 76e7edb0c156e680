"""The helpers huey documents in ``huey.utils``, for code written against them.

* :func:`utcnow` — the current UTC time as a *naive* datetime (huey's convention for ``utc=True``);
* :func:`normalize_time` / :func:`normalize_expire_time` — an ``eta`` or a ``delay`` (or an ``expires``) as the
  naive datetime huey's hub stores: UTC with ``utc=True``, the machine's local time with ``utc=False``;
* :class:`FileLock` — an exclusive ``flock`` on a file, as a context manager;
* :func:`process_timeout` — raise :class:`~django_tasks_q.exceptions.TaskTimeout` in a block that runs too long.

The hub compares and stores aware UTC datetimes (:mod:`django_tasks_q.timeutils`); a queue built in code shows
naive ones like these helpers return (see :class:`~django_tasks_q.hub.queue.TaskQueue`).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from .timeouts import TimeLimit
from .timeutils import now_utc, to_utc

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]  # checked before each use

__all__ = ["FileLock", "normalize_expire_time", "normalize_time", "process_timeout", "utcnow"]


def utcnow() -> dt.datetime:
    """The current UTC time as a naive datetime."""
    return now_utc().replace(tzinfo=None)


def normalize_time(
    eta: dt.datetime | None = None, delay: float | dt.timedelta | None = None, utc: bool = True
) -> dt.datetime:
    """Return when something is due, as a naive datetime in UTC (``utc=True``) or in local time.

    Give exactly one of ``eta`` (a datetime: a naive one is local time, an aware one is converted) or ``delay``
    (seconds or a timedelta from now; ``0`` means now). Raises ``ValueError`` otherwise.
    """
    if (eta is None) == (delay is None):
        raise ValueError("give either an eta (a datetime) or a delay (seconds or a timedelta), not both or neither")
    if delay is not None:
        if not isinstance(delay, dt.timedelta):
            if isinstance(delay, bool) or not isinstance(delay, int | float):
                raise ValueError(f"delay must be a number of seconds or a timedelta, got {delay!r}")
            delay = dt.timedelta(seconds=delay)
        return (utcnow() if utc else dt.datetime.now()) + delay
    if not isinstance(eta, dt.datetime):
        raise ValueError(f"eta must be a datetime, got {type(eta).__name__}: {eta!r}")
    aware = eta.tzinfo is not None and eta.utcoffset() is not None
    if utc:
        return to_utc(eta, naive_is_utc=False).replace(tzinfo=None)
    return eta.astimezone().replace(tzinfo=None) if aware else eta


def normalize_expire_time(expires: dt.datetime | float | dt.timedelta, utc: bool = True) -> dt.datetime:
    """:func:`normalize_time` of an ``expires`` value: a datetime is an eta, anything else a delay."""
    if isinstance(expires, dt.datetime):
        return normalize_time(eta=expires, utc=utc)
    return normalize_time(delay=expires, utc=utc)


class FileLock:
    """An exclusive lock on ``filename`` (``fcntl.flock``), shared between threads and processes.

    The folder is created if needed; the file is created on first :meth:`acquire` and never removed, so
    building another lock on the same path never disturbs a holder. Use it as a context manager.
    """

    def __init__(self, filename: str | os.PathLike[str]) -> None:
        """Remember ``filename`` and create its folder."""
        if fcntl is None:  # pragma: no cover - not POSIX
            raise OSError("FileLock needs fcntl.flock (a POSIX system)")
        self.filename = os.fspath(filename)
        self.fd: int | None = None
        folder = os.path.dirname(self.filename)
        if folder:
            os.makedirs(folder, exist_ok=True)

    def acquire(self) -> None:
        """Wait until the lock is ours."""
        fd = os.open(self.filename, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def release(self) -> None:
        """Give the lock up (harmless when it is not held)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.release()


def process_timeout(seconds: float) -> TimeLimit:
    """A context manager that raises :class:`~django_tasks_q.exceptions.TaskTimeout` in its block after
    ``seconds`` (fractions work): an interval timer in the main thread, cooperative in other threads."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    return TimeLimit(seconds)
