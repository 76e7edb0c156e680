"""How the SQLite storage reaches its file: one connection per thread and process, short write transactions.

The storage runs the statements of :mod:`~django_tasks_q.backends.sql.data`,
:mod:`~django_tasks_q.backends.sql.delivery` and :mod:`~django_tasks_q.backends.sql.queue` (the ORM storage's),
through the primitives :class:`SqliteConnections` gives them: ``_run`` (one operation, its errors turned into
:class:`~django_tasks_q.exceptions.StorageError` that say what to do), ``_execute`` and ``_fetch*`` (each
template made once into the statement ``sqlite3`` prepares), ``_txn`` and ``_savepoint``.

* One connection per thread and per process (a connection is never shared between threads, and a process
  that was forked opens its own instead of using its parent's).
* ``PRAGMA journal_mode=WAL``: readers never wait for the writer. ``journal_size_limit`` truncates the WAL
  file back to 16 MiB after a checkpoint, so a busy queue's ``-wal`` file does not stay at its high-water mark.
* Every write is one short ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction (:meth:`SqliteConnections._run`):
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
import re
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, TypeVar

from django_tasks_q.backends.errors import ConfigurationError, StorageError
from django_tasks_q.backends.watch import ChangeWatch, probe_poller

from .core import SQLITE_FILE_SCHEMA, MessageWaiting
from .dialects import Dialect, SqliteDialect, SqliteDialectWithoutReturning
from .sqlite_layout import create_statements, rebuild_older_layout

__all__ = ["SUPPORTS_RETURNING", "SchemaMissing", "SqliteConnections"]

T = TypeVar("T")

_logger = logging.getLogger("django_tasks_q.backends.sqlite")

SUPPORTS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)
"""Whether the SQLite library linked into this Python knows ``UPDATE … RETURNING`` (3.35.0, March 2021)."""

WAL_SIZE_LIMIT = 16 * 1024 * 1024
"""Bytes the WAL file is truncated to after a checkpoint (``PRAGMA journal_size_limit``)."""



# Connections inherited from a parent process are never closed in the child (closing them there could disturb
# the parent's locks); they are parked here instead.
_INHERITED: list[Any] = []


_FORMAT_PLACEHOLDER = re.compile(r"(?<!%)%s")
"""The templates' ``%s`` placeholder (``%%`` is a literal ``%``), ``?`` for the ``sqlite3`` module."""

READS = frozenset({
    *("peek_data", "peek_many", "has_data_for_key", "data_keys", "task_results", "result_items"),
    *("task_result_count", "result_store_size", "queue_size", "enqueued_items", "scheduled_items"),
    *("schedule_size", "in_flight_items", "in_flight_size", "dead_letters", "dead_letter_count"),
    *("look for ready messages", "look for due items", "look for expired leases"),
})
"""The operations that only read: each of their statements runs on its own (in WAL mode a read never waits
for the writer); every other operation is one ``BEGIN IMMEDIATE`` transaction, which takes the write lock up
front, so it never has to upgrade a read lock (the classic source of "database is locked" errors that no busy
timeout can cure)."""

_JOINED = nullcontext()
"""A step of the transaction under way (``nullcontext`` can be entered again and again)."""

_WITH_RETURNING = SqliteDialect(None)
_WITHOUT_RETURNING = SqliteDialectWithoutReturning(None)


class _Handle:
    """Holds one thread's connection; weakly tracked so that ``close()`` can reach every live connection.

    When the thread ends, its thread-local handle is dropped and the connection closed with it.
    """

    __slots__ = ("__weakref__", "after_commit", "conn", "depth")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.depth = 0
        """How deep the transaction under way is (0: none; more than 1: in savepoints)."""
        self.after_commit: list[Callable[[], None]] = []

    def __del__(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


class _FileTransaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` on a thread's connection (a savepoint when nested): the write lock is
    taken at the start, waiting for it with the busy timeout, so what the statements read stays true until the
    commit. Any exception rolls back (to the savepoint) and is raised again; what was to run after the commit
    from inside a rolled-back savepoint is dropped."""

    __slots__ = ("handle", "kept", "savepoint")

    def __init__(self, handle: _Handle) -> None:
        self.handle = handle
        self.savepoint = ""
        self.kept = 0

    def __enter__(self) -> None:
        handle = self.handle
        if handle.depth:
            self.savepoint = f"tasks_q_{handle.depth}"
            self.kept = len(handle.after_commit)
            handle.conn.execute(f"SAVEPOINT {self.savepoint}")
        else:
            handle.conn.execute("BEGIN IMMEDIATE")
            handle.after_commit = []
        handle.depth += 1

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: Any) -> None:
        handle = self.handle
        handle.depth -= 1
        conn = handle.conn
        if self.savepoint:
            if kind is not None:
                conn.execute(f"ROLLBACK TO {self.savepoint}")
                del handle.after_commit[self.kept :]
            conn.execute(f"RELEASE {self.savepoint}")
            return
        callbacks, handle.after_commit = handle.after_commit, []
        if kind is None:
            try:
                conn.execute("COMMIT")
            except BaseException:
                _roll_back(conn)
                raise
            for callback in callbacks:
                callback()
        else:
            _roll_back(conn)


def _roll_back(conn: sqlite3.Connection) -> None:
    """Roll back the transaction under way, if any; a rollback that fails is ignored (the error that led
    here is the one to report)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


class SchemaMissing(StorageError, sqlite3.OperationalError):
    """The storage's tables are missing from the file (opened with ``create_tables=False``).

    Also a :class:`sqlite3.OperationalError`, the error huey's SQLite storage lets through in this case.
    """



class SqliteConnections(MessageWaiting):
    """The plumbing of :class:`~django_tasks_q.backends.sqlite.SqliteStorage` (see the module
    documentation): connections, the tables, transactions, errors, and the primitives the statements run on."""

    name: str
    filename: str
    database_path: str
    cache_mb: int
    fsync: bool
    strict_fifo: bool
    create_tables: bool
    _timeout: float
    _schema_ready: bool

    _schema = SQLITE_FILE_SCHEMA
    _kind = "SQLite storage"
    _UNIQUE_CONFLICT: ClassVar[type[Exception]] = sqlite3.IntegrityError
    channel = ""
    """No channel: other processes see new messages by the file's ``data_version``."""

    purge_interval: float | None = 5.0
    """At most this often (seconds), a write also deletes expired values and counters (``purge_expired``)."""

    def _init_connections(self) -> None:
        """Set up the per-thread connections (none is opened until the first operation)."""
        self._pid = os.getpid()
        self._local = threading.local()
        self._handles: weakref.WeakSet[_Handle] = weakref.WeakSet()
        self._setup_lock = threading.Lock()
        self._watch_lock = threading.Lock()
        self._schema_ready = not self.create_tables
        self._last_purge = -float("inf")  # the first write sweeps
        self._watch_conn: sqlite3.Connection | None = None
        self._statements: dict[str, str] = {}
        self._peek_hash_cache: dict[Any, tuple[str, ...]] = {}

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
        return self._handle().conn

    def _handle(self) -> _Handle:
        if os.getpid() != self._pid:
            self._forget_parent_connections()
        handle = getattr(self._local, "handle", None)
        if handle is None:
            handle = _Handle(self._open())
            self._local.handle = handle
            self._handles.add(handle)
        return handle

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
            rebuild_older_layout(conn, self.strict_fifo)
            for statement in create_statements(self.strict_fifo):
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

    # ------------------------------------------------------------------ the primitives the statements run on

    _dialect: Dialect = _WITH_RETURNING

    @property
    def _use_returning(self) -> bool:
        """Whether statements use ``RETURNING`` (SQLite 3.35+; settable, to run the older library's path)."""
        return self._dialect.returning

    @_use_returning.setter
    def _use_returning(self, value: bool) -> None:
        self._dialect = _WITH_RETURNING if value else _WITHOUT_RETURNING

    def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` as one storage operation on this thread's connection: in one ``BEGIN
        IMMEDIATE`` transaction unless it only reads (:data:`READS`); errors say what to do.

        The transaction is spelled out here rather than through :class:`_FileTransaction`: this runs for
        every operation, and each call saved shows in a worker's rate."""
        handle = self._handle()
        conn = handle.conn
        try:
            if what in READS or handle.depth:
                return fn(conn, *args)
            conn.execute("BEGIN IMMEDIATE")
            handle.depth = 1
            try:
                result = fn(conn, *args)
                handle.depth = 0
                conn.execute("COMMIT")
            except BaseException:
                handle.depth = 0
                handle.after_commit.clear()
                _roll_back(conn)
                raise
        except sqlite3.Error as exc:
            raise self._error(exc, what) from exc
        if handle.after_commit:
            callbacks, handle.after_commit = handle.after_commit, []
            for callback in callbacks:
                callback()
        return result

    def _exists(self, what: str, template: str, params: Sequence[Any]) -> bool:
        """Whether the ``SELECT EXISTS (…)`` of ``template`` is true: one read, as cheap as it can be made."""
        conn = self._handle().conn
        try:
            return conn.execute(self._statements.get(template) or self._prepare(template), params).fetchone()[0] == 1
        except sqlite3.Error as exc:
            raise self._error(exc, what) from exc

    def _prepare(self, template: str) -> str:
        """The statement of ``template``: table and column names filled in, ``?`` placeholders (made once)."""
        sql = _FORMAT_PLACEHOLDER.sub("?", template.format_map(self._schema.template_names(str))).replace("%%", "%")
        self._statements[template] = sql
        return sql

    def _execute(self, conn: sqlite3.Connection, template: str, params: Sequence[Any] = ()) -> int:
        return conn.execute(self._statements.get(template) or self._prepare(template), params).rowcount

    def _executemany(self, conn: sqlite3.Connection, template: str, rows: Sequence[Sequence[Any]]) -> None:
        conn.executemany(self._statements.get(template) or self._prepare(template), rows)

    def _fetchall(self, conn: sqlite3.Connection, template: str, params: Sequence[Any] = ()) -> list[Any]:
        return conn.execute(self._statements.get(template) or self._prepare(template), params).fetchall()

    def _fetchone(self, conn: sqlite3.Connection, template: str, params: Sequence[Any] = ()) -> Any:
        """The first row of a statement that yields at most one (read to its end, so that it is finished)."""
        rows = conn.execute(self._statements.get(template) or self._prepare(template), params).fetchall()
        return rows[0] if rows else None

    def _insert_returning_id(self, conn: sqlite3.Connection, template: str, params: Sequence[Any]) -> int:
        """Run one ``INSERT`` and return the new row's id."""
        return conn.execute(self._statements.get(template) or self._prepare(template), params).lastrowid or 0

    def _txn(self, conn: sqlite3.Connection) -> AbstractContextManager[None]:
        """One atomic step: part of the operation's transaction (see :meth:`_run`), or ``BEGIN IMMEDIATE`` …
        ``COMMIT`` of its own in an operation that only reads."""
        handle = self._local.handle  # inside _run, which opened it
        return _JOINED if handle.depth else _FileTransaction(handle)

    def _savepoint(self, conn: sqlite3.Connection) -> AbstractContextManager[Any]:
        """A savepoint inside the transaction under way: an error rolls back only what ran inside it."""
        return _FileTransaction(self._local.handle)

    def _after_commit(self, conn: sqlite3.Connection, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction under way commits (never if it, or its savepoint, rolls back)."""
        handle = self._local.handle
        if handle.depth:
            handle.after_commit.append(callback)
        else:
            callback()

    def _in_caller_transaction(self) -> bool:
        """Never: every operation of this storage is a transaction of its own."""
        return False

    def _message_row_place(self, pk: Any) -> str:
        """Where a message row is, as a log line names it."""
        return f"message row {pk} in {self.filename!r}"
