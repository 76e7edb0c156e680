"""How the ORM storage reaches the database: Django's connections, transactions, retries and errors.

:class:`OrmTransport` runs each storage operation (:meth:`OrmTransport._run`): it connects, isolates the
operation (its own short transaction, or a savepoint inside a caller's ``transaction.atomic()``), retries a
deadlock or SQLite's busy timeout, and turns database errors into :class:`~django_tasks_q.exceptions.StorageError`
that say what to do. Statements are the templates of :mod:`django_tasks_q.backends.sql.dialects`.

On SQLite, statements run on the ``sqlite3`` connection under Django's, each prepared once
(:meth:`OrmTransport._run_direct`), in transactions opened with ``BEGIN IMMEDIATE`` without the bookkeeping of a
Django atomic block (:class:`_SqliteTransaction`), and the steps of a delivery commit at ``synchronous=NORMAL``
on a WAL database unless ``fsync=True`` (:meth:`OrmTransport._without_sync`). Within one process, the threads
that write one SQLite database take turns (:func:`database_write_lock`), and SQLite's own lock only arbitrates
between processes.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.db import Error as DjangoDatabaseError
from django.db import IntegrityError, connections, transaction

from ..errors import ConfigurationError, StorageError
from ..watch import ChangeWatch, probe_poller
from .core import MessageWaiting, Schema, orm_schema
from .dialects import Dialect, dialect_for

if TYPE_CHECKING:
    from django.db.backends.sqlite3.base import DatabaseWrapper as SqliteDatabaseWrapper

__all__ = ["OrmTablesMissing", "OrmTransport", "database_write_lock"]

logger = logging.getLogger("django_tasks_q.backends.orm")
sql_logger = logging.getLogger("django.db.backends")
"""Where Django logs every statement when queries are logged; the direct statements are logged there too."""

T = TypeVar("T")

SQLITE_FAST_POLL = 0.001
"""Seconds between two reads of a SQLite database's ``data_version`` by idle workers while the queue is busy
(see :func:`~django_tasks_q.backends.watch.probe_poller`): a new message waits half of it on average. A read
costs a few microseconds; it goes back to every 50 ms once the queue has been quiet for a second."""

_FORMAT_PLACEHOLDER = re.compile(r"(?<!%)%s")
"""Django's ``%s`` placeholder (``%%`` is a literal ``%``), ``?`` for the ``sqlite3`` module."""

def _plain_wait(timeout: float) -> bool:
    time.sleep(timeout)
    return False


_SYNC_NORMAL = 1
"""SQLite's ``PRAGMA synchronous`` levels: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA."""
_REDELIVERED_IF_LOST = frozenset(
    {"reserve", "ack", "ack_and_reserve", "renew", "release", "bury", "requeue_expired"}
)
"""The steps of a delivery whose loss in a power failure only delivers a message again (see ``_without_sync``)."""

_sqlite_locks: dict[str, threading.RLock] = {}
_sqlite_locks_guard = threading.Lock()


def _sqlite_lock(conn: Any) -> threading.RLock:
    """The lock through which this process's threads take turns writing the SQLite database of ``conn``."""
    key = str(conn.settings_dict.get("NAME"))
    lock = _sqlite_locks.get(key)
    if lock is None:
        with _sqlite_locks_guard:
            lock = _sqlite_locks.setdefault(key, threading.RLock())
    return lock


def database_write_lock(using: str) -> AbstractContextManager[Any]:
    """Hold it around a write transaction of other code on database ``using`` (the task history's batches):
    on SQLite, threads of this process that write it then take turns with the ORM storage's, instead of meeting
    on SQLite's lock, whose busy handler sleeps a millisecond or more at a time. A no-op on other databases."""
    conn = connections[using]
    if conn.vendor != "sqlite" or conn.in_atomic_block:
        return nullcontext()
    return _sqlite_lock(conn)


class _TransactionState(threading.local):
    """Per thread: how deep the SQLite transaction that :class:`_SqliteTransaction` opened is (0: none), and
    what runs once it commits."""

    def __init__(self) -> None:
        self.depth = 0
        self.after_commit: list[Callable[[], None]] = []


class _SqliteTransaction:
    """A SQLite transaction opened on Django's connection while it is in autocommit mode, as ``atomic`` does on
    SQLite (``BEGIN`` with the connection's ``sqlite3`` autocommit left on), without the bookkeeping of a
    Django atomic block (savepoint ids, the autocommit switch, the connection's state checks).

    ``BEGIN IMMEDIATE`` takes the write lock at once (waiting for it with the busy timeout), so the reads that
    follow stay true until ``COMMIT``. Nested, it is a savepoint. If the ``COMMIT`` or a ``ROLLBACK`` fails and
    leaves the transaction open, the connection is closed (the next call reconnects), never left for Django to
    use as if in autocommit.
    """

    __slots__ = ("conn", "savepoint", "state", "storage")

    def __init__(self, storage: OrmTransport, conn: Any) -> None:
        self.storage = storage
        self.conn = conn
        self.state = storage._local
        self.savepoint = ""

    def _sql(self, sql: str) -> None:
        with self.conn.wrap_database_errors:
            self.conn.connection.execute(sql)

    def __enter__(self) -> None:
        state = self.state
        if state.depth:
            self.savepoint = f"tasks_q_{state.depth}"
            self._sql(f'SAVEPOINT "{self.savepoint}"')
        else:
            self._sql("BEGIN IMMEDIATE")
            state.after_commit = []
        state.depth += 1

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: Any) -> None:
        state = self.state
        state.depth -= 1
        if self.savepoint:
            if kind is not None:
                self._sql(f'ROLLBACK TO SAVEPOINT "{self.savepoint}"')
            self._sql(f'RELEASE SAVEPOINT "{self.savepoint}"')
            return
        callbacks, state.after_commit = state.after_commit, []
        if kind is not None:
            self._abandon()
            return
        try:
            self._sql("COMMIT")
        except BaseException:
            self._abandon()
            raise
        for callback in callbacks:
            callback()

    def _abandon(self) -> None:
        """Roll back (after an error, or a ``COMMIT`` that failed); close the connection if that fails."""
        raw = self.conn.connection
        if raw is None or not raw.in_transaction:
            return
        try:
            raw.rollback()
        except Exception:
            logger.debug("ORM storage %r: rolling back failed; closing the connection", self.storage.name, exc_info=True)
        if raw.in_transaction:
            try:
                self.conn.close()
            except Exception:
                logger.debug("ORM storage %r: closing the connection failed", self.storage.name, exc_info=True)


class OrmTablesMissing(ConfigurationError, StorageError):
    """The ORM storage's tables do not exist in the database: ``python manage.py migrate`` has not been run."""


def _app_installed() -> bool:
    from django.apps import apps

    return apps.ready and apps.is_installed("django_tasks_q")



class OrmTransport(MessageWaiting):
    """The plumbing of :class:`~django_tasks_q.backends.orm.OrmStorage` (see the module documentation)."""

    name: str
    using: str
    fsync: bool
    channel: str

    _kind = "ORM storage"
    """How log lines name the storage."""

    def _init_transport(self, conn: Any, using: str, fsync: bool) -> None:
        """Set up the plumbing for database ``using`` (whose Django connection is ``conn``)."""
        self.using = using
        self.fsync = fsync
        self._sqlite = conn.vendor == "sqlite"
        """Whether the database is SQLite: statements go straight to ``sqlite3``, writers take turns."""
        self._dialect: Dialect = dialect_for(conn)
        self._quote_name = conn.ops.quote_name
        self._loaded_schema: Schema | None = None
        self._names: dict[str, str] = {}
        self._sql_cache: dict[str, str] = {}
        self._qmark_cache: dict[str, str] = {}
        self.channel = "tasks_q_" + hashlib.sha256(self.name.encode("utf-8")).hexdigest()[:24]
        """PostgreSQL ``NOTIFY`` channel of this queue (every write that makes a message ready notifies it)."""
        self._watch_lock = threading.Lock()
        self._watch_resource: Any = None
        self._local = _TransactionState()
        self._wal_unchecked = self._sqlite
        """Whether this process has yet to check the SQLite database's journal mode (see :meth:`_ensure_wal`)."""
        self._wal = False
        """Whether the SQLite database is in WAL mode (known once :meth:`_ensure_wal` ran)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r} using={self.using!r}>"

    @property
    def kept_connection_aliases(self) -> tuple[str, ...]:
        """The database aliases a consumer's worker keeps connected between tasks, whatever ``CONN_MAX_AGE`` says."""
        return (self.using,)

    def close(self) -> None:
        """Close the connection that watches for new messages, if any (the others belong to Django)."""
        resource, self._watch_resource, self._watch = self._watch_resource, None, None
        if resource is not None and self._watch_pid == os.getpid():
            try:
                resource.close()
            except Exception:
                logger.debug("ORM storage %r: closing the watch connection failed", self.name, exc_info=True)

    # ================================================================== plumbing

    @property
    def _schema(self) -> Schema:
        """The tables, as the models name them (loaded on first use: the models need the app registry)."""
        schema = self._loaded_schema
        if schema is None:
            if not _app_installed():
                raise OrmTablesMissing(
                    f"ORM storage of queue {self.name!r}: its tables do not exist because 'django_tasks_q' is not "
                    "in INSTALLED_APPS, so `migrate` never creates them. Add \"django_tasks_q\" to "
                    "INSTALLED_APPS, then run `python manage.py migrate`."
                )
            schema = self._loaded_schema = orm_schema()
        return schema

    def _sql(self, template: str) -> str:
        """``template`` with ``{msg}``, ``{queue}`` ... replaced by quoted table and column names."""
        sql = self._sql_cache.get(template)
        if sql is None:
            if not self._names:
                self._names = self._schema.template_names(self._quote_name)
            sql = self._sql_cache[template] = template.format_map(self._names)
        return sql

    def _direct(self, conn: Any) -> bool:
        """Whether statements go straight to the SQLite connection (see :meth:`_run_direct`).

        Not when the project wrapped the connection's statements (``connection.execute_wrapper()``: tracing,
        query counting): those go through Django's cursor, as every statement of the project does.
        """
        return self._sqlite and not conn.execute_wrappers

    def _run_direct(self, conn: Any, template: str, params: Sequence[Any], many: bool = False) -> Any:
        """Run one statement on the ``sqlite3`` connection under Django's connection, and return its cursor.

        The statement is prepared once (SQLite's own statement cache, keyed by the text built here once per
        template, ``?`` placeholders), and skips the layers of Django's cursor a claim or an acknowledgement
        paid for on every statement: the ``%s`` to ``?`` rewrite, and with ``DEBUG = True`` (as startproject
        leaves it) the formatting of every statement with its parameters, for which Django's SQLite backend
        runs one more query. Errors become Django's (``wrap_database_errors``), exactly as through its cursor.
        When queries are logged (``DEBUG``, ``assertNumQueries``, ``CaptureQueriesContext``), the statement is
        logged in ``connection.queries`` with its placeholders.
        """
        sql = self._qmark_cache.get(template)
        if sql is None:
            sql = self._qmark_cache[template] = _FORMAT_PLACEHOLDER.sub("?", self._sql(template)).replace("%%", "%")
        if conn.needs_rollback:
            conn.validate_no_broken_transaction()
        logged = conn.queries_logged
        started = time.monotonic() if logged else 0.0
        with conn.wrap_database_errors:
            cursor = conn.connection.executemany(sql, params) if many else conn.connection.execute(sql, params)
        if logged:
            elapsed = time.monotonic() - started
            conn.queries_log.append({"sql": sql, "time": f"{elapsed:.3f}"})
            if sql_logger.isEnabledFor(logging.DEBUG):
                sql_logger.debug(
                    "(%.3f) %s; args=%s; alias=%s", elapsed, sql, params, conn.alias,
                    extra={"duration": elapsed, "sql": sql, "params": params, "alias": conn.alias},
                )
        return cursor

    def _rows(self, conn: Any, cursor: Any) -> list[tuple[Any, ...]]:
        """Every row of a direct statement's cursor (read to the end, so that the statement is finished)."""
        with conn.wrap_database_errors:
            return cursor.fetchall()

    def _execute(self, conn: Any, template: str, params: Sequence[Any] = ()) -> int:
        if self._direct(conn):
            return self._run_direct(conn, template, params).rowcount
        with conn.cursor() as cursor:
            cursor.execute(self._sql(template), params)
            return cursor.rowcount

    def _executemany(self, conn: Any, template: str, rows: Sequence[Sequence[Any]]) -> None:
        if self._direct(conn):
            self._run_direct(conn, template, rows, many=True)
            return
        with conn.cursor() as cursor:
            cursor.executemany(self._sql(template), rows)

    def _fetchall(self, conn: Any, template: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._direct(conn):
            return self._rows(conn, self._run_direct(conn, template, params))
        with conn.cursor() as cursor:
            cursor.execute(self._sql(template), params)
            return list(cursor.fetchall())

    def _fetchone(self, conn: Any, template: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """The first row of a statement that yields at most one (a claim, a read by unique key, a count)."""
        if self._direct(conn):
            rows = self._rows(conn, self._run_direct(conn, template, params))
            return rows[0] if rows else None
        with conn.cursor() as cursor:
            cursor.execute(self._sql(template), params)
            return cursor.fetchone()

    def _txn(self, conn: Any) -> AbstractContextManager[None]:
        """One atomic step (a savepoint inside a transaction already open).

        SQLite outside any transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT`` on the connection itself (see
        :class:`_SqliteTransaction`): the write lock is taken at the start, waiting for it with the busy
        timeout, so what the following statements read stays true until commit. Elsewhere
        ``transaction.atomic``; on SQLite its first statement is then a write that changes nothing, for the
        same lock.
        """
        if self._sqlite and (self._local.depth or (not conn.in_atomic_block and self._direct(conn))):
            return _SqliteTransaction(self, conn)
        return self._atomic(conn)

    @contextmanager
    def _atomic(self, conn: Any) -> Iterator[None]:
        with transaction.atomic(using=self.using):
            if self._sqlite:
                self._execute(conn, "UPDATE {msg} SET {id} = {id} WHERE 1 = 0")
            yield

    def _savepoint(self, conn: Any) -> AbstractContextManager[Any]:
        """A savepoint inside the transaction under way (whichever of :meth:`_txn`'s kinds it is)."""
        if self._local.depth:
            return _SqliteTransaction(self, conn)
        return transaction.atomic(using=self.using)

    def _after_commit(self, conn: Any, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction under way commits (never if it rolls back)."""
        if self._local.depth:
            self._local.after_commit.append(callback)
        else:
            transaction.on_commit(callback, using=self.using)

    _UNIQUE_CONFLICT: type[Exception] = IntegrityError
    """What a statement raises when it breaks a unique constraint (the key/value area's ``put_if_empty``)."""

    def _in_caller_transaction(self) -> bool:
        """Whether the storage is being called inside a transaction of the caller's (``transaction.atomic()``)."""
        return connections[self.using].in_atomic_block

    def _insert_returning_id(self, conn: Any, template: str, params: Sequence[Any]) -> Any:
        """Run one ``INSERT`` and return the new row's id (read by ``RETURNING`` where the database has it)."""
        if self._dialect.returning:
            row = self._fetchone(conn, template + " RETURNING {id}", params)
            assert row is not None
            return row[0]
        with conn.cursor() as cursor:
            cursor.execute(self._sql(template), params)
            return cursor.lastrowid

    def _message_row_place(self, pk: Any) -> str:
        """Where a message row is, as a log line names it."""
        return f"message row {pk} of DATABASES[{self.using!r}]"

    def _process_lock(self, conn: Any) -> AbstractContextManager[Any]:
        """On SQLite, one thread of this process at a time per database (outside a caller's transaction)."""
        if not self._sqlite or conn.in_atomic_block:
            return nullcontext()
        return _sqlite_lock(conn)

    def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` as one storage operation: connect, isolate, retry, translate errors."""
        conn = connections[self.using]
        outer = conn.in_atomic_block
        for attempt in itertools.count(1):
            with self._process_lock(conn):
                self._connect(conn)
                if self._wal_unchecked and not outer:
                    self._ensure_wal(conn)
                try:
                    if outer:
                        with transaction.atomic(using=self.using):  # a savepoint: the caller's tx survives
                            return fn(conn, *args)
                    if self._wal and not self.fsync and what in _REDELIVERED_IF_LOST:
                        return self._without_sync(conn, fn, args)
                    return fn(conn, *args)
                except DjangoDatabaseError as exc:  # DatabaseError, and InterfaceError (a lost connection)
                    error: DjangoDatabaseError = exc
            if not outer and attempt < self._dialect.attempts_per_call and self._is_transient(error):
                logger.debug("ORM storage %r: %s() hit %s; retrying", self.name, what, error)
                time.sleep(random.uniform(0, min(0.02 * 2**attempt, 0.5)))
                continue
            raise self._translate(conn, error, what, outer) from error
        raise AssertionError("unreachable")  # pragma: no cover

    def _without_sync(self, conn: Any, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """Run ``fn(conn, *args)`` with the connection at ``synchronous=NORMAL``, then give it its own setting back.

        For the steps of a delivery on a WAL database (:data:`_REDELIVERED_IF_LOST`): in WAL mode a commit at
        ``NORMAL`` survives a crash of the process; only a power failure or a crash of the machine can lose the
        last commits, and the log is replayed in order, so what is lost is always the latest steps: a claim (the
        message is ready again), an acknowledgement with everything the task wrote through the storage before it
        (the message runs again), a reclaim or a dead-lettering (done again by the next reaper). At-least-once
        delivery holds; the sync of the log that every one of these commits would wait for is gone. The
        connection's own setting, which decides how durable the project's writes are, is restored before the
        connection is used for anything else; should that fail, the connection is closed.
        """
        raw = conn.connection
        with conn.wrap_database_errors:
            previous = int(raw.execute("PRAGMA synchronous").fetchone()[0])
            if previous > _SYNC_NORMAL:
                raw.execute(f"PRAGMA synchronous = {_SYNC_NORMAL}")
        if previous <= _SYNC_NORMAL:  # already NORMAL (or OFF): nothing to change
            return fn(conn, *args)
        try:
            return fn(conn, *args)
        finally:
            try:
                raw.execute(f"PRAGMA synchronous = {previous}")
            except Exception:
                logger.warning(
                    "ORM storage %r: could not restore synchronous=%s on DATABASES[%r]; closing the connection",
                    self.name, previous, self.using, exc_info=True,
                )
                conn.close()

    def _ensure_wal(self, conn: Any) -> None:
        """Switch a SQLite database still in SQLite's default rollback journal (``delete``) to WAL, once.

        WAL is a lasting property of the database file, safe for Django and for every other process that opens
        it: readers no longer block the writer, and a commit appends to the log instead of creating, syncing
        and deleting a journal file (several times the enqueue and drain rates). Any other journal mode was
        chosen by someone (an ``init_command``, a tool) and is left alone; so is ``synchronous``, which belongs
        to each connection and decides how durable the project's own writes are (the storage lowers it only
        for the commits of its own delivery steps, see :meth:`_without_sync`).
        """
        try:
            with conn.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode")
                mode = cursor.fetchone()[0].lower()
                if mode == "delete":
                    cursor.execute("PRAGMA journal_mode=WAL")
                    mode = cursor.fetchone()[0].lower()
                    if mode != "wal":
                        logger.warning(
                            "ORM storage %r: SQLite kept the journal mode %r of DATABASES[%r] instead of WAL; "
                            "the queue works, only slower", self.name, mode, self.using)
        except DjangoDatabaseError as exc:  # busy or read-only: the queue works in the old mode
            logger.warning(
                "ORM storage %r: could not switch DATABASES[%r] to WAL (%s); the queue works, only slower. Add "
                "'init_command': 'PRAGMA journal_mode=WAL;' to its OPTIONS to do it at every connection",
                self.name, self.using, exc)
            mode = ""
        self._wal = mode == "wal"
        self._wal_unchecked = False

    def _connect(self, conn: Any) -> None:
        if conn.connection is not None:
            return
        try:
            conn.ensure_connection()
        except DjangoDatabaseError as exc:
            raise StorageError(self._connect_message(conn, exc)) from exc

    def _connect_message(self, conn: Any, exc: BaseException) -> str:
        settings = conn.settings_dict
        where = ", ".join(
            f"{key} {settings.get(key)!r}"
            for key in ("HOST", "PORT", "NAME")
            if settings.get(key) not in (None, "")
        )
        return (
            f"ORM storage of queue {self.name!r} cannot connect to the database DATABASES[{self.using!r}] "
            f"({conn.vendor}{', ' + where if where else ''}): {exc}. Check DATABASES[{self.using!r}] in your "
            f"settings and that the database server is running and accepts connections; the storage's `using` "
            f"option (TASKS_Q[{self.name!r}]['OPTIONS']['using']) chooses the alias."
        )

    def _is_transient(self, error: DjangoDatabaseError) -> bool:
        return self._dialect.is_transient(error)

    def _translate(self, conn: Any, error: DjangoDatabaseError, what: str, outer: bool) -> StorageError:
        if not outer:
            self._discard_if_broken(conn)
        missing = self._missing_tables(conn)
        if missing:
            return OrmTablesMissing(
                f"ORM storage of queue {self.name!r}: table(s) {', '.join(missing)} do not exist in database "
                f"{self.using!r} ({error}). Run `python manage.py migrate"
                + ("" if self.using == "default" else f" --database {self.using}")
                + "` to create them."
            )
        return StorageError(
            f"ORM storage of queue {self.name!r}: {what}() failed on database {self.using!r}: {error}"
        )

    def _discard_if_broken(self, conn: Any) -> None:
        """Close a connection that no longer works, so that the next call reconnects."""
        try:
            if conn.connection is not None and not conn.is_usable():
                conn.close()
        except Exception:  # a broken connection may fail to close too; it is dropped either way
            logger.debug("ORM storage %r: closing a broken connection failed", self.name, exc_info=True)

    def _missing_tables(self, conn: Any) -> list[str]:
        try:
            with conn.cursor() as cursor:
                existing = {name.lower() for name in conn.introspection.table_names(cursor)}
        except Exception:
            return []
        return [table for table in self._schema.tables if table.lower() not in existing]


    def _make_watch(self) -> ChangeWatch:
        """PostgreSQL: ``LISTEN`` on the queue's channel over a connection of its own (every enqueue, release,
        reclaim and schedule move sends ``NOTIFY``, delivered at commit). SQLite: ``PRAGMA data_version`` of the
        database file on a connection of its own, read every 50 ms (every millisecond for a second once two
        changes came less than a second apart). MariaDB/MySQL, or when the native wait cannot be set up: a
        plain wait (a write of this process still wakes the waiters at once)."""
        try:
            poll = self._make_poll()
        except Exception as exc:
            logger.warning("ORM storage %r: cannot watch the database for new messages: %s", self.name, exc)
            poll = None
        return ChangeWatch(poll or _plain_wait)

    def _make_poll(self) -> Callable[[float], bool] | None:
        conn = connections[self.using]
        if self._sqlite:
            if cast("SqliteDatabaseWrapper", conn).is_in_memory_db():
                return None
            name = str(conn.settings_dict["NAME"])
            watch_conn = sqlite3.connect(name, check_same_thread=False, uri=name.startswith("file:"))
            self._watch_resource = watch_conn
            return probe_poller(lambda: watch_conn.execute("PRAGMA data_version").fetchone()[0], fast=SQLITE_FAST_POLL)
        listening = self._dialect.listen(conn, self.channel, self._lost_listener)
        if listening is None:
            return None
        self._watch_resource, poll = listening
        return poll

    def _lost_listener(self, error: Exception) -> None:
        """The connection that listens for new messages broke: open a new one at the next wait."""
        logger.warning("ORM storage %r: lost the LISTEN connection (%s); reconnecting", self.name, error)
        self._watch = None
