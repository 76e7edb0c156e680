"""Failing tasks and retries: counts, delay and backoff, RetryTask, CancelExecution(retry=...), redelivery."""

from __future__ import annotations

import datetime as dt

import pytest

from django_tasks_q import CancelExecution, RetryTask, TaskException
from tests.support.hub import UTC, Recorder, drain, later, naive_utc, new_queue, run_next


def assert_close(actual: dt.datetime, expected: dt.datetime, slack: float = 2.0) -> None:
    assert abs((actual - expected).total_seconds()) <= slack, (
        f"{actual} is not within {slack} s of {expected}"
    )


def test_a_failing_task_without_retries_fails_once():
    q = new_queue()
    events = Recorder(q)
    calls = []

    @q.task()
    def broken(x):
        calls.append(x)
        raise ValueError(f"bad {x}")

    result = broken(1)
    assert drain(q) == 1
    assert calls == [1]
    assert events.signals() == ["enqueued", "executing", "error"]
    [error_event] = [e for e in events.events if e.signal == "error"]
    assert type(error_event.args[0]) is ValueError
    assert str(error_event.args[0]) == "bad 1"
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.error == "ValueError('bad 1')"
    assert len(q) == 0
    assert q.scheduled() == []


def test_retries_without_delay_run_again_at_once_until_they_are_used_up():
    q = new_queue()
    events = Recorder(q)
    seen = []

    @q.task(retries=2, context=True)
    def broken(task=None):
        seen.append((task.id, task.retries))
        raise RuntimeError(f"attempt {len(seen)}")

    result = broken()
    assert drain(q) == 3
    assert seen == [(result.id, 2), (result.id, 1), (result.id, 0)]  # the id is stable across retries
    assert events.signals() == [
        "enqueued",
        "executing",
        "error",
        "retrying",
        "enqueued",
        "executing",
        "error",
        "retrying",
        "enqueued",
        "executing",
        "error",
    ]
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.error == "RuntimeError('attempt 3')"
    assert info.value.metadata["retries"] == 0


def test_each_failed_attempt_stores_its_error_as_in_huey():
    q = new_queue()

    @q.task(retries=1, retry_delay=60)
    def broken():
        raise RuntimeError("first")

    result = broken()
    drain(q)
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["retries"] == 1  # the attempt that failed still had its retry
    [retry] = q.scheduled()
    assert retry.id == result.id and retry.retries == 0
    drain(q, later(61))
    result.reset()
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["retries"] == 0


def test_without_intermediate_errors_only_the_final_outcome_is_stored():
    # store_intermediate_errors=False: a reader blocking on the result waits for the last attempt.
    q = new_queue(store_intermediate_errors=False)

    @q.task(retries=1, retry_delay=60)
    def broken():
        raise RuntimeError("first")

    result = broken()
    drain(q)
    assert result.get() is None
    assert not result.is_ready()
    [retry] = q.scheduled()
    assert retry.id == result.id
    assert retry.retries == 0
    drain(q, later(61))
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.metadata["retries"] == 0
    assert "RuntimeError('first')" in info.value.error


def test_a_task_that_succeeds_on_a_retry_returns_its_value():
    q = new_queue()
    attempts = []

    @q.task(retries=3)
    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return "finally"

    result = flaky()
    assert drain(q) == 3
    assert result() == "finally"
    assert q.all_results() == {}


def test_retry_delay_and_backoff():
    q = new_queue()
    events = Recorder(q)
    attempts = []

    @q.task(retries=3, retry_delay=10, retry_backoff=2)
    def broken():
        attempts.append(1)
        raise RuntimeError("no")

    result = broken()
    assert run_next(q) is True
    [first] = q.scheduled()
    assert first.id == result.id
    assert (first.retries, first.retry_delay) == (2, 20)
    assert_close(first.eta, naive_utc(later(10)))
    assert len(q) == 0
    assert drain(q, later(9)) == 0  # not due yet

    assert drain(q, later(10.5)) == 1
    [second] = q.scheduled()
    assert (second.retries, second.retry_delay) == (1, 40)
    assert_close(second.eta, naive_utc(later(20)))
    assert drain(q, later(19)) == 0

    assert drain(q, later(20.5)) == 1
    [third] = q.scheduled()
    assert (third.retries, third.retry_delay) == (0, 80)
    assert_close(third.eta, naive_utc(later(40)))

    assert drain(q, later(40.5)) == 1
    assert q.scheduled() == []
    assert len(attempts) == 4
    assert events.signals() == [
        "enqueued",
        *["executing", "error", "retrying", "scheduled"] * 3,
        "executing",
        "error",
    ]


def test_call_options_override_the_decorator_retries():
    q = new_queue()
    attempts = []

    @q.task(retries=5, retry_delay=100)
    def broken():
        attempts.append(1)
        raise RuntimeError("no")

    broken.schedule(retries=1, retry_delay=0)
    assert drain(q) == 2
    assert len(attempts) == 2


def test_retry_task_retries_without_using_a_retry():
    q = new_queue()
    events = Recorder(q)
    attempts = []

    @q.task()
    def again():
        attempts.append(1)
        if len(attempts) < 3:
            raise RetryTask()
        return len(attempts)

    result = again()
    assert drain(q) == 3
    assert result() == 3
    assert events.signals() == [
        "enqueued",
        *["executing", "retrying", "enqueued"] * 2,
        "executing",
        "complete",
    ]


def test_retry_task_keeps_the_retry_count():
    q = new_queue(store_intermediate_errors=False)

    @q.task(retries=2)
    def again():
        raise RetryTask(delay=30)

    result = again()
    run_next(q)
    assert result.is_ready() is False
    [retry] = q.scheduled()
    assert retry.retries == 2
    assert_close(retry.eta, naive_utc(later(30)))


def test_retry_task_with_an_eta():
    q = new_queue()
    events = Recorder(q)
    eta = dt.datetime(2100, 1, 1, 12, tzinfo=UTC)

    @q.task()
    def again():
        raise RetryTask("not yet", eta=eta)

    again()
    run_next(q)
    assert [t.eta for t in q.scheduled()] == [naive_utc(eta)]
    assert events.signals() == ["enqueued", "executing", "retrying", "scheduled"]


def test_retry_task_with_an_unusable_delay_is_a_failure():
    q = new_queue()
    events = Recorder(q)

    @q.task()
    def again():
        raise RetryTask(delay=float("nan"))

    result = again()
    assert drain(q) == 1
    assert q.scheduled() == []
    assert events.signals() == ["enqueued", "executing", "error"]
    with pytest.raises(TaskException) as info:
        result.get()
    assert info.value.error == "InvalidEta('delay must be a finite duration, got nan')"


def test_retry_task_with_a_negative_delay_retries_at_once():
    q = new_queue()
    events = Recorder(q)
    attempts = []

    @q.task()
    def again():
        attempts.append(len(attempts))
        if len(attempts) == 1:
            raise RetryTask(delay=-5)
        return "second"

    result = again()
    assert drain(q) == 2
    assert result.get() == "second" and q.scheduled() == []
    assert events.signals() == ["enqueued", "executing", "retrying", "enqueued", "executing", "complete"]


def test_post_execute_hooks_see_each_attempt():
    q = new_queue()
    seen = []

    @q.post_execute()
    def record(task, value, exc):
        seen.append((task.retries, value, type(exc).__name__ if exc else None))

    attempts = []

    @q.task(retries=1)
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk")
        return "ok"

    flaky()
    drain(q)
    assert seen == [(1, None, "OSError"), (0, "ok", None)]


def test_pre_execute_cancel_with_retry_true_retries_without_using_a_retry():
    q = new_queue()
    events = Recorder(q)
    cancels = []

    @q.pre_execute()
    def gate(task):
        if len(cancels) < 2:
            cancels.append(task.id)
            raise CancelExecution(retry=True)

    @q.task()
    def work():
        return "ran"

    result = work()
    assert drain(q) == 3
    assert result() == "ran"
    assert cancels == [result.id, result.id]
    assert events.signals() == [
        "enqueued",
        *["canceled", "retrying", "enqueued"] * 2,
        "executing",
        "complete",
    ]


def test_pre_execute_cancel_retries_a_task_that_has_retries_left():
    q = new_queue()
    events = Recorder(q)

    @q.pre_execute()
    def gate(task):
        raise CancelExecution()

    @q.task(retries=1)
    def work():
        return "ran"

    work()
    assert drain(q) == 2
    assert events.signals() == ["enqueued", "canceled", "retrying", "enqueued", "canceled"]


def test_pre_execute_cancel_with_retry_false_never_retries():
    q = new_queue()
    events = Recorder(q)

    @q.pre_execute()
    def gate(task):
        raise CancelExecution(retry=False)

    @q.task(retries=3)
    def work():
        return "ran"

    result = work()
    assert drain(q) == 1
    assert events.signals() == ["enqueued", "canceled"]
    assert result() is None


def test_cancel_execution_raised_by_the_task_itself():
    q = new_queue()
    events = Recorder(q)
    calls = []

    @q.task(retries=1)
    def work(retry):
        calls.append(retry)
        if len(calls) == 1 or retry is False:
            raise CancelExecution(retry=retry)
        return "second time"

    again = work(True)
    assert drain(q) == 2
    assert again() == "second time"
    assert events.for_task(again.id) == [
        "enqueued",
        "executing",
        "canceled",
        "retrying",
        "enqueued",
        "executing",
        "complete",
    ]

    no_retry = work(False)
    assert drain(q) == 1
    assert events.for_task(no_retry.id) == ["enqueued", "executing", "canceled"]
    with pytest.raises(TaskException) as info:  # as in huey, a cancel without retry is a stored error
        no_retry()
    assert info.value.error == "CancelExecution()"
    assert calls == [True, True, False]


def test_an_immediate_retry_that_succeeds_is_not_overwritten_by_the_first_failure():
    q = new_queue(immediate=True)
    attempts = []

    @q.task(retries=1)
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first")
        return "second"

    result = flaky()
    assert len(attempts) == 2
    assert result() == "second"


def test_a_redelivered_message_knows_its_attempt_number():
    q = new_queue()
    seen = []

    @q.task(context=True)
    def who(task=None):
        seen.append((task.id, task.attempt, task.redelivered))
        return task.attempt

    result = who()
    first = q.reserve(lease=5)
    assert first.attempt == 1
    # the worker died: its lease runs out and the reaper puts the message back
    [reclaimed] = q.reclaim_expired(later(6))
    assert reclaimed.dead_lettered is False
    second = q.reserve()
    assert second.attempt == 2
    q.process(second)
    assert seen == [(result.id, 2, True)]
    assert result() == 2


def test_a_retry_finished_by_another_worker_before_the_first_ack_keeps_its_value():
    q = new_queue()
    attempts = []

    @q.task(retries=1, context=True)
    def flaky(task=None):
        attempts.append(task.retries)
        if task.retries == 1:
            raise ConnectionError("first attempt")
        return "second attempt"

    def second_worker(signal, task, *args):
        # runs between the retry's enqueue and the first worker's ack, as another worker could
        if signal == "enqueued" and attempts == [1]:
            run_next(q)

    q.signal("enqueued")(second_worker)
    result = flaky()
    run_next(q)
    assert attempts == [1, 0]
    assert result() == "second attempt"
