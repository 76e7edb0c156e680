"""The consumer's scheduler: due scheduled messages, periodic tasks, database schedules, expired leases.

:class:`QueueScheduler` is what the consumer's scheduler thread runs: every ``scheduler_interval`` seconds one
pass over the consumer's queues, backing off while a storage fails. :class:`Scheduler` is huey's name for the
same pass stepped by hand.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from ..timeutils import now_utc
from .options import ConsumerOptions
from .outages import OutageLog, backoff_delay
from .workers import close_thread_connections

logger = logging.getLogger("django_tasks_q.consumer")


def reap_intervals(queues: Iterable[Any]) -> dict[str, float]:
    """Per queue: the seconds between two reclaims of expired leases (half the lease, from 0.05 s to 30 s)."""
    return {queue.name: max(min(queue.lease / 2, 30.0), 0.05) for queue in queues}


class QueueScheduler:
    """One consumer's scheduler: each pass moves due messages, enqueues periodic tasks and reaps leases.

    A queue whose work arrived (a due message, a periodic task, a reclaimed lease) gets its ``wake`` event set,
    so that its idle workers look at once.
    """

    def __init__(
        self,
        queues: list[Any],
        options: dict[str, ConsumerOptions],
        wake: dict[str, threading.Event],
        outages: dict[str, OutageLog],
        stop_event: threading.Event,
    ) -> None:
        self.queues = queues
        self.options = options
        self.wake = wake
        self.outages = outages
        self.stop_event = stop_event
        self._schedule_error_logged = float("-inf")

    def run(self) -> None:
        """Run a pass every ``scheduler_interval`` seconds until the consumer stops (the scheduler thread)."""
        interval = min(options.scheduler_interval for options in self.options.values())
        reap_every = reap_intervals(self.queues)
        next_reap = {queue.name: 0.0 for queue in self.queues}
        last_minute: dict[str, dt.datetime] = {}
        error_delay = interval
        # The backoff never outgrows the reaper's interval: once the store is back, expired leases are reclaimed
        # within lease + reaper interval, however long the outage was.
        max_error_delay = max(interval, min(30.0, *reap_every.values()))
        while not self.stop_event.is_set():
            try:
                self.tick(now_utc(), next_reap, reap_every, last_minute)
                error_delay = interval
                wait = interval
            except Exception:  # logged once per outage by the queue's OutageLog (see tick)
                wait = error_delay
                error_delay = backoff_delay(error_delay, 2.0, max_error_delay)
            self.stop_event.wait(wait)
        close_thread_connections()

    def tick(
        self,
        now: dt.datetime,
        next_reap: dict[str, float],
        reap_every: dict[str, float],
        last_minute: dict[str, dt.datetime],
    ) -> None:
        """One pass: move due messages, enqueue periodic tasks for a new minute, reap expired leases.

        Each step of each queue runs even when another fails (a broken periodic task must not stop the
        reaper); each queue's failures go to its :class:`OutageLog`, and the first is raised at the end so that
        the scheduler backs off.
        """
        minute = now.replace(second=0, microsecond=0)
        failures: list[Exception] = []
        failed_queues: set[str] = set()

        def step(action: Callable[[], object], queue: Any) -> None:
            try:
                action()
            except Exception as exc:
                failures.append(exc)
                if queue.name not in failed_queues:
                    failed_queues.add(queue.name)
                    self.outages[queue.name].failed(exc, "the scheduler")

        for queue in self.queues:
            step(partial(self._move_due, queue, now), queue)
            if self.options[queue.name].periodic and last_minute.get(queue.name) != minute:
                step(partial(self._enqueue_periodic, queue, minute, last_minute), queue)
            if self.options[queue.name].periodic:
                self._dispatch_db_schedules(queue, now)
            if time.monotonic() >= next_reap[queue.name]:
                step(partial(self._reap, queue, now), queue)
                next_reap[queue.name] = time.monotonic() + reap_every[queue.name]
            if queue.name not in failed_queues:
                self.outages[queue.name].recovered()
        if failures:
            raise failures[0]

    def _move_due(self, queue: Any, now: dt.datetime) -> None:
        if queue.enqueue_due(now):
            self.wake[queue.name].set()

    def _enqueue_periodic(self, queue: Any, minute: dt.datetime, last_minute: dict[str, dt.datetime]) -> None:
        previous = last_minute.get(queue.name)
        if previous is not None and minute - previous > dt.timedelta(minutes=1):
            logger.warning(
                "queue %r: scheduler skipped %d minute(s) of periodic tasks (missed runs are not caught up)",
                queue.name,
                int((minute - previous).total_seconds() // 60) - 1,
            )
        for task in queue.enqueue_periodic(minute):
            logger.info("queue %r: enqueued periodic task %s", queue.name, task.name)
            self.wake[queue.name].set()
        last_minute[queue.name] = minute

    def _reap(self, queue: Any, now: dt.datetime) -> None:
        if queue.reclaim_expired(now):
            self.wake[queue.name].set()

    def _dispatch_db_schedules(self, queue: Any, now: dt.datetime) -> None:
        """Enqueue due database schedules; a failure here never stops the rest of the scheduler."""
        from django.apps import apps

        if not (apps.ready and apps.is_installed("django_tasks_q")):
            return
        try:
            from ..history.schedules import dispatch_schedules  # models: importable once the apps are ready

            for schedule in dispatch_schedules(queue, now):
                self.wake[queue.name].set()
                logger.debug("queue %r: schedule %r fired", queue.name, schedule.name)
        except Exception as exc:
            if time.monotonic() >= self._schedule_error_logged + 60:
                logger.warning("queue %r: database schedules unavailable (%s); will retry", queue.name, exc)
                self._schedule_error_logged = time.monotonic()


class Scheduler:
    """huey's name for the consumer's scheduler, to be stepped by hand: each :meth:`loop` is one pass.

    A pass moves due scheduled messages into the queues, enqueues the periodic tasks of a minute not yet seen
    and reclaims expired leases, as the consumer's scheduler thread does every ``scheduler_interval`` seconds.
    """

    def __init__(self, consumer: Any) -> None:
        """Step the scheduler of ``consumer`` (a :class:`~django_tasks_q.consumer.Consumer`)."""
        self.consumer = consumer
        self._next_reap = {queue.name: 0.0 for queue in consumer.queues}
        self._reap_every = reap_intervals(consumer.queues)
        self._last_minute: dict[str, dt.datetime] = {}

    def loop(self, now: dt.datetime | None = None) -> None:
        """Run one pass at ``now`` (default: the current time); a storage error is raised after every step ran."""
        self.consumer.scheduler.tick(now or now_utc(), self._next_reap, self._reap_every, self._last_minute)
