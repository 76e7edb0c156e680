"""What only the SQLite storage does on top of the shared statements.

* Reads before writes: ``reserve``, ``dequeue``, ``read_schedule``, ``enqueue_due`` and ``requeue_expired`` first
  look (a read, which never waits for the writer in WAL mode) whether there is anything to do, and take the
  file's write lock only then: idle consumers polling an empty queue never queue up for the lock.
* Reads never write: an expired value reads as absent and stays in the file until ``purge_expired``.
* In ``ack_and_reserve`` the claim runs in a savepoint after the acknowledgement: should it fail all the same,
  only the claim is rolled back and the acknowledgement is committed (the next ``reserve`` claims again).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from django_tasks_q.backends.base import Reclaimed, Reservation, schedule_time

from .queue import SqlQueue
from .sqlite_connection import SqliteConnections, _logger

__all__ = ["SqliteDelivery"]


class SqliteDelivery(SqlQueue, SqliteConnections):
    """The shared queue, delivery and key/value statements on the SQLite file (see the module documentation)."""

    _reads_delete_expired = False

    _ANY_READY = "SELECT EXISTS (SELECT 1 FROM {msg} WHERE {queue} = %s AND {state} = {ready})"
    _ANY_DUE = "SELECT EXISTS (SELECT 1 FROM {sched} WHERE {queue} = %s AND {eta} <= %s)"
    _ANY_EXPIRED = (
        "SELECT EXISTS (SELECT 1 FROM {msg} WHERE {queue} = %s AND {state} = {in_flight} AND {deadline} <= %s)"
    )

    def _has_ready(self) -> bool:
        return self._exists("look for ready messages", self._ANY_READY, [self.name])

    def _has_due(self, timestamp: float) -> bool:
        return self._exists("look for due items", self._ANY_DUE, [self.name, schedule_time(timestamp)])

    def reserve(self, lease: float, peek: Sequence[str] = ()) -> Reservation | None:
        """Claim the next ready message for ``lease`` seconds, or ``None`` (the write lock only when one is ready)."""
        if not self._has_ready():
            return None
        return super().reserve(lease, peek)

    def dequeue(self) -> bytes | None:
        """Remove and return the next ready message, or ``None`` (the write lock only when one is ready)."""
        if not self._has_ready():
            return None
        return super().dequeue()

    def read_schedule(self, timestamp: float) -> list[bytes]:
        """Remove and return the due items, earliest first (the write lock only when one is due)."""
        if not self._has_due(timestamp):
            return []
        return super().read_schedule(timestamp)

    def enqueue_due(self, timestamp: float) -> int:
        """Move the due items into the queue with their priority (the write lock only when one is due)."""
        if not self._has_due(timestamp):
            return 0
        return super().enqueue_due(timestamp)

    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        """Reclaim the expired reservations (the write lock only when one has expired)."""
        if not self._exists("look for expired leases", self._ANY_EXPIRED, [self.name, float(now)]):
            return []
        return super().requeue_expired(now, max_attempts, max_reclaims, progress_span)

    def _claim_after_ack(self, conn: sqlite3.Connection, lease: float, peek: Sequence[str]) -> Reservation | None:
        try:
            with self._savepoint(conn):
                return self._reserve(conn, lease, peek)
        except Exception:
            # The acknowledgement is committed whatever happens to the claim; the next reserve() retries.
            _logger.warning(
                "SQLite storage %r: claiming the next message failed after an acknowledgement; the "
                "acknowledgement is kept",
                self.name,
                exc_info=True,
            )
            return None
