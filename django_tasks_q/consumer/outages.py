"""Storage outages as a consumer sees them: a start-up verification, and one shared backoff per queue.

At start-up :func:`verify_storages` makes one cheap call to each queue's storage, so that a Redis nobody
listens on or a database without the tables is one clear error and a non-zero exit, not a stream of
retries. During a later outage every worker of a queue reports to that queue's :class:`OutageLog`, which logs
one ERROR when the outage starts and one INFO when a call succeeds again, and hands out a shared, capped
exponential backoff instead of one warning per worker per retry.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger("django_tasks_q.consumer")

OUTAGE_MAX_DELAY = 30.0
"""The longest wait between two attempts of a worker during an outage (seconds)."""


def backoff_delay(current: float, factor: float, maximum: float) -> float:
    """The next delay of a capped exponential backoff, with up to 25% jitter."""
    grown = min(current * factor, maximum)
    return min(maximum, grown * (1 + random.uniform(0, 0.25)))


class StorageUnavailable(Exception):
    """A queue's storage could not be used at start-up; the message says which queue and why."""


def outage_max_delay(queue: Any) -> float:
    """The backoff cap of ``queue``'s workers: 30 s, or less for a short lease (its leases must be reaped)."""
    return max(min(OUTAGE_MAX_DELAY, queue.lease / 2), 0.05)


class OutageLog:
    """One queue's storage failures: logged once per outage, retried with a shared capped backoff.

    Every worker (thread) of the queue in one process reports here: :meth:`failed` after a storage call
    raised (it returns how long to wait), :meth:`recovered` after one succeeded. Only the first failure of an
    outage is logged (ERROR), with the error; the end is logged once (INFO) with the outage's length. The wait
    doubles once per wait (not once per report), so it grows at the same pace with one worker or twenty.
    """

    def __init__(self, queue_name: str, initial_delay: float = 0.5, max_delay: float = OUTAGE_MAX_DELAY) -> None:
        self.queue_name = queue_name
        self.initial_delay = min(initial_delay, max_delay)
        self.max_delay = max_delay
        self._since: float | None = None
        self._delay = self.initial_delay
        self._grow_at = 0.0
        self._failures = 0
        self._lock = threading.Lock()

    @property
    def in_outage(self) -> bool:
        """Whether the last report was a failure."""
        return self._since is not None

    def failed(self, error: BaseException, who: str) -> float:
        """Record a failed storage call by ``who`` (a worker, the scheduler); returns the seconds to wait."""
        with self._lock:
            self._failures += 1
            now = time.monotonic()
            if self._since is None:
                self._since = now
                self._delay = self.initial_delay
                self._grow_at = now + self._delay
                logger.error(
                    "queue %r: storage unavailable (%s: %s, seen by %s); its workers retry with a backoff of up "
                    "to %g s and log again when it is back",
                    self.queue_name,
                    type(error).__name__,
                    error,
                    who,
                    self.max_delay,
                )
                return self._delay
            if now >= self._grow_at:
                self._delay = backoff_delay(self._delay, 2.0, self.max_delay)
                self._grow_at = now + self._delay
            return self._delay

    def recovered(self) -> None:
        """Record a successful storage call; logs the end of an outage (costs one attribute read otherwise)."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            lasted = time.monotonic() - self._since
            failures, self._since, self._failures = self._failures, None, 0
            self._delay = self.initial_delay
        logger.info(
            "queue %r: storage available again after %.1f s (%d failed call(s) meanwhile)",
            self.queue_name,
            lasted,
            failures,
        )


def verify_storages(
    queues: Iterable[Any],
    *,
    wait: bool = False,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Make one call to each queue's storage; raise :class:`StorageUnavailable` naming what failed.

    With ``wait``, retry instead (a container started before its Redis or database): one WARNING per queue
    when the wait begins, one INFO when the storage answers, an exponential backoff capped at 30 s between
    attempts; ``stop()`` returning true ends the wait (a stop signal) with :class:`StorageUnavailable`.
    """
    for queue in queues:
        delay = 0.5
        waiting_since: float | None = None
        while True:
            try:
                queue.pending_count()
            except Exception as exc:
                problem = f"queue {queue.name!r}: storage {type(queue.storage).__name__} unavailable: {exc}"
                if not wait:
                    raise StorageUnavailable(problem) from exc
                if waiting_since is None:
                    waiting_since = time.monotonic()
                    logger.warning("%s; waiting for it (--wait-for-storage)", problem)
                if _sleep_unless_stopped(delay, stop):
                    raise StorageUnavailable(f"{problem}; stopped while waiting for it") from exc
                delay = backoff_delay(delay, 2.0, OUTAGE_MAX_DELAY)
                continue
            if waiting_since is not None:
                logger.info(
                    "queue %r: storage available after %.1f s of waiting", queue.name, time.monotonic() - waiting_since
                )
            break


def _sleep_unless_stopped(seconds: float, stop: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stop():
            return True
        time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
    return stop()
