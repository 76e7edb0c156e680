"""Immediate mode: tasks run synchronously when called, through the same execution path as a worker."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from django_tasks_q import TaskException, TaskQueue
from django_tasks_q.backends.memory import MemoryStorage
from tests.support.hub import Recorder, later, new_queue


def test_a_call_runs_at_once_and_its_result_is_ready():
    q = new_queue(immediate=True)
    events = Recorder(q)
    ran = []

    @q.task()
    def add(a, b):
        ran.append((a, b))
        return a + b

    result = add(2, 3)
    assert ran == [(2, 3)]
    assert result.is_ready() is True
    assert result() == 5
    assert len(q) == 0
    assert events.signals() == ["enqueued", "executing", "complete"]


def test_arguments_go_through_the_serializer():
    q = new_queue(immediate=True)

    @q.task()
    def kinds(*args):
        return [type(a).__name__ for a in args]

    assert kinds((1, 2), Decimal("1.5"), dt.date(2020, 1, 1))() == ["tuple", "Decimal", "date"]


def test_a_failure_is_stored_and_raised_by_get():
    q = new_queue(immediate=True)
    events = Recorder(q)

    @q.task()
    def broken():
        raise ZeroDivisionError("division by zero")

    result = broken()  # the call itself does not raise
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.error == "ZeroDivisionError('division by zero')"
    assert events.signals() == ["enqueued", "executing", "error"]


def test_retries_without_delay_run_inline():
    q = new_queue(immediate=True)
    attempts = []

    @q.task(retries=2)
    def broken():
        attempts.append(1)
        raise RuntimeError("again")

    result = broken()
    assert len(attempts) == 3
    with pytest.raises(TaskException):
        result.get()


def test_a_delayed_call_waits_in_the_schedule_until_enqueue_due():
    q = new_queue(immediate=True)
    events = Recorder(q)
    ran = []

    @q.task()
    def work(x):
        ran.append(x)
        return x

    result = work.schedule((1,), delay=60)
    assert ran == []
    assert [t.id for t in q.scheduled()] == [result.id]
    assert events.signals() == ["enqueued", "scheduled"]
    assert q.enqueue_due() == 0
    assert q.enqueue_due(later(61)) == 1
    assert ran == [1]
    assert result() == 1
    assert events.signals() == ["enqueued", "scheduled", "executing", "complete"]


def test_a_retry_with_delay_waits_in_the_schedule():
    q = new_queue(immediate=True)
    attempts = []

    @q.task(retries=1, retry_delay=30)
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first")
        return "second"

    result = flaky()
    assert len(attempts) == 1
    assert len(q.scheduled()) == 1
    q.enqueue_due(later(31))
    assert len(attempts) == 2
    assert result() == "second"


def test_revoked_and_expired_calls_are_skipped():
    q = new_queue(immediate=True)
    events = Recorder(q)

    @q.task()
    def work():
        return "ran"

    work.revoke(revoke_once=True)
    assert work()() is None
    assert work()() == "ran"
    assert events.signals() == ["enqueued", "revoked", "enqueued", "executing", "complete"]
    events.clear()
    late = work.schedule(delay=60, expires=30)
    q.enqueue_due(later(61))
    assert late() is None
    assert events.signals() == ["enqueued", "scheduled", "expired"]


def test_context_tasks_see_the_call():
    q = new_queue(immediate=True)

    @q.task(context=True)
    def who(task=None):
        return [task.attempt, task.redelivered]

    assert who()() == [1, False]


def test_immediate_uses_a_memory_storage_and_switching_back_restores_the_real_one():
    q = TaskQueue("switch-" + __name__, storage_class=MemoryStorage, block_timeout=0)

    @q.task()
    def work(x):
        return x

    real = q.storage
    work(1)
    assert real.queue_size() == 1

    q.immediate = True
    assert q.storage is not real
    assert isinstance(q.storage, MemoryStorage)
    assert work(2)() == 2
    assert real.queue_size() == 1  # untouched

    q.immediate = False
    assert q.storage is real
    assert len(q) == 1


def test_immediate_without_memory_uses_the_configured_storage():
    q = new_queue(immediate=True, immediate_use_memory=False)

    @q.task()
    def work(x):
        return x

    assert work(3)() == 3
    assert q.immediate is True
    assert q.storage.block_timeout == 0  # still the storage the queue was configured with


def test_results_false_applies():
    q = new_queue(immediate=True, results=False)

    @q.task()
    def work():
        return 1

    assert work() is None
    assert q.all_results() == {}
