"""The SQLite storage's key/value area and counters: results, locks, revocations, rate-limit windows.

``tasks_q_kv`` holds ``queue``, ``key``, ``value``, ``is_result`` and ``expires_at``; ``tasks_q_counter``
holds ``queue``, ``key``, ``value`` and ``expires_at``. Values with a ttl are invisible once expired and are
deleted by ``purge_expired``, which writes run at most every ``purge_interval`` seconds.
"""

from __future__ import annotations

import sqlite3
import time

from django_tasks_q.backends.base import EmptyData, EmptyDataType, check_bytes, check_key, expiry_time

from .core import SQLITE_FILE_SCHEMA, CommonOperations
from .sqlite_connection import SqliteConnections

__all__ = ["SqliteDataArea"]

_LIVE = "(expires_at IS NULL OR expires_at > ?)"


class SqliteDataArea(CommonOperations, SqliteConnections):
    """The key/value area and the counters of the SQLite storage (see the module documentation)."""

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
        rows = self._query(
            "read values",
            f"SELECT key, value FROM tasks_q_kv WHERE queue = ? AND key IN ({marks}) AND {_LIVE}",
            (self.name, *wanted, time.time()),
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
        return bool(
            self._count(
                "read a value",
                f"SELECT EXISTS (SELECT 1 FROM tasks_q_kv WHERE queue = ? AND key = ? AND {_LIVE})",
                (self.name, key, time.time()),
            )
        )

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
            for table in SQLITE_FILE_SCHEMA.tables:
                conn.execute(f"DELETE FROM {table} WHERE queue = ?", (self.name,))

        self._write("flush everything", work)

    # ------------------------------------------------------------------ huey's extras

    def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
        """Sorted keys of live values starting with ``prefix`` (compared with ``substr``, so no escaping)."""
        rows = self._query(
            "list keys",
            f"SELECT key FROM tasks_q_kv WHERE queue = ? AND substr(key, 1, ?) = ? AND {_LIVE} "
            "ORDER BY key LIMIT ?",
            (self.name, len(prefix), prefix, time.time(), -1 if limit is None else limit),
        )
        return [row[0] for row in rows]

    def _values(self, results_only: bool) -> dict[str, bytes]:
        only = "AND is_result = 1 " if results_only else ""
        rows = self._query(
            "list values",
            f"SELECT key, value FROM tasks_q_kv WHERE queue = ? {only}AND {_LIVE} ORDER BY id",
            (self.name, time.time()),
        )
        return {row[0]: bytes(row[1]) for row in rows}

    def _count_values(self, results_only: bool) -> int:
        only = "AND is_result = 1 " if results_only else ""
        return self._count(
            "count values",
            f"SELECT COUNT(*) FROM tasks_q_kv WHERE queue = ? {only}AND {_LIVE}", (self.name, time.time())
        )

    def _flush_values(self, results_only: bool) -> None:
        only = " AND is_result = 1" if results_only else ""
        self._write(
            "flush values",
            lambda conn: conn.execute(f"DELETE FROM tasks_q_kv WHERE queue = ?{only}", (self.name,)),
        )

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

