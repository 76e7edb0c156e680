"""File storage: the whole contract in a folder, maildir style, safe for several processes on one host.

Parameters (huey's ``FileStorage`` names and defaults)
------------------------------------------------------

``path='/tmp/huey'``
    The base folder. This queue's files live in ``path/<name>/`` (the queue name, with characters other than
    letters, digits, ``-``, ``_`` and ``.`` percent-encoded), so several queues can share one ``path``. The
    folders are created on the first operation, not when the storage is built. A relative path is resolved
    against the working directory when the storage is created.
``levels=2``
    How many levels of hashed sub-folders hold key/value entries and counters (``data/3f/a2/<sha256>``), so
    that no folder grows too large. It is part of the layout: changing it hides the existing values.
``fsync=False``
    ``False``: a file is complete before it is renamed into place, so a crash of any process never exposes half
    a message or loses one the call returned for; a power failure may lose the last writes (a message file cut
    short by it fails verification and becomes a dead letter; it is never half-run). ``True``: every write is ``fsync``-ed (the file,
    then its folder) before the call returns, durable across a power failure, at several times the cost of an
    enqueue. The same trade as the SQLite storage's ``fsync``.
``use_thread_lock=True``
    Serialize this storage's operations within the process with a lock. Operations are safe without it (every
    one is atomic between processes, hence between threads); the lock only saves threads from racing each
    other for the same files. ``False`` lets threads work in parallel.

Layout of ``path/<name>/``
--------------------------

``tmp/``
    Every file is first written here under a random name (``fsync``-ed when ``fsync=True``), then renamed into
    place; a crash leaves at most an orphan here, never a half-written file elsewhere. Orphans older than an hour
    are removed.
``ready/<message_id>.<claims>``
    Ready messages. ``message_id`` is ``<inverted priority, 16 hex digits>-<enqueue time, ns, 20 digits>-
    <32 random hex digits>``, so the sorted folder listing is the delivery order (highest priority first,
    then first in, first out). ``claims`` counts the deliveries so far. The file holds the message's bytes.
``inflight/<message_id>.<claims>.<token>.<reserved_at, µs>``
    Reserved messages. The file's modification time is the lease deadline (``os.utime`` renews it); the
    fencing token is part of the name, so once a message is reclaimed or acknowledged the old holder's rename
    or unlink finds no file and fails.
``schedule/<due time, ns>-<sequence>-<random>.<priority>``
    Scheduled messages, in due order.
``data/<levels of hash folders>/<sha256 of key>``
    Key/value entries: one JSON header line (key, result flag, expiry) and the value's bytes.
``counters/<levels of hash folders>/<sha256 of key>``
    ``incr`` counters (JSON: key, value, expiry).
``dead/<order>-<id>.<attempts>.<priority>.msg`` and ``dead/<order>-<id>.json``
    A dead letter's bytes and its reason and detail. ``order`` is the time it was given up on (ns).
``locks/``
    Lock files for ``fcntl.flock``: ``inflight.lock`` and ``kv-<xx>.lock`` (256 stripes by key hash).
``quarantine/<order>-<id>``
    Created when first needed: what stood in ``ready/``, ``inflight/`` or ``schedule/`` under a message's name
    but was not a regular file of at most ``max_file_size`` bytes (a folder, a FIFO, a device, a symbolic
    link, a huge or sparse file). It is moved here unread, and a dead letter with the reason
    ``unreadable_record``, empty bytes and a detail naming what it was and where it went is written beside
    the others; purging or requeueing that dead letter removes it from here.

How each operation is atomic
----------------------------

* ``enqueue`` / ``add_to_schedule`` / ``put_data`` / dead letters: write to ``tmp/``, ``rename`` into place (with
  ``fsync=True``: ``fsync`` the file before the rename and the folder after it). A reader sees the whole file or
  nothing.
* ``reserve``: set the ready file's mtime to the new deadline, then ``rename`` it into ``inflight/`` under a
  name carrying a fresh token. Exactly one of several racing processes' renames succeeds; the others move on
  to the next file. The message is on disk, in ``ready/`` or ``inflight/``, at every instant.
* ``dequeue`` / ``read_schedule``: read the file, then ``unlink`` it; only the caller whose ``unlink``
  succeeds returns it.
* ``release`` / ``bury`` / ``requeue_expired`` / ``enqueue_due`` / ``requeue_dead_letter``: one ``rename``
  (back to ``ready/`` under the original ``message_id``, hence the original place; or into ``dead/``, after
  staging the reason file, so that a full disk leaves the message where it was).
* Message files are opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat`` before a byte is read,
  so a symbolic link, a FIFO, a device or a file over ``max_file_size`` never blocks a worker or fills its
  memory: it is set aside into ``quarantine/`` (one ``rename``) and dead-lettered instead.
* ``ack``: ``unlink`` of the token-named file. With a result, under the ``inflight.lock`` ``flock``: check the
  file, write the result, then unlink; a crash in between leaves the result written and the message in flight,
  to be redelivered (at least once), and a stale holder never writes a result.
* ``renew`` and ``requeue_expired`` hold ``inflight.lock``, so a lease cannot be renewed between the reaper's
  check of its deadline and its reclaim.
* ``put_if_empty`` / ``incr`` / ``put_data`` and the purge of expired values hold the key's stripe lock;
  ``put_if_empty`` creates the entry with ``link()``, which fails if the name exists. ``pop_data`` and
  ``delete_data`` take the entry by renaming it into ``tmp/`` first: exactly one caller gets it.

Requirements and limits: a POSIX system (``fcntl``), one host (locks and renames are not reliable on network
file systems such as NFS or SMB: do not use this storage there), a file system with sub-second modification
times for short leases, and clocks that do not jump backwards (file names carry wall-clock times).
Enumerating results and purging expired values walk the whole ``data/`` tree.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import heapq
import json
import logging
import os
import re
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, TypeVar, cast

from django_tasks_q.backends.base import (
    UNREADABLE_RECORD,
    BaseStorage,
    DeadLetter,
    EmptyData,
    EmptyDataType,
    Reclaimed,
    Reservation,
    ResultWrite,
    bounded_priority,
    check_bytes,
    check_key,
    expired_verdict,
    expiry_time,
    is_live,
    log_unreadable_record,
    made_progress,
    new_token,
    schedule_time,
)
from django_tasks_q.backends.errors import ConfigurationError, StorageError
from django_tasks_q.backends.watch import ChangeWatch, probe_poller

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileStorage"]

logger = logging.getLogger("django_tasks_q.backends.file")

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})

F = TypeVar("F", bound=Callable[..., Any])

_SUBDIRS = ("tmp", "ready", "inflight", "schedule", "data", "counters", "dead", "locks")
_PRIORITY_BIAS = 2**63 - 1
_MAX_NS = 10**20 - 1
_HEADER_LIMIT = 64 * 1024

_MID = r"[0-9a-f]{16}-[0-9]{20}-[0-9a-f]{32}"
_MID_RE = re.compile(rf"^{_MID}$")
_TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
_READY_RE = re.compile(rf"^({_MID})\.([0-9]+)$")
_INFLIGHT_RE = re.compile(rf"^({_MID})\.([0-9]+)\.([0-9a-f]{{32}})\.([0-9]+)$")
_SCHEDULE_RE = re.compile(r"^([0-9]{20})-([0-9]{20})-([0-9a-f]{32})\.(-?[0-9]+)$")
_DEAD_RE = re.compile(r"^(([0-9]{20})-([0-9a-f-]+))\.([0-9]+)\.(-?[0-9]+|n)\.msg$")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")

# ---------------------------------------------------------------------------- a per-process sequence

_seq_lock = threading.Lock()
_last_seq = 0


def _next_seq() -> int:
    """Return wall-clock nanoseconds, strictly increasing within this process."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(time.time_ns(), _last_seq + 1)
        return _last_seq


def _reset_seq_lock() -> None:
    global _seq_lock
    _seq_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_seq_lock)

# ---------------------------------------------------------------------------- small helpers


def _ns(timestamp: float) -> int:
    return min(max(int(schedule_time(timestamp) * 1e9), 0), _MAX_NS)


def _new_message_id(priority: int) -> str:
    return f"{_PRIORITY_BIAS - priority:016x}-{_next_seq():020d}-{new_token()}"


def _message_priority(message_id: str) -> int:
    return _PRIORITY_BIAS - int(message_id[:16], 16)


def _dir_name(name: str) -> str:
    """The queue name as one safe folder name (percent-encoding anything unusual, and a leading dot)."""
    out = []
    for char in name:
        if char.isascii() and (char.isalnum() or char in "-_."):
            out.append(char)
        else:
            out.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    encoded = "".join(out)
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded


def _read(path: str) -> bytes | None:
    """Return the file's bytes, or ``None`` when it does not exist (any more)."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


class _Unreadable(Exception):
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


def _read_message(path: str, limit: int) -> bytes | None:
    """Return a message file's bytes, ``None`` when it does not exist (any more), or raise :class:`_Unreadable`.

    Opened without following a symbolic link and without blocking (a FIFO would wait for a writer forever),
    then checked with ``fstat`` before reading, so neither a special file nor a huge one is ever read.
    """
    try:
        fd = os.open(path, _SAFE_OPEN)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Unreadable("a symbolic link") from None
        if exc.errno in (errno.ENXIO, errno.EISDIR, errno.EOPNOTSUPP):
            with contextlib.suppress(OSError):
                raise _Unreadable(_kind_of(os.lstat(path).st_mode)) from None
            raise _Unreadable("not a regular file") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Unreadable(_kind_of(info.st_mode))
        if info.st_size > limit:
            raise _Unreadable(f"a file of {info.st_size} bytes, over the limit of {limit} bytes")
        chunks = []
        size = 0
        want = info.st_size + 1
        while True:  # to the end, never past the limit (the file may grow while it is read)
            want = min(want, limit - size + 1)
            chunk = os.read(fd, want)
            size += len(chunk)
            if size > limit:
                raise _Unreadable(f"a file growing past the limit of {limit} bytes")
            chunks.append(chunk)
            if len(chunk) < want:  # a short read of a regular file is its end
                break
            want = 64 * 1024
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


def _remove(path: str) -> bool:
    """Remove a file, a symbolic link (not its target) or a folder tree; whether something was there."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _encode_entry(key: str, value: bytes, is_result: bool, expires_at: float | None) -> bytes:
    header = json.dumps({"key": key, "result": is_result, "expires": expires_at}, ensure_ascii=True)
    if len(header) >= _HEADER_LIMIT:
        raise ValueError(f"key is too long for the file storage ({len(key)} characters)")
    return header.encode("ascii") + b"\n" + value


def _decode_entry(raw: bytes) -> tuple[str, bool, float | None, bytes] | None:
    """Return ``(key, is_result, expires_at, value)``, or ``None`` for bytes that are not an entry."""
    newline = raw.find(b"\n", 0, _HEADER_LIMIT)
    if newline < 0:
        return None
    try:
        header = json.loads(raw[:newline])
        return str(header["key"]), bool(header["result"]), header["expires"], raw[newline + 1 :]
    except (ValueError, KeyError, TypeError):
        return None


def _operation(method: F) -> F:
    """Make a public method: folders ready, the thread lock held (if enabled), OS errors explained."""

    @functools.wraps(method)
    def wrapper(self: FileStorage, *args: Any, **kwargs: Any) -> Any:
        self._ensure_layout()
        with self._guard():
            try:
                return method(self, *args, **kwargs)
            except OSError as exc:
                raise self._os_error(exc, method.__name__) from exc

    return cast(F, wrapper)


def _priority(priority: int | None) -> int:
    return bounded_priority(priority, 64, "in a 64-bit integer")


class FileStorage(BaseStorage):
    """Storage in a folder of files: durable, reliable (at least once), shared by the processes of one host.

    See the module documentation for the parameters, the layout on disk and how each operation is atomic.
    Not for network file systems.
    """

    blocking = False
    priority = True
    reliable = True

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
        self.root = os.path.join(os.path.abspath(path), _dir_name(name))
        """This queue's folder: ``path/<name>`` (absolute)."""
        self._dirs = {sub: os.path.join(self.root, sub) for sub in _SUBDIRS}
        self._pid = os.getpid()
        self._lock = threading.RLock()
        self._layout_pid = 0
        self._last_purge = time.monotonic()
        self._watch: ChangeWatch | None = None
        self._watch_pid = 0

    def __repr__(self) -> str:
        return f"<FileStorage name={self.name!r} path={self.path!r}>"

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

    def _kv_lock(self, digest: str) -> contextlib.AbstractContextManager[None]:
        return self._flock(f"kv-{digest[:2]}.lock")

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
            _unlink(staged)
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

    def _publish(self, content: bytes, destination: str) -> None:
        """Stage ``content`` and rename it to ``destination`` (replacing any file there); visible whole or not at
        all, and durable on return when ``fsync=True``."""
        staged = self._stage(content)
        try:
            os.rename(staged, destination)
        except BaseException:
            _unlink(staged)
            raise
        self._sync_dir(os.path.dirname(destination))

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
            return _read_message(path, self.max_file_size)
        except _Unreadable as exc:
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
        key = f"{_next_seq():020d}-{message_id}"
        try:
            os.rename(path, os.path.join(quarantine, key))
        except FileNotFoundError:
            return False
        detail = f"{detail}; moved unread to quarantine/{key}"
        self._write_reason(key, UNREADABLE_RECORD, detail)
        prio = "n" if priority is None else str(priority)
        self._publish(b"", os.path.join(self._dirs["dead"], f"{key}.{claims}.{prio}.msg"))
        log_unreadable_record(self.name, f"{self.root}/{where}", detail)
        return True

    def _message_at(self, area: str, name: str) -> bytes | None:
        """Read a message file for a listing: ``None`` when it is gone or cannot be read (left for a claim)."""
        try:
            return _read_message(os.path.join(self._dirs[area], name), self.max_file_size)
        except _Unreadable:
            return None

    # ------------------------------------------------------------------ the queue

    def _ready_names(self) -> list[str]:
        return sorted(name for name in os.listdir(self._dirs["ready"]) if _READY_RE.match(name))

    def _ready_in_order(self) -> Iterator[str]:
        """Ready names in delivery order, lazily: a heap, so taking the first few costs one listing."""
        names = os.listdir(self._dirs["ready"])
        heapq.heapify(names)
        while names:
            name = heapq.heappop(names)
            if _READY_RE.match(name):
                yield name

    def _ready_path(self, name: str) -> str:
        return os.path.join(self._dirs["ready"], name)

    @_operation
    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """Write the message to ``tmp/`` and rename it into ``ready/``."""
        data = self._checked(data)
        message_id = _new_message_id(_priority(priority))
        self._publish(data, self._ready_path(f"{message_id}.0"))
        self._wake_waiters()

    def wait_for_messages(self, timeout: float, wake: threading.Event | None = None) -> bool:
        """Wait for a change of ``ready/``: its modification time, read every 50 ms (every 4 ms for a second once
        two changes came less than a second apart) by one waiting thread per process; an enqueue of this process wakes the waiters at once."""
        self._ensure_layout()
        watch = self._watch
        if watch is None or self._watch_pid != os.getpid():
            ready = self._dirs["ready"]
            watch = self._watch = ChangeWatch(probe_poller(lambda: os.stat(ready).st_mtime_ns))
            self._watch_pid = os.getpid()
        return watch.wait(timeout, wake)

    def _wake_waiters(self) -> None:
        watch = self._watch
        if watch is not None and self._watch_pid == os.getpid():
            watch.notify()

    @_operation
    def enqueue_many(self, items: list[tuple[bytes, int | None]]) -> None:
        """Publish the messages in order under the thread lock: each is written to ``tmp/``, then each is renamed
        into ``ready/`` (with ``fsync=True``: each file is fsynced, and ``ready/`` once for the whole list).

        Each message is atomic, the list is not: after a failure the messages renamed before it are published
        and the rest are removed from ``tmp/``.
        """
        checked = [(self._checked(data), _priority(priority)) for data, priority in items]
        staged: list[tuple[str, str]] = []
        published = 0
        try:
            for data, priority in checked:
                staged.append((self._stage(data), self._ready_path(f"{_new_message_id(priority)}.0")))
            for source, destination in staged:
                os.rename(source, destination)
                published += 1
        finally:
            for source, _destination in staged[published:]:
                _unlink(source)
            if published:
                self._sync_dir(self._dirs["ready"])
                self._wake_waiters()

    @_operation
    def dequeue(self) -> bytes | None:
        """Read the first ready file and unlink it; the caller whose unlink succeeds has it."""
        for name in self._ready_in_order():
            path = self._ready_path(name)
            match = _READY_RE.match(name)
            assert match is not None
            message_id = match.group(1)
            data = self._load("ready", name, message_id, int(match.group(2)), _message_priority(message_id))
            if data is not None and _unlink(path):
                return data
        return None

    @_operation
    def queue_size(self) -> int:
        """Count the files in ``ready/``."""
        return len(self._ready_names())

    @_operation
    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """Read ready files in delivery order (the sorted listing)."""
        wanted = None if limit is None else max(int(limit), 0)
        items: list[bytes] = []
        for name in self._ready_in_order():
            if wanted is not None and len(items) >= wanted:
                break
            data = self._message_at("ready", name)
            if data is not None:
                items.append(data)
        return items

    @_operation
    def flush_queue(self) -> None:
        """Unlink every ready file."""
        for name in self._ready_names():
            _remove(self._ready_path(name))

    # ------------------------------------------------------------------ the schedule

    def _schedule_names(self) -> list[str]:
        return sorted(name for name in os.listdir(self._dirs["schedule"]) if _SCHEDULE_RE.match(name))

    def _due_names(self, timestamp: float) -> list[str]:
        cutoff = _ns(timestamp)
        return [name for name in self._schedule_names() if int(name[:20]) <= cutoff]

    def _schedule_path(self, name: str) -> str:
        return os.path.join(self._dirs["schedule"], name)

    @_operation
    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        """Write the item to ``tmp/``, rename it into ``schedule/`` (due time and priority in its name)."""
        data = self._checked(data)
        prio = _priority(priority)
        name = f"{_ns(timestamp):020d}-{_next_seq():020d}-{new_token()}.{prio}"
        self._publish(data, self._schedule_path(name))

    @_operation
    def read_schedule(self, timestamp: float) -> list[bytes]:
        """Read each due file and unlink it; an item is returned by the caller whose unlink succeeds."""
        items = []
        for name in self._due_names(timestamp):
            path = self._schedule_path(name)
            data = self._load("schedule", name, new_token(), 0, int(name.rsplit(".", 1)[1]))
            if data is not None and _unlink(path):
                items.append(data)
        return items

    @_operation
    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        """Read scheduled files, earliest first."""
        wanted = None if limit is None else max(int(limit), 0)
        items: list[bytes] = []
        for name in self._schedule_names():
            if wanted is not None and len(items) >= wanted:
                break
            data = self._message_at("schedule", name)
            if data is not None:
                items.append(data)
        return items

    @_operation
    def schedule_size(self) -> int:
        """Count the files in ``schedule/``."""
        return len(self._schedule_names())

    @_operation
    def flush_schedule(self) -> None:
        """Unlink every scheduled file."""
        for name in self._schedule_names():
            _remove(self._schedule_path(name))

    @_operation
    def enqueue_due(self, timestamp: float) -> int:
        """Rename each due file into ``ready/`` with a new message id (its priority kept); one rename each."""
        moved = 0
        for name in self._due_names(timestamp):
            prio = int(name.rsplit(".", 1)[1])
            target = self._ready_path(f"{_new_message_id(prio)}.0")
            try:
                os.rename(self._schedule_path(name), target)
            except FileNotFoundError:
                continue  # another scheduler moved it
            moved += 1
        if moved:
            self._sync_dir(self._dirs["ready"])
            self._wake_waiters()
        return moved

    # ------------------------------------------------------------------ key/value data

    def _entry_path(self, area: str, key: str) -> tuple[str, str]:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        parts = [digest[2 * level : 2 * level + 2] for level in range(self.levels)]
        return os.path.join(self._dirs[area], *parts, digest), digest

    def _read_entry(self, path: str, key: str, now: float) -> tuple[bytes, bool] | None:
        """Return ``(value, is_result)`` of a live entry for ``key`` at ``path``, else ``None``."""
        raw = _read(path)
        if raw is None:
            return None
        entry = _decode_entry(raw)
        if entry is None or entry[0] != key or not is_live(entry[2], now):
            return None
        return entry[3], entry[1]

    def _put(self, key: str, value: bytes, is_result: bool, expires_at: float | None) -> None:
        path, digest = self._entry_path("data", key)
        staged = self._stage(_encode_entry(key, value, is_result, expires_at))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with self._kv_lock(digest):
                os.rename(staged, path)
        except BaseException:
            _unlink(staged)
            raise
        self._sync_dir(os.path.dirname(path))

    def _take(self, path: str) -> bytes | None:
        """Atomically remove the file at ``path`` by renaming it into ``tmp/``; return its bytes or ``None``."""
        taken = os.path.join(self._dirs["tmp"], f"{new_token()}.taken")
        try:
            os.rename(path, taken)
        except FileNotFoundError:
            return None
        try:
            return _read(taken)
        finally:
            _unlink(taken)

    @_operation
    def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None:
        """Stage the entry and rename it over the key's file (under the key's stripe lock)."""
        key = check_key(key)
        value = check_bytes(value, "value")
        expires_at = expiry_time(ttl, time.time())
        self._put(key, value, bool(is_result), expires_at)
        self._maybe_purge()

    @_operation
    def peek_data(self, key: str) -> bytes | EmptyDataType:
        """Read the key's file; an expired entry is no value."""
        key = check_key(key)
        found = self._read_entry(self._entry_path("data", key)[0], key, time.time())
        return EmptyData if found is None else found[0]

    @_operation
    def pop_data(self, key: str) -> bytes | EmptyDataType:
        """Take the key's file by renaming it away, then read it: exactly one caller gets the value."""
        key = check_key(key)
        raw = self._take(self._entry_path("data", key)[0])
        entry = None if raw is None else _decode_entry(raw)
        if entry is None or entry[0] != key or not is_live(entry[2], time.time()):
            return EmptyData
        return entry[3]

    @_operation
    def has_data_for_key(self, key: str) -> bool:
        """Whether the key's file holds a live entry."""
        key = check_key(key)
        return self._read_entry(self._entry_path("data", key)[0], key, time.time()) is not None

    @_operation
    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Under the key's stripe lock: drop an expired entry, then ``link()`` the staged file into place."""
        key = check_key(key)
        value = check_bytes(value, "value")
        now = time.time()
        expires_at = expiry_time(ttl, now)
        path, digest = self._entry_path("data", key)
        staged = self._stage(_encode_entry(key, value, False, expires_at))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with self._kv_lock(digest):
                if self._read_entry(path, key, now) is not None:
                    return False
                _unlink(path)  # an expired entry (or nothing)
                try:
                    os.link(staged, path)
                except FileExistsError:
                    return False
        finally:
            _unlink(staged)
        self._sync_dir(os.path.dirname(path))
        self._maybe_purge()
        return True

    @_operation
    def delete_data(self, key: str) -> bool:
        """Take the key's file by renaming it away; ``True`` if it held a live entry."""
        key = check_key(key)
        raw = self._take(self._entry_path("data", key)[0])
        entry = None if raw is None else _decode_entry(raw)
        return entry is not None and entry[0] == key and is_live(entry[2], time.time())

    @_operation
    def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """Walk ``data/`` and return the sorted keys of live entries starting with ``prefix``."""
        now = time.time()
        keys = []
        for path, _digest in self._entry_files("data"):
            raw = _read(path)
            entry = None if raw is None else _decode_entry(raw)
            if entry is not None and entry[0].startswith(prefix) and is_live(entry[2], now):
                keys.append(entry[0])
        keys.sort()
        return keys if limit is None else keys[:limit]

    def _entry_files(self, area: str) -> Iterator[tuple[str, str]]:
        for folder, _subfolders, files in os.walk(self._dirs[area]):
            for filename in files:
                if _HASH_RE.match(filename):
                    yield os.path.join(folder, filename), filename

    def _remove_entry_if(self, path: str, digest: str, condition: Callable[[bytes], bool]) -> bool:
        """Under the stripe lock, unlink ``path`` if its current bytes satisfy ``condition``."""
        with self._kv_lock(digest):
            raw = _read(path)
            if raw is None or not condition(raw):
                return False
            return _unlink(path)

    @_operation
    def flush_all(self) -> None:
        """Unlink every message, scheduled item, reservation, dead letter, entry and counter of this queue."""
        for area in ("ready", "schedule", "dead"):
            folder = self._dirs[area]
            for name in os.listdir(folder):
                _remove(os.path.join(folder, name))
        _remove(os.path.join(self.root, "quarantine"))
        with self._flock("inflight.lock"):
            for name in os.listdir(self._dirs["inflight"]):
                _remove(os.path.join(self._dirs["inflight"], name))
        for area in ("data", "counters"):
            for path, digest in list(self._entry_files(area)):
                with self._kv_lock(digest):
                    _unlink(path)

    # ------------------------------------------------------------------ huey's extras

    @_operation
    def result_items(self) -> dict[str, bytes]:
        """Walk ``data/`` and return every live value, results or not."""
        return self._values(results_only=False)

    @_operation
    def task_results(self) -> dict[str, bytes]:
        """Walk ``data/`` and return the live task results."""
        return self._values(results_only=True)

    def _values(self, results_only: bool) -> dict[str, bytes]:
        now = time.time()
        items = {}
        for path, _digest in self._entry_files("data"):
            raw = _read(path)
            entry = None if raw is None else _decode_entry(raw)
            if entry is not None and (entry[1] or not results_only) and is_live(entry[2], now):
                items[entry[0]] = entry[3]
        return items

    @_operation
    def flush_results(self) -> None:
        """Unlink every value entry, results or not (each under its stripe lock); counters stay."""
        for path, digest in list(self._entry_files("data")):
            with self._kv_lock(digest):
                _unlink(path)

    @_operation
    def flush_task_results(self) -> None:
        """Unlink every task result entry (each under its stripe lock, re-checked there)."""

        def is_result(raw: bytes) -> bool:
            entry = _decode_entry(raw)
            return entry is not None and entry[1]

        for path, digest in list(self._entry_files("data")):
            self._remove_entry_if(path, digest, is_result)

    @_operation
    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Read, add and rewrite the counter file under the key's stripe lock."""
        key = check_key(key)
        now = time.time()
        path, digest = self._entry_path("counters", key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with self._kv_lock(digest):
            value, expires_at = 0, expiry_time(ttl, now)
            raw = _read(path)
            if raw is not None:
                try:
                    counter = json.loads(raw)
                    if counter["key"] == key and is_live(counter["expires"], now):
                        value, expires_at = int(counter["value"]), counter["expires"]
                except (ValueError, KeyError, TypeError):
                    pass
            value += amount
            content = json.dumps({"key": key, "value": value, "expires": expires_at}).encode("ascii")
            staged = self._stage(content)
            try:
                os.rename(staged, path)
            except BaseException:
                _unlink(staged)
                raise
        self._maybe_purge()
        return value

    @_operation
    def delete_counter(self, key: str) -> None:
        """Unlink the counter's file under its stripe lock."""
        key = check_key(key)
        path, digest = self._entry_path("counters", key)
        with self._kv_lock(digest):
            _unlink(path)

    @_operation
    def flush_counters(self) -> None:
        """Unlink every counter file, each under its stripe lock."""
        for path, digest in list(self._entry_files("counters")):
            with self._kv_lock(digest):
                _unlink(path)

    # ------------------------------------------------------------------ expiry sweep

    def _maybe_purge(self) -> None:
        if time.monotonic() >= self._last_purge + self.purge_interval:
            self._last_purge = time.monotonic()
            self._purge(time.time())

    def _purge(self, now: float) -> int:
        def expired_entry(raw: bytes) -> bool:
            entry = _decode_entry(raw)
            return entry is not None and not is_live(entry[2], now)

        def expired_counter(raw: bytes) -> bool:
            try:
                return not is_live(json.loads(raw)["expires"], now)
            except (ValueError, KeyError, TypeError):
                return False

        removed = 0
        for area, condition in (("data", expired_entry), ("counters", expired_counter)):
            for path, digest in list(self._entry_files(area)):
                raw = _read(path)
                if raw is not None and condition(raw) and self._remove_entry_if(path, digest, condition):
                    removed += 1
        stale = time.time() - self.orphan_age
        letters = {match.group(1) for match in self._dead_entries()}
        leftovers = [os.path.join(self._dirs["tmp"], name) for name in os.listdir(self._dirs["tmp"])]
        leftovers += [
            os.path.join(self._dirs["dead"], name)
            for name in os.listdir(self._dirs["dead"])
            if name.endswith(".json") and name[: -len(".json")] not in letters
        ]
        for path in leftovers:
            try:
                if os.stat(path).st_mtime < stale:
                    _unlink(path)
            except FileNotFoundError:
                pass
        return removed

    @_operation
    def purge_expired(self, now: float | None = None) -> int:
        """Delete expired entries and counters (and crash leftovers); return how many entries were deleted.

        Expired values are already invisible to every read; this reclaims their files. Writes call it by
        themselves at most every ``purge_interval`` seconds. It walks the ``data/`` and ``counters/`` trees.
        """
        return self._purge(time.time() if now is None else now)

    # ------------------------------------------------------------------ reliable delivery

    def _inflight_path(self, name: str) -> str:
        return os.path.join(self._dirs["inflight"], name)

    def _find_inflight(self, reservation: Reservation) -> tuple[str, re.Match[str]] | None:
        """The in-flight file of ``reservation`` if it still holds the lease under that token."""
        if not _MID_RE.match(reservation.message_id) or not _TOKEN_RE.match(reservation.token or ""):
            return None
        prefix = f"{reservation.message_id}."
        for name in os.listdir(self._dirs["inflight"]):
            if name.startswith(prefix):
                match = _INFLIGHT_RE.match(name)
                if match and match.group(3) == reservation.token:
                    return self._inflight_path(name), match
        return None

    @_operation
    def reserve(self, lease: float) -> Reservation | None:
        """Set the next ready file's mtime to the deadline and rename it into ``inflight/`` with a new token."""
        now = time.time()
        deadline_ns = int((now + lease) * 1e9)
        reserved_us = int(now * 1e6)
        for name in self._ready_in_order():
            match = _READY_RE.match(name)
            assert match is not None
            message_id, claims = match.group(1), int(match.group(2)) + 1
            source = self._ready_path(name)
            data = self._load("ready", name, message_id, claims - 1, _message_priority(message_id))
            if data is None:
                continue
            token = new_token()
            target = self._inflight_path(f"{message_id}.{claims}.{token}.{reserved_us}")
            try:
                os.utime(source, ns=(deadline_ns, deadline_ns))
                os.rename(source, target)
            except FileNotFoundError:
                continue  # another worker claimed it first
            with contextlib.suppress(FileNotFoundError):  # a racing claimer may have touched it: ours wins
                os.utime(target, ns=(deadline_ns, deadline_ns))
            return Reservation(
                message_id=message_id,
                data=data,
                token=token,
                attempt=claims,
                deadline=deadline_ns / 1e9,
                reserved_at=reserved_us / 1e6,
                priority=_message_priority(message_id),
            )
        return None

    @_operation
    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        """Unlink the token-named file; with a result, check, write and unlink under ``inflight.lock``."""
        if result is None:
            found = self._find_inflight(reservation)
            return found is not None and _unlink(found[0])
        key, value, ttl = result
        value = check_bytes(value, "result value")
        expires_at = expiry_time(ttl, time.time())
        with self._flock("inflight.lock"):
            found = self._find_inflight(reservation)
            if found is None:
                return False
            self._put(key, value, True, expires_at)
            _unlink(found[0])
        self._maybe_purge()
        return True

    @_operation
    def renew(self, reservation: Reservation, lease: float) -> bool:
        """Under ``inflight.lock``: set the token-named file's mtime to the new deadline."""
        with self._flock("inflight.lock"):
            found = self._find_inflight(reservation)
            if found is None:
                return False
            deadline_ns = int((time.time() + lease) * 1e9)
            try:
                os.utime(found[0], ns=(deadline_ns, deadline_ns))
            except FileNotFoundError:
                return False
            return True

    @_operation
    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Rename the token-named file back to ``ready/<message_id>.<claims>``: its original place."""
        found = self._find_inflight(reservation)
        if found is None:
            return False
        path, match = found
        claims = int(match.group(2))
        if not count_attempt:
            claims = max(claims - 1, 0)
        try:
            os.rename(path, self._ready_path(f"{match.group(1)}.{claims}"))
        except FileNotFoundError:
            return False
        return True

    def _dead_letter_from(self, path: str, match: re.Match[str], reason: str, detail: str) -> bool:
        """Rename an in-flight file into ``dead/`` (the fence), then put its reason beside it.

        The reason is staged first: when it cannot be written (a full disk) nothing moves and the message
        stays in flight for a later attempt, rather than becoming a dead letter whose reason is lost.
        """
        message_id, claims = match.group(1), int(match.group(2))
        key = f"{_next_seq():020d}-{message_id}"
        staged = self._stage(json.dumps({"reason": str(reason), "detail": str(detail)}).encode("ascii"))
        try:
            os.rename(
                path, os.path.join(self._dirs["dead"], f"{key}.{claims}.{_message_priority(message_id)}.msg")
            )
        except BaseException as exc:
            _unlink(staged)
            if isinstance(exc, FileNotFoundError):  # acknowledged or reclaimed meanwhile
                return False
            raise
        os.rename(staged, os.path.join(self._dirs["dead"], f"{key}.json"))
        self._sync_dir(self._dirs["dead"])
        return True

    def _write_reason(self, key: str, reason: str, detail: str) -> None:
        content = json.dumps({"reason": str(reason), "detail": str(detail)}).encode("ascii")
        self._publish(content, os.path.join(self._dirs["dead"], f"{key}.json"))

    @_operation
    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        """Rename the token-named file into ``dead/`` and write the reason beside it."""
        found = self._find_inflight(reservation)
        if found is None:
            return False
        return self._dead_letter_from(found[0], found[1], reason, detail)

    @_operation
    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        """Under ``inflight.lock``: rename every file whose mtime is past ``now`` back to ready or to dead."""
        reclaimed = []
        with self._flock("inflight.lock"):
            expired = []
            for name in os.listdir(self._dirs["inflight"]):
                match = _INFLIGHT_RE.match(name)
                if match is None:
                    continue
                try:
                    mtime_ns = os.lstat(self._inflight_path(name)).st_mtime_ns
                except FileNotFoundError:
                    continue
                if mtime_ns / 1e9 <= now:
                    expired.append((mtime_ns, name, match))
            expired.sort(key=lambda item: (item[0], item[1]))
            for mtime_ns, name, match in expired:
                path = self._inflight_path(name)
                message_id, claims = match.group(1), int(match.group(2))
                data = self._load("inflight", name, message_id, claims, _message_priority(message_id))
                if data is None:
                    continue
                reserved_at = int(match.group(4)) / 1e6
                progressed = made_progress(mtime_ns / 1e9, reserved_at, progress_span)
                verdict = expired_verdict(claims, progressed, max_attempts, max_reclaims)
                dead = verdict is not None
                if verdict is not None:
                    try:
                        if not self._dead_letter_from(path, match, *verdict):
                            continue
                    except OSError as exc:
                        if exc.errno not in _NO_SPACE:
                            raise
                        # Its reason cannot be written: it stays in flight, for a pass after space returns;
                        # the reservations behind it are still reclaimed now.
                        logger.warning(
                            "FileStorage(%r): message %s reached its delivery limit but cannot be dead-lettered "
                            "(%s); it stays in flight until there is space",
                            self.name,
                            message_id,
                            exc,
                        )
                        continue
                else:
                    try:
                        os.rename(path, self._ready_path(f"{message_id}.{claims}"))
                    except FileNotFoundError:
                        continue
                reservation = Reservation(
                    message_id=message_id,
                    data=data,
                    token=match.group(3),
                    attempt=claims,
                    deadline=mtime_ns / 1e9,
                    reserved_at=reserved_at,
                    priority=_message_priority(message_id),
                )
                reclaimed.append(Reclaimed(reservation, dead, verdict[0] if verdict else "max_attempts"))
        return reclaimed

    def _in_flight(self) -> list[tuple[int, str, re.Match[str]]]:
        entries = []
        for name in os.listdir(self._dirs["inflight"]):
            match = _INFLIGHT_RE.match(name)
            if match is None:
                continue
            try:
                entries.append((os.lstat(self._inflight_path(name)).st_mtime_ns, name, match))
            except FileNotFoundError:
                continue
        entries.sort(key=lambda item: (item[0], item[1]))
        return entries

    @_operation
    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        """List ``inflight/``: deadline from each file's mtime, token and attempt from its name."""
        wanted = None if limit is None else max(int(limit), 0)
        items: list[Reservation] = []
        for mtime_ns, name, match in self._in_flight():
            if wanted is not None and len(items) >= wanted:
                break
            data = self._message_at("inflight", name)
            if data is None:
                continue
            message_id = match.group(1)
            items.append(
                Reservation(
                    message_id=message_id,
                    data=data,
                    token=match.group(3),
                    attempt=int(match.group(2)),
                    deadline=mtime_ns / 1e9,
                    reserved_at=int(match.group(4)) / 1e6,
                    priority=_message_priority(message_id),
                )
            )
        return items

    @_operation
    def in_flight_size(self) -> int:
        """Count the files in ``inflight/``."""
        return sum(1 for name in os.listdir(self._dirs["inflight"]) if _INFLIGHT_RE.match(name))

    # ------------------------------------------------------------------ dead letters

    def _dead_entries(self) -> list[re.Match[str]]:
        matches = (_DEAD_RE.match(name) for name in os.listdir(self._dirs["dead"]))
        return sorted((m for m in matches if m is not None), key=lambda m: m.group(0))

    @_operation
    def add_dead_letter(
        self,
        data: bytes,
        reason: str,
        detail: str = "",
        attempts: int = 0,
        priority: int | None = None,
    ) -> str:
        """Write the reason file, then the message file (each staged and renamed into ``dead/``)."""
        data = check_bytes(data, "data")
        prio = "n" if priority is None else str(_priority(priority))
        letter_id = new_token()
        key = f"{_next_seq():020d}-{letter_id}"
        self._write_reason(key, reason, detail)
        self._publish(data, os.path.join(self._dirs["dead"], f"{key}.{max(int(attempts), 0)}.{prio}.msg"))
        return letter_id

    @_operation
    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Read ``dead/``, oldest first; a letter whose reason file is missing (a crash) says so."""
        wanted = None if limit is None else max(int(limit), 0)
        letters: list[DeadLetter] = []
        for match in self._dead_entries():
            if wanted is not None and len(letters) >= wanted:
                break
            data = self._message_at("dead", match.group(0))
            if data is None:
                continue
            reason, detail = (
                "unknown",
                "the reason was not recorded (the process stopped while dead-lettering)",
            )
            meta = _read(os.path.join(self._dirs["dead"], f"{match.group(1)}.json"))
            if meta is not None:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    parsed = json.loads(meta)
                    reason, detail = str(parsed["reason"]), str(parsed["detail"])
            prio = match.group(5)
            letters.append(
                DeadLetter(
                    id=match.group(3),
                    data=data,
                    reason=reason,
                    detail=detail,
                    attempts=int(match.group(4)),
                    failed_at=int(match.group(2)) / 1e9,
                    priority=None if prio == "n" else int(prio),
                )
            )
        return letters

    @_operation
    def dead_letter_count(self) -> int:
        """Count the dead letters' message files."""
        return len(self._dead_entries())

    @_operation
    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """Rename the letter's message file into ``ready/`` (new id: back of its priority, claims 0)."""
        for match in self._dead_entries():
            if match.group(3) != dead_letter_id:
                continue
            prio = 0 if match.group(5) == "n" else int(match.group(5))
            target = self._ready_path(f"{_new_message_id(prio)}.0")
            try:
                os.rename(os.path.join(self._dirs["dead"], match.group(0)), target)
            except FileNotFoundError:
                continue
            _unlink(os.path.join(self._dirs["dead"], f"{match.group(1)}.json"))
            _remove(os.path.join(self.root, "quarantine", match.group(1)))
            self._sync_dir(self._dirs["ready"])
            return True
        return False

    @_operation
    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        """Unlink the chosen letters' message files (then their reason files)."""
        wanted = None if ids is None else {str(i) for i in ids}
        deleted = 0
        for match in self._dead_entries():
            if wanted is not None and match.group(3) not in wanted:
                continue
            if older_than is not None and not int(match.group(2)) / 1e9 < older_than:
                continue
            if _remove(os.path.join(self._dirs["dead"], match.group(0))):
                deleted += 1
            _unlink(os.path.join(self._dirs["dead"], f"{match.group(1)}.json"))
            _remove(os.path.join(self.root, "quarantine", match.group(1)))
        return deleted
