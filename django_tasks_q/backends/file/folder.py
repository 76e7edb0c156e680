"""A queue's folder: the storage's options, its layout on disk, locks, atomic writes and unreadable records.

Every file is first written to ``tmp/`` under a random name (``fsync``-ed when ``fsync=True``), then renamed
into place, so a reader sees a whole file or nothing. The parts of the storage (the ready queue and schedule,
key/value data, dead letters, reliable delivery) build on :class:`FileFolder`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, TypeVar, cast

from django_tasks_q.backends.base import (
    UNREADABLE_RECORD,
    BaseStorage,
    check_bytes,
    log_unreadable_record,
    new_token,
)
from django_tasks_q.backends.errors import ConfigurationError, StorageError
from django_tasks_q.backends.file.fileops import Unreadable, read_message, unlink
from django_tasks_q.backends.file.names import DEAD_RE, SUBDIRS, dir_name, next_seq

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]  # checked before each use

F = TypeVar("F", bound=Callable[..., Any])


def operation(method: F) -> F:
    """Make a public storage method: folders ready, the thread lock held (if enabled), OS errors explained."""

    @functools.wraps(method)
    def wrapper(self: FileFolder, *args: Any, **kwargs: Any) -> Any:
        self._ensure_layout()
        with self._guard():
            try:
                return method(self, *args, **kwargs)
            except OSError as exc:
                raise self._os_error(exc, method.__name__) from exc

    return cast(F, wrapper)


def reason_record(reason: str, detail: str) -> bytes:
    """The content of a dead letter's reason file."""
    return json.dumps({"reason": str(reason), "detail": str(detail)}).encode("ascii")


class FileFolder(BaseStorage):
    """The folder ``path/<name>/`` of one queue: options, layout, locks and the atomic way of writing a file."""

    purge_interval: ClassVar[float] = 60.0
    """At most this often (seconds), a write also sweeps expired values and stale temporary files."""
    orphan_age: ClassVar[float] = 3600.0
    """Temporary files older than this (seconds) are leftovers of a crash and are removed by the sweep."""
    max_file_size: ClassVar[int] = 64 * 1024 * 1024
    """The largest message file (bytes) the storage reads; a bigger one is set aside unread and
    dead-lettered, and enqueueing a bigger message is refused."""

    def __init__(
        self,
        name: str = "huey",
        path: str | os.PathLike[str] = "/tmp/huey",
        levels: int = 2,
        use_thread_lock: bool = True,
        fsync: bool = False,
        **storage_kwargs: Any,
    ) -> None:
        super().__init__(name, **storage_kwargs)
        where = f"FileStorage({name!r})"
        if fcntl is None:  # pragma: no cover - not POSIX
            raise ConfigurationError(
                f"{where}: the file storage needs POSIX file locks (fcntl); use SqliteHuey"
            )
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{where}: the queue name must be a non-empty string")
        try:
            path = os.fspath(path)
        except TypeError:
            raise ConfigurationError(
                f"{where}: path must be a folder path (str or os.PathLike), got {type(path).__name__}"
            ) from None
        if not isinstance(path, str) or not path:
            raise ConfigurationError(f"{where}: path must be a non-empty str folder path, got {path!r}")
        if isinstance(levels, bool) or not isinstance(levels, int) or not 0 <= levels <= 8:
            raise ConfigurationError(f"{where}: levels must be an int from 0 to 8, got {levels!r}")
        if use_thread_lock not in (True, False):  # 0 and 1 too (as written in a URL query)
            raise ConfigurationError(
                f"{where}: use_thread_lock must be True or False, got {use_thread_lock!r}"
            )
        if fsync not in (True, False):  # 0 and 1 too (as written in a URL query)
            raise ConfigurationError(f"{where}: fsync must be True or False, got {fsync!r}")
        self.path = path
        self.levels = levels
        self.fsync = bool(fsync)
        self.use_thread_lock = bool(use_thread_lock)
        self.root = os.path.join(os.path.abspath(path), dir_name(name))
        """This queue's folder: ``path/<name>`` (absolute)."""
        self._dirs = {sub: os.path.join(self.root, sub) for sub in SUBDIRS}
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._layout_pid = 0
        self._last_purge = time.monotonic()  # writes sweep expired values one purge_interval from now

    # ------------------------------------------------------------------ set-up, locks and errors

    def _guard(self) -> contextlib.AbstractContextManager[Any]:
        if not self.use_thread_lock:
            return contextlib.nullcontext()
        if os.getpid() != self._pid:  # forked: the parent's lock may have been held by another thread
            self._lock = threading.RLock()
            self._pid = os.getpid()
        return self._lock

    def _ensure_layout(self) -> None:
        """Create the folders (once per process) and check that they are writable."""
        if self._layout_pid == os.getpid():
            return
        where = f"FileStorage({self.name!r}) path={self.path!r}"
        try:
            for folder in self._dirs.values():
                os.makedirs(folder, exist_ok=True)
            probe = os.path.join(self._dirs["tmp"], f"probe-{new_token()}.tmp")
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.close(fd)
            os.unlink(probe)
        except (NotADirectoryError, FileExistsError) as exc:
            raise ConfigurationError(
                f"{where}: cannot create the storage folder {self.root!r}: {exc.strerror} ({exc.filename!r} is "
                "a file, not a folder). Set path= to a folder; it is created when missing"
            ) from exc
        except OSError as exc:
            raise ConfigurationError(
                f"{where}: cannot create or write the storage folder {self.root!r}: {exc.strerror or exc}. "
                "Create it and make it writable by the user running Django and the consumer, or set path= to "
                "a writable folder on a local disk"
            ) from exc
        self._layout_pid = os.getpid()

    def _os_error(self, exc: OSError, action: str) -> Exception:
        where = f"FileStorage({self.name!r}) path={self.path!r}"
        if isinstance(exc, FileNotFoundError) and not os.path.isdir(self.root):
            self._layout_pid = 0  # the folders are created again by the next operation
            return StorageError(
                f"{where}: {action} failed: the storage folder {self.root!r} disappeared while in use ({exc}); "
                "it is created again on the next operation, but what it held is gone"
            )
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return ConfigurationError(
                f"{where}: {action} failed: {exc}. Make {self.root!r} writable by the user running Django and "
                "the consumer, or set path= to a writable folder"
            )
        if exc.errno == errno.ENOSPC:
            return StorageError(f"{where}: {action} failed: the disk is full ({exc}); free space")
        return StorageError(f"{where}: {action} failed: {exc}")

    @contextlib.contextmanager
    def _flock(self, lock_name: str) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``locks/<lock_name>`` (a fresh descriptor: it excludes threads too)."""
        fd = os.open(os.path.join(self._dirs["locks"], lock_name), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ paths and listings

    def _ready_path(self, name: str) -> str:
        return os.path.join(self._dirs["ready"], name)

    def _dead_path(self, name: str) -> str:
        return os.path.join(self._dirs["dead"], name)

    def _dead_entries(self) -> list[re.Match[str]]:
        """The dead letters' message files, oldest first."""
        matches = (DEAD_RE.match(name) for name in os.listdir(self._dirs["dead"]))
        return sorted((m for m in matches if m is not None), key=lambda m: m.group(0))

    def _sweep_leftovers(self) -> None:
        """Remove what a crash left behind, once older than ``orphan_age``: files in ``tmp/`` and reason files in
        ``dead/`` without their message file."""
        stale = time.time() - self.orphan_age
        letters = {match.group(1) for match in self._dead_entries()}
        leftovers = [os.path.join(self._dirs["tmp"], name) for name in os.listdir(self._dirs["tmp"])]
        leftovers += [
            self._dead_path(name)
            for name in os.listdir(self._dirs["dead"])
            if name.endswith(".json") and name[: -len(".json")] not in letters
        ]
        for path in leftovers:
            try:
                if os.stat(path).st_mtime < stale:
                    unlink(path)
            except FileNotFoundError:
                pass

    # ------------------------------------------------------------------ writing files atomically

    def _stage(self, content: bytes) -> str:
        """Write ``content`` to a new file in ``tmp/`` (``fsync``-ed when ``fsync=True``); return its path."""
        staged = os.path.join(self._dirs["tmp"], f"{new_token()}.tmp")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(content)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            unlink(staged)
            raise
        os.close(fd)
        return staged

    def _sync_dir(self, folder: str) -> None:
        """Make the renames into ``folder`` durable (``fsync=True`` only)."""
        if not self.fsync:
            return
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError:  # some file systems cannot fsync a folder
            pass
        finally:
            os.close(fd)

    def _rename_staged(self, staged: str, destination: str) -> None:
        """Rename a staged file to ``destination`` (replacing any file there); remove it if that fails."""
        try:
            os.rename(staged, destination)
        except BaseException:
            unlink(staged)
            raise

    def _publish(self, content: bytes, destination: str) -> None:
        """Stage ``content`` and rename it to ``destination`` (replacing any file there); visible whole or not at
        all, and durable on return when ``fsync=True``."""
        self._rename_staged(self._stage(content), destination)
        self._sync_dir(os.path.dirname(destination))

    def _write_reason(self, key: str, reason: str, detail: str) -> None:
        self._publish(reason_record(reason, detail), self._dead_path(f"{key}.json"))

    # ------------------------------------------------------------------ records that cannot be read

    def _checked(self, data: bytes) -> bytes:
        data = check_bytes(data, "data")
        if len(data) > self.max_file_size:
            raise ValueError(
                f"FileStorage({self.name!r}): a message of {len(data)} bytes is over the storage's limit of "
                f"{self.max_file_size} bytes (FileStorage.max_file_size)"
            )
        return data

    def _load(self, area: str, name: str, message_id: str, claims: int, priority: int | None) -> bytes | None:
        """Read the message file ``area/name``; set it aside and dead-letter it when it cannot be read.

        Returns ``None`` when the file is gone (another worker took it) or was set aside.
        """
        path = os.path.join(self._dirs[area], name)
        try:
            return read_message(path, self.max_file_size)
        except Unreadable as exc:
            self._set_aside(
                path, f"{area}/{name}", f"it is {exc}, not a message file", message_id, claims, priority
            )
            return None

    def _set_aside(
        self, path: str, where: str, detail: str, message_id: str, claims: int, priority: int | None
    ) -> bool:
        """Move ``path`` unread into ``quarantine/`` (one rename: exactly one of racing workers does it), then
        write a dead letter describing it (empty bytes) and log it once."""
        quarantine = os.path.join(self.root, "quarantine")
        os.makedirs(quarantine, exist_ok=True)
        key = f"{next_seq():020d}-{message_id}"
        try:
            os.rename(path, os.path.join(quarantine, key))
        except FileNotFoundError:
            return False
        detail = f"{detail}; moved unread to quarantine/{key}"
        self._write_reason(key, UNREADABLE_RECORD, detail)
        prio = "n" if priority is None else str(priority)
        self._publish(b"", self._dead_path(f"{key}.{claims}.{prio}.msg"))
        log_unreadable_record(self.name, f"{self.root}/{where}", detail)
        return True

    def _readable(self, area: str, names: Iterable[str], limit: int | None) -> Iterator[tuple[str, bytes]]:
        """``(name, bytes)`` of the listed message files in ``area`` that can be read, at most ``limit`` of them.

        For listings: a file that is gone or cannot be read is skipped, left for a claim to set aside.
        """
        wanted = None if limit is None else max(int(limit), 0)
        if wanted == 0:
            return
        found = 0
        for name in names:
            try:
                data = read_message(os.path.join(self._dirs[area], name), self.max_file_size)
            except Unreadable:
                continue
            if data is None:
                continue
            yield name, data
            found += 1
            if found == wanted:
                return
