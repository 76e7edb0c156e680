"""Black-hole storage: accepts everything and keeps nothing.

For benchmarking the cost of enqueueing (serializing, signing, validating) without any storage cost, and for
configurations where tasks must be accepted but never run. Every write succeeds and is thrown away; every read
finds nothing:

* ``enqueue``, ``add_to_schedule``, ``put_data`` and the flushes do nothing;
* ``dequeue`` and ``reserve`` return ``None``; ``peek_data``, ``pop_data`` and ``wait_result`` return
  ``EmptyData`` at once (``wait_result`` does not wait: nothing will ever arrive);
* sizes are ``0``, listings are empty, ``has_data_for_key`` and ``delete_data`` are ``False``;
* ``put_if_empty`` returns ``True`` (the write "succeeded"), so locks are always acquired;
* ``incr`` returns ``amount`` (every counter starts afresh);
* ``ack``, ``renew``, ``release`` and ``bury`` return ``True``; ``requeue_expired`` and ``enqueue_due`` find
  nothing; ``add_dead_letter`` returns a fresh id, ``requeue_dead_letter`` is ``False`` and
  ``purge_dead_letters`` deletes ``0``.

Because nothing is ever delivered, there is no delivery guarantee to speak of: it does not declare the feature ``reliable``;
it declares ``process_local``, as nothing it is given reaches another process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from django_tasks_q.backends.base import (
    BaseStorage,
    DeadLetter,
    EmptyData,
    EmptyDataType,
    Feature,
    Reclaimed,
    Reservation,
    ResultWrite,
    new_token,
)

__all__ = ["BlackHoleStorage"]


class BlackHoleStorage(BaseStorage):
    """A storage that discards all data (see the module documentation)."""

    blocking = False
    priority = True
    features = frozenset({Feature.DEAD_LETTERS, Feature.COUNTERS, Feature.KEY_LISTING, Feature.WAIT_FOR_MESSAGES,
                          Feature.REAP_BY_PROGRESS, Feature.PROCESS_LOCAL})

    def startup_warnings(self) -> list[str]:
        """Nothing enqueued here ever runs: say so."""
        return [f"BlackHoleStorage {self.name!r} discards every message: nothing enqueued here ever runs"]

    # queue
    def enqueue(self, data: bytes, priority: int | None = None) -> None:
        return None

    def enqueue_many(self, items: list[tuple[bytes, int | None]]) -> None:
        return None

    def dequeue(self) -> bytes | None:
        return None

    def queue_size(self) -> int:
        return 0

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        return []

    def flush_queue(self) -> None:
        return None

    # schedule
    def add_to_schedule(self, data: bytes, timestamp: float, priority: int | None = None) -> None:
        return None

    def read_schedule(self, timestamp: float) -> list[bytes]:
        return []

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        return []

    def schedule_size(self) -> int:
        return 0

    def flush_schedule(self) -> None:
        return None

    def enqueue_due(self, timestamp: float) -> int:
        return 0

    # key/value data
    def put_data(self, key: str, value: bytes, is_result: bool = False, ttl: float | None = None) -> None:
        return None

    def peek_data(self, key: str) -> bytes | EmptyDataType:
        return EmptyData

    def peek_many(self, keys: list[str]) -> list[bytes | EmptyDataType]:
        return [EmptyData for _ in keys]

    def pop_data(self, key: str) -> bytes | EmptyDataType:
        return EmptyData

    def has_data_for_key(self, key: str) -> bool:
        return False

    def put_if_empty(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        return True

    def delete_data(self, key: str) -> bool:
        return False

    def flush_all(self) -> None:
        return None

    def data_keys(self, prefix: str = "", limit: int | None = None) -> list[str]:
        return []

    def result_items(self) -> dict[str, bytes]:
        return {}

    def result_store_size(self) -> int:
        return 0

    def flush_results(self) -> None:
        return None

    def task_results(self) -> dict[str, bytes]:
        return {}

    def task_result_count(self) -> int:
        return 0

    def flush_task_results(self) -> None:
        return None

    def incr(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        return amount

    def delete_counter(self, key: str) -> None:
        pass

    def flush_counters(self) -> None:
        pass

    def wait_result(self, key: str, timeout: float | None = None) -> bytes | EmptyDataType:
        return EmptyData

    # reliable delivery
    def reserve(self, lease: float) -> Reservation | None:
        return None

    def ack(self, reservation: Reservation, result: ResultWrite | None = None) -> bool:
        return True

    def ack_and_reserve(
        self, reservation: Reservation, result: ResultWrite | None, lease: float
    ) -> tuple[bool, Reservation | None]:
        return True, None

    def wait_for_messages(self, timeout: float, wake: threading.Event | None = None) -> bool:
        # Nothing ever arrives: only ``wake`` ends the wait early.
        if wake is not None:
            return wake.wait(timeout)
        time.sleep(timeout)
        return False

    def renew(self, reservation: Reservation, lease: float) -> bool:
        return True

    def release(self, reservation: Reservation, count_attempt: bool = False) -> bool:
        return True

    def bury(self, reservation: Reservation, reason: str, detail: str = "") -> bool:
        return True

    def requeue_expired(
        self,
        now: float,
        max_attempts: int | None,
        max_reclaims: int | None = None,
        progress_span: float | None = None,
    ) -> list[Reclaimed]:
        return []

    def in_flight_items(self, limit: int | None = None) -> list[Reservation]:
        return []

    def in_flight_size(self) -> int:
        return 0

    # dead letters
    def add_dead_letter(
        self,
        data: bytes,
        reason: str,
        detail: str = "",
        attempts: int = 0,
        priority: int | None = None,
    ) -> str:
        return new_token()

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        return []

    def dead_letter_count(self) -> int:
        return 0

    def requeue_dead_letter(self, dead_letter_id: str) -> bool:
        return False

    def purge_dead_letters(self, ids: Iterable[str] | None = None, older_than: float | None = None) -> int:
        return 0
