"""Worker loops: reserve a message, hand it to the hub, repeat; in a thread or a worker process (:mod:`.processes`).

The hub decides everything about a task; a worker only keeps the loop going:
it backs off (capped, with jitter) when the storage fails, never exits on a
storage error, closes stale database connections around each task, and
records what it is running so that the lease keeper can renew its lease.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Reservation
from ..exceptions import AcknowledgementFailed, StorageError
from .outages import OutageLog, backoff_delay

logger = logging.getLogger("django_tasks_q.consumer")


@dataclass
class Running:
    """A reservation a worker is processing right now."""

    queue: Any
    reservation: Reservation
    started: float = field(default_factory=time.monotonic)


class RunningTasks:
    """Thread-safe map of worker name → what it is running (read by the lease keeper)."""

    def __init__(self) -> None:
        self._items: dict[str, Running] = {}
        self._lock = threading.Lock()

    def start(self, worker: str, queue: Any, reservation: Reservation) -> None:
        """Record that ``worker`` began processing ``reservation``."""
        with self._lock:
            self._items[worker] = Running(queue, reservation)

    def finish(self, worker: str) -> None:
        """Record that ``worker`` is idle again."""
        with self._lock:
            self._items.pop(worker, None)

    def snapshot(self) -> dict[str, Running]:
        """A copy of what is running now."""
        with self._lock:
            return dict(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


class AcknowledgementHealth:
    """Whether the acknowledgements of this process's workers go through; shared by them.

    A storage that cannot record acknowledgements (unreachable, its disk full) makes every worker retry its
    own; this says so once with an ERROR when the first one fails and once with an INFO when the last one is
    recorded, instead of one line per attempt and worker.
    """

    def __init__(self) -> None:
        self._waiting: set[str] = set()  # the workers retrying an acknowledgement
        self._lock = threading.Lock()

    def failing(self, worker: str, failed: AcknowledgementFailed) -> None:
        """``worker`` could not acknowledge ``failed.reservation`` and will retry."""
        with self._lock:
            first = not self._waiting
            self._waiting.add(worker)
        if first:
            logger.error(
                "acknowledgements are failing (%s); workers keep their finished tasks, stop claiming new ones "
                "and retry until the storage records them",
                failed.__cause__ or failed,
            )

    def settled(self, worker: str) -> None:
        """``worker``'s acknowledgement went through (or was given up on)."""
        with self._lock:
            if worker not in self._waiting:
                return
            self._waiting.discard(worker)
            last = not self._waiting
        if last:
            logger.info("acknowledgements go through again")


class WorkerLoop:
    """Reserve from one queue and process until ``stop`` is set (or ``max_tasks`` were run)."""

    def __init__(
        self,
        name: str,
        queue: Any,
        stop: threading.Event,
        running: RunningTasks,
        *,
        initial_delay: float,
        backoff: float,
        max_delay: float,
        max_tasks: int | None = None,
        wake: threading.Event | None = None,
        outage: OutageLog | None = None,
        acknowledgements: AcknowledgementHealth | None = None,
    ) -> None:
        self.name = name
        self.outage = outage
        """The queue's shared :class:`OutageLog` (logs and paces storage failures)."""
        self.queue = queue
        self.stop = stop
        self.running = running
        self.initial_delay = initial_delay
        self.backoff = backoff
        self.max_delay = max_delay
        self.max_tasks = max_tasks
        self.wake = wake
        self.acknowledgements = acknowledgements if acknowledgements is not None else AcknowledgementHealth()
        self.tasks_run = 0

    def run(self) -> None:
        """The loop; returns when stopped or recycled."""
        self.queue.run_startup_hooks()
        try:
            self._loop()
        finally:
            self.queue.run_shutdown_hooks()
            close_thread_connections()

    def _loop(self) -> None:
        idle_delay = self.initial_delay
        error_delay = self.initial_delay
        reservation: Reservation | None = None  # claimed together with the previous acknowledgement
        try:
            while not self.stop.is_set():
                claimed_with_ack = reservation is not None
                if reservation is None:
                    try:
                        reservation = self.queue.reserve()
                    except Exception as exc:
                        if self.outage is not None:
                            self.stop.wait(self.outage.failed(exc, f"worker {self.name}"))
                            continue
                        logger.warning(
                            "worker %s: storage of queue %r failed (%s); retrying in %.2f s",
                            self.name,
                            self.queue.name,
                            exc,
                            error_delay,
                        )
                        self.stop.wait(error_delay)
                        error_delay = backoff_delay(error_delay, 2.0, self.max_delay)
                        continue
                    error_delay = self.initial_delay
                    if self.outage is not None:
                        self.outage.recovered()
                    if reservation is None:
                        if not self.queue.blocking:
                            self._idle(idle_delay)
                            idle_delay = min(idle_delay * self.backoff, self.max_delay)
                        continue
                    if self.stop.is_set():  # claimed while a blocking reserve waited out a stop: never start
                        break  # it; the finally below gives it back without counting an attempt
                idle_delay = self.initial_delay
                last = bool(self.max_tasks and self.tasks_run + 1 >= self.max_tasks)
                current, reservation = reservation, None
                reservation = self._process(current, reserve_next=not last, after_wait=not claimed_with_ack)
                self.tasks_run += 1
                if last:
                    logger.info("worker %s ran %d tasks; recycling it", self.name, self.tasks_run)
                    return
        finally:
            if reservation is not None:  # claimed, never started: give it back as it was
                self._give_back(reservation)

    def _idle(self, delay: float) -> None:
        # A storage that can be waited on wakes us when a message may have arrived (or the consumer pokes
        # ``wake``/``stop``).
        if self.queue.wait_for_messages(delay, self.wake if self.wake is not None else self.stop):
            if self.wake is not None and self.wake.is_set():
                self.wake.clear()
        elif self.wake is not None:
            if self.wake.wait(delay):
                self.wake.clear()
        else:
            self.stop.wait(delay)

    def _process(
        self, reservation: Reservation, reserve_next: bool = False, after_wait: bool = True
    ) -> Reservation | None:
        """Process one message; with ``reserve_next`` its acknowledgement also claims the next (returned).

        Django's stale database connections are closed after every task, and before one only ``after_wait``
        (a connection may have gone stale while the worker waited; between back-to-back tasks it cannot). The
        storage's own connection is kept unless broken: the worker uses it for every claim and acknowledgement.
        """
        keep = getattr(self.queue.storage, "kept_connection_aliases", ())
        self.running.start(self.name, self.queue, reservation)
        following = None
        try:
            if after_wait:
                close_old_connections(keep)
            following = self.queue.process(reservation, reserve_next=self._still_running if reserve_next else False)
        except AcknowledgementFailed as failed:
            self._acknowledge_again(failed)  # still listed as running: the lease keeper keeps renewing it
        except Exception:
            logger.exception(
                "worker %s: message %s of queue %r could not be finished; its lease will expire and "
                "it will be delivered again",
                self.name,
                reservation.message_id,
                self.queue.name,
            )
        finally:
            self.running.finish(self.name)
            try:
                close_old_connections(keep)
            except Exception:  # never lose the message claimed with the acknowledgement over it
                logger.exception("worker %s: closing stale database connections failed", self.name)
        return following

    def _acknowledge_again(self, failed: AcknowledgementFailed) -> None:
        """Retry a failed acknowledgement with a capped backoff until the storage answers; claim nothing meanwhile.

        The task succeeded (or failed for good): letting its lease expire would run it again and, after a few
        such rounds, dead-letter it. The acknowledgement carries its token, so retrying it is safe; once the
        lease has been reclaimed it is a no-op. A stop request does not end the retries: the consumer's
        shutdown timeout does (the task is then handed back, as any task still running would be).
        """
        self.acknowledgements.failing(self.name, failed)
        delay = self.initial_delay
        try:
            while True:
                time.sleep(delay)
                try:
                    self.queue.retry_acknowledgement(failed)
                    return
                except (StorageError, OSError) as exc:
                    logger.debug("worker %s: acknowledgement of %s failed again: %s", self.name, failed.task_id, exc)
                    delay = backoff_delay(delay, 2.0, self.max_delay)
        finally:
            self.acknowledgements.settled(self.name)

    def _still_running(self) -> bool:
        """Asked when a task is acknowledged: claim the next message only if no stop was requested meanwhile."""
        return not self.stop.is_set()

    def _give_back(self, reservation: Reservation) -> None:
        try:
            self.queue.release(reservation)
        except Exception:
            logger.exception(
                "worker %s: could not give message %s back to queue %r; its lease will expire",
                self.name,
                reservation.message_id,
                self.queue.name,
            )


def close_thread_connections() -> None:
    """Close this thread's Django database connections (a worker thread that ends must not leak them)."""
    from django.db import connections

    connections.close_all()


def close_old_connections(keep: Collection[str] = ()) -> None:
    """Close Django database connections that are broken or past their lifetime (huey's ``db_task``), and
    forget the queries they logged.

    A connection of an alias in ``keep`` is closed only when broken (or left outside autocommit): with Django's
    default ``CONN_MAX_AGE = 0`` every connection is past its lifetime after a task, and reconnecting the
    storage's own connection for every task would cost more than the task. With ``DEBUG = True`` (as
    startproject leaves it) each connection logs its queries until the next request begins; a worker never
    begins one, so its logs are emptied here, as Django does when a request starts.
    """
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        conn.queries_log.clear()
        if conn.alias in keep:
            conn.close_at = None  # no lifetime: only the usability checks below can close it
        conn.close_if_unusable_or_obsolete()


class LeaseKeeper(threading.Thread):
    """Renews the leases of running tasks every ``interval`` seconds (task code never has to).

    A renewal that finds the token gone is not reported at once: the task may have been acknowledged while the
    renewal was under way (its ack and the renewal race). Only when the same reservation is still running at the
    next round, and its renewal fails again, is the lease lost; that is logged once per reservation.
    """

    def __init__(self, running: RunningTasks, stop: threading.Event, interval: float) -> None:
        super().__init__(name="tasks-q-lease-keeper", daemon=True)
        self.running = running
        self.stop_event = stop
        self.interval = interval
        self._failed: dict[str, tuple[Running, int]] = {}  # worker -> (item, failed renewals in a row)

    def run(self) -> None:
        """Renew until stopped."""
        try:
            while not self.stop_event.wait(self.interval):
                self.renew_all()
        finally:
            close_thread_connections()

    def renew_all(self) -> None:
        """Renew every running reservation once; a lost lease is logged."""
        snapshot = self.running.snapshot()
        self._failed = {worker: seen for worker, seen in self._failed.items() if snapshot.get(worker) is seen[0]}
        for worker, item in snapshot.items():
            try:
                renewed = item.queue.renew_lease(item.reservation)
            except Exception as exc:
                logger.warning("lease keeper: could not renew %s of %s: %s", item.reservation.message_id, worker, exc)
                continue
            if renewed:
                self._failed.pop(worker, None)
                continue
            failures = self._failed[worker][1] + 1 if worker in self._failed else 1
            self._failed[worker] = (item, failures)
            if failures == 2:  # still running it after a second refusal: not a race with its ack
                logger.warning(
                    "lease keeper: the lease of message %s (worker %s, queue %r) was lost; another worker may "
                    "run it too",
                    item.reservation.message_id,
                    worker,
                    item.queue.name,
                )
