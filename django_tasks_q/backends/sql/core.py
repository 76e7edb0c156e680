"""The SQL queue core: what the SQLite storage and the ORM storage share.

Both storages run the same reliable-queue algorithm on one message table that holds ready and in-flight rows
(a state column tells them apart, a reservation keeps its row and so its place), a schedule table, a
key/value table, a counter table and a dead-letter table. This module holds what does not depend on how a
statement reaches the database: the columns every statement names and the description of each storage's
tables (:class:`Schema`: only their names and integer width differ), the checks of a row read back from the
message table, the row mappers to the contract's :class:`~django_tasks_q.backends.base.Reservation` and
:class:`~django_tasks_q.backends.base.DeadLetter`, the reaper's decision for each expired reservation, and the
views of the key/value area that the contract names (results, counts, flushes).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, TypeVar

from ..base import (
    DeadLetter,
    Reclaimed,
    Reservation,
    bounded_priority,
    expired_verdict,
    made_progress,
)
from ..watch import ChangeWatch

__all__ = [
    "CHUNK",
    "COLUMNS",
    "IN_FLIGHT",
    "READY",
    "SQLITE_FILE_SCHEMA",
    "MessageWaiting",
    "Schema",
    "chunks",
    "dead_letter_from_row",
    "orm_schema",
    "placeholders",
    "reclaim_expired_rows",
    "reservation_from_row",
    "unreadable_problems",
]

T = TypeVar("T")

CHUNK = 500
"""Ids per ``IN (...)`` list: far below every database's limit on bound parameters."""


READY = "ready"
"""The state of a message waiting to be claimed."""
IN_FLIGHT = "in_flight"
"""The state of a claimed message (a reservation)."""

COLUMNS = (
    *("id", "queue", "data", "priority", "state", "token", "attempts", "deadline", "reserved_at", "created_at"),
    *("eta", "reason", "detail", "failed_at", "key_hash", "key", "value", "is_result", "expires_at", "updated_at"),
)
"""The columns the statement templates name (``{queue}`` ...): the same in both storages' tables."""

TABLE_ALIASES = ("msg", "sched", "dead", "kv", "counter")
"""How the statement templates name the tables (``{msg}`` ...), in the order of :attr:`Schema.tables`."""


@dataclass(frozen=True)
class Schema:
    """The one thing in which the two storages' tables differ: their names (the ORM storage's come from the
    models, the SQLite storage's start with ``tasks_q_``), and the width of the integer columns (priority and
    attempts: 32 bits in the ORM storage's model fields, 64 bits in a SQLite file)."""

    message: str
    schedule: str
    kv: str
    counter: str
    dead: str
    int_bits: int

    @property
    def tables(self) -> tuple[str, str, str, str, str]:
        """Every table, in the order ``flush_all`` empties them."""
        return (self.message, self.schedule, self.dead, self.kv, self.counter)

    @cached_property
    def int_max(self) -> int:
        """The largest value of the integer columns."""
        return 2 ** (self.int_bits - 1) - 1

    def bounded_priority(self, priority: int | None) -> int:
        """``priority`` checked to fit the priority column (``None`` is 0)."""
        where = "in a 64-bit integer" if self.int_bits == 64 else "the database column (a 32-bit integer)"
        return bounded_priority(priority, self.int_bits, where)

    def template_names(self, quote: Callable[[str], str]) -> dict[str, str]:
        """What ``{msg}``, ``{queue}``, ``{ready}`` ... stand for in the statement templates."""
        names = {alias: quote(table) for alias, table in zip(TABLE_ALIASES, self.tables, strict=True)}
        names.update({column: quote(column) for column in COLUMNS})
        names.update(ready=f"'{READY}'", in_flight=f"'{IN_FLIGHT}'")
        return names


SQLITE_FILE_SCHEMA = Schema(
    message="tasks_q_message",
    schedule="tasks_q_schedule",
    kv="tasks_q_kv",
    counter="tasks_q_counter",
    dead="tasks_q_dead",
    int_bits=64,
)
"""The tables of :class:`~django_tasks_q.backends.sqlite.SqliteStorage` (created by the storage itself)."""


def orm_schema() -> Schema:
    """The tables of the ORM storage, named by the models that ``migrate`` creates them from."""
    from django_tasks_q.orm_models import Counter, DeadLetterMessage, KeyValue, QueueMessage, ScheduledMessage

    return Schema(
        message=QueueMessage._meta.db_table,
        schedule=ScheduledMessage._meta.db_table,
        kv=KeyValue._meta.db_table,
        counter=Counter._meta.db_table,
        dead=DeadLetterMessage._meta.db_table,
        int_bits=32,
    )


def unreadable_problems(schema: Schema, priority: object, attempts: object, claimed: bool = True) -> str:
    """What is wrong with a message row's priority and attempts as read ('' when both are usable).

    Both must be integers that fit their columns (SQLite stores whatever is written into a column, and a
    column may have been changed by hand); the count of a ``claimed`` row must also stay below the column's
    maximum, to be counted up again.
    """
    top = schema.int_max
    problems = []
    if type(priority) is not int or not -top - 1 <= priority <= top:
        problems.append(f"priority {priority!r} is not a {schema.int_bits}-bit integer")
    if type(attempts) is not int or attempts < 0:
        problems.append(f"attempts {attempts!r} is not a count")
    elif claimed and attempts >= top:
        problems.append(f"attempts {attempts!r} is at the column's maximum and cannot be counted up")
    return "; ".join(problems)


def reservation_from_row(row: Sequence[Any], peeked: tuple[Any, ...] | None = None) -> Reservation:
    """A reservation from ``(message id, data, token, attempts, deadline, reserved_at, priority)``, with the
    values of the keys read with the claim (``peeked``).

    A row reserved before ``reserved_at`` was recorded reads as reserved at its deadline (no progress).
    """
    message_id, data, token, attempts, deadline, reserved_at, priority = row
    return Reservation(
        message_id=str(message_id),
        data=bytes(data),
        token=token,
        attempt=int(attempts),
        deadline=float(deadline),
        reserved_at=float(deadline if reserved_at is None else reserved_at),
        priority=int(priority),
        peeked=peeked,
    )


def dead_letter_from_row(row: Sequence[Any]) -> DeadLetter:
    """A dead letter from ``(letter id, data, reason, detail, attempts, failed_at, priority)``."""
    letter_id, data, reason, detail, attempts, failed_at, priority = row
    return DeadLetter(
        id=str(letter_id),
        data=bytes(data),
        reason=reason,
        detail=detail,
        attempts=int(attempts),
        failed_at=float(failed_at),
        priority=None if priority is None else int(priority),
    )


def reclaim_expired_rows(
    rows: Iterable[Sequence[Any]],
    problem_of: Callable[[Sequence[Any]], str],
    bury_unreadable: Callable[[Sequence[Any], str], None],
    bury: Callable[[Sequence[Any], Reservation, str, str], None],
    max_attempts: int | None,
    max_reclaims: int | None,
    progress_span: float | None,
) -> tuple[list[Reclaimed], list[Sequence[Any]]]:
    """The reaper's decision for each expired reservation, in the rows' order.

    Each row is ``(key, message id, data, token, attempts, deadline, reserved_at, priority, ...)``: the key
    (and anything after the priority) is the storage's own. A row ``problem_of`` finds unreadable goes to
    ``bury_unreadable``; one that reached its attempt or reclaim limit goes to ``bury`` with the verdict's reason
    and detail; the others are returned as the rows to make ready again.
    """
    reclaimed: list[Reclaimed] = []
    back: list[Sequence[Any]] = []
    for row in rows:
        problem = problem_of(row)
        if problem:
            bury_unreadable(row, problem)
            continue
        reservation = reservation_from_row(row[1:8])
        progressed = made_progress(reservation.deadline, reservation.reserved_at, progress_span)
        verdict = expired_verdict(reservation.attempt, progressed, max_attempts, max_reclaims)
        if verdict is None:
            back.append(row)
            reclaimed.append(Reclaimed(reservation, False))
        else:
            bury(row, reservation, *verdict)
            reclaimed.append(Reclaimed(reservation, True, verdict[0]))
    return reclaimed, back


def chunks(values: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most ``size``."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def placeholders(count: int, mark: str = "%s") -> str:
    """``count`` comma-separated parameter marks."""
    return ", ".join([mark] * count)


class MessageWaiting:
    """``wait_for_messages`` on a :class:`~django_tasks_q.backends.watch.ChangeWatch` of the database, made
    once per process by the storage's ``_make_watch`` (a forked child makes its own), and woken at once by the
    writes of this process (``_wake_waiters``)."""

    _watch: ChangeWatch | None = None
    _watch_pid: int = 0
    _watch_lock: threading.Lock

    def _make_watch(self) -> ChangeWatch:
        """The change watch of this storage's database; each transport (Django's connections, sqlite3)
        defines its own."""
        raise NotImplementedError(f"{type(self).__name__} must define _make_watch()")

    def wait_for_messages(self, timeout: float, wake: threading.Event | None = None) -> bool:
        """Wait up to ``timeout`` seconds for a change that may have made a message ready (or for ``wake``);
        the storage's module documentation says how each database is watched."""
        return self._change_watch().wait(timeout, wake)

    def _change_watch(self) -> ChangeWatch:
        watch = self._watch
        if watch is not None and self._watch_pid == os.getpid():
            return watch
        with self._watch_lock:
            if self._watch is None or self._watch_pid != os.getpid():
                self._watch = self._make_watch()
                self._watch_pid = os.getpid()
            return self._watch

    def _wake_waiters(self) -> None:
        watch = self._watch
        if watch is not None and self._watch_pid == os.getpid():
            watch.notify()
