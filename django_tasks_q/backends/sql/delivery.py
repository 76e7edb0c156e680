"""Reliable delivery on both SQL storages: the claim, acknowledgement, lease renewal and release, the reaper,
and the dead letters.

The claim is one ``UPDATE … RETURNING`` where the database has it (PostgreSQL with ``FOR UPDATE SKIP
LOCKED`` in its sub-select; SQLite, where the statement holds the write lock from its start), or a
``SELECT … FOR UPDATE [SKIP LOCKED]`` then an ``UPDATE`` in one short transaction (MariaDB/MySQL). It counts
``attempts`` up only below the column's maximum, so a row at the maximum cannot make the statement fail; a
claimed row that cannot be read (see :func:`~django_tasks_q.backends.sql.core.unreadable_problems`) is moved
to the dead letters (reason ``unreadable_record``, logged once after the commit) and the claim goes on with
the next row, as the reaper does for such an in-flight row. With these guards a claim cannot fail on another
message's row, so ``ack_and_reserve`` keeps the acknowledgement and the claim in one transaction.

``ack``, ``renew`` and ``release`` are single ``UPDATE``/``DELETE`` statements whose ``WHERE`` checks the
fencing token. A message's id is its row's id, so a reservation keeps its place in the queue.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ..base import (
    UNREADABLE_RECORD,
    DeadLetter,
    EmptyData,
    EmptyDataType,
    Reclaimed,
    Reservation,
    ResultWrite,
    check_bytes,
    check_key,
    expiry_time,
    log_unreadable_record,
    new_token,
)
from .core import (
    READY,
    chunks,
    dead_letter_from_row,
    placeholders,
    reclaim_expired_rows,
    reservation_from_row,
    unreadable_problems,
)
from .data import SqlDataArea, hash_key

__all__ = ["SqlDelivery"]

REASON_MAX_LENGTH = 191
"""The longest dead-letter reason the column holds."""

_TOKEN_RE = re.compile(r"[0-9a-f]{32}")

_PEEK_COLUMN = (
    ", (SELECT {value} FROM {kv} WHERE {queue} = %s AND {key_hash} = %s "
    "AND ({expires_at} IS NULL OR {expires_at} > %s))"
)
"""A column of the claim's ``RETURNING``: the live value of one ``peek`` key (``NULL`` when there is none)."""


@functools.cache
def _claim_template(action: str, returning: str, lock: str) -> str:
    """The claim of the next ready row (``action``: its ``UPDATE … SET`` or ``DELETE``), made once: the same
    string every time, whose statement the transport finds at once."""
    return (
        f"{action} WHERE {{id}} = (SELECT {{id}} FROM {{msg}} WHERE {{queue}} = %s AND {{state}} = {{ready}} "
        f"ORDER BY {{priority}} DESC, {{id}} LIMIT 1{lock}) AND {{state}} = {{ready}} RETURNING {returning}"
    )


def _peek_params(queue: str, hashes: Sequence[str], now: float) -> list[Any]:
    """The parameters of the claim's :data:`_PEEK_COLUMN` columns."""
    return [value for key_hash in hashes for value in (queue, key_hash, now)]


def _checked_result(result: ResultWrite) -> tuple[str, bytes, float | None]:
    """A result to write with an acknowledgement, checked, with its ttl turned into an expiry time."""
    key, value, ttl = result
    return check_key(key), check_bytes(value, "result value"), expiry_time(ttl, time.time())


def _as_bytes(data: Any) -> bytes:
    """A message's bytes as read from the database (text, where a column holds text, as UTF-8)."""
    return data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)


def message_pk(message_id: object) -> int | None:
    """The row id a message or dead-letter id names, or ``None`` for one that names no row."""
    if isinstance(message_id, str) and message_id.isascii() and message_id.isdigit() and len(message_id) < 19:
        return int(message_id)
    return None


class SqlDelivery(SqlDataArea):
    """Reliable delivery and dead letters (see the module documentation)."""

    def _insert_message(
        self,
        conn: Any,
        data: bytes,
        priority: int,
        now: float,
        created_at: float | None = None,
    ) -> None:
        """Insert a ready message, waking listeners in other processes at commit where the database can."""
        self._execute(
            conn,
            *self._dialect.insert_and_notify(
                self._INSERT_MESSAGE,
                [self.name, data, priority, READY, "", 0, now if created_at is None else created_at],
                self.channel,
            ),
        )

    _INSERT_MESSAGE = (
        "INSERT INTO {msg} ({queue}, {data}, {priority}, {state}, {token}, {attempts}, {created_at}) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)"
    )

    def _claim_sql_returning(self, conn: Any, action: str, returning: str) -> str:
        return _claim_template(action, returning, self._dialect.lock_clause(skip_locked=True))

    def _next_ready_locked(self, conn: Any) -> tuple[Any, ...] | None:
        """MariaDB/MySQL: lock the next ready row (inside a transaction) and return (id, data, attempts, priority)."""
        return self._fetchone(
            conn,
            "SELECT {id}, {data}, {attempts}, {priority} FROM {msg} WHERE {queue} = %s AND {state} = {ready} "
            "ORDER BY {priority} DESC, {id} LIMIT 1" + self._dialect.lock_clause(skip_locked=True),
            [self.name],
        )

    # ================================================================== reliable delivery

    def _reserve(self, conn: Any, lease: float, peek: Sequence[str] = ()) -> Reservation | None:
        token = new_token()
        now = time.time()
        deadline = now + lease
        contended = 0
        while True:
            if self._dialect.returning:
                params = [token, self._schema.int_max, deadline, now, self.name]
                returning = "{id}, {data}, {attempts}, {priority}"
                if peek:
                    hashes = self._peek_hashes(peek)
                    returning += _PEEK_COLUMN * len(hashes)
                    params += _peek_params(self.name, hashes, now)
                row = self._fetchone(
                    conn,
                    self._claim_sql_returning(
                        conn,
                        "UPDATE {msg} SET {state} = {in_flight}, {token} = %s, "
                        "{attempts} = CASE WHEN {attempts} < %s THEN {attempts} + 1 ELSE {attempts} END, "
                        "{deadline} = %s, {reserved_at} = %s",
                        returning,
                    ),
                    params,
                )
                if row is None:
                    return None
                message_id, data, attempts, priority, *values = row
                problem = unreadable_problems(self._schema, priority, attempts)
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
                    problem = unreadable_problems(self._schema, priority, attempts + 1 if type(attempts) is int else attempts)
                    if problem:
                        self._bury_unreadable(conn, message_id, data, attempts, priority, problem)
                        continue
                    attempts += 1
                    claimed = self._execute(
                        conn,
                        "UPDATE {msg} SET {state} = {in_flight}, {token} = %s, {attempts} = %s, "
                        "{deadline} = %s, {reserved_at} = %s WHERE {id} = %s AND {state} = {ready}",
                        [token, attempts, deadline, now, message_id],
                    )
                if claimed != 1:
                    contended += 1
                    if contended >= 10:  # pragma: no cover - extreme contention without SKIP LOCKED
                        return None
                    continue
            if not peek:
                peeked = None
            elif self._dialect.returning:  # read by the claim itself
                peeked = tuple(EmptyData if value is None else bytes(value) for value in values)
            else:
                peeked = self._peek_after_claim(conn, peek)
            return reservation_from_row(
                (message_id, _as_bytes(data), token, attempts, deadline, now, priority), peeked
            )

    def _bury_unreadable(
        self, conn: Any, pk: Any, data: Any, attempts: Any, priority: Any, problem: str
    ) -> None:
        """Inside a transaction: move a row that cannot be read to the dead letters, keeping what can be read
        of it, and log it once that transaction commits."""
        self._execute(conn, "DELETE FROM {msg} WHERE {id} = %s", [pk])
        counted = attempts if type(attempts) is int and 0 <= attempts <= self._schema.int_max else 0
        kept_priority = priority if type(priority) is int and -self._schema.int_max - 1 <= priority <= self._schema.int_max else None
        self._insert_dead(conn, _as_bytes(data), UNREADABLE_RECORD, problem, counted, kept_priority, None)
        where = self._message_row_place(pk)
        self._after_commit(conn, lambda: log_unreadable_record(self.name, where, problem))

    def _peek_hashes(self, keys: Sequence[str]) -> tuple[str, ...]:
        """The hashes of the ``peek`` keys (the same few keys with every claim: computed once)."""
        if not keys:
            return ()
        keys = tuple(keys)
        hashes = self._peek_hash_cache.get(keys)
        if hashes is None:
            hashes = tuple(hash_key(check_key(key)) for key in keys)
            if len(self._peek_hash_cache) < 16:
                self._peek_hash_cache[keys] = hashes
        return hashes

    def _peek_after_claim(self, conn: Any, keys: Sequence[str]) -> tuple[bytes | EmptyDataType, ...]:
        """The live values of ``keys``, read right after the claim on the same connection (in its transaction
        when there is one): a value written before the claim is always seen, which is what the hub's
        revocation marker needs (the feature ``peek_on_reserve``)."""
        return tuple(self._values_in_order(conn, [hash_key(check_key(key)) for key in keys]))

    def reserve(self, lease: float, peek: Sequence[str] = ()) -> Reservation | None:
        """Claim the next ready message for ``lease`` seconds (see the claim statements above), or ``None``;
        the values of the ``peek`` keys come with it (the feature ``peek_on_reserve``)."""
        if lease <= 0:
            raise ValueError(f"lease must be > 0 seconds, got {lease!r}")
        return self._run("reserve", self._reserve, float(lease), tuple(peek))

    def _owned_params(self, reservation: Reservation) -> list[Any] | None:
        """``[id, queue, token]`` for the WHERE clause that checks ownership, or ``None`` for a forged one."""
        pk = message_pk(reservation.message_id)
        token = reservation.token
        if pk is None or not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            return None
        return [pk, self.name, token]

    _OWNED = "{id} = %s AND {queue} = %s AND {state} = {in_flight} AND {token} = %s"
    _DELETE_OWNED = "DELETE FROM {msg} WHERE " + _OWNED

    def _ack(self, conn: Any, owned: list[Any], result: tuple[str, bytes, float | None] | None) -> bool:
        with self._txn(conn):
            if self._execute(conn, self._DELETE_OWNED, owned) != 1:
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
            acked = self._execute(conn, self._DELETE_OWNED, owned) == 1
            if acked and result is not None:
                key, value, expires_at = result
                self._upsert_value(conn, key, value, True, expires_at, time.time())
            return acked, self._claim_after_ack(conn, lease, peek)

    def _claim_after_ack(self, conn: Any, lease: float, peek: Sequence[str]) -> Reservation | None:
        """The claim of ``ack_and_reserve``, in the transaction of the acknowledgement."""
        return self._reserve(conn, lease, peek)

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
                    "UPDATE {msg} SET {state} = {ready}, {token} = '', {deadline} = NULL, "
                    "{reserved_at} = NULL, {attempts} = {attempts} - %s WHERE " + self._OWNED,
                    [uncount, *owned],
                ),
            )
            == 1
        )
        if released:
            self._notify_now()
        return released

    def _notify(self, conn: Any) -> None:
        """Wake this queue's listeners in other processes when the transaction commits (PostgreSQL)."""
        notify = self._dialect.notify(self.channel)
        if notify is not None:
            self._execute(conn, *notify)

    def _notify_now(self) -> None:
        """Wake listeners in other processes (PostgreSQL) and waiters in this one."""
        if self._dialect.notify(self.channel) is not None:
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
        return str(self._insert_returning_id(conn, insert, params))

    def _bury(self, conn: Any, owned: list[Any], reason: str, detail: str) -> bool:
        with self._txn(conn):
            row = self._fetchone(
                conn,
                "SELECT {data}, {priority}, {attempts}, {created_at} FROM {msg} WHERE "
                + self._OWNED
                + self._dialect.lock_clause(),
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
                "FROM {msg} WHERE {queue} = %s AND {state} = {in_flight} AND {deadline} <= %s "
                "ORDER BY {deadline}, {id}" + self._dialect.lock_clause(skip_locked=True),
                [self.name, now],
            )
            dead: list[int] = []

            def bury_unreadable(row: Sequence[Any], problem: str) -> None:
                self._bury_unreadable(conn, row[0], row[2], row[4], row[7], problem)

            def bury(row: Sequence[Any], reservation: Reservation, reason: str, detail: str) -> None:
                self._insert_dead(conn, reservation.data, reason, detail, row[4], row[7], row[8])
                dead.append(row[0])

            reclaimed, back_rows = reclaim_expired_rows(
                [(row[0], *row) for row in rows],
                lambda row: unreadable_problems(self._schema, row[7], row[4], claimed=False),
                bury_unreadable,
                bury,
                max_attempts,
                max_reclaims,
                progress_span,
            )
            back = [row[0] for row in back_rows]
            for chunk in chunks(back):
                self._execute(
                    conn,
                    "UPDATE {msg} SET {state} = {ready}, {token} = '', {deadline} = NULL, "
                    "{reserved_at} = NULL WHERE {id} IN (" + placeholders(len(chunk)) + ")",
                    chunk,
                )
            for chunk in chunks(dead):
                self._execute(
                    conn, "DELETE FROM {msg} WHERE {id} IN (" + placeholders(len(chunk)) + ")", chunk
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

        sql = (
            "SELECT {id}, {data}, {token}, {attempts}, {deadline}, {reserved_at}, {priority} FROM {msg} "
            "WHERE {queue} = %s AND {state} = {in_flight} ORDER BY {deadline}, {id}"
        )
        rows = self._run("in_flight_items", self._fetch_limited, sql, [self.name], limit)
        return [reservation_from_row(row) for row in rows]

    def in_flight_size(self) -> int:
        """Count the reservations."""
        return self._count(
            "in_flight_size",
            "SELECT COUNT(*) FROM {msg} WHERE {queue} = %s AND {state} = {in_flight}",
            [self.name],
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
        """Insert a dead letter and return its new id."""
        data = check_bytes(data, "data")
        prio = None if priority is None else self._schema.bounded_priority(priority)
        return self._run(
            "add_dead_letter", self._insert_dead, data, str(reason), str(detail), int(attempts), prio, None
        )

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """The dead letters, oldest first (up to ``limit``)."""
        if limit is not None and limit <= 0:
            return []

        sql = (
            "SELECT {id}, {data}, {reason}, {detail}, {attempts}, {failed_at}, {priority} FROM {dead} "
            "WHERE {queue} = %s ORDER BY {id}"
        )
        rows = self._run("dead_letters", self._fetch_limited, sql, [self.name], limit)
        return [dead_letter_from_row(row) for row in rows]

    def dead_letter_count(self) -> int:
        """Count the dead letters."""
        return self._count(
            "dead_letter_count",
            "SELECT COUNT(*) FROM {dead} WHERE {queue} = %s", [self.name],
        )

    def _requeue_dead(self, conn: Any, pk: int) -> bool:
        with self._txn(conn):
            row = self._fetchone(
                conn,
                "SELECT {data}, {priority} FROM {dead} WHERE {id} = %s AND {queue} = %s"
                + self._dialect.lock_clause(),
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
        pk = message_pk(dead_letter_id)
        if pk is None:
            return False
        return self._run("requeue_dead_letter", self._requeue_dead, pk)

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        """Delete dead letters by id and/or age (see the contract); return how many went."""
        pks: list[int] | None = None
        if ids is not None:
            pks = sorted({pk for pk in map(message_pk, ids) if pk is not None})
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
                for chunk in chunks(pks):
                    deleted += self._execute(
                        conn,
                        "DELETE FROM {dead} WHERE {queue} = %s AND {id} IN ("
                        + placeholders(len(chunk))
                        + ")"
                        + age,
                        [self.name, *chunk, *age_params],
                    )
            return deleted

        return self._run("purge_dead_letters", purge)
