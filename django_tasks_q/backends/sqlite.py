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

Connections, transactions and waiting are described in :mod:`django_tasks_q.backends.sql.sqlite_connection`,
the claim, the reaper and the handling of rows that cannot be read in
:mod:`django_tasks_q.backends.sql.sqlite_delivery`. In short: one connection per thread and process, WAL mode,
every write one short ``BEGIN IMMEDIATE`` transaction, never a transaction open while a task runs.

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

import os
import sqlite3
from typing import Any

from django_tasks_q.backends.base import BaseStorage, Feature, check_bytes, new_token, schedule_time
from django_tasks_q.backends.errors import ConfigurationError

from .sql.core import SQLITE_FILE_SCHEMA
from .sql.sqlite_connection import SUPPORTS_RETURNING, SchemaMissing, limit_param
from .sql.sqlite_delivery import SqliteDelivery

__all__ = ["SUPPORTS_RETURNING", "SchemaMissing", "SqliteStorage"]


class SqliteStorage(SqliteDelivery, BaseStorage):
    """Storage in a SQLite file: durable, reliable (at least once), shared by the processes of one host.

    See the module documentation for the parameters, the tables and how each operation is made atomic.
    """

    blocking = False
    priority = True
    features = frozenset({Feature.RELIABLE, Feature.DEAD_LETTERS, Feature.COUNTERS, Feature.KEY_LISTING,
                          Feature.WAIT_FOR_MESSAGES, Feature.REAP_BY_PROGRESS})

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
        self.create_tables = bool(create_tables)
        self._init_connections()

    # ------------------------------------------------------------------ the queue

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """Insert a ready message (one ``INSERT`` in a write transaction)."""
        data = check_bytes(data, "data")
        prio = SQLITE_FILE_SCHEMA.bounded_priority(priority)
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
        rows = [(self.name, new_token(), check_bytes(data, "data"), SQLITE_FILE_SCHEMA.bounded_priority(priority)) for data, priority in items]
        if not rows:
            return
        self._write(
            "enqueue",
            lambda conn: conn.executemany(
                "INSERT INTO tasks_q_message (queue, message_id, data, priority) VALUES (?, ?, ?, ?)", rows
            ),
        )
        self._wake_waiters()

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
        return self._count(
            "count the queue",
            "SELECT COUNT(*) FROM tasks_q_message WHERE queue = ? AND state = 0", (self.name,)
        )

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """Return ready messages in delivery order (``priority DESC, id``)."""
        rows = self._query(
            "list the queue",
            "SELECT data FROM tasks_q_message WHERE queue = ? AND state = 0 "
            "ORDER BY priority DESC, id LIMIT ?",
            (self.name, limit_param(limit)),
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
        prio = SQLITE_FILE_SCHEMA.bounded_priority(priority)
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
        rows = self._query(
            "list the schedule",
            "SELECT data FROM tasks_q_schedule WHERE queue = ? ORDER BY timestamp, id LIMIT ?",
            (self.name, limit_param(limit)),
        )
        return [bytes(row[0]) for row in rows]

    def schedule_size(self) -> int:
        """Count scheduled items."""
        return self._count(
            "count the schedule",
            "SELECT COUNT(*) FROM tasks_q_schedule WHERE queue = ?", (self.name,)
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

