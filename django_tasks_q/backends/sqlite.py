"""SQLite storage: the whole contract in one SQLite file, safe for several processes on one host.

Parameters (huey's ``SqliteStorage`` names and defaults)
--------------------------------------------------------

``filename='huey.db'``
    The database file (``str`` or path-like). A relative name is resolved against the working directory when
    the storage is created. Nothing is opened until the first operation; the folder must exist. The file is
    independent of Django's ``DATABASES`` (it may even be the same file: every table name starts with
    ``tasks_q_``).
``cache_mb=8``
    SQLite page cache per connection, in MiB (``PRAGMA cache_size = -cache_mb * 1024``).
``fsync=False``
    ``False``: ``PRAGMA synchronous=NORMAL`` — in WAL mode a committed write survives a crash of the process but
    may be lost in a power failure. ``True``: ``synchronous=FULL`` — every commit is on disk when it returns.
``timeout=60``
    Seconds a connection waits for another one's write lock (``busy_timeout``) before the operation fails with
    :class:`~django_tasks_q.exceptions.StorageError`.
``strict_fifo=False``
    ``True`` creates the message table with ``AUTOINCREMENT``: message ids are never reused, even after the
    newest message is deleted, so delivery order within a priority is enqueue order under all circumstances.
    ``False`` uses plain rowids (a little faster). The choice is fixed when the file's tables are created;
    opening the file with the other value is a :class:`~django_tasks_q.exceptions.ConfigurationError`.
``create_tables=True``
    ``True`` creates the tables (``CREATE TABLE IF NOT EXISTS``) when the first connection opens. ``False``
    leaves the file alone, for a deployment that creates them once (:meth:`SqliteStorage.initialize_schema`)
    and runs with a database user that may not change the schema; an operation on a file without the tables
    then raises :class:`SchemaMissing`.

How it is made safe
-------------------

* One connection per thread and per process (a connection is never shared between threads, and a process
  that was forked opens its own instead of using its parent's).
* ``PRAGMA journal_mode=WAL``: readers never wait for the writer. ``journal_size_limit`` truncates the WAL
  file back to 16 MiB after a checkpoint, so a busy queue's ``-wal`` file does not stay at its high-water mark.
* Every write is one short ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction: the write lock is taken up front, so
  a transaction never has to upgrade a read lock (the classic source of "database is locked" errors that no
  busy timeout can cure); contenders wait up to ``timeout``. No transaction is ever left open while a task
  runs: every method commits before it returns.
* The claim is one statement: ``UPDATE … SET state = in-flight, token = …, claims = claims + 1 WHERE id =
  (SELECT the next ready id) RETURNING …`` (SQLite 3.35+; older libraries do the same ``SELECT`` and
  ``UPDATE`` inside the same write transaction, which is just as atomic).
* A row the claim cannot read — a priority or a claim count that is not an integer (SQLite stores whatever
  is written into a column), a claim count at the top of the 64-bit range — is moved to the dead letters
  (``unreadable_record``, with the column and its value in the detail) in the same transaction, logged once,
  and the claim goes on with the next row; the reaper does the same for such an in-flight row. In
  ``ack_and_reserve`` the claim runs in a savepoint after the acknowledgement: should it fail all the same,
  only the claim is rolled back and the acknowledgement is committed.

Tables (shared by every queue in the file; each row carries its queue ``name``)
-------------------------------------------------------------------------------

``tasks_q_message``
    Ready and in-flight messages in one table: ``id`` (delivery order within a priority), ``queue``,
    ``message_id``, ``data``, ``priority``, ``state`` (0 ready, 1 in flight), ``claims``, ``token``,
    ``deadline``, ``reserved_at``. A message keeps its row (and so its place) for life; ``reserve`` /
    ``release`` / ``requeue_expired`` only change its state. Ready order: ``priority DESC, id``.
``tasks_q_schedule``
    ``queue``, ``data``, ``timestamp``, ``priority``; due order ``timestamp, id``.
``tasks_q_kv``
    ``queue``, ``key``, ``value``, ``is_result``, ``expires_at`` (results, locks, revocations ...).
``tasks_q_counter``
    ``queue``, ``key``, ``value``, ``expires_at`` (``incr``).
``tasks_q_dead``
    Dead letters: ``queue``, ``letter_id``, ``data``, ``reason``, ``detail``, ``attempts``, ``failed_at``,
    ``priority``.

Values with a ttl are invisible once expired and are deleted by :meth:`SqliteStorage.purge_expired`, which
writes run at most every ``purge_interval`` seconds.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

from django_tasks_q.backends.base import (
    UNREADABLE_RECORD,
    BaseStorage,
    DeadLetter,
    EmptyData,
    EmptyDataType,
    Feature,
    Reclaimed,
    Reservation,
    ResultWrite,
    bounded_priority,
    check_bytes,
    check_key,
    expired_verdict,
    expiry_time,
    log_unreadable_record,
    made_progress,
    new_token,
    schedule_time,
)
from django_tasks_q.backends.errors import ConfigurationError, StorageError
from django_tasks_q.backends.watch import ChangeWatch, probe_poller

__all__ = ["SUPPORTS_RETURNING", "SqliteStorage"]

T = TypeVar("T")

_logger = logging.getLogger("django_tasks_q.backends.sqlite")

SUPPORTS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
"""Whether the SQLite library linked into this Python knows ``UPDATE … RETURNING`` (3.35.0, March 2021)."""

WAL_SIZE_LIMIT = 16 * 1024 * 1024
"""Bytes the WAL file is truncated to after a checkpoint (``PRAGMA journal_size_limit``)."""

READY = 0
IN_FLIGHT = 1


# Connections inherited from a parent process are never closed in the child (closing them there could disturb
# the parent's locks); they are parked here instead.
_INHERITED: list[Any] = []


def _schema(strict_fifo: bool) -> list[str]:
    autoincrement = " AUTOINCREMENT" if strict_fifo else ""
    return [
        f"""CREATE TABLE IF NOT EXISTS tasks_q_message (
            id INTEGER PRIMARY KEY{autoincrement},
            queue TEXT NOT NULL,
            message_id TEXT NOT NULL,
            data BLOB NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            state INTEGER NOT NULL DEFAULT 0,
            claims INTEGER NOT NULL DEFAULT 0,
            token TEXT,
            deadline REAL,
            reserved_at REAL
        )""",
        "CREATE INDEX IF NOT EXISTS tasks_q_message_order ON tasks_q_message (queue, state, priority DESC, id)",
        "CREATE INDEX IF NOT EXISTS tasks_q_message_lease ON tasks_q_message (queue, state, deadline)",
        "CREATE UNIQUE INDEX IF NOT EXISTS tasks_q_message_ident ON tasks_q_message (queue, message_id)",
        """CREATE TABLE IF NOT EXISTS tasks_q_schedule (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            data BLOB NOT NULL,
            timestamp REAL NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0
        )""",
        "CREATE INDEX IF NOT EXISTS tasks_q_schedule_due ON tasks_q_schedule (queue, timestamp, id)",
        """CREATE TABLE IF NOT EXISTS tasks_q_kv (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            key TEXT NOT NULL,
            value BLOB NOT NULL,
            is_result INTEGER NOT NULL DEFAULT 0,
            expires_at REAL,
            UNIQUE (queue, key)
        )""",
        "CREATE INDEX IF NOT EXISTS tasks_q_kv_expiry ON tasks_q_kv (queue, expires_at)",
        """CREATE TABLE IF NOT EXISTS tasks_q_counter (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            key TEXT NOT NULL,
            value INTEGER NOT NULL,
            expires_at REAL,
            UNIQUE (queue, key)
        )""",
        "CREATE INDEX IF NOT EXISTS tasks_q_counter_expiry ON tasks_q_counter (queue, expires_at)",
        """CREATE TABLE IF NOT EXISTS tasks_q_dead (
            id INTEGER PRIMARY KEY,
            queue TEXT NOT NULL,
            letter_id TEXT NOT NULL,
            data BLOB NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            failed_at REAL NOT NULL,
            priority INTEGER,
            UNIQUE (queue, letter_id)
        )""",
    ]


_TABLES = ("tasks_q_message", "tasks_q_schedule", "tasks_q_kv", "tasks_q_counter", "tasks_q_dead")
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


def _unreadable(priority: object, claims: object) -> str:
    """What is wrong with a message row's ``priority`` and ``claims`` as read ('' when both are usable)."""
    problems = []
    if type(priority) is not int:
        problems.append(f"priority {priority!r} is not an integer")
    if type(claims) is not int:
        problems.append(f"claim count {claims!r} is not an integer")
    elif claims >= 2**63 - 1:
        problems.append(f"claim count {claims!r} cannot be counted up")
    return "; ".join(problems)


def _limit(limit: int | None) -> int:
    return -1 if limit is None else max(int(limit), 0)


def _priority(priority: int | None) -> int:
    return bounded_priority(priority, 64, "in a 64-bit integer")


class _Handle:
    """Holds one thread's connection; weakly tracked so that ``close()`` can reach every live connection.

    When the thread ends, its thread-local handle is dropped and the connection closed with it.
    """

    __slots__ = ("__weakref__", "conn")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __del__(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


class SchemaMissing(StorageError, sqlite3.OperationalError):
    """The storage's tables are missing from the file (opened with ``create_tables=False``).

    Also a :class:`sqlite3.OperationalError`, the error huey's SQLite storage lets through in this case.
    """


class SqliteStorage(BaseStorage):
    """Storage in a SQLite file: durable, reliable (at least once), shared by the processes of one host.

    See the module documentation for the parameters, the tables and how each operation is made atomic.
    """

    blocking = False
    priority = True
    features = frozenset({Feature.RELIABLE, Feature.DEAD_LETTERS, Feature.COUNTERS, Feature.KEY_LISTING,
                          Feature.WAIT_FOR_MESSAGES, Feature.REAP_BY_PROGRESS})

    purge_interval: ClassVar[float] = 5.0
    """At most this often (seconds), a write also deletes expired values and counters (``purge_expired``)."""

    def __init__(
        self,
        name: str = "huey",
        filename: str | os.PathLike[str] = "huey.db",
        cache_mb: int = 8,
        fsync: bool = False,
        timeout: float = 60,
        strict_fifo: bool = False,
        create_tables: bool = True,
        **storage_kwargs: Any,
    ) -> None:
        super().__init__(name, **storage_kwargs)
        where = f"SqliteStorage({name!r})"
        try:
            filename = os.fspath(filename)
        except TypeError:
            raise ConfigurationError(
                f"{where}: filename must be a path (str or os.PathLike), got {type(filename).__name__}"
            ) from None
        if not isinstance(filename, str):
            raise ConfigurationError(f"{where}: filename must be a str path, got bytes {filename!r}")
        if filename in ("", ":memory:") or filename.startswith("file:"):
            raise ConfigurationError(
                f"{where}: filename={filename!r} is not a database file; each thread and process would see a "
                "different database. Set filename= to a file path (e.g. 'tasks.db'), or use MemoryHuey for a "
                "storage that lives in one process"
            )
        if isinstance(cache_mb, bool) or not isinstance(cache_mb, int) or cache_mb < 0:
            raise ConfigurationError(f"{where}: cache_mb must be an int >= 0 (MiB), got {cache_mb!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ConfigurationError(f"{where}: timeout must be a number of seconds >= 0, got {timeout!r}")
        if fsync not in (True, False):  # 0 and 1 too (as written in a URL query)
            raise ConfigurationError(f"{where}: fsync must be True or False, got {fsync!r}")
        if strict_fifo not in (True, False):
            raise ConfigurationError(f"{where}: strict_fifo must be True or False, got {strict_fifo!r}")
        if create_tables not in (True, False):
            raise ConfigurationError(f"{where}: create_tables must be True or False, got {create_tables!r}")
        self.filename = filename
        self.cache_mb = cache_mb
        self.fsync = bool(fsync)
        self._timeout = float(timeout)  # huey's attribute name, which huey-era code reads
        self.strict_fifo = bool(strict_fifo)
        self.database_path = os.path.abspath(filename)
        """The absolute path of the database file (``filename`` resolved when the storage was created)."""
        self._use_returning = SUPPORTS_RETURNING
        self._pid = os.getpid()
        self._local = threading.local()
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._setup_lock = threading.Lock()
        self.create_tables = bool(create_tables)
        self._schema_ready = not self.create_tables
        self._last_purge = 0.0
        self._watch: ChangeWatch | None = None
        self._watch_conn: sqlite3.Connection | None = None
        self._watch_pid = 0

    @property
    def timeout(self) -> float:
        """Seconds a connection waits for another one's write lock (``busy_timeout``)."""
        return self._timeout

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection to the database (opened on first use), as huey's ``storage.conn``: for
        reading the file with your own SQL. Leave no transaction open on it: the queue's statements share it."""
        return self._connection()

    def __repr__(self) -> str:
        return f"<SqliteStorage name={self.name!r} filename={self.filename!r}>"

    # ------------------------------------------------------------------ connections

    def _connection(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            self._forget_parent_connections()
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = _Handle(self._open())
            self._local.handle = handle
            self._handles.add(handle)
        return handle.conn

    def _forget_parent_connections(self) -> None:
        """In a forked child: never use (nor close) the parent's connections; open fresh ones on demand."""
        _INHERITED.extend(list(self._handles))
        inherited = getattr(self._local, "handle", None)
        if inherited is not None:
            _INHERITED.append(inherited)
        self._handles = weakref.WeakSet()
        self._local = threading.local()
        self._setup_lock = threading.Lock()
        self._pid = os.getpid()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.database_path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "open the database") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            self._use_wal(conn)
            conn.execute(f"PRAGMA synchronous = {'FULL' if self.fsync else 'NORMAL'}")
            conn.execute(f"PRAGMA cache_size = {-self.cache_mb * 1024}")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
            if not self._schema_ready:
                with self._setup_lock:
                    if not self._schema_ready:
                        self._create_schema(conn)
                        self._schema_ready = True
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc, "open the database") from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() == "wal":
            return
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                # Switching modes needs the database to itself: another connection opening the new file at
                # the same moment makes SQLite answer "locked" at once, without waiting. Try again.
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                mode = "locked"
            if str(mode).lower() == "wal":
                return
            if time.monotonic() >= deadline:
                raise StorageError(
                    f"SqliteStorage filename={self.filename!r}: could not switch the database to WAL mode "
                    f"(it stays in {mode!r} mode) within timeout={self._timeout:g} s; another program keeps "
                    "it open in another journal mode. Stop that program or point filename= at another file"
                )
            time.sleep(0.05)

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'tasks_q_message'"
            ).fetchone()
            if row is not None:
                created_strict = "AUTOINCREMENT" in row[0].upper()
                if created_strict != self.strict_fifo:
                    raise ConfigurationError(
                        f"SqliteStorage filename={self.filename!r}: this file's message table was created "
                        f"with strict_fifo={created_strict}, and the storage was opened with "
                        f"strict_fifo={self.strict_fifo}; the table cannot change. Use strict_fifo="
                        f"{created_strict} for every queue in this file, or point filename= at a new file"
                    )
            for statement in _schema(self.strict_fifo):
                conn.execute(statement)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def initialize_schema(self) -> None:
        """Create the storage's tables and indexes in the file if they are missing (huey's name for it).

        What the first connection does by itself unless ``create_tables=False``; harmless when they exist.
        """
        conn = self._connection()
        with self._setup_lock:
            try:
                self._create_schema(conn)
            except sqlite3.Error as exc:
                raise self._error(exc, "create the tables") from exc

    def close(self) -> None:
        """Close this process's connections (every thread's). Harmless twice; the storage reopens on demand."""
        if os.getpid() != self._pid:
            self._forget_parent_connections()
            return
        handles = list(self._handles)
        self._handles = weakref.WeakSet()
        self._local = threading.local()
        for handle in handles:
            try:
                handle.conn.close()
            except sqlite3.Error:
                pass
        watch_conn, self._watch, self._watch_conn = self._watch_conn, None, None
        if watch_conn is not None and self._watch_pid == os.getpid():
            watch_conn.close()

    # ------------------------------------------------------------------ waking idle consumers

    def wait_for_messages(self, timeout: float, wake: threading.Event | None = None) -> bool:
        """Wait for a change of the database file: ``PRAGMA data_version`` on a connection of its own, read
        every 50 ms (every 4 ms for a second once two changes came less than a second apart) by one waiting thread per process; a write of
        this process wakes the waiters at once."""
        return self._change_watch().wait(timeout, wake)

    def _change_watch(self) -> ChangeWatch:
        watch = self._watch
        if watch is not None and self._watch_pid == os.getpid():
            return watch
        with self._setup_lock:
            if self._watch is None or self._watch_pid != os.getpid():
                self._connection()  # the file, its tables and WAL mode exist before anything polls it
                conn = sqlite3.connect(self.database_path, timeout=self._timeout, check_same_thread=False)
                self._watch_conn = conn
                self._watch = ChangeWatch(probe_poller(lambda: conn.execute("PRAGMA data_version").fetchone()[0]))
                self._watch_pid = os.getpid()
            return self._watch

    def _wake_waiters(self) -> None:
        watch = self._watch
        if watch is not None and self._watch_pid == os.getpid():
            watch.notify()

    # ------------------------------------------------------------------ errors and transactions

    def _error(self, exc: sqlite3.Error, action: str) -> Exception:
        """Turn a sqlite3 error into a StorageError / ConfigurationError that says what to do."""
        code = getattr(exc, "sqlite_errorname", "") or ""
        where = f"SqliteStorage({self.name!r}) filename={self.filename!r}"
        folder = os.path.dirname(self.database_path) or "."
        if code.startswith("SQLITE_CANTOPEN") or code.startswith("SQLITE_PERM"):
            if os.path.isdir(self.database_path):
                hint = f"{self.database_path!r} is a folder; set filename= to a file inside it"
            elif not os.path.isdir(folder):
                hint = (
                    f"the folder {folder!r} does not exist; create it or set filename= to a path that exists"
                )
            else:
                hint = (
                    f"check that {folder!r} and the file are writable by the user running Django and the "
                    "consumer, or set filename= to a writable path"
                )
            return ConfigurationError(f"{where}: cannot {action} ({exc}): {hint}")
        if code.startswith("SQLITE_READONLY"):
            return ConfigurationError(
                f"{where}: cannot {action} ({exc}): the database is read-only; make the file and its folder "
                f"{folder!r} writable (SQLite writes -wal and -shm files beside it), or set filename= elsewhere"
            )
        if code.startswith("SQLITE_NOTADB") or code.startswith("SQLITE_CORRUPT"):
            return StorageError(
                f"{where}: cannot {action} ({exc}): the file is not a SQLite database or it is corrupt. Nothing "
                "was written to it. Move it aside (keep it: `sqlite3 FILE .recover` may rescue data) and let the "
                "storage create a new one, or set filename= to another file"
            )
        if code.startswith("SQLITE_BUSY") or code.startswith("SQLITE_LOCKED"):
            return StorageError(
                f"{where}: cannot {action} ({exc}): another connection held the database's write lock for longer "
                f"than timeout={self._timeout:g} s. Find the process holding a long transaction on this file, or "
                "raise timeout="
            )
        if "no such table: tasks_q_" in str(exc):
            return SchemaMissing(
                f"{where}: cannot {action} ({exc}): the storage's tables are not in the file and "
                "create_tables=False; call initialize_schema() once, or open it with create_tables=True"
            )
        if code.startswith("SQLITE_FULL"):
            return StorageError(
                f"{where}: cannot {action} ({exc}): the disk is full; free space in {folder!r}"
            )
        return StorageError(f"{where}: cannot {action}: {exc} ({code or type(exc).__name__})")

    def _write(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction; commit, or roll back on any exception."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(exc, action) from exc
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc, action) from exc
            raise
        return result

    def _read(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run read-only ``work`` (single statements in autocommit mode: each sees one consistent snapshot)."""
        conn = self._connection()
        try:
            return work(conn)
        except sqlite3.Error as exc:
            raise self._error(exc, action) from exc

    def _maybe_purge(self, conn: sqlite3.Connection, now: float) -> None:
        if now >= self._last_purge + self.purge_interval:
            self._last_purge = now
            self._purge(conn, now)

    def _purge(self, conn: sqlite3.Connection, now: float) -> int:
        deleted = conn.execute(
            "DELETE FROM tasks_q_kv WHERE queue = ? AND expires_at <= ?", (self.name, now)
        ).rowcount
        deleted += conn.execute(
            "DELETE FROM tasks_q_counter WHERE queue = ? AND expires_at <= ?", (self.name, now)
        ).rowcount
        return deleted

    def purge_expired(self, now: float | None = None) -> int:
        """Delete every value and counter whose ttl has run out; return how many rows were deleted.

        Expired values are already invisible to every read; this reclaims their space. Writes call it by
        themselves at most every ``purge_interval`` seconds.
        """
        moment = time.time() if now is None else now
        return self._write("purge expired values", lambda conn: self._purge(conn, moment))

    # ------------------------------------------------------------------ the queue

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """Insert a ready message (one ``INSERT`` in a write transaction)."""
        data = check_bytes(data, "data")
        prio = _priority(priority)
        self._write(
            "enqueue",
            lambda conn: conn.execute(
                "INSERT INTO tasks_q_message (queue, message_id, data, priority) VALUES (?, ?, ?, ?)",
                (self.name, new_token(), data, prio),
            ),
        )
        self._wake_waiters()

    def enqueue_many(self, items: list[tuple[bytes, int | None]]) -> None:
        """Insert the messages in order (one ``executemany`` in one write transaction: all or none)."""
        rows = [(self.name, new_token(), check_bytes(data, "data"), _priority(priority)) for data, priority in items]
        if not rows:
            return
        self._write(
            "enqueue",
            lambda conn: conn.executemany(
                "INSERT INTO tasks_q_message (queue, message_id, data, priority) VALUES (?, ?, ?, ?)", rows
            ),
        )
        self._wake_waiters()

    def _has_ready(self, conn: sqlite3.Connection) -> bool:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM tasks_q_message WHERE queue = ? AND state = 0)", (self.name,)
        ).fetchone()
        return bool(row[0])

    _NEXT_READY = (
        "SELECT id FROM tasks_q_message WHERE queue = ? AND state = 0 ORDER BY priority DESC, id LIMIT 1"
    )

    def dequeue(self) -> bytes | None:
        """Delete and return the next ready message (``DELETE … RETURNING`` in one write transaction)."""
        if not self._read("dequeue", self._has_ready):
            return None

        def work(conn: sqlite3.Connection) -> bytes | None:
            if self._use_returning:
                row = conn.execute(
                    f"DELETE FROM tasks_q_message WHERE id = ({self._NEXT_READY}) RETURNING data",
                    (self.name,),
                ).fetchone()
                return None if row is None else bytes(row[0])
            row = conn.execute(
                "SELECT id, data FROM tasks_q_message WHERE queue = ? AND state = 0 "
                "ORDER BY priority DESC, id LIMIT 1",
                (self.name,),
            ).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM tasks_q_message WHERE id = ?", (row[0],))
            return bytes(row[1])

        return self._write("dequeue", work)

    def queue_size(self) -> int:
        """Count ready messages."""
        return self._read(
            "count the queue",
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM tasks_q_message WHERE queue = ? AND state = 0", (self.name,)
            ).fetchone()[0],
        )

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """Return ready messages in delivery order (``priority DESC, id``)."""
        rows = self._read(
            "list the queue",
            lambda conn: conn.execute(
                "SELECT data FROM tasks_q_message WHERE queue = ? AND state = 0 "
                "ORDER BY priority DESC, id LIMIT ?",
                (self.name, _limit(limit)),
            ).fetchall(),
        )
        return [bytes(row[0]) for row in rows]

    def flush_queue(self) -> None:
        """Delete every ready message (in-flight rows stay)."""
        self._write(
            "flush the queue",
            lambda conn: conn.execute(
                "DELETE FROM tasks_q_message WHERE queue = ? AND state = 0", (self.name,)
            ),
        )

    # ------------------------------------------------------------------ the schedule

    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        """Insert a scheduled item with its priority."""
        data = check_bytes(data, "data")
        prio = _priority(priority)
        when = schedule_time(timestamp)
        self._write(
            "add to the schedule",
            lambda conn: conn.execute(
                "INSERT INTO tasks_q_schedule (queue, data, timestamp, priority) VALUES (?, ?, ?, ?)",
                (self.name, data, when, prio),
            ),
        )

    def _has_due(self, conn: sqlite3.Connection, timestamp: float) -> bool:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM tasks_q_schedule WHERE queue = ? AND timestamp <= ?)",
            (self.name, timestamp),
        ).fetchone()
        return bool(row[0])

    def read_schedule(self, timestamp: float) -> list[bytes]:
        """Select and delete the due items in one write transaction; earliest first."""
        when = schedule_time(timestamp)
        if not self._read("read the schedule", lambda conn: self._has_due(conn, when)):
            return []

        def work(conn: sqlite3.Connection) -> list[bytes]:
            rows = conn.execute(
                "SELECT data FROM tasks_q_schedule WHERE queue = ? AND timestamp <= ? ORDER BY timestamp, id",
                (self.name, when),
            ).fetchall()
            conn.execute("DELETE FROM tasks_q_schedule WHERE queue = ? AND timestamp <= ?", (self.name, when))
            return [bytes(row[0]) for row in rows]

        return self._write("read the schedule", work)

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        """Return scheduled items, earliest first."""
        rows = self._read(
            "list the schedule",
            lambda conn: conn.execute(
                "SELECT data FROM tasks_q_schedule WHERE queue = ? ORDER BY timestamp, id LIMIT ?",
                (self.name, _limit(limit)),
            ).fetchall(),
        )
        return [bytes(row[0]) for row in rows]

    def schedule_size(self) -> int:
        """Count scheduled items."""
        return self._read(
            "count the schedule",
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM tasks_q_schedule WHERE queue = ?", (self.name,)
            ).fetchone()[0],
        )

    def flush_schedule(self) -> None:
        """Delete every scheduled item."""
        self._write(
            "flush the schedule",
            lambda conn: conn.execute("DELETE FROM tasks_q_schedule WHERE queue = ?", (self.name,)),
        )

    def enqueue_due(self, timestamp: float) -> int:
        """``INSERT … SELECT`` the due items into the queue (earliest first, priority kept), then delete them.

        Both statements run in one write transaction, so an item is moved exactly once even with several
        schedulers, and a crash in between changes nothing.
        """
        when = schedule_time(timestamp)
        if not self._read("move due items", lambda conn: self._has_due(conn, when)):
            return 0

        def work(conn: sqlite3.Connection) -> int:
            moved = conn.execute(
                "INSERT INTO tasks_q_message (queue, message_id, data, priority) "
                "SELECT queue, lower(hex(randomblob(16))), data, priority FROM tasks_q_schedule "
                "WHERE queue = ? AND timestamp <= ? ORDER BY timestamp, id",
                (self.name, when),
            ).rowcount
            conn.execute("DELETE FROM tasks_q_schedule WHERE queue = ? AND timestamp <= ?", (self.name, when))
            return moved

        moved = self._write("move due items", work)
        if moved:
            self._wake_waiters()
        return moved

    # ------------------------------------------------------------------ key/value data

    def _put(
        self, conn: sqlite3.Connection, key: str, value: bytes, is_result: bool, expires_at: float | None
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO tasks_q_kv (queue, key, value, is_result, expires_at) VALUES (?, ?, ?, ?, ?)",
            (self.name, key, value, int(is_result), expires_at),
        )

    def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None:
        """Insert or replace ``key`` (value, result flag and expiry together)."""
        key = check_key(key)
        value = check_bytes(value, "value")
        now = time.time()
        expires_at = expiry_time(ttl, now)

        def work(conn: sqlite3.Connection) -> None:
            self._put(conn, key, value, bool(is_result), expires_at)
            self._maybe_purge(conn, now)

        self._write("store a value", work)

    def peek_data(self, key: str) -> bytes | EmptyDataType:
        """Return the live value of ``key`` or ``EmptyData``."""
        key = check_key(key)
        row = self._read(
            "read a value",
            lambda conn: conn.execute(
                f"SELECT value FROM tasks_q_kv WHERE queue = ? AND key = ? AND {_LIVE}",
                (self.name, key, time.time()),
            ).fetchone(),
        )
        return EmptyData if row is None else bytes(row[0])

    def peek_many(self, keys: list[str]) -> list[bytes | EmptyDataType]:
        """The live values of ``keys`` in one ``SELECT``; ``EmptyData`` where there is none."""
        if not keys:
            return []
        wanted = list(dict.fromkeys(keys))[:500]
        if len(wanted) < len(set(keys)):
            return super().peek_many(keys)
        marks = ", ".join("?" * len(wanted))
        rows = self._read(
            "read values",
            lambda conn: conn.execute(
                f"SELECT key, value FROM tasks_q_kv WHERE queue = ? AND key IN ({marks}) AND {_LIVE}",
                (self.name, *wanted, time.time()),
            ).fetchall(),
        )
        found = {key: bytes(value) for key, value in rows}
        return [found.get(key, EmptyData) for key in keys]

    def pop_data(self, key: str) -> bytes | EmptyDataType:
        """Select and delete ``key`` in one write transaction (an expired value counts as none)."""
        key = check_key(key)
        now = time.time()

        def work(conn: sqlite3.Connection) -> bytes | EmptyDataType:
            row = conn.execute(
                "SELECT value, expires_at FROM tasks_q_kv WHERE queue = ? AND key = ?", (self.name, key)
            ).fetchone()
            if row is None:
                return EmptyData
            conn.execute("DELETE FROM tasks_q_kv WHERE queue = ? AND key = ?", (self.name, key))
            if row[1] is not None and row[1] <= now:
                return EmptyData
            return bytes(row[0])

        return self._write("pop a value", work)

    def has_data_for_key(self, key: str) -> bool:
        """Whether ``key`` holds a live value."""
        key = check_key(key)
        row = self._read(
            "read a value",
            lambda conn: conn.execute(
                f"SELECT EXISTS (SELECT 1 FROM tasks_q_kv WHERE queue = ? AND key = ? AND {_LIVE})",
                (self.name, key, time.time()),
            ).fetchone(),
        )
        return bool(row[0])

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Drop an expired value, then ``INSERT OR IGNORE``: one write transaction, so exactly one racer wins."""
        key = check_key(key)
        value = check_bytes(value, "value")
        now = time.time()
        expires_at = expiry_time(ttl, now)

        def work(conn: sqlite3.Connection) -> bool:
            conn.execute(
                "DELETE FROM tasks_q_kv WHERE queue = ? AND key = ? AND expires_at <= ?",
                (self.name, key, now),
            )
            written = conn.execute(
                "INSERT OR IGNORE INTO tasks_q_kv (queue, key, value, is_result, expires_at) VALUES (?, ?, ?, 0, ?)",
                (self.name, key, value, expires_at),
            ).rowcount
            self._maybe_purge(conn, now)
            return written == 1

        return self._write("store a value if empty", work)

    def delete_data(self, key: str) -> bool:
        """Delete ``key``; ``True`` if it held a live value."""
        key = check_key(key)
        now = time.time()

        def work(conn: sqlite3.Connection) -> bool:
            live = conn.execute(
                f"DELETE FROM tasks_q_kv WHERE queue = ? AND key = ? AND {_LIVE}", (self.name, key, now)
            ).rowcount
            conn.execute("DELETE FROM tasks_q_kv WHERE queue = ? AND key = ?", (self.name, key))
            return live > 0

        return self._write("delete a value", work)

    def flush_all(self) -> None:
        """Delete every row of this queue name from every table, in one transaction."""

        def work(conn: sqlite3.Connection) -> None:
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table} WHERE queue = ?", (self.name,))

        self._write("flush everything", work)

    # ------------------------------------------------------------------ huey's extras

    def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """Sorted keys of live values starting with ``prefix`` (compared with ``substr``, so no escaping)."""
        rows = self._read(
            "list keys",
            lambda conn: conn.execute(
                f"SELECT key FROM tasks_q_kv WHERE queue = ? AND substr(key, 1, ?) = ? AND {_LIVE} "
                "ORDER BY key LIMIT ?",
                (self.name, len(prefix), prefix, time.time(), -1 if limit is None else limit),
            ).fetchall(),
        )
        return [row[0] for row in rows]

    def _values(self, results_only: bool) -> dict[str, bytes]:
        only = "AND is_result = 1 " if results_only else ""
        rows = self._read(
            "list values",
            lambda conn: conn.execute(
                f"SELECT key, value FROM tasks_q_kv WHERE queue = ? {only}AND {_LIVE} ORDER BY id",
                (self.name, time.time()),
            ).fetchall(),
        )
        return {row[0]: bytes(row[1]) for row in rows}

    def _count_values(self, results_only: bool) -> int:
        only = "AND is_result = 1 " if results_only else ""
        return self._read(
            "count values",
            lambda conn: conn.execute(
                f"SELECT COUNT(*) FROM tasks_q_kv WHERE queue = ? {only}AND {_LIVE}", (self.name, time.time())
            ).fetchone()[0],
        )

    def _flush_values(self, results_only: bool) -> None:
        only = " AND is_result = 1" if results_only else ""
        self._write(
            "flush values",
            lambda conn: conn.execute(f"DELETE FROM tasks_q_kv WHERE queue = ?{only}", (self.name,)),
        )

    def result_items(self) -> dict[str, bytes]:
        """Every live value, results or not, as ``{key: value}``."""
        return self._values(results_only=False)

    def result_store_size(self) -> int:
        """Count live values, results or not."""
        return self._count_values(results_only=False)

    def flush_results(self) -> None:
        """Delete every value, results or not, in one statement (counters stay)."""
        self._flush_values(results_only=False)

    def task_results(self) -> dict[str, bytes]:
        """Every live task result as ``{key: value}``."""
        return self._values(results_only=True)

    def task_result_count(self) -> int:
        """Count live task results."""
        return self._count_values(results_only=True)

    def flush_task_results(self) -> None:
        """Delete every task result in one statement (other values stay)."""
        self._flush_values(results_only=True)

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Read, add and write the counter in one write transaction; a missing or expired one starts at 0."""
        key = check_key(key)
        now = time.time()
        expires_at = expiry_time(ttl, now)

        def work(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT value, expires_at FROM tasks_q_counter WHERE queue = ? AND key = ?", (self.name, key)
            ).fetchone()
            if row is not None and (row[1] is None or row[1] > now):
                value = int(row[0]) + amount
                conn.execute(
                    "UPDATE tasks_q_counter SET value = ? WHERE queue = ? AND key = ?",
                    (value, self.name, key),
                )
            else:
                value = amount
                conn.execute(
                    "INSERT OR REPLACE INTO tasks_q_counter (queue, key, value, expires_at) VALUES (?, ?, ?, ?)",
                    (self.name, key, value, expires_at),
                )
            self._maybe_purge(conn, now)
            return value

        return self._write("increment a counter", work)

    def delete_counter(self, key: str) -> None:
        """Delete the counter ``key`` (one ``DELETE``)."""
        key = check_key(key)
        self._write(
            "delete a counter",
            lambda conn: conn.execute("DELETE FROM tasks_q_counter WHERE queue = ? AND key = ?", (self.name, key)),
        )

    def flush_counters(self) -> None:
        """Delete every counter of this queue (one ``DELETE``)."""
        self._write(
            "flush counters",
            lambda conn: conn.execute("DELETE FROM tasks_q_counter WHERE queue = ?", (self.name,)),
        )

    # ------------------------------------------------------------------ reliable delivery

    def reserve(self, lease: float) -> Reservation | None:
        """Claim the next ready message with one ``UPDATE … RETURNING`` in a write transaction (a row that
        cannot be read is dead-lettered on the way, see the module documentation)."""
        if not self._read("reserve", self._has_ready):
            return None
        token = new_token()
        unreadable: list[tuple[str, str]] = []
        claimed = self._write("reserve", lambda conn: self._claim(conn, token, lease, unreadable))
        self._log_unreadable(unreadable)  # after the commit: a rolled-back transaction buried nothing
        return claimed

    # The claim counts the claim only on an integer, so that the row keeps the value that makes it unreadable.
    _COUNT_CLAIM = "claims = CASE WHEN typeof(claims) = 'integer' THEN claims + 1 ELSE claims END"

    def _claim(
        self, conn: sqlite3.Connection, token: str, lease: float, unreadable: list[tuple[str, str]]
    ) -> Reservation | None:
        """Claim the next readable ready row; rows that cannot be read are dead-lettered and skipped (their
        message id and what was wrong are added to ``unreadable``, to be logged once the transaction ends)."""
        now = time.time()
        deadline = now + lease
        while True:
            if self._use_returning:
                row = conn.execute(
                    f"UPDATE tasks_q_message SET state = 1, {self._COUNT_CLAIM}, token = ?, deadline = ?, "
                    f"reserved_at = ? WHERE id = ({self._NEXT_READY}) "
                    "RETURNING id, message_id, CAST(data AS BLOB), claims, priority",
                    (token, deadline, now, self.name),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT id, message_id, CAST(data AS BLOB), claims, priority FROM tasks_q_message "
                    "WHERE queue = ? AND state = 0 ORDER BY priority DESC, id LIMIT 1",
                    (self.name,),
                ).fetchone()
                if row is not None and not _unreadable(row[4], row[3]):
                    conn.execute(
                        "UPDATE tasks_q_message SET state = 1, claims = claims + 1, token = ?, deadline = ?, "
                        "reserved_at = ? WHERE id = ?",
                        (token, deadline, now, row[0]),
                    )
                    row = (*row[:3], row[3] + 1, row[4])
            if row is None:
                return None
            row_id, message_id, data, claims, priority = row
            problem = _unreadable(priority, claims)
            if not problem:
                return Reservation(
                    message_id=message_id,
                    data=bytes(data),
                    token=token,
                    attempt=claims,
                    deadline=deadline,
                    reserved_at=now,
                    priority=priority,
                )
            self._bury_unreadable(conn, row_id, problem)
            unreadable.append((str(message_id), problem))

    def _bury_unreadable(self, conn: sqlite3.Connection, row_id: int, problem: str) -> None:
        """Move a row that cannot be read to the dead letters, keeping what can be read of it."""
        conn.execute(
            "INSERT INTO tasks_q_dead (queue, letter_id, data, reason, detail, attempts, failed_at, priority) "
            "SELECT m.queue, lower(hex(randomblob(16))), CAST(m.data AS BLOB), ?, ?, "
            "CASE WHEN typeof(m.claims) = 'integer' THEN m.claims ELSE 0 END, ?, "
            "CASE WHEN typeof(m.priority) = 'integer' THEN m.priority END FROM tasks_q_message m WHERE m.id = ?",
            (UNREADABLE_RECORD, problem, time.time(), row_id),
        )
        conn.execute("DELETE FROM tasks_q_message WHERE id = ?", (row_id,))

    def _log_unreadable(self, unreadable: list[tuple[str, str]]) -> None:
        for message_id, problem in unreadable:
            log_unreadable_record(self.name, f"message row {message_id!r} in {self.filename!r}", problem)

    def ack_and_reserve(
        self, reservation: Reservation, result: ResultWrite | None, lease: float
    ) -> tuple[bool, Reservation | None]:
        """Delete the acknowledged row (writing its result) and claim the next one, in one write transaction."""
        if not reservation.token:
            return False, self.reserve(lease)
        now = time.time()
        if result is not None:
            key, value, ttl = result
            value = check_bytes(value, "result value")
            expires_at = expiry_time(ttl, now)
        token = new_token()
        unreadable: list[tuple[str, str]] = []

        def work(conn: sqlite3.Connection) -> tuple[bool, Reservation | None]:
            acked = (
                conn.execute(
                    f"DELETE FROM tasks_q_message WHERE {self._OWNED}", self._owned_args(reservation)
                ).rowcount
                == 1
            )
            if acked and result is not None:
                self._put(conn, key, value, True, expires_at)
                self._maybe_purge(conn, now)
            conn.execute("SAVEPOINT claim")
            try:
                following = self._claim(conn, token, lease, unreadable)
            except Exception:
                # The acknowledgement is committed whatever happens to the claim; the next reserve() retries.
                conn.execute("ROLLBACK TO claim")
                unreadable.clear()
                following = None
                _logger.warning(
                    "SQLite storage %r: claiming the next message failed after an acknowledgement; the "
                    "acknowledgement is kept",
                    self.name,
                    exc_info=True,
                )
            conn.execute("RELEASE claim")
            return acked, following

        outcome = self._write("acknowledge and reserve", work)
        self._log_unreadable(unreadable)
        return outcome

    _OWNED = "queue = ? AND message_id = ? AND state = 1 AND token = ?"

    def _owned_args(self, reservation: Reservation) -> tuple[str, str, str]:
        return (self.name, reservation.message_id, reservation.token)

    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        """Delete the row if the token matches and write the result, in one write transaction."""
        if not reservation.token:
            return False
        now = time.time()
        if result is not None:
            key, value, ttl = result
            value = check_bytes(value, "result value")
            expires_at = expiry_time(ttl, now)

        def work(conn: sqlite3.Connection) -> bool:
            deleted = conn.execute(
                f"DELETE FROM tasks_q_message WHERE {self._OWNED}", self._owned_args(reservation)
            ).rowcount
            if deleted != 1:
                return False
            if result is not None:
                self._put(conn, key, value, True, expires_at)
                self._maybe_purge(conn, now)
            return True

        return self._write("acknowledge", work)

    def renew(self, reservation: Reservation, lease: float) -> bool:
        """Move the deadline if the token matches (one ``UPDATE``)."""
        if not reservation.token:
            return False

        def work(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute(
                    f"UPDATE tasks_q_message SET deadline = ? WHERE {self._OWNED}",
                    (time.time() + lease, *self._owned_args(reservation)),
                ).rowcount
                == 1
            )

        return self._write("renew a lease", work)

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Make the row ready again (same id, so same place) if the token matches; one ``UPDATE``."""
        if not reservation.token:
            return False
        claims = "claims" if count_attempt else "MAX(claims - 1, 0)"

        def work(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute(
                    f"UPDATE tasks_q_message SET state = 0, claims = {claims}, token = NULL, deadline = NULL, "
                    f"reserved_at = NULL WHERE {self._OWNED}",
                    self._owned_args(reservation),
                ).rowcount
                == 1
            )

        released = self._write("release", work)
        if released:
            self._wake_waiters()
        return released

    def _bury_row(
        self, conn: sqlite3.Connection, row_id: int, reason: str, detail: str, failed_at: float
    ) -> None:
        conn.execute(
            "INSERT INTO tasks_q_dead (queue, letter_id, data, reason, detail, attempts, failed_at, priority) "
            "SELECT m.queue, CASE WHEN EXISTS (SELECT 1 FROM tasks_q_dead d WHERE d.queue = m.queue "
            "AND d.letter_id = m.message_id) THEN lower(hex(randomblob(16))) ELSE m.message_id END, "
            "m.data, ?, ?, m.claims, ?, m.priority FROM tasks_q_message m WHERE m.id = ?",
            (reason, detail, failed_at, row_id),
        )
        conn.execute("DELETE FROM tasks_q_message WHERE id = ?", (row_id,))

    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        """Copy the row to the dead letters and delete it if the token matches, in one write transaction."""
        if not reservation.token:
            return False

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                f"SELECT id FROM tasks_q_message WHERE {self._OWNED}", self._owned_args(reservation)
            ).fetchone()
            if row is None:
                return False
            self._bury_row(conn, row[0], str(reason), str(detail), time.time())
            return True

        return self._write("bury", work)

    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        """Reclaim expired rows in one write transaction: back to ready (same id) or to the dead letters."""
        moment = float(now)

        def has_expired(conn: sqlite3.Connection) -> bool:
            return bool(
                conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM tasks_q_message WHERE queue = ? AND state = 1 AND deadline <= ?)",
                    (self.name, moment),
                ).fetchone()[0]
            )

        if not self._read("reclaim expired leases", has_expired):
            return []
        unreadable: list[tuple[str, str]] = []

        def work(conn: sqlite3.Connection) -> list[Reclaimed]:
            rows = conn.execute(
                "SELECT id, message_id, data, token, claims, deadline, reserved_at, priority FROM tasks_q_message "
                "WHERE queue = ? AND state = 1 AND deadline <= ? ORDER BY deadline, id",
                (self.name, moment),
            ).fetchall()
            failed_at = time.time()
            reclaimed = []
            back = []
            for row_id, message_id, data, token, claims, deadline, reserved_at, prio in rows:
                problem = _unreadable(prio, claims)
                if type(reserved_at) not in (int, float):
                    problem = "; ".join(filter(None, [problem, f"reserved_at {reserved_at!r} is not a time"]))
                if problem:
                    self._bury_unreadable(conn, row_id, problem)
                    unreadable.append((str(message_id), problem))
                    continue
                progressed = made_progress(float(deadline), float(reserved_at), progress_span)
                verdict = expired_verdict(claims, progressed, max_attempts, max_reclaims)
                if verdict is not None:
                    self._bury_row(conn, row_id, *verdict, failed_at)
                else:
                    back.append((row_id,))
                reservation = Reservation(
                    message_id=message_id,
                    data=bytes(data),
                    token=token,
                    attempt=int(claims),
                    deadline=float(deadline),
                    reserved_at=float(reserved_at),
                    priority=int(prio),
                )
                reclaimed.append(Reclaimed(reservation, verdict is not None, verdict[0] if verdict else "max_attempts"))
            conn.executemany(
                "UPDATE tasks_q_message SET state = 0, token = NULL, deadline = NULL, reserved_at = NULL "
                "WHERE id = ?",
                back,
            )
            return reclaimed

        reclaimed = self._write("reclaim expired leases", work)
        self._log_unreadable(unreadable)
        if reclaimed:
            self._wake_waiters()
        return reclaimed

    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        """Current reservations, earliest deadline first."""
        rows = self._read(
            "list reservations",
            lambda conn: conn.execute(
                "SELECT message_id, data, token, claims, deadline, reserved_at, priority FROM tasks_q_message "
                "WHERE queue = ? AND state = 1 ORDER BY deadline, id LIMIT ?",
                (self.name, _limit(limit)),
            ).fetchall(),
        )
        return [
            Reservation(
                message_id=message_id,
                data=bytes(data),
                token=token,
                attempt=int(claims),
                deadline=float(deadline),
                reserved_at=float(reserved_at),
                priority=int(prio),
            )
            for message_id, data, token, claims, deadline, reserved_at, prio in rows
        ]

    def in_flight_size(self) -> int:
        """Count reservations."""
        return self._read(
            "count reservations",
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM tasks_q_message WHERE queue = ? AND state = 1", (self.name,)
            ).fetchone()[0],
        )

    # ------------------------------------------------------------------ dead letters

    def add_dead_letter(
        self,
        data: bytes,
        reason: str,
        detail: str = "",
        attempts: int = 0,
        priority: int | None = None,
    ) -> str:
        """Insert a dead letter; return its new id."""
        data = check_bytes(data, "data")
        prio = None if priority is None else _priority(priority)
        letter_id = new_token()
        self._write(
            "add a dead letter",
            lambda conn: conn.execute(
                "INSERT INTO tasks_q_dead (queue, letter_id, data, reason, detail, attempts, failed_at, priority) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.name, letter_id, data, str(reason), str(detail), int(attempts), time.time(), prio),
            ),
        )
        return letter_id

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        rows = self._read(
            "list dead letters",
            lambda conn: conn.execute(
                "SELECT letter_id, data, reason, detail, attempts, failed_at, priority FROM tasks_q_dead "
                "WHERE queue = ? ORDER BY id LIMIT ?",
                (self.name, _limit(limit)),
            ).fetchall(),
        )
        return [
            DeadLetter(
                id=letter_id,
                data=bytes(data),
                reason=reason,
                detail=detail,
                attempts=int(attempts),
                failed_at=float(failed_at),
                priority=None if prio is None else int(prio),
            )
            for letter_id, data, reason, detail, attempts, failed_at, prio in rows
        ]

    def dead_letter_count(self) -> int:
        """Count dead letters."""
        return self._read(
            "count dead letters",
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM tasks_q_dead WHERE queue = ?", (self.name,)
            ).fetchone()[0],
        )

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """``INSERT … SELECT`` the letter into the queue (claims 0, new id: back of its priority), then delete it."""

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT id FROM tasks_q_dead WHERE queue = ? AND letter_id = ?", (self.name, dead_letter_id)
            ).fetchone()
            if row is None:
                return False
            taken = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM tasks_q_message WHERE queue = ? AND message_id = ?)",
                (self.name, dead_letter_id),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO tasks_q_message (queue, message_id, data, priority) "
                "SELECT queue, ?, data, COALESCE(priority, 0) FROM tasks_q_dead WHERE id = ?",
                (new_token() if taken else dead_letter_id, row[0]),
            )
            conn.execute("DELETE FROM tasks_q_dead WHERE id = ?", (row[0],))
            return True

        return self._write("requeue a dead letter", work)

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        """Delete dead letters by id and/or age, in one write transaction."""
        id_list = None if ids is None else list(dict.fromkeys(str(i) for i in ids))
        if id_list == []:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            age = "" if older_than is None else " AND failed_at < ?"
            age_args: tuple[Any, ...] = () if older_than is None else (float(older_than),)
            if id_list is None:
                return conn.execute(
                    f"DELETE FROM tasks_q_dead WHERE queue = ?{age}", (self.name, *age_args)
                ).rowcount
            deleted = 0
            for start in range(0, len(id_list), 500):
                chunk = id_list[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                deleted += conn.execute(
                    f"DELETE FROM tasks_q_dead WHERE queue = ? AND letter_id IN ({marks}){age}",
                    (self.name, *chunk, *age_args),
                ).rowcount
            return deleted

        return self._write("purge dead letters", work)
