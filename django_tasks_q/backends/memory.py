"""In-memory storage: the whole contract, in one process, for tests and development.

**Not durable and not shared.** Everything lives in the memory of the process that created the storage: it is
lost when the process ends, and a consumer started as a separate process (``run_tasks``) cannot see it, which
is why ``run_tasks`` refuses this storage. Use it for tests, ``IMMEDIATE`` mode, and a consumer running in
threads of the same process.

Within the process it implements every method of :class:`~django_tasks_q.backends.base.BaseStorage`
natively, including reliable delivery and dead letters, each one atomic under a single re-entrant lock, so it
also serves as the reference implementation of the contract.

Layout: the ready queue is a heap ordered by ``(-priority, sequence)``; a message keeps its sequence number for
life, so ``release`` and ``requeue_expired`` put it back exactly where it was. The schedule is a heap ordered by
``(timestamp, sequence)``. Key/value entries and counters carry an optional expiry time; expired entries are
dropped when touched and swept on writes.

``dequeue`` and ``reserve`` block for up to ``block_timeout`` seconds when the queue is empty and return as soon
as a message arrives (``blocking = True``), so an idle consumer thread reacts to an enqueue immediately.
``wait_result`` likewise wakes as soon as the value is written.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from django_tasks_q.backends.base import (
    BaseStorage,
    DeadLetter,
    EmptyData,
    EmptyDataType,
    Feature,
    Reclaimed,
    Reservation,
    ResultWrite,
    check_bytes,
    check_key,
    expired_verdict,
    expiry_time,
    is_live,
    made_progress,
    new_token,
    normalize_priority,
    schedule_time,
)

__all__ = ["MemoryStorage"]


@dataclass(slots=True)
class _Message:
    message_id: str
    data: bytes
    priority: int
    seq: int
    claims: int = 0


@dataclass(slots=True)
class _Lease:
    message: _Message
    token: str
    deadline: float
    reserved_at: float

    def as_reservation(self) -> Reservation:
        msg = self.message
        return Reservation(
            message_id=msg.message_id,
            data=msg.data,
            token=self.token,
            attempt=msg.claims,
            deadline=self.deadline,
            reserved_at=self.reserved_at,
            priority=msg.priority,
        )


@dataclass(slots=True)
class _Entry:
    value: bytes
    is_result: bool
    expires_at: float | None


@dataclass(slots=True)
class _Counter:
    value: int
    expires_at: float | None


_Expiring = TypeVar("_Expiring", _Entry, _Counter)


def _live(table: dict[str, _Expiring], key: str, now: float) -> _Expiring | None:
    """The table's item for ``key`` unless it has expired; an expired item is dropped from the table."""
    item = table.get(key)
    if item is not None and not is_live(item.expires_at, now):
        del table[key]
        return None
    return item


def _checked_write(key: str, value: bytes, ttl: float | None) -> tuple[str, bytes, float, float | None]:
    """A checked write of ``value`` under ``key``: ``(key, value, now, expires_at)``."""
    now = time.time()
    return check_key(key), check_bytes(value, "value"), now, expiry_time(ttl, now)


class MemoryStorage(BaseStorage):
    """Thread-safe, non-durable storage in this process's memory (see the module documentation).

    ``block_timeout``: how long (seconds) ``dequeue`` / ``reserve`` wait for a message on an empty queue;
    ``0`` makes them return at once.
    """

    blocking = True
    priority = True
    features = frozenset({Feature.RELIABLE, Feature.DEAD_LETTERS, Feature.COUNTERS, Feature.KEY_LISTING,
                          Feature.REAP_BY_PROGRESS, Feature.PROCESS_LOCAL})

    def __init__(self, name: str = "huey", block_timeout: float = 1.0, **storage_kwargs: Any) -> None:
        super().__init__(name, **storage_kwargs)
        if block_timeout < 0:
            raise ValueError("block_timeout must be >= 0")
        self.block_timeout = float(block_timeout)
        self._lock = threading.RLock()
        self._ready_changed = threading.Condition(self._lock)
        self._data_changed = threading.Condition(self._lock)
        self._seq = itertools.count()
        self._ready: list[tuple[int, int, _Message]] = []
        self._schedule: list[tuple[float, int, bytes, int]] = []
        self._data: dict[str, _Entry] = {}
        self._counters: dict[str, _Counter] = {}
        self._expiries: list[tuple[float, int, str]] = []  # (expires_at, 0=data / 1=counter, key)
        self._in_flight: dict[str, _Lease] = {}
        self._dead: dict[str, DeadLetter] = {}

    # ------------------------------------------------------------------ internals (call with the lock held)

    def _push_ready(self, message: _Message) -> None:
        heapq.heappush(self._ready, (-message.priority, message.seq, message))

    def _new_message(self, data: bytes, priority: int, message_id: str | None = None) -> _Message:
        return _Message(message_id or new_token(), data, priority, next(self._seq))

    def _wait_for_ready(self) -> bool:
        """Wait up to ``block_timeout`` for a ready message; return whether there is one."""
        if self._ready or self.block_timeout <= 0:
            return bool(self._ready)
        deadline = time.monotonic() + self.block_timeout
        while not self._ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._ready_changed.wait(remaining)
        return True

    def _sweep(self, now: float) -> None:
        """Drop entries whose expiry time has passed (stale heap records are skipped)."""
        while self._expiries and self._expiries[0][0] <= now:
            _, kind, key = heapq.heappop(self._expiries)
            if kind == 0:
                _live(self._data, key, now)
            else:
                _live(self._counters, key, now)

    def _set_entry(self, key: str, value: bytes, is_result: bool, expires_at: float | None) -> None:
        self._data[key] = _Entry(value, is_result, expires_at)
        if expires_at is not None:
            heapq.heappush(self._expiries, (expires_at, 0, key))
        self._data_changed.notify_all()

    def _owned(self, reservation: Reservation) -> _Lease | None:
        lease = self._in_flight.get(reservation.message_id)
        if lease is None or not reservation.token or lease.token != reservation.token:
            return None
        return lease

    def _add_dead(
        self, dead_letter_id: str, data: bytes, reason: str, detail: str, attempts: int, priority: int | None
    ) -> str:
        self._dead[dead_letter_id] = DeadLetter(
            id=dead_letter_id,
            data=data,
            reason=reason,
            detail=detail,
            attempts=attempts,
            failed_at=time.time(),
            priority=priority,
        )
        return dead_letter_id

    # ------------------------------------------------------------------ queue

    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        data = check_bytes(data, "data")
        prio = normalize_priority(priority)
        with self._lock:
            self._push_ready(self._new_message(data, prio))
            self._ready_changed.notify()

    def enqueue_many(self, items: list[tuple[bytes, int | None]]) -> None:
        messages = [(check_bytes(data, "data"), normalize_priority(priority)) for data, priority in items]
        with self._lock:
            for data, prio in messages:
                self._push_ready(self._new_message(data, prio))
            self._ready_changed.notify_all()

    def dequeue(self) -> bytes | None:
        with self._lock:
            if not self._wait_for_ready():
                return None
            return heapq.heappop(self._ready)[2].data

    def queue_size(self) -> int:
        with self._lock:
            return len(self._ready)

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        with self._lock:
            ordered = sorted(self._ready) if limit is None else heapq.nsmallest(limit, self._ready)
            return [entry[2].data for entry in ordered]

    def flush_queue(self) -> None:
        with self._lock:
            self._ready.clear()

    # ------------------------------------------------------------------ schedule

    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        data = check_bytes(data, "data")
        prio = normalize_priority(priority)
        with self._lock:
            heapq.heappush(self._schedule, (schedule_time(timestamp), next(self._seq), data, prio))

    def _pop_due(self, timestamp: float) -> list[tuple[float, int, bytes, int]]:
        timestamp = schedule_time(timestamp)
        due = []
        while self._schedule and self._schedule[0][0] <= timestamp:
            due.append(heapq.heappop(self._schedule))
        return due

    def read_schedule(self, timestamp: float) -> list[bytes]:
        with self._lock:
            return [item[2] for item in self._pop_due(timestamp)]

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        with self._lock:
            ordered = sorted(self._schedule) if limit is None else heapq.nsmallest(limit, self._schedule)
            return [item[2] for item in ordered]

    def schedule_size(self) -> int:
        with self._lock:
            return len(self._schedule)

    def flush_schedule(self) -> None:
        with self._lock:
            self._schedule.clear()

    def enqueue_due(self, timestamp: float) -> int:
        with self._lock:
            due = self._pop_due(timestamp)
            for _, _, data, prio in due:
                self._push_ready(self._new_message(data, prio))
            if due:
                self._ready_changed.notify(len(due))
            return len(due)

    # ------------------------------------------------------------------ key/value data

    def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None:
        key, value, now, expires_at = _checked_write(key, value, ttl)
        with self._lock:
            self._sweep(now)
            self._set_entry(key, value, bool(is_result), expires_at)

    def peek_data(self, key: str) -> bytes | EmptyDataType:
        key = check_key(key)
        with self._lock:
            entry = _live(self._data, key, time.time())
            return EmptyData if entry is None else entry.value

    def pop_data(self, key: str) -> bytes | EmptyDataType:
        key = check_key(key)
        with self._lock:
            entry = _live(self._data, key, time.time())
            if entry is None:
                return EmptyData
            del self._data[key]
            return entry.value

    def has_data_for_key(self, key: str) -> bool:
        key = check_key(key)
        with self._lock:
            return _live(self._data, key, time.time()) is not None

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        key, value, now, expires_at = _checked_write(key, value, ttl)
        with self._lock:
            self._sweep(now)
            if _live(self._data, key, now) is not None:
                return False
            self._set_entry(key, value, False, expires_at)
            return True

    def delete_data(self, key: str) -> bool:
        key = check_key(key)
        with self._lock:
            if _live(self._data, key, time.time()) is None:
                return False
            del self._data[key]
            return True

    def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
        now = time.time()
        with self._lock:
            keys = sorted(
                key for key, entry in self._data.items() if key.startswith(prefix) and is_live(entry.expires_at, now)
            )
        return keys if limit is None else keys[:limit]

    def flush_all(self) -> None:
        with self._lock:
            self._ready.clear()
            self._schedule.clear()
            self._data.clear()
            self._counters.clear()
            self._expiries.clear()
            self._in_flight.clear()
            self._dead.clear()

    # ------------------------------------------------------------------ huey's extras

    def _values(self, results_only: bool) -> dict[str, bytes]:
        now = time.time()
        with self._lock:
            self._sweep(now)
            return {
                key: entry.value
                for key, entry in self._data.items()
                if (entry.is_result or not results_only) and is_live(entry.expires_at, now)
            }

    def result_items(self) -> dict[str, bytes]:
        return self._values(results_only=False)

    def result_store_size(self) -> int:
        return len(self.result_items())

    def flush_results(self) -> None:
        with self._lock:
            self._data.clear()

    def task_results(self) -> dict[str, bytes]:
        return self._values(results_only=True)

    def flush_task_results(self) -> None:
        with self._lock:
            for key in [key for key, entry in self._data.items() if entry.is_result]:
                del self._data[key]

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        key = check_key(key)
        now = time.time()
        with self._lock:
            self._sweep(now)
            counter = _live(self._counters, key, now)
            if counter is None:
                expires_at = expiry_time(ttl, now)
                counter = self._counters[key] = _Counter(0, expires_at)
                if expires_at is not None:
                    heapq.heappush(self._expiries, (expires_at, 1, key))
            counter.value += amount
            return counter.value

    def delete_counter(self, key: str) -> None:
        key = check_key(key)
        with self._lock:
            self._counters.pop(key, None)

    def flush_counters(self) -> None:
        with self._lock:
            self._counters.clear()

    def wait_result(self, key: str, timeout: float | None = None) -> bytes | EmptyDataType:
        key = check_key(key)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                entry = _live(self._data, key, time.time())
                if entry is not None:
                    return entry.value
                if deadline is None:
                    self._data_changed.wait()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return EmptyData
                self._data_changed.wait(remaining)

    # ------------------------------------------------------------------ reliable delivery

    def reserve(self, lease: float) -> Reservation | None:
        with self._lock:
            if not self._wait_for_ready():
                return None
            message = heapq.heappop(self._ready)[2]
            message.claims += 1
            now = time.time()
            held = _Lease(message, new_token(), now + lease, now)
            self._in_flight[message.message_id] = held
            return held.as_reservation()

    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        expires_at = None
        if result is not None:
            key, value, ttl = result
            value = check_bytes(value, "result value")
            expires_at = expiry_time(ttl, time.time())
        with self._lock:
            if self._owned(reservation) is None:
                return False
            del self._in_flight[reservation.message_id]
            if result is not None:
                self._set_entry(key, value, True, expires_at)
            return True

    def ack_and_reserve(
        self, reservation: Reservation, result: ResultWrite | None, lease: float
    ) -> tuple[bool, Reservation | None]:
        with self._lock:
            acked = self.ack(reservation, result)
            if not self._ready:
                return acked, None
            message = heapq.heappop(self._ready)[2]
            message.claims += 1
            now = time.time()
            held = _Lease(message, new_token(), now + lease, now)
            self._in_flight[message.message_id] = held
            return acked, held.as_reservation()

    def renew(self, reservation: Reservation, lease: float) -> bool:
        with self._lock:
            held = self._owned(reservation)
            if held is None:
                return False
            held.deadline = time.time() + lease
            return True

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        with self._lock:
            held = self._owned(reservation)
            if held is None:
                return False
            del self._in_flight[reservation.message_id]
            if not count_attempt:
                held.message.claims = max(0, held.message.claims - 1)
            self._push_ready(held.message)
            self._ready_changed.notify()
            return True

    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        with self._lock:
            held = self._owned(reservation)
            if held is None:
                return False
            del self._in_flight[reservation.message_id]
            msg = held.message
            self._add_dead(msg.message_id, msg.data, reason, detail, msg.claims, msg.priority)
            return True

    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        with self._lock:
            expired = sorted(
                (held for held in self._in_flight.values() if held.deadline <= now),
                key=lambda held: (held.deadline, held.message.seq),
            )
            reclaimed = []
            requeued = 0
            for held in expired:
                msg = held.message
                del self._in_flight[msg.message_id]
                progressed = made_progress(held.deadline, held.reserved_at, progress_span)
                verdict = expired_verdict(msg.claims, progressed, max_attempts, max_reclaims)
                if verdict is not None:
                    reason, detail = verdict
                    self._add_dead(msg.message_id, msg.data, reason, detail, msg.claims, msg.priority)
                    reclaimed.append(Reclaimed(held.as_reservation(), True, reason))
                else:
                    self._push_ready(msg)
                    requeued += 1
                    reclaimed.append(Reclaimed(held.as_reservation(), False))
            if requeued:
                self._ready_changed.notify(requeued)
            return reclaimed

    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        with self._lock:
            ordered = sorted(self._in_flight.values(), key=lambda held: (held.deadline, held.message.seq))
            if limit is not None:
                ordered = ordered[: max(limit, 0)]
            return [held.as_reservation() for held in ordered]

    def in_flight_size(self) -> int:
        with self._lock:
            return len(self._in_flight)

    # ------------------------------------------------------------------ dead letters

    def add_dead_letter(
        self,
        data: bytes,
        reason: str,
        detail: str = "",
        attempts: int = 0,
        priority: int | None = None,
    ) -> str:
        data = check_bytes(data, "data")
        with self._lock:
            return self._add_dead(new_token(), data, reason, detail, attempts, priority)

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        with self._lock:
            letters = list(self._dead.values())
        return letters if limit is None else letters[: max(limit, 0)]

    def dead_letter_count(self) -> int:
        with self._lock:
            return len(self._dead)

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        with self._lock:
            letter = self._dead.pop(dead_letter_id, None)
            if letter is None:
                return False
            prio = letter.priority if letter.priority is not None else 0
            self._push_ready(self._new_message(letter.data, prio, message_id=letter.id))
            self._ready_changed.notify()
            return True

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        with self._lock:
            candidates = list(self._dead) if ids is None else [i for i in set(ids) if i in self._dead]
            if older_than is not None:
                candidates = [i for i in candidates if self._dead[i].failed_at < older_than]
            for dead_letter_id in candidates:
                del self._dead[dead_letter_id]
            return len(candidates)
