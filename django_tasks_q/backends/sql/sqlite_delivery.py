"""Reliable delivery on the SQLite storage: the claim, acknowledgement, lease renewal and release, the reaper,
and the dead letters (``tasks_q_dead``: ``queue``, ``letter_id``, ``data``, ``reason``, ``detail``,
``attempts``, ``failed_at``, ``priority``).

The claim is one statement: ``UPDATE … SET state = in-flight, token = …, claims = claims + 1 WHERE id =
(SELECT the next ready id) RETURNING …`` (SQLite 3.35+; older libraries do the same ``SELECT`` and ``UPDATE``
inside the same write transaction, which is just as atomic). A row the claim cannot read (see
:func:`~django_tasks_q.backends.sql.core.unreadable_problems`) is moved to the dead letters
(``unreadable_record``, with the column and its value in the detail) in the same transaction, logged once, and
the claim goes on with the next row; the reaper does the same for such an in-flight row. In
``ack_and_reserve`` the claim runs in a savepoint after the acknowledgement: should it fail all the same, only
the claim is rolled back and the acknowledgement is committed.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from django_tasks_q.backends.base import (
    UNREADABLE_RECORD,
    DeadLetter,
    Reclaimed,
    Reservation,
    ResultWrite,
    check_bytes,
    expiry_time,
    log_unreadable_record,
    new_token,
)

from .core import (
    SQLITE_FILE_SCHEMA,
    chunks,
    dead_letter_from_row,
    placeholders,
    reclaim_expired_rows,
    reservation_from_row,
    unreadable_problems,
)
from .sqlite_connection import _logger, limit_param
from .sqlite_data import SqliteDataArea

__all__ = ["SqliteDelivery"]


def _unreadable(priority: object, claims: object, claimed: bool = True) -> str:
    return unreadable_problems(SQLITE_FILE_SCHEMA, priority, claims, claimed)


class SqliteDelivery(SqliteDataArea):
    """Reliable delivery and dead letters of the SQLite storage (see the module documentation)."""

    _use_returning: bool

    def _has_ready(self, conn: sqlite3.Connection) -> bool:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM tasks_q_message WHERE queue = ? AND state = 0)", (self.name,)
        ).fetchone()
        return bool(row[0])

    _NEXT_READY = (
        "SELECT id FROM tasks_q_message WHERE queue = ? AND state = 0 ORDER BY priority DESC, id LIMIT 1"
    )

    # ------------------------------------------------------------------ reliable delivery

    def reserve(self, lease: float) -> Reservation | None:
        """Claim the next ready message with one ``UPDATE … RETURNING`` in a write transaction (a row that
        cannot be read is dead-lettered on the way, see the module documentation)."""
        if not self._read("reserve", self._has_ready):
            return None
        token = new_token()
        unreadable: list[tuple[str, str]] = []
        claimed = self._write("reserve", lambda conn: self._claim(conn, token, lease, unreadable))
        self._log_unreadable(unreadable)  # after the commit: a rolled-back transaction buried nothing
        return claimed

    # The claim counts the claim only on an integer, so that the row keeps the value that makes it unreadable.
    _COUNT_CLAIM = "claims = CASE WHEN typeof(claims) = 'integer' THEN claims + 1 ELSE claims END"

    def _claim(
        self, conn: sqlite3.Connection, token: str, lease: float, unreadable: list[tuple[str, str]]
    ) -> Reservation | None:
        """Claim the next readable ready row; rows that cannot be read are dead-lettered and skipped (their
        message id and what was wrong are added to ``unreadable``, to be logged once the transaction ends)."""
        now = time.time()
        deadline = now + lease
        while True:
            if self._use_returning:
                row = conn.execute(
                    f"UPDATE tasks_q_message SET state = 1, {self._COUNT_CLAIM}, token = ?, deadline = ?, "
                    f"reserved_at = ? WHERE id = ({self._NEXT_READY}) "
                    "RETURNING id, message_id, CAST(data AS BLOB), claims, priority",
                    (token, deadline, now, self.name),
                ).fetchone()
            else:
                row = conn.execute(
                    "SELECT id, message_id, CAST(data AS BLOB), claims, priority FROM tasks_q_message "
                    "WHERE queue = ? AND state = 0 ORDER BY priority DESC, id LIMIT 1",
                    (self.name,),
                ).fetchone()
                if row is not None and not _unreadable(row[4], row[3]):
                    conn.execute(
                        "UPDATE tasks_q_message SET state = 1, claims = claims + 1, token = ?, deadline = ?, "
                        "reserved_at = ? WHERE id = ?",
                        (token, deadline, now, row[0]),
                    )
                    row = (*row[:3], row[3] + 1, row[4])
            if row is None:
                return None
            row_id, message_id, data, claims, priority = row
            problem = _unreadable(priority, claims)
            if not problem:
                return reservation_from_row((message_id, data, token, claims, deadline, now, priority))
            self._bury_unreadable(conn, row_id, problem)
            unreadable.append((str(message_id), problem))

    def _bury_unreadable(self, conn: sqlite3.Connection, row_id: int, problem: str) -> None:
        """Move a row that cannot be read to the dead letters, keeping what can be read of it."""
        conn.execute(
            "INSERT INTO tasks_q_dead (queue, letter_id, data, reason, detail, attempts, failed_at, priority) "
            "SELECT m.queue, lower(hex(randomblob(16))), CAST(m.data AS BLOB), ?, ?, "
            "CASE WHEN typeof(m.claims) = 'integer' THEN m.claims ELSE 0 END, ?, "
            "CASE WHEN typeof(m.priority) = 'integer' THEN m.priority END FROM tasks_q_message m WHERE m.id = ?",
            (UNREADABLE_RECORD, problem, time.time(), row_id),
        )
        conn.execute("DELETE FROM tasks_q_message WHERE id = ?", (row_id,))

    def _log_unreadable(self, unreadable: list[tuple[str, str]]) -> None:
        for message_id, problem in unreadable:
            log_unreadable_record(self.name, f"message row {message_id!r} in {self.filename!r}", problem)

    def ack_and_reserve(
        self, reservation: Reservation, result: ResultWrite | None, lease: float
    ) -> tuple[bool, Reservation | None]:
        """Delete the acknowledged row (writing its result) and claim the next one, in one write transaction."""
        if not reservation.token:
            return False, self.reserve(lease)
        now = time.time()
        if result is not None:
            key, value, ttl = result
            value = check_bytes(value, "result value")
            expires_at = expiry_time(ttl, now)
        token = new_token()
        unreadable: list[tuple[str, str]] = []

        def work(conn: sqlite3.Connection) -> tuple[bool, Reservation | None]:
            acked = (
                conn.execute(
                    f"DELETE FROM tasks_q_message WHERE {self._OWNED}", self._owned_args(reservation)
                ).rowcount
                == 1
            )
            if acked and result is not None:
                self._put(conn, key, value, True, expires_at)
                self._maybe_purge(conn, now)
            conn.execute("SAVEPOINT claim")
            try:
                following = self._claim(conn, token, lease, unreadable)
            except Exception:
                # The acknowledgement is committed whatever happens to the claim; the next reserve() retries.
                conn.execute("ROLLBACK TO claim")
                unreadable.clear()
                following = None
                _logger.warning(
                    "SQLite storage %r: claiming the next message failed after an acknowledgement; the "
                    "acknowledgement is kept",
                    self.name,
                    exc_info=True,
                )
            conn.execute("RELEASE claim")
            return acked, following

        outcome = self._write("acknowledge and reserve", work)
        self._log_unreadable(unreadable)
        return outcome

    _OWNED = "queue = ? AND message_id = ? AND state = 1 AND token = ?"

    def _owned_args(self, reservation: Reservation) -> tuple[str, str, str]:
        return (self.name, reservation.message_id, reservation.token)

    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        """Delete the row if the token matches and write the result, in one write transaction."""
        if not reservation.token:
            return False
        now = time.time()
        if result is not None:
            key, value, ttl = result
            value = check_bytes(value, "result value")
            expires_at = expiry_time(ttl, now)

        def work(conn: sqlite3.Connection) -> bool:
            deleted = conn.execute(
                f"DELETE FROM tasks_q_message WHERE {self._OWNED}", self._owned_args(reservation)
            ).rowcount
            if deleted != 1:
                return False
            if result is not None:
                self._put(conn, key, value, True, expires_at)
                self._maybe_purge(conn, now)
            return True

        return self._write("acknowledge", work)

    def renew(self, reservation: Reservation, lease: float) -> bool:
        """Move the deadline if the token matches (one ``UPDATE``)."""
        if not reservation.token:
            return False

        def work(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute(
                    f"UPDATE tasks_q_message SET deadline = ? WHERE {self._OWNED}",
                    (time.time() + lease, *self._owned_args(reservation)),
                ).rowcount
                == 1
            )

        return self._write("renew a lease", work)

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        """Make the row ready again (same id, so same place) if the token matches; one ``UPDATE``."""
        if not reservation.token:
            return False
        claims = "claims" if count_attempt else "MAX(claims - 1, 0)"

        def work(conn: sqlite3.Connection) -> bool:
            return (
                conn.execute(
                    f"UPDATE tasks_q_message SET state = 0, claims = {claims}, token = NULL, deadline = NULL, "
                    f"reserved_at = NULL WHERE {self._OWNED}",
                    self._owned_args(reservation),
                ).rowcount
                == 1
            )

        released = self._write("release", work)
        if released:
            self._wake_waiters()
        return released

    def _bury_row(
        self, conn: sqlite3.Connection, row_id: int, reason: str, detail: str, failed_at: float
    ) -> None:
        conn.execute(
            "INSERT INTO tasks_q_dead (queue, letter_id, data, reason, detail, attempts, failed_at, priority) "
            "SELECT m.queue, CASE WHEN EXISTS (SELECT 1 FROM tasks_q_dead d WHERE d.queue = m.queue "
            "AND d.letter_id = m.message_id) THEN lower(hex(randomblob(16))) ELSE m.message_id END, "
            "m.data, ?, ?, m.claims, ?, m.priority FROM tasks_q_message m WHERE m.id = ?",
            (reason, detail, failed_at, row_id),
        )
        conn.execute("DELETE FROM tasks_q_message WHERE id = ?", (row_id,))

    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        """Copy the row to the dead letters and delete it if the token matches, in one write transaction."""
        if not reservation.token:
            return False

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                f"SELECT id FROM tasks_q_message WHERE {self._OWNED}", self._owned_args(reservation)
            ).fetchone()
            if row is None:
                return False
            self._bury_row(conn, row[0], str(reason), str(detail), time.time())
            return True

        return self._write("bury", work)

    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        """Reclaim expired rows in one write transaction: back to ready (same id) or to the dead letters."""
        moment = float(now)

        def has_expired(conn: sqlite3.Connection) -> bool:
            return bool(
                conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM tasks_q_message WHERE queue = ? AND state = 1 AND deadline <= ?)",
                    (self.name, moment),
                ).fetchone()[0]
            )

        if not self._read("reclaim expired leases", has_expired):
            return []
        unreadable: list[tuple[str, str]] = []

        def work(conn: sqlite3.Connection) -> list[Reclaimed]:
            rows = conn.execute(
                "SELECT id, message_id, data, token, claims, deadline, reserved_at, priority FROM tasks_q_message "
                "WHERE queue = ? AND state = 1 AND deadline <= ? ORDER BY deadline, id",
                (self.name, moment),
            ).fetchall()
            failed_at = time.time()

            def problem_of(row: Sequence[Any]) -> str:
                reserved_at = row[6]
                problem = _unreadable(row[7], row[4], claimed=False)
                if type(reserved_at) not in (int, float):
                    problem = "; ".join(filter(None, [problem, f"reserved_at {reserved_at!r} is not a time"]))
                return problem

            def bury_unreadable(row: Sequence[Any], problem: str) -> None:
                self._bury_unreadable(conn, row[0], problem)
                unreadable.append((str(row[1]), problem))

            def bury(row: Sequence[Any], reservation: Reservation, reason: str, detail: str) -> None:
                self._bury_row(conn, row[0], reason, detail, failed_at)

            reclaimed, back_rows = reclaim_expired_rows(
                rows, problem_of, bury_unreadable, bury, max_attempts, max_reclaims, progress_span
            )
            back = [(row[0],) for row in back_rows]
            conn.executemany(
                "UPDATE tasks_q_message SET state = 0, token = NULL, deadline = NULL, reserved_at = NULL "
                "WHERE id = ?",
                back,
            )
            return reclaimed

        reclaimed = self._write("reclaim expired leases", work)
        self._log_unreadable(unreadable)
        if reclaimed:
            self._wake_waiters()
        return reclaimed

    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        """Current reservations, earliest deadline first."""
        rows = self._query(
            "list reservations",
            "SELECT message_id, data, token, claims, deadline, reserved_at, priority FROM tasks_q_message "
            "WHERE queue = ? AND state = 1 ORDER BY deadline, id LIMIT ?",
            (self.name, limit_param(limit)),
        )
        return [reservation_from_row(row) for row in rows]

    def in_flight_size(self) -> int:
        """Count reservations."""
        return self._count(
            "count reservations",
            "SELECT COUNT(*) FROM tasks_q_message WHERE queue = ? AND state = 1", (self.name,)
        )

    # ------------------------------------------------------------------ dead letters

    def _add_dead_letter(self, data: bytes, reason: str, detail: str, attempts: int, priority: int | None) -> str:
        letter_id = new_token()
        self._write(
            "add a dead letter",
            lambda conn: conn.execute(
                "INSERT INTO tasks_q_dead (queue, letter_id, data, reason, detail, attempts, failed_at, priority) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (self.name, letter_id, data, reason, detail, attempts, time.time(), priority),
            ),
        )
        return letter_id

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first."""
        rows = self._query(
            "list dead letters",
            "SELECT letter_id, data, reason, detail, attempts, failed_at, priority FROM tasks_q_dead "
            "WHERE queue = ? ORDER BY id LIMIT ?",
            (self.name, limit_param(limit)),
        )
        return [dead_letter_from_row(row) for row in rows]

    def dead_letter_count(self) -> int:
        """Count dead letters."""
        return self._count(
            "count dead letters",
            "SELECT COUNT(*) FROM tasks_q_dead WHERE queue = ?", (self.name,)
        )

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        """``INSERT … SELECT`` the letter into the queue (claims 0, new id: back of its priority), then delete it."""

        def work(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT id FROM tasks_q_dead WHERE queue = ? AND letter_id = ?", (self.name, dead_letter_id)
            ).fetchone()
            if row is None:
                return False
            taken = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM tasks_q_message WHERE queue = ? AND message_id = ?)",
                (self.name, dead_letter_id),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO tasks_q_message (queue, message_id, data, priority) "
                "SELECT queue, ?, data, COALESCE(priority, 0) FROM tasks_q_dead WHERE id = ?",
                (new_token() if taken else dead_letter_id, row[0]),
            )
            conn.execute("DELETE FROM tasks_q_dead WHERE id = ?", (row[0],))
            return True

        return self._write("requeue a dead letter", work)

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        """Delete dead letters by id and/or age, in one write transaction."""
        id_list = None if ids is None else list(dict.fromkeys(str(i) for i in ids))
        if id_list == []:
            return 0

        def work(conn: sqlite3.Connection) -> int:
            age = "" if older_than is None else " AND failed_at < ?"
            age_args: tuple[Any, ...] = () if older_than is None else (float(older_than),)
            if id_list is None:
                return conn.execute(
                    f"DELETE FROM tasks_q_dead WHERE queue = ?{age}", (self.name, *age_args)
                ).rowcount
            deleted = 0
            for chunk in chunks(id_list):
                deleted += conn.execute(
                    f"DELETE FROM tasks_q_dead WHERE queue = ? AND letter_id IN ({placeholders(len(chunk), '?')}){age}",
                    (self.name, *chunk, *age_args),
                ).rowcount
            return deleted

        return self._write("purge dead letters", work)
