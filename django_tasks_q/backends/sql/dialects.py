"""What differs between SQLite, PostgreSQL and MariaDB/MySQL for the SQL queue core, in one place.

A :class:`Dialect` answers the questions the queue's statements ask of a database: whether it has
``UPDATE/DELETE … RETURNING``, how a row is locked for the transaction, how an upsert of a value or a counter is
spelled, how the scheduler takes the due items, how listeners are woken, and which errors are worth another try.
Statements are templates: ``{msg}``, ``{queue}`` … stand for quoted table and column names, ``%s`` for a
parameter.
"""

from __future__ import annotations

import functools
import select
import time
from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["Dialect", "MysqlDialect", "PostgresDialect", "SqliteDialect", "SqliteDialectWithoutReturning", "dialect_for"]

_PG_TRANSIENT = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
_MYSQL_TRANSIENT = frozenset({1213})  # ER_LOCK_DEADLOCK
_SQLITE_TRANSIENT = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED (primary result codes)

TRANSIENT_RETRIES = 5
"""Attempts at a call that hit a deadlock (PostgreSQL, MariaDB/MySQL)."""
SQLITE_BUSY_ATTEMPTS = 3
"""Attempts at a call that waited out SQLite's busy timeout (each waits that long)."""

_UPSERT_VALUE = (
    " ON CONFLICT ({queue}, {key_hash}) DO UPDATE SET {value} = EXCLUDED.{value}, "
    "{is_result} = EXCLUDED.{is_result}, {expires_at} = EXCLUDED.{expires_at}, {updated_at} = EXCLUDED.{updated_at}"
)
_EXPIRED_COUNTER = "{counter}.{expires_at} IS NOT NULL AND {counter}.{expires_at} <= %s"
_UPSERT_COUNTER = (
    " ON CONFLICT ({queue}, {key_hash}) DO UPDATE SET "
    f"{{value}} = CASE WHEN {_EXPIRED_COUNTER} THEN EXCLUDED.{{value}} ELSE {{counter}}.{{value}} + EXCLUDED.{{value}} END, "
    f"{{expires_at}} = CASE WHEN {_EXPIRED_COUNTER} THEN EXCLUDED.{{expires_at}} ELSE {{counter}}.{{expires_at}} END "
    "RETURNING {value}"
)


@functools.cache
def _joined(statement: str, clause: str) -> str:
    """``statement`` and ``clause`` as one string, made once (the transport then finds its statement at once)."""
    return statement + clause


class Dialect:
    """The differences of one database vendor (see the module documentation)."""

    vendor: ClassVar[str] = ""
    returning: ClassVar[bool] = True
    """Whether ``UPDATE/DELETE … RETURNING`` exists (PostgreSQL, SQLite 3.35+; not MariaDB/MySQL)."""
    attempts_per_call: ClassVar[int] = TRANSIENT_RETRIES
    """How many times a call that failed with a transient error is tried."""

    def __init__(self, features: Any) -> None:
        self._features = features
        self._skip_locked: bool | None = None

    def lock_clause(self, skip_locked: bool = False) -> str:
        """`` FOR UPDATE [SKIP LOCKED]`` where the database has row locks (with ``SKIP LOCKED`` when asked and
        the server has it); ``""`` on SQLite, where the transaction holds the database's write lock.

        Whether the server has ``SKIP LOCKED`` (MariaDB 10.6+, MySQL 8+) is asked once, on first use: Django
        reads the server's version for it, which needs a connection.
        """
        if not skip_locked:
            return " FOR UPDATE"
        if self._skip_locked is None:
            self._skip_locked = bool(self._features.has_select_for_update_skip_locked)
        return " FOR UPDATE SKIP LOCKED" if self._skip_locked else " FOR UPDATE"

    def upsert_value(self, insert: str, params: list[Any]) -> tuple[str, list[Any]]:
        """The insert of a key/value row (``params``: queue, key hash, key, value, is_result, expires_at,
        updated_at) that replaces the value, flag and expiry of an existing key."""
        return _joined(insert, _UPSERT_VALUE), params

    def incr_counter(self, insert: str, params: list[Any], now: float) -> tuple[str, list[Any], bool]:
        """The counter upsert (``params``: queue, key hash, key, amount, expires_at): add to a live counter,
        start a new window from an expired one. The flag says whether it returns the new value itself."""
        return insert + _UPSERT_COUNTER, [*params, now, now], True

    def take_due(self) -> str:
        """``DELETE … RETURNING`` the due schedule rows (where :attr:`returning`); parameters: queue, time."""
        return "DELETE FROM {sched} WHERE {queue} = %s AND {eta} <= %s RETURNING {id}, {data}, {priority}, {eta}"

    def notify(self, channel: str) -> tuple[str, list[Any]] | None:
        """A statement that wakes this queue's listeners in other processes at commit, if the database has one."""
        return None

    def insert_and_notify(self, insert: str, params: list[Any], channel: str) -> tuple[str, list[Any]]:
        """The insert of a ready message, notifying listeners in the same statement where the database can."""
        return insert, params

    def listen(
        self, connection: Any, channel: str, on_lost: Callable[[Exception], None]
    ) -> tuple[Any, Callable[[float], bool]] | None:
        """A connection of its own listening on ``channel`` and the wait on it (``poll(timeout)`` → whether a
        notification came), or ``None`` where the database cannot notify. ``on_lost`` hears of a broken
        listening connection; the wait then reports a change, so that the caller looks and listens anew."""
        return None

    def is_transient(self, error: BaseException) -> bool:
        """Whether ``error`` (Django's, with the driver's as its cause) rolled back a call that may simply be
        tried again: a deadlock, a serialization failure, SQLite's busy timeout."""
        return False


class PostgresDialect(Dialect):
    """PostgreSQL: ``RETURNING``, ``SKIP LOCKED`` and ``LISTEN``/``NOTIFY``."""

    vendor = "postgresql"

    def take_due(self) -> str:
        """Lock the due rows with ``SKIP LOCKED`` so that schedulers running at once share them."""
        return (
            "DELETE FROM {sched} WHERE {id} IN (SELECT {id} FROM {sched} WHERE {queue} = %s AND {eta} <= %s"
            + self.lock_clause(skip_locked=True)
            + ") RETURNING {id}, {data}, {priority}, {eta}"
        )

    def notify(self, channel: str) -> tuple[str, list[Any]] | None:
        """``pg_notify`` on the queue's channel (sent when the transaction commits)."""
        return "SELECT pg_notify(%s, '')", [channel]

    def insert_and_notify(self, insert: str, params: list[Any], channel: str) -> tuple[str, list[Any]]:
        """The row and its ``NOTIFY`` in one statement."""
        return f"WITH inserted AS ({insert} RETURNING {{id}}) SELECT pg_notify(%s, '') FROM inserted", [
            *params,
            channel,
        ]

    def listen(
        self, connection: Any, channel: str, on_lost: Callable[[Exception], None]
    ) -> tuple[Any, Callable[[float], bool]] | None:
        """``LISTEN`` with psycopg 3, waiting on the connection's socket (psycopg's ``notifies()`` generator
        costs far more per call); psycopg2 has no native wait (``None``)."""
        listener = connection.Database.connect(**connection.get_connection_params())
        pgconn = getattr(listener, "pgconn", None)
        if pgconn is None:
            listener.close()
            return None
        listener.autocommit = True
        listener.execute(f'LISTEN "{channel}"')

        def poll(timeout: float) -> bool:
            try:
                if not select.select([pgconn.socket], [], [], timeout)[0]:
                    return False
                pgconn.consume_input()
                notified = False
                while pgconn.notifies() is not None:
                    notified = True
                return notified
            except Exception as exc:
                on_lost(exc)
                try:
                    listener.close()
                except Exception:
                    pass
                time.sleep(min(timeout, 1.0))
                return True

        return listener, poll

    def is_transient(self, error: BaseException) -> bool:
        """Deadlocks and serialization failures (SQLSTATE 40P01, 40001)."""
        return getattr(error.__cause__, "sqlstate", None) in _PG_TRANSIENT


class MysqlDialect(Dialect):
    """MariaDB/MySQL: no ``RETURNING`` (claims select the row ``FOR UPDATE`` first), ``ON DUPLICATE KEY``."""

    vendor = "mysql"
    returning = False

    def upsert_value(self, insert: str, params: list[Any]) -> tuple[str, list[Any]]:
        """``ON DUPLICATE KEY UPDATE`` with the new value, flag, expiry and time."""
        return (
            insert + " ON DUPLICATE KEY UPDATE {value} = %s, {is_result} = %s, {expires_at} = %s, {updated_at} = %s",
            [*params, *params[3:]],
        )

    def incr_counter(self, insert: str, params: list[Any], now: float) -> tuple[str, list[Any], bool]:
        """``ON DUPLICATE KEY UPDATE``, which assigns left to right: ``value`` is computed while ``expires_at``
        is still the old one. The new value is read back by the caller in the same transaction."""
        expired = "{expires_at} IS NOT NULL AND {expires_at} <= %s"
        amount, expires_at = params[3], params[4]
        return (
            insert + f" ON DUPLICATE KEY UPDATE {{value}} = IF({expired}, %s, {{value}} + %s), "
            f"{{expires_at}} = IF({expired}, %s, {{expires_at}})",
            [*params, now, amount, amount, now, expires_at],
            False,
        )

    def is_transient(self, error: BaseException) -> bool:
        """Deadlocks (error 1213)."""
        code = (getattr(error.__cause__, "args", None) or getattr(error, "args", None) or (None,))[0]
        return code in _MYSQL_TRANSIENT


class SqliteDialect(Dialect):
    """SQLite: one writer at a time, so no row locks; ``RETURNING`` since 3.35."""

    vendor = "sqlite"
    attempts_per_call = SQLITE_BUSY_ATTEMPTS

    def lock_clause(self, skip_locked: bool = False) -> str:
        """Nothing: the transaction started with ``BEGIN IMMEDIATE`` holds the database's write lock."""
        return ""

    def is_transient(self, error: BaseException) -> bool:
        """``SQLITE_BUSY`` (the busy timeout ran out: writers starve each other under heavy contention) or
        ``SQLITE_LOCKED``; either way the statement or transaction was rolled back."""
        code = getattr(error.__cause__, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _SQLITE_TRANSIENT
        return "locked" in str(error)


class SqliteDialectWithoutReturning(SqliteDialect):
    """SQLite before 3.35, for the SQLite storage: no ``RETURNING``, so claims and takes select the rows first
    (inside ``BEGIN IMMEDIATE``, as atomic), and a counter's new value is read back in the same transaction."""

    returning = False

    def incr_counter(self, insert: str, params: list[Any], now: float) -> tuple[str, list[Any], bool]:
        """The upsert without its ``RETURNING``."""
        sql, values, _ = super().incr_counter(insert, params, now)
        return sql.removesuffix(" RETURNING {value}"), values, False


_DIALECTS: dict[str, type[Dialect]] = {d.vendor: d for d in (PostgresDialect, MysqlDialect, SqliteDialect)}


def dialect_for(connection: Any) -> Dialect:
    """The dialect of a Django database connection (``connection.vendor``)."""
    return _DIALECTS[connection.vendor](connection.features)
