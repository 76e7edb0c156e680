"""The queue and the schedule of both SQL storages: enqueue, the destructive reads, listings and counts.

Messages are inserted ready (``{state} = 'ready'``) and read in claim order (``priority DESC, id``); the
scheduler moves due items into the queue with their priority, in one transaction, so an item is moved exactly
once however many schedulers run.
"""

from __future__ import annotations

import time
from typing import Any

from ..base import check_bytes, schedule_time
from .core import READY, chunks, placeholders
from .delivery import SqlDelivery

__all__ = ["SqlQueue"]


class SqlQueue(SqlDelivery):
    """The queue and the schedule (see the module documentation), on the primitives of the storage's transport."""

    # ================================================================== the queue

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        """Insert a ready message; inside ``transaction.atomic()`` it commits (or not) with the caller."""
        data = check_bytes(data, "data")
        prio = self._schema.bounded_priority(priority)
        self._run("enqueue", self._insert_message, data, prio, time.time())
        self._wake_waiters()


    def _insert_messages(self, conn: Any, rows: list[list[Any]]) -> None:
        with self._txn(conn):
            self._executemany(conn, self._INSERT_MESSAGE, rows)
            self._notify(conn)

    def enqueue_many(self, items: list[tuple[bytes, int | None]]) -> None:
        """Insert the messages in order with one ``executemany`` in one transaction (all or none)."""
        now = time.time()
        ready = READY
        rows = [
            [self.name, check_bytes(data, "data"), self._schema.bounded_priority(priority), ready, "", 0, now]
            for data, priority in items
        ]
        if rows:
            self._run("enqueue_many", self._insert_messages, rows)
            self._wake_waiters()

    def _dequeue(self, conn: Any) -> bytes | None:
        if self._dialect.returning:
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
                    self._execute(conn, "DELETE FROM {msg} WHERE {id} = %s AND {state} = {ready}", [row[0]])
                    == 1
                ):
                    return bytes(row[1])
        return None

    def dequeue(self) -> bytes | None:
        """Remove and return the next ready message (highest priority, then oldest), or ``None`` at once."""
        return self._run("dequeue", self._dequeue)

    def queue_size(self) -> int:
        """Count the ready messages."""
        return self._count(
            "queue_size",
            "SELECT COUNT(*) FROM {msg} WHERE {queue} = %s AND {state} = {ready}", [self.name],
        )

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        """The ready messages in claim order (up to ``limit``), without removing them."""
        if limit is not None and limit <= 0:
            return []

        sql = "SELECT {data} FROM {msg} WHERE {queue} = %s AND {state} = {ready} ORDER BY {priority} DESC, {id}"
        return [bytes(row[0]) for row in self._run("enqueued_items", self._fetch_limited, sql, [self.name], limit)]

    def flush_queue(self) -> None:
        """Delete the ready messages (reservations stay)."""
        self._run(
            "flush_queue",
            lambda conn: self._execute(
                conn, "DELETE FROM {msg} WHERE {queue} = %s AND {state} = {ready}", [self.name]
            ),
        )

    # ================================================================== the schedule

    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        """Insert a scheduled message due at ``timestamp`` (epoch seconds), remembering ``priority``."""
        data = check_bytes(data, "data")
        prio = self._schema.bounded_priority(priority)
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
        if self._dialect.returning:
            rows = self._fetchall(conn, self._dialect.take_due(), [self.name, timestamp])
        else:
            rows = self._fetchall(
                conn,
                "SELECT {id}, {data}, {priority}, {eta} FROM {sched} WHERE {queue} = %s AND {eta} <= %s "
                "ORDER BY {eta}, {id}" + self._dialect.lock_clause(skip_locked=True),
                [self.name, timestamp],
            )
            for chunk in chunks([row[0] for row in rows]):
                self._execute(
                    conn, "DELETE FROM {sched} WHERE {id} IN (" + placeholders(len(chunk)) + ")", chunk
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
                        self._INSERT_MESSAGE,
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

        sql = "SELECT {data} FROM {sched} WHERE {queue} = %s ORDER BY {eta}, {id}"
        return [bytes(row[0]) for row in self._run("scheduled_items", self._fetch_limited, sql, [self.name], limit)]

    def schedule_size(self) -> int:
        """Count the scheduled items, due or not."""
        return self._count(
            "schedule_size",
            "SELECT COUNT(*) FROM {sched} WHERE {queue} = %s", [self.name],
        )

    def flush_schedule(self) -> None:
        """Delete every scheduled item."""
        self._run(
            "flush_schedule",
            lambda conn: self._execute(conn, "DELETE FROM {sched} WHERE {queue} = %s", [self.name]),
        )

