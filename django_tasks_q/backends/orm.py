"""ORM storage: the queue in your Django database (alias ``orm``; the default when ``TASKS_Q`` is not set).

Everything lives in five tables of the ``django_tasks_q`` app (see :mod:`django_tasks_q.orm_models`; the
statements take the tables' names from the models), so ``python manage.py migrate`` is the only set-up. Runs on
PostgreSQL, MariaDB/MySQL and SQLite (3.35 or newer).
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

On SQLite the statements run on the ``sqlite3`` connection under Django's, each prepared once, and the steps
of a delivery commit at ``synchronous=NORMAL`` on a WAL database unless ``fsync=True`` (see
:mod:`~django_tasks_q.backends.sql.orm_transport`). ``ack``, ``renew`` and ``release`` are single
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

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from django.db import connections
from django.utils.connection import ConnectionDoesNotExist

from .base import BaseStorage, Feature
from .errors import ConfigurationError
from .sql.orm_transport import OrmTablesMissing, OrmTransport
from .sql.queue import SqlQueue

if TYPE_CHECKING:
    from django.db.backends.sqlite3.base import DatabaseWrapper as SqliteDatabaseWrapper

__all__ = ["OrmStorage", "OrmTablesMissing"]

NAME_MAX_LENGTH = 191
"""The longest queue name the queue column holds."""
MIN_SQLITE_VERSION = (3, 35)
"""The oldest SQLite the storage runs on (for ``RETURNING``)."""


class OrmStorage(SqlQueue, OrmTransport, BaseStorage):
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
            version = tuple(cast("SqliteDatabaseWrapper", conn).Database.sqlite_version_info)
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
        self.purge_interval = purge_interval
        self._last_purge = time.monotonic()  # the first sweep comes one purge_interval from now
        self._peek_hash_cache: dict[Sequence[str], tuple[str, ...]] = {}
        self._init_transport(conn, using, fsync)
