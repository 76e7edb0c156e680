"""Periodic tasks: the scheduler's minute check (read_periodic / enqueue_periodic) and how they run."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from django_tasks_q import ConfigurationError, InvalidOption, crontab
from tests.support.hub import UTC, Recorder, drain, new_queue


def make():
    q = new_queue()
    events = Recorder(q)
    ran = []

    @q.periodic_task(crontab(minute="*/5"))
    def every_five():
        ran.append("five")
        return "tick"

    @q.periodic_task(crontab(minute="0", hour="3"), name="nightly", retries=1, priority=5)
    def nightly():
        ran.append("nightly")

    @q.task()
    def ordinary():
        ran.append("ordinary")

    return q, events, ran, every_five, nightly


def names(tasks):
    return [task.name for task in tasks]


def test_periodic_task_is_a_registered_task_with_its_schedule():
    q, _events, _ran, every_five, nightly = make()
    assert q.registry.periodic() == [every_five, nightly]
    assert repr(nightly) == f"<periodic task 'nightly' on queue {q.name!r}>"
    assert (nightly.retries, nightly.priority) == (1, 5)
    assert nightly.validate_datetime(dt.datetime(2030, 1, 1, 3, 0)) is True


def test_read_periodic_lists_the_due_calls_without_enqueueing():
    q, events, _ran, *_ = make()
    at_three = dt.datetime(2030, 1, 1, 3, 0, 42, tzinfo=UTC)
    assert names(q.read_periodic(at_three)) == ["every_five", "nightly"]
    assert names(q.read_periodic(at_three + dt.timedelta(minutes=5))) == ["every_five"]
    assert q.read_periodic(at_three + dt.timedelta(minutes=1)) == []
    assert len(q) == 0
    assert events.signals() == []


def test_enqueue_periodic_enqueues_each_task_once_per_minute():
    q, events, ran, *_ = make()
    at_three = dt.datetime(2030, 1, 1, 3, 0, 5, tzinfo=UTC)
    assert names(q.enqueue_periodic(at_three)) == ["every_five", "nightly"]
    # a second scheduler (or a second look in the same minute) enqueues nothing more
    assert q.enqueue_periodic(at_three + dt.timedelta(seconds=50)) == []
    assert len(q) == 2
    assert names(q.enqueue_periodic(at_three + dt.timedelta(minutes=5))) == ["every_five"]
    assert names(q.pending()) == ["nightly", "every_five", "every_five"]  # priority 5 first
    assert drain(q) == 3
    assert ran == ["nightly", "five", "five"]
    assert events.signals() == ["enqueued"] * 3 + ["executing", "complete"] * 3


def test_periodic_calls_store_no_result():
    q, _events, _ran, *_ = make()
    q.enqueue_periodic(dt.datetime(2030, 1, 1, 3, 0, tzinfo=UTC))
    drain(q)
    assert q.all_results() == {}


def test_a_failing_periodic_task_retries_and_stores_no_error():
    q = new_queue()
    events = Recorder(q)

    @q.periodic_task(crontab(), retries=1)
    def broken():
        raise RuntimeError("every minute")

    q.enqueue_periodic(dt.datetime(2030, 1, 1, tzinfo=UTC))
    assert drain(q) == 2
    assert events.signals() == [
        "enqueued",
        "executing",
        "error",
        "retrying",
        "enqueued",
        "executing",
        "error",
    ]
    assert q.all_results() == {}


def test_naive_timestamps_are_utc_by_default():
    q, _events, _ran, *_ = make()
    assert names(q.read_periodic(dt.datetime(2030, 1, 1, 3, 0))) == ["every_five", "nightly"]
    assert names(
        q.read_periodic(dt.datetime(2030, 1, 1, 4, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    ) == [
        "every_five",
        "nightly",
    ]


def test_with_utc_false_schedules_are_read_in_local_time(new_york_time):
    q = new_queue(utc=False)
    seen = []

    def at_three_local(moment):
        seen.append(moment)
        return (moment.hour, moment.minute) == (3, 0)

    @q.periodic_task(at_three_local)
    def local_job():
        return None

    # 08:00 UTC in January is 03:00 in New York
    assert names(q.read_periodic(dt.datetime(2030, 1, 15, 8, 0, 30, tzinfo=UTC))) == ["local_job"]
    assert seen[0].utcoffset() == dt.timedelta(hours=-5)
    assert (seen[0].hour, seen[0].second) == (3, 0)
    assert q.read_periodic(dt.datetime(2030, 1, 15, 3, 0, tzinfo=UTC)) == []


def test_the_moment_passed_to_the_schedule_is_whole_minutes():
    q = new_queue()
    seen = []

    @q.periodic_task(lambda moment: seen.append(moment) or False)
    def never():
        return None

    q.read_periodic(dt.datetime(2030, 5, 6, 7, 8, 59, 999999, tzinfo=UTC))
    assert seen == [dt.datetime(2030, 5, 6, 7, 8, tzinfo=UTC)]


def test_a_schedule_that_raises_is_logged_and_skipped(caplog):
    q = new_queue()

    def broken_schedule(moment):
        raise ValueError("bad schedule")

    @q.periodic_task(broken_schedule, name="broken")
    def broken():
        return None

    @q.periodic_task(crontab(), name="fine")
    def fine():
        return None

    with caplog.at_level(logging.ERROR, logger="django_tasks_q"):
        due = q.enqueue_periodic(dt.datetime(2030, 1, 1, tzinfo=UTC))
    assert [t.name for t in due] == ["fine"]
    [record] = caplog.records
    assert record.getMessage() == "schedule of periodic task 'broken' failed for 2030-01-01 00:00:00+00:00"


def test_periodic_tasks_take_no_arguments():
    _q, _events, _ran, every_five, _nightly = make()
    with pytest.raises(InvalidOption) as info:
        every_five(1)
    assert str(info.value) == (
        f"task {every_five.path!r}: arguments do not match its signature: too many positional arguments"
    )


def test_a_periodic_task_can_also_be_called():
    q, _events, ran, every_five, _nightly = make()
    every_five()
    drain(q)
    assert ran == ["five"]


def test_periodic_task_needs_a_schedule():
    q = new_queue()
    with pytest.raises(ConfigurationError) as info:
        q.periodic_task("*/5 * * * *")
    assert str(info.value) == "periodic_task() needs a callable such as crontab(...) as its first argument"


def test_periodic_tasks_in_immediate_mode_run_when_enqueued():
    q = new_queue(immediate=True)
    ran = []

    @q.periodic_task(crontab(minute="30"))
    def half_past():
        ran.append(1)

    q.enqueue_periodic(dt.datetime(2030, 1, 1, 12, 29, tzinfo=UTC))
    assert ran == []
    q.enqueue_periodic(dt.datetime(2030, 1, 1, 12, 30, tzinfo=UTC))
    assert ran == [1]
