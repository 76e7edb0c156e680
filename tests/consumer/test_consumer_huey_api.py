"""huey's consumer API on ours: ``Consumer(huey, **options)`` and a :class:`Scheduler` stepped by hand."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from django_tasks_q import MemoryHuey, crontab
from django_tasks_q.consumer import Consumer, ConsumerOptions, Scheduler
from django_tasks_q.exceptions import ConfigurationError


def make_queue() -> MemoryHuey:
    return MemoryHuey(f"huey-api-{uuid.uuid4().hex[:8]}", block_timeout=0.05)


def test_huey_form_takes_one_queue_and_options_as_keywords() -> None:
    q = make_queue()

    @q.task()
    def add_one(n: int) -> int:
        return n + 1

    consumer = Consumer(q, workers=2, initial_delay=0.01, max_delay=0.05, check_worker_health=False, monitor=False)
    assert consumer.queues == [q]
    assert consumer.options[q.name] == ConsumerOptions(
        workers=2, initial_delay=0.01, max_delay=0.05, check_worker_health=False
    )
    consumer.start()
    try:
        assert add_one(1).get(blocking=True, timeout=5) == 2
    finally:
        consumer.shutdown()


def test_huey_form_refuses_unknown_or_doubled_options() -> None:
    q = make_queue()
    with pytest.raises(ConfigurationError, match=r"Consumer\(\): unknown consumer option\(s\) \['colour'\]"):
        Consumer(q, colour="blue")
    with pytest.raises(ConfigurationError, match="either as options= or as keywords"):
        Consumer(q, ConsumerOptions(), workers=2)
    with pytest.raises(ConfigurationError, match="workers must be an int > 0"):
        Consumer(q, workers=0)


def test_scheduler_loop_moves_due_messages_and_enqueues_each_minute_s_periodic_tasks_once() -> None:
    q = make_queue()
    ran: list[str] = []

    @q.task()
    def later(tag: str) -> None:
        ran.append(tag)

    @q.periodic_task(crontab(minute="*/10"))
    def every_ten() -> None:
        ran.append("periodic")

    start = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
    later.schedule(("due",), eta=start + dt.timedelta(seconds=30))
    assert q.execute(q.dequeue()) is None  # taken before its eta: moved to the schedule
    scheduler = Scheduler(Consumer(q, monitor=False))

    scheduler.loop(start)
    assert (q.pending_count(), q.scheduled_count()) == (1, 1)  # the periodic task of 00:00
    scheduler.loop(start + dt.timedelta(seconds=20))
    assert (q.pending_count(), q.scheduled_count()) == (1, 1)  # same minute: not again
    scheduler.loop(start + dt.timedelta(minutes=1))
    assert (q.pending_count(), q.scheduled_count()) == (2, 0)  # the due call; 00:01 has no periodic run
    scheduler.loop(start + dt.timedelta(minutes=10))
    assert q.pending_count() == 3
