"""How the SQLite storage reaches its file: one connection per thread and process, short write transactions.

* One connection per thread and per process (a connection is never shared between threads, and a process
  that was forked opens its own instead of using its parent's).
* ``PRAGMA journal_mode=WAL``: readers never wait for the writer. ``journal_size_limit`` truncates the WAL
  file back to 16 MiB after a checkpoint, so a busy queue's ``-wal`` file does not stay at its high-water mark.
* Every write is one short ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction (:meth:`SqliteConnections._write`):
  the write lock is taken up front, so a transaction never has to upgrade a read lock (the classic source of
  "database is locked" errors that no busy timeout can cure); contenders wait up to ``timeout``. No
  transaction is ever left open while a task runs: every method commits before it returns.
* Idle consumers wait for ``PRAGMA data_version`` of the file to change, read on a connection of their own
  every 50 ms (every 4 ms for a second once two changes came less than a second apart) by one waiting thread
  per process; a write of this process wakes the waiters at once.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from django_tasks_q.backends.errors import ConfigurationError, StorageError
from django_tasks_q.backends.watch import ChangeWatch, probe_poller

from .core import SQLITE_FILE_SCHEMA, MessageWaiting

__all__ = ["SUPPORTS_RETURNING", "SchemaMissing", "SqliteConnections", "limit_param"]

T = TypeVar("T")

_logger = logging.getLogger("django_tasks_q.backends.sqlite")

SUPPORTS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
"""Whether the SQLite library linked into this Python knows ``UPDATE … RETURNING`` (3.35.0, March 2021)."""

WAL_SIZE_LIMIT = 16 * 1024 * 1024
"""Bytes the WAL file is truncated to after a checkpoint (``PRAGMA journal_size_limit``)."""



# Connections inherited from a parent process are never closed in the child (closing them there could disturb
# the parent's locks); they are parked here instead.
_INHERITED: list[Any] = []


def _create_statements(strict_fifo: bool) -> list[str]:
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



def limit_param(limit: int | None) -> int:
    """``limit`` as a ``LIMIT ?`` parameter (SQLite reads -1 as no limit)."""
    return -1 if limit is None else max(int(limit), 0)


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



class SqliteConnections(MessageWaiting):
    """The plumbing of :class:`~django_tasks_q.backends.sqlite.SqliteStorage` (see the module
    documentation): connections, the tables, transactions, errors, and the sweep of expired values."""

    name: str
    filename: str
    database_path: str
    cache_mb: int
    fsync: bool
    strict_fifo: bool
    create_tables: bool
    _timeout: float
    _schema_ready: bool
    _last_purge: float

    _schema = SQLITE_FILE_SCHEMA

    purge_interval: ClassVar[float] = 5.0
    """At most this often (seconds), a write also deletes expired values and counters (``purge_expired``)."""

    def _init_connections(self) -> None:
        """Set up the per-thread connections (none is opened until the first operation)."""
        self._pid = os.getpid()
        self._local = threading.local()
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._setup_lock = threading.Lock()
        self._watch_lock = threading.Lock()
        self._schema_ready = not self.create_tables
        self._last_purge = 0.0
        self._watch_conn: sqlite3.Connection | None = None

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
            for statement in _create_statements(self.strict_fifo):
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


    def _make_watch(self) -> ChangeWatch:
        self._connection()  # the file, its tables and WAL mode exist before anything polls it
        conn = sqlite3.connect(self.database_path, timeout=self._timeout, check_same_thread=False)
        self._watch_conn = conn
        return ChangeWatch(probe_poller(lambda: conn.execute("PRAGMA data_version").fetchone()[0]))

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

    def _query(self, action: str, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read-only statement."""
        return self._read(action, lambda conn: conn.execute(sql, params).fetchall())

    def _count(self, action: str, sql: str, params: Sequence[Any] = ()) -> int:
        """The single number one read-only statement yields (a count)."""
        return self._read(action, lambda conn: conn.execute(sql, params).fetchone()[0])

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

