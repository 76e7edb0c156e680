"""ORM storage: the queue in your Django database (alias ``orm``; the default when ``TASKS_Q`` is not set).

Everything lives in five tables of the ``django_tasks_q`` app (see :mod:`django_tasks_q.orm_models`), so
``python manage.py migrate`` is the only set-up. Runs on PostgreSQL, MariaDB/MySQL and SQLite (3.35 or newer).
Implements the whole contract of :class:`~django_tasks_q.backends.base.BaseStorage`, including reliable
delivery (at least once) and dead letters; results honour their ttl (expired values read as absent, are
deleted when a read finds them, and are swept by :meth:`OrmStorage.purge_expired`, which the storage also runs
by itself every ``purge_interval`` seconds after writes).

Transactions
============

Every method is atomic and safe between threads and processes, and none holds a transaction open longer than
its own few statements (never while a task runs). Called *inside* a caller's ``transaction.atomic()`` block, a
method takes part in that transaction (in a savepoint, so a failure of the storage leaves the caller's
transaction usable): ``enqueue`` inside ``atomic()`` is committed with the caller's data, or not at all.
Outside, each call is its own short transaction.

The claim (``reserve``), per database:

PostgreSQL — one statement::

    UPDATE message SET state = 'in_flight', token = %s, attempts = attempts + 1, deadline = %s, reserved_at = %s
    WHERE id = (SELECT id FROM message WHERE queue = %s AND state = 'ready'
                ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP LOCKED)
      AND state = 'ready'
    RETURNING id, data, attempts, priority

MariaDB / MySQL — one short transaction: ``SELECT ... ORDER BY priority DESC, id LIMIT 1 FOR UPDATE SKIP
LOCKED`` (plain ``FOR UPDATE`` on servers without SKIP LOCKED: MariaDB < 10.6, MySQL < 8), then ``UPDATE ...
WHERE id = %s AND state = 'ready'``.

SQLite — the PostgreSQL statement without the locking clause: a single ``UPDATE ... RETURNING`` statement holds
SQLite's write lock from its start, so it is atomic by itself.

The claim counts ``attempts`` up only below the column's maximum (``CASE WHEN attempts < 2147483647 ...``),
so a row at the maximum cannot make the statement fail with "integer out of range". A claimed row whose
attempts reached the maximum, or whose priority or attempts is not an integer (SQLite stores whatever is
written into a column), is moved to the dead letters (reason ``unreadable_record``, the column and its value
in the detail; logged once, after the commit) and the claim goes on with the next row; the reaper does the
same for such an in-flight row. With these guards a claim cannot fail on another message's row, so
``ack_and_reserve`` keeps the acknowledgement and the claim in one transaction (one round trip less than
committing the acknowledgement first).

The other multi-statement methods (``ack`` with a result, ``bury``, ``requeue_expired``, ``enqueue_due``,
``requeue_dead_letter`` ...) run in ``transaction.atomic()``; they lock the rows they decide on with
``SELECT ... FOR UPDATE`` (``SKIP LOCKED`` for the reaper and the scheduler, so that several consumers share the
work) on PostgreSQL and MariaDB/MySQL. On SQLite the transaction starts with ``BEGIN IMMEDIATE`` (inside a
caller's transaction: with a write that changes nothing), which takes the database's write lock at once (waiting
for it with the busy timeout), so what the following statements read cannot change before they commit.

On SQLite the statements run on the ``sqlite3`` connection under Django's, each prepared once (see
``OrmStorage._run_direct``), and the steps of a delivery commit at ``synchronous=NORMAL`` on a WAL database
unless ``fsync=True`` (see ``OrmStorage._without_sync``). ``ack``, ``renew`` and ``release`` are single
``UPDATE``/``DELETE`` statements whose ``WHERE`` checks the fencing token. ``put_if_empty`` inserts in a savepoint
and reports ``False`` on the unique-key conflict; ``incr`` is one upsert (``INSERT ... ON CONFLICT DO UPDATE``
/ ``ON DUPLICATE KEY UPDATE``) that starts a new window when the old one has expired.

Deadlocks and serialization failures reported by PostgreSQL or MariaDB/MySQL are retried a few times when the
call is not part of a caller's transaction. SQLite serializes writers: within one process the storage lets one
thread at a time use a given SQLite database (SQLite's own locking then only arbitrates between processes);
across processes, each call waits for the write lock up to the busy timeout (``DATABASES[...]['OPTIONS']
['timeout']``, 5 s by default) and, when that runs out, is tried twice more (SQLite's lock is not fair: busy
writers can keep one waiting for long) before ``StorageError`` is raised.

Connections are Django's: one per thread and alias, opened on first use and left open; a process that uses the
storage from its own threads should call ``django.db.connections.close_all()`` as a thread ends. A connection
found broken after an error is closed, so the next call reconnects.

Errors
======

* tables missing: :class:`OrmTablesMissing` (both a ``ConfigurationError`` and a ``StorageError``) saying to run
  ``python manage.py migrate``;
* the database refuses connections: :class:`~django_tasks_q.exceptions.StorageError` naming the
  ``DATABASES`` entry and what to check;
* any other database error: ``StorageError`` with the cause chained. Nothing is half-written: a failed call
  rolls back all it did.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import random
import re
import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, ClassVar, TypeVar

from django.db import Error as DjangoDatabaseError
from django.db import IntegrityError, connections, transaction
from django.utils.connection import ConnectionDoesNotExist

from .base import (
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
    is_live,
    log_unreadable_record,
    made_progress,
    new_token,
    schedule_time,
)
from .errors import ConfigurationError, StorageError
from .watch import ChangeWatch, probe_poller

__all__ = ["OrmStorage", "OrmTablesMissing", "database_write_lock"]

logger = logging.getLogger("django_tasks_q.backends.orm")
sql_logger = logging.getLogger("django.db.backends")
"""Where Django logs every statement when queries are logged; the direct statements are logged there too."""

T = TypeVar("T")

READY = "ready"
IN_FLIGHT = "in_flight"
NAME_MAX_LENGTH = 191
REASON_MAX_LENGTH = 191
MIN_SQLITE_VERSION = (3, 35)
TRANSIENT_RETRIES = 5  # attempts at a call that hit a deadlock (PostgreSQL, MariaDB/MySQL)
SQLITE_BUSY_ATTEMPTS = 3  # attempts at a call that waited out SQLite's busy timeout (each waits that long)
CHUNK = 500  # ids per "IN (...)" list
SQLITE_FAST_POLL = 0.001
"""Seconds between two reads of a SQLite database's ``data_version`` by idle workers while the queue is busy
(see :func:`~django_tasks_q.backends.watch.probe_poller`): a new message waits half of it on average. A read
costs a few microseconds; it goes back to every 50 ms once the queue has been quiet for a second."""

TABLES = {
    "msg": "django_tasks_q_message",
    "sched": "django_tasks_q_schedule",
    "dead": "django_tasks_q_deadletter",
    "kv": "django_tasks_q_keyvalue",
    "counter": "django_tasks_q_counter",
}
COLUMNS = (
    *(
        "id",
        "queue",
        "data",
        "priority",
        "state",
        "token",
        "attempts",
        "deadline",
        "reserved_at",
        "created_at",
    ),
    *(
        "eta",
        "reason",
        "detail",
        "failed_at",
        "key_hash",
        "key",
        "value",
        "is_result",
        "expires_at",
        "updated_at",
    ),
)

_TOKEN_RE = re.compile(r"[0-9a-f]{32}")
_FORMAT_PLACEHOLDER = re.compile(r"(?<!%)%s")
"""Django's ``%s`` placeholder (``%%`` is a literal ``%``), ``?`` for the ``sqlite3`` module."""
_PG_TRANSIENT = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
_MYSQL_TRANSIENT = frozenset({1213})  # ER_LOCK_DEADLOCK
_SQLITE_TRANSIENT = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)

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


_PEEK_COLUMN = (
    ", (SELECT {value} FROM {kv} WHERE {queue} = %s AND {key_hash} = %s "
    "AND ({expires_at} IS NULL OR {expires_at} > %s))"
)
"""A column of the claim's ``RETURNING``: the live value of one ``peek`` key (``NULL`` when there is none)."""


def _peek_params(queue: str, hashes: Sequence[str], now: float) -> list[Any]:
    """The parameters of the claim's :data:`_PEEK_COLUMN` columns."""
    return [value for key_hash in hashes for value in (queue, key_hash, now)]


def _checked_result(result: ResultWrite) -> tuple[str, bytes, float | None]:
    """A result to write with an acknowledgement, checked, with its ttl turned into an expiry time."""
    key, value, ttl = result
    return check_key(key), check_bytes(value, "result value"), expiry_time(ttl, time.time())


def _priority(priority: int | None) -> int:
    return bounded_priority(priority, 32, "the database column (a 32-bit integer)")


_INT_MAX = 2**31 - 1
"""The largest value of the ``attempts`` and ``priority`` columns (32-bit integers)."""


def _unreadable(priority: object, attempts: object, claimed: bool = True) -> str:
    """What is wrong with a row's ``priority`` and ``attempts`` as read ('' when both are usable); the
    attempts of a ``claimed`` row must also stay below the column's maximum, to be counted up again."""
    problems = []
    if type(priority) is not int or not -_INT_MAX - 1 <= priority <= _INT_MAX:
        problems.append(f"priority {priority!r} is not a 32-bit integer")
    if type(attempts) is not int or attempts < 0:
        problems.append(f"attempts {attempts!r} is not a count")
    elif claimed and attempts >= _INT_MAX:
        problems.append(f"attempts {attempts!r} is at the column's maximum and cannot be counted up")
    return "; ".join(problems)


def _as_bytes(data: Any) -> bytes:
    """A message's bytes as read from the database (text, where a column holds text, as UTF-8)."""
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)


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

    def __init__(self, storage: OrmStorage, conn: Any) -> None:
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


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _message_pk(message_id: object) -> int | None:
    if isinstance(message_id, str) and message_id.isascii() and message_id.isdigit() and len(message_id) < 19:
        return int(message_id)
    return None


def _chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _placeholders(count: int) -> str:
    return ", ".join(["%s"] * count)


class OrmStorage(BaseStorage):
    """Storage in the Django database's tables (see the module documentation).

    ``name``: the queue name; every row carries it (at most 191 characters, compared exactly).
    ``using``: the database alias (a key of ``DATABASES``), ``"default"`` unless given. The tables must exist
    in that database: ``python manage.py migrate --database <alias>``.
    ``purge_interval``: seconds between automatic sweeps of expired values and counters, run after a write
    that can leave such rows (``put_data``, ``put_if_empty``, ``incr``, ``ack`` with a result); ``None`` turns
    the sweeps off (call :meth:`purge_expired` yourself, e.g. from a periodic task).
    ``fsync``: on SQLite in WAL mode, ``False`` (the default) commits the steps of a message's delivery (claim,
    acknowledgement, renewal, release, dead-lettering, reclaim) with ``synchronous=NORMAL``: durable when the
    process crashes, possibly lost with the last commits in a power failure, which only delivers the message
    again. ``True`` commits them with the connection's own setting. Enqueues always use the connection's
    setting. Ignored elsewhere.
    """

    blocking = False
    priority = True
    features = frozenset({Feature.RELIABLE, Feature.DEAD_LETTERS, Feature.COUNTERS, Feature.KEY_LISTING,
                          Feature.WAIT_FOR_MESSAGES, Feature.PEEK_ON_RESERVE, Feature.REAP_BY_PROGRESS})

    supported_vendors: ClassVar[tuple[str, ...]] = ("postgresql", "mysql", "sqlite")

    @classmethod
    def check_options(cls, options: Mapping[str, Any], *, where: str) -> list[ConfigurationError]:
        """The base checks, and check ``django_tasks_q.E012`` when the app that owns the tables is not installed
        (asked only once the app registry is ready)."""
        from django.apps import apps

        problems = super().check_options(options, where=where)
        if apps.ready and not apps.is_installed("django_tasks_q"):
            problems.insert(0, ConfigurationError(
                f"{where} uses the ORM storage, whose tables belong to the django_tasks_q app, but "
                "'django_tasks_q' is not in INSTALLED_APPS",
                check_id="django_tasks_q.E012",
                hint='Add "django_tasks_q" to INSTALLED_APPS, then run `python manage.py migrate`.',
            ))
        return problems

    def __init__(
        self,
        name: str = "huey",
        using: str = "default",
        purge_interval: float | None = 300.0,
        fsync: bool = False,
        **storage_kwargs: Any,
    ) -> None:
        super().__init__(name, **storage_kwargs)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"ORM storage: the queue name must be a non-empty string, got {name!r}")
        if len(name) > NAME_MAX_LENGTH:
            raise ConfigurationError(
                f"ORM storage: the queue name {name[:40]!r}... is {len(name)} characters long; "
                f"the queue column holds at most {NAME_MAX_LENGTH}"
            )
        if not isinstance(using, str) or not using:
            raise ConfigurationError(
                f"ORM storage of queue {name!r}: `using` must be a database alias, got {using!r}"
            )
        try:
            conn = connections[using]
        except ConnectionDoesNotExist:
            raise ConfigurationError(
                f"ORM storage of queue {name!r}: there is no database {using!r} in settings.DATABASES "
                f"(configured: {sorted(connections.settings)}); set the storage's `using` option "
                f"(TASKS_Q[{name!r}]['OPTIONS']['using']) to one of them"
            ) from None
        if conn.vendor not in self.supported_vendors:
            raise ConfigurationError(
                f"ORM storage of queue {name!r}: DATABASES[{using!r}] is a {conn.vendor} database; the ORM "
                f"storage runs on {', '.join(self.supported_vendors)}"
            )
        if conn.vendor == "sqlite":
            version = tuple(conn.Database.sqlite_version_info)
            if version < MIN_SQLITE_VERSION:
                raise ConfigurationError(
                    f"ORM storage of queue {name!r}: SQLite {'.'.join(map(str, version))} is too old; the ORM "
                    f"storage needs SQLite {'.'.join(map(str, MIN_SQLITE_VERSION))} or newer (for RETURNING)"
                )
        if conn.settings_dict.get("AUTOCOMMIT") is False:
            raise ConfigurationError(
                f"ORM storage of queue {name!r}: DATABASES[{using!r}]['AUTOCOMMIT'] is False, so nothing the "
                "storage writes outside your own transactions would ever be committed; use a database alias "
                "with AUTOCOMMIT on (Django's default)"
            )
        if purge_interval is not None and purge_interval <= 0:
            raise ConfigurationError(
                f"ORM storage of queue {name!r}: purge_interval must be > 0 seconds or None, got {purge_interval!r}"
            )
        if not isinstance(fsync, bool):
            raise ConfigurationError(f"ORM storage of queue {name!r}: fsync must be True or False, got {fsync!r}")
        self.using = using
        self.purge_interval = purge_interval
        self.fsync = fsync
        self._vendor: str = conn.vendor
        quote = conn.ops.quote_name
        self._names = {alias: quote(table) for alias, table in TABLES.items()}
        self._names.update({column: quote(column) for column in COLUMNS})
        self._sql_cache: dict[str, str] = {}
        self._skip_locked: bool | None = None
        self._next_purge = 0.0 if purge_interval is None else time.monotonic() + purge_interval
        self.channel = "tasks_q_" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:24]
        """PostgreSQL ``NOTIFY`` channel of this queue (every write that makes a message ready notifies it)."""
        self._watch: ChangeWatch | None = None
        self._watch_pid = 0
        self._watch_lock = threading.Lock()
        self._watch_resource: Any = None
        self._qmark_cache: dict[str, str] = {}
        self._peek_hash_cache: dict[Sequence[str], tuple[str, ...]] = {}
        self._local = _TransactionState()
        self._wal_unchecked = conn.vendor == "sqlite"
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

    def _sql(self, template: str) -> str:
        """``template`` with ``{msg}``, ``{queue}`` ... replaced by quoted table and column names."""
        sql = self._sql_cache.get(template)
        if sql is None:
            sql = self._sql_cache[template] = template.format_map(self._names)
        return sql

    def _direct(self, conn: Any) -> bool:
        """Whether statements go straight to the SQLite connection (see :meth:`_run_direct`).

        Not when the project wrapped the connection's statements (``connection.execute_wrapper()``: tracing,
        query counting): those go through Django's cursor, as every statement of the project does.
        """
        return self._vendor == "sqlite" and not conn.execute_wrappers

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

    def _scalar(self, conn: Any, template: str, params: Sequence[Any] = ()) -> Any:
        row = self._fetchone(conn, template, params)
        return None if row is None else row[0]

    @property
    def _returning(self) -> bool:
        """Whether this database has ``UPDATE/DELETE ... RETURNING`` (PostgreSQL, SQLite >= 3.35)."""
        return self._vendor in ("postgresql", "sqlite")

    def _lock_clause(self, conn: Any, skip_locked: bool = False) -> str:
        """`` FOR UPDATE [SKIP LOCKED]`` where the database has row locks; ``""`` on SQLite."""
        if self._vendor == "sqlite":
            return ""
        if not skip_locked:
            return " FOR UPDATE"
        if self._skip_locked is None:
            self._skip_locked = bool(conn.features.has_select_for_update_skip_locked)
        return " FOR UPDATE SKIP LOCKED" if self._skip_locked else " FOR UPDATE"

    def _txn(self, conn: Any) -> AbstractContextManager[None]:
        """One atomic step (a savepoint inside a transaction already open).

        SQLite outside any transaction: ``BEGIN IMMEDIATE`` ... ``COMMIT`` on the connection itself (see
        :class:`_SqliteTransaction`): the write lock is taken at the start, waiting for it with the busy
        timeout, so what the following statements read stays true until commit. Elsewhere
        ``transaction.atomic``; on SQLite its first statement is then a write that changes nothing, for the
        same lock.
        """
        if self._vendor == "sqlite" and (self._local.depth or (not conn.in_atomic_block and self._direct(conn))):
            return _SqliteTransaction(self, conn)
        return self._atomic(conn)

    @contextmanager
    def _atomic(self, conn: Any) -> Iterator[None]:
        with transaction.atomic(using=self.using):
            if self._vendor == "sqlite":
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

    def _process_lock(self, conn: Any) -> AbstractContextManager[Any]:
        """On SQLite, one thread of this process at a time per database (outside a caller's transaction)."""
        if self._vendor != "sqlite" or conn.in_atomic_block:
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
            limit = SQLITE_BUSY_ATTEMPTS if self._vendor == "sqlite" else TRANSIENT_RETRIES
            if not outer and attempt < limit and self._is_transient(error):
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
        cause = error.__cause__
        if self._vendor == "postgresql":
            return getattr(cause, "sqlstate", None) in _PG_TRANSIENT
        if self._vendor == "mysql":
            code = (getattr(cause, "args", None) or error.args or (None,))[0]
            return code in _MYSQL_TRANSIENT
        # SQLite: SQLITE_BUSY (the busy timeout ran out: writers starve each other under heavy contention) or
        # SQLITE_LOCKED; either way the statement or transaction was rolled back, so trying again is safe.
        code = getattr(cause, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _SQLITE_TRANSIENT
        return "locked" in str(error)

    def _translate(self, conn: Any, error: DjangoDatabaseError, what: str, outer: bool) -> StorageError:
        if not outer:
            self._discard_if_broken(conn)
        missing = self._missing_tables(conn)
        if missing and not _app_installed():
            return OrmTablesMissing(
                f"ORM storage of queue {self.name!r}: its tables do not exist because 'django_tasks_q' is not "
                "in INSTALLED_APPS, so `migrate` never creates them. Add \"django_tasks_q\" to INSTALLED_APPS, "
                "then run `python manage.py migrate`."
            )
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
        return [table for table in TABLES.values() if table not in existing]

    def _maybe_purge(self) -> None:
        """Sweep expired values now and then (``purge_interval``), never inside a caller's transaction."""
        if self.purge_interval is None or time.monotonic() < self._next_purge:
            return
        if connections[self.using].in_atomic_block:
            return
        self._next_purge = time.monotonic() + self.purge_interval
        try:
            self.purge_expired()
        except StorageError:
            logger.warning("ORM storage %r: sweeping expired values failed", self.name, exc_info=True)

    # ================================================================== the queue

    def _insert_message(
        self,
        conn: Any,
        data: bytes,
        priority: int,
        now: float,
        created_at: float | None = None,
    ) -> None:
        params = [self.name, data, priority, READY, "", 0, now if created_at is None else created_at]
        insert = (
            "INSERT INTO {msg} ({queue}, {data}, {priority}, {state}, {token}, {attempts}, {created_at}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)"
        )
        if self._vendor == "postgresql":  # the row and its NOTIFY (sent at commit) in one statement
            self._execute(
                conn,
                f"WITH inserted AS ({insert} RETURNING {{id}}) SELECT pg_notify(%s, '') FROM inserted",
                [*params, self.channel],
            )
        else:
            self._execute(conn, insert, params)

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """Insert a ready message; inside ``transaction.atomic()`` it commits (or not) with the caller."""
        data = check_bytes(data, "data")
        prio = _priority(priority)
        self._run("enqueue", self._insert_message, data, prio, time.time())
        self._wake_waiters()

    def _notify(self, conn: Any) -> None:
        """On PostgreSQL, ``NOTIFY`` this queue's listeners (sent when the transaction commits)."""
        if self._vendor == "postgresql":
            self._execute(conn, "SELECT pg_notify(%s, '')", [self.channel])

    # ================================================================== waking idle consumers

    def wait_for_messages(self, timeout: float, wake: threading.Event | None = None) -> bool:
        """Wait for a new message without polling the tables.

        PostgreSQL: ``LISTEN`` on the queue's channel over a connection of its own (every enqueue, release,
        reclaim and schedule move sends ``NOTIFY``, delivered at commit). SQLite: ``PRAGMA data_version`` of the
        database file on a connection of its own, read every 50 ms (every millisecond for a second once two
        changes came less than a second apart). MariaDB/MySQL: a plain wait. Everywhere, a write of this process wakes the waiters at once.
        """
        return self._change_watch().wait(timeout, wake)

    def _change_watch(self) -> ChangeWatch:
        watch = self._watch
        if watch is not None and self._watch_pid == os.getpid():
            return watch
        with self._watch_lock:
            if self._watch is None or self._watch_pid != os.getpid():
                try:
                    poll = self._make_poll()
                except Exception as exc:  # no native wait: wait plainly (local writes still wake)
                    logger.warning("ORM storage %r: cannot watch the database for new messages: %s", self.name, exc)
                    poll = None
                self._watch = ChangeWatch(poll or _plain_wait)
                self._watch_pid = os.getpid()
            return self._watch

    def _make_poll(self) -> Callable[[float], bool] | None:
        conn = connections[self.using]
        if self._vendor == "sqlite":
            if conn.is_in_memory_db():
                return None
            name = str(conn.settings_dict["NAME"])
            watch_conn = sqlite3.connect(name, check_same_thread=False, uri=name.startswith("file:"))
            self._watch_resource = watch_conn
            return probe_poller(lambda: watch_conn.execute("PRAGMA data_version").fetchone()[0], fast=SQLITE_FAST_POLL)
        if self._vendor == "postgresql":
            listener = conn.Database.connect(**conn.get_connection_params())
            pgconn = getattr(listener, "pgconn", None)
            if pgconn is None:
                listener.close()
                return None  # psycopg2: no native wait
            listener.autocommit = True
            listener.execute(f'LISTEN "{self.channel}"')
            self._watch_resource = listener

            def poll(timeout: float) -> bool:
                # Wait on the socket itself (psycopg's notifies() generator costs far more per call).
                try:
                    if not select.select([pgconn.socket], [], [], timeout)[0]:
                        return False
                    pgconn.consume_input()
                    notified = False
                    while pgconn.notifies() is not None:
                        notified = True
                    return notified
                except Exception as exc:  # the listening connection broke: open a new one next time
                    logger.warning("ORM storage %r: lost the LISTEN connection (%s); reconnecting", self.name, exc)
                    self._watch = None
                    try:
                        listener.close()
                    except Exception:
                        pass
                    time.sleep(min(timeout, 1.0))
                    return True

            return poll
        return None

    def _wake_waiters(self) -> None:
        watch = self._watch
        if watch is not None and self._watch_pid == os.getpid():
            watch.notify()

    def _insert_messages(self, conn: Any, rows: list[list[Any]]) -> None:
        with self._txn(conn):
            self._executemany(
                conn,
                "INSERT INTO {msg} ({queue}, {data}, {priority}, {state}, {token}, {attempts}, {created_at}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
            self._notify(conn)

    def enqueue_many(self, items: list[tuple[bytes, int | None]]) -> None:
        """Insert the messages in order with one ``executemany`` in one transaction (all or none)."""
        now = time.time()
        rows = [[self.name, check_bytes(data, "data"), _priority(priority), READY, "", 0, now] for data, priority in items]
        if rows:
            self._run("enqueue_many", self._insert_messages, rows)
            self._wake_waiters()

    def _claim_sql_returning(self, conn: Any, action: str, returning: str) -> str:
        lock = self._lock_clause(conn, skip_locked=True)
        return (
            f"{action} WHERE {{id}} = (SELECT {{id}} FROM {{msg}} WHERE {{queue}} = %s AND {{state}} = '{READY}' "
            f"ORDER BY {{priority}} DESC, {{id}} LIMIT 1{lock}) AND {{state}} = '{READY}' RETURNING {returning}"
        )

    def _next_ready_locked(self, conn: Any) -> tuple[Any, ...] | None:
        """MariaDB/MySQL: lock the next ready row (inside a transaction) and return (id, data, attempts, priority)."""
        return self._fetchone(
            conn,
            "SELECT {id}, {data}, {attempts}, {priority} FROM {msg} WHERE {queue} = %s AND {state} = 'ready' "
            "ORDER BY {priority} DESC, {id} LIMIT 1" + self._lock_clause(conn, skip_locked=True),
            [self.name],
        )

    def _dequeue(self, conn: Any) -> bytes | None:
        if self._returning:
            row = self._fetchone(
                conn, self._claim_sql_returning(conn, "DELETE FROM {msg}", "{data}"), [self.name]
            )
            return None if row is None else bytes(row[0])
        for _ in range(10):
            with self._txn(conn):
                row = self._next_ready_locked(conn)
                if row is None:
                    return None
                if (
                    self._execute(conn, "DELETE FROM {msg} WHERE {id} = %s AND {state} = 'ready'", [row[0]])
                    == 1
                ):
                    return bytes(row[1])
        return None

    def dequeue(self) -> bytes | None:
        """Remove and return the next ready message (highest priority, then oldest), or ``None`` at once."""
        return self._run("dequeue", self._dequeue)

    def queue_size(self) -> int:
        """Count the ready messages."""
        return self._run(
            "queue_size",
            lambda conn: int(
                self._scalar(
                    conn, "SELECT COUNT(*) FROM {msg} WHERE {queue} = %s AND {state} = 'ready'", [self.name]
                )
            ),
        )

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """The ready messages in claim order (up to ``limit``), without removing them."""
        if limit is not None and limit <= 0:
            return []

        def read(conn: Any) -> list[bytes]:
            sql = "SELECT {data} FROM {msg} WHERE {queue} = %s AND {state} = 'ready' ORDER BY {priority} DESC, {id}"
            params: list[Any] = [self.name]
            if limit is not None:
                sql += " LIMIT %s"
                params.append(int(limit))
            return [bytes(row[0]) for row in self._fetchall(conn, sql, params)]

        return self._run("enqueued_items", read)

    def flush_queue(self) -> None:
        """Delete the ready messages (reservations stay)."""
        self._run(
            "flush_queue",
            lambda conn: self._execute(
                conn, "DELETE FROM {msg} WHERE {queue} = %s AND {state} = 'ready'", [self.name]
            ),
        )

    # ================================================================== the schedule

    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        """Insert a scheduled message due at ``timestamp`` (epoch seconds), remembering ``priority``."""
        data = check_bytes(data, "data")
        prio = _priority(priority)
        eta = schedule_time(timestamp)
        self._run(
            "add_to_schedule",
            lambda conn: self._execute(
                conn,
                "INSERT INTO {sched} ({queue}, {data}, {priority}, {eta}, {created_at}) VALUES (%s, %s, %s, %s, %s)",
                [self.name, data, prio, eta, time.time()],
            ),
        )

    def _take_due(self, conn: Any, timestamp: float) -> list[tuple[Any, ...]]:
        """Delete and return the due items as (id, data, priority, eta), earliest first. Call inside _txn."""
        if self._returning:
            if self._vendor == "postgresql":
                sql = (
                    "DELETE FROM {sched} WHERE {id} IN (SELECT {id} FROM {sched} WHERE {queue} = %s AND {eta} <= %s"
                    + self._lock_clause(conn, skip_locked=True)
                    + ") RETURNING {id}, {data}, {priority}, {eta}"
                )
            else:
                sql = "DELETE FROM {sched} WHERE {queue} = %s AND {eta} <= %s RETURNING {id}, {data}, {priority}, {eta}"
            rows = self._fetchall(conn, sql, [self.name, timestamp])
        else:
            rows = self._fetchall(
                conn,
                "SELECT {id}, {data}, {priority}, {eta} FROM {sched} WHERE {queue} = %s AND {eta} <= %s "
                "ORDER BY {eta}, {id}" + self._lock_clause(conn, skip_locked=True),
                [self.name, timestamp],
            )
            for chunk in _chunks([row[0] for row in rows]):
                self._execute(
                    conn, "DELETE FROM {sched} WHERE {id} IN (" + _placeholders(len(chunk)) + ")", chunk
                )
        rows.sort(key=lambda row: (row[3], row[0]))
        return rows

    def read_schedule(self, timestamp: float) -> list[bytes]:
        """Remove and return the items due at ``timestamp``, earliest first (each to exactly one caller)."""

        def take(conn: Any) -> list[bytes]:
            with self._txn(conn):
                return [bytes(row[1]) for row in self._take_due(conn, schedule_time(timestamp))]

        return self._run("read_schedule", take)

    def enqueue_due(self, timestamp: float) -> int:
        """Move the items due at ``timestamp`` into the queue with their priority, in one transaction."""

        def move(conn: Any) -> int:
            now = time.time()
            with self._txn(conn):
                due = self._take_due(conn, schedule_time(timestamp))
                if due:
                    self._executemany(
                        conn,
                        "INSERT INTO {msg} ({queue}, {data}, {priority}, {state}, {token}, {attempts}, "
                        "{created_at}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        [[self.name, row[1], row[2], READY, "", 0, now] for row in due],
                    )
                    self._notify(conn)
                return len(due)

        moved = self._run("enqueue_due", move)
        if moved:
            self._wake_waiters()
        return moved

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        """The scheduled items, earliest first (up to ``limit``), without removing them."""
        if limit is not None and limit <= 0:
            return []

        def read(conn: Any) -> list[bytes]:
            sql = "SELECT {data} FROM {sched} WHERE {queue} = %s ORDER BY {eta}, {id}"
            params: list[Any] = [self.name]
            if limit is not None:
                sql += " LIMIT %s"
                params.append(int(limit))
            return [bytes(row[0]) for row in self._fetchall(conn, sql, params)]

        return self._run("scheduled_items", read)

    def schedule_size(self) -> int:
        """Count the scheduled items, due or not."""
        return self._run(
            "schedule_size",
            lambda conn: int(
                self._scalar(conn, "SELECT COUNT(*) FROM {sched} WHERE {queue} = %s", [self.name])
            ),
        )

    def flush_schedule(self) -> None:
        """Delete every scheduled item."""
        self._run(
            "flush_schedule",
            lambda conn: self._execute(conn, "DELETE FROM {sched} WHERE {queue} = %s", [self.name]),
        )

    # ================================================================== key/value data

    def _upsert_value(
        self, conn: Any, key: str, value: bytes, is_result: bool, expires_at: float | None, now: float
    ) -> None:
        params = [self.name, _key_hash(key), key, value, is_result, expires_at, now]
        insert = (
            "INSERT INTO {kv} ({queue}, {key_hash}, {key}, {value}, {is_result}, {expires_at}, {updated_at}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)"
        )
        if self._vendor == "mysql":
            self._execute(
                conn,
                insert
                + " ON DUPLICATE KEY UPDATE {value} = %s, {is_result} = %s, {expires_at} = %s, {updated_at} = %s",
                [*params, value, is_result, expires_at, now],
            )
        else:
            self._execute(
                conn,
                insert + " ON CONFLICT ({queue}, {key_hash}) DO UPDATE SET {value} = EXCLUDED.{value}, "
                "{is_result} = EXCLUDED.{is_result}, {expires_at} = EXCLUDED.{expires_at}, "
                "{updated_at} = EXCLUDED.{updated_at}",
                params,
            )

    def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` (one upsert), replacing value, flag and expiry."""
        key = check_key(key)
        value = check_bytes(value, "value")
        now = time.time()
        expires_at = expiry_time(ttl, now)
        self._run("put_data", self._upsert_value, key, value, bool(is_result), expires_at, now)
        self._maybe_purge()

    def _read_value(self, conn: Any, key: str, column: str) -> tuple[bool, Any]:
        """(found, column value) for a live value; deletes the row when it has expired."""
        key_hash = _key_hash(key)
        row = self._fetchone(
            conn,
            "SELECT " + column + ", {expires_at} FROM {kv} WHERE {queue} = %s AND {key_hash} = %s",
            [self.name, key_hash],
        )
        if row is None:
            return False, None
        now = time.time()
        if not is_live(row[1], now):
            self._delete_expired_value(conn, key_hash, now)
            return False, None
        return True, row[0]

    def _delete_expired_value(self, conn: Any, key_hash: str, now: float) -> int:
        return self._execute(
            conn,
            "DELETE FROM {kv} WHERE {queue} = %s AND {key_hash} = %s AND {expires_at} IS NOT NULL AND {expires_at} <= %s",
            [self.name, key_hash, now],
        )

    def peek_data(self, key: str) -> bytes | EmptyDataType:
        """The value under ``key``, or ``EmptyData`` (an expired value counts as none, and is deleted)."""
        key = check_key(key)
        found, value = self._run("peek_data", self._read_value, key, "{value}")
        return bytes(value) if found else EmptyData

    def _read_values(self, conn: Any, hashes: list[str]) -> dict[str, bytes]:
        rows = self._fetchall(
            conn,
            "SELECT {key_hash}, {value}, {expires_at} FROM {kv} WHERE {queue} = %s AND {key_hash} IN ("
            + _placeholders(len(hashes))
            + ")",
            [self.name, *hashes],
        )
        now = time.time()
        return {key_hash: bytes(value) for key_hash, value, expires_at in rows if is_live(expires_at, now)}

    def peek_many(self, keys: list[str]) -> list[bytes | EmptyDataType]:
        """The live values of ``keys`` in one ``SELECT`` (expired ones count as none); ``EmptyData`` elsewhere."""
        hashes = [_key_hash(check_key(key)) for key in keys]
        if not hashes or len(set(hashes)) > CHUNK:
            return super().peek_many(keys)
        return self._run("peek_many", self._values_in_order, hashes)

    def _values_in_order(self, conn: Any, hashes: list[str]) -> list[bytes | EmptyDataType]:
        """The live values of the keys with these hashes, in their order (``EmptyData`` for a missing one)."""
        found = self._read_values(conn, list(dict.fromkeys(hashes)))
        return [found.get(key_hash, EmptyData) for key_hash in hashes]

    def has_data_for_key(self, key: str) -> bool:
        """Whether ``key`` holds a live value."""
        key = check_key(key)
        return self._run("has_data_for_key", self._read_value, key, "{id}")[0]

    def _pop(self, conn: Any, key: str) -> bytes | EmptyDataType:
        key_hash = _key_hash(key)
        if self._returning:
            row = self._fetchone(
                conn,
                "DELETE FROM {kv} WHERE {queue} = %s AND {key_hash} = %s RETURNING {value}, {expires_at}",
                [self.name, key_hash],
            )
        else:
            with self._txn(conn):
                found = self._fetchone(
                    conn,
                    "SELECT {id}, {value}, {expires_at} FROM {kv} WHERE {queue} = %s AND {key_hash} = %s"
                    + self._lock_clause(conn),
                    [self.name, key_hash],
                )
                row = None
                if found is not None:
                    self._execute(conn, "DELETE FROM {kv} WHERE {id} = %s", [found[0]])
                    row = found[1:]
        if row is None or not is_live(row[1], time.time()):
            return EmptyData
        return bytes(row[0])

    def pop_data(self, key: str) -> bytes | EmptyDataType:
        """Delete and return the value under ``key`` (exactly one of concurrent callers gets it)."""
        key = check_key(key)
        return self._run("pop_data", self._pop, key)

    def _put_if_empty(self, conn: Any, key: str, value: bytes, expires_at: float | None, now: float) -> bool:
        key_hash = _key_hash(key)
        with self._txn(conn):
            self._delete_expired_value(conn, key_hash, now)
            try:
                with self._savepoint(conn):  # the conflict leaves the transaction usable
                    self._execute(
                        conn,
                        "INSERT INTO {kv} ({queue}, {key_hash}, {key}, {value}, {is_result}, {expires_at}, "
                        "{updated_at}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        [self.name, key_hash, key, value, False, expires_at, now],
                    )
            except IntegrityError:
                return False
        return True

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` holds no live value; ``True`` if it wrote (the lock primitive)."""
        key = check_key(key)
        value = check_bytes(value, "value")
        now = time.time()
        expires_at = expiry_time(ttl, now)
        written = self._run("put_if_empty", self._put_if_empty, key, value, expires_at, now)
        self._maybe_purge()
        return written

    def _delete(self, conn: Any, key: str) -> bool:
        key_hash = _key_hash(key)
        now = time.time()
        deleted = self._execute(
            conn,
            "DELETE FROM {kv} WHERE {queue} = %s AND {key_hash} = %s AND ({expires_at} IS NULL OR {expires_at} > %s)",
            [self.name, key_hash, now],
        )
        if not deleted:
            self._delete_expired_value(conn, key_hash, now)
        return deleted > 0

    def delete_data(self, key: str) -> bool:
        """Delete the value under ``key``; ``True`` if there was a live one."""
        key = check_key(key)
        return self._run("delete_data", self._delete, key)

    def _flush_all(self, conn: Any) -> None:
        with self._txn(conn):
            for table in ("msg", "sched", "dead", "kv", "counter"):
                self._execute(conn, "DELETE FROM {" + table + "} WHERE {queue} = %s", [self.name])

    def flush_all(self) -> None:
        """Delete every row of this queue name from the five tables, in one transaction."""
        self._run("flush_all", self._flush_all)

    def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """Sorted keys of live values starting with ``prefix``.

        ``LIKE`` narrows the rows in the database (``!`` escapes its wildcards, the same on every backend);
        the exact, case-sensitive prefix test is then made here, as some collations compare without case.
        """
        pattern = prefix.replace("!", "!!").replace("%", "!%").replace("_", "!_") + "%"

        def read(conn: Any) -> list[str]:
            rows = self._fetchall(
                conn,
                "SELECT {key} FROM {kv} WHERE {queue} = %s AND {key} LIKE %s ESCAPE '!' "
                "AND ({expires_at} IS NULL OR {expires_at} > %s)",
                [self.name, pattern, time.time()],
            )
            return sorted(key for (key,) in rows if key.startswith(prefix))

        keys = self._run("data_keys", read)
        return keys if limit is None else keys[:limit]

    # ================================================================== results and counters

    def _values(self, what: str, results_only: bool) -> dict[str, bytes]:
        only, params = ("AND {is_result} = %s ", [True]) if results_only else ("", [])

        def read(conn: Any) -> dict[str, bytes]:
            rows = self._fetchall(
                conn,
                "SELECT {key}, {value} FROM {kv} WHERE {queue} = %s " + only
                + "AND ({expires_at} IS NULL OR {expires_at} > %s)",
                [self.name, *params, time.time()],
            )
            return {key: bytes(value) for key, value in rows}

        return self._run(what, read)

    def _count_values(self, what: str, results_only: bool) -> int:
        only, params = ("AND {is_result} = %s ", [True]) if results_only else ("", [])
        return self._run(
            what,
            lambda conn: int(
                self._scalar(
                    conn,
                    "SELECT COUNT(*) FROM {kv} WHERE {queue} = %s " + only
                    + "AND ({expires_at} IS NULL OR {expires_at} > %s)",
                    [self.name, *params, time.time()],
                )
            ),
        )

    def _flush_values(self, what: str, results_only: bool) -> None:
        only, params = (" AND {is_result} = %s", [True]) if results_only else ("", [])
        self._run(
            what,
            lambda conn: self._execute(conn, "DELETE FROM {kv} WHERE {queue} = %s" + only, [self.name, *params]),
        )

    def result_items(self) -> dict[str, bytes]:
        """Every live value, results or not, as ``{key: value}``."""
        return self._values("result_items", results_only=False)

    def result_store_size(self) -> int:
        """Count the live values, results or not."""
        return self._count_values("result_store_size", results_only=False)

    def flush_results(self) -> None:
        """Delete every value, results or not (counters stay), in one statement."""
        self._flush_values("flush_results", results_only=False)

    def task_results(self) -> dict[str, bytes]:
        """Every live task result as ``{key: value}``."""
        return self._values("task_results", results_only=True)

    def task_result_count(self) -> int:
        """Count the live task results."""
        return self._count_values("task_result_count", results_only=True)

    def flush_task_results(self) -> None:
        """Delete every task result (locks and other values stay), in one statement."""
        self._flush_values("flush_task_results", results_only=True)

    def _incr(self, conn: Any, key: str, amount: int, ttl: float | None) -> int:
        now = time.time()
        expires_at = expiry_time(ttl, now)
        key_hash = _key_hash(key)
        insert = "INSERT INTO {counter} ({queue}, {key_hash}, {key}, {value}, {expires_at}) VALUES (%s, %s, %s, %s, %s)"
        params = [self.name, key_hash, key, amount, expires_at]
        if self._vendor == "mysql":
            # ON DUPLICATE KEY UPDATE assigns left to right: `value` is computed while `expires_at` is still old
            expired = "{expires_at} IS NOT NULL AND {expires_at} <= %s"
            with self._txn(conn):
                self._execute(
                    conn,
                    insert + f" ON DUPLICATE KEY UPDATE {{value}} = IF({expired}, %s, {{value}} + %s), "
                    f"{{expires_at}} = IF({expired}, %s, {{expires_at}})",
                    [*params, now, amount, amount, now, expires_at],
                )
                return int(
                    self._scalar(
                        conn,
                        "SELECT {value} FROM {counter} WHERE {queue} = %s AND {key_hash} = %s",
                        [self.name, key_hash],
                    )
                )
        expired = "{counter}.{expires_at} IS NOT NULL AND {counter}.{expires_at} <= %s"
        row = self._fetchone(
            conn,
            insert + " ON CONFLICT ({queue}, {key_hash}) DO UPDATE SET "
            f"{{value}} = CASE WHEN {expired} THEN EXCLUDED.{{value}} ELSE {{counter}}.{{value}} + EXCLUDED.{{value}} END, "
            f"{{expires_at}} = CASE WHEN {expired} THEN EXCLUDED.{{expires_at}} ELSE {{counter}}.{{expires_at}} END "
            "RETURNING {value}",
            [*params, now, now],
        )
        assert row is not None
        return int(row[0])

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` to counter ``key`` in one upsert and return the new value (expired → a new window)."""
        key = check_key(key)
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise TypeError(f"amount must be an int, not {type(amount).__name__}")
        value = self._run("incr", self._incr, key, amount, ttl)
        self._maybe_purge()
        return value

    def delete_counter(self, key: str) -> None:
        """Delete the counter ``key`` (one ``DELETE`` by its hash)."""
        key_hash = _key_hash(check_key(key))
        self._run(
            "delete_counter",
            lambda conn: self._execute(
                conn, "DELETE FROM {counter} WHERE {queue} = %s AND {key_hash} = %s", [self.name, key_hash]
            ),
        )

    def flush_counters(self) -> None:
        """Delete every counter of this queue (one ``DELETE``)."""
        self._run(
            "flush_counters",
            lambda conn: self._execute(conn, "DELETE FROM {counter} WHERE {queue} = %s", [self.name]),
        )

    def purge_expired(self, now: float | None = None) -> int:
        """Delete this queue's expired values and counters; return how many rows went.

        Expired rows are invisible anyway; this only reclaims space. The storage runs it by itself every
        ``purge_interval`` seconds; call it from a periodic task when that is off.
        """
        moment = time.time() if now is None else float(now)

        def purge(conn: Any) -> int:
            deleted = 0
            for table in ("kv", "counter"):
                deleted += self._execute(
                    conn,
                    "DELETE FROM {"
                    + table
                    + "} WHERE {queue} = %s AND {expires_at} IS NOT NULL AND {expires_at} <= %s",
                    [self.name, moment],
                )
            return deleted

        return self._run("purge_expired", purge)

    # ================================================================== reliable delivery

    def _reserve(self, conn: Any, lease: float, peek: Sequence[str] = ()) -> Reservation | None:
        token = new_token()
        now = time.time()
        deadline = now + lease
        contended = 0
        while True:
            if self._returning:
                hashes = self._peek_hashes(peek)
                row = self._fetchone(
                    conn,
                    self._claim_sql_returning(
                        conn,
                        f"UPDATE {{msg}} SET {{state}} = '{IN_FLIGHT}', {{token}} = %s, "
                        "{attempts} = CASE WHEN {attempts} < %s THEN {attempts} + 1 ELSE {attempts} END, "
                        "{deadline} = %s, {reserved_at} = %s",
                        "{id}, {data}, {attempts}, {priority}" + _PEEK_COLUMN * len(hashes),
                    ),
                    [token, _INT_MAX, deadline, now, self.name, *_peek_params(self.name, hashes, now)],
                )
                if row is None:
                    return None
                message_id, data, attempts, priority, *values = row
                problem = _unreadable(priority, attempts)
                if problem:
                    with self._txn(conn):
                        self._bury_unreadable(conn, message_id, data, attempts, priority, problem)
                    continue
            else:
                with self._txn(conn):
                    found = self._next_ready_locked(conn)
                    if found is None:
                        return None
                    message_id, data, attempts, priority = found
                    problem = _unreadable(priority, attempts + 1 if type(attempts) is int else attempts)
                    if problem:
                        self._bury_unreadable(conn, message_id, data, attempts, priority, problem)
                        continue
                    attempts += 1
                    claimed = self._execute(
                        conn,
                        f"UPDATE {{msg}} SET {{state}} = '{IN_FLIGHT}', {{token}} = %s, {{attempts}} = %s, "
                        "{deadline} = %s, {reserved_at} = %s WHERE {id} = %s AND {state} = 'ready'",
                        [token, attempts, deadline, now, message_id],
                    )
                if claimed != 1:
                    contended += 1
                    if contended >= 10:  # pragma: no cover - extreme contention without SKIP LOCKED
                        return None
                    continue
            if not peek:
                peeked = None
            elif self._returning:  # read by the claim itself
                peeked = tuple(EmptyData if value is None else bytes(value) for value in values)
            else:
                peeked = self._peek_after_claim(conn, peek)
            return Reservation(
                message_id=str(message_id),
                data=_as_bytes(data),
                token=token,
                attempt=attempts,
                deadline=deadline,
                reserved_at=now,
                priority=priority,
                peeked=peeked,
            )

    def _bury_unreadable(
        self, conn: Any, pk: Any, data: Any, attempts: Any, priority: Any, problem: str
    ) -> None:
        """Inside a transaction: move a row that cannot be read to the dead letters, keeping what can be read
        of it, and log it once that transaction commits."""
        self._execute(conn, "DELETE FROM {msg} WHERE {id} = %s", [pk])
        counted = attempts if type(attempts) is int and 0 <= attempts <= _INT_MAX else 0
        kept_priority = priority if type(priority) is int and -_INT_MAX - 1 <= priority <= _INT_MAX else None
        self._insert_dead(conn, _as_bytes(data), UNREADABLE_RECORD, problem, counted, kept_priority, None)
        where = f"message row {pk} of DATABASES[{self.using!r}]"
        self._after_commit(conn, lambda: log_unreadable_record(self.name, where, problem))

    def _peek_hashes(self, keys: Sequence[str]) -> tuple[str, ...]:
        """The hashes of the ``peek`` keys (the same few keys with every claim: computed once)."""
        if not keys:
            return ()
        keys = tuple(keys)
        hashes = self._peek_hash_cache.get(keys)
        if hashes is None:
            hashes = tuple(_key_hash(check_key(key)) for key in keys)
            if len(self._peek_hash_cache) < 16:
                self._peek_hash_cache[keys] = hashes
        return hashes

    def _peek_after_claim(self, conn: Any, keys: Sequence[str]) -> tuple[bytes | EmptyDataType, ...]:
        """The live values of ``keys``, read right after the claim on the same connection (in its transaction
        when there is one): a value written before the claim is always seen, which is what the hub's
        revocation marker needs (``peeks_on_reserve``)."""
        return tuple(self._values_in_order(conn, [_key_hash(check_key(key)) for key in keys]))

    def reserve(self, lease: float, peek: Sequence[str] = ()) -> Reservation | None:
        """Claim the next ready message for ``lease`` seconds (see the claim statements above), or ``None``;
        the values of the ``peek`` keys come with it (see ``peeks_on_reserve``)."""
        if lease <= 0:
            raise ValueError(f"lease must be > 0 seconds, got {lease!r}")
        return self._run("reserve", self._reserve, float(lease), tuple(peek))

    def _owned_params(self, reservation: Reservation) -> list[Any] | None:
        """``[id, queue, token]`` for the WHERE clause that checks ownership, or ``None`` for a forged one."""
        pk = _message_pk(reservation.message_id)
        token = reservation.token
        if pk is None or not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            return None
        return [pk, self.name, token]

    _OWNED = "{id} = %s AND {queue} = %s AND {state} = 'in_flight' AND {token} = %s"

    def _ack(self, conn: Any, owned: list[Any], result: tuple[str, bytes, float | None] | None) -> bool:
        with self._txn(conn):
            if self._execute(conn, "DELETE FROM {msg} WHERE " + self._OWNED, owned) != 1:
                return False
            if result is not None:
                key, value, expires_at = result
                self._upsert_value(conn, key, value, True, expires_at, time.time())
        return True

    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        """Delete the reservation if the token matches, writing ``result`` in the same transaction."""
        write = None if result is None else _checked_result(result)
        owned = self._owned_params(reservation)
        if owned is None:
            return False
        acked = self._run("ack", self._ack, owned, write)
        if acked and write is not None:
            self._maybe_purge()
        return acked

    def _ack_and_reserve(
        self,
        conn: Any,
        owned: list[Any],
        result: tuple[str, bytes, float | None] | None,
        lease: float,
        peek: Sequence[str],
    ) -> tuple[bool, Reservation | None]:
        with self._txn(conn):
            acked = self._execute(conn, "DELETE FROM {msg} WHERE " + self._OWNED, owned) == 1
            if acked and result is not None:
                key, value, expires_at = result
                self._upsert_value(conn, key, value, True, expires_at, time.time())
            return acked, self._reserve(conn, lease, peek)

    def ack_and_reserve(
        self, reservation: Reservation, result: ResultWrite | None, lease: float, peek: Sequence[str] = ()
    ) -> tuple[bool, Reservation | None]:
        """Delete the acknowledged reservation (writing its result) and claim the next message (with the
        values of the ``peek`` keys), in one transaction."""
        if lease <= 0:
            raise ValueError(f"lease must be > 0 seconds, got {lease!r}")
        write = None if result is None else _checked_result(result)
        owned = self._owned_params(reservation)
        if owned is None:
            return False, self.reserve(lease, peek)
        acked, following = self._run(
            "ack_and_reserve", self._ack_and_reserve, owned, write, float(lease), tuple(peek)
        )
        if acked and write is not None:
            self._maybe_purge()
        return acked, following

    def renew(self, reservation: Reservation, lease: float) -> bool:
        """Move the lease deadline to ``now + lease`` if the token matches (one UPDATE)."""
        if lease <= 0:
            raise ValueError(f"lease must be > 0 seconds, got {lease!r}")
        owned = self._owned_params(reservation)
        if owned is None:
            return False
        deadline = time.time() + float(lease)
        return (
            self._run(
                "renew",
                lambda conn: self._execute(
                    conn, "UPDATE {msg} SET {deadline} = %s WHERE " + self._OWNED, [deadline, *owned]
                ),
            )
            == 1
        )

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Put the message back in its place (same id) if the token matches; uncount the claim unless asked."""
        owned = self._owned_params(reservation)
        if owned is None:
            return False
        uncount = 0 if count_attempt else 1
        released = (
            self._run(
                "release",
                lambda conn: self._execute(
                    conn,
                    f"UPDATE {{msg}} SET {{state}} = '{READY}', {{token}} = '', {{deadline}} = NULL, "
                    "{reserved_at} = NULL, {attempts} = {attempts} - %s WHERE " + self._OWNED,
                    [uncount, *owned],
                ),
            )
            == 1
        )
        if released:
            self._notify_now()
        return released

    def _notify_now(self) -> None:
        """Wake listeners in other processes (PostgreSQL) and waiters in this one."""
        if self._vendor == "postgresql":
            self._run("notify", self._notify)
        self._wake_waiters()

    def _insert_dead(
        self,
        conn: Any,
        data: bytes,
        reason: str,
        detail: str,
        attempts: int,
        priority: int | None,
        created_at: float | None,
    ) -> str:
        params = [
            self.name,
            data,
            priority,
            str(reason)[:REASON_MAX_LENGTH],
            str(detail),
            int(attempts),
            time.time(),
            created_at,
        ]
        insert = (
            "INSERT INTO {dead} ({queue}, {data}, {priority}, {reason}, {detail}, {attempts}, {failed_at}, "
            "{created_at}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
        )
        if self._returning:
            row = self._fetchone(conn, insert + " RETURNING {id}", params)
            assert row is not None
            return str(row[0])
        with conn.cursor() as cursor:
            cursor.execute(self._sql(insert), params)
            return str(cursor.lastrowid)

    def _bury(self, conn: Any, owned: list[Any], reason: str, detail: str) -> bool:
        with self._txn(conn):
            row = self._fetchone(
                conn,
                "SELECT {data}, {priority}, {attempts}, {created_at} FROM {msg} WHERE "
                + self._OWNED
                + self._lock_clause(conn),
                owned,
            )
            if row is None:
                return False
            self._execute(conn, "DELETE FROM {msg} WHERE {id} = %s", [owned[0]])
            data, priority, attempts, created_at = row
            self._insert_dead(conn, bytes(data), reason, detail, attempts, priority, created_at)
        return True

    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        """Move the reserved message to the dead letters if the token matches, in one transaction."""
        owned = self._owned_params(reservation)
        if owned is None:
            return False
        return self._run("bury", self._bury, owned, reason, detail)

    def _requeue_expired(
        self, conn: Any, now: float, max_attempts: int | None, max_reclaims: int | None, progress_span: float | None
    ) -> list[Reclaimed]:
        with self._txn(conn):
            rows = self._fetchall(
                conn,
                "SELECT {id}, {data}, {token}, {attempts}, {deadline}, {reserved_at}, {priority}, {created_at} "
                "FROM {msg} WHERE {queue} = %s AND {state} = 'in_flight' AND {deadline} <= %s "
                "ORDER BY {deadline}, {id}" + self._lock_clause(conn, skip_locked=True),
                [self.name, now],
            )
            reclaimed: list[Reclaimed] = []
            back: list[int] = []
            dead: list[int] = []
            for pk, data, token, attempts, deadline, reserved_at, priority, created_at in rows:
                problem = _unreadable(priority, attempts, claimed=False)
                if problem:
                    self._bury_unreadable(conn, pk, data, attempts, priority, problem)
                    continue
                reservation = Reservation(
                    message_id=str(pk),
                    data=bytes(data),
                    token=token,
                    attempt=int(attempts),
                    deadline=float(deadline),
                    reserved_at=float(reserved_at) if reserved_at is not None else float(deadline),
                    priority=int(priority),
                )
                # A row reserved before reserved_at was recorded reads as reserved at its deadline: no progress.
                progressed = made_progress(reservation.deadline, reservation.reserved_at, progress_span)
                verdict = expired_verdict(attempts, progressed, max_attempts, max_reclaims)
                if verdict is not None:
                    reason, detail = verdict
                    self._insert_dead(conn, reservation.data, reason, detail, attempts, priority, created_at)
                    dead.append(pk)
                    reclaimed.append(Reclaimed(reservation, True, reason))
                else:
                    back.append(pk)
                    reclaimed.append(Reclaimed(reservation, False))
            for chunk in _chunks(back):
                self._execute(
                    conn,
                    f"UPDATE {{msg}} SET {{state}} = '{READY}', {{token}} = '', {{deadline}} = NULL, "
                    "{reserved_at} = NULL WHERE {id} IN (" + _placeholders(len(chunk)) + ")",
                    chunk,
                )
            for chunk in _chunks(dead):
                self._execute(
                    conn, "DELETE FROM {msg} WHERE {id} IN (" + _placeholders(len(chunk)) + ")", chunk
                )
        return reclaimed

    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        """Return expired reservations to their place in the queue, or to the dead letters at the cap.

        One transaction; the rows are locked with ``SKIP LOCKED`` where the database has it, so consumers
        reaping at the same time each reclaim different reservations.
        """
        reclaimed = self._run(
            "requeue_expired", self._requeue_expired, float(now), max_attempts, max_reclaims, progress_span
        )
        if reclaimed:
            self._notify_now()
        return reclaimed

    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        """The current reservations, earliest deadline first (up to ``limit``)."""
        if limit is not None and limit <= 0:
            return []

        def read(conn: Any) -> list[Reservation]:
            sql = (
                "SELECT {id}, {data}, {token}, {attempts}, {deadline}, {reserved_at}, {priority} FROM {msg} "
                "WHERE {queue} = %s AND {state} = 'in_flight' ORDER BY {deadline}, {id}"
            )
            params: list[Any] = [self.name]
            if limit is not None:
                sql += " LIMIT %s"
                params.append(int(limit))
            return [
                Reservation(
                    message_id=str(pk),
                    data=bytes(data),
                    token=token,
                    attempt=int(attempts),
                    deadline=float(deadline),
                    reserved_at=float(reserved_at),
                    priority=int(priority),
                )
                for pk, data, token, attempts, deadline, reserved_at, priority in self._fetchall(
                    conn, sql, params
                )
            ]

        return self._run("in_flight_items", read)

    def in_flight_size(self) -> int:
        """Count the reservations."""
        return self._run(
            "in_flight_size",
            lambda conn: int(
                self._scalar(
                    conn,
                    "SELECT COUNT(*) FROM {msg} WHERE {queue} = %s AND {state} = 'in_flight'",
                    [self.name],
                )
            ),
        )

    # ================================================================== dead letters

    def add_dead_letter(
        self,
        data: bytes,
        reason: str,
        detail: str = "",
        attempts: int = 0,
        priority: int | None = None,
    ) -> str:
        """Insert a dead letter and return its id (the row's id, as a string)."""
        data = check_bytes(data, "data")
        prio = None if priority is None else _priority(priority)
        return self._run("add_dead_letter", self._insert_dead, data, reason, detail, attempts, prio, None)

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters, oldest first (up to ``limit``)."""
        if limit is not None and limit <= 0:
            return []

        def read(conn: Any) -> list[DeadLetter]:
            sql = (
                "SELECT {id}, {data}, {reason}, {detail}, {attempts}, {failed_at}, {priority} FROM {dead} "
                "WHERE {queue} = %s ORDER BY {id}"
            )
            params: list[Any] = [self.name]
            if limit is not None:
                sql += " LIMIT %s"
                params.append(int(limit))
            return [
                DeadLetter(
                    id=str(pk),
                    data=bytes(data),
                    reason=reason,
                    detail=detail,
                    attempts=int(attempts),
                    failed_at=float(failed_at),
                    priority=None if priority is None else int(priority),
                )
                for pk, data, reason, detail, attempts, failed_at, priority in self._fetchall(
                    conn, sql, params
                )
            ]

        return self._run("dead_letters", read)

    def dead_letter_count(self) -> int:
        """Count the dead letters."""
        return self._run(
            "dead_letter_count",
            lambda conn: int(
                self._scalar(conn, "SELECT COUNT(*) FROM {dead} WHERE {queue} = %s", [self.name])
            ),
        )

    def _requeue_dead(self, conn: Any, pk: int) -> bool:
        with self._txn(conn):
            row = self._fetchone(
                conn,
                "SELECT {data}, {priority} FROM {dead} WHERE {id} = %s AND {queue} = %s"
                + self._lock_clause(conn),
                [pk, self.name],
            )
            if row is None:
                return False
            self._execute(conn, "DELETE FROM {dead} WHERE {id} = %s", [pk])
            data, priority = row
            self._insert_message(conn, bytes(data), 0 if priority is None else int(priority), time.time())
        return True

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """Move a dead letter to the back of its priority in the queue (claim count 0), in one transaction."""
        pk = _message_pk(dead_letter_id)
        if pk is None:
            return False
        return self._run("requeue_dead_letter", self._requeue_dead, pk)

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        """Delete dead letters by id and/or age (see the contract); return how many went."""
        pks: list[int] | None = None
        if ids is not None:
            pks = sorted({pk for pk in map(_message_pk, ids) if pk is not None})
            if not pks:
                return 0
        age = "" if older_than is None else " AND {failed_at} < %s"
        age_params = [] if older_than is None else [float(older_than)]

        def purge(conn: Any) -> int:
            if pks is None:
                return self._execute(
                    conn, "DELETE FROM {dead} WHERE {queue} = %s" + age, [self.name, *age_params]
                )
            deleted = 0
            with self._txn(conn):
                for chunk in _chunks(pks):
                    deleted += self._execute(
                        conn,
                        "DELETE FROM {dead} WHERE {queue} = %s AND {id} IN ("
                        + _placeholders(len(chunk))
                        + ")"
                        + age,
                        [self.name, *chunk, *age_params],
                    )
            return deleted

        return self._run("purge_dead_letters", purge)
