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

The storage runs the ORM storage's statements (:mod:`django_tasks_q.backends.sql.queue`,
:mod:`~django_tasks_q.backends.sql.delivery`, :mod:`~django_tasks_q.backends.sql.data`) on its own file.
Connections, transactions and waiting are described in :mod:`django_tasks_q.backends.sql.sqlite_connection`,
what only this storage does (reads before writes, the claim of ``ack_and_reserve`` in a savepoint) in
:mod:`django_tasks_q.backends.sql.sqlite_delivery`. In short: one connection per thread and process, WAL mode,
every write one short ``BEGIN IMMEDIATE`` transaction, never a transaction open while a task runs.

Tables (shared by every queue in the file; each row carries its queue ``name``)
-------------------------------------------------------------------------------

The ORM storage's five tables (see :mod:`django_tasks_q.orm_models`), named ``tasks_q_*``, with 64-bit
priorities and attempts:

``tasks_q_message``
    Ready and in-flight messages in one table: ``id`` (the message id, and its place: delivery order within a
    priority), ``queue``, ``data``, ``priority``, ``state`` (``'ready'`` or ``'in_flight'``), ``token``,
    ``attempts``, ``deadline``, ``reserved_at``, ``created_at``. A message keeps its row (and so its place) for
    life; ``reserve`` / ``release`` / ``requeue_expired`` only change its state. Ready order: ``priority DESC,
    id``.
``tasks_q_schedule``
    ``queue``, ``data``, ``priority``, ``eta``, ``created_at``; due order ``eta, id``.
``tasks_q_kv``
    ``queue``, ``key_hash`` (SHA-256 of the key, hex; unique per queue), ``key``, ``value``, ``is_result``,
    ``expires_at``, ``updated_at`` (results, locks, revocations ...).
``tasks_q_counter``
    ``queue``, ``key_hash``, ``key``, ``value``, ``expires_at`` (``incr``).
``tasks_q_dead``
    Dead letters, their id the row id: ``queue``, ``data``, ``priority``, ``reason``, ``detail``, ``attempts``,
    ``failed_at``, ``created_at``.

A file written by an older version (its message table has a ``claims`` column) is rebuilt in this layout when
the storage first opens it, keeping every message, value and counter; see
:mod:`django_tasks_q.backends.sql.sqlite_layout`.

Values with a ttl are invisible once expired and are deleted by :meth:`SqliteStorage.purge_expired`, which
writes run at most every ``purge_interval`` seconds.
"""

from __future__ import annotations

import os
from typing import Any

from django_tasks_q.backends.base import BaseStorage, Feature
from django_tasks_q.backends.errors import ConfigurationError

from .sql.sqlite_connection import SUPPORTS_RETURNING, SchemaMissing
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
