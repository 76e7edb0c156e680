"""The key/value area and counters of both SQL storages: results, locks, revocations, rate-limit windows.

Keys can be of any length: rows are found by ``key_hash`` (SHA-256 of the key, hex), which also makes lookups
exact whatever the database's collation. Expired values read as absent, are deleted when a read of the ORM
storage finds them (the SQLite storage's reads never write), and are swept by :meth:`SqlDataArea.purge_expired`, which the storage also runs by itself every ``purge_interval``
seconds after writes. ``put_if_empty`` inserts in a savepoint and reports ``False`` on the unique-key conflict;
``incr`` is one upsert that starts a new window when the old one has expired.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..base import EmptyData, EmptyDataType, check_bytes, check_key, expiry_time, is_live
from ..errors import StorageError
from .core import CHUNK, Schema, placeholders

if TYPE_CHECKING:
    from .dialects import Dialect

T = TypeVar("T")

__all__ = ["SqlDataArea", "hash_key"]

logger = logging.getLogger("django_tasks_q.backends.sql")


def hash_key(key: str) -> str:
    """The hash under which a key's row is found (SHA-256 of the key, hex)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class SqlDataArea:
    """The key/value area and the counters (see the module documentation), on the primitives of the storage's
    transport (``_run``, ``_execute``, ``_fetchone``, ``_txn`` ...)."""

    name: str
    _schema: Schema
    _kind: str
    purge_interval: float | None
    _last_purge: float

    _reads_delete_expired: ClassVar[bool] = True
    """Whether a read that finds an expired value deletes it (the SQLite storage's reads never write: its
    expired values wait for ``purge_expired``)."""

    # The transport's primitives, which the storage class mixes in after this one (OrmTransport or
    # SqliteConnections): declared for the type checker only, so that they never shadow the transport's.
    _dialect: Dialect
    _UNIQUE_CONFLICT: ClassVar[type[Exception]]
    channel: str
    _peek_hash_cache: dict[Any, tuple[str, ...]]

    if TYPE_CHECKING:

        def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T: ...
        def _execute(self, conn: Any, template: str, params: Sequence[Any] = ()) -> int: ...
        def _executemany(self, conn: Any, template: str, rows: Sequence[Sequence[Any]]) -> None: ...
        def _fetchall(self, conn: Any, template: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _fetchone(self, conn: Any, template: str, params: Sequence[Any] = ()) -> Any: ...
        def _insert_returning_id(self, conn: Any, template: str, params: Sequence[Any]) -> Any: ...
        def _txn(self, conn: Any) -> AbstractContextManager[None]: ...
        def _savepoint(self, conn: Any) -> AbstractContextManager[Any]: ...
        def _after_commit(self, conn: Any, callback: Callable[[], None]) -> None: ...
        def _in_caller_transaction(self) -> bool: ...
        def _message_row_place(self, pk: Any) -> str: ...
        def _wake_waiters(self) -> None: ...

    def _maybe_purge(self) -> None:
        """Sweep expired values now and then (``purge_interval``), never inside a caller's transaction."""
        if self.purge_interval is None or time.monotonic() < self._last_purge + self.purge_interval:
            return
        if self._in_caller_transaction():
            return
        self._last_purge = time.monotonic()
        try:
            self.purge_expired()
        except StorageError:
            logger.warning("%s %r: sweeping expired values failed", self._kind, self.name, exc_info=True)


    def _fetch_limited(self, conn: Any, template: str, params: list[Any], limit: int | None) -> list[tuple[Any, ...]]:
        """The rows of a listing, the first ``limit`` of them unless ``limit`` is ``None``."""
        if limit is not None:
            template += " LIMIT %s"
            params = [*params, int(limit)]
        return self._fetchall(conn, template, params)

    def _count(self, what: str, template: str, params: Sequence[Any]) -> int:
        """The number one statement yields (a count), as one storage operation."""
        return self._run(what, lambda conn: int(self._scalar(conn, template, params)))

    def _scalar(self, conn: Any, template: str, params: Sequence[Any] = ()) -> Any:
        row = self._fetchone(conn, template, params)
        return None if row is None else row[0]

    # ================================================================== key/value data

    def _upsert_value(
        self, conn: Any, key: str, value: bytes, is_result: bool, expires_at: float | None, now: float
    ) -> None:
        self._execute(
            conn,
            *self._dialect.upsert_value(
                "INSERT INTO {kv} ({queue}, {key_hash}, {key}, {value}, {is_result}, {expires_at}, {updated_at}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [self.name, hash_key(key), key, value, is_result, expires_at, now],
            ),
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
        key_hash = hash_key(key)
        row = self._fetchone(
            conn,
            "SELECT " + column + ", {expires_at} FROM {kv} WHERE {queue} = %s AND {key_hash} = %s",
            [self.name, key_hash],
        )
        if row is None:
            return False, None
        now = time.time()
        if not is_live(row[1], now):
            if self._reads_delete_expired:
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
            + placeholders(len(hashes))
            + ")",
            [self.name, *hashes],
        )
        now = time.time()
        return {key_hash: bytes(value) for key_hash, value, expires_at in rows if is_live(expires_at, now)}

    def peek_many(self, keys: list[str]) -> list[bytes | EmptyDataType]:
        """The live values of ``keys`` in one ``SELECT`` (expired ones count as none); ``EmptyData`` elsewhere."""
        hashes = [hash_key(check_key(key)) for key in keys]
        if not hashes or len(set(hashes)) > CHUNK:
            return [self.peek_data(key) for key in keys]
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
        key_hash = hash_key(key)
        if self._dialect.returning:
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
                    + self._dialect.lock_clause(),
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
        key_hash = hash_key(key)
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
            except self._UNIQUE_CONFLICT:
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
        key_hash = hash_key(key)
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

    def result_items(self) -> dict[str, bytes]:
        """Every live value, results or not, as ``{key: value}``."""
        return self._values(results_only=False)

    def result_store_size(self) -> int:
        """Count the live values, results or not."""
        return self._count_values(results_only=False)

    def flush_results(self) -> None:
        """Delete every value, results or not (counters stay), in one statement."""
        self._flush_values(results_only=False)

    def task_results(self) -> dict[str, bytes]:
        """Every live task result as ``{key: value}``."""
        return self._values(results_only=True)

    def task_result_count(self) -> int:
        """Count the live task results."""
        return self._count_values(results_only=True)

    def flush_task_results(self) -> None:
        """Delete every task result (locks and other values stay), in one statement."""
        self._flush_values(results_only=True)

    def _values(self, results_only: bool) -> dict[str, bytes]:
        only, params = ("AND {is_result} = %s ", [True]) if results_only else ("", [])

        def read(conn: Any) -> dict[str, bytes]:
            rows = self._fetchall(
                conn,
                "SELECT {key}, {value} FROM {kv} WHERE {queue} = %s " + only
                + "AND ({expires_at} IS NULL OR {expires_at} > %s)",
                [self.name, *params, time.time()],
            )
            return {key: bytes(value) for key, value in rows}

        return self._run("task_results" if results_only else "result_items", read)

    def _count_values(self, results_only: bool) -> int:
        only, params = ("AND {is_result} = %s ", [True]) if results_only else ("", [])
        return self._count(
            "task_result_count" if results_only else "result_store_size",
            "SELECT COUNT(*) FROM {kv} WHERE {queue} = %s " + only + "AND ({expires_at} IS NULL OR {expires_at} > %s)",
            [self.name, *params, time.time()],
        )

    def _flush_values(self, results_only: bool) -> None:
        only, params = (" AND {is_result} = %s", [True]) if results_only else ("", [])
        self._run(
            "flush_task_results" if results_only else "flush_results",
            lambda conn: self._execute(conn, "DELETE FROM {kv} WHERE {queue} = %s" + only, [self.name, *params]),
        )

    def _incr(self, conn: Any, key: str, amount: int, ttl: float | None) -> int:
        now = time.time()
        key_hash = hash_key(key)
        sql, params, returns_value = self._dialect.incr_counter(
            "INSERT INTO {counter} ({queue}, {key_hash}, {key}, {value}, {expires_at}) VALUES (%s, %s, %s, %s, %s)",
            [self.name, key_hash, key, amount, expiry_time(ttl, now)],
            now,
        )
        if returns_value:
            row = self._fetchone(conn, sql, params)
            assert row is not None
            return int(row[0])
        with self._txn(conn):
            self._execute(conn, sql, params)
            return int(
                self._scalar(
                    conn, "SELECT {value} FROM {counter} WHERE {queue} = %s AND {key_hash} = %s", [self.name, key_hash]
                )
            )

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
        key_hash = hash_key(check_key(key))
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

